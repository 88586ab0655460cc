//! The `neuron` sink: write requests to Neuron, one per row, over MQTT or
//! Neuron's HTTP API (see the module doc of [`super`]).
//!
//! It runs behind the common sink layer: requests are built from each
//! message's data ([`Outgoing::value`], after `dataTemplate` and
//! `fields`), one per row of it.

use std::time::Duration;

use weir_runtime::connector::{BoxFuture, SinkError};
use weir_runtime::Value;

use super::{Request, Uuids, WriteBuilder};
use crate::mqtt::sink::{MqttSink, SinkConfig};
use crate::props::{invalid, Props};
use crate::transform::{Outgoing, SinkConnector};
use crate::{Environment, Result, SinkContext};

/// Writes rows back to Neuron.
pub(crate) struct NeuronSink {
    builder: WriteBuilder,
    transport: Transport,
}

enum Transport {
    /// Through Neuron's MQTT app (`server` + `topic`).
    Mqtt { sink: Box<MqttSink>, uuids: Uuids },
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
                return Ok(NeuronSink { builder, transport: Transport::Rest(RestWriter::new(url, p)?) });
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
        let sink = Box::new(MqttSink::new(SinkConfig::new(p, env)?));
        let uuids = Uuids::new(p, &ctx.rule_id, ctx.index)?;
        Ok(NeuronSink { builder, transport: Transport::Mqtt { sink, uuids } })
    }

    async fn write(&mut self, msg: &Outgoing) -> std::result::Result<(), SinkError> {
        // Each row is its own request (eKuiper's neuron sink).
        let rows: Vec<&Value> = match &msg.value {
            Value::Array(rows) => rows.iter().collect(),
            v => vec![v],
        };
        for row in rows {
            let Some(req) = self.builder.build(row).map_err(SinkError)? else {
                continue;
            };
            match &mut self.transport {
                Transport::Mqtt { sink, uuids } => {
                    let topic = sink.topic(row)?;
                    let body = match (&req, &msg.value) {
                        // `raw` with a dataTemplate: its output as it is.
                        (Request::Raw(_), Value::String(_)) => msg.bytes.clone(),
                        _ => req.mqtt_body(&uuids.next_id()).to_string().into_bytes(),
                    };
                    sink.send(topic, body).await?;
                }
                Transport::Rest(w) => w.write(&req).await?,
            }
        }
        Ok(())
    }
}

impl SinkConnector for NeuronSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(self.write(msg))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        match &mut self.transport {
            Transport::Mqtt { sink, .. } => Box::pin(sink.shut_down()),
            Transport::Rest(_) => Box::pin(async {}),
        }
    }
}

/// Posts write requests to Neuron's HTTP API.
pub(crate) struct RestWriter {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl RestWriter {
    fn new(url: &str, p: &Props) -> Result<RestWriter> {
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
        })
    }

    async fn write(&self, req: &Request) -> std::result::Result<(), SinkError> {
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
        Ok(())
    }
}
