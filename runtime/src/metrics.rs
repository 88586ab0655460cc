//! Per-operator metrics, named as eKuiper's rule status names them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters of one operator (or source, or sink) instance.
#[derive(Debug, Default)]
pub struct OpMetrics {
    /// eKuiper node name (`source_demo`, `op_3_window`, `sink_log_0`).
    pub name: String,
    /// Instance of the node (`concurrency` runs several).
    pub instance: usize,
    records_in: AtomicU64,
    records_out: AtomicU64,
    messages_processed: AtomicU64,
    process_latency_us: AtomicI64,
    buffer_length: AtomicI64,
    last_invocation: AtomicI64,
    exceptions: AtomicU64,
    last_exception: Mutex<String>,
    last_exception_time: AtomicI64,
}

impl OpMetrics {
    /// Metrics for instance 0 of node `name`.
    pub fn new(name: impl Into<String>) -> OpMetrics {
        OpMetrics { name: name.into(), ..OpMetrics::default() }
    }

    /// Metrics for instance `instance` of node `name`.
    pub fn instance(name: impl Into<String>, instance: usize) -> OpMetrics {
        OpMetrics { name: name.into(), instance, ..OpMetrics::default() }
    }

    /// Counts one handled message with `rows_in` rows in and `rows_out` out.
    pub fn processed(&self, rows_in: u64, rows_out: u64, latency_us: i64, now_ms: i64) {
        self.records_in.fetch_add(rows_in, Ordering::Relaxed);
        self.records_out.fetch_add(rows_out, Ordering::Relaxed);
        self.messages_processed.fetch_add(1, Ordering::Relaxed);
        self.process_latency_us.store(latency_us, Ordering::Relaxed);
        self.last_invocation.store(now_ms, Ordering::Relaxed);
    }

    /// Records a runtime error (the row was dropped).
    pub fn exception(&self, message: &str, now_ms: i64) {
        self.exceptions.fetch_add(1, Ordering::Relaxed);
        *self.last_exception.lock().unwrap_or_else(|e| e.into_inner()) = message.to_string();
        self.last_exception_time.store(now_ms, Ordering::Relaxed);
    }

    /// Sets the mailbox depth.
    pub fn set_buffer_length(&self, n: i64) {
        self.buffer_length.store(n, Ordering::Relaxed);
    }

    /// Runtime errors so far.
    pub fn exceptions(&self) -> u64 {
        self.exceptions.load(Ordering::Relaxed)
    }

    /// Rows received so far.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Rows sent so far.
    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }

    /// The last error message.
    pub fn last_exception(&self) -> String {
        self.last_exception.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// eKuiper's status entries: `<name>_<instance>_records_in_total`, ...
    /// in eKuiper's order.
    pub fn status_entries(&self) -> Vec<(String, serde_json::Value)> {
        let p = format!("{}_{}_", self.name, self.instance);
        vec![
            (format!("{p}records_in_total"), self.records_in.load(Ordering::Relaxed).into()),
            (format!("{p}records_out_total"), self.records_out.load(Ordering::Relaxed).into()),
            (format!("{p}messages_processed_total"), self.messages_processed.load(Ordering::Relaxed).into()),
            (format!("{p}process_latency_us"), self.process_latency_us.load(Ordering::Relaxed).into()),
            (format!("{p}buffer_length"), self.buffer_length.load(Ordering::Relaxed).into()),
            (format!("{p}last_invocation"), self.last_invocation.load(Ordering::Relaxed).into()),
            (format!("{p}exceptions_total"), self.exceptions.load(Ordering::Relaxed).into()),
            (format!("{p}last_exception"), self.last_exception().into()),
            (format!("{p}last_exception_time"), self.last_exception_time.load(Ordering::Relaxed).into()),
        ]
    }
}
