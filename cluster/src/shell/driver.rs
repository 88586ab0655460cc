//! The driver thread: owns the [`RaftNode`], turns wall-clock time into
//! ticks, feeds it messages and requests, sends what it hands back, and
//! answers the waiting callers.
//!
//! It runs on its own OS thread because every `Ready` does a synced RocksDB
//! write; tokio workers stay free for sockets.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;

use tokio::sync::oneshot;
use weir_runtime::state::StateBackend;

use super::ClusterConfig;
use crate::clock::Ticker;
use crate::error::{Error, Result};
use crate::metadata::{Applied, Command, MemberChange, Metadata, NodeId};
use crate::node::{AppliedProposal, ClusterStatus, ProposalId, RaftNode};
use crate::transport::tcp::{Inbound, Transport};
use crate::transport::Response;

/// Requests from the [`Cluster`](crate::Cluster) handle and the listener.
pub(crate) enum Event {
    Inbound(Inbound),
    Propose { command: Command, reply: oneshot::Sender<Result<Applied>> },
    Member { change: MemberChange, reply: oneshot::Sender<Result<Applied>> },
    Read { reply: oneshot::Sender<Result<Metadata>> },
    Status { reply: oneshot::Sender<ClusterStatus> },
    Init { reply: oneshot::Sender<Result<()>> },
    TransferLeader { to: NodeId },
    LearnPeers { peers: Vec<(NodeId, String)> },
}

enum Reply {
    Command(oneshot::Sender<Result<Applied>>),
    Join(oneshot::Sender<Response>),
}

struct Waiter<R> {
    reply: R,
    deadline: u64,
}

pub(crate) struct Driver {
    config: ClusterConfig,
    addr: String,
    kv: Arc<dyn StateBackend>,
    node: RaftNode,
    transport: Arc<Transport>,
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    proposals: HashMap<ProposalId, Waiter<Reply>>,
    reads: HashMap<u64, Waiter<oneshot::Sender<Result<Metadata>>>>,
    next_read: u64,
    /// The address book last given to the transport.
    peers: BTreeMap<NodeId, String>,
    /// `request_timeout` in ticks.
    timeout_ticks: u64,
}

impl Driver {
    pub(crate) fn new(
        config: ClusterConfig,
        addr: String,
        kv: Arc<dyn StateBackend>,
        transport: Arc<Transport>,
        events: Receiver<Event>,
        stop: Arc<AtomicBool>,
    ) -> Result<Driver> {
        let node = RaftNode::open(config.node.clone(), kv.clone())?;
        let timeout_ticks = (config.request_timeout.as_millis() / config.tick.as_millis().max(1)).max(1) as u64;
        Ok(Driver {
            config,
            addr,
            kv,
            node,
            transport,
            events,
            stop,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            peers: BTreeMap::new(),
            timeout_ticks,
        })
    }

    /// Runs until stopped or until every sender is gone.
    pub(crate) fn run(mut self) {
        let mut ticker = Ticker::new(self.config.tick);
        self.ready();
        while !self.stop.load(Ordering::Acquire) {
            match self.events.recv_timeout(ticker.until_next()) {
                Ok(ev) => {
                    self.handle(ev);
                    // Batch what else is queued into the same Ready.
                    for _ in 0..256 {
                        match self.events.try_recv() {
                            Ok(ev) => self.handle(ev),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for _ in 0..ticker.due() {
                self.node.tick();
                self.expire();
            }
            self.ready();
        }
        self.transport.shutdown();
        tracing::info!(node = self.node.id(), "cluster driver stopped");
    }

    fn deadline(&self) -> u64 {
        self.node.ticks() + self.timeout_ticks
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Inbound(Inbound::Raft(m)) => {
                if let Err(e) = self.node.step(m) {
                    tracing::debug!(node = self.node.id(), error = %e, "dropped raft message");
                }
            }
            Event::Inbound(Inbound::Join { id, addr, reply }) => self.join(id, addr, reply),
            Event::Propose { command, reply } => match self.node.propose(command) {
                Ok(id) => {
                    let deadline = self.deadline();
                    self.proposals.insert(id, Waiter { reply: Reply::Command(reply), deadline });
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Event::Member { change, reply } => match self.node.propose_member_change(change) {
                Ok(id) => {
                    let deadline = self.deadline();
                    self.proposals.insert(id, Waiter { reply: Reply::Command(reply), deadline });
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Event::Read { reply } => {
                if !self.node.is_member() {
                    let _ = reply.send(Err(Error::NotInitialized));
                    return;
                }
                if self.node.leader().is_none() {
                    // raft drops a read without a leader silently; say so now.
                    let _ = reply.send(Err(Error::NoLeader));
                    return;
                }
                self.next_read += 1;
                self.node.read_index(self.next_read);
                let deadline = self.deadline();
                self.reads.insert(self.next_read, Waiter { reply, deadline });
            }
            Event::Status { reply } => drop(reply.send(self.node.status())),
            Event::Init { reply } => drop(reply.send(self.init())),
            Event::TransferLeader { to } => self.node.transfer_leader(to),
            Event::LearnPeers { peers } => {
                for (id, addr) in peers {
                    self.transport.learn_peer(id, addr);
                }
            }
        }
    }

    fn init(&mut self) -> Result<()> {
        if self.node.is_member() {
            return Err(Error::AlreadyInitialized);
        }
        RaftNode::bootstrap(self.kv.clone(), self.node.id(), &self.addr)?;
        self.node = RaftNode::open(self.config.node.clone(), self.kv.clone())?;
        self.node.campaign()?;
        tracing::info!(node = self.node.id(), addr = %self.addr, "initialized a new cluster");
        Ok(())
    }

    /// Serves a join request: proposes adding the node as a learner and
    /// answers once that is applied here (the leader promotes it to voter
    /// later, once it caught up; the joiner waits for that itself). A node
    /// already a member at the same address, learner or voter, is answered
    /// at once.
    fn join(&mut self, id: NodeId, addr: String, reply: oneshot::Sender<Response>) {
        let refuse = |reason: String, retry: bool| Response::Refused { reason, retry };
        if !self.node.is_member() {
            let _ = reply.send(refuse("the contacted node is not a member".into(), true));
            return;
        }
        match self.node.metadata().nodes.get(&id) {
            Some(n) if n.addr == addr => {
                let _ = reply.send(self.joined());
                return;
            }
            Some(n) => {
                let reason = format!("node id {id} is taken by {}", n.addr);
                let _ = reply.send(refuse(reason, false));
                return;
            }
            None => {}
        }
        match self.node.propose_member_change(MemberChange::Add { id, addr }) {
            Ok(pid) => {
                let deadline = self.deadline();
                self.proposals.insert(pid, Waiter { reply: Reply::Join(reply), deadline });
            }
            Err(e) => drop(reply.send(refuse(e.to_string(), e.is_retryable()))),
        }
    }

    fn joined(&self) -> Response {
        Response::Joined { members: self.node.metadata().nodes.values().map(|n| (n.id, n.addr.clone())).collect() }
    }

    fn ready(&mut self) {
        let out = match self.node.process_ready() {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(node = self.node.id(), error = %e, "raft storage failed; reopening the node");
                self.fail_all();
                match RaftNode::open(self.config.node.clone(), self.kv.clone()) {
                    Ok(n) => self.node = n,
                    Err(e) => {
                        tracing::error!(node = self.node.id(), error = %e, "cannot reopen the raft node; stopping");
                        self.stop.store(true, Ordering::Release);
                    }
                }
                return;
            }
        };
        self.sync_peers();
        for m in &out.messages {
            if let Err(e) = self.transport.send(m) {
                tracing::trace!(node = self.node.id(), to = m.to, error = %e, "raft message not queued");
                self.node.report_unreachable(m.to);
            }
        }
        for a in out.applied {
            self.resolve(a);
        }
        for ctx in out.reads {
            if let Some(w) = self.reads.remove(&ctx) {
                let _ = w.reply.send(Ok(self.node.metadata().clone()));
            }
        }
    }

    fn resolve(&mut self, a: AppliedProposal) {
        let Some(w) = self.proposals.remove(&a.id) else { return };
        match w.reply {
            Reply::Command(r) => drop(r.send(a.outcome.map_err(Error::Rejected))),
            Reply::Join(r) => {
                let resp = match a.outcome {
                    Ok(_) => self.joined(),
                    Err(e) => Response::Refused { reason: e.to_string(), retry: false },
                };
                let _ = r.send(resp);
            }
        }
    }

    /// Points the transport at the members' current addresses.
    fn sync_peers(&mut self) {
        let nodes = &self.node.metadata().nodes;
        if nodes.len() == self.peers.len() && nodes.values().all(|n| self.peers.get(&n.id) == Some(&n.addr)) {
            return;
        }
        self.peers = nodes.values().map(|n| (n.id, n.addr.clone())).collect();
        self.transport.set_peers(&self.peers);
    }

    fn expire(&mut self) {
        let now = self.node.ticks();
        let expired: Vec<_> = self.proposals.iter().filter(|(_, w)| w.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(w) = self.proposals.remove(&id) {
                match w.reply {
                    Reply::Command(r) => drop(r.send(Err(Error::Timeout { what: "proposal" }))),
                    Reply::Join(r) => drop(r.send(Response::Refused { reason: "timed out".into(), retry: true })),
                }
            }
        }
        let expired: Vec<_> = self.reads.iter().filter(|(_, w)| w.deadline <= now).map(|(ctx, _)| *ctx).collect();
        for ctx in expired {
            if let Some(w) = self.reads.remove(&ctx) {
                let _ = w.reply.send(Err(Error::Timeout { what: "read index" }));
            }
        }
    }

    fn fail_all(&mut self) {
        self.proposals.clear();
        self.reads.clear();
    }
}
