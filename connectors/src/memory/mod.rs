//! The `memory` source and sink: an in-process pub/sub bus to chain rules.
//!
//! A sink publishes each row of an emission on its (templated) `topic`; a
//! stream receives, as decoded objects (no FORMAT), the rows of every
//! topic its `DATASOURCE` filters match (`+`/`#` wildcards as in MQTT).
//! Publishing waits while a subscriber's queue is full, so a slow rule
//! downstream slows the upstream rule: nothing is dropped, except rows of a
//! topic nobody subscribes to (as in eKuiper).
//!
//! Lookup tables (`KIND="lookup"`, [`table`]) keep the latest row per key
//! of the rows published on their topics; a sink with `rowkindField` and
//! `keyField` updates and deletes their rows.

pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod table;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use weir_runtime::Map;

use crate::mqtt::topic;

/// A row on the bus.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Published {
    pub(crate) topic: Arc<str>,
    pub(crate) row: Map,
}

/// What a published row does to the lookup tables of its topic (streams
/// receive the row either way).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Insert, update or upsert: the row becomes the table's row of its
    /// key.
    Put,
    /// Delete the table's row whose key is this value.
    Delete(weir_runtime::Value),
}

struct Sub {
    id: u64,
    filters: Vec<String>,
    tx: mpsc::Sender<Published>,
}

/// The node's memory bus. Cloning shares it.
#[derive(Clone, Default)]
pub(crate) struct Bus {
    subs: Arc<Mutex<Vec<Sub>>>,
    next_id: Arc<AtomicU64>,
    /// Lookup tables fed by the bus, while a rule uses them.
    tables: table::Tables,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("subscriptions", &self.lock().len()).finish()
    }
}

/// A stream's subscription; dropping it unsubscribes.
pub(crate) struct Subscription {
    bus: Bus,
    id: u64,
    rx: mpsc::Receiver<Published>,
}

impl Subscription {
    /// The next row.
    pub(crate) async fn recv(&mut self) -> Option<Published> {
        self.rx.recv().await
    }

    /// A row already queued.
    pub(crate) fn try_recv(&mut self) -> Option<Published> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.lock().retain(|s| s.id != self.id);
    }
}

impl Bus {
    fn lock(&self) -> MutexGuard<'_, Vec<Sub>> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current subscriptions.
    #[cfg(test)]
    pub(crate) fn subscriptions(&self) -> usize {
        self.lock().len()
    }

    /// Subscribes to the topics matching `filters`; at most `capacity` rows
    /// wait for the subscriber.
    pub(crate) fn subscribe(&self, filters: Vec<String>, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Sub { id, filters, tx });
        Subscription { bus: self.clone(), id, rx }
    }

    /// The lookup tables fed by the bus.
    pub(crate) fn tables(&self) -> &table::Tables {
        &self.tables
    }

    /// Publishes `row` on `topic` to every matching subscriber, waiting
    /// while one is full. Returns how many subscribers got it. `change`
    /// is applied to the lookup tables of `topic` first, so that a rule
    /// that sees the row on a stream finds it in the tables too (tables do
    /// not count as subscribers).
    pub(crate) async fn publish(&self, topic: &str, row: Map, change: Change) -> usize {
        self.tables.apply(topic, &row, &change);
        let targets: Vec<mpsc::Sender<Published>> = self
            .lock()
            .iter()
            .filter(|s| s.filters.iter().any(|f| topic::matches(f, topic)))
            .map(|s| s.tx.clone())
            .collect();
        let msg = Published { topic: Arc::from(topic), row };
        let mut n = 0;
        for tx in targets {
            if tx.send(msg.clone()).await.is_ok() {
                n += 1;
            }
        }
        n
    }
}
