//! State in RocksDB: one database per node, a column family per [`Space`].

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use super::{Space, StateBackend, StateError, StateResult, Write};

/// A node's durable state store.
pub struct RocksBackend {
    db: DB,
}

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
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = Space::ALL.iter().map(|s| ColumnFamilyDescriptor::new(s.name(), column_family_options(*s)));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(store_err)?;
        Ok(RocksBackend { db })
    }

    fn cf(&self, s: Space) -> StateResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(s.name()).ok_or_else(|| StateError::Store(format!("missing column family {}", s.name())))
    }
}

impl StateBackend for RocksBackend {
    fn write(&self, writes: Vec<Write>, sync: bool) -> StateResult<()> {
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
}
