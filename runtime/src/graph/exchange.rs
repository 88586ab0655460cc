//! The two ends of the exchange between the shards of a sharded rule (see
//! [`crate::shard`]): [`ExchangeActor`] sends each decoded row to the
//! shard owning its key; [`ShardIntake`] takes in what all shards send one
//! shard, with barriers aligned and time merged.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::actor::{rows_of, Edge, Msg};
use super::align::Aligner;
use crate::clock::Clock;
use crate::expr::Expr;
use crate::metrics::OpMetrics;
use crate::operator::RuleContext;
use crate::row::{Batch, Message};
use crate::shard::{shard_of, ShardSender};

/// Sends this shard's decoded rows to their shards, and its time, barriers
/// and end to every shard.
pub(crate) struct ExchangeActor {
    pub(crate) index: u32,
    pub(crate) count: u32,
    /// The GROUP BY keys (evaluated on decoded rows).
    pub(crate) keys: Vec<Expr>,
    pub(crate) cx: RuleContext,
    /// This shard's own intake (input `index`).
    pub(crate) local: Edge,
    /// The other shards, by index (`None` at `index`).
    pub(crate) peers: Vec<Option<ShardSender>>,
    pub(crate) mailbox: usize,
    pub(crate) metrics: Arc<OpMetrics>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Event time: the latest event time read here, and what each shard
    /// was last told of it (see [`ExchangeActor::progress`]).
    pub(crate) event_time: Option<EventProgress>,
}

/// How far this shard's input has come in event time.
#[derive(Default)]
pub(crate) struct EventProgress {
    latest: Option<i64>,
    told: Vec<i64>,
}

impl Actor for ExchangeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl ExchangeActor {
    /// With event time, every shard is told how far this shard's input has
    /// come (as a watermark on this shard's input), also when none of the
    /// rows went to it: its watermark is the least over its inputs, like
    /// one rule instance's over its streams. Sent with each tick (at least
    /// every `TIME_HEARTBEAT_MS`), to the shards not told yet.
    fn progress(&mut self, sends: &mut Vec<(u32, Message)>) {
        let Some(p) = &mut self.event_time else { return };
        let Some(latest) = p.latest else { return };
        p.told.resize(self.count as usize, i64::MIN);
        for (to, told) in p.told.iter_mut().enumerate() {
            if latest > *told {
                *told = latest;
                sends.push((to as u32, Message::Watermark(latest)));
            }
        }
    }

    /// The rows of `batch` by owning shard. A row whose key does not
    /// evaluate stays here: the aggregation reports its error.
    fn partition(&self, batch: Batch) -> Vec<Vec<crate::row::Row>> {
        let mut parts: Vec<Vec<crate::row::Row>> = (0..self.count).map(|_| Vec::new()).collect();
        let ecx = self.cx.eval(0, None);
        let mut key = Vec::with_capacity(self.keys.len());
        for row in batch.rows {
            key.clear();
            let ok = self.keys.iter().all(|k| k.eval(&row, &ecx).map(|v| key.push(v)).is_ok());
            let to = if ok { shard_of(&key, self.count) } else { self.index };
            parts[to as usize].push(row);
        }
        parts
    }
}

impl Handler<Msg> for ExchangeActor {
    type Result = ();

    fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let rows = rows_of(&msg.message);
        // (shard, message) in send order.
        let mut sends: Vec<(u32, Message)> = Vec::new();
        match msg.message {
            Message::Data(batch) => {
                if let Some(p) = &mut self.event_time {
                    let max = batch.rows.iter().map(|r| r.ts).max();
                    p.latest = p.latest.max(max);
                }
                for (to, part) in self.partition(batch).into_iter().enumerate() {
                    if !part.is_empty() {
                        sends.push((to as u32, Message::Data(Batch::events(part))));
                    }
                }
            }
            // An error row is reported where it happened.
            m @ Message::Error(_) => sends.push((self.index, m)),
            m @ Message::Tick(_) => {
                self.progress(&mut sends);
                sends.extend((0..self.count).map(|to| (to, m.clone())));
            }
            // Time, barriers and the end reach every shard.
            m => sends.extend((0..self.count).map(|to| (to, m.clone()))),
        }
        if rows > 0 {
            self.metrics.processed(rows, rows, started.elapsed().as_micros() as i64, self.clock.now_ms());
        }
        let (index, local) = (self.index, self.local.clone());
        let peers = self.peers.clone();
        // Waiting keeps this actor from taking more input until every
        // shard has room: backpressure across nodes.
        ctx.wait(
            async move {
                for (to, m) in sends {
                    match peers.get(to as usize).and_then(Option::as_ref) {
                        Some(peer) => {
                            if peer.send((index, m)).await.is_err() {
                                tracing::debug!(shard = to, "the link to a shard is closed");
                            }
                        }
                        None => {
                            let _ = local.to.send(Msg { input: local.input, message: m }).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// Takes in one shard's N inputs (one per shard): barriers aligned, and
/// processing time as the earliest of the inputs, so a window closes only
/// when every shard has passed its end. (Event time needs no merging here:
/// the watermark generator after it takes each input's progress.) A
/// barrier from shard 0, which starts every checkpoint, is announced on
/// `follow` as it arrives, for this shard to inject it into its own
/// sources.
pub(crate) struct ShardIntake {
    aligner: Aligner,
    ticks: Vec<i64>,
    tick: i64,
    follow: Option<mpsc::UnboundedSender<u64>>,
}

impl ShardIntake {
    /// For `count` shards; `follow` is `None` on shard 0.
    pub(crate) fn new(count: usize, follow: Option<mpsc::UnboundedSender<u64>>) -> ShardIntake {
        ShardIntake { aligner: Aligner::new(count), ticks: vec![i64::MIN; count], tick: i64::MIN, follow }
    }

    pub(crate) fn push(&mut self, input: usize, msg: Message) -> Vec<(usize, Message)> {
        if let (Message::Barrier(n), 0, Some(f)) = (&msg, input, &self.follow) {
            let _ = f.send(*n);
        }
        let mut out = self.aligner.push(input, msg);
        out.retain_mut(|(i, m)| match m {
            Message::Tick(t) => Self::merge(&mut self.ticks, &mut self.tick, *i, t),
            _ => true,
        });
        out
    }

    /// Records input `i`'s time `t`; rewrites `t` to the merged time and
    /// says whether that advanced.
    fn merge(times: &mut [i64], merged: &mut i64, i: usize, t: &mut i64) -> bool {
        if let Some(x) = times.get_mut(i) {
            *x = (*x).max(*t);
        }
        let min = times.iter().copied().min().unwrap_or(i64::MIN);
        if min > *merged {
            *merged = min;
            *t = min;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_the_earliest_shard_time() {
        let mut s = ShardIntake::new(2, None);
        assert!(s.push(0, Message::Tick(10)).is_empty());
        assert_eq!(s.push(1, Message::Tick(7)), vec![(1, Message::Tick(7))]);
        assert_eq!(s.push(1, Message::Tick(12)), vec![(1, Message::Tick(10))]);
        assert!(s.push(1, Message::Tick(15)).is_empty());
    }

    #[test]
    fn barriers_of_shard_zero_are_announced_and_aligned() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut s = ShardIntake::new(2, Some(tx));
        assert!(s.push(0, Message::Barrier(3)).is_empty());
        assert_eq!(rx.try_recv().ok(), Some(3));
        assert_eq!(s.push(1, Message::Barrier(3)), vec![(1, Message::Barrier(3))]);
        assert!(rx.try_recv().is_err(), "only shard 0's barriers are announced");
    }
}
