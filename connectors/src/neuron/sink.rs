//! The `neuron` sink: write requests to Neuron, one per row, over MQTT or
//! Neuron's HTTP API (see the module doc of [`super`]).

use std::time::Duration;

use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::Value;

use super::{Uuids, WriteBuilder};
use crate::mqtt::sink::{Encoded, MqttSink, SinkConfig};
use crate::props::{invalid, Props};
use crate::{Environment, Result, SinkContext};

/// Writes rows back to Neuron.
pub(crate) enum NeuronSink {
    /// Through Neuron's MQTT app (`server` + `topic`).
    Mqtt(MqttSink),
    /// Through Neuron's HTTP API (`url`).
    Rest(RestWriter),
}

impl NeuronSink {
    /// `url` = `http(s)://...` selects the HTTP API; `server` (with the
    /// write `topic`) selects MQTT; `url` with `tcp://`/`ipc://` (NNG) is
    /// rejected.
    ///
    /// # Errors
    /// No transport, NNG, or invalid props.
    pub(crate) fn new(p: &Props, ctx: &SinkContext, env: &Environment) -> Result<NeuronSink> {
        let builder = WriteBuilder::new(p)?;
        if let Some(url) = p.str("url")?.filter(|u| !u.is_empty()) {
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                return Ok(NeuronSink::Rest(RestWriter::new(url, p, builder)?));
            }
            if p.get("server").is_none() {
                return Err(invalid(
                    "url",
                    format!("{url}: the NNG transport is not supported; use an http(s) url or server + topic (MQTT)"),
                ));
            }
        }
        if p.get("server").is_none() {
            return Err(invalid("url", "is required (http url of Neuron, or server + topic for MQTT)".into()));
        }
        let config = SinkConfig::new(p, env)?;
        let mut uuids = Uuids::new(p, &ctx.rule_id, ctx.index)?;
        let encode = Box::new(move |rows: &[Value]| {
            Ok(rows
                .iter()
                .filter_map(|row| builder.build(row).map(|r| (row, r)))
                .map(|(row, r)| Encoded {
                    payload: r.mqtt_body(&uuids.next_id()).to_string().into_bytes(),
                    data: row.clone(),
                })
                .collect())
        });
        Ok(NeuronSink::Mqtt(MqttSink::new(config, encode)))
    }
}

/// Posts write requests to Neuron's HTTP API.
pub(crate) struct RestWriter {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    builder: WriteBuilder,
}

impl RestWriter {
    fn new(url: &str, p: &Props, builder: WriteBuilder) -> Result<RestWriter> {
        let timeout = p.duration_ms("timeout")?.unwrap_or(5000);
        let insecure = p.bool("insecureSkipVerify")?.unwrap_or(false);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout))
            .tls_danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| invalid("url", e.to_string()))?;
        Ok(RestWriter {
            base: url.trim_end_matches('/').to_string(),
            token: p.str("token")?.filter(|t| !t.is_empty()).map(str::to_string),
            client,
            builder,
        })
    }

    async fn write(&self, rows: &[Value]) -> std::result::Result<(), SinkError> {
        for row in rows {
            let Some(req) = self.builder.build(row) else {
                continue;
            };
            let (path, body) = req.rest();
            let mut post = self.client.post(format!("{}{path}", self.base)).json(&body);
            if let Some(t) = &self.token {
                post = post.bearer_auth(t);
            }
            let resp = post.send().await.map_err(|e| SinkError(format!("neuron write: {e}")))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            // Neuron answers {"error": 0} on success, an error code otherwise.
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(serde_json::Value::as_i64))
                .unwrap_or(0);
            if !status.is_success() || code != 0 {
                return Err(SinkError(format!("neuron write {path}: HTTP {status}: {text}")));
            }
        }
        Ok(())
    }
}

impl Sink for NeuronSink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        match self {
            NeuronSink::Mqtt(s) => s.emit(rows),
            NeuronSink::Rest(w) => Box::pin(w.write(rows)),
        }
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        match self {
            NeuronSink::Mqtt(s) => s.close(),
            NeuronSink::Rest(_) => Box::pin(async {}),
        }
    }
}
