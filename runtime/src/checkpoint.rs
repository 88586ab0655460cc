//! Checkpoint coordination: which epochs are complete, commit records and
//! garbage collection (ARCHITECTURE.md "Checkpointing").
//!
//! The rule injects barrier n into every source every `checkpointInterval`.
//! Each stateful operator writes its state for epoch n when barrier n
//! passes it (see `graph`). When every sink has seen barrier n, the epoch is
//! complete: its commit record is written durably and older snapshots are
//! deleted. A rule (re)starts from the newest committed epoch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::{codec, rule_prefix, Space, StateBackend, StateResult, Write};

/// The durable record of a rule's newest complete checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The complete epoch.
    pub epoch: u64,
    /// When the rule first started, ms (kept for `rule_start()`).
    pub rule_start_ms: i64,
    /// Per source, the ingest-log position the epoch covers: a restored
    /// rule reads from there.
    pub offsets: Vec<u64>,
}

/// Counts sink acknowledgements per epoch; a pure state machine.
#[derive(Debug)]
pub struct Coordinator {
    sinks: usize,
    acks: BTreeMap<u64, usize>,
    committed: u64,
}

impl Coordinator {
    /// For a rule with `sinks` sinks whose newest committed epoch is
    /// `committed` (0 if none).
    pub fn new(sinks: usize, committed: u64) -> Coordinator {
        Coordinator { sinks: sinks.max(1), acks: BTreeMap::new(), committed }
    }

    /// A sink saw barrier `epoch`. Returns the epoch to commit when this
    /// completes it (epochs complete in order; stale ones are ignored).
    pub fn ack(&mut self, epoch: u64) -> Option<u64> {
        if epoch <= self.committed {
            return None;
        }
        let n = self.acks.entry(epoch).or_insert(0);
        *n += 1;
        if *n < self.sinks {
            return None;
        }
        // This epoch and all before it are complete.
        self.acks = self.acks.split_off(&(epoch + 1));
        self.committed = epoch;
        Some(epoch)
    }

    /// The newest committed epoch.
    pub fn committed(&self) -> u64 {
        self.committed
    }
}

fn commit_key(rule: &str) -> Vec<u8> {
    rule_prefix(rule)
}

/// The newest commit record of `rule`.
///
/// # Errors
/// The store fails or the record is corrupt.
pub fn latest_commit(backend: &dyn StateBackend, rule: &str) -> StateResult<Option<CommitRecord>> {
    match backend.get(Space::Commits, &commit_key(rule))? {
        Some(b) => codec::decode(&b, &format!("commit record of {rule}")).map(Some),
        None => Ok(None),
    }
}

/// Durably records `record` as `rule`'s newest checkpoint, then deletes the
/// snapshots of older epochs.
///
/// # Errors
/// The store fails (disk full, I/O): the epoch is then not committed.
pub fn commit(backend: &dyn StateBackend, rule: &str, record: &CommitRecord) -> StateResult<()> {
    backend.write(vec![Write::Put(Space::Commits, commit_key(rule), codec::encode(record)?)], true)?;
    let prefix = rule_prefix(rule);
    let mut stale = Vec::new();
    for (k, _) in backend.scan(Space::Checkpoints, &prefix)? {
        // Keys end with the zero-padded epoch (see graph::StateSlot).
        let epoch = k.len().checked_sub(20).and_then(|i| std::str::from_utf8(&k[i..]).ok()?.parse::<u64>().ok());
        if epoch.is_some_and(|e| e < record.epoch) {
            stale.push(Write::Delete(Space::Checkpoints, k));
        }
    }
    if !stale.is_empty() {
        backend.write(stale, false)?;
    }
    Ok(())
}

/// State id of a shard's prepared checkpoint records (apart from
/// operators' and sinks' ids).
const PREPARED_ID: u32 = 1 << 21;

fn prepared_key(rule: &str, epoch: u64) -> Vec<u8> {
    crate::state::StateKey { rule: rule.to_string(), operator: PREPARED_ID, shard: 0, key: format!("{epoch:020}") }
        .encode()
}

/// Durably records `record` as prepared: a shard of a sharded rule holds
/// the epoch, which commits once every shard holds it. Stored with the
/// epoch's snapshots, so the commit's garbage collection removes it.
///
/// # Errors
/// The store fails.
pub fn prepare(backend: &dyn StateBackend, rule: &str, record: &CommitRecord) -> StateResult<()> {
    backend.write(vec![Write::Put(Space::Checkpoints, prepared_key(rule, record.epoch), codec::encode(record)?)], true)
}

/// The record of epoch `epoch` of `rule`: its newest commit if that is the
/// epoch, else the record it prepared for it.
///
/// # Errors
/// The store fails or the record is corrupt.
pub fn record_at(backend: &dyn StateBackend, rule: &str, epoch: u64) -> StateResult<Option<CommitRecord>> {
    if let Some(r) = latest_commit(backend, rule)?.filter(|r| r.epoch == epoch) {
        return Ok(Some(r));
    }
    match backend.get(Space::Checkpoints, &prepared_key(rule, epoch))? {
        Some(b) => codec::decode(&b, &format!("prepared checkpoint {epoch} of {rule}")).map(Some),
        None => Ok(None),
    }
}

/// Deletes everything stored for `rule` (the rule was dropped).
///
/// # Errors
/// The store fails.
pub fn forget(backend: &dyn StateBackend, rule: &str) -> StateResult<()> {
    let prefix = rule_prefix(rule);
    let mut writes = vec![Write::Delete(Space::Commits, commit_key(rule))];
    for space in [Space::Checkpoints, Space::IngestLog] {
        for (k, _) in backend.scan(space, &prefix)? {
            writes.push(Write::Delete(space, k));
        }
    }
    backend.write(writes, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryBackend, StateKey};

    #[test]
    fn epochs_complete_when_every_sink_acked() {
        let mut c = Coordinator::new(2, 0);
        assert_eq!(c.ack(1), None);
        assert_eq!(c.ack(2), None);
        assert_eq!(c.ack(1), Some(1));
        assert_eq!(c.ack(2), Some(2));
        assert_eq!(c.ack(2), None, "stale ack");
        assert_eq!(c.committed(), 2);
    }

    #[test]
    fn commit_keeps_only_the_committed_epoch() {
        let b = MemoryBackend::default();
        let key = |e: u64| StateKey { rule: "r".into(), operator: 3, shard: 0, key: format!("{e:020}") }.encode();
        b.write((1..=3).map(|e| Write::Put(Space::Checkpoints, key(e), vec![e as u8])).collect(), false).unwrap();
        let record = CommitRecord { epoch: 2, rule_start_ms: 5, offsets: vec![7] };
        commit(&b, "r", &record).unwrap();
        assert_eq!(latest_commit(&b, "r").unwrap(), Some(record));
        assert!(b.get(Space::Checkpoints, &key(1)).unwrap().is_none());
        assert!(b.get(Space::Checkpoints, &key(2)).unwrap().is_some());
        assert!(b.get(Space::Checkpoints, &key(3)).unwrap().is_some());
        forget(&b, "r").unwrap();
        assert_eq!(latest_commit(&b, "r").unwrap(), None);
    }

    #[test]
    fn corrupt_commit_record_is_an_error() {
        let b = MemoryBackend::default();
        b.write(vec![Write::Put(Space::Commits, commit_key("r"), vec![0xff; 3])], true).unwrap();
        assert!(latest_commit(&b, "r").is_err());
    }
}
