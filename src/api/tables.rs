//! `/tables` and `/tabledetails`: the stream handlers with the table kind,
//! plus `GET /tables?kind=scan|lookup`.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use weir_planner::StreamKind;

use super::streams;
use crate::node::Node;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    let kind = StreamKind::Table;
    cfg.service(
        web::resource("/tables")
            .route(web::get().to(list))
            .route(web::post().to(move |node, body| streams::create(node, body, kind))),
    );
    streams::item_routes(cfg, "/tables/{name}", kind);
    cfg.route(
        "/tabledetails",
        web::get().to(move |node: web::Data<Node>| async move { streams::details(&node, kind) }),
    );
}

/// `GET /tables[?kind=scan|lookup]`.
async fn list(node: web::Data<Node>, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    match query.get("kind").map(|k| k.to_ascii_lowercase()) {
        Some(k) if k == "lookup" => HttpResponse::Ok().json(node.table_names_of_kind(true)),
        Some(k) if k == "scan" => HttpResponse::Ok().json(node.table_names_of_kind(false)),
        _ => streams::list(&node, StreamKind::Table),
    }
}
