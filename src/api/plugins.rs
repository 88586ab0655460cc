//! Models, plugins and services: eKuiper's `/plugins/portables` routes for
//! Python plugins, and weir's own `/models` (ONNX), `/plugins/native`
//! (C/C++ model libraries) and `/services` (HTTP model services).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use weir_plugins::portable::PortablePlugin;
use weir_plugins::service::ServiceDef;
use weir_plugins::NativeDef;

use super::error::prefixed;
use super::{read_body, text, ApiError};
use crate::error::{code, Error};
use crate::node::Node;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/plugins/portables").route(web::get().to(list_portables)).route(web::post().to(create_portable)),
    )
    .service(
        web::resource("/plugins/portables/{name}")
            .route(web::get().to(describe_portable))
            .route(web::put().to(update_portable))
            .route(web::delete().to(delete_portable)),
    )
    .route("/plugins/portables/{name}/status", web::get().to(portable_status))
    .service(web::resource("/models").route(web::get().to(list_models)).route(web::post().to(create_model)))
    .service(web::resource("/models/{name}").route(web::get().to(describe_model)).route(web::delete().to(delete_model)))
    .service(web::resource("/plugins/native").route(web::get().to(list_natives)).route(web::post().to(create_native)))
    .service(
        web::resource("/plugins/native/{name}")
            .route(web::get().to(describe_native))
            .route(web::delete().to(delete_native)),
    )
    .service(web::resource("/services").route(web::get().to(list_services)).route(web::post().to(create_service)))
    .service(
        web::resource("/services/{name}")
            .route(web::get().to(describe_service))
            .route(web::delete().to(delete_service)),
    );
}

/// Decodes a JSON body, with the field at fault in the message.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::with_code(code::UNDEFINED, "Invalid body", e))
}

/// eKuiper's install request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InstallRequest {
    name: String,
    file: String,
    #[serde(default)]
    shell_paras: Vec<String>,
}

fn describe(p: &PortablePlugin) -> serde_json::Value {
    let m = p.meta();
    serde_json::json!({
        "name": p.name(),
        "version": m.version,
        "language": m.language,
        "executable": m.executable,
        "sources": m.sources,
        "sinks": m.sinks,
        "functions": m.functions,
    })
}

fn portable(node: &Node, name: &str) -> Result<std::sync::Arc<PortablePlugin>, ApiError> {
    node.extensions().portables().get(name).ok_or_else(|| ApiError::new("", &Error::not_found("portable plugin", name)))
}

/// `POST /plugins/portables {"name","file","shellParas"?}`.
async fn create_portable(node: web::Data<Node>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let req: InstallRequest = json_body(&read_body(payload).await?)?;
    let name = req.name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.install_portable(&req.name, &req.file, &req.shell_paras, false))
        .await
        .map_err(prefixed("create portable plugin error"))?;
    Ok(text(StatusCode::CREATED, format!("portable plugin {name} is created")))
}

/// `PUT /plugins/portables/{name}`: replaces the package and restarts it.
async fn update_portable(
    node: web::Data<Node>,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let req: InstallRequest = json_body(&read_body(payload).await?)?;
    if req.name != *name {
        return Err(ApiError::with_code(code::UNDEFINED, "", format!("name {} does not match the URL", req.name)));
    }
    portable(&node, &name)?;
    node.into_inner()
        .change_extensions(move |ext| ext.install_portable(&req.name, &req.file, &req.shell_paras, true))
        .await
        .map_err(prefixed("update portable plugin error"))?;
    Ok(text(StatusCode::OK, format!("portable plugin {name} is updated")))
}

/// `GET /plugins/portables`.
async fn list_portables(node: web::Data<Node>) -> HttpResponse {
    let ps = node.extensions().portables();
    let list: Vec<_> = ps.names().iter().filter_map(|n| ps.get(n)).map(|p| describe(&p)).collect();
    HttpResponse::Ok().json(list)
}

/// `GET /plugins/portables/{name}`.
async fn describe_portable(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let p = portable(&node, &name)?;
    Ok(HttpResponse::Ok().json(describe(&p)))
}

/// `GET /plugins/portables/{name}/status`.
async fn portable_status(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(portable(&node, &name)?.status()))
}

/// `DELETE /plugins/portables/{name}`.
async fn delete_portable(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let n = name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.portables().uninstall(&n).map_err(Into::into))
        .await
        .map_err(prefixed("delete portable plugin error"))?;
    Ok(text(StatusCode::OK, format!("portable plugin {name} is deleted")))
}

/// `POST /services`: a model service (see `weir_plugins::service`).
async fn create_service(node: web::Data<Node>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let def: ServiceDef = json_body(&read_body(payload).await?)?;
    let name = def.name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.register_service(def))
        .await
        .map_err(prefixed("create service error"))?;
    Ok(text(StatusCode::CREATED, format!("service {name} is created")))
}

/// `GET /services`.
async fn list_services(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(node.extensions().services().list())
}

/// `GET /services/{name}`.
async fn describe_service(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let def = node.extensions().services().list().into_iter().find(|d| d.name == *name);
    def.map(|d| HttpResponse::Ok().json(d)).ok_or_else(|| ApiError::new("", &Error::not_found("service", &name)))
}

/// `DELETE /services/{name}`.
async fn delete_service(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let n = name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.remove_service(&n))
        .await
        .map_err(prefixed("delete service error"))?;
    Ok(text(StatusCode::OK, format!("service {name} is deleted")))
}

/// `{"name", "file"}` of a model file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRequest {
    name: String,
    file: String,
}

/// `POST /models {"name","file"}`: an ONNX model, then `infer('<name>', ...)`.
async fn create_model(node: web::Data<Node>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let req: FileRequest = json_body(&read_body(payload).await?)?;
    let name = req.name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.register_model(&req.name, &req.file))
        .await
        .map_err(prefixed("create model error"))?;
    Ok(text(StatusCode::CREATED, format!("model {name} is created")))
}

/// `GET /models`: each model's inputs and outputs.
async fn list_models(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(node.extensions().models())
}

/// `GET /models/{name}`.
async fn describe_model(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let m = node.extensions().models().into_iter().find(|m| m.name == *name);
    m.map(|m| HttpResponse::Ok().json(m)).ok_or_else(|| ApiError::new("", &Error::not_found("model", &name)))
}

/// `DELETE /models/{name}`.
async fn delete_model(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let n = name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.remove_model(&n))
        .await
        .map_err(prefixed("delete model error"))?;
    Ok(text(StatusCode::OK, format!("model {name} is deleted")))
}

/// `POST /plugins/native` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeRequest {
    name: String,
    file: String,
    #[serde(default)]
    prefix: String,
    /// Handed to `weir_model_init` as JSON text.
    #[serde(default)]
    config: Option<serde_json::Value>,
}

fn native_json(def: &NativeDef, functions: &[String]) -> serde_json::Value {
    serde_json::json!({"name": def.name, "prefix": def.prefix, "config": def.config, "functions": functions})
}

/// `POST /plugins/native {"name","file","prefix"?,"config"?}`: a C/C++
/// model library (`plugins/include/weir_model.h`).
async fn create_native(node: web::Data<Node>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let req: NativeRequest = json_body(&read_body(payload).await?)?;
    let config = req.config.map(|c| c.to_string()).unwrap_or_else(|| "{}".into());
    let def = NativeDef { name: req.name.clone(), prefix: req.prefix, config };
    let name = req.name;
    node.into_inner()
        .change_extensions(move |ext| ext.register_native(def, &req.file))
        .await
        .map_err(prefixed("create native library error"))?;
    Ok(text(StatusCode::CREATED, format!("native library {name} is created")))
}

/// `GET /plugins/native`.
async fn list_natives(node: web::Data<Node>) -> HttpResponse {
    let list: Vec<_> = node.extensions().natives().iter().map(|(d, f)| native_json(d, f)).collect();
    HttpResponse::Ok().json(list)
}

/// `GET /plugins/native/{name}`.
async fn describe_native(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let found = node.extensions().natives().into_iter().find(|(d, _)| d.name == *name);
    found
        .map(|(d, f)| HttpResponse::Ok().json(native_json(&d, &f)))
        .ok_or_else(|| ApiError::new("", &Error::not_found("native library", &name)))
}

/// `DELETE /plugins/native/{name}`.
async fn delete_native(node: web::Data<Node>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let n = name.clone();
    node.into_inner()
        .change_extensions(move |ext| ext.remove_native(&n))
        .await
        .map_err(prefixed("delete native library error"))?;
    Ok(text(StatusCode::OK, format!("native library {name} is deleted")))
}
