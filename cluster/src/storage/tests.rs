use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};
use weir_runtime::state::{MemoryBackend, RocksBackend, Space, StateBackend, Write};

use super::{entry_key, RaftStorage, RaftWrite};
use crate::error::Error;

fn entry(index: u64, term: u64) -> Entry {
    Entry { index, term, data: vec![index as u8; 10].into(), ..Default::default() }
}

fn snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
    let mut s = Snapshot::default();
    s.set_data(b"state".to_vec().into());
    let m = s.mut_metadata();
    m.index = index;
    m.term = term;
    m.set_conf_state(ConfState { voters, ..Default::default() });
    s
}

fn append(s: &mut RaftStorage, entries: &[Entry]) -> crate::Result<()> {
    s.persist(RaftWrite { entries, ..Default::default() }, true)
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn store_err(r: raft::Result<impl std::fmt::Debug>) -> StorageError {
    match r {
        Err(raft::Error::Store(e)) => e,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[test]
fn appends_overwrite_conflicting_tails_and_survive_reopen() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut s = RaftStorage::open(kv.clone()).unwrap();
    assert!(!s.is_initialized());
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    append(&mut s, &[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
    // A new leader overwrites index 2 on; index 3 of term 1 is gone.
    append(&mut s, &[entry(2, 2)]).unwrap();
    let hs = HardState { term: 2, vote: 1, commit: 2, ..Default::default() };
    s.persist(RaftWrite { hard_state: Some(&hs), ..Default::default() }, true).unwrap();
    assert_eq!(s.last_index().unwrap(), 2);
    assert_eq!(s.term(2).unwrap(), 2);
    assert_eq!(store_err(s.term(3)), StorageError::Unavailable);

    let s = RaftStorage::open(kv).unwrap();
    assert_eq!(s.entries(1, 3, None, ctx()).unwrap(), vec![entry(1, 1), entry(2, 2)]);
    assert_eq!(s.initial_state().unwrap().hard_state, hs);
    // max_size limits the batch but always returns one entry.
    assert_eq!(s.entries(1, 3, 1, ctx()).unwrap().len(), 1);
    // Out of range is an error, not the trait's documented panic.
    assert_eq!(store_err(s.entries(1, 9, None, ctx())), StorageError::Unavailable);
}

#[test]
fn gaps_and_compacted_overwrites_are_refused_without_change() {
    let mut s = RaftStorage::open(Arc::new(MemoryBackend::default())).unwrap();
    append(&mut s, &[entry(1, 1)]).unwrap();
    assert!(matches!(append(&mut s, &[entry(3, 1)]), Err(Error::Corrupt { .. })));
    assert_eq!(s.last_index().unwrap(), 1);
    s.save_snapshot(&snapshot(1, 1, vec![1]), 1).unwrap();
    assert!(matches!(append(&mut s, &[entry(1, 2)]), Err(Error::Corrupt { .. })));
}

#[test]
fn a_received_snapshot_replaces_the_log_and_sets_conf_and_commit() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut s = RaftStorage::open(kv.clone()).unwrap();
    append(&mut s, &[entry(1, 1), entry(2, 1)]).unwrap();
    let snap = snapshot(10, 3, vec![1, 2]);
    s.persist(RaftWrite { snapshot: Some(&snap), ..Default::default() }, true).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (11, 10));
    assert_eq!(s.term(10).unwrap(), 3);
    assert_eq!(store_err(s.term(2)), StorageError::Compacted);
    assert_eq!(store_err(s.entries(2, 3, None, ctx())), StorageError::Compacted);
    assert_eq!(s.hard_state().commit, 10);
    assert!(s.is_initialized());
    append(&mut s, &[entry(11, 3)]).unwrap();
    let s = RaftStorage::open(kv).unwrap();
    assert_eq!(s.conf_state().voters, vec![1, 2]);
    assert_eq!((s.first(), s.last()), (11, 11));
    assert_eq!(s.snapshot(0, 2).unwrap().get_data(), b"state");
}

#[test]
fn snapshots_compact_behind_them_and_must_cover_the_peer() {
    let mut s = RaftStorage::open(Arc::new(MemoryBackend::default())).unwrap();
    let entries: Vec<_> = (1..=20).map(|i| entry(i, 1)).collect();
    append(&mut s, &entries).unwrap();
    s.save_snapshot(&snapshot(15, 1, vec![1]), 12).unwrap();
    assert_eq!(s.first_index().unwrap(), 13);
    assert_eq!(s.term(12).unwrap(), 1);
    assert_eq!(s.entries(13, 21, None, ctx()).unwrap().len(), 8);
    // An older snapshot is refused.
    assert!(s.save_snapshot(&snapshot(14, 1, vec![1]), 14).is_err());
    // Peer 2 is not in the snapshot's conf: ask the node for a fresh one.
    assert!(!s.take_snapshot_wanted());
    assert_eq!(store_err(s.snapshot(0, 2)), StorageError::SnapshotTemporarilyUnavailable);
    assert!(s.take_snapshot_wanted());
    assert!(!s.take_snapshot_wanted());
    assert_eq!(s.snapshot(0, 1).unwrap().get_metadata().index, 15);
    assert_eq!(store_err(s.snapshot(16, 1)), StorageError::SnapshotTemporarilyUnavailable);
}

#[test]
fn bootstrap_happens_once_and_incarnations_grow() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut s = RaftStorage::open(kv.clone()).unwrap();
    s.bootstrap(&snapshot(1, 1, vec![7])).unwrap();
    assert!(matches!(s.bootstrap(&snapshot(1, 1, vec![7])), Err(Error::AlreadyInitialized)));
    assert_eq!(s.next_incarnation().unwrap(), 1);
    let mut s = RaftStorage::open(kv).unwrap();
    assert_eq!(s.next_incarnation().unwrap(), 2);
    assert_eq!(s.hard_state().commit, 1);
}

#[test]
fn corrupt_stored_state_is_an_error_not_a_panic() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    kv.write(vec![Write::Put(Space::Raft, entry_key(1), vec![0xff, 0xff])], true).unwrap();
    assert!(matches!(RaftStorage::open(kv.clone()), Err(Error::Corrupt { .. })));
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    kv.write(vec![Write::Put(Space::Raft, b"trunc".to_vec(), vec![1, 2, 3])], true).unwrap();
    assert!(matches!(RaftStorage::open(kv), Err(Error::Corrupt { .. })));
}

#[test]
fn a_data_dir_from_before_the_raft_space_opens_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The layout before `Space::Raft`: three column families.
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["checkpoints", "commits", "ingest_log"]).unwrap();
        db.put_cf(db.cf_handle("commits").unwrap(), b"r1", b"7").unwrap();
    }
    let kv: Arc<dyn StateBackend> = Arc::new(RocksBackend::open(dir.path()).unwrap());
    assert_eq!(kv.get(Space::Commits, b"r1").unwrap(), Some(b"7".to_vec()));
    let mut s = RaftStorage::open(kv.clone()).unwrap();
    append(&mut s, &[entry(1, 1)]).unwrap();
    drop((s, kv));
    let s = RaftStorage::open(Arc::new(RocksBackend::open(dir.path()).unwrap())).unwrap();
    assert_eq!(s.term(1).unwrap(), 1);
}
