//! Real brokers and MQTT test clients for the end-to-end tests: mosquitto
//! started on a free port with a temporary configuration (killed on drop),
//! a subscriber that forwards what it receives, a publisher that counts
//! acknowledgements, and small HTTP servers standing in for sinks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A multi-threaded runtime for a test's MQTT clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The mosquitto binary, if installed (`scripts/setup.sh` installs it).
pub fn mosquitto_bin() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

/// A mosquitto process on 127.0.0.1:`port` with persistence in `dir`;
/// killed (SIGTERM, so it saves its sessions) when dropped.
pub struct Mosquitto {
    child: Option<std::process::Child>,
    dir: PathBuf,
    /// The listener port.
    pub port: u16,
}

impl Mosquitto {
    /// Starts mosquitto with its files in `root/broker`; `None` (and a note
    /// that the test is skipped) when it is not installed.
    pub fn start_in(root: &Path) -> Option<Mosquitto> {
        let dir = root.join("broker");
        std::fs::create_dir_all(&dir).ok()?;
        let broker = Mosquitto::start(&dir);
        if broker.is_none() {
            eprintln!("mosquitto not installed: skipped");
        }
        broker
    }

    /// Starts mosquitto on a free port; `None` when it is not installed.
    pub fn start(dir: &Path) -> Option<Mosquitto> {
        mosquitto_bin()?;
        let mut m = Mosquitto { child: None, dir: dir.to_path_buf(), port: crate::util::free_port() };
        m.spawn();
        Some(m)
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        // As root mosquitto would switch to its own user, which cannot
        // write the persistence file in a test's directory.
        let user = if is_root() { "user root\n" } else { "" };
        // WEIR_MOSQUITTO_LOG=<file>: every packet (ids, DUP flags) logged
        // there, to see what the broker sent and received in a failing run.
        let log = match std::env::var("WEIR_MOSQUITTO_LOG") {
            Ok(file) => format!("log_dest file {file}\nlog_type all\nlog_timestamp_format %H:%M:%S\n"),
            Err(_) => String::new(),
        };
        // max_queued_messages 0: no limit, so a slow or offline persistent
        // subscriber loses nothing (the default 1000 drops silently).
        std::fs::write(
            &conf,
            format!(
                "{user}{log}listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 max_queued_messages 0\nautosave_interval 1\n",
                self.port,
                self.dir.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new(mosquitto_bin().expect("installed"))
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        wait_listening(self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: mosquitto saves its persistence file on the way out.
            let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Stops mosquitto (saving sessions) and starts it again on the same
    /// port and persistence directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Waits until something accepts connections on `port`.
pub fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn qos_of(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

/// A subscriber forwarding (topic, payload) of what it receives. With
/// `persistent` its session survives disconnects (fixed id, clean session
/// off); it reconnects after errors and subscribes again when the broker
/// lost the session.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    _client: rumqttc::AsyncClient,
}

impl Subscriber {
    /// Connects and returns once the subscription is acknowledged.
    pub async fn start(port: u16, id: &str, filter: &str, qos: u8, persistent: bool) -> Subscriber {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30)).set_clean_session(!persistent);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = watch::channel(false);
        let (c, filter) = (client.clone(), filter.to_string());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) if !ack.session_present => {
                        let _ = c.subscribe(filter.clone(), qos_of(qos)).await;
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        subscribed_tx.send_replace(true);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(LIMIT, subscribed.wait_for(|s| *s)).await.expect("subscribed in time").unwrap();
        Subscriber { rx, _client: client }
    }

    /// The next message.
    pub async fn next(&mut self) -> (String, Vec<u8>) {
        tokio::time::timeout(LIMIT, self.rx.recv()).await.expect("a message in time").expect("subscriber runs")
    }

    /// The next message as JSON.
    pub async fn next_json(&mut self) -> serde_json::Value {
        let (topic, payload) = self.next().await;
        serde_json::from_slice(&payload).unwrap_or_else(|e| panic!("{topic}: not JSON ({e})"))
    }
}

/// A publisher counting acknowledged QoS >= 1 publishes; reconnects
/// after errors.
pub struct Publisher {
    client: rumqttc::AsyncClient,
    acked: watch::Receiver<u64>,
}

impl Publisher {
    /// A publisher with client id `id` (connects in the background). Its
    /// session is clean: publishes not acknowledged when the connection
    /// drops are not sent again (rumqttc clears them without a session).
    pub fn new(port: u16, id: &str) -> Publisher {
        Publisher::with_inflight(port, id, 100)
    }

    /// [`Publisher::new`] with at most `inflight` unacknowledged publishes.
    /// QoS 2 needs at most 20 against mosquitto: it takes no more
    /// unfinished QoS 2 publishes from a client (`max_inflight_messages`)
    /// and drops an MQTT 3.1.1 connection that sends more.
    pub fn with_inflight(port: u16, id: &str, inflight: u16) -> Publisher {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30)).set_inflight(inflight);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
        let (tx, acked) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_))) => {
                        tx.send_modify(|n| *n += 1)
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                }
            }
        });
        Publisher { client, acked }
    }

    /// Queues a publish.
    pub async fn publish(&self, topic: &str, qos: u8, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, qos_of(qos), false, payload.into()).await.unwrap();
    }

    /// QoS >= 1 publishes acknowledged so far.
    pub fn acked(&self) -> u64 {
        *self.acked.borrow()
    }

    /// Waits until `n` QoS >= 1 publishes were acknowledged in all.
    pub async fn wait_acked(&mut self, n: u64) {
        tokio::time::timeout(LIMIT, self.acked.wait_for(|a| *a >= n)).await.expect("acks in time").unwrap();
    }
}

/// A request an [`HttpRecorder`] received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `POST`, `PUT`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header, empty if none.
    pub authorization: String,
    /// The body.
    pub body: Vec<u8>,
}

/// An HTTP/1.1 server (keep-alive) that records every request and answers
/// `reply` after `delay` (a slow sink).
pub async fn http_recorder(reply: &'static str, delay: Duration) -> (u16, mpsc::UnboundedReceiver<Recorded>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)))
                            .map(|(_, v)| v.trim().to_string())
                            .unwrap_or_default()
                    };
                    let len: usize = header("content-length").parse().unwrap_or(0);
                    while buf.len() < head_end + 4 + len {
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end + 4..head_end + 4 + len].to_vec();
                    let mut first = head.lines().next().unwrap_or_default().split(' ');
                    let method = first.next().unwrap_or_default().to_string();
                    let path = first.next().unwrap_or_default().to_string();
                    buf.drain(..head_end + 4 + len);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let _ = tx.send(Recorded { method, path, authorization: header("authorization"), body });
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
