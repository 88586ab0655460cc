//! The eKuiper-compatible REST API (EKUIPER_COMPAT.md §1) over a [`Node`].
//!
//! Success bodies are eKuiper's plain-text sentences or JSON; errors are
//! [`error::ApiError`]s. Request bodies are read with a size limit, and
//! every failure is an error response: bad input never panics a worker.

mod cluster;
mod error;
mod metrics;
mod plugins;
mod rules;
mod streams;
mod tables;

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BodyStream, MessageBody as _};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};

pub(crate) use error::ApiError;

use crate::error::code;
use crate::node::Node;

/// Largest request body accepted, bytes.
pub(crate) const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Serves the API for `node` on `bind` until the process is told to stop
/// (SIGINT/SIGTERM), then stops the rules so their sinks flush. Prints
/// `weir: REST API on http://<addr>` to stdout once listening, so callers
/// that bind port 0 learn the port.
///
/// # Errors
/// The address cannot be bound.
pub(crate) async fn serve(node: Arc<Node>, bind: &str, workers: usize) -> std::io::Result<()> {
    let data = web::Data::from(node.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(workers.max(1))
        .shutdown_timeout(5)
        .client_request_timeout(Duration::from_secs(300))
        .bind(bind)?;
    for addr in server.addrs() {
        println!("weir: REST API on http://{addr}");
    }
    if let Some(addr) = server.addrs().first() {
        node.set_rest_url(format!("http://{addr}"));
    }
    let _ = std::io::stdout().flush();
    server.run().await?;
    node.shutdown().await;
    Ok(())
}

/// Every route of the API.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/ping", web::get().to(ping))
        .route("/metrics", web::get().to(metrics::metrics));
    streams::routes(cfg);
    tables::routes(cfg);
    rules::routes(cfg);
    plugins::routes(cfg);
    cluster::routes(cfg);
    cfg.default_service(web::to(not_found));
}

/// `GET /`: version and platform.
async fn root(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "upTimeSeconds": node.uptime_secs(),
    }))
}

/// `GET /ping`: 200, empty.
async fn ping() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Go's answer for an unknown path.
async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("404 page not found\n")
}

/// A plain-text success body.
pub(crate) fn text(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(body)
}

/// Reads a request body of at most [`BODY_LIMIT`] bytes. A larger body is
/// read on (up to a few times the limit, then the connection is dropped)
/// so the client gets the 413 instead of a reset connection.
pub(crate) async fn read_body(payload: web::Payload) -> Result<Bytes, ApiError> {
    let mut stream = BodyStream::new(payload);
    let mut body = web::BytesMut::new();
    let mut seen = 0usize;
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await;
        match next {
            None => break,
            Some(Ok(chunk)) => {
                seen += chunk.len();
                if seen > 4 * BODY_LIMIT {
                    break;
                }
                if seen <= BODY_LIMIT {
                    body.extend_from_slice(&chunk);
                }
            }
            Some(Err(e)) => return Err(ApiError::with_code(code::IO, "Invalid body", e)),
        }
    }
    if seen > BODY_LIMIT {
        return Err(ApiError::too_large(BODY_LIMIT));
    }
    Ok(body.freeze())
}
