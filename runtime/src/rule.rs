//! Running a rule live: its actor graph, its clock driver and its sources.
//!
//! [`RunningRule::start`] wires what [`crate::replay`] drives by hand:
//! sources push payloads into the graph as they arrive, and a clock driver
//! sends a tick whenever an operator's timer is due (window ends, session
//! timeouts, sliding delays). Stopping ends the sources, sends `End`
//! through the graph and waits for the sinks to flush.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::Recipient;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_planner::PhysicalPlan;

use crate::clock::{Clock, Timers};
use crate::connector::Sink;
use crate::graph::{BuildError, Msg, RuleGraph, SinkEvent};
use crate::metrics::OpMetrics;
use crate::row::{Message, Payload};
use crate::Registry;

/// Where a source sends what it reads. Sending waits while the rule is
/// busy (backpressure): a source should stop reading (an MQTT source stops
/// acknowledging) until `send` returns.
#[derive(Clone)]
pub struct SourceSender {
    to: Recipient<Msg>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
}

impl SourceSender {
    /// Sends payloads into the rule. Returns false once the rule stops.
    pub async fn send(&self, payloads: Vec<Payload>) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        self.to.send(Msg { input: 0, message: Message::Payloads(payloads) }).await.is_ok()
    }

    /// The rule clock's time, ms: the arrival time to stamp payloads with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Resolves when the rule stops.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A source of payloads for one stream or table of a rule.
pub trait Source: Send + 'static {
    /// Reads until the input ends or `out.stopped()` resolves, sending what
    /// it reads with `out.send`.
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A rule running on the current actix system.
pub struct RunningRule {
    graph: Arc<RuleGraph>,
    stop: watch::Sender<bool>,
    events: mpsc::UnboundedReceiver<SinkEvent>,
    tasks: Vec<JoinHandle<()>>,
    sources_done: Vec<JoinHandle<()>>,
}

impl RunningRule {
    /// Starts the graph of `plan`, one source per plan source (in plan
    /// order) and the clock driver.
    ///
    /// # Errors
    /// The plan uses a function the registry does not know.
    pub fn start(
        plan: &PhysicalPlan,
        registry: &Registry,
        clock: Arc<dyn Clock>,
        sources: Vec<Box<dyn Source>>,
        sinks: Vec<(String, Box<dyn Sink>)>,
    ) -> Result<RunningRule, BuildError> {
        let mut graph = RuleGraph::start(plan, registry, clock.clone(), sinks)?;
        let events = std::mem::replace(&mut graph.events, mpsc::unbounded_channel().1);
        let graph = Arc::new(graph);
        let (stop, stop_rx) = watch::channel(false);
        let mut sources_done = Vec::new();
        for (i, source) in sources.into_iter().enumerate() {
            let Some(to) = graph.source(i) else { break };
            let out = SourceSender { to, clock: clock.clone(), stop: stop_rx.clone() };
            sources_done.push(actix::spawn(source.run(out)));
        }
        let driver = actix::spawn(drive_clock(graph.clone(), graph.timers.clone(), clock, stop_rx));
        Ok(RunningRule { graph, stop, events, tasks: vec![driver], sources_done })
    }

    /// Metrics of every node of the rule.
    pub fn metrics(&self) -> &[Arc<OpMetrics>] {
        &self.graph.metrics
    }

    /// Waits until every source has ended on its own (finite inputs).
    pub async fn wait_sources(&mut self) {
        for t in self.sources_done.drain(..) {
            let _ = t.await;
        }
    }

    /// Stops the rule: sources and clock stop, `End` flows through the
    /// graph, and this returns once every sink has flushed.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..).chain(self.sources_done.drain(..)) {
            t.abort();
            let _ = t.await;
        }
        self.graph.broadcast(Message::End).await;
        let mut ended = 0;
        while ended < self.graph.sinks {
            match self.events.recv().await {
                Some(SinkEvent::Ended { .. }) => ended += 1,
                Some(_) => {}
                None => break,
            }
        }
    }
}

/// Sends a tick at rule start and whenever the earliest timer is due.
async fn drive_clock(graph: Arc<RuleGraph>, timers: Timers, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut last = clock.now_ms();
    graph.broadcast(Message::Tick(last)).await;
    loop {
        if *stop.borrow() {
            return;
        }
        // A deadline already ticked for is waiting for its operator to move
        // on; only a later one needs a tick.
        let next = timers.earliest_after(last);
        let changed = timers.changed();
        match next {
            Some(t) => {
                tokio::select! {
                    _ = clock.sleep_until(t) => {
                        last = clock.now_ms().max(t);
                        graph.broadcast(Message::Tick(last)).await;
                    }
                    _ = changed => {}
                    _ = stop.changed() => return,
                }
            }
            None => {
                tokio::select! {
                    _ = changed => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
