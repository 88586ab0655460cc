//! [`Cluster`]: the production shell (its docs explain reads and writes).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use weir_runtime::state::{RocksBackend, StateBackend};

use crate::clock;
use crate::error::{Error, Result};
use crate::metadata::{Applied, Command, MemberChange, Metadata};
use crate::node::ClusterStatus;
use crate::transport::tcp::{self, Deliver, Inbound, Transport};
use crate::transport::{Request, Response};

mod config;
mod driver;

pub use config::ClusterConfig;
use driver::{Driver, Event};

/// Pause between retries of a retryable failure (no leader yet).
const RETRY: Duration = Duration::from_millis(50);

/// The handle the weir binary uses: one node over TCP with its raft state
/// in RocksDB.
///
/// Reads: [`Cluster::metadata`] is linearizable through raft's ReadIndex
/// (safe mode: the leader confirms its leadership with a heartbeat round,
/// no clock assumption), so it reflects every write committed before the
/// call, on any node. [`Cluster::status`] is this node's local, possibly
/// stale view.
///
/// Writes: [`Cluster::propose`] works on any member; a follower's proposal
/// is forwarded to the leader by raft, and the result is what the state
/// machine returned when this node applied the entry. A proposal can be
/// lost in a leader change: the call then returns [`Error::Timeout`] and
/// may or may not have taken effect, so commands are written to be
/// idempotent (puts and drops of whole objects, epochs checked by value).
///
/// Dropping it stops the node (like a crash: the
/// state on disk stays, and [`Cluster::start`] on the same directory
/// rejoins); [`Cluster::shutdown`] also waits for the driver to finish.
pub struct Cluster {
    config: ClusterConfig,
    local_addr: SocketAddr,
    events: SyncSender<Event>,
    stop: Arc<AtomicBool>,
    transport: Arc<Transport>,
    listener: tokio::task::JoinHandle<()>,
    driver: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.config.node.id).field("addr", &self.local_addr).finish()
    }
}

impl Cluster {
    /// Opens the raft state in `config.data_dir` (RocksDB) and starts the
    /// node. A node that belonged to a cluster rejoins it; a new one waits
    /// for [`init`](Cluster::init) or [`join`](Cluster::join).
    ///
    /// # Errors
    /// Invalid config, the data dir cannot be opened, the port is taken.
    pub async fn start(config: ClusterConfig) -> Result<Cluster> {
        config.validate()?;
        let dir = config.data_dir.clone();
        let kv = tokio::task::spawn_blocking(move || RocksBackend::open(&dir)).await.map_err(|_| Error::Stopped)??;
        Cluster::start_with_backend(config, Arc::new(kv)).await
    }

    /// Like [`start`](Cluster::start) over an existing store (e.g. the
    /// node's state database; raft uses only its `raft` space).
    ///
    /// # Errors
    /// Invalid config, corrupt raft state, the port is taken.
    pub async fn start_with_backend(config: ClusterConfig, kv: Arc<dyn StateBackend>) -> Result<Cluster> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let addr = config.advertise.clone().unwrap_or_else(|| local_addr.to_string());
        let rt = tokio::runtime::Handle::current();
        let transport = Arc::new(Transport::new(
            config.node.id,
            addr.clone(),
            config.max_frame,
            config.peer_queue,
            rt,
            config.tls.clone(),
        ));
        let (events, rx) = sync_channel(config.inbox);
        let stop = Arc::new(AtomicBool::new(false));
        let driver = Driver::new(config.clone(), addr, kv, transport.clone(), rx, stop.clone())?;
        let to_driver = events.clone();
        let deliver: Deliver = Arc::new(move |i: Inbound| to_driver.try_send(Event::Inbound(i)).is_ok());
        let listener = tokio::spawn(tcp::serve(listener, transport.clone(), deliver, config.max_frame));
        let driver =
            std::thread::Builder::new().name(format!("weir-raft-{}", config.node.id)).spawn(move || driver.run())?;
        tracing::info!(node = config.node.id, %local_addr, "cluster node started");
        Ok(Cluster { config, local_addr, events, stop, transport, listener, driver: Mutex::new(Some(driver)) })
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.config.node.id
    }

    /// Makes this node a new one-node cluster and its leader.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] if the node belongs to a cluster.
    pub async fn init(&self) -> Result<()> {
        self.call(|reply| Event::Init { reply }).await??;
        self.wait_for("leadership", |s| s.leader == Some(s.id)).await
    }

    /// Joins the cluster that `member` (`host:port` of any member) belongs
    /// to, and returns once this node is a voter. The leader first adds it
    /// as a learner (it gets the log but does not count towards the
    /// quorum), then promotes it once it has caught up (see
    /// [`MemberChange`]); each step gets its own `request_timeout`.
    /// Calling it again on a member is a no-op, and on a learner waits for
    /// the promotion again.
    ///
    /// # Errors
    /// [`Error::Refused`] (e.g. the id is taken by another address),
    /// [`Error::Timeout`] after `request_timeout` (`what` names the step:
    /// `"join"`, `"the cluster state"`, or `"promotion to voter"`, in which
    /// case the node is a learner and the leader keeps trying), socket
    /// errors.
    pub async fn join(&self, member: &str) -> Result<()> {
        let deadline = clock::deadline(self.config.request_timeout);
        let req = Request::Join { id: self.id(), addr: self.advertised() };
        loop {
            match tcp::request(
                member,
                req.clone(),
                self.config.max_frame,
                self.config.request_timeout,
                self.config.tls.as_ref(),
            )
            .await
            {
                Ok(Response::Joined { members }) => {
                    self.send(Event::LearnPeers { peers: members })?;
                    break;
                }
                Ok(Response::Refused { reason, retry: false }) => return Err(Error::Refused { reason }),
                Ok(Response::Refused { reason, .. }) => tracing::debug!(%reason, "join refused, retrying"),
                Err(e) if e.is_retryable() => tracing::debug!(error = %e, "join failed, retrying"),
                Err(e) => return Err(e),
            }
            if clock::passed(deadline) {
                return Err(Error::Timeout { what: "join" });
            }
            tokio::time::sleep(RETRY).await;
        }
        let me = self.id();
        self.wait_for("the cluster state", move |s| s.members.iter().any(|m| m.id == me)).await?;
        let started = std::time::Instant::now();
        self.wait_for("promotion to voter", move |s| s.members.iter().any(|m| m.id == me && !m.learner)).await?;
        tracing::info!(node = me, waited_ms = started.elapsed().as_millis() as u64, "joined as a learner, now a voter");
        Ok(())
    }

    /// Removes this node from the cluster (a conf change through the
    /// leader) and stops it. Its shards are re-placed by the leader.
    ///
    /// # Errors
    /// [`Error::NotInitialized`] if not a member; [`Error::Timeout`].
    pub async fn leave(&self) -> Result<()> {
        let status = self.status().await?;
        if !status.members.iter().any(|m| m.id == self.id()) {
            return Err(Error::NotInitialized);
        }
        let change = MemberChange::Remove { id: self.id() };
        self.retrying(|reply| Event::Member { change: change.clone(), reply }).await?;
        // Give the leader a few ticks to spread the commit before going quiet.
        tokio::time::sleep(self.config.tick * 4).await;
        self.stop.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes member `id` (a node that is gone for good, e.g. its disk was
    /// wiped and it rejoined under a new id), so that it no longer counts
    /// towards the quorum. Its shards are re-placed by the leader.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if `id` is not a member, or this node itself
    /// (use [`leave`](Cluster::leave)); [`Error::Timeout`].
    pub async fn remove(&self, id: crate::metadata::NodeId) -> Result<()> {
        let status = self.status().await?;
        if id == self.id() || !status.members.iter().any(|m| m.id == id) {
            return Err(Error::UnknownNode { node: id });
        }
        let change = MemberChange::Remove { id };
        self.retrying(|reply| Event::Member { change: change.clone(), reply }).await?;
        Ok(())
    }

    /// This node's local view: members, leader, term, indexes, replication
    /// progress (on the leader) and placement.
    ///
    /// # Errors
    /// [`Error::Stopped`].
    pub async fn status(&self) -> Result<ClusterStatus> {
        self.call(|reply| Event::Status { reply }).await
    }

    /// Proposes a command and returns what the state machine said, retrying
    /// while no leader is known (see the type docs on lost proposals).
    ///
    /// # Errors
    /// [`Error::Rejected`] (applied and refused), [`Error::Timeout`],
    /// [`Error::Stopped`].
    pub async fn propose(&self, command: Command) -> Result<Applied> {
        self.retrying(|reply| Event::Propose { command: command.clone(), reply }).await
    }

    /// A linearizable copy of the metadata (ReadIndex; see the type docs).
    ///
    /// # Errors
    /// [`Error::NotInitialized`], [`Error::Timeout`], [`Error::Stopped`].
    pub async fn metadata(&self) -> Result<Metadata> {
        self.retrying(|reply| Event::Read { reply }).await
    }

    /// Asks the leader (if this node is it) to hand leadership to `to`.
    ///
    /// # Errors
    /// [`Error::Stopped`], [`Error::Busy`].
    pub fn transfer_leader(&self, to: u64) -> Result<()> {
        self.send(Event::TransferLeader { to })
    }

    /// Stops the node and waits for its driver thread (which closes the
    /// raft storage), so the data dir can be reopened.
    pub async fn shutdown(self) {
        self.stop_all();
        let handle = self.driver.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    fn advertised(&self) -> String {
        self.config.advertise.clone().unwrap_or_else(|| self.local_addr.to_string())
    }

    fn stop_all(&self) {
        self.stop.store(true, Ordering::Release);
        self.listener.abort();
        self.transport.shutdown();
    }

    fn send(&self, ev: Event) -> Result<()> {
        self.events.try_send(ev).map_err(|e| match e {
            TrySendError::Full(_) => Error::Busy,
            TrySendError::Disconnected(_) => Error::Stopped,
        })
    }

    /// Sends an event and awaits the answer on its oneshot.
    async fn call<T: Send + 'static>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Event) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// [`call`](Cluster::call) for results, retried until `request_timeout`
    /// while the request surely did not enter the log (no leader, busy).
    /// A timeout is not retried: the proposal may still be applied.
    async fn retrying<T: Send + 'static>(&self, make: impl Fn(oneshot::Sender<Result<T>>) -> Event) -> Result<T> {
        let deadline = clock::deadline(self.config.request_timeout);
        loop {
            let r = match self.call(&make).await {
                Ok(r) => r,
                Err(e) => Err(e),
            };
            match r {
                Err(Error::NoLeader | Error::Busy) if !clock::passed(deadline) => tokio::time::sleep(RETRY).await,
                r => return r,
            }
        }
    }

    /// Polls the local status until `done` holds or `request_timeout` passes.
    async fn wait_for(&self, what: &'static str, done: impl Fn(&ClusterStatus) -> bool) -> Result<()> {
        let deadline = clock::deadline(self.config.request_timeout);
        loop {
            if done(&self.status().await?) {
                return Ok(());
            }
            if clock::passed(deadline) {
                return Err(Error::Timeout { what });
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
