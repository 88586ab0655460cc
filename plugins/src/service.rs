//! Functions backed by an HTTP model server: each SQL call becomes a row of
//! a prediction request, in the JSON convention of TensorFlow Serving and
//! KServe v1: `POST <address><path>` with `{"instances": [[a1, ...], ...]}`
//! answered by `{"predictions": [p1, ...]}`, one per instance. The rows of a
//! batch go in one request (up to `batchSize`), with a timeout and retries
//! of connection errors and 5xx answers.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_runtime::functions::{FuncError, FuncResult, Registry};
use weir_runtime::value::Value;

/// Why a service could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The definition is invalid.
    #[error("service {name}: {message}")]
    Invalid {
        /// Service name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// No such service.
    #[error("service {0} is not found")]
    NotFound(String),
}

/// One SQL function of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFunction {
    /// The SQL name.
    pub name: String,
    /// Path under the service address, e.g. `/v1/models/gas:predict`.
    pub path: String,
}

fn default_timeout() -> u64 {
    5000
}
fn default_retries() -> u32 {
    2
}
fn default_batch() -> usize {
    64
}

/// A model service, as `POST /services` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceDef {
    /// Service name.
    pub name: String,
    /// Base URL, `http://host:port`.
    pub address: String,
    /// The functions it serves.
    pub functions: Vec<ServiceFunction>,
    /// Extra request headers (e.g. authorization).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deadline of one request, ms.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Retries after a connection error or a 5xx answer.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Most rows in one request.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

impl ServiceDef {
    /// Checks the definition.
    ///
    /// # Errors
    /// A bad name, address, path, header or limit, named in the message.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let bad = |m: String| ServiceError::Invalid { name: self.name.clone(), message: m };
        if !crate::portable::valid_name(&self.name) {
            return Err(bad("a service name has letters, digits and _ only".into()));
        }
        let url = reqwest::Url::parse(&self.address).map_err(|e| bad(format!("address {:?}: {e}", self.address)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!("address {:?} must be http:// or https://", self.address)));
        }
        if self.functions.is_empty() {
            return Err(bad("no functions".into()));
        }
        for f in &self.functions {
            if !crate::portable::valid_name(&f.name) {
                return Err(bad(format!("invalid function name {:?}", f.name)));
            }
            if !f.path.starts_with('/') {
                return Err(bad(format!("path {:?} of {} must start with /", f.path, f.name)));
            }
        }
        for (k, v) in &self.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("invalid header name {k:?}")))?;
            reqwest::header::HeaderValue::from_str(v).map_err(|_| bad(format!("invalid value of header {k}")))?;
        }
        if self.timeout == 0 || self.batch_size == 0 {
            return Err(bad("timeout and batchSize must be positive".into()));
        }
        Ok(())
    }
}

/// Runs the HTTP requests of all services on a small runtime of its own:
/// SQL functions are called from synchronous operator code.
struct Http {
    runtime: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
}

impl Drop for Http {
    fn drop(&mut self) {
        // May run inside an async context, where a blocking drop panics.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The registered services of a node.
pub struct Services {
    http: Arc<Http>,
    defs: Mutex<BTreeMap<String, ServiceDef>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("defs", &self.list()).finish()
    }
}

impl Services {
    /// No services yet.
    ///
    /// # Errors
    /// The HTTP runtime could not start.
    pub fn new() -> std::io::Result<Services> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-services")
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder().build().map_err(std::io::Error::other)?;
        Ok(Services { http: Arc::new(Http { runtime: Some(runtime), client }), defs: Mutex::new(BTreeMap::new()) })
    }

    fn defs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ServiceDef>> {
        self.defs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds or replaces a service.
    ///
    /// # Errors
    /// An invalid definition.
    pub fn register(&self, def: ServiceDef) -> Result<(), ServiceError> {
        def.validate()?;
        self.defs().insert(def.name.clone(), def);
        Ok(())
    }

    /// Removes a service.
    ///
    /// # Errors
    /// No such service.
    pub fn remove(&self, name: &str) -> Result<ServiceDef, ServiceError> {
        self.defs().remove(name).ok_or_else(|| ServiceError::NotFound(name.to_string()))
    }

    /// The definitions, by name.
    pub fn list(&self) -> Vec<ServiceDef> {
        self.defs().values().cloned().collect()
    }

    /// Registers each service function in `reg` with its batch form.
    pub fn register_functions(&self, reg: &mut Registry) {
        for def in self.defs().values() {
            for f in &def.functions {
                let call = Arc::new(Call {
                    http: self.http.clone(),
                    function: f.name.clone(),
                    url: format!("{}{}", def.address.trim_end_matches('/'), f.path),
                    headers: def.headers.clone(),
                    timeout: Duration::from_millis(def.timeout),
                    retries: def.retries,
                    batch_size: def.batch_size,
                });
                reg.batch_scalar(&f.name, 0, None, Arc::new(move |_, rows| call.rows(rows)), None);
            }
        }
    }
}

/// One function's endpoint.
struct Call {
    http: Arc<Http>,
    function: String,
    url: String,
    headers: BTreeMap<String, String>,
    timeout: Duration,
    retries: u32,
    batch_size: usize,
}

impl Call {
    fn rows(&self, rows: &[Vec<Value>]) -> Vec<FuncResult> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.batch_size) {
            match self.request(chunk) {
                Ok(preds) => out.extend(preds.into_iter().map(Ok)),
                Err(e) => out.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        out
    }

    /// One request for `rows`, retried; returns one prediction per row.
    fn request(&self, rows: &[Vec<Value>]) -> Result<Vec<Value>, FuncError> {
        let instances: Vec<serde_json::Value> =
            rows.iter().map(|r| serde_json::Value::Array(r.iter().map(Value::to_serde_json).collect())).collect();
        let body = serde_json::json!({ "instances": instances }).to_string();
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(50 << attempt.min(6)));
            }
            match self.post(body.clone()) {
                Ok((status, text)) if (200..300).contains(&status) => return self.predictions(&text, rows.len()),
                Ok((status, text)) => {
                    last = format!("HTTP {status}: {}", excerpt(&text));
                    if status < 500 {
                        break;
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(FuncError::new(format!("{} ({}): {last}", self.function, self.url)))
    }

    /// Sends on the service runtime and waits, at most the timeout.
    fn post(&self, body: String) -> Result<(u16, String), String> {
        let Some(rt) = self.http.runtime.as_ref() else { return Err("the service runtime is stopped".into()) };
        let mut req = self
            .http
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let (tx, rx) = mpsc::channel();
        rt.spawn(async move {
            let r = async {
                let resp = req.send().await.map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                let text = resp.text().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((status, text))
            }
            .await;
            let _ = tx.send(r);
        });
        rx.recv_timeout(self.timeout + Duration::from_millis(500)).map_err(|_| "request timed out".to_string())?
    }

    fn predictions(&self, text: &str, n: usize) -> Result<Vec<Value>, FuncError> {
        #[derive(Deserialize)]
        struct Answer {
            predictions: Vec<serde_json::Value>,
        }
        let a: Answer = serde_json::from_str(text).map_err(|e| {
            FuncError::new(format!(
                "{}: the answer is not {{\"predictions\": [...]}} ({e}): {}",
                self.function,
                excerpt(text)
            ))
        })?;
        if a.predictions.len() != n {
            return Err(FuncError::new(format!(
                "{}: {} predictions for {n} instances",
                self.function,
                a.predictions.len()
            )));
        }
        Ok(a.predictions.into_iter().map(|v| Value::from_json(v, false)).collect())
    }
}

fn excerpt(s: &str) -> &str {
    let end = s.char_indices().nth(200).map(|(i, _)| i).unwrap_or(s.len());
    &s[..end]
}
