//! Safety invariants, checked after every simulation step, and the
//! convergence conditions checked after healing.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use weir_cluster::placement::{place, NodeLoad};
use weir_cluster::{Metadata, NodeId, RaftNode};

/// What the checker remembers across steps.
#[derive(Default)]
pub(crate) struct Checker {
    /// Term -> the one node that led it.
    leaders: BTreeMap<u64, NodeId>,
    /// Applied index -> hash of the metadata at that index (any node).
    states: BTreeMap<u64, u64>,
    /// Applied index -> the cluster-wide last epoch at that index.
    last_epochs: BTreeMap<u64, u64>,
    /// Epoch -> the (rule, shard, primary) it was issued to.
    epoch_owner: BTreeMap<u64, (String, usize, NodeId)>,
    /// (node, incarnation view) -> highest epoch seen per shard.
    shard_epochs: BTreeMap<(NodeId, String, usize), u64>,
    /// (node, rule) -> the shard epochs that node saw last.
    rule_epochs: BTreeMap<(NodeId, String), Vec<u64>>,
    /// Nodes some node's metadata showed as a learner.
    learners_seen: BTreeSet<NodeId>,
    pub(crate) elections: u64,
}

pub(crate) fn hash(m: &Metadata) -> u64 {
    let mut h = DefaultHasher::new();
    m.to_bytes().expect("metadata encodes").hash(&mut h);
    h.finish()
}

impl Checker {
    /// Checks one node after it processed a step. `fresh` is true on the
    /// first check after a restart (its applied view may legally go back
    /// to its snapshot).
    pub(crate) fn check(&mut self, seed: u64, n: &RaftNode, fresh: bool) {
        let id = n.id();
        if n.is_leader() {
            let first = *self.leaders.entry(n.term()).or_insert_with(|| {
                self.elections += 1;
                id
            });
            assert_eq!(first, id, "seed {seed}: two leaders in term {}: {first} and {id}", n.term());
        }
        let md = n.metadata();
        let idx = n.applied();
        // State-machine safety: equal applied index, equal state (so the
        // applied logs are prefixes of one another).
        let h = hash(md);
        let seen = *self.states.entry(idx).or_insert(h);
        assert_eq!(seen, h, "seed {seed}: node {id} diverged at applied index {idx}: {md:?}");
        // The cluster-wide epoch counter only grows along the log.
        if let Some((i, e)) = self.last_epochs.range(..idx).next_back() {
            assert!(*e <= md.last_epoch, "seed {seed}: last_epoch {} at {idx} < {e} at {i}", md.last_epoch);
        }
        if let Some((i, e)) = self.last_epochs.range(idx + 1..).next() {
            assert!(md.last_epoch <= *e, "seed {seed}: last_epoch {} at {idx} > {e} at {i}", md.last_epoch);
        }
        self.last_epochs.insert(idx, md.last_epoch);
        // Joins go through learners: a voter (other than the bootstrapped
        // node 1) was shown as a learner first, and learners hold no shards.
        for n in md.nodes.values() {
            if n.learner {
                self.learners_seen.insert(n.id);
            } else {
                assert!(
                    n.id == 1 || self.learners_seen.contains(&n.id),
                    "seed {seed}: node {} voter without learning",
                    n.id
                );
            }
        }
        for (rule, shards) in &md.placement {
            for (i, sp) in shards.iter().enumerate() {
                let on_learner = [Some(sp.primary), sp.standby]
                    .into_iter()
                    .flatten()
                    .find(|n| md.nodes.get(n).is_some_and(|n| n.learner));
                assert!(on_learner.is_none(), "seed {seed}: {rule}/{i} placed on learner {on_learner:?}: {sp:?}");
            }
        }
        for (rule, shards) in &md.placement {
            for (i, sp) in shards.iter().enumerate() {
                // Fencing: an epoch names exactly one primary of one shard.
                let owner = (rule.clone(), i, sp.primary);
                let first = self.epoch_owner.entry(sp.epoch).or_insert_with(|| owner.clone());
                assert_eq!(*first, owner, "seed {seed}: epoch {} issued twice", sp.epoch);
                assert!(sp.epoch <= md.last_epoch, "seed {seed}: epoch above the counter");
                assert_ne!(sp.standby, Some(sp.primary), "seed {seed}: standby on the primary");
                // A shard's epoch never goes back in one node's view.
                let key = (id, rule.clone(), i);
                let prev = self.shard_epochs.entry(key).or_insert(0);
                assert!(
                    fresh || sp.epoch >= *prev,
                    "seed {seed}: node {id} saw {rule}/{i} epoch go {prev} -> {}",
                    sp.epoch
                );
                *prev = sp.epoch;
            }
        }
        for (rule, shards) in &md.placement {
            let epochs: Vec<u64> = shards.iter().map(|sp| sp.epoch).collect();
            // A sharded rule rolls back as a whole: over the shards it had
            // before and has now, either no epoch changed or all did.
            let sharded = md.rules.get(rule).is_some_and(|r| r.shards > 1);
            if let Some(prev) = self.rule_epochs.get(&(id, rule.clone())).filter(|_| sharded && !fresh) {
                let common = prev.len().min(epochs.len());
                let changed = prev.iter().zip(&epochs).filter(|(a, b)| a != b).count();
                assert!(
                    common < 2 || changed == 0 || changed == common,
                    "seed {seed}: node {id} saw {rule} change {changed} of {common} shard epochs: {prev:?} -> {epochs:?}"
                );
            }
            self.rule_epochs.insert((id, rule.clone()), epochs);
            // Checkpoint records are stamped with an epoch the shard had.
            for (shard, c) in md.checkpoints.get(rule).into_iter().flatten() {
                let current = shards.get(*shard as usize).map(|sp| sp.epoch);
                assert!(
                    current.is_some_and(|e| c.shard_epoch <= e),
                    "seed {seed}: {rule}/{shard} checkpoint record {c:?} is not of a placed epoch ({current:?})"
                );
            }
        }
        if fresh {
            self.shard_epochs.retain(|(n, _, _), _| *n != id);
            self.rule_epochs.retain(|(n, _), _| *n != id);
        }
    }
}

/// Why the cluster has not converged yet (`None`: it has).
pub(crate) fn not_converged(nodes: &[&RaftNode]) -> Option<String> {
    let leaders: Vec<_> = nodes.iter().filter(|n| n.is_leader()).collect();
    let [leader] = leaders.as_slice() else { return Some(format!("{} leaders", leaders.len())) };
    let md = leader.metadata();
    let members: BTreeSet<NodeId> = md.nodes.keys().copied().collect();
    let running: BTreeSet<NodeId> = nodes.iter().map(|n| n.id()).collect();
    if !members.is_subset(&running) {
        return Some(format!("members {members:?} not all running ({running:?})"));
    }
    let status = leader.status();
    for n in nodes.iter().filter(|n| members.contains(&n.id())) {
        if n.applied() != status.commit || n.metadata() != md {
            return Some(format!("node {} at {} vs leader commit {}", n.id(), n.applied(), status.commit));
        }
    }
    if let Some(l) = md.nodes.values().find(|n| n.learner) {
        return Some(format!("node {} still a learner", l.id));
    }
    if let Some(down) = md.nodes.values().find(|n| !n.live) {
        return Some(format!("node {} still marked down", down.id));
    }
    // Placement is complete, valid and stable (the leader has nothing left to do).
    let live: Vec<NodeLoad> = md.nodes.values().map(|n| NodeLoad { id: n.id, load: n.load }).collect();
    for (rule, info) in &md.rules {
        let Some(shards) = md.placement.get(rule) else { return Some(format!("rule {rule} unplaced")) };
        if shards.len() != info.shards as usize {
            return Some(format!("rule {rule}: {} of {} shards placed", shards.len(), info.shards));
        }
        for (i, sp) in shards.iter().enumerate() {
            if !members.contains(&sp.primary) {
                return Some(format!("{rule}/{i}: primary {} is not a member", sp.primary));
            }
            match sp.standby {
                Some(b) if members.contains(&b) && b != sp.primary => {}
                None if members.len() < 2 => {}
                other => return Some(format!("{rule}/{i}: bad standby {other:?} (primary {})", sp.primary)),
            }
        }
    }
    let all = md.nodes.keys().copied().collect();
    let plan = place(&live, &all, &md.shard_counts(), &md.placement, md.last_epoch);
    if plan.placement != md.placement {
        return Some("placement not yet stable".into());
    }
    None
}
