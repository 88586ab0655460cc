//! The only place that reads the wall clock: the production shell turns
//! elapsed time into raft ticks here. [`RaftNode`](crate::RaftNode) itself
//! only counts ticks, so the simulation drives it with a virtual clock.

use std::time::{Duration, Instant};

/// Counts ticks of a fixed period against the monotonic clock.
#[derive(Debug)]
pub(crate) struct Ticker {
    period: Duration,
    next: Instant,
}

impl Ticker {
    pub(crate) fn new(period: Duration) -> Ticker {
        Ticker { period, next: Instant::now() + period }
    }

    /// How long until the next tick is due (zero if overdue).
    pub(crate) fn until_next(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Ticks due since the last call. After a long stall (a slow disk) at
    /// most a few are returned, so raft does not see a burst of elections.
    pub(crate) fn due(&mut self) -> u32 {
        let now = Instant::now();
        let mut n = 0;
        while self.next <= now {
            self.next += self.period;
            n += 1;
        }
        if n > 3 {
            self.next = now + self.period;
            n = 3;
        }
        n
    }
}

/// A deadline `d` from now.
pub(crate) fn deadline(d: Duration) -> Instant {
    Instant::now() + d
}

/// Whether `t` has passed.
pub(crate) fn passed(t: Instant) -> bool {
    Instant::now() >= t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_counts_overdue_ticks_and_caps_bursts() {
        let mut t = Ticker::new(Duration::from_millis(1));
        t.next = Instant::now() - Duration::from_millis(100);
        assert_eq!(t.due(), 3);
        assert!(t.until_next() <= Duration::from_millis(1));
        assert_eq!(t.due(), 0);
    }
}
