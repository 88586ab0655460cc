//! The leader's duties, run on every tick: promoting learners, node
//! leases and shard placement.
//!
//! # Promoting learners
//! A joining node is added as a raft learner (see
//! [`MemberChange`](crate::MemberChange)): it gets the log but does not
//! count towards the quorum, so a node with an empty log cannot stall
//! commits while it catches up. On every tick, the leader (whichever node
//! leads now, so a promotion cut short by a leader change is redone)
//! promotes the first learner whose replicated log is within
//! [`NodeConfig::promote_lag`](super::NodeConfig) entries of its own and
//! that answered it within `election_ticks`, by a conf change (`AddNode`).
//! raft allows one pending conf change at a time: while one is in flight
//! the promotion waits for a later tick. Placement gives learners no
//! shards (they are not in its live set), so a rule never runs on a node
//! that does not vote yet.
//!
//! # Leases
//! The leader notes the tick of every message it receives from a member
//! (raft heartbeat responses arrive every `heartbeat_ticks`). A member not
//! heard from for [`NodeConfig::lease_ticks`](super::NodeConfig) has lost
//! its lease: the leader proposes [`Command::SetNodeLive`] `false` (and
//! `true` once it hears from it again). On election every member gets a
//! fresh lease, so a leader change alone fails nothing over, except the
//! old leader, whose lease runs from its last message to the new leader
//! (a dead leader thus fails over an election's time sooner; a live one
//! answers the new leader at once). Only the leader's clock is used, so
//! clock skew between nodes does not matter.
//!
//! # Placement
//! Once its liveness view is committed, the leader runs
//! [`place`](crate::placement::place) over the live members and proposes
//! [`Command::SetPlacement`] for the rules whose placement changes: this
//! places new shards, promotes the standbys of dead primaries with fresh
//! epochs (fencing), and rebalances after joins and leaves.
//!
//! # Lost snapshots
//! raft-rs pauses replication to a peer while a snapshot is in flight and
//! resumes only when the peer acknowledges it or the application reports a
//! failure. A snapshot lost on the way (dropped, peer crashed) would stall
//! that peer for the rest of the term, so the leader reports a failure when
//! the peer is still waiting `2 × election_ticks` after the send, and raft
//! sends a fresh one.
//!
//! At most one duty proposal is in flight; the leader waits until it is
//! applied (or `duty_retry_ticks` pass) and recomputes from the applied
//! metadata, so a stale proposal is simply refused and redone.

use raft::eraftpb::{Message, MessageType};
use raft::{ProgressState, SnapshotStatus};

use crate::metadata::{Command, MemberChange, NodeId, Placement};
use crate::placement::{place, NodeLoad};

use super::RaftNode;

impl RaftNode {
    pub(super) fn note_snapshots(&mut self, messages: &[Message]) {
        for m in messages.iter().filter(|m| m.get_msg_type() == MessageType::MsgSnapshot) {
            self.snapshots_sent.insert(m.to, self.ticks);
        }
    }

    pub(super) fn expire_snapshots(&mut self) {
        if !self.is_leader() {
            self.snapshots_sent.clear();
            return;
        }
        let timeout = 2 * self.config.election_ticks as u64;
        let now = self.ticks;
        let mut failed = Vec::new();
        self.snapshots_sent.retain(|id, sent| {
            let waiting = self.raw.raft.prs().get(*id).is_some_and(|pr| pr.state == ProgressState::Snapshot);
            if waiting && now - *sent > timeout {
                failed.push(*id);
            }
            waiting && now - *sent <= timeout
        });
        for id in failed {
            tracing::debug!(node = self.id(), peer = id, "snapshot not acknowledged, resending");
            self.raw.report_snapshot(id, SnapshotStatus::Failure);
        }
    }

    pub(super) fn leader_duties(&mut self) {
        if !self.is_leader() {
            return;
        }
        self.promote_caught_up();
        if let Some((_, deadline)) = self.duty {
            if self.ticks < deadline {
                return;
            }
            self.duty = None;
        }
        // Act only on metadata that includes everything committed, including
        // this leader's own no-op (so earlier terms' entries are applied).
        let log = &self.raw.raft.raft_log;
        if self.applied < log.committed || log.term(self.applied).ok() != Some(self.raw.raft.term) {
            return;
        }
        if let Some(command) = self.next_duty() {
            match self.propose(command) {
                Ok(id) => self.duty = Some((id, self.ticks + self.config.duty_retry_ticks)),
                Err(e) => tracing::debug!(node = self.id(), error = %e, "duty proposal failed"),
            }
        }
    }

    /// Proposes the promotion of the first caught-up, responsive learner
    /// (see the module docs).
    fn promote_caught_up(&mut self) {
        // Also keeps a new leader from acting before its own no-op (and so
        // every earlier conf change) is applied: raft counts it as pending.
        if self.raw.raft.has_pending_conf() {
            return;
        }
        let Some(id) = self.caught_up_learner() else { return };
        match self.propose_member_change(MemberChange::Promote { id }) {
            Ok(_) => tracing::info!(leader = self.id(), learner = id, "promoting a caught-up learner to voter"),
            Err(e) => tracing::debug!(leader = self.id(), learner = id, error = %e, "promotion not proposed"),
        }
    }

    fn caught_up_learner(&self) -> Option<NodeId> {
        let last = self.raw.raft.raft_log.last_index();
        let recent = self.config.election_ticks as u64;
        self.conf_state.learners.iter().copied().find(|id| {
            let caught_up = self.raw.raft.prs().get(*id).is_some_and(|pr| pr.matched + self.config.promote_lag >= last);
            let answered = self.answered.get(id).is_some_and(|t| self.ticks - t <= recent);
            caught_up && answered
        })
    }

    /// The next liveness or placement command, if any is due.
    fn next_duty(&mut self) -> Option<Command> {
        let (me, now, lease) = (self.id(), self.ticks, self.config.lease_ticks);
        for node in self.metadata.nodes.values() {
            let heard = *self.last_heard.entry(node.id).or_insert(now);
            let live = node.id == me || now - heard <= lease;
            if live != node.live {
                tracing::info!(leader = me, node = node.id, live, "node lease changed");
                return Some(Command::SetNodeLive { node: node.id, live });
            }
        }
        // Learners are members (their lease is tracked) but get no shards.
        let live: Vec<NodeLoad> = self
            .metadata
            .nodes
            .values()
            .filter(|n| n.live && !n.learner)
            .map(|n| NodeLoad { id: n.id, load: n.load })
            .collect();
        let members = self.metadata.nodes.keys().copied().collect();
        let plan =
            place(&live, &members, &self.metadata.shard_counts(), &self.metadata.placement, self.metadata.last_epoch);
        let changed: Placement = plan
            .placement
            .into_iter()
            .filter(|(rule, shards)| self.metadata.placement.get(rule) != Some(shards))
            .collect();
        if changed.is_empty() {
            return None;
        }
        tracing::info!(leader = me, rules = changed.len(), "proposing placement");
        Some(Command::SetPlacement { placement: changed })
    }
}
