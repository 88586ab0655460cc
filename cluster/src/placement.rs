//! Placing rule shards on nodes: a pure function, run by the leader.
//!
//! [`place`] maps (live nodes with their load, rules with their shard
//! counts, the current placement, the last issued epoch) to a new placement:
//!
//! 1. **Keep** what still works: a live primary keeps its shard and epoch; a
//!    standby that is live and not the primary stays.
//! 2. **Fail over**: a shard whose primary is not live gets its standby as
//!    primary (promotion) and a fresh epoch, which fences the old primary
//!    (see [`crate::metadata`]) — but only a live standby that is
//!    [synced](ShardPlacement::synced): any other node would restore the
//!    shard without its state and break exactly-once. Without one the
//!    shard waits for its primary to come back, unless the primary is no
//!    longer a member (`weir cluster remove`): then its state is gone
//!    anyway and the shard moves on.
//! 3. **Fill**: new shards get the cheapest node as primary; with at least
//!    two live nodes every shard gets a standby on the cheapest other node.
//! 4. **Rebalance**, with as few moves as possible: while the costliest and
//!    cheapest node differ by more than a slot's weight, move one slot
//!    between them — a standby (no fencing), or swap a primary with its
//!    synced standby on the cheap node (a fresh epoch). A primary never
//!    moves to a node without a copy of its state: it gets there by a
//!    standby move, a sync, then a swap. Every move strictly lowers the
//!    sum of squared costs, so this stops.
//! 5. **Roll back sharded rules as a whole**: when any shard of a rule with
//!    more than one shard gets a fresh epoch (a new shard, a failover, a
//!    swap), every shard of that rule gets one, keeping its primary and
//!    standby: the shards exchange rows, so their checkpoints are cuts of
//!    one run and the whole rule restarts from its global checkpoint (see
//!    [`crate::metadata`]). Such a rollback keeps `synced`: the standbys
//!    still hold all their primaries wrote, so a dead primary's shard can
//!    fail over in the same step.
//!
//! A node's cost is its reported load plus 2 per primary and 1 per standby.
//! Ties break by node id, so the result is deterministic, and placing a
//! placement again changes nothing (the leader relies on this to stop
//! proposing).

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::{NodeId, Placement, ShardPlacement};

const PRIMARY: u64 = 2;
const STANDBY: u64 = 1;

/// A live node and its reported load (in standby-slot units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLoad {
    /// Node id.
    pub id: NodeId,
    /// Reported load.
    pub load: u64,
}

/// The output of [`place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementPlan {
    /// The placement of every rule given (rules not given are absent).
    pub placement: Placement,
    /// The last epoch issued: the input's, plus one per shard that got a
    /// new primary or was rolled back with its rule.
    pub last_epoch: u64,
}

struct Slot {
    rule: String,
    primary: Option<NodeId>,
    standby: Option<NodeId>,
    epoch: u64,
    /// The primary changed: the shard needs a fresh epoch.
    bump: bool,
    /// The standby holds the shard's state (carried over, never set here).
    synced: bool,
    /// Bumped only because another shard of its rule was: its primary and
    /// standby are unchanged, so `synced` stays.
    rolled: bool,
}

struct Costs(BTreeMap<NodeId, u64>);

impl Costs {
    /// The cheapest node other than `except` (ties: lowest id).
    fn cheapest(&self, except: Option<NodeId>) -> Option<NodeId> {
        self.0.iter().filter(|(id, _)| Some(**id) != except).min_by_key(|(id, c)| (**c, **id)).map(|(id, _)| *id)
    }

    fn add(&mut self, id: NodeId, w: u64) {
        if let Some(c) = self.0.get_mut(&id) {
            *c += w;
        }
    }

    fn sub(&mut self, id: NodeId, w: u64) {
        if let Some(c) = self.0.get_mut(&id) {
            *c = c.saturating_sub(w);
        }
    }
}

/// Computes the placement of `rules` (id -> shard count) on the `live`
/// nodes, starting from `current`; see the module docs. `members` are all
/// nodes of the cluster, live or not.
///
/// With no live node the current placement of the given rules is returned
/// unchanged (new shards stay unplaced).
pub fn place(
    live: &[NodeLoad],
    members: &BTreeSet<NodeId>,
    rules: &BTreeMap<String, u32>,
    current: &Placement,
    last_epoch: u64,
) -> PlacementPlan {
    if live.is_empty() {
        let placement = current.iter().filter(|(r, _)| rules.contains_key(*r)).map(|(r, s)| (r.clone(), s.clone()));
        return PlacementPlan { placement: placement.collect(), last_epoch };
    }
    let mut costs = Costs(live.iter().map(|n| (n.id, n.load)).collect());
    let is_live = |id: &NodeId| live.iter().any(|n| n.id == *id);
    let two = live.len() >= 2;

    // 1 + 2: keep what is live, promote standbys of dead primaries.
    let mut slots = Vec::new();
    for (rule, &n) in rules {
        let cur = current.get(rule);
        for i in 0..n as usize {
            let mut s = Slot {
                rule: rule.clone(),
                primary: None,
                standby: None,
                epoch: 0,
                bump: true,
                synced: false,
                rolled: false,
            };
            if let Some(sp) = cur.and_then(|c| c.get(i)) {
                s.epoch = sp.epoch;
                let standby = sp.standby.filter(|b| is_live(b) && *b != sp.primary);
                let gone = !members.contains(&sp.primary);
                if is_live(&sp.primary) {
                    (s.primary, s.standby, s.bump) = (Some(sp.primary), standby, false);
                    s.synced = sp.synced && standby.is_some();
                } else if standby.is_some() && (sp.synced || gone) {
                    (s.primary, s.standby) = (standby, None);
                } else if !gone {
                    // No copy of its state elsewhere: wait for the primary.
                    (s.primary, s.standby, s.bump) = (Some(sp.primary), standby, false);
                    s.synced = sp.synced && standby.is_some();
                }
            }
            if let Some(p) = s.primary {
                costs.add(p, PRIMARY);
            }
            if let Some(b) = s.standby {
                costs.add(b, STANDBY);
            }
            slots.push(s);
        }
    }

    // 3: place missing primaries, then missing standbys.
    for s in slots.iter_mut().filter(|s| s.primary.is_none()) {
        s.primary = costs.cheapest(None);
        if let Some(p) = s.primary {
            costs.add(p, PRIMARY);
        }
    }
    if two {
        for s in slots.iter_mut().filter(|s| s.standby.is_none()) {
            s.standby = costs.cheapest(s.primary);
            if let Some(b) = s.standby {
                costs.add(b, STANDBY);
            }
        }
    }

    // 4: rebalance between the costliest and the cheapest node.
    let limit = slots.len() * 4 + 8;
    for _ in 0..limit {
        if !rebalance_once(&mut slots, &mut costs) {
            break;
        }
    }

    // 5: a sharded rule rolls back as a whole.
    let bumped: BTreeSet<String> = slots.iter().filter(|s| s.bump).map(|s| s.rule.clone()).collect();
    for s in slots.iter_mut().filter(|s| rules[&s.rule] > 1 && bumped.contains(&s.rule) && !s.bump) {
        (s.bump, s.rolled) = (true, true);
    }

    let mut epoch = last_epoch;
    let mut placement = Placement::new();
    for s in slots {
        let Some(primary) = s.primary else { continue };
        let shard_epoch = if s.bump {
            epoch += 1;
            epoch
        } else {
            s.epoch
        };
        let synced = s.synced && (!s.bump || s.rolled);
        placement.entry(s.rule).or_default().push(ShardPlacement {
            primary,
            standby: s.standby,
            epoch: shard_epoch,
            synced,
        });
    }
    PlacementPlan { placement, last_epoch: epoch }
}

/// One strictly improving move from the costliest to the cheapest node.
fn rebalance_once(slots: &mut [Slot], costs: &mut Costs) -> bool {
    let Some((&hi, &hi_cost)) = costs.0.iter().max_by_key(|(id, c)| (**c, std::cmp::Reverse(**id))) else {
        return false;
    };
    let Some(lo) = costs.cheapest(None) else { return false };
    let gap = hi_cost - costs.0[&lo];
    // A standby on `hi` whose primary is not `lo`.
    if gap > STANDBY {
        if let Some(s) = slots.iter_mut().find(|s| s.standby == Some(hi) && s.primary != Some(lo)) {
            (s.standby, s.synced) = (Some(lo), false);
            costs.sub(hi, STANDBY);
            costs.add(lo, STANDBY);
            return true;
        }
    }
    // A primary on `hi` whose synced standby is on `lo`: swap their roles.
    if gap > PRIMARY - STANDBY {
        if let Some(s) = slots.iter_mut().find(|s| s.primary == Some(hi) && s.standby == Some(lo) && s.synced) {
            (s.primary, s.standby, s.bump, s.synced) = (Some(lo), Some(hi), true, false);
            costs.sub(hi, PRIMARY - STANDBY);
            costs.add(lo, PRIMARY - STANDBY);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;
