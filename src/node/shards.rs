//! Sharded rules on a node of a cluster (a rule with `"shards": N`, see
//! `weir_runtime::shard`).
//!
//! The leader places each shard like a rule of its own: a primary, a
//! standby, an epoch. A node starts each shard placed here once every
//! shard's node has said where its exchange listens: the shard registers
//! its inbox with this node's [`ExchangeServer`] and opens a link to every
//! other shard. Its state (`<rule>#<index>`) is replicated to its standby
//! like a rule's.
//!
//! The shards' epochs together are the rule's *run*: the placement changes
//! them all at once whenever one shard fails over, so every node sees its
//! shard's run end, stops it without a checkpoint and starts it again from
//! the rule's committed checkpoint (the minimum over shards, kept in the
//! metadata). A broken link between shards asks for the same rollback
//! ([`Command::RestartShards`]): rows may have been lost on it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use weir_cluster::exchange::{ExchangeLink, ExchangeServer, Hello, Registration};
use weir_cluster::{ClusterTls, Command, Metadata, NodeId};
use weir_runtime::shard::{ShardCommit, ShardRun};

use super::shard_runs::StartedRuns;
use super::Node;
use crate::rules::{shard_id, RuleDef};

/// How long one proposal of a shard's checkpoint or rollback may take.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Capacity of the channels between shards, in messages (row batches).
const LINK_QUEUE: usize = 64;

/// What a node needs to run shards: its exchange listener, and the way its
/// shards' checkpoints and rollbacks reach the metadata.
pub(crate) struct ShardHost {
    server: ExchangeServer,
    /// The address other nodes reach the exchange at.
    pub(crate) addr: String,
    tls: Option<ClusterTls>,
    /// The committed checkpoint of each sharded rule in its current run
    /// (shard epochs are never reused, so a run names one life of a rule),
    /// followed by its shards here.
    committed: Mutex<HashMap<String, RunCommit>>,
    proposals: mpsc::UnboundedSender<ShardProposal>,
    pending: Mutex<Option<mpsc::UnboundedReceiver<ShardProposal>>>,
    /// The shards started here, with their run: a shard never starts twice
    /// in one run (the others went on without it: only a rollback of all
    /// of them keeps the rule consistent).
    started: StartedRuns,
    /// When a shard of each rule last failed to start here: its rollbacks
    /// wait [`RETRY_FAILED_START`] (a shard that cannot start must not
    /// roll its rule back on every reconcile).
    failed: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long after a shard failed to start its rule may roll back again.
const RETRY_FAILED_START: Duration = Duration::from_secs(5);

/// A rule's run (its shards' epochs) and its committed checkpoint.
type RunCommit = (Vec<u64>, watch::Sender<u64>);

/// A change a shard asks the cluster for.
#[derive(Debug)]
enum ShardProposal {
    /// The shard holds checkpoint `epoch`.
    Prepared { rule: String, shard: u32, shard_epoch: u64, epoch: u64 },
    /// A link of run `epochs` broke: roll the rule back.
    Rollback { rule: String, epochs: Vec<u64> },
}

impl ShardHost {
    /// Listens for other shards on `listen`'s host (any port), advertised
    /// on `host`; keeps the runs it started in `data_dir`.
    pub(crate) async fn start(
        listen: std::net::SocketAddr,
        host: &str,
        tls: Option<ClusterTls>,
        data_dir: &std::path::Path,
    ) -> crate::error::Result<ShardHost> {
        let server = ExchangeServer::bind(std::net::SocketAddr::new(listen.ip(), 0), tls.clone())
            .await
            .map_err(|e| crate::error::Error::Cluster(e.to_string()))?;
        let addr = format!("{host}:{}", server.local_addr().port());
        let (proposals, pending) = mpsc::unbounded_channel();
        Ok(ShardHost {
            server,
            addr,
            tls,
            committed: Mutex::new(HashMap::new()),
            proposals,
            pending: Mutex::new(Some(pending)),
            started: StartedRuns::open(data_dir.join("shard_runs.json")),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// Brings the committed checkpoint of `rule` in run `run`, as its
    /// shards here follow it, up to `epoch`; returns its sender.
    fn committed(&self, rule: &str, run: &[u64], epoch: u64) -> watch::Sender<u64> {
        let mut m = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        let entry = m.entry(rule.to_string()).or_insert_with(|| (run.to_vec(), watch::channel(epoch).0));
        if entry.0 != run {
            *entry = (run.to_vec(), watch::channel(epoch).0);
        }
        entry.1.send_if_modified(|c| {
            let advanced = epoch > *c;
            *c = (*c).max(epoch);
            advanced
        });
        entry.1.clone()
    }

    /// Forgets the rules not in `md` (dropped), and the runs that ended.
    fn retain(&self, md: &Metadata) {
        let mut m = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|rule, _| md.rules.contains_key(rule));
        self.started.retain(|rule, run| {
            md.placement.get(rule).is_some_and(|s| s.iter().map(|p| p.epoch).eq(run.iter().copied()))
        });
    }
}

/// A shard's side of the checkpoint agreement, through the metadata.
struct MetadataCommit {
    rule: String,
    shard: u32,
    shard_epoch: u64,
    proposals: mpsc::UnboundedSender<ShardProposal>,
    committed: watch::Receiver<u64>,
}

impl ShardCommit for MetadataCommit {
    fn prepared(&self, epoch: u64) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let p = ShardProposal::Prepared {
            rule: self.rule.clone(),
            shard: self.shard,
            shard_epoch: self.shard_epoch,
            epoch,
        };
        let sent = self.proposals.send(p).map_err(|_| "the node is shutting down".to_string());
        Box::pin(async move { sent })
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}

/// What ties a running shard to the others; dropped after it stopped.
struct ShardLinks {
    _registration: Registration,
    _links: Vec<ExchangeLink>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for ShardLinks {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Node {
    /// Runs exactly the shards of sharded rule `def` that are placed here,
    /// each in the rule's current run; see the module docs.
    pub(super) async fn reconcile_shards(&self, me: NodeId, def: RuleDef, md: &Metadata) {
        let Some(host) = self.shard_host.as_ref() else { return };
        let id = def.id.clone();
        let triggered = def.triggered;
        let Some(rule) = self.ensure_rule(def).await else { return };
        let placed = md.placement.get(&id).cloned().unwrap_or_default();
        let run: Vec<u64> = placed.iter().map(|s| s.epoch).collect();
        let committed = md.global_checkpoint(&id);
        let follow = host.committed(&id, &run, committed);
        host.retain(md);
        // Stop the shards placed elsewhere now, or of an earlier run.
        for (index, their_run) in rule.shard_runs().await {
            let here = placed.get(index as usize).is_some_and(|s| s.primary == me);
            if !(here && triggered && their_run == run) {
                let why = match (triggered, their_run == run) {
                    (false, _) => "canceled manually",
                    (true, false) => "the rule rolled back",
                    (true, true) => "placed on another node",
                };
                tracing::info!(rule = %id, shard = index, "{why}: stopping the shard");
                self.rules.stop_shard(&rule, index, why).await;
            }
        }
        let running = rule.shard_runs().await;
        // Every shard's exchange address, or nothing starts yet.
        let addrs: Option<Vec<String>> = placed
            .iter()
            .map(|s| md.nodes.get(&s.primary).map(|n| n.exchange.clone()).filter(|a| !a.is_empty()))
            .collect();
        for (index, sp) in placed.iter().enumerate() {
            let index = index as u32;
            let ready = self.replicate(&shard_id(&id, index), index, sp, md, me).await;
            if sp.primary != me || !triggered || !ready || running.contains_key(&index) {
                continue;
            }
            let Some(addrs) = &addrs else { continue };
            let plan = match self.plan_of(&rule) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(rule = %id, error = %e, "sharded rule does not plan here");
                    continue;
                }
            };
            if !host.started.first_start(&id, index, &run) {
                let recent = host.failed.lock().unwrap_or_else(|e| e.into_inner()).get(&id).copied();
                if recent.is_some_and(|t| t.elapsed() < RETRY_FAILED_START) {
                    continue;
                }
                tracing::warn!(rule = %id, shard = index, "the shard stopped within its run: rolling the rule back");
                let _ = host.proposals.send(ShardProposal::Rollback { rule: id.clone(), epochs: run.clone() });
                continue;
            }
            let (shard, links) = self.connect_shard(host, &id, index, &run, addrs, sp.epoch, &follow);
            tracing::info!(rule = %id, shard = index, restore = *follow.borrow(), "placed here: starting the shard");
            if self.rules.start_shard(&rule, plan, shard, run.clone(), Box::new(links)).await.is_err() {
                host.failed.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), std::time::Instant::now());
            }
        }
    }

    /// The exchange of shard `index` of `rule` in run `run`: its inbox
    /// registered here, a link to every other shard, and its checkpoint
    /// agreement.
    #[allow(clippy::too_many_arguments)]
    fn connect_shard(
        &self,
        host: &ShardHost,
        rule: &str,
        index: u32,
        run: &[u64],
        addrs: &[String],
        shard_epoch: u64,
        committed: &watch::Sender<u64>,
    ) -> (ShardRun, ShardLinks) {
        let restore = *committed.borrow();
        let count = run.len() as u32;
        let (inbox_tx, inbox) = mpsc::channel(LINK_QUEUE);
        let registration = host.server.register(rule, index, run.to_vec(), inbox_tx);
        let mut peers = Vec::with_capacity(run.len());
        let mut links = Vec::new();
        // A link that breaks either way (this shard's to the others, or
        // theirs to it) may have lost rows: the rule rolls back.
        let mut failures: Vec<Pin<Box<dyn Future<Output = _> + Send>>> = vec![Box::pin(registration.broken())];
        for (to, addr) in addrs.iter().enumerate() {
            let to = to as u32;
            if to == index {
                peers.push(None);
                continue;
            }
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            let hello = Hello { rule: rule.to_string(), to, from: index, epochs: run.to_vec() };
            let link = ExchangeLink::spawn(addr.clone(), hello, host.tls.clone(), rx);
            failures.push(Box::pin(link.failed()));
            links.push(link);
            peers.push(Some(tx));
        }
        let (proposals, rule_id, epochs) = (host.proposals.clone(), rule.to_string(), run.to_vec());
        let watcher = tokio::spawn(async move {
            let Some(e) = first_failure(failures).await else { return };
            tracing::warn!(rule = %rule_id, shard = index, error = %e, "a link between shards broke: rolling back");
            let _ = proposals.send(ShardProposal::Rollback { rule: rule_id, epochs });
        });
        let commit = Arc::new(MetadataCommit {
            rule: rule.to_string(),
            shard: index,
            shard_epoch,
            proposals: host.proposals.clone(),
            committed: committed.subscribe(),
        });
        let shard = ShardRun { index, count, peers, inbox, commit, restore };
        (shard, ShardLinks { _registration: registration, _links: links, watcher })
    }

    /// Restarts every shard of sharded rule `id` from its committed
    /// checkpoint (`POST /rules/{id}/restart`): a new run.
    pub(super) async fn restart_shards(&self, cluster: &weir_cluster::Cluster, id: &str) -> crate::error::Result<()> {
        let md = cluster.metadata().await.map_err(super::cluster::cluster_err)?;
        let epochs: Vec<u64> = md.placement.get(id).map(|s| s.iter().map(|p| p.epoch).collect()).unwrap_or_default();
        if epochs.is_empty() {
            return Ok(());
        }
        self.propose(cluster, Command::RestartShards { rule: id.to_string(), epochs }).await
    }

    /// Proposes what this node's shards ask for, until the process ends:
    /// their prepared checkpoints (the newest per shard) and rollbacks.
    pub(crate) async fn propose_shard_changes(self: Arc<Node>) {
        let (Some(cluster), Some(host)) = (self.cluster(), self.shard_host.as_ref()) else { return };
        let Some(mut pending) = host.pending.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        while let Some(first) = pending.recv().await {
            let mut batch = vec![first];
            while let Ok(p) = pending.try_recv() {
                batch.push(p);
            }
            let mut again = Vec::new();
            for command in coalesce(batch) {
                let lost = match tokio::time::timeout(PROPOSE_TIMEOUT, cluster.propose(command.clone())).await {
                    Ok(Ok(_)) => false,
                    // Fenced or stale: that run is over; the next reconcile
                    // stops it.
                    Ok(Err(weir_cluster::Error::Rejected(r))) => {
                        tracing::debug!(rejection = %r, "shard proposal refused: {command:?}");
                        false
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "shard proposal failed: {command:?}");
                        true
                    }
                    Err(_) => {
                        tracing::debug!("shard proposal timed out: {command:?}");
                        true
                    }
                };
                // A rollback must happen (a lost checkpoint report is
                // covered by the next): it goes again until applied or stale.
                if let (true, Command::RestartShards { rule, epochs }) = (lost, command) {
                    again.push(ShardProposal::Rollback { rule, epochs });
                }
            }
            if !again.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                for p in again {
                    let _ = host.proposals.send(p);
                }
            }
        }
    }
}

/// The commands for `batch`: the newest prepared epoch per shard (an epoch
/// is prepared with all before it), then each rollback once.
fn coalesce(batch: Vec<ShardProposal>) -> Vec<Command> {
    let mut newest: std::collections::BTreeMap<(String, u32), (u64, u64)> = Default::default();
    let mut rollbacks: Vec<(String, Vec<u64>)> = Vec::new();
    for p in batch {
        match p {
            ShardProposal::Prepared { rule, shard, shard_epoch, epoch } => {
                let e = newest.entry((rule, shard)).or_insert((shard_epoch, epoch));
                if (shard_epoch, epoch) > *e {
                    *e = (shard_epoch, epoch);
                }
            }
            ShardProposal::Rollback { rule, epochs } => {
                if !rollbacks.iter().any(|(r, e)| *r == rule && *e == epochs) {
                    rollbacks.push((rule, epochs));
                }
            }
        }
    }
    let prepared = newest.into_iter().map(|((rule, shard), (shard_epoch, checkpoint))| Command::CommitCheckpoint {
        rule,
        shard,
        shard_epoch,
        checkpoint,
    });
    prepared.chain(rollbacks.into_iter().map(|(rule, epochs)| Command::RestartShards { rule, epochs })).collect()
}

/// The first of `failures` to resolve, `None` if none can.
async fn first_failure<E: Send + 'static>(failures: Vec<Pin<Box<dyn Future<Output = E> + Send>>>) -> Option<E> {
    let mut set = tokio::task::JoinSet::new();
    for f in failures {
        set.spawn(f);
    }
    set.join_next().await?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_keep_the_newest_epoch_per_shard_and_each_rollback_once() {
        let p = |shard, epoch| ShardProposal::Prepared { rule: "r".into(), shard, shard_epoch: 4, epoch };
        let back = || ShardProposal::Rollback { rule: "r".into(), epochs: vec![4, 5] };
        let commands = coalesce(vec![p(0, 7), p(1, 6), p(0, 9), back(), back(), p(1, 5)]);
        assert_eq!(
            commands,
            vec![
                Command::CommitCheckpoint { rule: "r".into(), shard: 0, shard_epoch: 4, checkpoint: 9 },
                Command::CommitCheckpoint { rule: "r".into(), shard: 1, shard_epoch: 4, checkpoint: 6 },
                Command::RestartShards { rule: "r".into(), epochs: vec![4, 5] },
            ]
        );
    }
}
