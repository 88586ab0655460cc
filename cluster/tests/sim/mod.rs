//! The simulation driver: nodes, virtual clock, failure schedule, client.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use weir_cluster::{Command, MemberChange, Metadata, NodeConfig, NodeId, RaftNode};
use weir_runtime::state::MemoryBackend;

mod invariants;
mod net;

use invariants::{not_converged, Checker};
use net::Net;

/// Shape of one schedule.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    /// Nodes at the start (node 1 bootstraps, the others join).
    pub(crate) nodes: u64,
    /// Highest node id ever created (joins add fresh ids up to it).
    pub(crate) max_id: u64,
    /// Ticks of random failures and client traffic.
    pub(crate) chaos_ticks: u64,
    /// Ticks allowed to converge after healing.
    pub(crate) heal_ticks: u64,
    /// Delivery rounds per tick (messages sent with delay 0 arrive in the next round).
    pub(crate) rounds: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { nodes: 3, max_id: 6, chaos_ticks: 500, heal_ticks: 1500, rounds: 4 }
    }
}

/// Counters of one or many schedules.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) elections: u64,
    pub(crate) crashes: u64,
    pub(crate) partitions: u64,
    pub(crate) joins: u64,
    pub(crate) leaves: u64,
    pub(crate) transfers: u64,
    pub(crate) applied_commands: u64,
    pub(crate) rejected_commands: u64,
    pub(crate) snapshots_installed: u64,
    pub(crate) messages: u64,
    pub(crate) dropped: u64,
    pub(crate) converge_ticks: u64,
    /// Hash of everything observable, to compare two runs.
    pub(crate) trace: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, o: &Stats) {
        self.elections += o.elections;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.joins += o.joins;
        self.leaves += o.leaves;
        self.transfers += o.transfers;
        self.applied_commands += o.applied_commands;
        self.rejected_commands += o.rejected_commands;
        self.snapshots_installed += o.snapshots_installed;
        self.messages += o.messages;
        self.dropped += o.dropped;
        self.converge_ticks = self.converge_ticks.max(o.converge_ticks);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} elections, {} crashes, {} partitions, {} joins, {} leaves, {} transfers, {} commands applied \
             ({} rejected), {} snapshots installed, {} messages ({} dropped), slowest convergence {} ticks",
            self.elections,
            self.crashes,
            self.partitions,
            self.joins,
            self.leaves,
            self.transfers,
            self.applied_commands,
            self.rejected_commands,
            self.snapshots_installed,
            self.messages,
            self.dropped,
            self.converge_ticks
        )
    }
}

struct SimNode {
    kv: Arc<MemoryBackend>,
    node: Option<RaftNode>,
    /// Removed from the cluster and shut down for good.
    removed: bool,
    /// Restarted since the last check.
    fresh: bool,
}

pub(crate) struct Sim {
    seed: u64,
    cfg: SimConfig,
    rng: StdRng,
    now: u64,
    nodes: BTreeMap<NodeId, SimNode>,
    net: Net,
    checker: Checker,
    stats: Stats,
    next_id: NodeId,
    joining: BTreeSet<NodeId>,
    leaving: BTreeSet<NodeId>,
    trace: DefaultHasher,
}

impl Sim {
    pub(crate) fn new(seed: u64, cfg: SimConfig) -> Sim {
        let mut sim = Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            nodes: BTreeMap::new(),
            net: Net::new(2, 2),
            checker: Checker::default(),
            stats: Stats::default(),
            next_id: cfg.nodes + 1,
            joining: BTreeSet::new(),
            leaving: BTreeSet::new(),
            trace: DefaultHasher::new(),
            cfg,
        };
        let kv = Arc::new(MemoryBackend::default());
        RaftNode::bootstrap(kv.clone(), 1, "sim-1").expect("bootstrap");
        sim.nodes.insert(1, SimNode { kv, node: None, removed: false, fresh: true });
        sim.restart(1);
        for id in 2..=sim.cfg.nodes {
            sim.add_empty_node(id);
        }
        sim
    }

    fn node_config(&self, id: NodeId) -> NodeConfig {
        NodeConfig {
            snapshot_interval: 16,
            compact_keep: 4,
            seed: self.seed.wrapping_mul(1000).wrapping_add(id),
            ..NodeConfig::new(id)
        }
    }

    fn add_empty_node(&mut self, id: NodeId) {
        self.nodes
            .insert(id, SimNode { kv: Arc::new(MemoryBackend::default()), node: None, removed: false, fresh: true });
        self.restart(id);
        self.joining.insert(id);
    }

    fn restart(&mut self, id: NodeId) {
        let cfg = self.node_config(id);
        let n = self.nodes.get_mut(&id).expect("known node");
        n.node = Some(RaftNode::open(cfg, n.kv.clone()).expect("open from storage"));
        n.fresh = true;
    }

    fn crash(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.node.take().is_some() {
                self.stats.crashes += 1;
            }
        }
    }

    fn running(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.node.is_some()).map(|(id, _)| *id).collect()
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.term())
            .map(|n| n.id())
    }

    /// The most advanced metadata among running nodes.
    fn view(&self) -> Metadata {
        let best = self.nodes.values().filter_map(|n| n.node.as_ref()).max_by_key(|n| n.applied());
        best.map(|n| n.metadata().clone()).unwrap_or_default()
    }

    /// Runs the schedule; panics (naming the seed) on a violated invariant
    /// or if the cluster does not converge after healing.
    pub(crate) fn run(mut self) -> Stats {
        if let Some(n) = self.nodes.get_mut(&1).and_then(|n| n.node.as_mut()) {
            n.campaign().expect("bootstrapped node campaigns");
        }
        for _ in 0..self.cfg.chaos_ticks {
            self.chaos();
            self.step();
        }
        self.net.heal();
        self.net.drop_pct = 0;
        self.net.max_delay = 1;
        let crashed: Vec<_> =
            self.nodes.iter().filter(|(_, n)| n.node.is_none() && !n.removed).map(|(id, _)| *id).collect();
        for id in crashed {
            self.restart(id);
        }
        let start = self.now;
        loop {
            self.step();
            let nodes: Vec<&RaftNode> =
                self.nodes.values().filter(|n| !n.removed).filter_map(|n| n.node.as_ref()).collect();
            let why = not_converged(&nodes);
            if why.is_none() && self.joining.is_empty() && self.leaving.is_empty() {
                break;
            }
            assert!(
                self.now - start < self.cfg.heal_ticks,
                "seed {}: no convergence {} ticks after healing: {why:?} (joining {:?}, leaving {:?})",
                self.seed,
                self.cfg.heal_ticks,
                self.joining,
                self.leaving
            );
        }
        self.stats.converge_ticks = self.now - start;
        self.stats.elections = self.checker.elections;
        self.stats.messages = self.net.sent;
        self.stats.dropped = self.net.dropped;
        for n in self.nodes.values().filter_map(|n| n.node.as_ref()) {
            self.stats.snapshots_installed += n.snapshots_installed();
        }
        self.now.hash(&mut self.trace);
        crate::sim::invariants::hash(&self.view()).hash(&mut self.trace);
        self.stats.trace = self.trace.finish();
        self.stats
    }

    /// One tick: client traffic, ticks, then delivery rounds.
    fn step(&mut self) {
        self.now += 1;
        self.client();
        for id in self.running() {
            if let Some(n) = self.node_mut(id) {
                n.tick();
            }
            self.flush(id);
        }
        for round in 0..self.cfg.rounds {
            let due = self.net.due(self.now);
            if due.is_empty() && round > 0 {
                break;
            }
            for m in due {
                let to = m.to;
                if let Some(n) = self.node_mut(to) {
                    let _ = n.step(m); // unknown peers and stale messages are refused, not fatal
                    self.flush(to);
                }
            }
        }
        self.net.pending().len().hash(&mut self.trace);
    }

    fn node_mut(&mut self, id: NodeId) -> Option<&mut RaftNode> {
        self.nodes.get_mut(&id).and_then(|n| n.node.as_mut())
    }

    /// Processes a node's Ready, sends its messages, checks the invariants.
    fn flush(&mut self, id: NodeId) {
        let Some(sn) = self.nodes.get_mut(&id) else { return };
        let Some(node) = sn.node.as_mut() else { return };
        let out = node.process_ready().unwrap_or_else(|e| panic!("seed {}: node {id}: {e}", self.seed));
        for a in &out.applied {
            if a.outcome.is_ok() {
                self.stats.applied_commands += 1;
            } else {
                self.stats.rejected_commands += 1;
            }
        }
        self.checker.check(self.seed, node, sn.fresh);
        sn.fresh = false;
        (self.now, id, node.term(), node.applied(), node.leader()).hash(&mut self.trace);
        for m in out.messages {
            self.net.send(&mut self.rng, self.now, m);
        }
    }

    /// Random failures.
    fn chaos(&mut self) {
        let roll = self.rng.gen_range(0..1000);
        let running = self.running();
        match roll {
            0..=9 => {
                if let Some(&id) = running.iter().choose(&mut self.rng) {
                    self.crash(id);
                }
            }
            10..=17 => {
                if let Some(id) = self.leader() {
                    self.crash(id);
                }
            }
            18..=39 => {
                let crashed = self.nodes.iter().filter(|(_, n)| n.node.is_none() && !n.removed).map(|(id, _)| *id);
                if let Some(id) = crashed.choose(&mut self.rng) {
                    self.restart(id);
                }
            }
            40..=46 => {
                let all: BTreeSet<NodeId> = self.nodes.keys().copied().collect();
                let k = self.rng.gen_range(1..=all.len().div_ceil(2));
                let side: BTreeSet<NodeId> =
                    all.iter().copied().choose_multiple(&mut self.rng, k).into_iter().collect();
                self.net.partition(&side, &all);
                self.stats.partitions += 1;
            }
            47..=49 => {
                let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                let a = ids[self.rng.gen_range(0..ids.len())];
                let b = ids[self.rng.gen_range(0..ids.len())];
                self.net.cut_one_way(a, b);
            }
            50..=64 if self.net.is_partitioned() => self.net.heal(),
            65..=69 => {
                self.net.drop_pct = self.rng.gen_range(0..20);
                self.net.max_delay = self.rng.gen_range(0..5);
            }
            70..=73 if self.next_id <= self.cfg.max_id && self.joining.is_empty() && self.leaving.is_empty() => {
                let id = self.next_id;
                self.next_id += 1;
                self.add_empty_node(id);
                self.stats.joins += 1;
            }
            74..=76 if self.joining.is_empty() && self.leaving.is_empty() => {
                let view = self.view();
                if view.nodes.len() > 3 {
                    if let Some(&id) = view.nodes.keys().choose(&mut self.rng) {
                        self.leaving.insert(id);
                        self.stats.leaves += 1;
                    }
                }
            }
            77..=79 => {
                let to = self.view().nodes.keys().copied().choose(&mut self.rng);
                if let (Some(l), Some(to)) = (self.leader(), to) {
                    if let Some(n) = self.node_mut(l) {
                        n.transfer_leader(to);
                        self.stats.transfers += 1;
                    }
                    self.flush(l);
                }
            }
            _ => {}
        }
    }

    /// Client traffic: membership changes until done, random commands.
    fn client(&mut self) {
        let view = self.view();
        let leader_md = self.leader().and_then(|l| self.nodes[&l].node.as_ref()).map(|n| n.metadata().clone());
        if let Some(md) = &leader_md {
            // A join is done once the leader promoted the learner to voter.
            self.joining.retain(|id| md.nodes.get(id).is_none_or(|n| n.learner));
            let done: Vec<NodeId> = self.leaving.iter().filter(|id| !md.nodes.contains_key(id)).copied().collect();
            for id in done {
                self.leaving.remove(&id);
                self.crash(id);
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.removed = true;
                }
            }
        }
        if self.now.is_multiple_of(15) {
            let changes: Vec<MemberChange> = self
                .joining
                .iter()
                .map(|id| MemberChange::Add { id: *id, addr: format!("sim-{id}") })
                .chain(self.leaving.iter().map(|id| MemberChange::Remove { id: *id }))
                .collect();
            for change in changes {
                let via = self.running().into_iter().filter(|id| view.nodes.contains_key(id)).choose(&mut self.rng);
                if let Some(via) = via {
                    if let Some(n) = self.node_mut(via) {
                        let _ = n.propose_member_change(change);
                    }
                    self.flush(via);
                }
            }
        }
        if self.rng.gen_range(0..100) < 30 {
            let cmd = self.random_command(&view);
            let via = self.running().into_iter().choose(&mut self.rng);
            if let Some(via) = via {
                if let Some(n) = self.node_mut(via) {
                    let _ = n.propose(cmd);
                }
                self.flush(via);
            }
        }
    }

    fn random_command(&mut self, view: &Metadata) -> Command {
        let rule = format!("r{}", self.rng.gen_range(0..5));
        match self.rng.gen_range(0..100) {
            0..=29 => {
                Command::PutRule { id: rule, json: format!("{{\"v\":{}}}", self.now), shards: self.rng.gen_range(1..4) }
            }
            30..=34 => Command::DropRule { id: rule },
            35..=44 => {
                Command::PutStream { name: format!("s{}", self.rng.gen_range(0..3)), sql: "CREATE STREAM".into() }
            }
            45..=47 => Command::BumpShardEpoch { rule, shard: 0 },
            48..=49 => {
                // A shard asking its rule to roll back, with the epochs some node sees (maybe stale: then refused).
                let epochs =
                    view.placement.get(&rule).map(|s| s.iter().map(|sp| sp.epoch).collect()).unwrap_or_default();
                Command::RestartShards { rule, epochs }
            }
            50..=59 => {
                Command::ReportLoad { node: self.rng.gen_range(1..=self.cfg.max_id), load: self.rng.gen_range(0..3) }
            }
            _ => {
                // A checkpoint commit by the primary as some node sees it (maybe stale: then fenced).
                let (shard, epoch) = view
                    .placement
                    .get(&rule)
                    .and_then(|s| s.iter().enumerate().choose(&mut self.rng))
                    .map(|(i, sp)| (i as u32, sp.epoch))
                    .unwrap_or((0, 1));
                let epoch = if self.rng.gen_bool(0.2) { epoch.saturating_sub(1) } else { epoch };
                Command::CommitCheckpoint { rule, shard, shard_epoch: epoch, checkpoint: self.now }
            }
        }
    }
}
