//! W4 (issue 4 item 7): mosquitto → weir filter rule → mosquitto, against
//! mosquitto pass-through (publisher straight to subscriber) measured in
//! the same run, at QoS 0 and QoS 1; then end-to-end latency (p50/p99) at
//! a paced 10,000 msg/s through both paths.
//!
//! One mosquitto (temporary config on a free 127.0.0.1 port) carries both
//! paths; `weir serve` (this build's binary) runs the rule
//! `SELECT * FROM s WHERE temperature > 50` with an mqtt sink
//! (`sendSingle`, same QoS). Every reading is hot, so the rule forwards
//! every message and both paths deliver the same count. Publisher and
//! subscriber are rumqttc clients in this process (not `mosquitto_pub -l`,
//! which breaks above 65,535 lines at QoS >= 1).
//!
//! `cargo bench --bench w4` runs the full sizes; `-- --test` (CI) a small
//! smoke run. Needs mosquitto (`scripts/setup.sh`); skips without it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// One 127.0.0.1 mosquitto, SIGTERM on drop.
struct Mosquitto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_mosquitto(dir: &Path) -> Option<Mosquitto> {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| Path::new(p).exists())?;
    let port = free_port();
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             max_queued_messages 0\n",
            if root { "user root\n" } else { "" },
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
    Some(Mosquitto { child, port })
}

/// `weir serve` on a free port; killed on drop.
struct Weir {
    child: std::process::Child,
    url: String,
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_weir(dir: &Path, broker: u16) -> Weir {
    use std::io::BufRead as _;
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    // A persistent session for the rule's source: QoS 1 acks are manual.
    std::fs::write(
        etc.join("mqtt_source.yaml"),
        format!("default:\n  server: tcp://127.0.0.1:{broker}\n  qos: 1\n  clientid: weir-w4\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--etc-dir")
        .arg(&etc)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("weir serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut url = None;
    for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(u) = line.strip_prefix("weir: REST API on ") {
            url = Some(u.trim().to_string());
            break;
        }
    }
    Weir { child, url: url.expect("weir printed its address") }
}

fn qos_of(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// Microseconds since the bench started (payload timestamps).
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// A subscriber on `topic`: sends (arrival µs, sent µs) per message; the
/// returned future resolves once subscribed.
async fn subscriber(port: u16, id: &str, topic: &str, qos: u8, start: Instant) -> mpsc::UnboundedReceiver<(u64, u64)> {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60)).set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 10_000);
    client.subscribe(topic, qos_of(qos)).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = micros(start);
                    let sent = ts_of(&p.payload).unwrap_or(now);
                    if tx.send((now, sent)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    ready_rx.await.unwrap();
    rx
}

/// The `"ts":<µs>` field, without a JSON parse on the hot path.
fn ts_of(payload: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(payload).ok()?;
    let i = s.find("\"ts\":")? + 5;
    let digits: String = s[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn payload(seq: u64, ts: u64) -> Vec<u8> {
    format!(r#"{{"device":"furnace-{}","seq":{seq},"temperature":72.5,"pressure":1.013,"ts":{ts}}}"#, seq % 16)
        .into_bytes()
}

/// A publisher; at QoS 1 rumqttc keeps up to 100 publishes in flight.
fn publisher(port: u16, id: &str) -> AsyncClient {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60)).set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 10_000);
    tokio::spawn(async move {
        loop {
            // Errors end the loop: the run is over (or it reports a
            // shortfall at the subscriber).
            if el.poll().await.is_err() {
                return;
            }
        }
    });
    client
}

/// Publishes `n` messages as fast as possible to `in_topic` and times
/// until `n` arrived at `out_topic`: msg/s.
async fn throughput(port: u16, tag: &str, in_topic: &str, out_topic: &str, qos: u8, n: u64, start: Instant) -> f64 {
    let mut rx = subscriber(port, &format!("w4-sub-{tag}"), out_topic, qos, start).await;
    let client = publisher(port, &format!("w4-pub-{tag}"));
    let t0 = Instant::now();
    let in_topic = in_topic.to_string();
    let send = tokio::spawn(async move {
        for seq in 0..n {
            client.publish(in_topic.clone(), qos_of(qos), false, payload(seq, micros(start))).await.unwrap();
        }
        client
    });
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(_)) => got += 1,
            _ => panic!("{tag}: only {got} of {n} arrived"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = send.await;
    n as f64 / secs
}

/// The paced rate of the latency runs, msg/s.
const RATE: u64 = 10_000;

/// Paced at [`RATE`] for `secs`: end-to-end latency percentiles, µs.
async fn latency(
    port: u16,
    tag: &str,
    in_topic: &str,
    out_topic: &str,
    qos: u8,
    secs: u64,
    start: Instant,
) -> (u64, u64, u64) {
    let mut rx = subscriber(port, &format!("w4-lsub-{tag}"), out_topic, qos, start).await;
    let client = publisher(port, &format!("w4-lpub-{tag}"));
    let n = RATE * secs;
    let in_topic = in_topic.to_string();
    let send = tokio::spawn(async move {
        // Ticks of 1 ms, rate/1000 messages each.
        let per_tick = (RATE / 1000).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut seq = 0;
        while seq < n {
            tick.tick().await;
            for _ in 0..per_tick.min(n - seq) {
                client.publish(in_topic.clone(), qos_of(qos), false, payload(seq, micros(start))).await.unwrap();
                seq += 1;
            }
        }
        client
    });
    let mut lat = Vec::with_capacity(n as usize);
    while (lat.len() as u64) < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some((arrived, sent))) => lat.push(arrived.saturating_sub(sent)),
            _ => panic!("{tag}: only {} of {n} arrived", lat.len()),
        }
    }
    let _ = send.await;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (pct(0.50), pct(0.99), *lat.last().unwrap())
}

/// POSTs a JSON body to weir's REST API (on a throwaway runtime) and
/// expects 201.
fn rest(url: &str, path: &str, body: String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, text) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert!(status == 201, "POST {path}: {status} {text}");
}

/// Creates the stream and one filter rule per QoS: `w4/in/q<q>` →
/// `w4/out/q<q>`.
fn create_rules(weir: &Weir, broker: u16) {
    for q in [0u8, 1] {
        let stream = serde_json::json!({"sql": format!(
            "CREATE STREAM s{q} () WITH (DATASOURCE=\"w4/in/q{q}\", FORMAT=\"JSON\", CONF_KEY=\"default\")")});
        rest(&weir.url, "/streams", stream.to_string());
        let rule = serde_json::json!({"id": format!("w4q{q}"),
            "sql": format!("SELECT * FROM s{q} WHERE temperature > 50"),
            "actions": [{"mqtt": {"server": format!("tcp://127.0.0.1:{broker}"), "topic": format!("w4/out/q{q}"),
                "qos": q, "sendSingle": true}}]});
        rest(&weir.url, "/rules", rule.to_string());
    }
}

/// Publishes to `in_topic` until something comes out of `out_topic`.
async fn warm_up(port: u16, in_topic: &'static str, out_topic: &str, qos: u8, start: Instant) {
    let mut rx = subscriber(port, &format!("w4-warm-{out_topic}"), out_topic, qos, start).await;
    let client = publisher(port, &format!("w4-warm-pub-{out_topic}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        client.publish(in_topic, qos_of(qos), false, payload(0, micros(start))).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the rule on {in_topic} never delivered");
    }
    // Let the warm-up messages drain before measuring.
    while tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_ok() {}
}

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    let dir = tempfile::tempdir().unwrap();
    let broker_dir: PathBuf = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let Some(broker) = start_mosquitto(&broker_dir) else {
        eprintln!("w4: mosquitto not installed (scripts/setup.sh): skipped");
        return;
    };
    let weir = start_weir(dir.path(), broker.port);
    create_rules(&weir, broker.port);
    let port = broker.port;
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (n0, n1, lat_secs) = if test { (2_000, 1_000, 1) } else { (200_000, 100_000, 5) };
    rt.block_on(async {
        warm_up(port, "w4/in/q0", "w4/out/q0", 0, start).await;
        warm_up(port, "w4/in/q1", "w4/out/q1", 1, start).await;
        println!("W4  mosquitto {port}, weir {}; every reading passes the filter", weir.url);
        for (q, n) in [(0u8, n0), (1, n1)] {
            let pass = throughput(port, &format!("pt{q}"), "w4/pt", "w4/pt", q, n, start).await;
            let weir_rate = throughput(port, &format!("wr{q}"), &format!("w4/in/q{q}"), &format!("w4/out/q{q}"), q, n, start)
                .await;
            println!(
                "W4 QoS {q}: {n} msgs  pass-through {pass:>9.0} msg/s  weir {weir_rate:>9.0} msg/s  ratio {:.1}% (target >= 80%)",
                100.0 * weir_rate / pass
            );
        }
        for q in [0u8, 1] {
            let (p50, p99, max) = latency(port, &format!("lpt{q}"), "w4/lpt", "w4/lpt", q, lat_secs, start).await;
            println!("W4 latency QoS {q} pass-through @10k msg/s: p50 {p50} us  p99 {p99} us  max {max} us");
            let (p50, p99, max) =
                latency(port, &format!("lwr{q}"), &format!("w4/in/q{q}"), &format!("w4/out/q{q}"), q, lat_secs, start)
                    .await;
            println!(
                "W4 latency QoS {q} weir @10k msg/s: p50 {p50} us  p99 {p99} us  max {max} us (target p99 < 5000 us)"
            );
        }
    });
    drop(weir);
    drop(broker);
}
