//! Joins go through learners: a joining node is a learner until it caught
//! up, never counts towards the quorum before, and is promoted by whichever
//! node leads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use raft::eraftpb::Message;
use weir_runtime::state::{MemoryBackend, StateBackend};

use super::*;

fn config(id: NodeId) -> NodeConfig {
    NodeConfig { snapshot_interval: 8, compact_keep: 2, seed: 40 + id, ..NodeConfig::new(id) }
}

/// Nodes over a lossless in-memory network; `cut` nodes neither send nor
/// receive (a partition of each of them alone).
struct Net {
    kvs: BTreeMap<NodeId, Arc<dyn StateBackend>>,
    nodes: BTreeMap<NodeId, RaftNode>,
    cut: BTreeSet<NodeId>,
    inflight: Vec<Message>,
    /// Reads that completed: (node, context).
    reads: Vec<(NodeId, u64)>,
}

impl Net {
    /// Node 1 bootstrapped and leading, `others` empty (waiting to join).
    fn new(others: &[NodeId]) -> Net {
        let mut net = Net {
            kvs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            cut: BTreeSet::new(),
            inflight: Vec::new(),
            reads: Vec::new(),
        };
        let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        RaftNode::bootstrap(kv.clone(), 1, "n1").unwrap();
        net.kvs.insert(1, kv);
        for &id in others {
            net.kvs.insert(id, Arc::new(MemoryBackend::default()));
        }
        for id in net.kvs.keys().copied().collect::<Vec<_>>() {
            net.start(id);
        }
        net.node(1).campaign().unwrap();
        net.flush(1);
        assert!(net.node(1).is_leader());
        net
    }

    fn start(&mut self, id: NodeId) {
        self.nodes.insert(id, RaftNode::open(config(id), self.kvs[&id].clone()).unwrap());
    }

    fn node(&mut self, id: NodeId) -> &mut RaftNode {
        self.nodes.get_mut(&id).expect("running node")
    }

    fn flush(&mut self, id: NodeId) {
        let out = self.node(id).process_ready().unwrap();
        self.reads.extend(out.reads.iter().map(|ctx| (id, *ctx)));
        if !self.cut.contains(&id) {
            self.inflight.extend(out.messages);
        }
    }

    /// One tick of every node, then deliveries until quiet.
    fn tick(&mut self) {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.node(id).tick();
            self.flush(id);
        }
        self.deliver();
    }

    /// Delivers messages until quiet (no ticks: no promotion either).
    fn deliver(&mut self) {
        for _ in 0..20 {
            if self.inflight.is_empty() {
                break;
            }
            for m in std::mem::take(&mut self.inflight) {
                let to = m.to;
                if self.cut.contains(&to) || !self.nodes.contains_key(&to) {
                    continue;
                }
                let _ = self.node(to).step(m);
                self.flush(to);
            }
        }
    }

    /// Ticks until `done` holds; panics after `max` ticks. Returns the ticks taken.
    fn until(&mut self, max: u64, what: &str, done: impl Fn(&Net) -> bool) -> u64 {
        for t in 0..max {
            if done(self) {
                return t;
            }
            self.tick();
        }
        panic!("{what}: not after {max} ticks");
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes.values().filter(|n| n.is_leader()).max_by_key(|n| n.term()).map(|n| n.id())
    }

    fn join(&mut self, id: NodeId) {
        let leader = self.leader().expect("a leader");
        self.node(leader).propose_member_change(MemberChange::Add { id, addr: format!("n{id}") }).unwrap();
        self.flush(leader);
    }

    /// Whether `id` and every running member see `id` as a voter.
    fn voter_everywhere(&self, id: NodeId) -> bool {
        let members = self.nodes.values().filter(|n| n.is_member() || n.id() == id);
        members.into_iter().all(|n| n.metadata().nodes.get(&id).is_some_and(|i| !i.learner))
    }

    fn put(&mut self, on: NodeId, name: &str) -> ProposalId {
        let pid = self.node(on).propose(Command::PutStream { name: name.into(), sql: "x".into() }).unwrap();
        self.flush(on);
        pid
    }
}

#[test]
fn a_joining_node_is_a_learner_until_it_caught_up_then_a_voter() {
    let mut net = Net::new(&[2]);
    for i in 0..20 {
        net.put(1, &format!("s{i}"));
    }
    net.join(2);
    // Applied on the leader at once (one voter): a learner, shown as such.
    let md = net.node(1).metadata().clone();
    assert!(md.nodes[&2].learner, "{md:?}");
    assert_eq!(md.live_nodes(), vec![1], "a learner is not placeable");
    let status = net.node(1).status();
    let p2 = status.progress.iter().find(|p| p.id == 2).unwrap();
    assert!(p2.learner && p2.matched == 0, "{p2:?}");
    let n2 = net.node(2);
    assert!(!n2.is_member() && !n2.is_voter());
    // It catches up (by snapshot: the log is compacted), then is promoted.
    let took = net.until(50, "promotion", |n| n.voter_everywhere(2));
    assert!(took > 0, "not promoted before it caught up");
    let n2 = &net.nodes[&2];
    assert!(n2.is_voter() && n2.is_member());
    assert_eq!(n2.snapshots_installed(), 1);
    assert_eq!(net.nodes[&1].metadata(), n2.metadata());
    let status = net.node(1).status();
    assert!(status.progress.iter().all(|p| !p.learner), "{status:?}");
    assert_eq!(net.node(1).conf_state.voters.len(), 2);
}

#[test]
fn a_cut_off_learner_neither_blocks_commits_nor_gets_promoted() {
    let mut net = Net::new(&[2]);
    net.cut.insert(2);
    net.join(2);
    net.tick();
    // One voter and a learner that never answers: were the learner a
    // voter, the quorum would be 2 and nothing would commit.
    let pid = net.put(1, "after-join");
    assert!(net.node(1).metadata().streams.contains_key("after-join"), "{pid:?} committed without the learner");
    for _ in 0..60 {
        net.tick();
    }
    assert!(net.node(1).metadata().nodes[&2].learner, "not promoted while cut off");
    assert!(net.node(1).conf_state.learners.contains(&2));
    // Healed, it catches up and is promoted.
    net.cut.clear();
    net.until(60, "promotion after healing", |n| n.voter_everywhere(2));
}

#[test]
fn a_new_leader_promotes_a_learner_the_old_one_did_not() {
    let mut net = Net::new(&[2, 3, 4]);
    for id in [2, 3] {
        net.join(id);
        net.until(60, "promotion", |n| n.voter_everywhere(id));
    }
    // Node 4 joins while cut off: the leader cannot promote it, then dies.
    net.cut.insert(4);
    net.join(4);
    net.until(20, "learner everywhere", |n| {
        n.nodes.iter().filter(|(id, _)| **id != 4).all(|(_, m)| m.metadata().nodes.get(&4).is_some_and(|i| i.learner))
    });
    net.nodes.remove(&1);
    net.cut.clear();
    net.until(100, "a new leader", |n| n.leader().is_some_and(|l| l != 1));
    net.until(100, "promotion by the new leader", |n| n.voter_everywhere(4));
    let leader = net.leader().unwrap();
    assert!(net.node(leader).conf_state.voters.contains(&4));
    // Voters {1, 2, 3, 4} with 1 dead: three of four answer, so commits go on.
    let pid = net.put(leader, "after-promotion");
    net.tick();
    assert!(net.node(leader).metadata().streams.contains_key("after-promotion"), "{pid:?}");
}

#[test]
fn learners_survive_restarts_and_snapshots() {
    let mut net = Net::new(&[2]);
    net.cut.insert(2);
    net.join(2);
    for i in 0..20 {
        net.put(1, &format!("s{i}"));
    }
    // Past snapshot_interval: the newest snapshot carries the learner.
    let snap = net.node(1).raw.store().snapshot_metadata().clone();
    assert!(snap.get_conf_state().learners.contains(&2), "{snap:?}");
    net.nodes.remove(&1);
    net.start(1);
    net.until(60, "re-election", |n| n.leader() == Some(1));
    assert!(net.node(1).conf_state.learners.contains(&2));
    assert!(net.node(1).metadata().nodes[&2].learner);
    // A restarted learner stays a learner until promoted.
    net.cut.clear();
    net.until(60, "learner state on node 2", |n| n.nodes[&2].is_member());
    // Promotions are proposed on ticks: it is still a learner here.
    assert!(!net.node(2).is_voter());
    // A learner serves linearizable reads (the leader confirms the index)
    // and forwards proposals, as a joining weir node does at once.
    net.node(2).read_index(9);
    net.put(2, "via-learner");
    net.deliver();
    assert_eq!(net.reads, vec![(2, 9)]);
    assert!(net.node(1).metadata().streams.contains_key("via-learner"));
    net.nodes.remove(&2);
    net.start(2);
    let n2 = net.node(2);
    assert!(n2.is_member() && !n2.is_voter(), "the learner's state persisted");
    assert!(n2.conf_state.learners.contains(&2));
    net.until(60, "promotion", |n| n.voter_everywhere(2));
}
