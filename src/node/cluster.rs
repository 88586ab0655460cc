//! A node in a cluster: the metadata (streams, tables, rules) lives in the
//! raft-replicated state machine of `weir-cluster`, and every node mirrors
//! it. REST writes on any node are validated locally, then proposed (raft
//! forwards them to the leader); each node then reconciles its catalog and
//! rules with the committed metadata, and runs the rules whose placement
//! names it as primary. When a node's lease expires, the leader promotes
//! the standby and the standby's reconcile starts the rule there.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weir_cluster::{Cluster, ClusterConfig, Command, Metadata, NodeId};
use weir_planner::{Statement, StreamKind};
use weir_runtime::state::StateBackend;

use super::Node;
use crate::error::{Error, Result};
use crate::rules::{self, RuleDef};

/// How often a node reconciles with the metadata.
const RECONCILE_EVERY: Duration = Duration::from_millis(100);

/// `weir serve --cluster-listen ...`.
#[derive(Debug, Clone)]
pub(crate) struct ClusterOptions {
    /// Address the raft transport listens on.
    pub(crate) listen: SocketAddr,
    /// Address other nodes reach this one at (default: `listen`).
    pub(crate) advertise: Option<String>,
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

/// Starts this node's raft peer over the node's state store.
pub(crate) async fn start(opts: &ClusterOptions, data_dir: &Path, state: Arc<dyn StateBackend>) -> Result<Cluster> {
    let id = node_id(data_dir)?;
    let mut config = ClusterConfig::new(id, opts.listen, data_dir.join("cluster"));
    config.advertise = opts.advertise.clone();
    // Failover within the 3 s target: 50 ms ticks, elections after
    // 0.6–1.2 s, a node's lease lost after 1.2 s without heartbeats.
    config.tick = Duration::from_millis(50);
    config.node.election_ticks = 12;
    config.node.heartbeat_ticks = 2;
    config.node.lease_ticks = 24;
    Cluster::start_with_backend(config, state).await.map_err(cluster_err)
}

impl Node {
    /// The REST URL of the node running rule `id`, when that is another
    /// node of the cluster (which then has the rule's live status).
    pub(crate) async fn rule_home(&self, id: &str) -> Option<String> {
        let cluster = self.cluster()?;
        let status = cluster.status().await.ok()?;
        let primary = status.placement.get(id)?.first()?.primary;
        if primary == cluster.id() {
            return None;
        }
        let rest = &status.members.iter().find(|m| m.id == primary)?.rest;
        (!rest.is_empty()).then(|| rest.clone())
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
        let md = cluster.metadata().await.map_err(cluster_err)?;
        self.reconcile(cluster.id(), &md).await;
        Ok(())
    }

    /// Keeps this node in step with the cluster until the process ends.
    pub(crate) async fn follow_cluster(self: Arc<Node>) {
        let Some(cluster) = self.cluster() else { return };
        let id = cluster.id();
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            // Not a member yet (before init/join), no leader, or a
            // partition: nothing to follow this round.
            let Ok(status) = cluster.status().await else { continue };
            let Some(me) = status.members.iter().find(|m| m.id == id) else { continue };
            // Tell the others where this node's REST API is.
            let rest = self.rest_url.get().cloned().unwrap_or_default();
            if me.rest != rest && !rest.is_empty() {
                let report = Command::ReportAddresses { node: id, rest, replica: me.replica.clone() };
                if let Err(e) = cluster.propose(report).await {
                    tracing::debug!(error = %e, "cannot report this node's addresses yet");
                }
            }
            match cluster.metadata().await {
                Ok(md) => self.reconcile(id, &md).await,
                Err(e) => tracing::debug!(error = %e, "cluster metadata not readable now"),
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
            let primary = md.placement.get(id).and_then(|shards| shards.first()).map(|s| s.primary);
            self.reconcile_rule(def, primary == Some(me), primary).await;
        }
        for rule in self.rules.list() {
            let id = rule.state().def.id.clone();
            if !md.rules.contains_key(&id) {
                let _ = self.rules.remove(&id).await;
                let _ = self.store.remove_rule(&id);
            }
        }
    }

    /// One rule: stored, replaced if its definition changed, started here
    /// when placed here and triggered, stopped otherwise.
    async fn reconcile_rule(&self, def: RuleDef, here: bool, primary: Option<NodeId>) {
        let id = def.id.clone();
        let json = def.to_json();
        let triggered = def.triggered;
        let rule = match self.rules.get(&id) {
            Ok(rule) => {
                if rule.state().def.to_json() != json {
                    let plan = rules::plan(&def, &self.catalog(), &self.functions.current());
                    match plan {
                        Ok(plan) => self.rules.replace(&rule, def, plan).await,
                        Err(e) => tracing::warn!(rule = %id, error = %e, "replicated rule does not plan here"),
                    }
                    let _ = self.store.put_rule(&id, &json);
                }
                rule
            }
            Err(_) => {
                let plan = rules::plan(&def, &self.catalog(), &self.functions.current()).ok();
                let _ = self.store.put_rule(&id, &json);
                match self.rules.insert(def, plan) {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        let running = rule.is_live().await;
        if here && triggered && !running {
            tracing::info!(rule = %id, "placed here: starting");
            let _ = self.rules.start(&rule, self.plan_of(&rule)).await;
        } else if running && !(here && triggered) {
            let why = match primary {
                Some(p) if triggered => format!("moved to node {p}"),
                _ => "canceled manually".to_string(),
            };
            self.rules.stop(&rule, &why).await;
        }
    }
}
