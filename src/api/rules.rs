//! `/rules`: CRUD, start/stop/restart, status, topology, validation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::error::{prefixed, ApiError};
use super::{read_body, text};
use crate::error::{code, Error};
use crate::node::Node;
use crate::rules::{status_body, summary, topo};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/rules/status/all", web::get().to(all_status))
        .route("/rules/validate", web::post().to(validate))
        .service(web::resource("/rules").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/rules/{id}")
                .route(web::get().to(show))
                .route(web::put().to(update))
                .route(web::delete().to(delete)),
        )
        .route("/rules/{id}/start", web::post().to(start))
        .route("/rules/{id}/stop", web::post().to(stop))
        .route("/rules/{id}/restart", web::post().to(restart))
        .route("/rules/{id}/status", web::get().to(status))
        .route("/v2/rules/{id}/status", web::get().to(status))
        .route("/rules/{id}/topo", web::get().to(get_topo));
}

/// `POST /rules`: 201 `Rule <id> was created successfully.`
async fn create(node: web::Data<Node>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_body(body).await?;
    let id = node.create_rule(&body).await.map_err(prefixed(""))?;
    Ok(text(StatusCode::CREATED, format!("Rule {id} was created successfully.")))
}

/// `GET /rules`: `[{"id","name","status","version","trace","tags"}]` by id.
async fn list(node: web::Data<Node>, req: actix_web::HttpRequest) -> HttpResponse {
    let remote = remote_summaries(&node, &req).await;
    let list: Vec<Value> = node
        .rule_states()
        .iter()
        .map(|st| {
            let status = remote.get(&st.def.id).and_then(|s| s["status"].as_str()).unwrap_or(st.status.as_str());
            serde_json::json!({
                "id": st.def.id,
                "name": st.def.display_name(),
                "status": status,
                "version": st.def.version,
                "trace": false,
                "tags": st.def.tags,
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// In a cluster, the status summaries of the rules that run on other
/// nodes, asked of those nodes (one request per node, not forwarded
/// again). A node that does not answer leaves its rules' local status.
async fn remote_summaries(node: &Node, req: &actix_web::HttpRequest) -> std::collections::HashMap<String, Value> {
    let mut out = std::collections::HashMap::new();
    if forwarded(req) {
        return out;
    }
    let homes = node.rule_homes().await;
    let urls: std::collections::BTreeSet<&String> = homes.values().collect();
    for url in urls {
        let Ok(resp) = ask_node(reqwest::Method::GET, &format!("{url}/rules/status/all"), 5).await else { continue };
        let Ok(all) = resp.json::<serde_json::Map<String, Value>>().await else { continue };
        out.extend(all.into_iter().filter(|(rule, _)| homes.get(rule) == Some(url)));
    }
    out
}

/// `GET /rules/{id}`: the stored rule JSON.
async fn show(node: web::Data<Node>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let st = node.rule_state(&id).map_err(prefixed("describe rule error"))?;
    Ok(HttpResponse::Ok().json(st.def.to_json()))
}

/// `PUT /rules/{id}`: 200 `Rule <id> was updated successfully.`
async fn update(node: web::Data<Node>, id: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_body(body).await?;
    node.update_rule(&id, &body).await.map_err(prefixed("update rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was updated successfully.")))
}

/// `DELETE /rules/{id}`: 200 `Rule <id> is dropped.`; an unknown id is a
/// 400 here (eKuiper), not a 404.
async fn delete(node: web::Data<Node>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    node.delete_rule(&id).await.map_err(|e| match e {
        Error::NotFound { .. } => {
            ApiError::with_code(code::UNDEFINED, "delete rule error", format!("rule {id} not found"))
        }
        e => ApiError::new("delete rule error", &e),
    })?;
    Ok(text(StatusCode::OK, format!("Rule {id} is dropped.")))
}

async fn start(node: web::Data<Node>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    node.start_rule(&id).await.map_err(prefixed("start rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was started")))
}

async fn stop(node: web::Data<Node>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    node.stop_rule(&id).await.map_err(prefixed("stop rule error"))?;
    Ok(text(StatusCode::OK, format!("Rule {id} was stopped.")))
}

async fn restart(
    node: web::Data<Node>,
    id: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    node.restart_rule(&id).await.map_err(prefixed("restart rule error"))?;
    // In a cluster the rule runs on one node: that node restarts it.
    if !forwarded(&req) {
        if let Some(url) = node.rule_home(&id).await {
            match ask_node(reqwest::Method::POST, &format!("{url}/rules/{id}/restart"), 30).await {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => {
                    let reason = resp.text().await.unwrap_or_default();
                    return Err(Error::Cluster(format!("node {url} could not restart the rule: {reason}")))
                        .map_err(prefixed("restart rule error"));
                }
                Err(e) => {
                    return Err(Error::Cluster(format!("node {url} running the rule did not answer: {e}")))
                        .map_err(prefixed("restart rule error"));
                }
            }
        }
    }
    Ok(text(StatusCode::OK, format!("Rule {id} was restarted")))
}

/// `GET /rules/{id}/status` (EKUIPER_COMPAT.md §1.3).
async fn status(
    node: web::Data<Node>,
    id: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let st = node.rule_state(&id).map_err(prefixed("get rule status error"))?;
    // In a cluster the rule runs on one node: ask that node (once).
    if !forwarded(&req) {
        if let Some(url) = node.rule_home(&id).await {
            if let Ok(resp) = ask_node(reqwest::Method::GET, &format!("{url}/rules/{id}/status"), 5).await {
                if resp.status().is_success() {
                    if let Ok(body) = resp.text().await {
                        return Ok(HttpResponse::Ok().content_type("application/json").body(body));
                    }
                }
            }
        }
    }
    Ok(HttpResponse::Ok().content_type("application/json").body(status_body(&st)))
}

/// Marks a request one node forwarded to another, so it is not forwarded again.
const FORWARDED: &str = "x-weir-forwarded";

/// Whether another node forwarded `req` (it is then answered here).
fn forwarded(req: &actix_web::HttpRequest) -> bool {
    req.headers().contains_key(FORWARDED)
}

/// Asks another node of the cluster (`url` is on its REST API), marked as
/// forwarded, waiting at most `timeout_secs`.
async fn ask_node(method: reqwest::Method, url: &str, timeout_secs: u64) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .request(method, url)
        .header(FORWARDED, "1")
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .send()
        .await
}

/// `GET /rules/status/all`: in a cluster, each rule as the node running it
/// reports it.
async fn all_status(node: web::Data<Node>, req: actix_web::HttpRequest) -> HttpResponse {
    let mut remote = remote_summaries(&node, &req).await;
    let all: serde_json::Map<String, Value> = node
        .rule_states()
        .iter()
        .map(|st| (st.def.id.clone(), remote.remove(&st.def.id).unwrap_or_else(|| summary(st))))
        .collect();
    HttpResponse::Ok().json(all)
}

/// `GET /rules/{id}/topo`.
async fn get_topo(node: web::Data<Node>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let st = node.rule_state(&id).map_err(prefixed("get rule topo error"))?;
    Ok(HttpResponse::Ok().json(topo(&st)))
}

/// `POST /rules/validate`: 200 `{"sources":[...],"valid":true}`, or 422
/// with the reason as plain text.
async fn validate(node: web::Data<Node>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let body = read_body(body).await?;
    match node.validate_rule(&body).await {
        Ok(sources) => Ok(HttpResponse::Ok().json(serde_json::json!({ "sources": sources, "valid": true }))),
        Err(e) => {
            let msg = e.to_string();
            let msg = if msg.starts_with("invalid rule json") { msg } else { format!("invalid rule json: {msg}") };
            Ok(text(StatusCode::UNPROCESSABLE_ENTITY, msg))
        }
    }
}
