//! The tasks that drive a running rule: its clock (ticks when timers are
//! due) and its checkpoint barriers.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, Timers};
use crate::feed::BarrierRequest;
use crate::graph::RuleGraph;
use crate::row::Message;

/// Sends a tick at rule start and whenever the earliest timer is due, and
/// at least every `heartbeat` ms when given (a shard's time must reach the
/// other shards even when it has no timer of its own).
pub(super) async fn drive_clock(
    graph: Arc<RuleGraph>,
    timers: Timers,
    clock: Arc<dyn Clock>,
    heartbeat: Option<i64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = clock.now_ms();
    graph.broadcast(Message::Tick(last)).await;
    loop {
        if *stop.borrow() {
            return;
        }
        // A deadline already ticked for is waiting for its operator to move
        // on; only a later one needs a tick.
        let next = match (timers.earliest_after(last), heartbeat) {
            (Some(t), Some(h)) => Some(t.min(last + h)),
            (t, h) => t.or(h.map(|h| last + h)),
        };
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

/// Where the barrier injector asks each fed source's reader (by source
/// index) for a barrier; each records its position itself (a
/// `PositionBook`) before the barrier enters the graph.
pub(super) struct Barriers {
    pub(super) readers: Vec<(usize, mpsc::Sender<BarrierRequest>)>,
}

/// When barriers are injected.
pub(super) enum Trigger {
    /// Every so many ms of the clock.
    Every(i64),
    /// When shard 0's barrier reaches this shard, with its epoch.
    Follow(mpsc::UnboundedReceiver<u64>),
}

/// Has every source's reader inject the next barrier whenever `trigger`
/// says so.
pub(super) async fn inject_barriers(
    clock: Arc<dyn Clock>,
    mut trigger: Trigger,
    mut epoch: u64,
    barriers: Barriers,
    mut stop: watch::Receiver<bool>,
    mut last_call: Option<mpsc::Receiver<tokio::sync::oneshot::Sender<u64>>>,
) {
    loop {
        // A stopping rule asks for one last checkpoint, taken at once.
        let mut reply = None;
        let mut next = epoch + 1;
        match &mut trigger {
            Trigger::Every(interval) => {
                let due = clock.now_ms() + *interval;
                let last = async {
                    match &mut last_call {
                        Some(l) => l.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let mut closed = false;
                tokio::select! {
                    _ = clock.sleep_until(due) => {}
                    r = last => match r {
                        Some(r) => reply = Some(r),
                        None => closed = true,
                    },
                    _ = stop.changed() => return,
                }
                // Nobody can ask for a last checkpoint any more.
                if closed {
                    last_call = None;
                    continue;
                }
            }
            Trigger::Follow(leader) => {
                tokio::select! {
                    n = leader.recv() => match n {
                        Some(n) if n > epoch => next = n,
                        Some(_) => continue,
                        None => return,
                    },
                    _ = stop.changed() => return,
                }
            }
        }
        epoch = next;
        for (_, r) in &barriers.readers {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if r.send((epoch, tx)).await.is_err() || rx.await.is_err() {
                return;
            }
        }
        if let Some(r) = reply {
            let _ = r.send(epoch);
        }
    }
}
