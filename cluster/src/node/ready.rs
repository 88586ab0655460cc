//! Handling raft's `Ready`: persist, hand out messages, apply, advance,
//! snapshot (the order is explained in the [`RaftNode`] docs).

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Snapshot};
use raft::Storage as _;

use super::{AppliedProposal, MemberProposal, Proposal, RaftNode, ReadyOutput};
use crate::error::Result;
use crate::metadata::{MemberChange, Metadata, Rejection};
use crate::storage::RaftWrite;

impl RaftNode {
    /// Handles everything raft has ready; see the [`RaftNode`] docs for
    /// the order. Call it after every input (tick, step, propose, read).
    ///
    /// # Errors
    /// The storage failed. The raft state is then out of step with the
    /// storage: drop this node and [`open`](RaftNode::open) it again from
    /// the same store (what a crash would do).
    pub fn process_ready(&mut self) -> Result<ReadyOutput> {
        let mut out = ReadyOutput::default();
        if self.raw.has_ready() {
            let mut rd = self.raw.ready();
            let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
            let write = RaftWrite { snapshot: snapshot.as_ref(), entries: rd.entries(), hard_state: rd.hs() };
            self.raw.mut_store().persist(write, rd.must_sync())?;
            if let Some(s) = &snapshot {
                self.restore(s)?;
            }
            // Durable: messages may leave now.
            out.messages.extend(rd.take_messages());
            out.messages.extend(rd.take_persisted_messages());
            self.note_snapshots(&out.messages);
            for rs in rd.take_read_states() {
                match <[u8; 8]>::try_from(rs.request_ctx.as_slice()) {
                    Ok(b) => self.reads.push((u64::from_be_bytes(b), rs.index)),
                    Err(_) => tracing::warn!(node = self.id(), "read state with a malformed context"),
                }
            }
            let committed = rd.take_committed_entries();
            self.apply_entries(committed, &mut out)?;
            let mut light = self.raw.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit)?;
            }
            let light_messages = light.take_messages();
            self.note_snapshots(&light_messages);
            out.messages.extend(light_messages);
            let committed = light.take_committed_entries();
            self.apply_entries(committed, &mut out)?;
            self.raw.advance_apply();
            if let Some(to) = self.handoff.take() {
                // Sent with the next Ready: the voter campaigns without waiting.
                self.raw.raft.send_timeout_now(to);
            }
            self.after_raft_call();
        }
        // Also outside a Ready: raft may have asked for a snapshot while stepping a message.
        self.maybe_snapshot()?;
        let applied = self.applied;
        self.reads.retain(|(ctx, index)| {
            let ready = *index <= applied;
            if ready {
                out.reads.push(*ctx);
            }
            !ready
        });
        Ok(out)
    }

    /// Replaces the metadata with a snapshot's (a follower that lagged
    /// behind the leader's compacted log).
    fn restore(&mut self, s: &Snapshot) -> Result<()> {
        self.metadata = Metadata::from_bytes(s.get_data())?;
        self.applied = s.get_metadata().index;
        self.conf_state = s.get_metadata().get_conf_state().clone();
        self.applied_since_snapshot = 0;
        self.snapshots_installed += 1;
        tracing::info!(node = self.id(), index = self.applied, "installed snapshot");
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, out: &mut ReadyOutput) -> Result<()> {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            let applied = match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => None, // a new leader's no-op
                EntryType::EntryNormal => self.apply_command(&e),
                EntryType::EntryConfChange => self.apply_conf_change(&e),
                EntryType::EntryConfChangeV2 => {
                    // Never proposed by weir; apply to raft so it stays consistent.
                    match ConfChangeV2::parse_from_bytes(&e.data) {
                        Ok(cc) => match self.raw.apply_conf_change(&cc) {
                            Ok(cs) => self.conf_state = cs,
                            Err(err) => {
                                tracing::warn!(node = self.id(), index = e.index, %err, "conf change v2 refused")
                            }
                        },
                        Err(err) => {
                            tracing::warn!(node = self.id(), index = e.index, %err, "undecodable conf change v2")
                        }
                    }
                    None
                }
            };
            self.applied = e.index;
            self.applied_since_snapshot += 1;
            if let Some(a) = applied {
                if self.duty.is_some_and(|(id, _)| id == a.id) {
                    self.duty = None;
                }
                if a.id.node == self.id() && a.id.incarnation == self.incarnation {
                    out.applied.push(a);
                }
            }
        }
        Ok(())
    }

    fn apply_command(&mut self, e: &Entry) -> Option<AppliedProposal> {
        let p: Proposal = match weir_runtime::state::codec::decode(&e.data, "raft entry") {
            Ok(p) => p,
            Err(err) => {
                // Every node sees the same bytes, so every node skips the entry.
                tracing::error!(node = self.id(), index = e.index, %err, "skipping undecodable entry");
                return None;
            }
        };
        let outcome = self.metadata.apply(&p.command);
        if let Err(r) = &outcome {
            tracing::debug!(node = self.id(), index = e.index, rejection = %r, "command rejected");
        }
        Some(AppliedProposal { id: p.id, index: e.index, outcome })
    }

    fn apply_conf_change(&mut self, e: &Entry) -> Option<AppliedProposal> {
        let cc = match ConfChange::parse_from_bytes(&e.data) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(node = self.id(), index = e.index, %err, "skipping undecodable conf change");
                return None;
            }
        };
        let ctx: Option<MemberProposal> = weir_runtime::state::codec::decode(&cc.context, "conf change context").ok();
        let addr = match ctx.as_ref().map(|c| &c.change) {
            Some(MemberChange::Add { addr, .. }) => Some(addr.clone()),
            _ => None,
        };
        // The metadata follows the conf change itself and raft's conf state
        // before it (the same on every node at this index); the context only
        // adds the address.
        let id = cc.node_id;
        let (voter, learner) = (self.conf_state.voters.contains(&id), self.conf_state.learners.contains(&id));
        let kind = cc.get_change_type();
        let changes = match kind {
            // A voter is never demoted by a join: an `Add` for a node that
            // became a voter after it was proposed only updates the address
            // (raft is not told, it would demote).
            ConfChangeType::AddLearnerNode if voter => {
                let outcome = match addr {
                    Some(addr) => self.metadata.apply_member_change(&MemberChange::Add { id, addr }),
                    None => Ok(crate::metadata::Applied::Done),
                };
                tracing::info!(node = self.id(), index = e.index, member = id, "address of a voter updated");
                return ctx.map(|c| AppliedProposal { id: c.id, index: e.index, outcome });
            }
            ConfChangeType::AddLearnerNode => vec![MemberChange::Add { id, addr: addr.unwrap_or_default() }],
            ConfChangeType::AddNode if learner => vec![MemberChange::Promote { id }],
            ConfChangeType::AddNode if voter => addr.map(|addr| MemberChange::Add { id, addr }).into_iter().collect(),
            // A voter added directly (a log written before joins went through learners).
            ConfChangeType::AddNode => {
                vec![MemberChange::Add { id, addr: addr.unwrap_or_default() }, MemberChange::Promote { id }]
            }
            ConfChangeType::RemoveNode => vec![MemberChange::Remove { id }],
        };
        let outcome = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                self.conf_state = cs;
                changes.iter().try_fold(crate::metadata::Applied::Done, |_, c| self.metadata.apply_member_change(c))
            }
            Err(err) => {
                tracing::warn!(node = self.id(), index = e.index, %err, "conf change refused by raft");
                Err(Rejection::MembershipRefused { reason: err.to_string() })
            }
        };
        tracing::info!(node = self.id(), index = e.index, ?changes, ok = outcome.is_ok(), "membership change applied");
        if kind == ConfChangeType::RemoveNode && id == self.id() && self.is_leader() {
            // raft-rs keeps a removed leader leading and then panics looking
            // up its own progress (`on_persist_entries`, `maybe_commit`), so
            // step down now. raft forbids new messages before `advance`: the
            // hand-over to the most caught-up voter is sent after it.
            let best = self
                .raw
                .raft
                .prs()
                .iter()
                .filter(|(id, _)| **id != self.id() && self.conf_state.voters.contains(id))
                .max_by_key(|(id, pr)| (pr.matched, **id));
            self.handoff = best.map(|(id, _)| *id);
            let term = self.raw.raft.term;
            self.raw.raft.become_follower(term, raft::INVALID_ID);
            tracing::info!(node = self.id(), term, "removed while leading; stepped down");
        }
        ctx.map(|c| AppliedProposal { id: c.id, index: e.index, outcome })
    }

    /// Every `snapshot_interval` applied entries, or when raft wanted a
    /// snapshot the storage could not serve: snapshot the metadata and
    /// compact the log, keeping `compact_keep` entries behind the snapshot.
    fn maybe_snapshot(&mut self) -> Result<()> {
        let store = self.raw.store();
        let wanted = store.take_snapshot_wanted();
        let due = wanted || self.applied_since_snapshot >= self.config.snapshot_interval;
        if !due || self.applied <= store.snapshot_metadata().index {
            return Ok(());
        }
        let term = store.term(self.applied)?;
        let mut snap = Snapshot::default();
        snap.set_data(self.metadata.to_bytes()?.into());
        let meta = snap.mut_metadata();
        meta.index = self.applied;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        let compact_to = self.applied.saturating_sub(self.config.compact_keep);
        self.raw.mut_store().save_snapshot(&snap, compact_to)?;
        self.applied_since_snapshot = 0;
        tracing::debug!(node = self.id(), index = self.applied, compact_to, "snapshot taken");
        Ok(())
    }
}
