use std::future::Future;

use tokio::sync::mpsc;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::Value;

use super::SimulatorSource;
use crate::outlet::Outlet;
use crate::props::Props;

/// An outlet with a real clock (pacing in these tests takes well under a
/// second).
struct TimedOutlet {
    tx: mpsc::UnboundedSender<(i64, Vec<Payload>)>,
    start: std::time::Instant,
}

impl Outlet for TimedOutlet {
    fn send(&self, payloads: Vec<Payload>) -> impl Future<Output = bool> + Send {
        let ok = self.tx.send((self.now_ms(), payloads)).is_ok();
        async move { ok }
    }

    fn now_ms(&self) -> i64 {
        1_000_000 + self.start.elapsed().as_millis() as i64
    }

    fn stopped(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

fn source(props: serde_json::Value) -> SimulatorSource {
    SimulatorSource::from_props(&Props::new(&props)).unwrap()
}

async fn collect(s: SimulatorSource, limit: usize) -> Vec<(i64, Payload)> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(s.pump(TimedOutlet { tx, start: std::time::Instant::now() }));
    let mut got = Vec::new();
    while got.len() < limit {
        match rx.recv().await {
            Some((at, batch)) => got.extend(batch.into_iter().map(|p| (at, p))),
            None => break,
        }
    }
    task.abort();
    got
}

fn row(p: &Payload) -> &weir_runtime::Map {
    match &p.data {
        PayloadData::Object(m) => m,
        PayloadData::Bytes(_) => panic!("expected an object"),
    }
}

#[tokio::test]
async fn ekuiper_data_mode_sends_in_order_every_interval() {
    let s = source(serde_json::json!({"data": [{"a": 1}, {"a": 2}], "interval": "50ms", "loop": false}));
    let got = collect(s, 10).await;
    assert_eq!(got.len(), 2);
    assert_eq!(row(&got[0].1)["a"], Value::Float(1.0));
    assert!((50..500).contains(&(got[1].0 - got[0].0)), "{}", got[1].0 - got[0].0);
    let s = source(serde_json::json!({"data": [{"a": 1}, {"a": 2}], "interval": 10}));
    let got = collect(s, 5).await;
    assert_eq!(row(&got[4].1)["a"], Value::Float(1.0));
}

#[tokio::test]
async fn generator_is_paced_by_rate_and_reproducible() {
    let props = serde_json::json!({
        "devices": 2, "devicePrefix": "furnace-", "rate": 100, "seed": 3, "count": 20,
        "timestampField": "ts",
        "fields": [{"name": "temperature", "base": 850, "amplitude": 10, "noise": 1}]
    });
    let got = collect(source(props.clone()), 1000).await;
    assert_eq!(got.len(), 40);
    assert_eq!(row(&got[1].1)["device"], Value::str("furnace-2"));
    // Tick 19 is due 190 ms after the start.
    let spread = got[39].0 - got[0].0;
    assert!((190..1500).contains(&spread), "{spread}");
    assert_eq!(row(&got[39].1)["ts"], Value::Int(got[39].0));
    let again = collect(source(props), 1000).await;
    let temps = |g: &[(i64, Payload)]| g.iter().map(|(_, p)| row(p)["temperature"].clone()).collect::<Vec<_>>();
    assert_eq!(temps(&got), temps(&again));
}

#[tokio::test]
async fn unthrottled_generator_sends_batches() {
    let props = serde_json::json!({"devices": ["a", "b", "c"], "rate": 0, "count": 1000,
        "fields": [{"name": "x", "base": 1}]});
    let got = collect(source(props), 3000).await;
    assert_eq!(got.len(), 3000);
    assert!(got[2999].0 - got[0].0 < 500, "no pacing when unthrottled");
}

#[test]
fn bad_properties() {
    for p in [
        serde_json::json!({}),
        serde_json::json!({"data": [1, 2]}),
        serde_json::json!({"fields": []}),
        serde_json::json!({"fields": [{"name": "x", "bogus": 1}]}),
        serde_json::json!({"fields": [{"name": "x"}], "devices": 0}),
        serde_json::json!({"fields": [{"name": "x"}], "rate": "fast"}),
    ] {
        assert!(SimulatorSource::from_props(&Props::new(&p)).is_err(), "{p}");
    }
}
