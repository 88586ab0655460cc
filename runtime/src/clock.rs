//! The one clock of a rule. Operators never read wall time: timers, window
//! ends, session gaps and `now()` all come from here, so that replay can
//! swap in a virtual clock and be deterministic.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of time in Unix milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time, ms.
    fn now_ms(&self) -> i64;

    /// Waits until the clock reads at least `deadline_ms`. A virtual clock
    /// returns at once: its driver moves time explicitly.
    fn sleep_until(&self, deadline_ms: i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    fn sleep_until(&self, deadline_ms: i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let wait = (deadline_ms - self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// Time that moves only when told to (replay, tests).
#[derive(Debug, Default, Clone)]
pub struct VirtualClock {
    now: Arc<AtomicI64>,
}

impl VirtualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> VirtualClock {
        VirtualClock { now: Arc::new(AtomicI64::new(start_ms)) }
    }

    /// Moves the clock to `ms` (never backwards).
    pub fn set(&self, ms: i64) {
        self.now.fetch_max(ms, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, _deadline_ms: i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }
}

/// The timers of a rule's operators: each operator publishes its next
/// deadline; the clock driver fires a `Tick` when the earliest is due.
#[derive(Debug, Default, Clone)]
pub struct Timers {
    deadlines: Arc<std::sync::Mutex<Vec<Option<i64>>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Timers {
    /// Registers a timer owner; returns its index.
    pub fn register(&self) -> usize {
        let mut d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        d.push(None);
        d.len() - 1
    }

    /// Sets owner `i`'s next deadline.
    pub fn set(&self, i: usize, deadline: Option<i64>) {
        let mut d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = d.get_mut(i) {
            if *slot != deadline {
                *slot = deadline;
                self.changed.notify_one();
            }
        }
    }

    /// The earliest deadline of all owners.
    pub fn earliest(&self) -> Option<i64> {
        let d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        d.iter().flatten().copied().min()
    }

    /// The earliest deadline strictly after `t`.
    pub fn earliest_after(&self, t: i64) -> Option<i64> {
        let d = self.deadlines.lock().unwrap_or_else(|e| e.into_inner());
        d.iter().flatten().copied().filter(|d| *d > t).min()
    }

    /// Resolves when some deadline changes.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}
