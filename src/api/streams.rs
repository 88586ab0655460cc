//! `/streams` and `/streamdetails`; the same handlers serve `/tables`
//! (see [`super::tables`]) with the kind fixed by the route.

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::HttpResponse;
use serde_json::Value;
use weir_planner::StreamKind;

use super::error::{prefixed, ApiError};
use super::{read_body, text};
use crate::error::code;
use crate::node::{Node, Outcome};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    let kind = StreamKind::Stream;
    cfg.service(
        web::resource("/streams")
            .route(web::get().to(move |node: web::Data<Node>| async move { list(&node, kind) }))
            .route(web::post().to(move |node, body| create(node, body, kind))),
    );
    item_routes(cfg, "/streams/{name}", kind);
    cfg.route("/streamdetails", web::get().to(move |node: web::Data<Node>| async move { details(&node, kind) }));
}

/// `GET|PUT|DELETE <base>/{name}` for `kind`.
pub(super) fn item_routes(cfg: &mut web::ServiceConfig, path: &str, kind: StreamKind) {
    cfg.service(
        web::resource(path)
            .route(web::get().to(move |node, name| describe(node, name, kind)))
            .route(web::put().to(move |node, name, body| replace(node, name, body, kind)))
            .route(web::delete().to(move |node, name, query| drop_stream(node, name, query, kind))),
    );
}

fn command_error(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Stream => "Stream command error",
        StreamKind::Table => "Table command error",
    }
}

/// `GET /streams`: the names, `[]` when there are none.
pub(super) fn list(node: &Node, kind: StreamKind) -> HttpResponse {
    HttpResponse::Ok().json(node.stream_names(kind))
}

/// `GET /streamdetails`.
pub(super) fn details(node: &Node, kind: StreamKind) -> HttpResponse {
    HttpResponse::Ok().json(node.stream_details(kind))
}

/// The `sql` of a `{"sql": "..."}` body.
fn sql_of(body: &[u8]) -> Result<String, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::with_code(code::UNDEFINED, "Invalid body", e))?;
    match v.as_object().and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case("sql"))).map(|(_, v)| v) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(ApiError::with_code(code::UNDEFINED, "Invalid body", "expected {\"sql\": \"CREATE ...\"}")),
    }
}

/// `POST /streams` `{"sql": ...}`: runs the statement (any DDL).
pub(super) async fn create(
    node: web::Data<Node>,
    body: web::Payload,
    kind: StreamKind,
) -> Result<HttpResponse, ApiError> {
    let sql = sql_of(&read_body(body).await?)?;
    match node.exec_stream_sql(&sql).await.map_err(prefixed(command_error(kind)))? {
        Outcome::Text(t) if t.ends_with("is created.") => Ok(text(StatusCode::CREATED, t)),
        Outcome::Text(t) => Ok(text(StatusCode::OK, t)),
        Outcome::Json(v) => Ok(HttpResponse::Ok().json(v)),
    }
}

/// `GET /streams/{name}`.
async fn describe(node: web::Data<Node>, name: web::Path<String>, kind: StreamKind) -> Result<HttpResponse, ApiError> {
    let prefix = match kind {
        StreamKind::Stream => "describe stream error",
        StreamKind::Table => "describe table error",
    };
    let v = node.describe_stream(kind, &name).map_err(prefixed(prefix))?;
    Ok(HttpResponse::Ok().json(v))
}

/// `PUT /streams/{name}` `{"sql": ...}`: create or replace.
async fn replace(
    node: web::Data<Node>,
    name: web::Path<String>,
    body: web::Payload,
    kind: StreamKind,
) -> Result<HttpResponse, ApiError> {
    let sql = sql_of(&read_body(body).await?)?;
    let t = node.replace_stream(kind, &name, &sql).await.map_err(prefixed(command_error(kind)))?;
    Ok(text(StatusCode::OK, t))
}

/// `DELETE /streams/{name}[?force=true]`.
async fn drop_stream(
    node: web::Data<Node>,
    name: web::Path<String>,
    query: web::Query<std::collections::HashMap<String, String>>,
    kind: StreamKind,
) -> Result<HttpResponse, ApiError> {
    let force = query.get("force").is_some_and(|f| f.eq_ignore_ascii_case("true"));
    let prefix = match kind {
        StreamKind::Stream => "delete stream error",
        StreamKind::Table => "delete table error",
    };
    let t = node.drop_stream(kind, &name, force).await.map_err(prefixed(prefix))?;
    Ok(text(StatusCode::OK, t))
}
