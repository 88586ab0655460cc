//! The `mqtt` sink: publishes each message of the common sink layer
//! ([`crate::transform`]: `sendSingle`, `dataTemplate`, `fields`, `format`)
//! on its own connection, to a topic rendered from the message's data.
//!
//! # Acknowledgements
//! At QoS 1 and 2 publishing is pipelined: `publish` hands the message to
//! the connection and keeps it in a window of unacknowledged messages
//! (at most [`MAX_UNACKED`]); it waits only when the window is full, so a
//! slow or absent broker slows the rule down. The broker acknowledges in
//! order (MQTT requires it for QoS 1), so each acknowledgement retires the
//! oldest message of the window.
//!
//! If the connection drops and the broker kept the session, rumqttc sends
//! the unacknowledged messages again itself. If the broker lost the session
//! (a clean session, or a restart without persistence) rumqttc drops them;
//! the sink then publishes every message handed over before the drop and
//! still unacknowledged again, at the back of the window, which keeps the
//! window in sending order (at least once: the broker may see a message
//! twice). A message that finds the window full for `timeout` ms fails
//! with an error the rule counts; [`SinkConnector::close`] waits up to
//! `timeout` ms for the window to drain.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use weir_runtime::connector::{BoxFuture, SinkError};

use super::client::{self, Client, Event};
use super::{qos, topic, ConnConfig};
use crate::props::{invalid, Props};
use crate::transform::{dynamic_prop, Outgoing, SinkConnector, Template};
use crate::{Environment, Result};

/// Most QoS >= 1 messages published and not yet acknowledged.
pub(crate) const MAX_UNACKED: usize = 1024;

/// The mqtt sink's properties.
#[derive(Debug, Clone)]
pub(crate) struct SinkConfig {
    pub(crate) conn: ConnConfig,
    pub(crate) topic: Template,
    pub(crate) qos: u8,
    pub(crate) retained: bool,
    /// Wait for room in the window (and for the request queue) at most
    /// this long, ms (`timeout`, 5000).
    pub(crate) timeout_ms: u64,
}

impl SinkConfig {
    /// Reads `server` (required), `topic` (required, a template, no
    /// wildcards), `qos` (0), `retained`, `clientId`, `protocolVersion`,
    /// `username`, `password`, TLS props and `timeout`.
    ///
    /// # Errors
    /// A missing or invalid property, named.
    pub(crate) fn new(p: &Props, env: &Environment) -> Result<SinkConfig> {
        let conn = ConnConfig::from_props(p, None, &env.data_dir)?;
        client::check(&conn).map_err(|m| invalid("server", m))?;
        let topic_text = p.required_str("topic")?;
        let topic = dynamic_prop("topic", topic_text)?;
        if topic.is_constant() {
            topic::validate_name(topic_text).map_err(|m| invalid("topic", m))?;
        }
        Ok(SinkConfig {
            conn,
            topic,
            qos: qos(p, "qos", 0)?,
            retained: p.bool("retained")?.unwrap_or(false),
            timeout_ms: p.duration_ms("timeout")?.unwrap_or(5000),
        })
    }
}

/// What the connection's event loop tells the sink, in order.
#[derive(Debug, Clone, Copy)]
enum Note {
    /// The oldest QoS >= 1 publish was acknowledged (PUBACK or PUBCOMP).
    Acked,
    /// Reconnected to a broker without our session: every message handed
    /// over with a sequence number below `upto` and not acknowledged is
    /// gone.
    Lost { upto: u64 },
}

/// A QoS >= 1 message waiting for its acknowledgement.
struct Unacked {
    /// Order in which it was handed to the connection.
    seq: u64,
    topic: String,
    payload: Vec<u8>,
}

struct Link {
    client: Client,
    notes: mpsc::UnboundedReceiver<Note>,
    /// Sequence numbers handed out (taken before the publish is queued).
    handed: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
}

impl Link {
    fn shut(&self) {
        self.closing.store(true, Ordering::Release);
        self.client.try_disconnect();
    }
}

/// Publishes messages to a broker; connects on the first message.
pub(crate) struct MqttSink {
    config: SinkConfig,
    link: Option<Link>,
    window: VecDeque<Unacked>,
}

impl MqttSink {
    pub(crate) fn new(config: SinkConfig) -> MqttSink {
        MqttSink { config, link: None, window: VecDeque::new() }
    }

    fn link(&mut self) -> std::result::Result<&Link, SinkError> {
        if self.link.is_none() {
            let (client, event_loop) = client::connect(&self.config.conn, false).map_err(SinkError)?;
            let (tx, notes) = mpsc::unbounded_channel();
            let closing = Arc::new(AtomicBool::new(false));
            let handed = Arc::new(AtomicU64::new(0));
            let host = self.config.conn.host.clone();
            tokio::spawn(drive(event_loop, tx, handed.clone(), closing.clone(), host));
            self.link = Some(Link { client, notes, handed, closing });
        }
        Ok(self.link.as_ref().expect("set above"))
    }

    /// The topic for a message made from `data` (a row, or the array of
    /// an emission).
    pub(crate) fn topic(&self, data: &weir_runtime::Value) -> std::result::Result<String, SinkError> {
        self.config.topic.render(data).map_err(|e| SinkError(format!("mqtt sink topic: {e}")))
    }

    /// Publishes `payload` on `topic` (rendered; checked here).
    pub(crate) async fn send(&mut self, topic: String, payload: Vec<u8>) -> std::result::Result<(), SinkError> {
        topic::validate_name(&topic).map_err(|m| SinkError(format!("mqtt sink topic: {m}")))?;
        let timeout = self.config.timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(timeout);
        self.link()?;
        self.settle(None).await?;
        if self.config.qos == 0 {
            return self.hand(&topic, payload, deadline).await;
        }
        while self.window.len() >= MAX_UNACKED {
            if !self.settle(Some(deadline)).await? {
                return Err(SinkError(format!(
                    "mqtt publish: window of {MAX_UNACKED} unacknowledged messages still full after {timeout} ms"
                )));
            }
        }
        let seq = self.link.as_ref().expect("linked").handed.fetch_add(1, Ordering::AcqRel);
        self.hand(&topic, payload.clone(), deadline).await?;
        self.window.push_back(Unacked { seq, topic, payload });
        Ok(())
    }

    /// Queues one publish on the connection.
    async fn hand(&self, topic: &str, payload: Vec<u8>, deadline: Instant) -> std::result::Result<(), SinkError> {
        let link = self.link.as_ref().expect("linked");
        let sent = link.client.publish(topic, self.config.qos, self.config.retained, payload);
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(r) => r.map_err(|e| SinkError(format!("mqtt publish: {e}"))),
            Err(_) => Err(SinkError(format!("mqtt publish: not queued within {} ms", self.config.timeout_ms))),
        }
    }

    /// Applies the event loop's notes: without a deadline those already
    /// there; with one, waits for at least one until `deadline` (false if
    /// none came).
    async fn settle(&mut self, deadline: Option<Instant>) -> std::result::Result<bool, SinkError> {
        let mut got = false;
        loop {
            let link = self.link.as_mut().expect("linked");
            let note = match link.notes.try_recv() {
                Ok(n) => n,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Err(SinkError("mqtt connection closed".into()));
                }
                Err(mpsc::error::TryRecvError::Empty) => match deadline {
                    Some(d) if !got => match tokio::time::timeout_at(d, link.notes.recv()).await {
                        Ok(Some(n)) => n,
                        Ok(None) => return Err(SinkError("mqtt connection closed".into())),
                        Err(_) => return Ok(false),
                    },
                    _ => return Ok(got),
                },
            };
            got = true;
            match note {
                Note::Acked => {
                    self.window.pop_front();
                }
                Note::Lost { upto } => self.republish(upto).await?,
            }
        }
    }

    /// Publishes again the unacknowledged messages handed over before
    /// sequence `upto`, moving them to the back of the window.
    async fn republish(&mut self, upto: u64) -> std::result::Result<(), SinkError> {
        let mut lost = Vec::new();
        while self.window.front().is_some_and(|u| u.seq < upto) {
            lost.extend(self.window.pop_front());
        }
        if lost.is_empty() {
            return Ok(());
        }
        tracing::warn!(messages = lost.len(), "mqtt sink: the broker lost the session, publishing again");
        let deadline = Instant::now() + Duration::from_millis(self.config.timeout_ms);
        for mut u in lost {
            u.seq = self.link.as_ref().expect("linked").handed.fetch_add(1, Ordering::AcqRel);
            self.hand(&u.topic, u.payload.clone(), deadline).await?;
            self.window.push_back(u);
        }
        Ok(())
    }

    /// Waits (up to `timeout`) for the window to drain, then disconnects.
    pub(crate) async fn shut_down(&mut self) {
        if self.link.is_none() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(self.config.timeout_ms);
        while !self.window.is_empty() {
            match self.settle(Some(deadline)).await {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
        if !self.window.is_empty() {
            tracing::warn!(messages = self.window.len(), "mqtt sink closed with unacknowledged messages");
        }
        if let Some(link) = self.link.take() {
            link.shut();
        }
    }
}

impl SinkConnector for MqttSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(async move {
            let topic = self.topic(&msg.source)?;
            self.send(topic, msg.bytes.clone()).await
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.shut_down())
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            link.shut();
        }
    }
}

/// The sink connection's event loop: reports acknowledgements and lost
/// sessions, reconnects with backoff, and ends once the sink closes and
/// the connection is gone (so queued QoS 0 messages still go out before
/// the disconnect).
async fn drive(
    mut event_loop: client::EventLoop,
    notes: mpsc::UnboundedSender<Note>,
    handed: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    host: String,
) {
    let (mut failures, mut connected_before) = (0u32, false);
    // Sequence numbers handed out when the connection last dropped.
    let mut cut = 0;
    loop {
        match event_loop.poll().await {
            Ok(Event::Connected { session_present }) => {
                failures = 0;
                if connected_before && !session_present {
                    let _ = notes.send(Note::Lost { upto: cut });
                }
                connected_before = true;
            }
            Ok(Event::Completed) => {
                let _ = notes.send(Note::Acked);
            }
            Ok(_) => {}
            Err(e) => {
                if closing.load(Ordering::Acquire) || notes.is_closed() {
                    break;
                }
                cut = handed.load(Ordering::Acquire);
                let pause = client::backoff(failures);
                tracing::warn!(%host, error = %e, retry_ms = pause.as_millis() as u64, "mqtt sink connection error");
                failures = failures.saturating_add(1);
                tokio::time::sleep(pause).await;
            }
        }
    }
}
