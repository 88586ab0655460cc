//! Event-time session windows: where the next session ends, given the
//! buffered events and the watermark.

use super::{aligned_end, WindowOp};
use crate::operator::Output;

impl WindowOp {
    /// Fires every session that ends at or before `wm`. A session ends at
    /// the first gap longer than the timeout (last event + timeout) or at
    /// an aligned max-duration tick after its first event, as in eKuiper.
    pub(super) fn session_event_time(&mut self, wm: i64, max_ms: i64, timeout_ms: i64, out: &mut Output) {
        while let Some((end, ticked)) = self.next_session_end(wm, max_ms, timeout_ms) {
            if end > wm {
                break;
            }
            // After a max-duration tick the session goes on: the next window
            // starts where the ticked one ended (the scan's trigger time).
            if !self.session_ticked {
                self.trigger_time = self.rows.first().map(|r| r.ts);
            }
            self.scan(end, max_ms, out);
            self.session_ticked = ticked;
        }
    }

    fn next_session_end(&self, wm: i64, max_ms: i64, timeout_ms: i64) -> Option<(i64, bool)> {
        let first = self.rows.first()?.ts;
        let mut tick = aligned_end(first, self.raw_interval(), self.unit);
        let mut prev: Option<i64> = None;
        let mut ticked = false;
        for r in &self.rows {
            let mut end = None;
            if let Some(p) = prev {
                if r.ts - p > timeout_ms {
                    end = Some(p + timeout_ms);
                }
            }
            if r.ts > tick {
                if tick - max_ms > first && end.is_none_or(|e| tick < e) {
                    end = Some(tick);
                    ticked = true;
                }
                tick += max_ms;
            }
            if let Some(e) = end {
                return Some((e, ticked));
            }
            prev = Some(r.ts);
        }
        match prev {
            Some(p) if wm - p > timeout_ms => Some((p + timeout_ms, ticked)),
            _ => None,
        }
    }
}
