//! raft-rs logs through `slog`; this drain forwards its records to `tracing`
//! (target `weir_cluster::raft`) so weir has one log pipeline.

use std::fmt::Write as _;

use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};

/// Collects a record's key-value pairs as ` k=v`.
struct Pairs(String);

impl Serializer for Pairs {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

/// The drain: maps slog levels to tracing levels.
struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut pairs = Pairs(String::new());
        let _ = record.kv().serialize(record, &mut pairs);
        let _ = values.serialize(record, &mut pairs);
        let msg = record.msg();
        let kv = pairs.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "weir_cluster::raft", "{msg}{kv}")
            }
            slog::Level::Warning => tracing::warn!(target: "weir_cluster::raft", "{msg}{kv}"),
            slog::Level::Info => tracing::debug!(target: "weir_cluster::raft", "{msg}{kv}"),
            slog::Level::Debug | slog::Level::Trace => tracing::trace!(target: "weir_cluster::raft", "{msg}{kv}"),
        }
        Ok(())
    }
}

/// A raft-rs logger for node `id` that writes to `tracing`.
pub(crate) fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("raft_id" => id))
}
