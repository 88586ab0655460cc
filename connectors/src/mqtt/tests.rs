//! MQTT source and sink against real brokers: an embedded rumqttd on a free
//! port (with a test-owned TCP proxy to cut connections), and mosquitto,
//! restarted mid-stream, when it is installed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::{Map, Value};

use super::sink::SinkConfig;
use super::source::{decode_bytes, MqttSource, SourceConfig};
use super::ConnConfig;
use crate::outlet::testing::{channel, ChannelOutlet};
use crate::props::Props;
use crate::Environment;

/// Every wait in these tests is bounded by this.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts an embedded rumqttd with a v4 listener (and a v5 one when
/// `v5_port` is set); it runs until the test process ends.
pub(crate) fn start_rumqttd(port: u16, v5_port: Option<u16>) {
    let server = |name: &str, port: u16| {
        serde_json::json!({"name": name, "listen": format!("127.0.0.1:{port}"), "next_connection_delay_ms": 1,
            "connections": {"connection_timeout_ms": 60000, "max_payload_size": 1048576,
                "max_inflight_count": 100, "dynamic_filters": true}})
    };
    let mut config = serde_json::json!({
        "id": 0,
        "router": {"max_connections": 1000, "max_outgoing_packet_count": 200,
            "max_segment_size": 104857600, "max_segment_count": 10},
        "v4": {"1": server("v4", port)},
    });
    if let Some(p) = v5_port {
        config["v5"] = serde_json::json!({"1": server("v5", p)});
    }
    let config: rumqttd::Config = serde_json::from_value(config).unwrap();
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    wait_listening(port);
}

fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "broker on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test publisher that counts its completed QoS >= 1 publishes.
pub(crate) struct Publisher {
    pub(crate) client: rumqttc::AsyncClient,
    acked: watch::Receiver<u64>,
}

impl Publisher {
    pub(crate) fn new(port: u16, id: &str) -> Publisher {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        // 20 in flight at most: mosquitto drops an MQTT 3.1.1 client that
        // has more unfinished QoS 2 publishes (`max_inflight_messages`).
        o.set_keep_alive(Duration::from_secs(30)).set_inflight(20);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
        let (tx, acked) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_))) => {
                        tx.send_modify(|n| *n += 1)
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Publisher { client, acked }
    }

    pub(crate) async fn publish(&self, topic: &str, qos: rumqttc::QoS, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, qos, false, payload.into()).await.unwrap();
    }

    /// Waits until `n` QoS >= 1 publishes are acknowledged in total.
    pub(crate) async fn wait_acked(&mut self, n: u64) {
        tokio::time::timeout(LIMIT, self.acked.wait_for(|a| *a >= n)).await.expect("publishes acked").unwrap();
    }
}

/// Publishes `probe` on `topic` every 100 ms until the source's output
/// shows a payload with that text: the subscription is then in place.
/// Returns the other payloads seen meanwhile.
pub(crate) async fn wait_subscribed(
    publisher: &Publisher,
    topic: &str,
    rx: &mut mpsc::Receiver<Vec<Payload>>,
) -> Vec<Payload> {
    let mut others = Vec::new();
    tokio::time::timeout(LIMIT, async {
        loop {
            publisher.publish(topic, rumqttc::QoS::AtMostOnce, "\"probe\"").await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.tick().await;
            loop {
                tokio::select! {
                    b = rx.recv() => {
                        for p in b.expect("source alive") {
                            if text(&p) == "\"probe\"" { return; }
                            others.push(p);
                        }
                    }
                    _ = tick.tick() => break,
                }
            }
        }
    })
    .await
    .expect("subscription established");
    others
}

pub(crate) fn text(p: &Payload) -> String {
    match &p.data {
        PayloadData::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        PayloadData::Object(m) => Value::map(m.clone()).to_json(),
    }
}

pub(crate) fn env() -> Environment {
    Environment::new(std::env::temp_dir())
}

pub(crate) fn source_config(port: u16, topics: &str, extra: serde_json::Value) -> SourceConfig {
    let def = weir_planner::StreamDef {
        name: "s".into(),
        kind: weir_planner::StreamKind::Stream,
        fields: None,
        options: weir_planner::StreamOptions {
            datasource: Some(topics.into()),
            extra: Some(extra.to_string()),
            ..Default::default()
        },
        sql: String::new(),
    };
    let e = env();
    e.set_source_conf("mqtt", serde_json::json!({"default": {"server": format!("tcp://127.0.0.1:{port}")}})).unwrap();
    SourceConfig::new(&def, &e, "mqtt", None).unwrap()
}

/// Starts a source; returns its output and stop switch.
pub(crate) fn start_source(
    env: &Environment,
    config: SourceConfig,
    capacity: usize,
) -> (mpsc::Receiver<Vec<Payload>>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (outlet, rx, stop): (ChannelOutlet, _, _) = channel(capacity);
    let task = tokio::spawn(MqttSource::new(config, env, decode_bytes).pump(outlet));
    (rx, stop, task)
}

/// Collects payload texts until `pred` holds.
pub(crate) async fn collect_until(
    rx: &mut mpsc::Receiver<Vec<Payload>>,
    got: &mut Vec<Payload>,
    pred: impl Fn(&[Payload]) -> bool,
) {
    tokio::time::timeout(LIMIT, async {
        while !pred(got) {
            got.extend(rx.recv().await.expect("source alive").into_iter().filter(|p| text(p) != "\"probe\""));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; got {:?}", got.iter().map(text).collect::<Vec<_>>()));
}

pub(crate) fn numbers(got: &[Payload]) -> BTreeSet<i64> {
    got.iter().filter_map(|p| text(p).parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_reads_wildcards_at_qos0_and_qos1_with_meta() {
    let port = free_port();
    start_rumqttd(port, None);
    let env = env();
    let (mut rx, stop, task) = start_source(&env, source_config(port, "t/+/x, only/#", serde_json::json!({})), 8);
    let publisher = Publisher::new(port, "pub-1");
    wait_subscribed(&publisher, "t/probe/x", &mut rx).await;

    publisher.publish("t/a/x", rumqttc::QoS::AtLeastOnce, r#"{"a":1}"#).await;
    publisher.publish("t/b/y", rumqttc::QoS::AtLeastOnce, r#"{"skip":1}"#).await;
    publisher.publish("only", rumqttc::QoS::AtMostOnce, r#"{"b":2}"#).await;
    let mut got = Vec::new();
    collect_until(&mut rx, &mut got, |g| g.len() >= 2).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), [r#"{"a":1}"#, r#"{"b":2}"#]);
    let meta = got[0].meta.as_ref().unwrap();
    assert_eq!(meta.get("topic"), Some(&Value::str("t/a/x")));
    assert_eq!(meta.get("qos"), Some(&Value::Int(1)));
    assert!(meta.get("messageId").and_then(Value::as_i64).is_some_and(|id| id > 0));
    // (rumqttd delivers at the subscription's QoS, not the minimum.)
    assert_eq!(got[1].meta.as_ref().unwrap().get("topic"), Some(&Value::str("only")));

    stop.send(true).unwrap();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(env.mqtt().connections(), 0, "the last stream closes the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_with_one_config_share_a_connection() {
    let port = free_port();
    start_rumqttd(port, None);
    let env = env();
    let (mut rx1, _s1, _t1) = start_source(&env, source_config(port, "a/#", serde_json::json!({})), 8);
    let (mut rx2, _s2, _t2) = start_source(&env, source_config(port, "b/+,a/x", serde_json::json!({})), 8);
    let publisher = Publisher::new(port, "pub-2");
    wait_subscribed(&publisher, "a/x", &mut rx1).await;
    wait_subscribed(&publisher, "b/probe", &mut rx2).await;
    assert_eq!(env.mqtt().connections(), 1);
    // Drain probes that the other stream also got.
    while rx1.try_recv().is_ok() || rx2.try_recv().is_ok() {}

    publisher.publish("a/x", rumqttc::QoS::AtLeastOnce, "1").await;
    publisher.publish("b/y", rumqttc::QoS::AtLeastOnce, "2").await;
    publisher.publish("a/z", rumqttc::QoS::AtLeastOnce, "3").await;
    let (mut g1, mut g2) = (Vec::new(), Vec::new());
    collect_until(&mut rx1, &mut g1, |g| numbers(g).len() >= 2).await;
    collect_until(&mut rx2, &mut g2, |g| numbers(g).len() >= 2).await;
    assert_eq!(numbers(&g1), BTreeSet::from([1, 3]));
    assert_eq!(numbers(&g2), BTreeSet::from([1, 2]));

    // A stream with another client id gets its own connection.
    let other = source_config(port, "c", serde_json::json!({"clientid": "weir-other"}));
    let (_rx3, _s3, _t3) = start_source(&env, other, 8);
    tokio::time::timeout(LIMIT, async {
        while env.mqtt().connections() != 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_source() {
    let (port, port5) = (free_port(), free_port());
    start_rumqttd(port, Some(port5));
    let env = env();
    let config = source_config(port5, "v5/#", serde_json::json!({"protocolVersion": "5", "qos": 2}));
    let (mut rx, _stop, _task) = start_source(&env, config, 8);
    let publisher = Publisher::new(port, "pub-5");
    wait_subscribed(&publisher, "v5/probe", &mut rx).await;
    publisher.publish("v5/a", rumqttc::QoS::AtLeastOnce, "7").await;
    let mut got = Vec::new();
    collect_until(&mut rx, &mut got, |g| !g.is_empty()).await;
    assert_eq!(text(&got[0]), "7");
    assert_eq!(got[0].meta.as_ref().unwrap().get("topic"), Some(&Value::str("v5/a")));
}

/// A subscriber on `filter` at QoS 1 that forwards (topic, qos, payload)
/// of every message; returns once the broker confirmed the subscription.
async fn subscriber(port: u16, id: &str, filter: &str) -> mpsc::UnboundedReceiver<(String, rumqttc::QoS, String)> {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (sub, mut el) = rumqttc::AsyncClient::new(o, 100);
    sub.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.unwrap();
    let (tx, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _sub = sub;
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.qos, String::from_utf8_lossy(&p.payload).into_owned()));
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = tx.send(("suback".into(), rumqttc::QoS::AtMostOnce, String::new()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    assert_eq!(tokio::time::timeout(LIMIT, received.recv()).await.unwrap().unwrap().0, "suback");
    received
}

fn sink_of(props: serde_json::Value) -> Box<dyn weir_runtime::connector::Sink> {
    let ctx = crate::SinkContext { rule_id: "r".into(), index: 0 };
    crate::sink("mqtt", &props, &ctx, &env()).unwrap()
}

fn dev_row(dev: &str, v: i64) -> Value {
    let mut m = Map::new();
    m.insert("dev".into(), Value::str(dev));
    m.insert("v".into(), Value::Int(v));
    Value::map(m)
}

async fn next(
    received: &mut mpsc::UnboundedReceiver<(String, rumqttc::QoS, String)>,
) -> (String, rumqttc::QoS, String) {
    tokio::time::timeout(LIMIT, received.recv()).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_publishes_emissions_to_rendered_topics_at_qos1() {
    let port = free_port();
    start_rumqttd(port, None);
    let mut received = subscriber(port, "sub-1", "out/#").await;

    // Without sendSingle the data is the emission's array: eKuiper's
    // templates then index it.
    let mut sink = sink_of(serde_json::json!({
        "server": format!("tcp://127.0.0.1:{port}"), "topic": r#"out/{{index . 0 "dev"}}"#, "qos": 1,
        "clientId": "sink-1"}));
    tokio::time::timeout(LIMIT, sink.emit(&[dev_row("d1", 1)])).await.unwrap().unwrap();
    tokio::time::timeout(LIMIT, sink.emit(&[dev_row("d2", 2), dev_row("d2", 3)])).await.unwrap().unwrap();
    let a = next(&mut received).await;
    let b = next(&mut received).await;
    assert_eq!(a, ("out/d1".to_string(), rumqttc::QoS::AtLeastOnce, r#"[{"dev":"d1","v":1}]"#.to_string()));
    assert_eq!(b.0, "out/d2");
    assert_eq!(b.2, r#"[{"dev":"d2","v":2},{"dev":"d2","v":3}]"#);
    sink.close().await;

    // Config errors name the property.
    let bad = Props::new(&serde_json::json!({"server": "tcp://127.0.0.1:1", "topic": "a/#"}));
    assert!(
        matches!(SinkConfig::new(&bad, &env()), Err(crate::Error::Property { property, .. }) if property == "topic")
    );
    let bad = Props::new(&serde_json::json!({"server": "tcp://127.0.0.1:1", "topic": "a/{{.x"}));
    assert!(SinkConfig::new(&bad, &env()).is_err(), "a topic template that does not parse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_send_single_and_data_template() {
    let port = free_port();
    start_rumqttd(port, None);
    let mut received = subscriber(port, "sub-2", "tpl/#").await;
    let server = format!("tcp://127.0.0.1:{port}");

    // sendSingle: one message per row, topic rendered from the row.
    let mut single = sink_of(serde_json::json!({"server": server, "topic": "tpl/{{.dev}}", "qos": 1,
        "sendSingle": true}));
    tokio::time::timeout(LIMIT, single.emit(&[dev_row("a", 1), dev_row("b", 2)])).await.unwrap().unwrap();
    assert_eq!(next(&mut received).await, ("tpl/a".into(), rumqttc::QoS::AtLeastOnce, r#"{"dev":"a","v":1}"#.into()));
    assert_eq!(next(&mut received).await, ("tpl/b".into(), rumqttc::QoS::AtLeastOnce, r#"{"dev":"b","v":2}"#.into()));
    single.close().await;

    // dataTemplate per row, sent as it is.
    let mut tpl = sink_of(serde_json::json!({"server": server, "topic": "tpl/t", "sendSingle": true,
        "dataTemplate": r#"{"device":"{{.dev}}","double":{{printf "%d" .v}}0}"#}));
    tokio::time::timeout(LIMIT, tpl.emit(&[dev_row("c", 4)])).await.unwrap().unwrap();
    // (QoS 0 publishes: rumqttd forwards at the subscription's QoS.)
    let (topic, _, payload) = next(&mut received).await;
    assert_eq!((topic.as_str(), payload.as_str()), ("tpl/t", r#"{"device":"c","double":40}"#));
    tpl.close().await;

    // dataTemplate over the whole emission.
    let mut all = sink_of(serde_json::json!({"server": server, "topic": "tpl/all", "qos": 1,
        "dataTemplate": "{{range .}}{{.dev}}={{.v}};{{end}}"}));
    tokio::time::timeout(LIMIT, all.emit(&[dev_row("x", 1), dev_row("y", 2)])).await.unwrap().unwrap();
    assert_eq!(next(&mut received).await, ("tpl/all".into(), rumqttc::QoS::AtLeastOnce, "x=1;y=2;".into()));

    // fields picks keys of each row.
    let mut fields = sink_of(serde_json::json!({"server": server, "topic": "tpl/f", "fields": ["v"]}));
    tokio::time::timeout(LIMIT, fields.emit(&[dev_row("z", 9)])).await.unwrap().unwrap();
    let (topic, _, payload) = next(&mut received).await;
    assert_eq!((topic.as_str(), payload.as_str()), ("tpl/f", r#"[{"v":9}]"#));
    all.close().await;
    fields.close().await;
}

/// A TCP proxy a test can take down (dropping every connection and
/// refusing new ones) and bring back.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, up_rx) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*up_rx.borrow() {
                    continue; // dropped: refused
                }
                let mut up_rx = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { port, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_confirms_delivery_only_once_the_broker_acknowledged() {
    let port = free_port();
    start_rumqttd(port, None);
    let proxy = Proxy::start(port).await;
    let mut received = subscriber(port, "sub-confirm", "confirm/#").await;
    let mut sink = sink_of(serde_json::json!({
        "server": format!("tcp://127.0.0.1:{}", proxy.port), "topic": "confirm/a", "qos": 1,
        "sendSingle": true, "clientId": "sink-confirm"}));

    tokio::time::timeout(LIMIT, sink.emit(&[dev_row("d1", 1)])).await.unwrap().unwrap();
    let confirmed = tokio::time::timeout(LIMIT, sink.flush()).await.unwrap();
    tokio::time::timeout(LIMIT, confirmed).await.unwrap().unwrap();
    assert_eq!(next(&mut received).await.2, r#"{"dev":"d1","v":1}"#);

    // The broker is out of reach: the message is taken, not confirmed.
    proxy.set_up(false);
    tokio::time::timeout(LIMIT, sink.emit(&[dev_row("d1", 2)])).await.unwrap().unwrap();
    let mut confirmed = tokio::time::timeout(LIMIT, sink.flush()).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), &mut confirmed).await.is_err(), "confirmed unsent");
    // Reachable again: sent again on the resumed session, then confirmed.
    proxy.set_up(true);
    tokio::time::timeout(LIMIT, confirmed).await.unwrap().unwrap();
    assert_eq!(next(&mut received).await.2, r#"{"dev":"d1","v":2}"#);
    sink.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_an_outage_without_losing_qos1() {
    let port = free_port();
    start_rumqttd(port, None);
    let proxy = Proxy::start(port).await;
    let env = env();
    // A fixed client id: persistent session, so the broker queues for us.
    let config = source_config(proxy.port, "seq", serde_json::json!({"clientid": "weir-outage", "qos": 1}));
    let (mut rx, _stop, _task) = start_source(&env, config, 4);
    let mut publisher = Publisher::new(port, "pub-outage");
    let mut got = wait_subscribed(&publisher, "seq", &mut rx).await;

    for i in 0..50 {
        publisher.publish("seq", rumqttc::QoS::AtLeastOnce, i.to_string()).await;
    }
    // Read a part only: the rest sits unacknowledged in the source's queue
    // and the broker's in-flight window when the connection goes.
    collect_until(&mut rx, &mut got, |g| numbers(g).len() >= 10).await;
    publisher.wait_acked(50).await;
    proxy.set_up(false);
    for i in 50..100 {
        publisher.publish("seq", rumqttc::QoS::AtLeastOnce, i.to_string()).await;
    }
    publisher.wait_acked(100).await;
    proxy.set_up(true);

    collect_until(&mut rx, &mut got, |g| numbers(g).len() >= 100).await;
    assert_eq!(numbers(&got), (0..100).collect::<BTreeSet<_>>());
    assert_eq!(env.mqtt().connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_publishes_again_what_a_lost_session_dropped() {
    let port = free_port();
    start_rumqttd(port, None);
    let proxy = Proxy::start(port).await;
    let mut received = subscriber(port, "sub-lost", "lost/#").await;
    // No clientId: a clean session, so the broker forgets everything
    // unacknowledged when the connection drops.
    let mut sink = sink_of(serde_json::json!({"server": format!("tcp://127.0.0.1:{}", proxy.port),
        "topic": "lost/x", "qos": 1, "sendSingle": true, "timeout": 15000}));
    let one = |i: i64| {
        let mut m = Map::new();
        m.insert("i".into(), Value::Int(i));
        Value::map(m)
    };
    let mut got = BTreeSet::new();
    for i in 0..100 {
        tokio::time::timeout(LIMIT, sink.emit(&[one(i)])).await.unwrap().unwrap();
    }
    // Some went through; cut the connection while the rest may be in flight.
    while got.len() < 10 {
        got.insert(next(&mut received).await.2);
    }
    proxy.set_up(false);
    for i in 100..200 {
        tokio::time::timeout(LIMIT, sink.emit(&[one(i)])).await.unwrap().unwrap();
    }
    proxy.set_up(true);
    while got.len() < 200 {
        got.insert(next(&mut received).await.2);
    }
    let want: BTreeSet<String> = (0..200).map(|i| format!(r#"{{"i":{i}}}"#)).collect();
    assert_eq!(got, want);
    tokio::time::timeout(LIMIT, sink.close()).await.unwrap();
}

/// mosquitto with persistence in `dir`, on `port`, in the foreground.
pub(crate) fn start_mosquitto(dir: &Path, port: u16) -> Option<std::process::Child> {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| Path::new(p).exists())?;
    let conf = dir.join("mosquitto.conf");
    // `user root`: mosquitto started as root would otherwise switch to its
    // own user, which cannot write the persistence file in `dir`.
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_queued_messages 0\nautosave_interval 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    wait_listening(port);
    Some(child)
}

pub(crate) fn terminate(child: &mut std::process::Child) {
    // SIGTERM: mosquitto saves its persistence file on the way out.
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_mid_stream_loses_no_qos1_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut broker) = start_mosquitto(dir.path(), port) else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    let env = env();
    let config = source_config(port, "line/+", serde_json::json!({"clientid": "weir-restart", "qos": 1}));
    let (mut rx, _stop, _task) = start_source(&env, config, 4);
    let mut publisher = Publisher::new(port, "pub-restart");
    let mut got = wait_subscribed(&publisher, "line/probe", &mut rx).await;

    for i in 0..60 {
        publisher.publish("line/a", rumqttc::QoS::AtLeastOnce, i.to_string()).await;
    }
    publisher.wait_acked(60).await;
    collect_until(&mut rx, &mut got, |g| numbers(g).len() >= 10).await;

    terminate(&mut broker);
    let mut broker = start_mosquitto(dir.path(), port).expect("mosquitto restarts");
    let mut publisher = Publisher::new(port, "pub-restart-2");
    for i in 60..120 {
        publisher.publish("line/a", rumqttc::QoS::AtLeastOnce, i.to_string()).await;
    }
    publisher.wait_acked(60).await;

    collect_until(&mut rx, &mut got, |g| numbers(g).len() >= 120).await;
    assert_eq!(numbers(&got), (0..120).collect::<BTreeSet<_>>());
    terminate(&mut broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_hands_the_stream_no_redelivery_twice() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut broker) = start_mosquitto(dir.path(), port) else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    let env = env();
    for qos in [1, 2] {
        let config =
            source_config(port, "dup/+", serde_json::json!({"clientid": format!("weir-dup-{qos}"), "qos": qos}));
        let (mut rx, stop, task) = start_source(&env, config, 4);
        let mut publisher = Publisher::new(port, &format!("pub-dup-{qos}"));
        let mut got = wait_subscribed(&publisher, "dup/probe", &mut rx).await;
        let q = if qos == 1 { rumqttc::QoS::AtLeastOnce } else { rumqttc::QoS::ExactlyOnce };
        for i in 0..200 {
            publisher.publish("dup/a", q, i.to_string()).await;
        }
        publisher.wait_acked(200).await;
        // Most of it waits, taken but not acknowledged, when the broker
        // goes: the broker sends it all again (DUP) on the resumed session.
        collect_until(&mut rx, &mut got, |g| numbers(g).len() >= 10).await;
        terminate(&mut broker);
        broker = start_mosquitto(dir.path(), port).expect("mosquitto restarts");
        collect_until(&mut rx, &mut got, |g| numbers(g).len() >= 200).await;
        // Late copies would come now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok(more) = rx.try_recv() {
            got.extend(more.into_iter().filter(|p| text(p) != "\"probe\""));
        }
        let mut seen = std::collections::BTreeMap::new();
        for n in got.iter().filter_map(|p| text(p).parse::<i64>().ok()) {
            *seen.entry(n).or_insert(0) += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
        assert!(twice.is_empty(), "QoS {qos}: handed twice: {twice:?}");
        assert_eq!(seen.len(), 200);
        stop.send_replace(true);
        let _ = task.await;
    }
    terminate(&mut broker);
}

#[test]
fn source_config_reads_conf_key_and_extra() {
    let e = env();
    e.load_source_yaml(
        "mqtt",
        "default:\n  qos: 1\n  server: tcp://127.0.0.1:1883\nplant:\n  server: tcp://broker:1884\n  username: u\n",
    )
    .unwrap();
    let def = weir_planner::StreamDef {
        name: "s".into(),
        kind: weir_planner::StreamKind::Stream,
        fields: None,
        options: weir_planner::StreamOptions {
            datasource: Some("a,b/+".into()),
            conf_key: Some("plant".into()),
            extra: Some(r#"{"QoS": 2, "ClientID": "c1"}"#.into()),
            ..Default::default()
        },
        sql: String::new(),
    };
    let c = SourceConfig::new(&def, &e, "mqtt", None).unwrap();
    assert_eq!(c.filters, ["a", "b/+"]);
    assert_eq!(c.qos, 2);
    let expect = ConnConfig { host: "broker".into(), port: 1884, username: Some("u".into()), ..c.conn.clone() };
    assert_eq!(c.conn, expect);
    assert_eq!(c.conn.client_id.as_deref(), Some("c1"));
    assert!(!c.conn.clean_session);
}
