//! Applying commands: the deterministic transition function of [`Metadata`].
//!
//! A refused command leaves the metadata unchanged (checks run before any
//! change), so every node refuses it the same way and stays equal.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    Command, CommittedCheckpoint, MemberChange, Metadata, NodeId, NodeInfo, ObjectKind, Rejection, RuleInfo,
    ShardPlacement, MAX_SHARDS,
};

/// The result of an applied command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Applied {
    /// The command took effect.
    Done,
    /// [`Command::BumpShardEpoch`]: the shard's new epoch.
    Epoch(u64),
}

fn not_found(kind: ObjectKind, name: impl Into<String>) -> Rejection {
    Rejection::NotFound { kind, name: name.into() }
}

fn stale(rule: &str, reason: String) -> Rejection {
    Rejection::StalePlacement { rule: rule.to_string(), reason }
}

impl Metadata {
    /// Applies one committed command.
    ///
    /// # Errors
    /// The command is refused ([`Rejection`]); the metadata is unchanged.
    pub fn apply(&mut self, command: &Command) -> Result<Applied, Rejection> {
        match command {
            Command::PutStream { name, sql } => {
                self.streams.insert(name.clone(), sql.clone());
            }
            Command::DropStream { name } => {
                self.streams.remove(name).ok_or_else(|| not_found(ObjectKind::Stream, name))?;
            }
            Command::PutTable { name, sql } => {
                self.tables.insert(name.clone(), sql.clone());
            }
            Command::DropTable { name } => {
                self.tables.remove(name).ok_or_else(|| not_found(ObjectKind::Table, name))?;
            }
            Command::PutRule { id, json, shards } => self.put_rule(id, json, *shards)?,
            Command::DropRule { id } => {
                self.rules.remove(id).ok_or_else(|| not_found(ObjectKind::Rule, id))?;
                self.placement.remove(id);
                self.checkpoints.remove(id);
            }
            Command::SetPlan { rule, plan } => {
                let r = self.rules.get_mut(rule).ok_or_else(|| not_found(ObjectKind::Rule, rule))?;
                r.plan = Some(plan.clone());
            }
            Command::ReportLoad { node, load } => self.node_mut(*node)?.load = *load,
            Command::ReportAddresses { node, rest, replica, exchange } => {
                let n = self.node_mut(*node)?;
                n.rest = rest.clone();
                n.replica = replica.clone();
                n.exchange = exchange.clone();
            }
            Command::SetNodeLive { node, live } => self.node_mut(*node)?.live = *live,
            Command::SetPlacement { placement } => self.set_placement(placement)?,
            Command::BumpShardEpoch { rule, shard } => {
                if self.is_sharded(rule) {
                    self.shard_mut(rule, *shard)?;
                    self.roll_back(rule);
                    return Ok(Applied::Epoch(self.shard_mut(rule, *shard)?.epoch));
                }
                let next = self.last_epoch + 1;
                let sp = self.shard_mut(rule, *shard)?;
                sp.epoch = next;
                self.last_epoch = next;
                return Ok(Applied::Epoch(next));
            }
            Command::RestartShards { rule, epochs } => {
                let shards = self.placement.get(rule).ok_or_else(|| not_found(ObjectKind::Rule, rule))?;
                let current: Vec<u64> = shards.iter().map(|sp| sp.epoch).collect();
                if current != *epochs {
                    // Another shard's request (or a placement change) rolled it back already.
                    return Err(stale(rule, format!("epochs {epochs:?} are not the current {current:?}")));
                }
                self.roll_back(rule);
            }
            Command::StandbySynced { rule, shard, epoch, standby } => {
                let sp = self.shard_mut(rule, *shard)?;
                if sp.epoch != *epoch || sp.standby != Some(*standby) {
                    let reason = format!("shard {shard}: standby {standby} at epoch {epoch} is no longer placed");
                    return Err(stale(rule, reason));
                }
                sp.synced = true;
            }
            Command::CommitCheckpoint { rule, shard, shard_epoch, checkpoint } => {
                self.commit_checkpoint(rule, *shard, *shard_epoch, *checkpoint)?
            }
        }
        Ok(Applied::Done)
    }

    /// Applies a committed membership change (the conf change itself is
    /// applied to raft by the node, which keeps the two in step: `Add`
    /// of a new node is a learner, `Promote` makes it a voter).
    ///
    /// # Errors
    /// Removing or promoting a node that is not a member.
    pub fn apply_member_change(&mut self, change: &MemberChange) -> Result<Applied, Rejection> {
        match change {
            MemberChange::Add { id, addr } => {
                let n = self.nodes.entry(*id).or_insert_with(|| NodeInfo {
                    id: *id,
                    addr: addr.clone(),
                    live: true,
                    load: 0,
                    rest: String::new(),
                    replica: String::new(),
                    exchange: String::new(),
                    learner: true,
                });
                n.addr = addr.clone();
            }
            MemberChange::Promote { id } => self.node_mut(*id)?.learner = false,
            MemberChange::Remove { id } => {
                // Its shards stay put until the leader re-places them with fresh epochs.
                self.nodes.remove(id).ok_or_else(|| not_found(ObjectKind::Node, id.to_string()))?;
            }
        }
        Ok(Applied::Done)
    }

    fn node_mut(&mut self, id: NodeId) -> Result<&mut NodeInfo, Rejection> {
        self.nodes.get_mut(&id).ok_or_else(|| not_found(ObjectKind::Node, id.to_string()))
    }

    fn shard_mut(&mut self, rule: &str, shard: u32) -> Result<&mut ShardPlacement, Rejection> {
        self.placement
            .get_mut(rule)
            .and_then(|v| v.get_mut(shard as usize))
            .ok_or_else(|| not_found(ObjectKind::Shard, format!("{rule}/{shard}")))
    }

    /// Whether the rule has more than one shard (and so rolls back as a whole).
    fn is_sharded(&self, rule: &str) -> bool {
        self.rules.get(rule).is_some_and(|r| r.shards > 1)
    }

    /// Rolls a rule back as a whole: every placed shard gets a fresh epoch
    /// (in shard order, from the counter) and keeps its primary, standby
    /// and `synced` (the standby still holds everything the primary wrote:
    /// writes are replicated before they return, and the new epoch fences
    /// the old run's later ones), and the checkpoints are reset to the
    /// global one.
    fn roll_back(&mut self, rule: &str) {
        let global = self.global_checkpoint(rule);
        let mut epoch = self.last_epoch;
        for sp in self.placement.get_mut(rule).into_iter().flatten() {
            epoch += 1;
            sp.epoch = epoch;
        }
        self.last_epoch = epoch;
        self.reset_checkpoints(rule, global);
    }

    /// Sets every placed shard's checkpoint record to `global` under its
    /// current epoch, so the new run commits `global + 1, ...` and the
    /// least record stays a cut every shard has. With `global` 0 nothing
    /// was committed by all shards: the records go.
    fn reset_checkpoints(&mut self, rule: &str, global: u64) {
        let placed = self.placement.get(rule).filter(|_| global > 0);
        let records = placed
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, sp)| (i as u32, CommittedCheckpoint { checkpoint: global, shard_epoch: sp.epoch }));
        let records: std::collections::BTreeMap<_, _> = records.collect();
        if records.is_empty() {
            self.checkpoints.remove(rule);
        } else {
            self.checkpoints.insert(rule.to_string(), records);
        }
    }

    fn put_rule(&mut self, id: &str, json: &str, shards: u32) -> Result<(), Rejection> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(Rejection::InvalidShards { rule: id.to_string(), shards });
        }
        let plan = match self.rules.get(id) {
            Some(old) if old.json == json => old.plan.clone(),
            _ => None,
        };
        self.rules.insert(id.to_string(), RuleInfo { json: json.to_string(), shards, plan });
        // Shards past the new count are gone; the leader places new ones.
        if let Some(p) = self.placement.get_mut(id) {
            p.truncate(shards as usize);
        }
        if let Some(c) = self.checkpoints.get_mut(id) {
            c.retain(|s, _| *s < shards);
        }
        Ok(())
    }

    /// Checks the whole command first, then replaces: all or nothing.
    fn set_placement(&mut self, placement: &super::Placement) -> Result<(), Rejection> {
        let mut fresh = BTreeSet::new();
        // Sharded rules whose epochs all change, with their global checkpoint.
        let mut rolled_back = Vec::new();
        for (rule, shards) in placement {
            let info = self.rules.get(rule).ok_or_else(|| not_found(ObjectKind::Rule, rule))?;
            if shards.len() != info.shards as usize {
                return Err(stale(rule, format!("{} shards given, rule has {}", shards.len(), info.shards)));
            }
            let current = self.placement.get(rule);
            let mut kept = 0;
            for (i, sp) in shards.iter().enumerate() {
                let members = [Some(sp.primary), sp.standby];
                if let Some(n) = members.into_iter().flatten().find(|n| !self.nodes.contains_key(n)) {
                    return Err(stale(rule, format!("shard {i}: node {n} is not a member")));
                }
                if let Some(n) = members.into_iter().flatten().find(|n| self.nodes[n].learner) {
                    return Err(stale(rule, format!("shard {i}: node {n} is a learner, not yet a voter")));
                }
                if sp.standby == Some(sp.primary) {
                    return Err(stale(rule, format!("shard {i}: standby is the primary")));
                }
                match current.and_then(|c| c.get(i)) {
                    Some(old) if old.primary == sp.primary && old.epoch == sp.epoch => kept += 1,
                    // A new primary, or a fencing of the same one.
                    _ => {
                        if sp.epoch <= self.last_epoch || !fresh.insert(sp.epoch) {
                            return Err(stale(rule, format!("shard {i}: epoch {} is not fresh", sp.epoch)));
                        }
                    }
                }
            }
            if info.shards > 1 && kept > 0 && kept < shards.len() {
                let reason = format!(
                    "{kept} of {} shards keep their epoch: a sharded rule's epochs change together",
                    shards.len()
                );
                return Err(stale(rule, reason));
            }
            if info.shards > 1 && kept == 0 {
                rolled_back.push((rule, self.global_checkpoint(rule)));
            }
        }
        for (rule, shards) in placement {
            // `synced` is the primary's report ([`Command::StandbySynced`]):
            // a placement keeps it for an unchanged primary, standby and
            // epoch (or, for a sharded rule rolling back, any epoch: see
            // `roll_back`) and clears it otherwise; it can neither set nor
            // clear it.
            let current = self.placement.get(rule);
            let sharded = self.is_sharded(rule);
            let shards = shards.iter().enumerate().map(|(i, sp)| {
                let kept = current.and_then(|c| c.get(i)).is_some_and(|old| {
                    old.synced
                        && old.primary == sp.primary
                        && old.standby == sp.standby
                        && (old.epoch == sp.epoch || sharded)
                });
                ShardPlacement { synced: kept, ..sp.clone() }
            });
            let shards = shards.collect();
            self.placement.insert(rule.clone(), shards);
        }
        if let Some(max) = fresh.last() {
            self.last_epoch = *max;
        }
        for (rule, global) in rolled_back {
            self.reset_checkpoints(rule, global);
        }
        Ok(())
    }

    fn commit_checkpoint(&mut self, rule: &str, shard: u32, epoch: u64, checkpoint: u64) -> Result<(), Rejection> {
        let current = self.shard_mut(rule, shard)?.epoch;
        if epoch != current {
            return Err(Rejection::Fenced { rule: rule.to_string(), shard, epoch, current });
        }
        let shards = self.checkpoints.entry(rule.to_string()).or_default();
        if let Some(c) = shards.get(&shard) {
            if checkpoint < c.checkpoint {
                return Err(Rejection::StaleCheckpoint {
                    rule: rule.to_string(),
                    shard,
                    checkpoint,
                    committed: c.checkpoint,
                });
            }
        }
        shards.insert(shard, CommittedCheckpoint { checkpoint, shard_epoch: epoch });
        Ok(())
    }
}
