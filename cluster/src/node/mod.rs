//! [`RaftNode`]: one raft peer with the metadata state machine (its docs explain the protocol).

use std::collections::BTreeMap;
use std::sync::Arc;

use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Message, MessageType, Snapshot};
use raft::{RawNode, StateRole};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use weir_runtime::state::StateBackend;

use crate::error::{Error, Result};
use crate::metadata::{Applied, Command, MemberChange, Metadata, NodeId, NodeInfo, Placement, Rejection};
use crate::storage::RaftStorage;

mod config;
mod duties;
#[cfg(test)]
mod learner_tests;
mod ready;
#[cfg(test)]
mod tests;

pub use config::NodeConfig;

/// Identifies a proposal so that its origin recognises it when applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProposalId {
    /// The proposing node.
    pub node: NodeId,
    /// The proposer's incarnation (bumped at every open, persisted).
    pub incarnation: u64,
    /// Sequence number within the incarnation.
    pub seq: u64,
}

/// A normal entry's data.
#[derive(Serialize, Deserialize)]
struct Proposal {
    id: ProposalId,
    command: Command,
}

/// A conf change's context.
#[derive(Serialize, Deserialize)]
struct MemberProposal {
    id: ProposalId,
    change: MemberChange,
}

/// A proposal of this node (this incarnation) that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedProposal {
    /// The id [`RaftNode::propose`] returned.
    pub id: ProposalId,
    /// Its log index.
    pub index: u64,
    /// What the state machine said.
    pub outcome: std::result::Result<Applied, Rejection>,
}

/// What [`RaftNode::process_ready`] hands back to the shell.
#[derive(Debug, Default)]
pub struct ReadyOutput {
    /// Messages to send; everything they depend on is already persisted.
    pub messages: Vec<Message>,
    /// This node's proposals applied in this round.
    pub applied: Vec<AppliedProposal>,
    /// Contexts of [`RaftNode::read_index`] calls that may now read: the
    /// metadata reflects every write committed before the read started.
    pub reads: Vec<u64>,
}

/// Replication progress of one peer, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerProgress {
    /// The peer.
    pub id: NodeId,
    /// Highest log index known to be replicated on it.
    pub matched: u64,
    /// Entries it lacks: the leader's last index minus `matched`.
    pub lag: u64,
    /// A learner (a joining node, not yet promoted to voter).
    pub learner: bool,
}

/// A node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterStatus {
    /// This node.
    pub id: NodeId,
    /// Members and their lease state.
    pub members: Vec<NodeInfo>,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Current raft term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Replication progress per voter and learner; filled only on the leader (empty on followers).
    pub progress: Vec<PeerProgress>,
    /// Shard placement.
    pub placement: Placement,
}

/// One raft peer and its metadata.
///
/// Free of sockets and wall-clock time. The shell (the TCP [`Cluster`](crate::Cluster) or the simulation) drives
/// it with four inputs — [`tick`](RaftNode::tick) (the clock),
/// [`step`](RaftNode::step) (a message from a peer), proposals and reads —
/// and then calls [`process_ready`](RaftNode::process_ready), which
/// follows the raft-rs `Ready` contract in this order:
///
/// 1. persist the snapshot, new entries and hard state in one batch (synced
///    when raft says so) and restore the metadata from a received snapshot;
/// 2. only then hand out the messages (the caller sends them);
/// 3. apply committed entries (commands and conf changes) to the metadata;
/// 4. `advance`, then the same for the `LightReady` (commit index, more
///    messages and committed entries), then `advance_apply`;
/// 5. every [`NodeConfig::snapshot_interval`] applied entries, snapshot the
///    metadata into the storage and compact the log behind it.
///
/// Messages are returned, never sent from inside, so nothing leaves the
/// node before it is durable.
///
/// # Determinism
/// raft-rs draws election timeouts from `thread_rng`; the node overrides
/// each draw from its own seeded RNG whenever raft resets its timer (a term
/// or role change), so a simulation run is reproducible from its seed.
///
/// # Restart
/// [`RaftNode::open`] restores the metadata from the newest snapshot and
/// raft re-delivers the entries committed after it, which are applied again
/// (applying is deterministic, so the result is the same).
pub struct RaftNode {
    config: NodeConfig,
    raw: RawNode<RaftStorage>,
    metadata: Metadata,
    /// Conf state as of `applied` (what a snapshot taken now must carry).
    conf_state: ConfState,
    applied: u64,
    applied_since_snapshot: u64,
    incarnation: u64,
    next_seq: u64,
    rng: StdRng,
    /// (term, role) after the last call into raft.
    last_role: (u64, StateRole),
    ticks: u64,
    /// Leader: tick at which each member was last heard from.
    last_heard: BTreeMap<NodeId, u64>,
    /// Tick at which each peer last answered this node as leader; unlike
    /// `last_heard` never reset on election (a learner is promoted only if
    /// it really answered recently).
    answered: BTreeMap<NodeId, u64>,
    /// Tick of the last message from the leader (follower lease).
    heard_leader: u64,
    /// The leader `heard_leader` was last heard from: when this node wins
    /// the next election, that node's lease runs from then, not from the
    /// election (it has been silent since; a live one answers at once).
    last_leader: Option<NodeId>,
    /// The leader's in-flight liveness/placement proposal and its deadline.
    duty: Option<(ProposalId, u64)>,
    /// Read-index requests: (context, index to reach).
    reads: Vec<(u64, u64)>,
    /// Leader: tick at which a snapshot was last sent to each peer.
    snapshots_sent: BTreeMap<NodeId, u64>,
    snapshots_installed: u64,
    /// Set when this leader applied its own removal: the voter to hand over to.
    handoff: Option<NodeId>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.config.id)
            .field("term", &self.raw.raft.term)
            .field("role", &self.raw.raft.state)
            .field("applied", &self.applied)
            .finish()
    }
}

impl RaftNode {
    /// Writes the initial state of a new one-node cluster into `kv`: a
    /// snapshot at index 1 whose only voter and member is `id` at `addr`.
    /// Then [`open`](RaftNode::open) it. Nodes that join later catch up
    /// from a snapshot (the log starts at 2), so they need no bootstrap.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] if `kv` holds raft state; store errors.
    pub fn bootstrap(kv: Arc<dyn StateBackend>, id: NodeId, addr: &str) -> Result<()> {
        let mut storage = RaftStorage::open(kv)?;
        let mut metadata = Metadata::default();
        let _ = metadata.apply_member_change(&MemberChange::Add { id, addr: addr.to_string() });
        let _ = metadata.apply_member_change(&MemberChange::Promote { id });
        let mut snap = Snapshot::default();
        snap.set_data(metadata.to_bytes()?.into());
        let meta = snap.mut_metadata();
        meta.index = 1;
        meta.term = 1;
        meta.mut_conf_state().voters = vec![id];
        storage.bootstrap(&snap)
    }

    /// Opens the peer over the raft state in `kv` (empty for a node that
    /// will join; see [`RaftNode::bootstrap`] for a new cluster).
    ///
    /// # Errors
    /// Invalid config, store failures, corrupt stored state.
    pub fn open(config: NodeConfig, kv: Arc<dyn StateBackend>) -> Result<RaftNode> {
        config.validate()?;
        let mut storage = RaftStorage::open(kv)?;
        let incarnation = storage.next_incarnation()?;
        let (metadata, applied, conf_state) = match storage.load_snapshot()? {
            Some(s) => {
                (Metadata::from_bytes(s.get_data())?, s.get_metadata().index, s.get_metadata().get_conf_state().clone())
            }
            None => (Metadata::default(), 0, ConfState::default()),
        };
        if storage.hard_state().commit < applied {
            // A snapshot's index was committed; repair a commit index lost with an unsynced write.
            let mut hs = storage.hard_state().clone();
            hs.commit = applied;
            storage.persist(crate::storage::RaftWrite { hard_state: Some(&hs), ..Default::default() }, true)?;
        }
        let raw = RawNode::new(&config.raft_config(applied), storage, &crate::logger::raft_logger(config.id))?;
        let seed = config.seed ^ incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut node = RaftNode {
            raw,
            metadata,
            conf_state,
            applied,
            applied_since_snapshot: 0,
            incarnation,
            next_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            last_role: (u64::MAX, StateRole::Follower),
            ticks: 0,
            last_heard: BTreeMap::new(),
            answered: BTreeMap::new(),
            heard_leader: 0,
            last_leader: None,
            duty: None,
            reads: Vec::new(),
            snapshots_sent: BTreeMap::new(),
            snapshots_installed: 0,
            handoff: None,
            config,
        };
        node.after_raft_call();
        tracing::info!(node = node.id(), applied, incarnation, "raft node opened");
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The config it was opened with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Whether this node belongs to a cluster (bootstrapped, or joined and
    /// caught up), as a voter or a learner.
    pub fn is_member(&self) -> bool {
        self.conf_state.voters.contains(&self.id()) || self.metadata.nodes.contains_key(&self.id())
    }

    /// Whether this node is a voter (not a learner still catching up).
    pub fn is_voter(&self) -> bool {
        self.conf_state.voters.contains(&self.id())
    }

    /// The metadata as applied on this node (possibly stale on a follower;
    /// use [`read_index`](RaftNode::read_index) for a linearizable read).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Highest applied log index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        Some(self.raw.raft.leader_id).filter(|l| *l != raft::INVALID_ID)
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Snapshots received from a leader and installed since open (a
    /// metric: a high rate means followers fall behind the compacted log).
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
    }

    /// Ticks since open.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Advisory self-lease: this node is the leader, or heard from the
    /// leader within half of [`NodeConfig::lease_ticks`] (the leader waits
    /// the whole lease before failing it over). A primary that lost its
    /// lease should stop acting; epochs fence it regardless.
    pub fn has_lease(&self) -> bool {
        self.is_leader() || (self.leader().is_some() && self.ticks - self.heard_leader <= self.config.lease_ticks / 2)
    }

    /// Advances the clock by one tick (elections, heartbeats, leases, and
    /// the leader's duties: promoting caught-up learners, liveness,
    /// placement).
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.raw.tick();
        self.after_raft_call();
        self.expire_snapshots();
        self.leader_duties();
    }

    /// Starts an election now (e.g. right after bootstrapping, rather than
    /// waiting an election timeout).
    ///
    /// # Errors
    /// raft refuses (not a voter).
    pub fn campaign(&mut self) -> Result<()> {
        self.raw.campaign()?;
        self.after_raft_call();
        Ok(())
    }

    /// Feeds a message from a peer.
    ///
    /// # Errors
    /// [`Error::Misrouted`] (addressed to another node), a local-only
    /// message type from the network, or [`Error::UnknownNode`] for a
    /// response from a peer raft does not track. The node is unchanged.
    pub fn step(&mut self, msg: Message) -> Result<()> {
        if msg.to != self.id() {
            return Err(Error::Misrouted { to: msg.to, me: self.id() });
        }
        if raft::raw_node::is_local_msg(msg.get_msg_type()) {
            return Err(Error::Raft(raft::Error::StepLocalMsg));
        }
        let from = msg.from;
        // A lease is kept by answering the leader, not by talking: a node
        // cut off from its inbound traffic still sends (pre-)vote requests,
        // and those must not keep its shards placed on it.
        let answers_leader =
            matches!(msg.get_msg_type(), MessageType::MsgHeartbeatResponse | MessageType::MsgAppendResponse);
        if answers_leader && self.metadata.nodes.contains_key(&from) {
            self.last_heard.insert(from, self.ticks);
        }
        if answers_leader {
            self.answered.insert(from, self.ticks);
        }
        let r = self.raw.step(msg);
        self.after_raft_call();
        if from == self.raw.raft.leader_id && from != self.id() {
            self.heard_leader = self.ticks;
            self.last_leader = Some(from);
        }
        match r {
            Err(raft::Error::StepPeerNotFound) => Err(Error::UnknownNode { node: from }),
            r => Ok(r?),
        }
    }

    /// Proposes a command; the outcome shows up in a later
    /// [`ReadyOutput::applied`] with the returned id — on this node, once it
    /// applies the entry. A follower forwards the proposal to the leader.
    ///
    /// # Errors
    /// [`Error::NoLeader`] while no leader is known (retry); the proposal may
    /// still be lost in a leader change, so callers time out and retry.
    pub fn propose(&mut self, command: Command) -> Result<ProposalId> {
        self.check_leader()?;
        let id = self.next_id();
        let data = weir_runtime::state::codec::encode(&Proposal { id, command })?;
        let r = self.raw.propose(Vec::new(), data);
        self.after_raft_call();
        r.map_err(dropped)?;
        Ok(id)
    }

    /// Proposes a membership change as a raft conf change: `Add` as
    /// `AddLearnerNode` (applied as an address update if the node is a
    /// voter by then), `Promote` as `AddNode`, `Remove` as `RemoveNode`.
    /// The leader promotes caught-up learners by itself (see
    /// [`tick`](RaftNode::tick)).
    ///
    /// # Errors
    /// [`Error::NoLeader`]; [`Error::Busy`] when this node is the leader and
    /// another conf change is not applied yet (raft allows one at a time).
    pub fn propose_member_change(&mut self, change: MemberChange) -> Result<ProposalId> {
        self.check_leader()?;
        if self.is_leader() && self.raw.raft.has_pending_conf() {
            return Err(Error::Busy);
        }
        let id = self.next_id();
        let mut cc = ConfChange::default();
        match &change {
            MemberChange::Add { id, .. } => {
                cc.set_change_type(ConfChangeType::AddLearnerNode);
                cc.node_id = *id;
            }
            MemberChange::Promote { id } => {
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = *id;
            }
            MemberChange::Remove { id } => {
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
            }
        }
        cc.set_context(weir_runtime::state::codec::encode(&MemberProposal { id, change })?.into());
        let r = self.raw.propose_conf_change(Vec::new(), cc);
        self.after_raft_call();
        r.map_err(dropped)?;
        Ok(id)
    }

    /// Starts a linearizable read (raft ReadIndex, safe mode: no clock
    /// assumption). `ctx` comes back in [`ReadyOutput::reads`] once the
    /// applied metadata covers every write committed before this call.
    /// The request is lost silently on a leader change: time out and retry.
    pub fn read_index(&mut self, ctx: u64) {
        self.raw.read_index(ctx.to_be_bytes().to_vec());
        self.after_raft_call();
    }

    /// Asks the leader to hand leadership to `to` (used before the leader
    /// leaves the cluster).
    pub fn transfer_leader(&mut self, to: NodeId) {
        self.raw.transfer_leader(to);
        self.after_raft_call();
    }

    /// Tells raft that messages to `to` could not be delivered.
    pub fn report_unreachable(&mut self, to: NodeId) {
        self.raw.report_unreachable(to);
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> ClusterStatus {
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        let progress = if self.is_leader() {
            let mut p: Vec<_> = raft
                .prs()
                .iter()
                .map(|(id, pr)| PeerProgress {
                    id: *id,
                    matched: pr.matched,
                    lag: last.saturating_sub(pr.matched),
                    learner: self.conf_state.learners.contains(id),
                })
                .collect();
            p.sort_by_key(|p| p.id);
            p
        } else {
            Vec::new()
        };
        ClusterStatus {
            id: self.id(),
            members: self.metadata.nodes.values().cloned().collect(),
            leader: self.leader(),
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.applied,
            progress,
            placement: self.metadata.placement.clone(),
        }
    }

    fn check_leader(&self) -> Result<()> {
        if self.leader().is_none() {
            return Err(Error::NoLeader);
        }
        Ok(())
    }

    fn next_id(&mut self) -> ProposalId {
        self.next_seq += 1;
        ProposalId { node: self.id(), incarnation: self.incarnation, seq: self.next_seq }
    }

    /// After every call into raft: replace raft's `thread_rng` election
    /// timeout with a seeded draw when raft reset its timer, and start the
    /// leader's lease bookkeeping on election.
    fn after_raft_call(&mut self) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if now == self.last_role {
            return;
        }
        let e = self.config.election_ticks;
        let t = self.rng.gen_range(e..2 * e);
        self.raw.raft.set_randomized_election_timeout(t);
        if now.1 == StateRole::Leader {
            // Everyone gets a full lease from the moment this node leads,
            // but the old leader: it has not been heard from since its last
            // message here (an election follows its silence), so a dead
            // leader fails over an election's time sooner.
            self.last_heard = self.metadata.nodes.keys().map(|id| (*id, self.ticks)).collect();
            if let Some(old) = self.last_leader.filter(|old| *old != self.id()) {
                if let Some(t) = self.last_heard.get_mut(&old) {
                    *t = self.heard_leader;
                }
            }
            self.duty = None;
            tracing::info!(node = self.id(), term = now.0, "became leader");
        }
        self.last_role = now;
    }
}

fn dropped(e: raft::Error) -> Error {
    match e {
        raft::Error::ProposalDropped => Error::NoLeader,
        e => Error::Raft(e),
    }
}
