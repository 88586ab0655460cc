//! Shared MQTT connections for sources.
//!
//! Streams whose [`ConnConfig`] is equal share one rumqttc connection and
//! event loop. Each stream holds a [`Subscription`]: its topic filters and
//! a bounded queue of [`Delivery`]s. The event loop hands every message to
//! each subscription with a matching filter, waiting while a queue is full
//! (the rule is busy): reading from the socket stops, and the broker's
//! in-flight window (QoS >= 1) or TCP flow control (QoS 0) holds the rest.
//!
//! A shard's connection ([`ConnConfig::share`]) subscribes and
//! unsubscribes its filters in shared form (`$share/<group>/<filter>`);
//! messages still arrive under their own topic and are matched against
//! the plain filters.
//!
//! Acknowledgement (manual acks are on): a QoS >= 1 message is acked when
//! every subscription it went to has acked its [`Delivery`] (after the rule
//! took it), or dropped it while the connection stays open. When the last
//! subscription goes, the connection disconnects without acking what is
//! still queued, so a persistent session gets it redelivered.
//!
//! Redeliveries: after a reconnect (a broker restart, a network cut) the
//! broker sends again, flagged DUP and under the same packet id, every
//! message it has no ack for, including those already handed to a
//! stream and waiting in its queue or in the rule. Such a copy is not
//! handed on again: the first copy's ack (sent on the new connection)
//! acknowledges it, or, if that ack already went out and was lost with
//! the connection, the copy is acknowledged at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc;

use super::client::{self, AckHandle, Client, Event, EventLoop, Incoming};
use super::topic;
use super::ConnConfig;

type Conns = Mutex<HashMap<ConnConfig, Weak<Shared>>>;

/// The node's shared source connections, keyed by connection config.
#[derive(Clone, Default)]
pub(crate) struct Pool {
    conns: Arc<Conns>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("connections", &lock(&self.conns).len()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection and the subscriptions on it.
struct Shared {
    config: ConnConfig,
    client: Client,
    subs: Mutex<Vec<Sub>>,
    next_id: AtomicU64,
    /// Set when the last subscription left: stop acking, stop the loop.
    closing: AtomicBool,
    connects: AtomicU64,
    errors: AtomicU64,
    pool: Weak<Conns>,
    /// QoS >= 1 messages of the session handed on, by packet id (the
    /// broker reuses an id only after our ack).
    handed: Mutex<HashMap<u16, Handed>>,
    /// Acks that found rumqttc's request queue full, in order, for one
    /// task to send ([`send_acks`]). A task per such ack, as before, made
    /// them wait on the full queue together: flume drops a finished wait
    /// by a linear scan, so a backlog cost O(backlog) per ack (half the
    /// CPU of a rule draining 300k queued events), and acks went out of
    /// order (MQTT wants them in the order of the publishes).
    acks: mpsc::UnboundedSender<(AckHandle, Arc<AtomicBool>)>,
    /// Acks in `acks` not sent yet: while any wait, later ones queue
    /// behind them.
    queued_acks: AtomicUsize,
}

/// A message handed to the streams.
struct Handed {
    /// Hash of topic and payload: a DUP copy under the same id matches.
    fingerprint: u64,
    /// Set once its ack was asked for.
    acked: Arc<AtomicBool>,
}

fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

struct Sub {
    id: u64,
    filters: Vec<String>,
    qos: u8,
    tx: mpsc::Sender<Delivery>,
}

/// A message for one subscription.
pub(crate) struct Delivery {
    pub(crate) topic: String,
    pub(crate) payload: Arc<Vec<u8>>,
    pub(crate) qos: u8,
    /// The packet id (eKuiper's `messageId`); 0 for QoS 0.
    pub(crate) message_id: u16,
    /// A redelivery of a message the broker got no ack for.
    pub(crate) dup: bool,
    ack: Option<Arc<AckGuard>>,
    acked: bool,
}

impl Delivery {
    /// The rule has taken the message: it may be acknowledged (once every
    /// subscription that got it has acked).
    pub(crate) fn ack(mut self) {
        self.acked = true;
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let (false, Some(g)) = (self.acked, &self.ack) {
            g.orphaned.store(true, Ordering::Relaxed);
        }
    }
}

/// Acks one incoming message when the last [`Delivery`] of it goes.
struct AckGuard {
    handle: AckHandle,
    shared: Arc<Shared>,
    /// A delivery was dropped unprocessed (its rule stopping).
    orphaned: AtomicBool,
    /// Set when the ack is asked for.
    acked: Arc<AtomicBool>,
}

impl Drop for AckGuard {
    fn drop(&mut self) {
        let shared = self.shared.clone();
        if shared.closing.load(Ordering::Acquire) {
            return;
        }
        let handle = self.handle.clone();
        if !self.orphaned.load(Ordering::Relaxed) {
            if shared.queued_acks.load(Ordering::Acquire) == 0 && shared.client.try_ack(&handle).is_ok() {
                self.acked.store(true, Ordering::Release);
                return;
            }
            shared.queued_acks.fetch_add(1, Ordering::AcqRel);
            if shared.acks.send((handle, self.acked.clone())).is_err() {
                shared.queued_acks.fetch_sub(1, Ordering::AcqRel);
            }
            return;
        }
        let acked = self.acked.clone();
        // An orphan is dropped while its subscription is being torn down
        // (the subscription may go right after it): decide after that.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::task::yield_now().await;
                if !shared.closing.load(Ordering::Acquire) && shared.client.ack(&handle).await.is_ok() {
                    acked.store(true, Ordering::Release);
                }
            });
        }
    }
}

/// A stream's hold on a shared connection; dropping it unsubscribes (and
/// closes the connection if it was the last).
pub(crate) struct Subscription {
    shared: Arc<Shared>,
    id: u64,
    rx: mpsc::Receiver<Delivery>,
}

impl Subscription {
    /// The next message; `None` never happens while the connection lives.
    pub(crate) async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A message already queued, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let shared = &self.shared;
        let (left, last) = {
            let mut subs = lock(&shared.subs);
            let Some(i) = subs.iter().position(|s| s.id == self.id) else {
                return;
            };
            let gone = subs.remove(i);
            let left: Vec<String> = gone
                .filters
                .into_iter()
                .filter(|f| !subs.iter().any(|s| s.filters.contains(f)))
                .map(|f| shared.config.wire_filter(&f))
                .collect();
            (left, subs.is_empty())
        };
        if last {
            if let Some(pool) = shared.pool.upgrade() {
                let mut conns = lock(&pool);
                if conns.get(&shared.config).is_some_and(|w| w.as_ptr() == Arc::as_ptr(shared)) {
                    conns.remove(&shared.config);
                }
            }
            // Keep the broker-side subscriptions: a persistent session then
            // queues messages until a stream comes back.
            shared.closing.store(true, Ordering::Release);
            shared.client.try_disconnect();
        } else if !left.is_empty() {
            let client = shared.client.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    for f in left {
                        let _ = client.unsubscribe(&f).await;
                    }
                });
            }
        }
    }
}

impl Pool {
    /// Open connections.
    #[cfg(test)]
    pub(crate) fn connections(&self) -> usize {
        lock(&self.conns).values().filter(|w| w.strong_count() > 0).count()
    }

    /// Subscribes `filters` at `qos` on the connection for `config`,
    /// opening it if no stream uses it yet. `capacity` bounds the queue of
    /// messages waiting for the stream. A filter another stream already
    /// subscribed keeps that stream's QoS (as in eKuiper).
    ///
    /// # Errors
    /// Invalid TLS material, or the connection's request queue is closed.
    pub(crate) async fn subscribe(
        &self,
        config: &ConnConfig,
        filters: &[String],
        qos: u8,
        capacity: usize,
    ) -> Result<Subscription, String> {
        let shared = {
            let mut conns = lock(&self.conns);
            match conns.get(config).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let (client, event_loop) = client::connect(config, true)?;
                    let (acks, queued) = mpsc::unbounded_channel();
                    let shared = Arc::new(Shared {
                        config: config.clone(),
                        client,
                        subs: Mutex::new(Vec::new()),
                        next_id: AtomicU64::new(0),
                        closing: AtomicBool::new(false),
                        connects: AtomicU64::new(0),
                        errors: AtomicU64::new(0),
                        pool: Arc::downgrade(&self.conns),
                        handed: Mutex::new(HashMap::new()),
                        acks,
                        queued_acks: AtomicUsize::new(0),
                    });
                    conns.insert(config.clone(), Arc::downgrade(&shared));
                    tokio::spawn(run(shared.clone(), event_loop));
                    tokio::spawn(send_acks(Arc::downgrade(&shared), queued));
                    shared
                }
            }
        };
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let new_filters: Vec<String> = {
            let mut subs = lock(&shared.subs);
            let new = filters.iter().filter(|f| !subs.iter().any(|s| s.filters.contains(f))).cloned().collect();
            subs.push(Sub { id, filters: filters.to_vec(), qos, tx });
            new
        };
        let sub = Subscription { shared: shared.clone(), id, rx };
        for f in &new_filters {
            shared.client.subscribe(&config.wire_filter(f), qos).await?;
        }
        Ok(sub)
    }
}

/// Sends the acks queued in [`Shared::acks`], one after the other, until
/// the connection goes.
async fn send_acks(shared: Weak<Shared>, mut queued: mpsc::UnboundedReceiver<(AckHandle, Arc<AtomicBool>)>) {
    while let Some((handle, acked)) = queued.recv().await {
        let Some(s) = shared.upgrade() else { return };
        if !s.closing.load(Ordering::Acquire) && s.client.ack(&handle).await.is_ok() {
            acked.store(true, Ordering::Release);
        }
        s.queued_acks.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's event loop: dispatch messages, reconnect with backoff,
/// renew subscriptions after a lost session.
async fn run(shared: Arc<Shared>, mut event_loop: EventLoop) {
    let mut failures = 0u32;
    while !shared.closing.load(Ordering::Acquire) {
        match event_loop.poll().await {
            Ok(Event::Connected { session_present }) => {
                failures = 0;
                shared.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(host = %shared.config.host, port = shared.config.port, session_present, "mqtt connected");
                if !session_present {
                    lock(&shared.handed).clear();
                    resubscribe(&shared);
                }
            }
            Ok(Event::Message(m)) => dispatch(&shared, *m).await,
            Ok(_) => {}
            Err(e) => {
                if shared.closing.load(Ordering::Acquire) {
                    break;
                }
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let pause = client::backoff(failures);
                tracing::warn!(host = %shared.config.host, port = shared.config.port, error = %e,
                    retry_ms = pause.as_millis() as u64, "mqtt connection error");
                failures = failures.saturating_add(1);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Subscribes every filter in use again (the broker has no session).
fn resubscribe(shared: &Arc<Shared>) {
    let mut filters: Vec<(String, u8)> = Vec::new();
    for s in lock(&shared.subs).iter() {
        for f in &s.filters {
            let f = shared.config.wire_filter(f);
            if !filters.iter().any(|(g, _)| *g == f) {
                filters.push((f, s.qos));
            }
        }
    }
    let client = shared.client.clone();
    // Not awaited here: the event loop must keep polling to send them.
    tokio::spawn(async move {
        for (f, q) in filters {
            let _ = client.subscribe(&f, q).await;
        }
    });
}

async fn dispatch(shared: &Arc<Shared>, m: Incoming) {
    let acked = Arc::new(AtomicBool::new(false));
    if let Some(handle) = &m.ack {
        let fingerprint = fingerprint(&m.topic, &m.payload);
        let mut handed = lock(&shared.handed);
        match handed.get(&m.pkid) {
            Some(first) if m.dup && first.fingerprint == fingerprint => {
                // Already handed on: not again. Its first copy's ack
                // covers this id, unless it was asked for already (and
                // lost with the old connection): then ack now.
                if first.acked.load(Ordering::Acquire) && shared.client.try_ack(handle).is_err() {
                    let (client, handle) = (shared.client.clone(), handle.clone());
                    tokio::spawn(async move {
                        let _ = client.ack(&handle).await;
                    });
                }
                return;
            }
            _ => {
                handed.insert(m.pkid, Handed { fingerprint, acked: acked.clone() });
            }
        }
    }
    let targets: Vec<mpsc::Sender<Delivery>> = lock(&shared.subs)
        .iter()
        .filter(|s| s.filters.iter().any(|f| topic::matches(f, &m.topic)))
        .map(|s| s.tx.clone())
        .collect();
    let guard = m
        .ack
        .map(|handle| Arc::new(AckGuard { handle, shared: shared.clone(), orphaned: AtomicBool::new(false), acked }));
    let payload = Arc::new(m.payload);
    for tx in targets {
        let d = Delivery {
            topic: m.topic.clone(),
            payload: payload.clone(),
            qos: m.qos,
            message_id: m.pkid,
            dup: m.dup,
            ack: guard.clone(),
            acked: false,
        };
        // A closed queue (its stream stopping) drops the delivery: the
        // guard then acks once the connection is known to stay.
        let _ = tx.send(d).await;
    }
    // No subscriber at all (a stale persistent subscription): the guard
    // dropped here acks at once.
    drop(guard);
}
