//! The `httppush` source: weir serves an endpoint and devices post data
//! to it.
//!
//! As in eKuiper, one HTTP server per node carries every `httppush`
//! stream ([`PushServer`], in the [`crate::Environment`]; address from
//! `source.httpServerIp` / `source.httpServerPort` of `kuiper.yaml`,
//! default `0.0.0.0:10081`). It starts with the first running stream. A
//! stream's `DATASOURCE` is its path (it must start with `/`); its
//! `method` property (`etc/sources/httppush.yaml`, `EXTRA`) is `POST`
//! (default) or `PUT`.
//!
//! A request's body is one payload for the stream's `FORMAT` (with JSON,
//! one object or an array of objects). The server answers `200 ok` once
//! every rule reading the stream has taken the payload (`out.send`
//! returned), so a busy rule slows its clients down rather than dropping.
//! Unknown paths get 404, another method 405, a body when no rule is
//! running any more 503.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use weir_planner::StreamDef;
use weir_runtime::rule::{Source, SourceSender};

use crate::format::SourceFormat;
use crate::outlet::Outlet;
use crate::props::invalid;
use crate::{Environment, Result};

/// eKuiper's `source.httpServerPort`.
pub(crate) const DEFAULT_PORT: u16 = 10081;

/// Largest request body accepted, bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A body waiting for a stream, and where to say it was taken.
struct Pushed {
    body: Vec<u8>,
    taken: oneshot::Sender<()>,
}

struct Route {
    id: u64,
    path: String,
    method: actix_web::http::Method,
    tx: mpsc::Sender<Pushed>,
}

#[derive(Default)]
struct Inner {
    /// `None` until configured: the default address applies.
    addr: Option<SocketAddr>,
    /// The address the server listens on, once started.
    bound: Option<SocketAddr>,
    routes: Vec<Route>,
}

/// The node's HTTP data server. Cloning shares it.
#[derive(Clone, Default)]
pub struct PushServer {
    inner: Arc<Mutex<Inner>>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for PushServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("PushServer").field("addr", &inner.addr).field("routes", &inner.routes.len()).finish()
    }
}

/// A stream's registration; dropping it removes the route.
pub(crate) struct Endpoint {
    server: PushServer,
    id: u64,
    rx: mpsc::Receiver<Pushed>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.lock().routes.retain(|r| r.id != self.id);
    }
}

impl PushServer {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the address to listen on (before the first stream starts;
    /// later calls are ignored once the server runs).
    pub fn set_addr(&self, addr: SocketAddr) {
        self.lock().addr = Some(addr);
    }

    /// Where the server listens, once started (port 0 is resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().bound
    }

    /// Registers `path` for `method`, starting the server if needed.
    fn register(&self, path: &str, method: actix_web::http::Method) -> std::result::Result<Endpoint, String> {
        let mut inner = self.lock();
        if inner.bound.is_none() {
            let addr = inner.addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)));
            inner.bound = Some(start(self.clone(), addr)?);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // One body at a time per stream: the handler waits for the rule.
        let (tx, rx) = mpsc::channel(1);
        inner.routes.push(Route { id, path: path.to_string(), method, tx });
        Ok(Endpoint { server: self.clone(), id, rx })
    }

    /// Hands `body` to every stream on (`method`, `path`) and waits until
    /// each took it.
    async fn dispatch(&self, method: &actix_web::http::Method, path: &str, body: Vec<u8>) -> actix_web::HttpResponse {
        use actix_web::HttpResponse;
        let targets: Vec<mpsc::Sender<Pushed>> = {
            let inner = self.lock();
            let on_path: Vec<&Route> = inner.routes.iter().filter(|r| r.path == path).collect();
            if on_path.is_empty() {
                return HttpResponse::NotFound().body(format!("no httppush stream on {path}\n"));
            }
            let targets: Vec<_> = on_path.iter().filter(|r| r.method == *method).map(|r| r.tx.clone()).collect();
            if targets.is_empty() {
                return HttpResponse::MethodNotAllowed().body(format!("{path} takes {}\n", on_path[0].method));
            }
            targets
        };
        let mut delivered = 0;
        for tx in targets {
            let (taken, done) = oneshot::channel();
            if tx.send(Pushed { body: body.clone(), taken }).await.is_ok() && done.await.is_ok() {
                delivered += 1;
            }
        }
        if delivered == 0 {
            return HttpResponse::ServiceUnavailable().body("the stream's rules stopped\n");
        }
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
    }
}

/// Starts the server on its own thread (with its own actix system, so it
/// does not depend on the caller's runtime) and returns its address.
fn start(server: PushServer, addr: SocketAddr) -> std::result::Result<SocketAddr, String> {
    use actix_web::{web, App, HttpRequest, HttpServer};
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("weir-httppush".into())
        .spawn(move || {
            actix::System::new().block_on(async move {
                let http = HttpServer::new(move || {
                    let server = server.clone();
                    App::new().app_data(web::PayloadConfig::new(MAX_BODY)).default_service(web::to(
                        move |req: HttpRequest, body: web::Bytes| {
                            let server = server.clone();
                            async move { server.dispatch(req.method(), req.path(), body.to_vec()).await }
                        },
                    ))
                })
                .workers(1)
                .disable_signals()
                .bind(addr);
                let http = match http {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = bound_tx.send(Err(format!("httppush server cannot listen on {addr}: {e}")));
                        return;
                    }
                };
                let _ = bound_tx.send(Ok(http.addrs().first().copied().unwrap_or(addr)));
                if let Err(e) = http.run().await {
                    tracing::error!(error = %e, "httppush server stopped");
                }
            });
        })
        .map_err(|e| format!("cannot start the httppush server thread: {e}"))?;
    bound_rx.recv().map_err(|_| "the httppush server thread ended".to_string())?
}

/// An `httppush` stream.
pub(crate) struct HttpPushSource {
    server: PushServer,
    path: String,
    method: actix_web::http::Method,
    format: SourceFormat,
}

impl HttpPushSource {
    /// # Errors
    /// A `DATASOURCE` not starting with `/`, or a `method` other than
    /// POST or PUT.
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<HttpPushSource> {
        let p = env.source_props("httppush", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let path = def.options.datasource.as_deref().unwrap_or("").trim();
        if !path.starts_with('/') {
            return Err(invalid("DATASOURCE", format!("httppush needs a path starting with '/', got {path:?}")));
        }
        let method = match p.str("method")?.unwrap_or("post").to_ascii_uppercase().as_str() {
            "POST" => actix_web::http::Method::POST,
            "PUT" => actix_web::http::Method::PUT,
            other => return Err(invalid("method", format!("expects POST or PUT, got {other:?}"))),
        };
        Ok(HttpPushSource {
            server: env.http_push().clone(),
            path: path.to_string(),
            method,
            format: SourceFormat::of(def)?,
        })
    }

    /// Serves the endpoint until `out` stops.
    pub(crate) async fn pump(self, mut out: impl Outlet) {
        let mut endpoint = match self.server.register(&self.path, self.method.clone()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(path = %self.path, error = %e, "httppush source cannot start");
                return;
            }
        };
        loop {
            let pushed = tokio::select! {
                p = endpoint.rx.recv() => match p { Some(p) => p, None => return },
                _ = out.stopped() => return,
            };
            let payload = self.format.payload(pushed.body, out.now_ms(), None);
            if !out.send(vec![payload]).await {
                return;
            }
            let _ = pushed.taken.send(());
        }
    }
}

impl Source for HttpPushSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}

/// Route table lookups for tests.
#[cfg(test)]
impl PushServer {
    pub(crate) fn routes(&self) -> usize {
        self.lock().routes.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_runtime::row::PayloadData;

    use super::*;
    use crate::outlet::testing::channel;

    const LIMIT: Duration = Duration::from_secs(20);

    fn def(path: &str, extra: Option<&str>) -> StreamDef {
        StreamDef {
            name: "p".into(),
            kind: weir_planner::StreamKind::Stream,
            fields: None,
            options: weir_planner::StreamOptions {
                datasource: Some(path.into()),
                source_type: Some("httppush".into()),
                extra: extra.map(str::to_string),
                ..Default::default()
            },
            sql: String::new(),
        }
    }

    fn env() -> Environment {
        let env = Environment::new(std::env::temp_dir());
        env.http_push().set_addr(SocketAddr::from(([127, 0, 0, 1], 0)));
        env
    }

    async fn wait_routes(env: &Environment, n: usize) -> SocketAddr {
        tokio::time::timeout(LIMIT, async {
            while env.http_push().routes() != n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        env.http_push().local_addr().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_posts_and_replies_ok_after_the_rule_took_them() {
        let env = env();
        let (outlet, mut rx, stop) = channel(1);
        tokio::spawn(HttpPushSource::new(&def("/dev", None), &env).unwrap().pump(outlet));
        let addr = wait_routes(&env, 1).await;
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/dev");

        // The outlet holds one batch: the second post waits for the rule.
        let r = client.post(&url).body(r#"{"t":1}"#).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "ok".to_string()));
        let second = tokio::spawn(client.post(&url).body(r#"[{"t":2},{"t":3}]"#).send());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "a busy rule holds the client back");
        let first = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        let PayloadData::Bytes(b) = &first[0].data else { panic!("json is bytes") };
        assert_eq!(b, br#"{"t":1}"#);
        let r = tokio::time::timeout(LIMIT, second).await.unwrap().unwrap().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let next = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        let PayloadData::Bytes(b) = &next[0].data else { panic!("json is bytes") };
        assert_eq!(b, br#"[{"t":2},{"t":3}]"#);

        assert_eq!(client.get(&url).send().await.unwrap().status().as_u16(), 405);
        assert_eq!(client.post(format!("http://{addr}/nope")).send().await.unwrap().status().as_u16(), 404);
        stop.send(true).unwrap();
        wait_routes(&env, 0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_streams_and_fan_out_to_every_rule() {
        let env = env();
        let d = def("/put", Some(r#"{"method": "put"}"#));
        let (a, mut rx_a, _stop_a) = channel(4);
        let (b, mut rx_b, _stop_b) = channel(4);
        tokio::spawn(HttpPushSource::new(&d, &env).unwrap().pump(a));
        tokio::spawn(HttpPushSource::new(&d, &env).unwrap().pump(b));
        let addr = wait_routes(&env, 2).await;
        let client = reqwest::Client::new();
        let r = client.put(format!("http://{addr}/put")).body("{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(tokio::time::timeout(LIMIT, rx_a.recv()).await.unwrap().unwrap().len(), 1);
        assert_eq!(tokio::time::timeout(LIMIT, rx_b.recv()).await.unwrap().unwrap().len(), 1);
        assert_eq!(client.post(format!("http://{addr}/put")).send().await.unwrap().status().as_u16(), 405);
    }

    #[test]
    fn config_errors() {
        let env = env();
        assert!(HttpPushSource::new(&def("dev", None), &env).is_err(), "path must start with /");
        assert!(HttpPushSource::new(&def("/dev", Some(r#"{"method": "get"}"#)), &env).is_err());
    }
}
