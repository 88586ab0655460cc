//! The `mqtt` sink: publishes each emission on its own connection.
//!
//! The bytes come from an [`Encoder`] (the shared transform layer:
//! `sendSingle`, `dataTemplate`, `fields`, `format`); until that is wired
//! in, [`json_array`] sends the emission as one JSON array. The topic is a
//! [`Template`] rendered against each message's data.
//!
//! At QoS 1 and 2 `emit` returns once the broker has acknowledged every
//! message of the emission, so a slow or absent broker slows the rule down.
//! If the connection drops and the broker lost the session, the emission is
//! published again (at least once). Past `timeout` ms the emission fails
//! with an error the rule counts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::Value;

use super::client::{self, Client, Event};
use super::topic::{self, Template};
use super::{qos, ConnConfig};
use crate::props::{invalid, Props};
use crate::{Environment, Result};

/// One message to publish: its bytes and the data its topic renders from
/// (the row with `sendSingle`, else the emission's array).
pub(crate) struct Encoded {
    pub(crate) payload: Vec<u8>,
    pub(crate) data: Value,
}

/// Turns an emission into messages.
pub(crate) type Encoder = Box<dyn FnMut(&[Value]) -> std::result::Result<Vec<Encoded>, SinkError> + Send>;

/// The stand-in encoder: the emission as one JSON array.
pub(crate) fn json_array() -> Encoder {
    Box::new(|rows: &[Value]| {
        let data = Value::array(rows.to_vec());
        Ok(vec![Encoded { payload: data.to_json().into_bytes(), data }])
    })
}

/// The mqtt sink's properties.
#[derive(Debug, Clone)]
pub(crate) struct SinkConfig {
    pub(crate) conn: ConnConfig,
    pub(crate) topic: Template,
    pub(crate) qos: u8,
    pub(crate) retained: bool,
    /// Wait for acknowledgements at most this long, ms (`timeout`, 5000).
    pub(crate) timeout_ms: u64,
}

impl SinkConfig {
    /// Reads `server` (required), `topic` (required, no wildcards),
    /// `qos` (0), `retained`, `clientId`, `protocolVersion`, `username`,
    /// `password`, TLS props and `timeout`.
    ///
    /// # Errors
    /// A missing or invalid property, named.
    pub(crate) fn new(p: &Props, env: &Environment) -> Result<SinkConfig> {
        let conn = ConnConfig::from_props(p, None, &env.data_dir)?;
        client::check(&conn).map_err(|m| invalid("server", m))?;
        let topic_text = p.required_str("topic")?;
        topic::validate_name(topic_text).map_err(|m| invalid("topic", m))?;
        Ok(SinkConfig {
            conn,
            topic: Template::new(topic_text),
            qos: qos(p, "qos", 0)?,
            retained: p.bool("retained")?.unwrap_or(false),
            timeout_ms: p.duration_ms("timeout")?.unwrap_or(5000),
        })
    }
}

/// Acknowledgement progress seen by the sink's event loop.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Outgoing QoS >= 1 publishes completed.
    completed: u64,
    /// Reconnects where the broker had no session (rumqttc then drops
    /// unacknowledged publishes).
    sessions_lost: u64,
}

struct Conn {
    client: Client,
    progress: watch::Receiver<Progress>,
    closing: Arc<AtomicBool>,
}

/// Publishes emissions to a broker.
pub(crate) struct MqttSink {
    config: SinkConfig,
    encode: Encoder,
    conn: Option<Conn>,
}

impl MqttSink {
    /// A sink that connects on its first emission.
    pub(crate) fn new(config: SinkConfig, encode: Encoder) -> MqttSink {
        MqttSink { config, encode, conn: None }
    }

    fn conn(&mut self) -> std::result::Result<&Conn, SinkError> {
        if self.conn.is_none() {
            let (client, event_loop) = client::connect(&self.config.conn, false).map_err(SinkError)?;
            let (tx, rx) = watch::channel(Progress::default());
            let closing = Arc::new(AtomicBool::new(false));
            tokio::spawn(drive(event_loop, tx, closing.clone(), self.config.conn.host.clone()));
            self.conn = Some(Conn { client, progress: rx, closing });
        }
        Ok(self.conn.as_ref().expect("set above"))
    }

    async fn publish(&mut self, rows: &[Value]) -> std::result::Result<(), SinkError> {
        let messages = (self.encode)(rows)?;
        if messages.is_empty() {
            return Ok(());
        }
        let (qos, retain, timeout) = (self.config.qos, self.config.retained, self.config.timeout_ms);
        let topics: Vec<String> = messages.iter().map(|m| self.config.topic.render(&m.data)).collect();
        for t in &topics {
            topic::validate_name(t).map_err(|m| SinkError(format!("mqtt sink topic: {m}")))?;
        }
        let conn = self.conn()?;
        let mut progress = conn.progress.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout);
        loop {
            let start = *progress.borrow_and_update();
            for (m, t) in messages.iter().zip(&topics) {
                let sent = tokio::time::timeout_at(deadline, conn.client.publish(t, qos, retain, m.payload.clone()));
                match sent.await {
                    Ok(r) => r.map_err(|e| SinkError(format!("mqtt publish: {e}")))?,
                    Err(_) => return Err(SinkError(format!("mqtt publish: not sent within {timeout} ms"))),
                }
            }
            if qos == 0 {
                return Ok(());
            }
            let target = start.completed + messages.len() as u64;
            let waited = tokio::time::timeout_at(
                deadline,
                progress.wait_for(|p| p.completed >= target || p.sessions_lost > start.sessions_lost),
            )
            .await;
            match waited {
                Ok(Ok(p)) if p.completed >= target => return Ok(()),
                Ok(Ok(_)) => {
                    tracing::warn!("mqtt sink: broker lost the session, publishing the emission again");
                }
                Ok(Err(_)) => return Err(SinkError("mqtt connection closed".into())),
                Err(_) => return Err(SinkError(format!("mqtt publish: not acknowledged within {timeout} ms"))),
            }
        }
    }
}

/// The sink connection's event loop: counts completions and lost sessions,
/// reconnects with backoff until the sink closes.
async fn drive(
    mut event_loop: client::EventLoop,
    progress: watch::Sender<Progress>,
    closing: Arc<AtomicBool>,
    host: String,
) {
    let (mut failures, mut connected_before) = (0u32, false);
    while !closing.load(Ordering::Acquire) {
        match event_loop.poll().await {
            Ok(Event::Connected { session_present }) => {
                failures = 0;
                if connected_before && !session_present {
                    progress.send_modify(|p| p.sessions_lost += 1);
                }
                connected_before = true;
            }
            Ok(Event::Completed) => progress.send_modify(|p| p.completed += 1),
            Ok(_) => {}
            Err(e) => {
                if closing.load(Ordering::Acquire) {
                    break;
                }
                let pause = client::backoff(failures);
                tracing::warn!(%host, error = %e, retry_ms = pause.as_millis() as u64, "mqtt sink connection error");
                failures = failures.saturating_add(1);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

impl Sink for MqttSink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(self.publish(rows))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        if let Some(c) = self.conn.take() {
            c.closing.store(true, Ordering::Release);
            c.client.try_disconnect();
        }
        Box::pin(async {})
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.closing.store(true, Ordering::Release);
            c.client.try_disconnect();
        }
    }
}
