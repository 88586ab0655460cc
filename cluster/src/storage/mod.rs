//! The raft log, hard state, conf state and snapshot of one node, persisted
//! in a [`StateBackend`] under [`Space::Raft`].
//!
//! One implementation serves both production and simulation: give it a
//! [`RocksBackend`](weir_runtime::state::RocksBackend) (the node's data dir)
//! or a [`MemoryBackend`](weir_runtime::state::MemoryBackend) (tests; the
//! `Arc` outlives a simulated crash, so a restarted node finds its log).
//!
//! Layout (keys in the `raft` column family):
//!
//! | key | value |
//! |---|---|
//! | `hs` | `HardState` (protobuf) |
//! | `cs` | `ConfState` as of the newest snapshot (protobuf) |
//! | `snap` | the newest `Snapshot` (protobuf: metadata and state-machine bytes) |
//! | `trunc` | index and term (2 × u64 BE) of the last compacted entry |
//! | `inc` | incarnation counter (u64 BE), bumped at every open |
//! | `e` + index (u64 BE) | `Entry` (protobuf) |
//!
//! Entries are contiguous from `trunc.index + 1`. The terms of the stored
//! entries are cached in memory (8 bytes per entry; compaction bounds the
//! log), so `term()` — which raft calls on every append — reads no disk.
//!
//! The conf state is stored only with snapshots: after a restart the node
//! re-applies the conf changes committed after its snapshot, so raft's view
//! of the members never runs ahead of the applied index.
//!
//! Every mutation is one atomic batch and updates the caches only after the
//! batch succeeded, so a failed call leaves the storage unchanged.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use weir_runtime::state::{Space, StateBackend, Write};

use crate::error::{Error, Result};

#[cfg(test)]
mod tests;

const HARD_STATE: &[u8] = b"hs";
const CONF_STATE: &[u8] = b"cs";
const SNAPSHOT: &[u8] = b"snap";
const TRUNCATED: &[u8] = b"trunc";
const INCARNATION: &[u8] = b"inc";
const ENTRY_PREFIX: u8 = b'e';

fn entry_key(index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(ENTRY_PREFIX);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn decode<M: protobuf::Message>(what: &'static str, bytes: &[u8]) -> Result<M> {
    M::parse_from_bytes(bytes).map_err(|e| Error::corrupt(what, e))
}

fn encode<M: protobuf::Message>(what: &'static str, m: &M) -> Result<Vec<u8>> {
    m.write_to_bytes().map_err(|e| Error::corrupt(what, e))
}

fn u64_pair(bytes: &[u8]) -> Result<(u64, u64)> {
    match (bytes.get(..8), bytes.get(8..16)) {
        (Some(a), Some(b)) if bytes.len() == 16 => Ok((
            u64::from_be_bytes(a.try_into().unwrap_or_default()),
            u64::from_be_bytes(b.try_into().unwrap_or_default()),
        )),
        _ => Err(Error::corrupt("truncated state", format!("{} bytes, want 16", bytes.len()))),
    }
}

fn pair_bytes(a: u64, b: u64) -> Vec<u8> {
    let mut v = a.to_be_bytes().to_vec();
    v.extend_from_slice(&b.to_be_bytes());
    v
}

/// What one `Ready` asks to persist, written as one atomic batch.
#[derive(Debug, Default)]
pub struct RaftWrite<'a> {
    /// A snapshot received from the leader: replaces the whole log.
    pub snapshot: Option<&'a Snapshot>,
    /// New entries; they overwrite any stored entries from their first index on.
    pub entries: &'a [Entry],
    /// The new hard state.
    pub hard_state: Option<&'a HardState>,
}

/// raft-rs [`Storage`](raft::Storage) over a [`StateBackend`].
pub struct RaftStorage {
    kv: Arc<dyn StateBackend>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_meta: SnapshotMetadata,
    /// Index and term of the last compacted (or snapshotted) entry.
    truncated: (u64, u64),
    /// Terms of the stored entries, from `truncated.0 + 1` on.
    terms: VecDeque<u64>,
    /// raft asked for a snapshot the stored one cannot serve (too old, or
    /// taken before the requesting peer joined); the node takes a new one.
    snapshot_wanted: Cell<bool>,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStorage")
            .field("hard_state", &self.hard_state)
            .field("conf_state", &self.conf_state)
            .field("truncated", &self.truncated)
            .field("entries", &self.terms.len())
            .finish()
    }
}

impl RaftStorage {
    /// Loads the raft state stored in `kv` (empty state if there is none).
    ///
    /// # Errors
    /// The store fails, or stored bytes do not decode or leave a gap in the
    /// log ([`Error::Corrupt`]).
    pub fn open(kv: Arc<dyn StateBackend>) -> Result<RaftStorage> {
        let get = |key: &[u8]| kv.get(Space::Raft, key);
        let hard_state = get(HARD_STATE)?.map(|b| decode("hard state", &b)).transpose()?.unwrap_or_default();
        let conf_state = get(CONF_STATE)?.map(|b| decode("conf state", &b)).transpose()?.unwrap_or_default();
        let snapshot_meta = get(SNAPSHOT)?
            .map(|b| decode::<Snapshot>("snapshot", &b))
            .transpose()?
            .map(|mut s| s.take_metadata())
            .unwrap_or_default();
        let truncated = get(TRUNCATED)?.map(|b| u64_pair(&b)).transpose()?.unwrap_or((0, 0));
        let mut terms = VecDeque::new();
        for (key, bytes) in kv.scan(Space::Raft, &[ENTRY_PREFIX])? {
            let e: Entry = decode("entry", &bytes)?;
            let want = truncated.0 + 1 + terms.len() as u64;
            if key != entry_key(e.index) || e.index != want {
                return Err(Error::corrupt("raft log", format!("entry {} where {want} was expected", e.index)));
            }
            terms.push_back(e.term);
        }
        Ok(RaftStorage {
            kv,
            hard_state,
            conf_state,
            snapshot_meta,
            truncated,
            terms,
            snapshot_wanted: Cell::new(false),
        })
    }

    /// Whether this node belongs to a cluster (its conf state names voters).
    pub fn is_initialized(&self) -> bool {
        !self.conf_state.voters.is_empty() || !self.conf_state.learners.is_empty()
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The conf state as of the newest snapshot.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Metadata of the newest stored snapshot (index 0: none).
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot_meta
    }

    /// The newest stored snapshot, with its state-machine bytes.
    ///
    /// # Errors
    /// The store fails or the snapshot does not decode.
    pub fn load_snapshot(&self) -> Result<Option<Snapshot>> {
        self.kv.get(Space::Raft, SNAPSHOT)?.map(|b| decode("snapshot", &b)).transpose()
    }

    /// Whether raft asked for a snapshot newer than the stored one since
    /// the last call; the node then snapshots its state machine.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// Index of the first stored entry.
    pub fn first(&self) -> u64 {
        self.truncated.0 + 1
    }

    /// Index of the last stored entry (the snapshot's index if the log is empty).
    pub fn last(&self) -> u64 {
        self.truncated.0 + self.terms.len() as u64
    }

    /// Bumps and returns the persisted incarnation counter; proposal ids
    /// carry it so that a restarted node never mistakes an old proposal for
    /// a new one.
    ///
    /// # Errors
    /// The store fails or holds a malformed counter.
    pub fn next_incarnation(&mut self) -> Result<u64> {
        let old = match self.kv.get(Space::Raft, INCARNATION)? {
            Some(b) => {
                u64::from_be_bytes(b.as_slice().try_into().map_err(|_| Error::corrupt("incarnation", "length"))?)
            }
            None => 0,
        };
        let next = old + 1;
        self.kv.write(vec![Write::Put(Space::Raft, INCARNATION.to_vec(), next.to_be_bytes().to_vec())], true)?;
        Ok(next)
    }

    /// Starts a new cluster: stores `snapshot` (index ≥ 1, conf state with
    /// this node as the only voter) as the initial state.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] if the storage holds a cluster, or the store fails.
    pub fn bootstrap(&mut self, snapshot: &Snapshot) -> Result<()> {
        if self.is_initialized() || self.last() > 0 {
            return Err(Error::AlreadyInitialized);
        }
        let meta = snapshot.get_metadata();
        let hs = HardState { term: meta.term, commit: meta.index, ..Default::default() };
        self.persist(RaftWrite { snapshot: Some(snapshot), entries: &[], hard_state: Some(&hs) }, true)
    }

    /// Persists what a `Ready` carries (snapshot, entries, hard state) as one
    /// batch, synced to disk when `sync`.
    ///
    /// # Errors
    /// The store fails; entries that would leave a gap or overwrite compacted
    /// entries, and snapshots older than the compacted log, are
    /// [`Error::Corrupt`] (raft-rs never produces them). Nothing changes on error.
    pub fn persist(&mut self, w: RaftWrite<'_>, sync: bool) -> Result<()> {
        let mut writes = Vec::new();
        let mut truncated = self.truncated;
        let mut terms_base_clear = false;
        let mut conf_state = None;
        let mut snapshot_meta = None;
        let mut hard_state = w.hard_state.cloned();
        if let Some(snap) = w.snapshot {
            let meta = snap.get_metadata();
            if meta.index < self.truncated.0 {
                return Err(Error::Raft(raft::Error::Store(StorageError::SnapshotOutOfDate)));
            }
            writes.push(Write::DeleteRange(Space::Raft, entry_key(0), entry_key(u64::MAX)));
            writes.push(Write::Put(Space::Raft, SNAPSHOT.to_vec(), encode("snapshot", snap)?));
            writes.push(Write::Put(Space::Raft, CONF_STATE.to_vec(), encode("conf state", meta.get_conf_state())?));
            truncated = (meta.index, meta.term);
            writes.push(Write::Put(Space::Raft, TRUNCATED.to_vec(), pair_bytes(meta.index, meta.term)));
            terms_base_clear = true;
            conf_state = Some(meta.get_conf_state().clone());
            snapshot_meta = Some(meta.clone());
            let hs = hard_state.get_or_insert_with(|| self.hard_state.clone());
            hs.term = hs.term.max(meta.term);
            hs.commit = hs.commit.max(meta.index);
        }
        let last = if terms_base_clear { truncated.0 } else { self.last() };
        if let Some(first) = w.entries.first() {
            if first.index <= truncated.0 || first.index > last + 1 {
                return Err(Error::corrupt(
                    "raft append",
                    format!("entries from {} do not follow the log [{}, {last}]", first.index, truncated.0 + 1),
                ));
            }
            if first.index <= last {
                writes.push(Write::DeleteRange(Space::Raft, entry_key(first.index), entry_key(u64::MAX)));
            }
            for e in w.entries {
                writes.push(Write::Put(Space::Raft, entry_key(e.index), encode("entry", e)?));
            }
        }
        if let Some(hs) = &hard_state {
            writes.push(Write::Put(Space::Raft, HARD_STATE.to_vec(), encode("hard state", hs)?));
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.kv.write(writes, sync)?;
        // The batch is durable: now update the caches.
        if terms_base_clear {
            self.terms.clear();
            self.truncated = truncated;
        }
        if let Some(first) = w.entries.first() {
            self.terms.truncate((first.index - self.truncated.0 - 1) as usize);
            self.terms.extend(w.entries.iter().map(|e| e.term));
        }
        if let Some(cs) = conf_state {
            self.conf_state = cs;
        }
        if let Some(m) = snapshot_meta {
            self.snapshot_meta = m;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Records a new commit index (from a `LightReady`); not synced, as the
    /// commit index can be recovered from the quorum.
    ///
    /// # Errors
    /// The store fails.
    pub fn set_commit(&mut self, commit: u64) -> Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.kv.write(vec![Write::Put(Space::Raft, HARD_STATE.to_vec(), encode("hard state", &hs)?)], false)?;
        self.hard_state = hs;
        Ok(())
    }

    /// Stores a snapshot of this node's state machine (taken at an applied
    /// index), then drops the entries up to `compact_to` (at most the
    /// snapshot's index; lower keeps a tail for slightly lagging followers).
    ///
    /// # Errors
    /// The snapshot is older than the stored one or beyond the log, or the
    /// store fails. Nothing changes on error.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<()> {
        let meta = snapshot.get_metadata();
        if meta.index < self.snapshot_meta.index || meta.index > self.last() {
            return Err(Error::Raft(raft::Error::Store(StorageError::SnapshotOutOfDate)));
        }
        let compact_to = compact_to.min(meta.index);
        let mut writes = vec![
            Write::Put(Space::Raft, SNAPSHOT.to_vec(), encode("snapshot", snapshot)?),
            Write::Put(Space::Raft, CONF_STATE.to_vec(), encode("conf state", meta.get_conf_state())?),
        ];
        let mut truncated = self.truncated;
        if compact_to > self.truncated.0 {
            let term = self.cached_term(compact_to).ok_or(raft::Error::Store(StorageError::Unavailable))?;
            truncated = (compact_to, term);
            writes.push(Write::DeleteRange(Space::Raft, entry_key(0), entry_key(compact_to + 1)));
            writes.push(Write::Put(Space::Raft, TRUNCATED.to_vec(), pair_bytes(compact_to, term)));
        }
        self.kv.write(writes, true)?;
        let dropped = (truncated.0 - self.truncated.0) as usize;
        self.terms.drain(..dropped);
        self.truncated = truncated;
        self.snapshot_meta = meta.clone();
        self.conf_state = meta.get_conf_state().clone();
        Ok(())
    }

    fn cached_term(&self, idx: u64) -> Option<u64> {
        if idx == self.truncated.0 {
            return Some(self.truncated.1);
        }
        let off = idx.checked_sub(self.truncated.0 + 1)?;
        self.terms.get(off as usize).copied()
    }
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    /// Entries in `[low, high)`, at least one, at most `max_size` bytes.
    /// Unlike the trait's documented panic, a `high` past the log is an
    /// `Unavailable` error.
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for idx in low..high {
            let bytes = self
                .kv
                .get(Space::Raft, &entry_key(idx))
                .map_err(store_err)?
                .ok_or(raft::Error::Store(StorageError::Unavailable))?;
            let e = Entry::parse_from_bytes(&bytes).map_err(store_err)?;
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.cached_term(idx).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The stored snapshot if it is at least `request_index` and its conf
    /// state includes `to` (raft refuses to install a snapshot that does not
    /// name the receiver); otherwise `SnapshotTemporarilyUnavailable` and a
    /// flag for the node to take a fresh one, which raft's next attempt gets.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let cs = self.snapshot_meta.get_conf_state();
        let covers = cs.voters.contains(&to) || cs.learners.contains(&to);
        if !covers || self.snapshot_meta.index < request_index {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        match self.load_snapshot() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => {
                self.snapshot_wanted.set(true);
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
            Err(e) => Err(store_err(e)),
        }
    }
}
