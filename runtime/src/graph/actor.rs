//! The actix shell around an [`Operator`]: a bounded mailbox, barrier
//! alignment, timers, metrics, and sends that wait for the downstream
//! mailbox (backpressure all the way to the source).

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::align::Aligner;
use crate::clock::{Clock, Timers};
use crate::connector::Sink;
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

fn rows_of(m: &Message) -> u64 {
    match m {
        Message::Data(b) => b.rows.len() as u64,
        Message::Payloads(p) => p.len() as u64,
        _ => 0,
    }
}

/// Runs one operator.
pub(crate) struct OperatorActor {
    pub(crate) op: Box<dyn Operator>,
    pub(crate) aligner: Aligner,
    pub(crate) downstream: Vec<Edge>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) timers: Timers,
    pub(crate) timer_id: usize,
    pub(crate) metrics: Arc<OpMetrics>,
    pub(crate) mailbox: usize,
    pub(crate) last_tick: i64,
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
            Message::Watermark(wm) => {
                self.op.on_watermark(wm, out);
                out.messages.push(Message::Watermark(wm));
            }
            m @ (Message::Barrier(_) | Message::End) => out.messages.push(m),
        }
    }
}

impl Handler<Msg> for OperatorActor {
    type Result = ();

    fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let rows_in = rows_of(&msg.message);
        let mut out = Output::default();
        for (input, m) in self.aligner.push(msg.input, msg.message) {
            self.handle_one(input, m, &mut out);
        }
        self.timers.set(self.timer_id, self.op.next_timer());
        let now = self.clock.now_ms();
        for e in &out.errors {
            tracing::debug!(operator = %self.metrics.name, error = %e, "row dropped");
            self.metrics.exception(e, now);
        }
        let rows_out: u64 = out.messages.iter().map(rows_of).sum();
        if rows_in > 0 || rows_out > 0 {
            self.metrics.processed(rows_in, rows_out, started.elapsed().as_micros() as i64, now);
        }
        if out.messages.is_empty() || self.downstream.is_empty() {
            return;
        }
        let edges = self.downstream.clone();
        let messages = out.messages;
        // Waiting here keeps this actor from taking more input until the
        // downstream mailboxes have room: that is the backpressure.
        ctx.wait(
            async move {
                for m in messages {
                    let (last, rest) = edges.split_last().expect("downstream is not empty");
                    for e in rest {
                        let _ = e.to.send(Msg { input: e.input, message: m.clone() }).await;
                    }
                    let _ = last.to.send(Msg { input: last.input, message: m }).await;
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

/// Runs one sink.
pub(crate) struct SinkActor {
    pub(crate) index: usize,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<SinkEvent>,
    pub(crate) metrics: Arc<OpMetrics>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) mailbox: usize,
}

impl Actor for SinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<Msg> for SinkActor {
    type Result = ();

    fn handle(&mut self, msg: Msg, _ctx: &mut Context<Self>) {
        let started = Instant::now();
        let now = self.clock.now_ms();
        match msg.message {
            Message::Data(b) => {
                let n = b.rows.len() as u64;
                let mut emit = |rows: &[crate::value::Value]| {
                    if let Err(e) = self.sink.emit(rows) {
                        self.metrics.exception(&e.0, now);
                    }
                };
                let mut take = |r: crate::row::Row| r.slots.into_iter().next().unwrap_or_default();
                if b.window.is_some() {
                    let rows: Vec<_> = b.rows.into_iter().map(&mut take).collect();
                    emit(&rows);
                } else {
                    for r in b.rows {
                        emit(&[take(r)]);
                    }
                }
                self.metrics.processed(n, n, started.elapsed().as_micros() as i64, now);
            }
            Message::Barrier(n) => {
                let _ = self.events.send(SinkEvent::Barrier { sink: self.index, n });
            }
            Message::End => {
                self.sink.close();
                let _ = self.events.send(SinkEvent::Ended { sink: self.index });
            }
            _ => {}
        }
    }
}
