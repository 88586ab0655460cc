//! State in RocksDB: one database per node, a column family per [`Space`].

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use super::{Space, StateBackend, StateError, StateResult, Write};

/// A node's durable state store.
pub struct RocksBackend {
    db: DB,
    dir: std::path::PathBuf,
    /// Writes that add data are refused while less than this many bytes
    /// are free under `dir` (see [`RocksBackend::open_with_reserve`]).
    reserve: u64,
}

/// Free space `RocksBackend::open` keeps: room for RocksDB to flush a
/// memtable and compact, and for deletes to take effect.
const DEFAULT_RESERVE: u64 = 64 << 20;

impl std::fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksBackend").field("path", &self.db.path()).finish()
    }
}

fn store_err(e: rocksdb::Error) -> StateError {
    StateError::Store(e.into_string())
}

/// Sized for small edge boxes: RocksDB's default of two 64 MiB memtables
/// per column family would let the store alone grow to half a GiB. The
/// ingest log holds short-lived entries (deleted once a checkpoint
/// commits, about a second later), so compressing them on flush is wasted
/// work.
fn column_family_options(space: Space) -> Options {
    let mut o = Options::default();
    match space {
        Space::IngestLog => {
            o.set_write_buffer_size(16 << 20);
            o.set_compression_type(rocksdb::DBCompressionType::None);
        }
        _ => o.set_write_buffer_size(8 << 20),
    }
    o
}

impl RocksBackend {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// RocksDB cannot open the directory (permissions, corruption, lock
    /// held by another process).
    pub fn open(path: &Path) -> StateResult<RocksBackend> {
        RocksBackend::open_with_reserve(path, DEFAULT_RESERVE)
    }

    /// Like [`RocksBackend::open`], keeping `reserve` bytes free: a write
    /// that adds data is refused with a clear error while less is free
    /// under `path`. RocksDB must never hit a full disk itself: the
    /// system library this build links aborts the process on ENOSPC
    /// (an assertion) instead of returning an error. Writes made only of
    /// deletes still go through, so a log can shrink.
    ///
    /// # Errors
    /// As [`RocksBackend::open`].
    pub fn open_with_reserve(path: &Path, reserve: u64) -> StateResult<RocksBackend> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = Space::ALL.iter().map(|s| ColumnFamilyDescriptor::new(s.name(), column_family_options(*s)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(store_err)?;
        Ok(RocksBackend { db, dir: path.to_path_buf(), reserve })
    }

    /// Refuses a write of `bytes` more data that would eat into the
    /// reserve.
    fn check_space(&self, bytes: u64) -> StateResult<()> {
        let Some(free) = free_bytes(&self.dir) else { return Ok(()) };
        if free < self.reserve.saturating_add(bytes) {
            return Err(StateError::Store(format!(
                "disk full: {} MiB free under {}, {} MiB kept in reserve; write refused",
                free >> 20,
                self.dir.display(),
                self.reserve >> 20
            )));
        }
        Ok(())
    }

    fn cf(&self, s: Space) -> StateResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(s.name()).ok_or_else(|| StateError::Store(format!("missing column family {}", s.name())))
    }
}

impl StateBackend for RocksBackend {
    fn write(&self, writes: Vec<Write>, sync: bool) -> StateResult<()> {
        let added: u64 = writes
            .iter()
            .map(|w| match w {
                Write::Put(_, k, v) => (k.len() + v.len()) as u64,
                Write::Delete(..) | Write::DeleteRange(..) => 0,
            })
            .sum();
        if added > 0 {
            self.check_space(added)?;
        }
        let mut batch = WriteBatch::default();
        for w in writes {
            match w {
                Write::Put(s, k, v) => batch.put_cf(self.cf(s)?, k, v),
                Write::Delete(s, k) => batch.delete_cf(self.cf(s)?, k),
                Write::DeleteRange(s, from, to) => batch.delete_range_cf(self.cf(s)?, from, to),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(store_err)
    }

    fn get(&self, space: Space, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(space)?, key).map_err(store_err)
    }

    fn scan(&self, space: Space, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let iter =
            self.db.iterator_cf(self.cf(space)?, rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(store_err)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// Bytes available to this process under `dir` (`None` if unknown).
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a valid, writable
    // statvfs for the call to fill.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_scan_delete_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = RocksBackend::open(dir.path()).unwrap();
            db.write(
                vec![
                    Write::Put(Space::Checkpoints, b"r1a".to_vec(), b"1".to_vec()),
                    Write::Put(Space::Checkpoints, b"r1b".to_vec(), b"2".to_vec()),
                    Write::Put(Space::Checkpoints, b"r2a".to_vec(), b"3".to_vec()),
                ],
                true,
            )
            .unwrap();
        }
        let db = RocksBackend::open(dir.path()).unwrap();
        assert_eq!(db.scan(Space::Checkpoints, b"r1").unwrap().len(), 2);
        db.write(vec![Write::DeleteRange(Space::Checkpoints, b"r1".to_vec(), b"r2".to_vec())], true).unwrap();
        assert!(db.scan(Space::Checkpoints, b"r1").unwrap().is_empty());
        assert_eq!(db.get(Space::Checkpoints, b"r2a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(db.get(Space::Commits, b"r2a").unwrap(), None);
    }

    /// With less free space than the reserve, a write that adds data is
    /// refused with an error naming the directory (RocksDB itself must
    /// never meet a full disk); deletes still go through.
    #[test]
    fn writes_into_the_reserve_are_refused_and_deletes_pass() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).expect("statvfs works here");
        let put = |db: &RocksBackend| db.write(vec![Write::Put(Space::IngestLog, b"k".to_vec(), b"v".to_vec())], true);
        {
            let db = RocksBackend::open_with_reserve(dir.path(), 0).unwrap();
            put(&db).unwrap();
        }
        let db = RocksBackend::open_with_reserve(dir.path(), free.saturating_mul(2)).unwrap();
        let e = put(&db).unwrap_err().to_string();
        assert!(e.contains("disk full") && e.contains(&dir.path().display().to_string()), "{e}");
        db.write(vec![Write::Delete(Space::IngestLog, b"k".to_vec())], true).unwrap();
        assert_eq!(db.get(Space::IngestLog, b"k").unwrap(), None);
    }
}
