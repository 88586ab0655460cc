//! The actor of a sink: emissions in order, one awaited at a time, and with
//! `qos: 2` held back until their checkpoint commits (exactly-once output).
//!
//! Held outputs of epoch n are written into checkpoint n (so a restore can
//! send them again) and released, each with the id `<rule>/<n>/<seq>`, when
//! the commit of epoch n is known. A restored rule first re-sends the
//! outputs of the epoch it restored; their ids are the same, so consumers
//! that keep the ids they have seen drop the duplicates.

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

/// How long a sink retries storing an epoch's outputs.
const SEAL_RETRY: Duration = Duration::from_secs(30);

/// Epoch `n` has committed: release what is held up to it.
#[derive(Debug, Clone, Copy)]
pub struct Committed(pub u64);

impl actix::Message for Committed {
    type Result = ();
}

/// Outputs held for exactly-once delivery.
pub(crate) struct Hold {
    pub(crate) backend: Arc<dyn StateBackend>,
    pub(crate) slot: StateSlot,
    pub(crate) rule: String,
    /// Outputs since the last barrier.
    pub(crate) pending: Vec<Vec<Value>>,
    /// Outputs of epochs whose barrier passed, waiting for their commit.
    pub(crate) sealed: BTreeMap<u64, Vec<Vec<Value>>>,
    pub(crate) last_barrier: u64,
}

impl Hold {
    /// Starts holding; with `restored`, the outputs of that committed epoch
    /// are read back to be sent again.
    pub(crate) fn new(
        backend: Arc<dyn StateBackend>,
        slot: StateSlot,
        rule: String,
        restored: Option<u64>,
    ) -> StateResult<Hold> {
        let mut sealed = BTreeMap::new();
        if let Some(n) = restored {
            if let Some(bytes) = backend.get(Space::Checkpoints, &slot.at(n).encode())? {
                sealed.insert(n, codec::decode(&bytes, "held sink outputs")?);
            }
        }
        Ok(Hold { backend, slot, rule, pending: Vec::new(), sealed, last_barrier: restored.unwrap_or(0) })
    }

    /// Barrier `n`: the pending outputs belong to epoch n; they go into its
    /// checkpoint.
    ///
    /// A failed write (a standby being re-synced) is retried for a while:
    /// the outputs must be stored under epoch n, since a replay would make
    /// them in epoch n with the same ids. They stay held in memory even if
    /// the write keeps failing (the barrier is then not acknowledged, and a
    /// later commit releases them), so nothing is dropped.
    fn seal(&mut self, n: u64) -> StateResult<()> {
        let outputs = std::mem::take(&mut self.pending);
        let stored = codec::encode(&outputs).and_then(|bytes| {
            let key = self.slot.at(n).encode();
            let deadline = Instant::now() + SEAL_RETRY;
            let mut wait = Duration::from_millis(20);
            loop {
                match self.backend.write(vec![Write::Put(Space::Checkpoints, key.clone(), bytes.clone())], false) {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                }
            }
        });
        self.sealed.insert(n, outputs);
        self.last_barrier = n;
        stored
    }

    /// Removes the outputs of epochs up to `n`, with their ids.
    fn take_committed(&mut self, n: u64) -> Vec<(String, Vec<Value>)> {
        let keep = self.sealed.split_off(&(n + 1));
        let done = std::mem::replace(&mut self.sealed, keep);
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
            self.send(outputs, ctx);
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
    /// Sends outputs in order, with ids when they have them.
    fn send(&mut self, outputs: Vec<(String, Vec<Value>)>, ctx: &mut Context<Self>) {
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
            self.send(outputs, ctx);
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
