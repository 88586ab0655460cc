//! The actor of a sink: emissions in order, one awaited at a time, and with
//! `qos: 2` held back until their checkpoint commits (exactly-once output).
//!
//! Held outputs of epoch n are stored with checkpoint n (in the sink's
//! outbox, so a restore can send them again) and released, each with the
//! id `<rule>/<n>/<seq>`, when the commit of epoch n is known. They stay
//! stored until the sink confirms their delivery ([`Sink::flush`]: for
//! MQTT, the broker's acknowledgements): a process killed after a commit
//! but before the outputs went out sends them at its restore. The newest
//! released epoch always stays stored, so a restored rule re-sends at
//! least the epoch it restored (what sinks that finish an epoch's output
//! only when the next one starts, like the file sink, rely on). Ids are
//! the same on every send, so consumers that keep the ids they have seen
//! drop the duplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::actor::{Msg, SinkEvent};
use super::StateSlot;
use crate::clock::Clock;
use crate::connector::Sink;
use crate::metrics::OpMetrics;
use crate::row::Message;
use crate::state::{codec, Space, StateBackend, StateResult, Write};
use crate::value::{Map, Value};

/// How long a sink retries storing an epoch's outputs at its barrier. Short:
/// the retry blocks the sink's thread (and the other actors on it), and a
/// failed store is tried again at the next barrier anyway.
const SEAL_RETRY: Duration = Duration::from_millis(500);

/// Key prefix (after the sink's slot) of the stored outputs of an epoch.
/// Their keys end in `/`, not in the epoch: the commit's garbage
/// collection of older checkpoints (keys ending in the zero-padded epoch)
/// leaves them to the sink, and dropping the rule removes them with the
/// rest of its keys.
const OUTBOX: &str = "outbox/";

/// A sink's stored outputs per epoch, and which released epochs are not
/// yet confirmed delivered.
pub(crate) struct Outbox {
    backend: Arc<dyn StateBackend>,
    prefix: Vec<u8>,
    unconfirmed: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl Outbox {
    fn new(backend: Arc<dyn StateBackend>, slot: &StateSlot) -> Outbox {
        let key = crate::state::StateKey {
            rule: slot.rule.clone(),
            operator: slot.operator,
            shard: slot.shard,
            key: OUTBOX.to_string(),
        };
        Outbox { backend, prefix: key.encode(), unconfirmed: Default::default() }
    }

    fn key(&self, epoch: u64) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(format!("{epoch:020}/").as_bytes());
        k
    }

    /// Every stored epoch with its outputs, in order.
    fn stored(&self) -> StateResult<BTreeMap<u64, Vec<Vec<Value>>>> {
        let mut out = BTreeMap::new();
        for (k, v) in self.backend.scan(Space::Checkpoints, &self.prefix)? {
            let epoch = std::str::from_utf8(&k[self.prefix.len()..])
                .ok()
                .and_then(|t| t.strip_suffix('/'))
                .and_then(|t| t.parse::<u64>().ok());
            match epoch {
                Some(e) => {
                    out.insert(e, codec::decode(&v, "held sink outputs")?);
                }
                None => {
                    return Err(crate::state::StateError::Corrupt {
                        key: format!("sink outbox of {}", String::from_utf8_lossy(&self.prefix)),
                        message: "malformed key".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<u64>> {
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything sent up to epoch `newest` is delivered: the outputs of
    /// the older released epochs are no longer needed.
    fn confirmed(&self, newest: u64) -> StateResult<()> {
        let done: Vec<u64> = self.lock().range(..newest).copied().collect();
        if done.is_empty() {
            return Ok(());
        }
        self.backend.write(done.iter().map(|e| Write::Delete(Space::Checkpoints, self.key(*e))).collect(), false)?;
        let mut unconfirmed = self.lock();
        for e in done {
            unconfirmed.remove(&e);
        }
        Ok(())
    }
}

/// Epoch `n` has committed: release what is held up to it.
#[derive(Debug, Clone, Copy)]
pub struct Committed(pub u64);

impl actix::Message for Committed {
    type Result = ();
}

/// Outputs held for exactly-once delivery.
pub(crate) struct Hold {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) rule: String,
    /// Outputs since the last barrier.
    pub(crate) pending: Vec<Vec<Value>>,
    /// Outputs of epochs whose barrier passed, waiting for their commit.
    pub(crate) sealed: BTreeMap<u64, Vec<Vec<Value>>>,
    pub(crate) last_barrier: u64,
    /// Sealed epochs whose outputs are not stored yet (their store failed):
    /// stored, in order, before any later barrier is acknowledged.
    pub(crate) unstored: std::collections::BTreeSet<u64>,
}

impl Hold {
    /// Starts holding; with `restored`, the stored outputs of the
    /// committed epochs up to it (not confirmed delivered) are read back to
    /// be sent again, in order. Stored outputs of later epochs did not
    /// commit: the replay makes them again, so they are dropped.
    pub(crate) fn new(
        backend: Arc<dyn StateBackend>,
        slot: StateSlot,
        rule: String,
        restored: Option<u64>,
    ) -> StateResult<Hold> {
        let outbox = Arc::new(Outbox::new(backend.clone(), &slot));
        let mut sealed = outbox.stored()?;
        let n = restored.unwrap_or(0);
        let uncommitted = sealed.split_off(&(n + 1));
        if !uncommitted.is_empty() {
            backend.write(
                uncommitted.keys().map(|e| Write::Delete(Space::Checkpoints, outbox.key(*e))).collect(),
                false,
            )?;
        }
        if restored.is_none() {
            sealed.clear();
        }
        Ok(Hold { outbox, rule, pending: Vec::new(), sealed, last_barrier: n, unstored: Default::default() })
    }

    /// Barrier `n`: the pending outputs belong to epoch n; they go into its
    /// checkpoint.
    ///
    /// A failed write (a standby being re-synced) is retried briefly: the
    /// outputs must be stored under epoch n, since a replay would make them
    /// in epoch n with the same ids. They stay held in memory if the write
    /// keeps failing, and the barrier is then not acknowledged. The next
    /// barrier stores them first: a barrier is acknowledged only once the
    /// outputs of every epoch up to it are stored, so a commit never
    /// releases outputs a restore could not send again. Nothing is dropped.
    fn seal(&mut self, n: u64) -> StateResult<()> {
        let outputs = std::mem::take(&mut self.pending);
        // An epoch without outputs has nothing to send again.
        if !outputs.is_empty() {
            self.unstored.insert(n);
        }
        self.sealed.insert(n, outputs);
        self.last_barrier = n;
        while let Some(&e) = self.unstored.first() {
            let stored = match self.sealed.get(&e) {
                Some(outputs) => self.store(e, outputs),
                None => Ok(()),
            };
            stored?;
            self.unstored.remove(&e);
        }
        Ok(())
    }

    /// Writes epoch `n`'s outputs to the outbox, retrying for a while.
    fn store(&self, n: u64, outputs: &[Vec<Value>]) -> StateResult<()> {
        codec::encode(&outputs).and_then(|bytes| {
            let key = self.outbox.key(n);
            let deadline = Instant::now() + SEAL_RETRY;
            let mut wait = Duration::from_millis(20);
            loop {
                match self.outbox.backend.write(vec![Write::Put(Space::Checkpoints, key.clone(), bytes.clone())], false)
                {
                    Ok(()) => return Ok(()),
                    // Fenced: another node owns the rule now; this one is
                    // being stopped, and waiting would hold its stop up.
                    Err(e @ crate::state::StateError::Fenced(_)) => return Err(e),
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                }
            }
        })
    }

    /// Removes the outputs of epochs up to `n`, with their ids; they
    /// stay stored until confirmed delivered.
    fn take_committed(&mut self, n: u64) -> Vec<(String, Vec<Value>)> {
        let keep = self.sealed.split_off(&(n + 1));
        let done = std::mem::replace(&mut self.sealed, keep);
        self.outbox.lock().extend(done.iter().filter(|(_, o)| !o.is_empty()).map(|(e, _)| *e));
        self.with_ids(done)
    }

    fn with_ids(&self, epochs: BTreeMap<u64, Vec<Vec<Value>>>) -> Vec<(String, Vec<Value>)> {
        let mut out = Vec::new();
        for (epoch, outputs) in epochs {
            for (seq, rows) in outputs.into_iter().enumerate() {
                out.push((format!("{}/{epoch}/{seq}", self.rule), rows));
            }
        }
        out
    }
}

/// Runs one sink. Each emission is awaited before the next message is
/// taken, so a slow sink fills this mailbox and slows the rule down.
pub(crate) struct SinkActor {
    pub(crate) index: usize,
    pub(crate) sink: Arc<tokio::sync::Mutex<Box<dyn Sink>>>,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<SinkEvent>,
    pub(crate) metrics: Arc<OpMetrics>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) mailbox: usize,
    /// `qos: 2`: outputs held until their epoch commits.
    pub(crate) hold: Option<Hold>,
}

impl Actor for SinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
        // A restored rule sends the outputs of its committed epoch again.
        if let Some(hold) = &mut self.hold {
            let n = hold.last_barrier;
            let outputs = hold.take_committed(n);
            let outbox = hold.outbox.clone();
            self.send(outputs, Some((outbox, n)), ctx);
        }
    }
}

/// The emissions of a message: one per row for independent events, one for
/// a window's rows, one `{"error": ...}` row for an error.
fn emissions(message: Message) -> Vec<Vec<Value>> {
    let take = |r: crate::row::Row| r.slots.into_iter().next().unwrap_or_default();
    match message {
        Message::Data(b) if b.window.is_some() => vec![b.rows.into_iter().map(take).collect()],
        Message::Data(b) => b.rows.into_iter().map(|r| vec![take(r)]).collect(),
        Message::Error(e) => {
            let mut m = Map::new();
            m.insert("error".to_string(), Value::str(e));
            vec![vec![Value::map(m)]]
        }
        _ => Vec::new(),
    }
}

impl SinkActor {
    /// Sends outputs in order, with ids when they have them. With
    /// `released` (the outbox and the newest epoch sent), once the sink
    /// confirms their delivery the stored outputs of the older epochs are
    /// dropped; the sink takes the next outputs meanwhile.
    fn send(
        &mut self,
        outputs: Vec<(String, Vec<Value>)>,
        released: Option<(Arc<Outbox>, u64)>,
        ctx: &mut Context<Self>,
    ) {
        if outputs.is_empty() {
            return;
        }
        let (sink, metrics, clock) = (self.sink.clone(), self.metrics.clone(), self.clock.clone());
        ctx.wait(
            async move {
                let mut sink = sink.lock().await;
                for (id, rows) in outputs {
                    if let Err(err) = sink.emit_with_id(&rows, &id).await {
                        metrics.exception(&err.0, clock.now_ms());
                    }
                }
                let Some((outbox, newest)) = released else { return };
                let confirmation = sink.flush().await;
                drop(sink);
                actix::spawn(async move {
                    // Not confirmed: the outputs stay stored, and a
                    // restore sends them again.
                    match confirmation.await {
                        Ok(()) => {
                            if let Err(e) = outbox.confirmed(newest) {
                                metrics.exception(&format!("cannot drop delivered outputs: {e}"), clock.now_ms());
                            }
                        }
                        Err(err) => metrics.exception(&err.0, clock.now_ms()),
                    }
                });
            }
            .into_actor(self),
        );
    }
}

impl Handler<Committed> for SinkActor {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Context<Self>) {
        if let Some(hold) = &mut self.hold {
            let outputs = hold.take_committed(msg.0);
            let outbox = hold.outbox.clone();
            self.send(outputs, Some((outbox, msg.0)), ctx);
        }
    }
}

impl Handler<Msg> for SinkActor {
    type Result = ();

    fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) {
        let (index, events, metrics, clock) =
            (self.index, self.events.clone(), self.metrics.clone(), self.clock.clone());
        if let Some(hold) = &mut self.hold {
            match msg.message {
                Message::Barrier(n) => match hold.seal(n) {
                    // Acked only once its outputs are in the checkpoint.
                    Ok(()) => {
                        let _ = events.send(SinkEvent::Barrier { sink: index, n });
                    }
                    Err(e) => metrics.exception(&format!("checkpoint {n} failed: {e}"), clock.now_ms()),
                },
                Message::End => {
                    // Stopping: a clean stop has committed and released its
                    // last checkpoint already. Outputs of epochs that did
                    // not commit are not sent: the restarted rule replays
                    // their input from the log and sends them then, with
                    // ids that match.
                    let sink = self.sink.clone();
                    ctx.wait(
                        async move {
                            sink.lock().await.close().await;
                            let _ = events.send(SinkEvent::Ended { sink: index });
                        }
                        .into_actor(self),
                    );
                }
                m => {
                    let rows = crate::graph::actor::rows_of(&m);
                    hold.pending.extend(emissions(m));
                    metrics.processed(rows, 0, 0, clock.now_ms());
                }
            }
            return;
        }
        let sink = self.sink.clone();
        let message = msg.message;
        ctx.wait(
            async move {
                let mut sink = sink.lock().await;
                match message {
                    Message::Barrier(n) => {
                        let _ = events.send(SinkEvent::Barrier { sink: index, n });
                    }
                    Message::End => {
                        sink.close().await;
                        let _ = events.send(SinkEvent::Ended { sink: index });
                    }
                    m => {
                        let started = Instant::now();
                        let rows = crate::graph::actor::rows_of(&m);
                        for e in emissions(m) {
                            if let Err(err) = sink.emit(&e).await {
                                metrics.exception(&err.0, clock.now_ms());
                            }
                        }
                        metrics.processed(rows, rows, started.elapsed().as_micros() as i64, clock.now_ms());
                    }
                }
            }
            .into_actor(self),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryBackend;

    fn hold(backend: &Arc<dyn StateBackend>, restored: Option<u64>) -> Hold {
        let slot = StateSlot { rule: "r".into(), operator: 7, shard: 0 };
        Hold::new(backend.clone(), slot, "r".into(), restored).unwrap()
    }

    fn out(i: i64) -> Vec<Value> {
        vec![Value::Int(i)]
    }

    #[test]
    fn released_outputs_stay_stored_until_a_later_delivery_is_confirmed() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let mut h = hold(&backend, None);
        for epoch in 1..=3 {
            h.pending.push(out(epoch as i64));
            h.seal(epoch).unwrap();
        }
        // Epochs 1 and 2 commit and go out; 3 does not commit.
        let sent = h.take_committed(2);
        assert_eq!(sent, vec![("r/1/0".to_string(), out(1)), ("r/2/0".to_string(), out(2))]);

        // Killed before any delivery was confirmed: the restore of epoch 2
        // sends 1 and 2 again, in order, and drops uncommitted 3.
        let mut restored = hold(&backend, Some(2));
        assert_eq!(restored.take_committed(2), sent);
        assert_eq!(restored.outbox.stored().unwrap().keys().copied().collect::<Vec<_>>(), vec![1, 2]);

        // Delivery up to 2 confirmed: only the newest released epoch stays.
        restored.outbox.confirmed(2).unwrap();
        let again = hold(&backend, Some(2));
        assert_eq!(again.sealed.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn epochs_without_outputs_store_nothing() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let mut h = hold(&backend, None);
        h.seal(1).unwrap();
        assert!(h.take_committed(1).is_empty());
        assert!(h.outbox.stored().unwrap().is_empty());
    }
}
