//! The `mqtt` sink: publishes each message of the common sink layer
//! ([`crate::transform`]: `sendSingle`, `dataTemplate`, `fields`, `format`)
//! on its own connection, to a topic rendered from the message's data.
//!
//! # Acknowledgements
//! At QoS 1 and 2 publishing is pipelined. `publish` hands the message to
//! the sink's window task, which queues it on the connection and keeps it
//! until the broker acknowledges it (at most [`MAX_UNACKED`] at a time;
//! when the window is full `publish` waits, so a slow or absent broker
//! slows the rule down). Brokers acknowledge QoS 1 in order (MQTT requires
//! it), so each acknowledgement retires the oldest message of the window.
//!
//! If the connection drops and the broker kept the session, rumqttc sends
//! the unacknowledged messages again itself. If the broker lost it (a
//! clean session, or a restart without persistence) rumqttc drops them;
//! the window task then publishes every message handed over before the
//! drop and still unacknowledged again, at the back of the window, which
//! keeps the window in sending order (at least once: the broker may see a
//! message twice). A message that finds the window full for `timeout` ms
//! fails with an error the rule counts; closing waits up to `timeout` ms
//! for the window to drain, then disconnects.
//!
//! # Ids
//! A message with an id (an exactly-once emission, [`Outgoing::id`]) is
//! published with the MQTT v5 user property `id` (protocol 5 only; for
//! 3.1.1 consumers the common sink property `idField` puts it in the
//! payload).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use weir_runtime::connector::{BoxFuture, Confirmation, SinkError};

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

/// What the connection's event loop tells the window, in order.
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
    /// Order in which the sink first handed it (kept when published again).
    order: u64,
    topic: String,
    payload: Vec<u8>,
    id: Option<String>,
}

/// What the sink asks of the window task.
enum Request {
    /// Publish (topic, payload, id).
    Publish(String, Vec<u8>, Option<String>),
    /// Answer once every message handed before is acknowledged.
    Flush(FlushDone),
}

type FlushDone = tokio::sync::oneshot::Sender<std::result::Result<(), SinkError>>;

/// The sink's side of its connection: messages go to the window task.
struct Link {
    tx: mpsc::Sender<Request>,
    task: tokio::task::JoinHandle<()>,
}

/// Publishes messages to a broker; connects on the first message.
pub(crate) struct MqttSink {
    config: SinkConfig,
    link: Option<Link>,
}

impl MqttSink {
    pub(crate) fn new(config: SinkConfig) -> MqttSink {
        MqttSink { config, link: None }
    }

    fn link(&mut self) -> std::result::Result<&Link, SinkError> {
        if self.link.is_none() {
            let (client, event_loop) = client::connect(&self.config.conn, false).map_err(SinkError)?;
            let (notes_tx, notes) = mpsc::unbounded_channel();
            let closing = Arc::new(AtomicBool::new(false));
            let handed = Arc::new(AtomicU64::new(0));
            let host = self.config.conn.host.clone();
            tokio::spawn(drive(event_loop, notes_tx, handed.clone(), closing.clone(), host));
            let (tx, rx) = mpsc::channel(64);
            let window = Window {
                client,
                qos: self.config.qos,
                retained: self.config.retained,
                timeout: Duration::from_millis(self.config.timeout_ms),
                handed,
                closing,
                unacked: VecDeque::new(),
                next_order: 0,
                flushes: Vec::new(),
                gave_up: false,
            };
            self.link = Some(Link { tx, task: tokio::spawn(window.run(rx, notes)) });
        }
        Ok(self.link.as_ref().expect("set above"))
    }

    /// The topic for a message made from `data` (a row, or the array of
    /// an emission).
    pub(crate) fn topic(&self, data: &weir_runtime::Value) -> std::result::Result<String, SinkError> {
        self.config.topic.render(data).map_err(|e| SinkError(format!("mqtt sink topic: {e}")))
    }

    /// Publishes `payload` on `topic` (rendered; checked here). Returns
    /// once the connection took it; waits while the window is full, at
    /// most `timeout` ms.
    pub(crate) async fn send(&mut self, topic: String, payload: Vec<u8>) -> std::result::Result<(), SinkError> {
        self.send_with_id(topic, payload, None).await
    }

    /// [`MqttSink::send`] with the message's id (user property `id` on
    /// MQTT v5).
    pub(crate) async fn send_with_id(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        id: Option<String>,
    ) -> std::result::Result<(), SinkError> {
        topic::validate_name(&topic).map_err(|m| SinkError(format!("mqtt sink topic: {m}")))?;
        let timeout = self.config.timeout_ms;
        let link = self.link()?;
        match tokio::time::timeout(Duration::from_millis(timeout), link.tx.send(Request::Publish(topic, payload, id)))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SinkError("mqtt sink connection ended".into())),
            Err(_) => {
                Err(SinkError(format!("mqtt publish: {MAX_UNACKED} messages still unacknowledged after {timeout} ms")))
            }
        }
    }

    /// Marks every message handed so far; the confirmation resolves once
    /// they are acknowledged by the broker (QoS >= 1; at QoS 0 once
    /// queued), or fails if a message was given up or the sink closed
    /// first.
    pub(crate) async fn flush(&mut self) -> Confirmation {
        let ended = || SinkError("mqtt sink connection ended".into());
        let Some(link) = &self.link else {
            return Box::pin(async { Ok(()) });
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        if link.tx.send(Request::Flush(done)).await.is_err() {
            return Box::pin(async move { Err(ended()) });
        }
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(ended())) })
    }

    /// Waits (up to `timeout`) for the window to drain, then disconnects.
    pub(crate) async fn shut_down(&mut self) {
        if let Some(Link { tx, task }) = self.link.take() {
            drop(tx);
            let _ = task.await;
        }
    }
}

impl SinkConnector for MqttSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        Box::pin(async move {
            let topic = self.topic(&msg.source)?;
            self.send_with_id(topic, msg.bytes.clone(), msg.id.clone()).await
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Confirmation> {
        Box::pin(MqttSink::flush(self))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.shut_down())
    }
}

/// The task between the sink and the connection: publishes, keeps the
/// unacknowledged QoS >= 1 messages, and publishes again what a lost
/// session dropped.
struct Window {
    client: Client,
    qos: u8,
    retained: bool,
    timeout: Duration,
    /// Sequence numbers handed out (taken before the publish is queued).
    handed: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    unacked: VecDeque<Unacked>,
    /// Order of the next message handed (kept when one is published
    /// again), so that a flush knows which messages came before it.
    next_order: u64,
    /// Flushes waiting: the order they were asked at, whether a message
    /// was given up before, and where to answer.
    flushes: Vec<(u64, bool, FlushDone)>,
    /// A message was given up since the last flush was asked.
    gave_up: bool,
}

impl Window {
    async fn run(mut self, mut messages: mpsc::Receiver<Request>, mut notes: mpsc::UnboundedReceiver<Note>) {
        let mut open = true;
        let mut drain_until = Instant::now();
        loop {
            if !open && self.unacked.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                note = notes.recv() => match note {
                    Some(Note::Acked) => {
                        self.unacked.pop_front();
                        self.answer_flushes();
                    }
                    Some(Note::Lost { upto }) => self.republish(upto).await,
                    None => break,
                },
                m = messages.recv(), if open && self.unacked.len() < MAX_UNACKED => match m {
                    Some(Request::Publish(topic, payload, id)) => self.hand(topic, payload, id, None).await,
                    Some(Request::Flush(done)) => {
                        let gave_up = std::mem::take(&mut self.gave_up);
                        self.flushes.push((self.next_order, gave_up, done));
                        self.answer_flushes();
                    }
                    None => {
                        open = false;
                        drain_until = Instant::now() + self.timeout;
                    }
                },
                _ = tokio::time::sleep_until(drain_until), if !open => break,
            }
        }
        if !self.unacked.is_empty() {
            tracing::warn!(messages = self.unacked.len(), "mqtt sink closed with unacknowledged messages");
        }
        self.closing.store(true, Ordering::Release);
        self.client.try_disconnect();
    }

    /// Queues one publish on the connection (QoS >= 1: into the window).
    async fn hand(&mut self, topic: String, payload: Vec<u8>, id: Option<String>, order: Option<u64>) {
        let order = order.unwrap_or_else(|| {
            self.next_order += 1;
            self.next_order - 1
        });
        if self.qos == 0 {
            if let Err(e) = self.publish(&topic, 0, payload, id.as_deref()).await {
                tracing::warn!(error = %e, "mqtt sink publish failed");
                self.gave_up = true;
            }
            return;
        }
        let seq = self.handed.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.publish(&topic, self.qos, payload.clone(), id.as_deref()).await {
            tracing::warn!(error = %e, "mqtt sink publish failed");
            self.gave_up = true;
            return;
        }
        self.unacked.push_back(Unacked { seq, order, topic, payload, id });
    }

    /// Answers the waiting flushes whose messages are all acknowledged.
    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self.unacked.iter().map(|u| u.order).min().unwrap_or(u64::MAX);
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.flushes).into_iter().partition(|(mark, _, _)| *mark <= oldest);
        self.flushes = waiting;
        for (_, gave_up, done) in ready {
            let _ = done.send(match gave_up {
                true => Err(SinkError("mqtt publish: a message was given up".into())),
                false => Ok(()),
            });
        }
    }

    /// One publish; on MQTT v5 an id goes out as the user property `id`.
    async fn publish(
        &self,
        topic: &str,
        qos: u8,
        payload: Vec<u8>,
        id: Option<&str>,
    ) -> std::result::Result<(), String> {
        match (&self.client, id) {
            (Client::V5(c), Some(id)) => {
                let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    user_properties: vec![("id".to_string(), id.to_string())],
                    ..Default::default()
                };
                let q = match qos {
                    0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                    1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
                };
                c.publish_with_properties(topic, q, self.retained, payload, props).await.map_err(|e| e.to_string())
            }
            _ => self.client.publish(topic, qos, self.retained, payload).await,
        }
    }

    /// Publishes again the unacknowledged messages handed over before
    /// sequence `upto`, moving them to the back of the window (which stays
    /// in sending order).
    async fn republish(&mut self, upto: u64) {
        let mut lost = Vec::new();
        while self.unacked.front().is_some_and(|u| u.seq < upto) {
            lost.extend(self.unacked.pop_front());
        }
        if lost.is_empty() {
            return;
        }
        tracing::warn!(messages = lost.len(), "mqtt sink: the broker lost the session, publishing again");
        for u in lost {
            self.hand(u.topic, u.payload, u.id, Some(u.order)).await;
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
