//! A rule as a graph of actix actors.
//!
//! Each source gets a decoder actor; the plan's stages follow as a chain of
//! operator actors; every sink is an actor at the end. Edges are bounded
//! mailboxes and every send waits for room, so a slow sink slows the rule
//! down to its sources. Time (ticks, watermarks) and barriers travel in
//! band with the rows.

mod actor;
mod align;
mod compile;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;
use weir_planner::PhysicalPlan;

pub use actor::{Msg, SinkEvent};
pub use align::Aligner;

use crate::clock::{Clock, Timers};
use crate::connector::Sink;
use crate::functions::{FuncError, Registry};
use crate::metrics::OpMetrics;
use crate::operator::RuleContext;
use crate::row::{Message, Payload};
use actor::{Edge, OperatorActor, SinkActor};

/// A running rule: where to push input, and what comes back.
pub struct RuleGraph {
    sources: Vec<Recipient<Msg>>,
    /// Operator timers; the clock driver fires ticks from them.
    pub timers: Timers,
    /// Barrier and end notifications from the sinks.
    pub events: mpsc::UnboundedReceiver<SinkEvent>,
    /// Metrics of every node, in topology order.
    pub metrics: Vec<Arc<OpMetrics>>,
    /// Number of sinks.
    pub sinks: usize,
}

/// A rule graph could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build rule {rule}: {message}")]
pub struct BuildError {
    /// Rule id.
    pub rule: String,
    /// What failed.
    pub message: String,
}

impl RuleGraph {
    /// Starts the actors of `plan` on the current actix system. Sinks come
    /// with their eKuiper node names (`sink_log_0`).
    ///
    /// # Errors
    /// A function of the plan is unknown to `registry`.
    pub fn start(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sinks: Vec<(String, Box<dyn Sink>)>,
    ) -> Result<RuleGraph, BuildError> {
        let cx = RuleContext { rule_id: Arc::from(plan.rule_id.as_str()), start_ms: clock.now_ms() };
        let err = |e: FuncError| BuildError { rule: plan.rule_id.clone(), message: e.0 };
        let compiled = compile::compile_plan(plan, registry, &cx).map_err(err)?;
        let mailbox = plan.options.buffer_length.max(1) as usize;
        let timers = Timers::default();
        let (tx, events) = mpsc::unbounded_channel();
        let mut metrics = Vec::new();

        let sink_count = sinks.len();
        let mut next: Vec<Edge> = sinks
            .into_iter()
            .enumerate()
            .map(|(i, (name, sink))| {
                let m = Arc::new(OpMetrics::new(name));
                metrics.push(m.clone());
                let sink = Arc::new(tokio::sync::Mutex::new(sink));
                let a = SinkActor { index: i, sink, events: tx.clone(), metrics: m, clock: clock.clone(), mailbox }
                    .start();
                Edge { to: a.recipient(), input: 0 }
            })
            .collect();

        let spawn = |stage: compile::Stage, downstream: Vec<Edge>, metrics: &mut Vec<Arc<OpMetrics>>| {
            let m = Arc::new(OpMetrics::new(stage.name));
            metrics.push(m.clone());
            let actor = OperatorActor {
                op: stage.op,
                aligner: Aligner::new(stage.inputs),
                downstream,
                clock: clock.clone(),
                timer_id: timers.register(),
                timers: timers.clone(),
                metrics: m,
                mailbox,
                last_tick: i64::MIN,
                send_error: plan.options.send_error,
            };
            actor.start().recipient::<Msg>()
        };

        // Start from the sinks backwards so every actor knows its downstream.
        let mut stage_addrs: Vec<Recipient<Msg>> = Vec::new();
        for stage in compiled.stages.into_iter().rev() {
            let r = spawn(stage, next, &mut metrics);
            stage_addrs.push(r.clone());
            next = vec![Edge { to: r, input: 0 }];
        }
        stage_addrs.reverse();
        let first = stage_addrs.first().cloned();

        let mut stream_input = 0;
        let mut sources = Vec::new();
        for (i, dec) in compiled.decoders.into_iter().enumerate() {
            let edge = match compiled.table_inputs.iter().find(|(s, _, _)| *s as usize == i) {
                Some((_, stage, input)) => Edge { to: stage_addrs[*stage].clone(), input: *input },
                None => {
                    let e = Edge { to: first.clone().expect("a plan has a project stage"), input: stream_input };
                    stream_input += 1;
                    e
                }
            };
            let mut src = dec;
            src.name = if plan.sources.len() == 1 { src.name } else { src.name.clone() };
            sources.push(spawn(src, vec![edge], &mut metrics));
        }
        metrics.reverse();
        Ok(RuleGraph { sources, timers, events, metrics, sinks: sink_count })
    }

    /// Sends payloads into source `source`; waits while its mailbox is full.
    pub async fn push(&self, source: usize, payloads: Vec<Payload>) {
        self.send(source, Message::Payloads(payloads)).await;
    }

    /// Sends a control message (tick, barrier, end) into every source.
    pub async fn broadcast(&self, message: Message) {
        for i in 0..self.sources.len() {
            self.send(i, message.clone()).await;
        }
    }

    async fn send(&self, source: usize, message: Message) {
        if let Some(s) = self.sources.get(source) {
            if let Err(e) = s.send(Msg { input: 0, message }).await {
                tracing::warn!(source, error = %e, "source mailbox closed");
            }
        }
    }

    /// The mailbox of source `i`'s decoder.
    pub fn source(&self, i: usize) -> Option<Recipient<Msg>> {
        self.sources.get(i).cloned()
    }

    /// Number of sources.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }
}
