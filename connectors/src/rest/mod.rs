//! The `rest` sink: one HTTP request per message.
//!
//! Properties (eKuiper's, plus two weir extensions):
//! * `url` (required; a template rendered against each message's data,
//!   like every dynamic property);
//! * `method`: `get` (eKuiper's default), `post`, `put` or `delete`;
//! * `bodyType`: `none`, `json`, `text`, `html`, `xml`, `javascript`,
//!   `form` or `binary`. The default is eKuiper's `none` for GET and
//!   DELETE; for POST and PUT it is `json`, so that eKuiper's documented
//!   `{"method": "post", "dataTemplate": ...}` actions send their body.
//!   The body is the message the common sink layer made (`dataTemplate`,
//!   `fields`, `format`); `form` encodes its map as
//!   `application/x-www-form-urlencoded`;
//! * `headers`: a map of templated values;
//! * `timeout` (ms, 5000) per request; `debugResp` logs response bodies;
//!   `insecureSkipVerify` accepts any TLS certificate;
//! * weir: `retryCount` (3) retries after transport errors and 5xx
//!   responses, waiting `retryInterval` (200 ms) doubled each time (at
//!   most 10 s). Any other non-2xx status fails the message at once.
//!
//! Exactly-once (`qos: 2`): every request carries the deterministic id of
//! its message ([`Outgoing::id`]) as an `Idempotency-Key` header, so a
//! server can drop the requests a restored rule sends again. A request is
//! one message: a whole emission (a window's rows) under the emission's id
//! `<rule>/<epoch>/<seq>`, or with `sendSingle` one row under
//! `<rule>/<epoch>/<seq>/<row>`. Both are fixed by the checkpoint, so a
//! re-sent epoch repeats them exactly. Bytes outside visible ASCII (a rule
//! id in another script) are percent-encoded. A configured
//! `Idempotency-Key` header wins over the generated one.

#[cfg(test)]
mod idempotency_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use weir_runtime::connector::{BoxFuture, SinkError};
use weir_runtime::Value;

use crate::props::{invalid, Props};
use crate::transform::{dynamic_prop, go_sprint, Outgoing, SinkConnector, Template};
use crate::Result;

/// Longest wait between retries.
const MAX_BACKOFF_MS: u64 = 10_000;

/// The header that carries a message's deterministic id.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    None,
    Json,
    Text,
    Html,
    Xml,
    Javascript,
    Form,
    Binary,
}

impl BodyType {
    fn parse(s: &str) -> Result<BodyType> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => BodyType::None,
            "json" => BodyType::Json,
            "text" => BodyType::Text,
            "html" => BodyType::Html,
            "xml" => BodyType::Xml,
            "javascript" => BodyType::Javascript,
            "form" => BodyType::Form,
            "binary" => BodyType::Binary,
            other => {
                return Err(invalid(
                    "bodyType",
                    format!(
                        "unsupported body type {other:?}; use none, json, text, html, xml, javascript, form or binary"
                    ),
                ))
            }
        })
    }

    fn content_type(self) -> Option<&'static str> {
        match self {
            BodyType::None => None,
            BodyType::Json => Some("application/json"),
            BodyType::Text => Some("text/plain"),
            BodyType::Html => Some("text/html"),
            BodyType::Xml => Some("application/xml"),
            BodyType::Javascript => Some("application/javascript"),
            BodyType::Form => Some("application/x-www-form-urlencoded"),
            BodyType::Binary => Some("application/octet-stream"),
        }
    }
}

/// Sends messages as HTTP requests.
pub(crate) struct RestSink {
    client: reqwest::Client,
    url: Template,
    method: reqwest::Method,
    body_type: BodyType,
    headers: Vec<(reqwest::header::HeaderName, Template)>,
    retry_count: u32,
    retry_interval_ms: u64,
    debug_resp: bool,
    /// The user set an `Idempotency-Key` header of their own.
    own_idempotency_key: bool,
}

impl RestSink {
    /// # Errors
    /// No `url`, an unsupported method or body type, a template or header
    /// name that does not parse.
    pub(crate) fn new(p: &Props) -> Result<RestSink> {
        let url = dynamic_prop("url", p.required_str("url")?)?;
        let method = match p.str("method")?.unwrap_or("get").to_ascii_lowercase().as_str() {
            "get" => reqwest::Method::GET,
            "post" => reqwest::Method::POST,
            "put" => reqwest::Method::PUT,
            "delete" => reqwest::Method::DELETE,
            other => {
                return Err(invalid("method", format!("unsupported method {other:?}; use get, post, put or delete")))
            }
        };
        let body_type = match p.str("bodyType")? {
            Some(b) if !b.is_empty() => BodyType::parse(b)?,
            _ if method == reqwest::Method::POST || method == reqwest::Method::PUT => BodyType::Json,
            _ => BodyType::None,
        };
        let mut headers = Vec::new();
        match p.get("headers") {
            None => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| invalid("headers", format!("bad header name {k:?}: {e}")))?;
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    headers.push((name, dynamic_prop("headers", &text)?));
                }
            }
            Some(v) => return Err(invalid("headers", format!("expects an object of header values, got {v}"))),
        }
        let client = crate::http::client(p)?;
        let own_idempotency_key = headers.iter().any(|(name, _)| name.as_str() == IDEMPOTENCY_KEY);
        Ok(RestSink {
            own_idempotency_key,
            client,
            url,
            method,
            body_type,
            headers,
            retry_count: p.int("retryCount")?.unwrap_or(3).max(0) as u32,
            retry_interval_ms: p.duration_ms("retryInterval")?.unwrap_or(200),
            debug_resp: p.bool("debugResp")?.unwrap_or(false),
        })
    }

    fn request(&self, msg: &Outgoing) -> std::result::Result<reqwest::RequestBuilder, String> {
        let url = self.url.render(&msg.source).map_err(|e| format!("rest sink url: {e}"))?;
        let mut req = self.client.request(self.method.clone(), &url);
        if let Some(ct) = self.body_type.content_type() {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        for (name, value) in &self.headers {
            let v = value.render(&msg.source).map_err(|e| format!("rest sink header {name}: {e}"))?;
            req = req.header(name, v);
        }
        if let (Some(id), false) = (&msg.id, self.own_idempotency_key) {
            req = req.header(IDEMPOTENCY_KEY, header_safe(id));
        }
        Ok(match self.body_type {
            BodyType::None => req,
            BodyType::Form => req.body(form_encode(&msg.value)),
            _ => req.body(msg.bytes.clone()),
        })
    }

    async fn send(&self, msg: &Outgoing) -> std::result::Result<(), SinkError> {
        let mut wait = self.retry_interval_ms;
        let mut attempt = 0;
        loop {
            let req = self.request(msg).map_err(SinkError)?;
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        if self.debug_resp {
                            let body = resp.text().await.unwrap_or_default();
                            tracing::debug!("rest sink response {status}: {body}");
                        }
                        return Ok(());
                    }
                    let body = resp.text().await.unwrap_or_default();
                    let e = format!("rest sink: {} {} returned {status}: {body}", self.method, self.url_hint(msg));
                    if !status.is_server_error() {
                        return Err(SinkError(e));
                    }
                    e
                }
                Err(e) => format!("rest sink: {} {}: {e}", self.method, self.url_hint(msg)),
            };
            if attempt >= self.retry_count {
                return Err(SinkError(outcome));
            }
            attempt += 1;
            tracing::warn!("{outcome}; retry {attempt}/{} in {wait} ms", self.retry_count);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            wait = (wait * 2).min(MAX_BACKOFF_MS);
        }
    }

    fn url_hint(&self, msg: &Outgoing) -> String {
        self.url.render(&msg.source).unwrap_or_default()
    }
}

impl SinkConnector for RestSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(self.send(msg))
    }
}

/// `application/x-www-form-urlencoded` of a map (values as Go's `%v`); a
/// string is sent as it is (a template that wrote the form itself).
fn form_encode(v: &Value) -> Vec<u8> {
    let m = match v {
        Value::Map(m) => m.clone(),
        Value::Array(a) => match a.first() {
            Some(Value::Map(m)) => m.clone(),
            _ => return Vec::new(),
        },
        Value::String(s) => return s.as_bytes().to_vec(),
        _ => return Vec::new(),
    };
    let parts: Vec<String> =
        m.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(&go_sprint(v)))).collect();
    parts.join("&").into_bytes()
}

/// `id` as a valid header value: visible ASCII stays, every other byte
/// (and `%`) is percent-encoded, so distinct ids stay distinct.
fn header_safe(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'%' => out.push_str("%25"),
            0x21..=0x7e => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
