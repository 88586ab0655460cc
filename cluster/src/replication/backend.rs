//! [`ReplicatedBackend`]: the primary's side, a [`StateBackend`] that writes
//! each rule's batches to the local store and to the rule's standby.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use weir_runtime::state::{rule_prefix, Space, StateBackend, StateError, StateResult, Write};

use super::config::ReplicationConfig;
use super::error::{Refusal, ReplicationError};
use super::link::{Link, Session};
use super::wire::{chunks, prefix_end, range_within, rule_of, Batch, WireWrite, RULE_SPACES};

/// Where a rule's standby stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncStatus {
    /// The standby has not received a full copy of the rule since it was
    /// set, or a write may have reached one side only (a failure): writes
    /// of the rule fail until
    /// [`ReplicatedBackend::sync_standby`] succeeds.
    NeedsSync,
    /// The standby holds the rule's state: every write goes to both.
    InSync,
    /// The standby refused our epoch: it knows `current`, newer. This node
    /// was deposed as the rule's primary and must stop it; writes fail.
    Fenced {
        /// The standby's epoch.
        current: u64,
    },
}

/// A rule's standby as configured by [`ReplicatedBackend::set_standby`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyInfo {
    /// Replication address of the standby node (`host:port` of its
    /// [`ReplicaServer`](super::ReplicaServer)).
    pub addr: String,
    /// This node's shard epoch for the rule, sent with every batch.
    pub epoch: u64,
    /// Whether writes can flow.
    pub status: SyncStatus,
}

#[derive(Debug, Default)]
struct RuleState {
    standby: Option<StandbyInfo>,
}

/// A [`StateBackend`] that replicates each rule's writes synchronously to
/// the rule's standby. See the [module docs](super) for the protocol and
/// the guarantees.
///
/// - `write`: the writes are grouped by rule (every key of
///   [`Space::Checkpoints`], [`Space::Commits`] and [`Space::IngestLog`]
///   starts with `rule_prefix(rule)`). Each group of a rule with a standby
///   is sent to it, then the whole batch is written locally (one atomic
///   batch), then the acks are awaited: the call returns `Ok` only when
///   the local write and every standby succeeded, within
///   [`ReplicationConfig::timeout`]. Writes of rules without a standby, of
///   the raft space and of keys of no rule go to the local store only.
/// - `get` and `scan` read the local store.
///
/// Writes block the calling thread for up to the timeout (like a RocksDB
/// fsync does): call them off async executor threads, as the ingest log's
/// writer does (`spawn_blocking`). Every write of a rule's keys must go
/// through this wrapper, or the standby's copy diverges.
pub struct ReplicatedBackend {
    local: Arc<dyn StateBackend>,
    config: ReplicationConfig,
    rules: Mutex<HashMap<String, Arc<Mutex<RuleState>>>>,
    links: Mutex<HashMap<String, Arc<Link>>>,
}

impl std::fmt::Debug for ReplicatedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedBackend")
            .field("local", &self.local)
            .field("rules", &lock(&self.rules).len())
            .field("standbys", &lock(&self.links).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who a write belongs to.
enum Owner<'a> {
    Rule(&'a str),
    /// The node: the raft space, or a key that no rule's prefix matches.
    Node,
}

fn owner(w: &Write) -> Result<Owner<'_>, ReplicationError> {
    match w {
        Write::Put(Space::Raft, ..) | Write::Delete(Space::Raft, _) | Write::DeleteRange(Space::Raft, ..) => {
            Ok(Owner::Node)
        }
        Write::Put(_, k, _) | Write::Delete(_, k) => Ok(rule_of(k).map_or(Owner::Node, Owner::Rule)),
        // An empty range deletes nothing: leave it to the local store.
        Write::DeleteRange(_, from, to) if from >= to => Ok(Owner::Node),
        Write::DeleteRange(space, from, to) => match rule_of(from) {
            Some(rule) => {
                let prefix = rule_prefix(rule);
                if range_within(from, to, &prefix, prefix_end(&prefix).as_deref()) {
                    Ok(Owner::Rule(rule))
                } else {
                    Err(ReplicationError::SpansRules { space: space.name() })
                }
            }
            None => Err(ReplicationError::SpansRules { space: space.name() }),
        },
    }
}

impl ReplicatedBackend {
    /// Wraps the node's local store; no rule has a standby yet.
    ///
    /// # Errors
    /// [`ReplicationError::InvalidConfig`].
    pub fn new(local: Arc<dyn StateBackend>, config: ReplicationConfig) -> Result<ReplicatedBackend, ReplicationError> {
        config.validate()?;
        Ok(ReplicatedBackend { local, config, rules: Mutex::new(HashMap::new()), links: Mutex::new(HashMap::new()) })
    }

    /// The wrapped local store.
    pub fn local(&self) -> &Arc<dyn StateBackend> {
        &self.local
    }

    /// Sets the standby of `rule` (its replication address) and this node's
    /// shard epoch, from the placement. Waits for a write of the rule in
    /// progress.
    ///
    /// - A new address starts as [`SyncStatus::NeedsSync`]: the rule's
    ///   writes fail until [`ReplicatedBackend::sync_standby`] has copied
    ///   its state. The same address with another epoch keeps its status
    ///   (unless it was fenced).
    /// - `None` is the **degrade policy**: writes of the rule go to the
    ///   local store only and are acknowledged without a copy. Use it only
    ///   once the leader has removed the standby from the shard's placement
    ///   (or the rule has a single node), so that it is never promoted with
    ///   a stale copy. Nothing degrades on its own: a failing standby fails
    ///   writes, so sources stop acknowledging, until the placement changes.
    pub fn set_standby(&self, rule: &str, standby: Option<&str>, epoch: u64) {
        let entry = self.entry(rule);
        let mut st = lock(&entry);
        st.standby = match standby {
            None => {
                if let Some(old) = &st.standby {
                    tracing::info!(rule, addr = old.addr, epoch, "replication stopped; writes go local only");
                }
                None
            }
            Some(addr) => {
                let status = match &st.standby {
                    Some(old) if old.addr == addr && old.status == SyncStatus::InSync => SyncStatus::InSync,
                    _ => SyncStatus::NeedsSync,
                };
                tracing::info!(rule, addr, epoch, ?status, "standby set");
                Some(StandbyInfo { addr: addr.to_string(), epoch, status })
            }
        };
    }

    /// The standby of `rule`, if any.
    pub fn standby(&self, rule: &str) -> Option<StandbyInfo> {
        let entry = lock(&self.rules).get(rule).cloned()?;
        let st = lock(&entry);
        st.standby.clone()
    }

    /// Rules whose standby needs [`ReplicatedBackend::sync_standby`]
    /// (status [`SyncStatus::NeedsSync`]), sorted: what a node's duty loop
    /// retries, with backoff.
    pub fn rules_needing_sync(&self) -> Vec<String> {
        let entries: Vec<_> = lock(&self.rules).iter().map(|(r, e)| (r.clone(), e.clone())).collect();
        let mut out: Vec<String> = entries
            .into_iter()
            .filter(|(_, e)| lock(e).standby.as_ref().is_some_and(|s| s.status == SyncStatus::NeedsSync))
            .map(|(r, _)| r)
            .collect();
        out.sort();
        out
    }

    /// Copies the whole state of `rule` to its standby: one batch that
    /// deletes the rule's key range in the three rule spaces and puts every
    /// key the local store holds for it (sent in chunks of at most
    /// [`ReplicationConfig::max_frame`], applied by the standby atomically
    /// and durably). Then the standby is [`SyncStatus::InSync`] and writes
    /// flow.
    ///
    /// Ordering: the rule's lock is held from the local scan to the last
    /// ack, so no write of the rule falls between the copy and the live
    /// writes; the standby's scan of the rule then equals the local one,
    /// and stays equal after every successful `write`. Each chunk exchange
    /// is bounded by [`ReplicationConfig::timeout`].
    ///
    /// # Errors
    /// [`ReplicationError::NoStandby`]; [`ReplicationError::Fenced`] (this
    /// node was deposed); the standby is unreachable, times out or refuses
    /// (the status stays [`SyncStatus::NeedsSync`]: retry later);
    /// [`ReplicationError::Local`] (the local scan failed).
    pub fn sync_standby(&self, rule: &str) -> Result<(), ReplicationError> {
        let entry = self.entry(rule);
        let mut st = lock(&entry);
        let Some(standby) = st.standby.clone() else {
            return Err(ReplicationError::NoStandby { rule: rule.to_string() });
        };
        if let SyncStatus::Fenced { current } = standby.status {
            return Err(fenced(rule, &standby, current));
        }
        let prefix = rule_prefix(rule);
        let end = prefix_end(&prefix)
            .ok_or_else(|| StateError::Store(format!("rule id of {} bytes has no key range", rule.len())))?;
        let mut writes: Vec<WireWrite> = Vec::new();
        for space in RULE_SPACES {
            writes.extend(WireWrite::from_write(&Write::DeleteRange(space, prefix.clone(), end.clone())));
        }
        let mut keys = 0usize;
        for space in RULE_SPACES {
            for (k, v) in self.local.scan(space, &prefix)? {
                keys += 1;
                writes.extend(WireWrite::from_write(&Write::Put(space, k, v)));
            }
        }
        let bytes: usize = writes.iter().map(|w| w.size()).sum();
        let link = self.link(&standby.addr);
        let mut session = link.session(&self.config);
        let parts = chunks(writes, self.config.chunk_budget());
        let n = parts.len();
        let mut result = Ok(());
        for (part, writes) in parts.into_iter().enumerate() {
            let deadline = Instant::now() + self.config.timeout;
            let batch = Batch {
                seq: 0,
                rule: rule.to_string(),
                epoch: standby.epoch,
                part: part as u32,
                more: part + 1 < n,
                sync: true,
                writes,
            };
            result = session.send(batch, 0, deadline).and_then(|()| session.recv(deadline)).and_then(|(_, r)| r);
            if result.is_err() {
                break;
            }
        }
        let status = result.as_ref().map_or_else(status_after, |()| SyncStatus::InSync);
        if let Some(s) = st.standby.as_mut() {
            s.status = status;
        }
        match result {
            Ok(()) => {
                tracing::info!(rule, addr = standby.addr, epoch = standby.epoch, keys, bytes, "standby in sync");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(rule, addr = standby.addr, error = %e, "standby catch-up failed");
                Err(name_fenced(e, rule, &standby))
            }
        }
    }

    fn entry(&self, rule: &str) -> Arc<Mutex<RuleState>> {
        let mut rules = lock(&self.rules);
        if let Some(e) = rules.get(rule) {
            return e.clone();
        }
        rules.entry(rule.to_string()).or_default().clone()
    }

    fn link(&self, addr: &str) -> Arc<Link> {
        lock(&self.links).entry(addr.to_string()).or_insert_with(|| Arc::new(Link::new(addr.to_string()))).clone()
    }

    /// The replicated write; see the type's docs.
    fn replicated_write(&self, writes: Vec<Write>, sync: bool) -> Result<(), ReplicationError> {
        let mut owners = Vec::with_capacity(writes.len());
        for w in &writes {
            owners.push(match owner(w)? {
                Owner::Rule(r) => Some(r),
                Owner::Node => None,
            });
        }
        // Lock every rule touched, in sorted order (no deadlock between two
        // batches), and hold the locks until the end: a rule's writes reach
        // its standby in the order they are applied locally, and never
        // between a catch-up's scan and its last ack.
        let mut rules: Vec<String> = owners.iter().flatten().map(|r| r.to_string()).collect();
        if rules.is_empty() {
            return Ok(self.local.write(writes, sync)?);
        }
        rules.sort_unstable();
        rules.dedup();
        let owners: Vec<Option<usize>> =
            owners.into_iter().map(|r| r.and_then(|r| rules.binary_search_by(|x| x.as_str().cmp(r)).ok())).collect();
        let entries: Vec<_> = rules.iter().map(|r| self.entry(r)).collect();
        let mut guards: Vec<MutexGuard<'_, RuleState>> = entries.iter().map(|e| lock(e)).collect();

        // Rules to replicate, grouped by standby address.
        let mut plan: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, g) in guards.iter().enumerate() {
            let Some(s) = &g.standby else { continue };
            match s.status {
                SyncStatus::InSync => plan.entry(s.addr.clone()).or_default().push(i),
                SyncStatus::NeedsSync => {
                    return Err(ReplicationError::NotInSync { rule: rules[i].clone(), addr: s.addr.clone() })
                }
                SyncStatus::Fenced { current } => return Err(fenced(&rules[i], s, current)),
            }
        }
        if plan.is_empty() {
            return Ok(self.local.write(writes, sync)?);
        }
        let mut per_rule: Vec<Vec<WireWrite>> = vec![Vec::new(); rules.len()];
        for (w, r) in writes.iter().zip(&owners) {
            if let Some(i) = *r {
                if guards[i].standby.is_some() {
                    per_rule[i].extend(WireWrite::from_write(w));
                }
            }
        }

        // Send first, then write locally while the standbys apply, then
        // collect the acks: the latency is the slower of the two, not the
        // sum. Safe because the call succeeds only if both succeed (see the
        // module docs).
        let deadline = Instant::now() + self.config.timeout;
        let links: Vec<(Arc<Link>, Vec<usize>)> = plan.iter().map(|(a, is)| (self.link(a), is.clone())).collect();
        let mut failures: Vec<(usize, ReplicationError)> = Vec::new();
        let mut sessions: Vec<Session<'_>> = Vec::new();
        for (link, idxs) in &links {
            let mut session = link.session(&self.config);
            'rules: for &i in idxs {
                let s = guards[i].standby.as_ref().map_or(0, |s| s.epoch);
                let parts = chunks(std::mem::take(&mut per_rule[i]), self.config.chunk_budget());
                let n = parts.len();
                for (part, writes) in parts.into_iter().enumerate() {
                    let batch = Batch {
                        seq: 0,
                        rule: rules[i].clone(),
                        epoch: s,
                        part: part as u32,
                        more: part + 1 < n,
                        sync,
                        writes,
                    };
                    if let Err(e) = session.send(batch, i, deadline) {
                        // The connection is gone: every rule sent on it failed.
                        failures.extend(idxs.iter().map(|&j| (j, clone_error(&e))));
                        break 'rules;
                    }
                }
            }
            sessions.push(session);
        }
        let replicated: Vec<usize> = plan.values().flatten().copied().collect();
        if !failures.is_empty() {
            // A standby is unreachable: skip the local write, so the common
            // case (one dead standby) leaves the local store unchanged. Other
            // standbys may apply what they got: all need a catch-up.
            drop(sessions);
            let (i, e) = failures.swap_remove(0);
            tracing::warn!(rule = rules[i].as_str(), error = %e, "replication failed before the local write");
            for &j in &replicated {
                set_status(&mut guards[j], SyncStatus::NeedsSync);
            }
            return Err(e);
        }
        let local = self.local.write(writes, sync);
        for session in &mut sessions {
            // A lost connection fails every rule sent on it, acked or not:
            // conservative (a needless catch-up), never unsafe.
            let sent: Vec<usize> = plan.get(session.addr()).cloned().unwrap_or_default();
            while session.has_pending() {
                match session.recv(deadline) {
                    Ok((_, Ok(()))) => {}
                    Ok((i, Err(e))) => failures.push((i, e)),
                    Err(e) => {
                        failures.extend(sent.iter().map(|&j| (j, clone_error(&e))));
                        break;
                    }
                }
            }
        }
        drop(sessions);

        if let Err(e) = local {
            // The standbys may hold the batch although we do not.
            for &i in &replicated {
                set_status(&mut guards[i], SyncStatus::NeedsSync);
            }
            tracing::warn!(error = %e, "local write failed; standbys need a catch-up");
            return Err(e.into());
        }
        let mut first = None;
        for (i, e) in failures {
            let status = status_after(&e);
            if let Some(s) = guards[i].standby.as_ref() {
                tracing::warn!(rule = rules[i].as_str(), addr = s.addr, error = %e, "replication failed");
            }
            set_status(&mut guards[i], status);
            if first.is_none() {
                let e = match guards[i].standby.as_ref() {
                    Some(s) => name_fenced(e, &rules[i], s),
                    None => e,
                };
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl StateBackend for ReplicatedBackend {
    fn write(&self, writes: Vec<Write>, sync: bool) -> StateResult<()> {
        Ok(self.replicated_write(writes, sync)?)
    }

    fn get(&self, space: Space, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.local.get(space, key)
    }

    fn scan(&self, space: Space, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.local.scan(space, prefix)
    }
}

fn set_status(st: &mut RuleState, status: SyncStatus) {
    if let Some(s) = st.standby.as_mut() {
        // Fenced is final for this epoch; only `set_standby` lifts it.
        if !matches!(s.status, SyncStatus::Fenced { .. }) {
            s.status = status;
        }
    }
}

/// The status a standby is left in after `e`: fenced when it refused our
/// epoch, otherwise out of sync (the batch may have reached one side only).
fn status_after(e: &ReplicationError) -> SyncStatus {
    match e {
        ReplicationError::Refused { refusal: Refusal::StaleEpoch { current, .. }, .. } => {
            SyncStatus::Fenced { current: *current }
        }
        _ => SyncStatus::NeedsSync,
    }
}

fn fenced(rule: &str, s: &StandbyInfo, current: u64) -> ReplicationError {
    ReplicationError::Fenced { rule: rule.to_string(), addr: s.addr.clone(), epoch: s.epoch, current }
}

/// Turns a stale-epoch refusal into [`ReplicationError::Fenced`].
fn name_fenced(e: ReplicationError, rule: &str, s: &StandbyInfo) -> ReplicationError {
    match e {
        ReplicationError::Refused { refusal: Refusal::StaleEpoch { current, .. }, .. } => fenced(rule, s, current),
        e => e,
    }
}

/// A copy of a connection failure for each rule it failed (io errors do not
/// clone; their kind and message do).
fn clone_error(e: &ReplicationError) -> ReplicationError {
    match e {
        ReplicationError::Io { addr, source } => {
            ReplicationError::Io { addr: addr.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
        }
        ReplicationError::Timeout { addr, after } => ReplicationError::Timeout { addr: addr.clone(), after: *after },
        ReplicationError::Refused { addr, refusal } => {
            ReplicationError::Refused { addr: addr.clone(), refusal: refusal.clone() }
        }
        ReplicationError::Protocol { addr, message } => {
            ReplicationError::Protocol { addr: addr.clone(), message: message.clone() }
        }
        ReplicationError::FrameTooLarge { len, max } => ReplicationError::FrameTooLarge { len: *len, max: *max },
        other => ReplicationError::Protocol { addr: String::new(), message: other.to_string() },
    }
}
