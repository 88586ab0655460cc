//! The actix shell around an [`Operator`]: a bounded mailbox, barrier
//! alignment, timers, metrics, and sends that wait for the downstream
//! mailbox (backpressure all the way to the source).

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::align::Aligner;
use super::exchange::ShardIntake;
use super::sequence::Sequencer;
use crate::clock::{Clock, Timers};
use crate::metrics::OpMetrics;
use crate::operator::{Operator, Output};
use crate::row::Message;

/// A message on an edge, tagged with the input index at the receiver.
#[derive(Debug)]
pub struct Msg {
    /// Which input of the receiving operator.
    pub input: usize,
    /// The message.
    pub message: Message,
}

impl actix::Message for Msg {
    type Result = ();
}

/// A downstream edge.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) to: Recipient<Msg>,
    pub(crate) input: usize,
}

pub(crate) fn rows_of(m: &Message) -> u64 {
    match m {
        Message::Data(b) => b.rows.len() as u64,
        Message::Payloads(p) => p.iter().filter(|p| !p.is_snapshot_marker()).count() as u64,
        _ => 0,
    }
}

/// How an operator takes in its inputs.
pub(crate) enum Intake {
    /// Inputs are different streams: align barriers across them.
    Align(Aligner),
    /// Inputs are the instances of a parallel stage: restore their order.
    Sequence(Sequencer),
    /// Inputs are the shards of a sharded rule: align barriers, merge time.
    Shard(ShardIntake),
}

impl Intake {
    fn push(&mut self, input: usize, msg: Message) -> Vec<(usize, Message)> {
        match self {
            Intake::Align(a) => a.push(input, msg),
            Intake::Sequence(s) => s.push(input, msg),
            Intake::Shard(s) => s.push(input, msg),
        }
    }
}

/// Runs one operator.
pub(crate) struct OperatorActor {
    pub(crate) op: Box<dyn Operator>,
    pub(crate) intake: Intake,
    pub(crate) downstream: Vec<Edge>,
    /// Deal data round-robin over `downstream` (the instances of a
    /// parallel stage) instead of sending it to all.
    pub(crate) split: bool,
    /// Next instance to deal data to.
    pub(crate) dealt: usize,
    /// This is an instance of a parallel stage: answer every data message
    /// with exactly one (possibly empty) data message.
    pub(crate) one_to_one: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timers: Timers,
    pub(crate) timer_id: usize,
    pub(crate) metrics: Arc<OpMetrics>,
    pub(crate) mailbox: usize,
    pub(crate) last_tick: i64,
    /// Rule option `sendError`: dropped rows become error messages.
    pub(crate) send_error: bool,
    /// Where this operator writes its state at each barrier (checkpoints).
    pub(crate) snapshots: Option<(Arc<dyn crate::state::StateBackend>, super::StateSlot)>,
}

impl Actor for OperatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl OperatorActor {
    fn handle_one(&mut self, input: usize, m: Message, out: &mut Output) {
        let now = self.clock.now_ms();
        match m {
            Message::Data(b) => self.op.process(input, b, now, out),
            Message::Payloads(p) => self.op.process_payloads(p, now, out),
            Message::Tick(t) => {
                // Several inputs forward the same tick: handle it once.
                if t > self.last_tick {
                    self.last_tick = t;
                    self.op.on_tick(t, out);
                    out.messages.push(Message::Tick(t));
                }
            }
            Message::Watermark(wm) => self.op.on_input_watermark(input, wm, out),
            Message::Barrier(n) => {
                if let Err(e) = self.checkpoint(n) {
                    // Without this operator's state the epoch cannot
                    // complete: hold its barrier back, report the error.
                    tracing::error!(operator = %self.metrics.name, epoch = n, error = %e, "checkpoint failed");
                    out.error(format!("checkpoint {n} failed: {e}"));
                    return;
                }
                out.messages.push(Message::Barrier(n));
            }
            m @ (Message::End | Message::Error(_)) => out.messages.push(m),
        }
    }

    /// Writes the operator's state for epoch `n`.
    fn checkpoint(&self, n: u64) -> crate::state::StateResult<()> {
        let Some((backend, slot)) = &self.snapshots else { return Ok(()) };
        let Some(bytes) = self.op.snapshot()? else { return Ok(()) };
        let key = slot.at(n).encode();
        backend.write(vec![crate::state::Write::Put(crate::state::Space::Checkpoints, key, bytes)], false)
    }
}

impl Handler<Msg> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let rows_in = rows_of(&msg.message);
        let mut out = Output::default();
        for (input, m) in self.intake.push(msg.input, msg.message) {
            let is_data = matches!(m, Message::Data(_) | Message::Payloads(_));
            let before = out.messages.len();
            self.handle_one(input, m, &mut out);
            if self.one_to_one && is_data && !out.messages[before..].iter().any(|m| matches!(m, Message::Data(_))) {
                out.messages.push(Message::Data(crate::row::Batch::events(Vec::new())));
            }
        }
        self.timers.set(self.timer_id, self.op.next_timer());
        let now = self.clock.now_ms();
        for e in &out.errors {
            tracing::debug!(operator = %self.metrics.name, error = %e, "row dropped");
            self.metrics.exception(e, now);
        }
        if self.send_error {
            let name = &self.metrics.name;
            out.messages.extend(out.errors.drain(..).map(|e| Message::Error(format!("run {name} error: {e}"))));
        }
        let rows_out: u64 = out.messages.iter().map(rows_of).sum();
        if rows_in > 0 || rows_out > 0 {
            self.metrics.processed(rows_in, rows_out, started.elapsed().as_micros() as i64, now);
        }
        if out.messages.is_empty() || self.downstream.is_empty() {
            return;
        }
        // Route now (the deal counter is actor state), send in order.
        let mut sends: Vec<(Edge, Message)> = Vec::with_capacity(out.messages.len());
        for m in out.messages {
            let is_data = matches!(m, Message::Data(_) | Message::Payloads(_));
            if self.split && is_data {
                let e = self.downstream[self.dealt % self.downstream.len()].clone();
                self.dealt += 1;
                sends.push((e, m));
            } else {
                let (last, rest) = self.downstream.split_last().expect("downstream is not empty");
                for e in rest {
                    sends.push((e.clone(), m.clone()));
                }
                sends.push((last.clone(), m));
            }
        }
        // Waiting here keeps this actor from taking more input until the
        // downstream mailboxes have room: that is the backpressure.
        ctx.wait(
            async move {
                for (e, m) in sends {
                    let _ = e.to.send(Msg { input: e.input, message: m }).await;
                }
            }
            .into_actor(self),
        );
    }
}

/// What sinks tell the rule's driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkEvent {
    /// Sink `sink` has seen barrier `n`: everything before it is delivered.
    Barrier {
        /// Sink index.
        sink: usize,
        /// Barrier number.
        n: u64,
    },
    /// Sink `sink` has seen the end of the input.
    Ended {
        /// Sink index.
        sink: usize,
    },
}
