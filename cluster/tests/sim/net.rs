//! The fake network: per-message random delay (which also reorders),
//! random drops, and partitions as a set of cut directed links.

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::Message;
use rand::rngs::StdRng;
use rand::Rng;

/// A message in flight.
struct Flight {
    at: u64,
    /// Tie-breaker that shuffles messages due at the same time.
    order: u64,
    msg: Message,
}

#[derive(Default)]
pub(crate) struct Net {
    flights: Vec<Flight>,
    cut: BTreeSet<(u64, u64)>,
    /// Percent of messages dropped.
    pub(crate) drop_pct: u32,
    /// Largest delay in ticks (0: next round of the same tick).
    pub(crate) max_delay: u64,
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
}

impl Net {
    pub(crate) fn new(drop_pct: u32, max_delay: u64) -> Net {
        Net { drop_pct, max_delay, ..Net::default() }
    }

    pub(crate) fn send(&mut self, rng: &mut StdRng, now: u64, msg: Message) {
        self.sent += 1;
        if self.cut.contains(&(msg.from, msg.to)) || rng.gen_range(0..100) < self.drop_pct {
            self.dropped += 1;
            return;
        }
        let at = now + rng.gen_range(0..=self.max_delay);
        self.flights.push(Flight { at, order: rng.gen(), msg });
    }

    /// Removes and returns the messages due at `now`, in shuffled order.
    pub(crate) fn due(&mut self, now: u64) -> Vec<Message> {
        let (mut due, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.flights).into_iter().partition(|f| f.at <= now);
        self.flights = rest;
        due.sort_by_key(|f| f.order);
        due.into_iter().map(|f| f.msg).collect()
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub(crate) fn partition(&mut self, side: &BTreeSet<u64>, all: &BTreeSet<u64>) {
        for a in side {
            for b in all.difference(side) {
                self.cut.insert((*a, *b));
                self.cut.insert((*b, *a));
            }
        }
    }

    /// Cuts one direction only (asymmetric failure).
    pub(crate) fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    pub(crate) fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Messages in flight per addressee (for the trace).
    pub(crate) fn pending(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for f in &self.flights {
            *m.entry(f.msg.to).or_default() += 1;
        }
        m
    }
}
