//! The `httppull` source: requests a url every `interval` and sends the
//! response body (JSON object or array of objects, or the stream's
//! `FORMAT`) into the rule.
//!
//! Properties (`etc/sources/httppull.yaml` sections and `EXTRA`): `url`
//! (the stream's `DATASOURCE` is appended, eKuiper-style), `method` (get),
//! `interval` (10 s), `timeout` (5 s), `headers` (templated values,
//! rendered once), `body` and `bodyType` (json when a body is given),
//! `incremental` (send only when the body changed), `responseType`
//! (`code`: any 2xx status is data; `body`: the body's own `code` field
//! must be 2xx too), `insecureSkipVerify`. Failed polls are logged and
//! retried at the next interval.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use weir_planner::StreamDef;
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::Value;

use crate::format::SourceFormat;
use crate::outlet::Outlet;
use crate::props::{invalid, Props};
use crate::transform::dynamic_prop;
use crate::{Environment, Result};

/// A stream polling an HTTP endpoint.
pub(crate) struct HttpPullSource {
    client: reqwest::Client,
    url: String,
    method: reqwest::Method,
    headers: Vec<(String, String)>,
    body: Option<(String, &'static str)>,
    interval_ms: u64,
    incremental: bool,
    check_body_code: bool,
    format: SourceFormat,
}

impl HttpPullSource {
    /// # Errors
    /// No url, an unsupported method or response type, bad headers.
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<HttpPullSource> {
        let p = env.source_props("httppull", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        HttpPullSource::from_props(&p, def.options.datasource.as_deref().unwrap_or(""), SourceFormat::of(def)?)
    }

    pub(crate) fn from_props(p: &Props, datasource: &str, format: SourceFormat) -> Result<HttpPullSource> {
        let base = p.str("url")?.unwrap_or("");
        let url = format!("{base}{datasource}");
        if url.is_empty() {
            return Err(invalid("url", "is required".into()));
        }
        reqwest::Url::parse(&url).map_err(|e| invalid("url", format!("{url:?}: {e}")))?;
        let method = match p.str("method")?.unwrap_or("get").to_ascii_lowercase().as_str() {
            "get" => reqwest::Method::GET,
            "post" => reqwest::Method::POST,
            "put" => reqwest::Method::PUT,
            "delete" => reqwest::Method::DELETE,
            other => return Err(invalid("method", format!("unsupported method {other:?}"))),
        };
        let mut headers = Vec::new();
        match p.get("headers") {
            None => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                    let rendered = dynamic_prop("headers", &text)?
                        .render(&Value::map(Default::default()))
                        .map_err(|e| invalid("headers", e.to_string()))?;
                    headers.push((k.clone(), rendered));
                }
            }
            Some(v) => return Err(invalid("headers", format!("expects an object, got {v}"))),
        }
        let body = match p.str("body")? {
            Some(b) if !b.is_empty() => {
                let ct = match p.str("bodyType")?.unwrap_or("json").to_ascii_lowercase().as_str() {
                    "json" => "application/json",
                    "text" => "text/plain",
                    "form" => "application/x-www-form-urlencoded",
                    "none" => "",
                    other => return Err(invalid("bodyType", format!("unsupported body type {other:?}"))),
                };
                Some((b.to_string(), ct))
            }
            _ => None,
        };
        let check_body_code = match p.str("responseType")?.unwrap_or("code") {
            "code" => false,
            "body" => true,
            other => return Err(invalid("responseType", format!("expects code or body, got {other:?}"))),
        };
        Ok(HttpPullSource {
            client: super::client(p)?,
            url,
            method,
            headers,
            body,
            interval_ms: p.duration_ms("interval")?.unwrap_or(10_000).max(1),
            incremental: p.bool("incremental")?.unwrap_or(false),
            check_body_code,
            format,
        })
    }

    /// One request: the body when it is data.
    async fn poll(&self) -> std::result::Result<Vec<u8>, String> {
        let mut req = self.client.request(self.method.clone(), &self.url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some((body, ct)) = &self.body {
            if !ct.is_empty() {
                req = req.header(reqwest::header::CONTENT_TYPE, *ct);
            }
            req = req.body(body.clone());
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        if self.check_body_code {
            let code = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64));
            match code {
                Some(c) if (200..300).contains(&c) => {}
                other => return Err(format!("response body code {other:?} is not 2xx")),
            }
        }
        Ok(bytes)
    }

    /// Polls until `out` stops.
    pub(crate) async fn pump(self, mut out: impl Outlet) {
        let mut last: Option<Vec<u8>> = None;
        loop {
            match self.poll().await {
                Ok(bytes) if self.incremental && last.as_ref() == Some(&bytes) => {}
                Ok(bytes) => {
                    if self.incremental {
                        last = Some(bytes.clone());
                    }
                    let p = self.format.payload(bytes, out.now_ms(), None);
                    if !out.send(vec![p]).await {
                        return;
                    }
                }
                Err(e) => tracing::warn!("httppull {}: {e}", self.url),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(self.interval_ms)) => {}
                _ = out.stopped() => return,
            }
        }
    }
}

impl Source for HttpPullSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}

#[cfg(test)]
mod tests {
    use weir_runtime::row::PayloadData;

    use super::*;
    use crate::http::testserver::TestServer;
    use crate::outlet::testing::channel;

    fn source(props: serde_json::Value, ds: &str) -> HttpPullSource {
        HttpPullSource::from_props(&Props::new(&props), ds, SourceFormat::Json).unwrap()
    }

    fn text(p: &weir_runtime::row::Payload) -> String {
        match &p.data {
            PayloadData::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            PayloadData::Object(_) => panic!("bytes expected"),
        }
    }

    #[tokio::test]
    async fn polls_with_headers_and_skips_unchanged_bodies_when_incremental() {
        let srv = TestServer::start().await;
        for body in [r#"{"t":1}"#, r#"{"t":1}"#, r#"[{"t":2}]"#] {
            srv.answer(200, body);
        }
        let s = source(
            serde_json::json!({"url": srv.url, "interval": 1, "incremental": true, "headers": {"X-Token": "abc"}}),
            "/data",
        );
        let (outlet, mut rx, stop) = channel(1);
        let task = tokio::spawn(s.pump(outlet));
        assert_eq!(text(&rx.recv().await.unwrap()[0]), r#"{"t":1}"#);
        assert_eq!(text(&rx.recv().await.unwrap()[0]), r#"[{"t":2}]"#);
        stop.send(true).unwrap();
        let _ = task.await;
        let got = srv.received();
        assert_eq!(got[0].path, "/data");
        assert_eq!(got[0].header("x-token"), Some("abc"));
    }

    #[tokio::test]
    async fn failed_polls_are_skipped_and_body_codes_checked() {
        let srv = TestServer::start().await;
        srv.answer(500, "down");
        srv.answer(200, r#"{"code":500,"data":1}"#);
        srv.answer(200, r#"{"code":200,"data":2}"#);
        let s = source(serde_json::json!({"url": srv.url, "interval": "1ms", "responseType": "body"}), "");
        let (outlet, mut rx, stop) = channel(1);
        let task = tokio::spawn(s.pump(outlet));
        assert_eq!(text(&rx.recv().await.unwrap()[0]), r#"{"code":200,"data":2}"#);
        stop.send(true).unwrap();
        let _ = task.await;
    }

    #[test]
    fn bad_properties() {
        for p in [
            serde_json::json!({}),
            serde_json::json!({"url": "not a url"}),
            serde_json::json!({"url": "http://x", "method": "patch"}),
            serde_json::json!({"url": "http://x", "responseType": "json"}),
        ] {
            assert!(HttpPullSource::from_props(&Props::new(&p), "", SourceFormat::Json).is_err(), "{p}");
        }
    }
}
