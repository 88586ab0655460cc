//! Sharded rules: one rule's dataflow split by the hash of its GROUP BY key
//! over N shards, each a rule instance of its own (usually on its own
//! node), as Flink and Arroyo split keyed operators.
//!
//! Every shard reads a part of the input (MQTT shared subscriptions) and
//! decodes it; an exchange then sends each row to the shard that owns its
//! key, so all rows of a group meet on one shard. Ticks, barriers and the
//! end of input go to every shard, and each shard takes in its N inputs
//! with barriers aligned and time merged (the earliest input's time):
//!
//! ```text
//!  shard 0: source → decode ─┐ exchange ┌→ window → aggregate → sink
//!  shard 1: source → decode ─┼──────────┼→ window → aggregate → sink
//!  shard 2: source → decode ─┘          └→ window → aggregate → sink
//! ```
//!
//! # Checkpoints across shards
//! Shard 0 starts each checkpoint on its timer; every other shard injects
//! the same barrier into its own sources as soon as shard 0's barrier
//! reaches it, so all shards cut their input at epoch n and the aligned
//! barriers make the whole dataflow's state at n a consistent cut. A shard
//! that has its state and outputs of n durable reports it as *prepared*
//! ([`ShardCommit::prepared`]); epoch n is committed once every shard has
//! prepared it ([`ShardCommit::committed`], kept by the cluster). Only then
//! are outputs released and ingest logs truncated, and a restore always
//! starts every shard from the same committed epoch.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use weir_planner::{PhysicalPlan, WindowSpec};

use crate::row::Message;
use crate::value::Value;

/// Where a shard sends what another shard must get: (sending shard,
/// message). Bounded: a full channel holds the sender back (backpressure
/// across nodes).
pub type ShardSender = mpsc::Sender<(u32, Message)>;

/// The rule-wide checkpoint agreement a shard takes part in.
pub trait ShardCommit: Send + Sync + 'static {
    /// This shard holds epoch `epoch`'s state and outputs durably. Resolves
    /// once that is recorded; reports come in epoch order.
    fn prepared(&self, epoch: u64) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

    /// The newest epoch every shard has prepared, as it advances.
    fn committed(&self) -> watch::Receiver<u64>;
}

/// What makes a rule instance one shard of a sharded rule.
pub struct ShardRun {
    /// This shard's index, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
    /// Where rows for each shard go, by shard index (`None` at `index`:
    /// this shard's own rows stay local).
    pub peers: Vec<Option<ShardSender>>,
    /// What the other shards send this one.
    pub inbox: mpsc::Receiver<(u32, Message)>,
    /// The checkpoint agreement.
    pub commit: Arc<dyn ShardCommit>,
    /// The committed epoch every shard restores (0: a fresh start).
    pub restore: u64,
}

impl std::fmt::Debug for ShardRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardRun").field("index", &self.index).field("count", &self.count).finish_non_exhaustive()
    }
}

/// How often a shard sends its time to the others when no timer of its own
/// is due: a shard's windows fire only when every shard's time has passed
/// their end.
pub(crate) const TIME_HEARTBEAT_MS: i64 = 50;

/// Whether `plan` can run split over shards; the error says what stands in
/// the way, in terms of the rule's SQL.
///
/// A shard sees only the rows of its keys, so everything before the
/// aggregation must work per key: one stream, no joins, tumbling or
/// hopping windows (sliding, session and count windows, and analytic
/// functions, look across keys), GROUP BY keys, and no ORDER BY or LIMIT
/// across groups.
///
/// # Errors
/// The reason, naming the part of the rule.
pub fn check_shardable(plan: &PhysicalPlan) -> Result<(), String> {
    let why = |what: &str| Err(format!("rule {} cannot be sharded: {what}", plan.rule_id));
    if plan.sources.len() != 1 || !plan.joins.is_empty() {
        return why("it must read one stream, without joins or tables");
    }
    let keyed = plan.aggregate.as_ref().is_some_and(|a| !a.keys.is_empty());
    if !keyed {
        return why("it needs GROUP BY keys to split its rows by");
    }
    match plan.window.as_ref().map(|w| &w.spec) {
        None | Some(WindowSpec::Tumbling { .. }) | Some(WindowSpec::Hopping { .. }) => {}
        Some(_) => return why("only tumbling and hopping windows cut the same windows on every shard"),
    }
    if !plan.analytics.is_empty() {
        return why("analytic functions (lag, latest, ...) see every row of the stream");
    }
    if !plan.order.is_empty() || plan.limit.is_some() {
        return why("ORDER BY and LIMIT act across groups");
    }
    if plan.options.qos == 0 {
        return why("it needs qos 1 or 2 (its shards roll back together from checkpoints)");
    }
    if plan.operators.iter().any(|o| o.parallelism > 1) {
        return why("concurrency above 1 cannot be combined with shards");
    }
    Ok(())
}

/// The shard that owns the group with key `key`, of `count` shards. Stable
/// across processes: every shard must agree on it.
pub fn shard_of(key: &[Value], count: u32) -> u32 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    (h.finish() % u64::from(count.max(1))) as u32
}

/// FNV-1a: a hash with no per-process seed (std's default hasher is
/// seeded per process).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // FNV's low bits mix poorly; fold the high half in.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// All shards of a rule in one process, wired to each other directly: the
/// same dataflow and checkpoint agreement as across nodes, for tests and
/// for comparing shards with one rule instance.
pub struct LocalShards {
    commit: Arc<LocalCommit>,
    senders: Vec<ShardSender>,
    inboxes: Vec<Option<mpsc::Receiver<(u32, Message)>>>,
}

impl LocalShards {
    /// Channels for `count` shards, all restoring from `restore`.
    pub fn new(count: u32, restore: u64) -> LocalShards {
        let (senders, inboxes) = (0..count).map(|_| mpsc::channel(64)).map(|(tx, rx)| (tx, Some(rx))).unzip();
        LocalShards { commit: Arc::new(LocalCommit::new(count, restore)), senders, inboxes }
    }

    /// The run of shard `index` (each index once).
    ///
    /// # Panics
    /// When `index` was taken already or is out of range (a caller bug).
    pub fn shard(&mut self, index: u32) -> ShardRun {
        let count = self.senders.len() as u32;
        let inbox = self.inboxes[index as usize].take().expect("each shard is taken once");
        let peers = (0..count).map(|j| (j != index).then(|| self.senders[j as usize].clone())).collect();
        let restore = self.commit.committed_epoch();
        ShardRun { index, count, peers, inbox, commit: self.commit.for_shard(index), restore }
    }

    /// The agreement the shards share.
    pub fn commit(&self) -> Arc<LocalCommit> {
        self.commit.clone()
    }
}

/// An in-process [`ShardCommit`]: epoch n commits when every shard has
/// prepared it.
pub struct LocalCommit {
    prepared: Mutex<Vec<u64>>,
    committed: watch::Sender<u64>,
}

impl LocalCommit {
    fn new(count: u32, restore: u64) -> LocalCommit {
        LocalCommit { prepared: Mutex::new(vec![restore; count as usize]), committed: watch::channel(restore).0 }
    }

    /// Records that shard `shard` prepared `epoch`.
    pub fn prepare(&self, shard: u32, epoch: u64) {
        let mut p = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = p.get_mut(shard as usize) {
            *e = (*e).max(epoch);
        }
        let min = p.iter().copied().min().unwrap_or(0);
        self.committed.send_if_modified(|c| {
            let advanced = min > *c;
            if advanced {
                *c = min;
            }
            advanced
        });
    }

    /// A handle for shard `shard`.
    pub fn for_shard(self: &Arc<Self>, shard: u32) -> Arc<dyn ShardCommit> {
        Arc::new(LocalShardCommit { commit: self.clone(), shard })
    }

    /// The committed epoch.
    pub fn committed_epoch(&self) -> u64 {
        *self.committed.borrow()
    }
}

struct LocalShardCommit {
    commit: Arc<LocalCommit>,
    shard: u32,
}

impl ShardCommit for LocalShardCommit {
    fn prepared(&self, epoch: u64) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        self.commit.prepare(self.shard, epoch);
        Box::pin(async { Ok(()) })
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.commit.committed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_and_agree() {
        let mut counts = [0u32; 3];
        for i in 0..3000 {
            let key = [Value::String(format!("device-{i}").into())];
            let s = shard_of(&key, 3);
            assert_eq!(s, shard_of(&key, 3));
            counts[s as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        // Equal values hash alike (1 == 1.0, as GROUP BY groups them).
        assert_eq!(shard_of(&[Value::Int(7)], 5), shard_of(&[Value::Float(7.0)], 5));
    }

    #[test]
    fn commit_is_the_minimum_of_the_shards() {
        let c = Arc::new(LocalCommit::new(2, 3));
        c.prepare(0, 5);
        assert_eq!(c.committed_epoch(), 3);
        c.prepare(1, 4);
        assert_eq!(c.committed_epoch(), 4);
        c.prepare(1, 6);
        assert_eq!(c.committed_epoch(), 5);
    }
}
