//! A stand-in for a Neuron gateway's HTTP API: it accepts the write
//! requests weir's `neuron` sink sends (`POST /api/v2/write` with
//! `{"node","group","tag","value"}`, `POST /api/v2/write/tags` with
//! `{"node","group","tags":[{"tag","value"}]}`), answers `{"error":0}` as
//! Neuron does, reports each write to the display and applies gas-flow set
//! points to the simulated furnace (`node` names the furnace).

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use super::display::Event;
use super::line::{SetPoints, NOMINAL_GAS};

/// The tag the control rule writes.
pub(super) const SET_POINT_TAG: &str = "gas_flow_sp";
/// The advisory tag the AI advisor writes (shown, not applied).
pub(super) const ADVICE_TAG: &str = "gas_flow_ai";

struct State {
    events: UnboundedSender<Event>,
    set_points: SetPoints,
}

/// Starts the endpoint on a free local port; returns the server (to be
/// spawned and stopped by the caller) and its base URL.
pub(super) fn start(
    events: UnboundedSender<Event>,
    set_points: SetPoints,
) -> std::io::Result<(actix_web::dev::Server, String)> {
    let state = web::Data::new(State { events, set_points });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/api/v2/write", web::post().to(write))
            .route("/api/v2/write/tags", web::post().to(write))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))?;
    let url = format!("http://{}", server.addrs()[0]);
    Ok((server.run(), url))
}

async fn write(req: actix_web::HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        // Neuron's code for a body it cannot parse.
        return HttpResponse::BadRequest().json(serde_json::json!({"error": 1003}));
    };
    let node = v["node"].as_str().unwrap_or_default().to_string();
    let group = v["group"].as_str().unwrap_or_default().to_string();
    let tags: Vec<(String, Value)> = match v.get("tags").and_then(Value::as_array) {
        Some(list) => {
            list.iter().filter_map(|t| Some((t["tag"].as_str()?.to_string(), t.get("value")?.clone()))).collect()
        }
        None => v["tag"].as_str().map(|t| vec![(t.to_string(), v["value"].clone())]).unwrap_or_default(),
    };
    for (tag, value) in tags {
        let mut previous = None;
        if let (SET_POINT_TAG, Some(sp)) = (tag.as_str(), value.as_f64()) {
            let mut points = state.set_points.lock().unwrap_or_else(|e| e.into_inner());
            // A real burner has limits; so has the simulated one.
            previous = Some(points.insert(node.clone(), sp.clamp(2.0, 20.0)).unwrap_or(NOMINAL_GAS));
        }
        let _ = state.events.send(Event::Write {
            path: req.path().to_string(),
            node: node.clone(),
            group: group.clone(),
            tag,
            value,
            previous,
        });
    }
    HttpResponse::Ok().json(serde_json::json!({"error": 0}))
}
