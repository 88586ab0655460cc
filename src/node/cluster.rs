//! A node in a cluster: the metadata (streams, tables, rules) lives in the
//! raft-replicated state machine of `weir-cluster`, and every node mirrors
//! it. REST writes on any node are validated locally, then proposed (raft
//! forwards them to the leader); each node then reconciles its catalog and
//! rules with the committed metadata, and runs the rules whose placement
//! names it as primary. When a node's lease expires, the leader promotes
//! the standby and the standby's reconcile starts the rule there.
//!
//! A rule's durable state (checkpoints, commit records, its ingest log)
//! goes through a [`ReplicatedBackend`]: every write reaches the rule's
//! standby (its [`ReplicaServer`]) before it returns, so the broker is
//! acknowledged only for messages both nodes hold, and a promoted standby
//! restores the rule from its own copy: exactly-once across failover.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use weir_cluster::replication::{ReplicaServer, ReplicatedBackend, ReplicationConfig, SyncStatus};
use weir_cluster::{Cluster, ClusterConfig, Command, Metadata, NodeId, ShardPlacement};
use weir_planner::{Statement, StreamKind};
use weir_runtime::state::StateBackend;

use super::shards::ShardHost;
use super::Node;
use crate::error::{Error, Result};
use crate::rules::{self, RuleDef};

/// How often a node reconciles with the metadata.
const RECONCILE_EVERY: Duration = Duration::from_millis(100);
/// A node that cannot read the metadata (no leader on its side of a
/// partition) for this long stops its rules: by then the majority has
/// given them to other nodes (leases last 1.2 s).
const SELF_FENCE_AFTER: Duration = Duration::from_secs(2);

/// How long reporting this node's addresses or a synced standby may hold
/// up the node's following of the cluster.
const REPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// `weir serve --cluster-listen ...`.
#[derive(Debug, Clone)]
pub(crate) struct ClusterOptions {
    /// Address the raft transport listens on.
    pub(crate) listen: SocketAddr,
    /// Address other nodes reach this one at (default: `listen`).
    pub(crate) advertise: Option<String>,
    /// Mutual TLS with the other nodes (raft and state replication).
    pub(crate) tls: Option<weir_cluster::ClusterTls>,
}

/// Maps a cluster error to a node error.
pub(crate) fn cluster_err(e: weir_cluster::Error) -> Error {
    Error::Cluster(e.to_string())
}

/// This node's raft id: stored in the data directory, made up once.
fn node_id(data_dir: &Path) -> Result<NodeId> {
    let path = data_dir.join("cluster_node_id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(id) = text.trim().parse::<NodeId>() {
            if id != 0 {
                return Ok(id);
            }
        }
    }
    // Random but never 0; the process id and the time keep two nodes
    // started in the same instant apart.
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let id = ((t as u64) ^ (u64::from(std::process::id()) << 40)) % 1_000_000_007 + 1;
    std::fs::write(&path, id.to_string())
        .map_err(|e| Error::Io { context: format!("writing {}", path.display()), source: e })?;
    Ok(id)
}

/// The node's side of rule-state replication.
pub(crate) struct Replication {
    /// Receives the state of rules this node is standby of.
    server: ReplicaServer,
    /// The rules' state store: local, mirrored to each rule's standby.
    pub(crate) backend: Arc<ReplicatedBackend>,
    /// The address other nodes replicate to.
    addr: String,
    /// The epoch each rule was last fenced at here.
    fenced: Mutex<HashMap<String, u64>>,
}

/// Starts this node's raft peer and replication over the node's state
/// store (raft uses its own space of it).
pub(crate) async fn start(
    opts: &ClusterOptions,
    data_dir: &Path,
    state: Arc<dyn StateBackend>,
) -> Result<(Cluster, Arc<Replication>, ShardHost)> {
    let cluster = start_raft(opts, data_dir, state.clone()).await?;
    let config = ReplicationConfig { tls: opts.tls.clone(), ..ReplicationConfig::default() };
    let rep_err = |e: weir_cluster::replication::ReplicationError| Error::Cluster(e.to_string());
    let server = ReplicaServer::bind(SocketAddr::new(opts.listen.ip(), 0), state.clone(), config.clone())
        .await
        .map_err(rep_err)?;
    // Advertised on the host the cluster address names.
    let host = match &opts.advertise {
        Some(a) => a.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_else(|| a.clone()),
        None => opts.listen.ip().to_string(),
    };
    let addr = format!("{host}:{}", server.local_addr().port());
    let backend = Arc::new(ReplicatedBackend::new(state, config).map_err(rep_err)?);
    let shards = ShardHost::start(opts.listen, &host, opts.tls.clone(), data_dir).await?;
    Ok((cluster, Arc::new(Replication { server, backend, addr, fenced: Mutex::new(HashMap::new()) }), shards))
}

async fn start_raft(opts: &ClusterOptions, data_dir: &Path, state: Arc<dyn StateBackend>) -> Result<Cluster> {
    let id = node_id(data_dir)?;
    let mut config = ClusterConfig::new(id, opts.listen, data_dir.join("cluster"));
    config.advertise = opts.advertise.clone();
    config.tls = opts.tls.clone();
    // Failover within the 3 s target: 50 ms ticks, elections after
    // 0.6–1.2 s, a node's lease lost after 1.2 s without heartbeats.
    config.tick = Duration::from_millis(50);
    config.node.election_ticks = 12;
    config.node.heartbeat_ticks = 2;
    config.node.lease_ticks = 24;
    Cluster::start_with_backend(config, state).await.map_err(cluster_err)
}

/// Proposes a report of this node (`what`: its addresses, a synced
/// standby), waiting at most [`REPORT_TIMEOUT`]: a proposal caught in a
/// leader change can wait out the whole request timeout, and the node's
/// following of the cluster must go on. A report that fails is made again
/// by the caller's next round.
async fn report(cluster: &Cluster, command: Command, what: &str) {
    match tokio::time::timeout(REPORT_TIMEOUT, cluster.propose(command)).await {
        Ok(Ok(_)) => tracing::debug!("reported {what}"),
        Ok(Err(e)) => tracing::debug!(error = %e, "cannot report {what} yet"),
        Err(_) => tracing::debug!("reporting {what} timed out"),
    }
}

/// A linearizable read of the metadata. A read lost in a leader change
/// would wait out the whole request timeout, so each attempt gets a short
/// one and a fresh attempt follows, up to `limit` in all.
async fn read_metadata(cluster: &Cluster, limit: Duration) -> Result<Metadata> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = tokio::time::Instant::now() + READ_ATTEMPT >= deadline;
        match tokio::time::timeout(READ_ATTEMPT, cluster.metadata()).await {
            Ok(Ok(md)) => return Ok(md),
            Ok(Err(e)) if last => return Err(cluster_err(e)),
            Err(_) if last => return Err(Error::Cluster("timed out reading the cluster metadata".into())),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One attempt of [`read_metadata`].
const READ_ATTEMPT: Duration = Duration::from_secs(1);

impl Node {
    /// The REST URL of the node running rule `id`, when that is another
    /// node of the cluster (which then has the rule's live status).
    pub(crate) async fn rule_home(&self, id: &str) -> Option<String> {
        self.rule_homes().await.remove(id)
    }

    /// The REST URL of the node running each rule that runs on another
    /// node (empty outside a cluster).
    pub(crate) async fn rule_homes(&self) -> HashMap<String, String> {
        let Some(cluster) = self.cluster() else { return HashMap::new() };
        let Ok(status) = cluster.status().await else { return HashMap::new() };
        let me = cluster.id();
        let rest: HashMap<NodeId, &String> =
            status.members.iter().filter(|m| !m.rest.is_empty()).map(|m| (m.id, &m.rest)).collect();
        status
            .placement
            .iter()
            .filter_map(|(rule, shards)| {
                let primary = shards.first()?.primary;
                (primary != me).then(|| Some((rule.clone(), rest.get(&primary)?.to_string())))?
            })
            .collect()
    }

    /// Records the REST API's address, for other nodes to forward to.
    pub(crate) fn set_rest_url(&self, url: String) {
        let _ = self.rest_url.set(url);
    }

    /// The raft peer, when the node runs in a cluster.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Proposes `command` and mirrors the result here at once, so the
    /// REST answer already reflects it.
    pub(super) async fn propose(&self, cluster: &Cluster, command: Command) -> Result<()> {
        cluster.propose(command).await.map_err(cluster_err)?;
        self.catch_up().await
    }

    /// Brings this node up to the cluster's committed metadata (a
    /// linearizable read), so a write checked here sees every write made
    /// on other nodes before it. Outside a cluster, nothing to do.
    pub(super) async fn catch_up(&self) -> Result<()> {
        let Some(cluster) = self.cluster() else { return Ok(()) };
        let md = read_metadata(cluster, Duration::from_secs(10)).await?;
        self.reconcile(cluster.id(), &md).await;
        Ok(())
    }

    /// Keeps this node in step with the cluster until the process ends.
    pub(crate) async fn follow_cluster(self: Arc<Node>) {
        let Some(cluster) = self.cluster() else { return };
        actix::spawn(self.clone().propose_shard_changes());
        let id = cluster.id();
        let mut last_read = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            if last_read.elapsed() > SELF_FENCE_AFTER {
                self.stop_all("lost contact with the cluster's majority").await;
            }
            // Not a member yet (before init/join), no leader, or a
            // partition: nothing to follow this round.
            let Ok(status) = cluster.status().await else { continue };
            let Some(me) = status.members.iter().find(|m| m.id == id) else { continue };
            // Tell the others where this node's REST API and replica are.
            let rest = self.rest_url.get().cloned().unwrap_or_default();
            let replica = self.replication.as_ref().map(|r| r.addr.clone()).unwrap_or_default();
            let exchange = self.shard_host.as_ref().map(|h| h.addr.clone()).unwrap_or_default();
            if (me.rest != rest || me.replica != replica || me.exchange != exchange) && !rest.is_empty() {
                // A standby whose new address is not known holds up its
                // rule's failover; the next round reports again.
                report(cluster, Command::ReportAddresses { node: id, rest, replica, exchange }, "addresses").await;
            }
            match read_metadata(cluster, SELF_FENCE_AFTER / 2).await {
                Ok(md) => {
                    self.reconcile(id, &md).await;
                    // The read succeeded: the time this node spent on its
                    // own reconcile (stopping rules, copying state) is no
                    // loss of contact.
                    last_read = tokio::time::Instant::now();
                }
                Err(e) => tracing::debug!(error = %e, "cluster metadata not readable now"),
            }
        }
    }

    /// Stops every rule running here (the node is cut off from the
    /// majority: it must not act for rules given to other nodes).
    async fn stop_all(&self, why: &str) {
        for rule in self.rules.list() {
            if rule.is_live().await {
                tracing::warn!(rule = %rule.state().def.id, "{why}: stopping");
                self.rules.abandon(&rule, why).await;
            }
        }
    }

    /// Makes the local catalog and rules equal to `md`, and runs exactly
    /// the triggered rules placed on node `me`.
    pub(super) async fn reconcile(&self, me: NodeId, md: &Metadata) {
        let _one_at_a_time = self.reconciling.lock().await;
        for (kind, defs) in [(StreamKind::Stream, &md.streams), (StreamKind::Table, &md.tables)] {
            for (name, sql) in defs {
                let same = self.catalog().get(name).is_some_and(|d| d.kind == kind && d.sql == *sql);
                if same {
                    continue;
                }
                match weir_planner::parse_statement(sql) {
                    Ok(Statement::Create(def)) => {
                        if let Err(e) = self.store.put_stream(kind, name, sql) {
                            tracing::warn!(%name, error = %e, "cannot store replicated definition");
                        }
                        self.catalog_mut().insert(*def);
                    }
                    _ => tracing::warn!(%name, "replicated definition does not parse; skipped"),
                }
            }
            for name in self.catalog().names(kind) {
                if !defs.contains_key(&name) {
                    let _ = self.store.remove_stream(kind, &name);
                    self.catalog_mut().remove(&name);
                }
            }
        }
        for (id, info) in &md.rules {
            let def = match serde_json::from_str(&info.json)
                .map_err(|e| e.to_string())
                .and_then(|v| RuleDef::from_json(v, Some(id)).map_err(|e| e.to_string()))
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(rule = %id, error = %e, "replicated rule is invalid; skipped");
                    continue;
                }
            };
            if info.shards > 1 {
                self.reconcile_shards(me, def, md).await;
                continue;
            }
            let shard = md.placement.get(id).and_then(|shards| shards.first());
            let ready = match shard {
                Some(sp) => self.replicate(id, 0, sp, md, me).await,
                None => false,
            };
            let primary = shard.map(|s| s.primary);
            self.reconcile_rule(def, primary == Some(me), ready, primary).await;
        }
        for rule in self.rules.list() {
            let id = rule.state().def.id.clone();
            if !md.rules.contains_key(&id) {
                let _ = self.rules.remove(&id).await;
                let _ = self.store.remove_rule(&id);
            }
        }
    }

    /// Replication duties for rule `id` (or shard `shard` of a sharded
    /// rule, whose state is kept under its own `id`) placed as `sp`;
    /// returns whether it may start here (this node is its primary, fenced
    /// at its epoch, and its standby, if any, holds a copy of its state).
    ///
    /// As standby, the node fences the rule at the current epoch so that a
    /// deposed primary's late writes are refused; as primary it fences its
    /// own copy before restoring from it, points the backend at the
    /// standby and copies the state over when the standby is new.
    pub(super) async fn replicate(&self, id: &str, shard: u32, sp: &ShardPlacement, md: &Metadata, me: NodeId) -> bool {
        let Some(rep) = self.replication.clone() else { return sp.primary == me };
        if sp.primary != me && sp.standby != Some(me) {
            return false;
        }
        let fresh = rep.fenced.lock().unwrap_or_else(|e| e.into_inner()).get(id) != Some(&sp.epoch);
        if fresh {
            let (r, rule, epoch) = (rep.clone(), id.to_string(), sp.epoch);
            let fenced = tokio::task::spawn_blocking(move || r.server.fence(&rule, epoch)).await;
            match fenced {
                Ok(Ok(_)) => {
                    rep.fenced.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), sp.epoch);
                }
                other => {
                    tracing::warn!(rule = %id, epoch = sp.epoch, "cannot fence the rule's state: {other:?}");
                    return false;
                }
            }
        }
        if sp.primary != me {
            return false;
        }
        let standby = sp.standby.and_then(|s| md.nodes.get(&s)).map(|n| n.replica.clone());
        match (sp.standby, standby) {
            (None, _) => {
                rep.backend.set_standby(id, None, sp.epoch);
                true
            }
            // The standby has not said where it listens yet.
            (Some(_), None) => false,
            (Some(_), Some(addr)) if addr.is_empty() => false,
            (Some(_), Some(addr)) => {
                let current = rep.backend.standby(id);
                if current.as_ref().map(|s| (s.addr.as_str(), s.epoch)) != Some((addr.as_str(), sp.epoch)) {
                    rep.backend.set_standby(id, Some(&addr), sp.epoch);
                }
                let in_sync = match rep.backend.standby(id).map(|s| s.status) {
                    Some(SyncStatus::InSync) => true,
                    Some(SyncStatus::NeedsSync) => {
                        let (r, rule) = (rep.clone(), id.to_string());
                        match tokio::task::spawn_blocking(move || r.backend.sync_standby(&rule)).await {
                            Ok(Ok(())) => {
                                tracing::info!(rule = %id, standby = %addr, "standby holds the rule's state");
                                true
                            }
                            other => {
                                tracing::warn!(rule = %id, standby = %addr, "standby copy failed: {other:?}");
                                false
                            }
                        }
                    }
                    _ => false,
                };
                if in_sync && !sp.synced {
                    self.report_synced(id, shard, sp).await;
                }
                in_sync
            }
        }
    }

    /// Tells the cluster that the standby of `sp` holds the rule's state,
    /// so that it may take over if this node dies. A failed proposal (no
    /// leader right now) is retried by the next reconcile.
    async fn report_synced(&self, id: &str, shard: u32, sp: &ShardPlacement) {
        let (Some(cluster), Some(standby)) = (self.cluster(), sp.standby) else { return };
        // A shard's state id is `<rule>#<shard>`; the metadata knows the rule.
        let rule = id.split_once('#').map_or(id, |(r, _)| r);
        let synced = Command::StandbySynced { rule: rule.to_string(), shard, epoch: sp.epoch, standby };
        report(cluster, synced, "a synced standby").await;
    }

    /// One rule: stored, replaced if its definition changed, started here
    /// when placed here, triggered and `ready` (see [`Node::replicate`]),
    /// stopped when placed elsewhere or not triggered.
    async fn reconcile_rule(&self, def: RuleDef, here: bool, ready: bool, primary: Option<NodeId>) {
        let id = def.id.clone();
        let triggered = def.triggered;
        let Some(rule) = self.ensure_rule(def).await else { return };
        let running = rule.is_live().await;
        if here && triggered && !running && ready {
            tracing::info!(rule = %id, "placed here: starting");
            let _ = self.rules.start(&rule, self.plan_of(&rule)).await;
        } else if running && !(here && triggered) {
            match primary {
                // The new primary has fenced this node's copy of the state:
                // no last checkpoint (it would be refused).
                Some(p) if triggered => self.rules.abandon(&rule, &format!("moved to node {p}")).await,
                _ => self.rules.stop(&rule, "canceled manually").await,
            }
        }
    }

    /// Rule `def` in the local registry and store: added, or replaced when
    /// its definition changed (which stops it). `None` when it cannot be
    /// added.
    pub(super) async fn ensure_rule(&self, def: RuleDef) -> Option<Arc<crate::rules::Rule>> {
        let id = def.id.clone();
        let json = def.to_json();
        match self.rules.get(&id) {
            Ok(rule) => {
                if rule.state().def.to_json() != json {
                    let plan = rules::plan(&def, &self.catalog(), &self.functions.current());
                    match plan {
                        Ok(plan) => self.rules.replace(&rule, def, plan).await,
                        Err(e) => tracing::warn!(rule = %id, error = %e, "replicated rule does not plan here"),
                    }
                    let _ = self.store.put_rule(&id, &json);
                }
                Some(rule)
            }
            Err(_) => {
                let plan = rules::plan(&def, &self.catalog(), &self.functions.current()).ok();
                let _ = self.store.put_rule(&id, &json);
                self.rules.insert(def, plan).ok()
            }
        }
    }
}
