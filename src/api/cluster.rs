//! `/cluster`: form and inspect a cluster of weir nodes (weir's own routes;
//! eKuiper has no cluster). The node must run with `--cluster-listen`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{read_body, text, ApiError};
use crate::error::code;
use crate::node::Node;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cluster/init", web::post().to(init))
        .route("/cluster/join", web::post().to(join))
        .route("/cluster/leave", web::post().to(leave))
        .route("/cluster/remove", web::post().to(remove))
        .route("/cluster/status", web::get().to(status));
}

fn not_clustered() -> ApiError {
    ApiError::with_code(
        code::UNDEFINED,
        "",
        "this node does not run as a cluster node (start it with --cluster-listen)",
    )
}

fn failed(e: weir_cluster::Error) -> ApiError {
    ApiError::with_code(code::UNDEFINED, "cluster", e)
}

/// `POST /cluster/init`: a new one-node cluster led by this node.
async fn init(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let c = node.cluster().ok_or_else(not_clustered)?;
    c.init().await.map_err(failed)?;
    Ok(text(StatusCode::OK, format!("node {} started a cluster on {}", c.id(), c.local_addr())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    /// Cluster address of any member.
    addr: String,
}

/// `POST /cluster/join {"addr"}`: joins the cluster of the member at `addr`.
async fn join(node: web::Data<Node>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let c = node.cluster().ok_or_else(not_clustered)?;
    let body = read_body(payload).await?;
    let req: JoinRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::with_code(code::UNDEFINED, "Invalid body", e))?;
    c.join(&req.addr).await.map_err(failed)?;
    Ok(text(StatusCode::OK, format!("node {} joined the cluster of {}", c.id(), req.addr)))
}

/// `POST /cluster/leave`: leaves the cluster; its rules move elsewhere.
async fn leave(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let c = node.cluster().ok_or_else(not_clustered)?;
    c.leave().await.map_err(failed)?;
    Ok(text(StatusCode::OK, format!("node {} left the cluster", c.id())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveRequest {
    /// Id of the member to remove.
    id: u64,
}

/// `POST /cluster/remove {"id"}`: removes a member that is gone for good.
async fn remove(node: web::Data<Node>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let c = node.cluster().ok_or_else(not_clustered)?;
    let body = read_body(payload).await?;
    let req: RemoveRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::with_code(code::UNDEFINED, "Invalid body", e))?;
    c.remove(req.id).await.map_err(failed)?;
    Ok(text(StatusCode::OK, format!("node {} is removed from the cluster", req.id)))
}

/// `GET /cluster/status`: members, leader, term, replication progress and
/// where each rule runs.
async fn status(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let c = node.cluster().ok_or_else(not_clustered)?;
    Ok(HttpResponse::Ok().json(c.status().await.map_err(failed)?))
}
