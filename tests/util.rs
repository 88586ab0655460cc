//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The `weir` binary built for these tests.
pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `weir serve` process on a free port, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl Server {
    /// Starts `weir serve --bind 127.0.0.1:0 --data-dir <data_dir>` and
    /// waits (up to 60 s) for it to print its address.
    pub fn start(data_dir: &std::path::Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// [`Server::start`] with more `weir serve` arguments.
    pub fn start_with(data_dir: &std::path::Path, args: &[&str]) -> Server {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(weir_bin())
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("weir serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("weir: REST API on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("weir serve did not print its address");
            }
        };
        Server { child, url }
    }

    /// Sends a request; returns status, body and content type.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        http(method, &format!("{}{path}", self.url), body.map(|b| b.as_bytes().to_vec()))
    }

    /// Kills the process (SIGKILL: no shutdown code runs) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST path body` to `server`, which must answer 201 Created.
pub fn created(server: &Server, path: &str, body: &str) {
    let r = server.call("POST", path, Some(body));
    assert_eq!(r.status, 201, "POST {path} {body}: {}", r.body);
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// `Content-Type`, empty if none.
    pub content_type: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP request (blocking).
pub fn http(method: &str, url: &str, body: Option<Vec<u8>>) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url).timeout(std::time::Duration::from_secs(60));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = resp.text().await.unwrap();
        Response { status, body, content_type }
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts an embedded rumqttd (MQTT v3.1.1) on `port` for the rest of the
/// test process and waits until it accepts connections.
pub fn start_rumqttd(port: u16) {
    let config = serde_json::json!({
        "id": 0,
        "router": {"max_connections": 1000, "max_outgoing_packet_count": 200,
            "max_segment_size": 104857600, "max_segment_count": 10},
        "v4": {"1": {"name": "v4", "listen": format!("127.0.0.1:{port}"), "next_connection_delay_ms": 1,
            "connections": {"connection_timeout_ms": 60000, "max_payload_size": 1048576,
                "max_inflight_count": 100, "dynamic_filters": true}}},
    });
    let config: rumqttd::Config = serde_json::from_value(config).unwrap();
    std::thread::spawn(move || {
        let _ = rumqttd::Broker::new(config).start();
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "broker on {port} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
