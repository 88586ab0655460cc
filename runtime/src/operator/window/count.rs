//! Count windows: every `hop`-th event emits the latest `size` events.

use super::WindowOp;
use crate::operator::Output;
use crate::row::{Batch, Row, WindowRange};

impl WindowOp {
    /// eKuiper's count window: events are counted as they enter; on every
    /// `hop`-th one, if at least `size` are buffered the latest `size` are
    /// emitted and the latest `size - 1` kept.
    pub(super) fn count_row(&mut self, row: Row, size: u64, hop: u64, out: &mut Output) {
        let ts = row.ts;
        self.rows.push(row);
        self.count += 1;
        if !self.count.is_multiple_of(hop.max(1)) {
            return;
        }
        self.count = 0;
        let size = size as usize;
        if self.rows.len() < size {
            return;
        }
        let content = self.rows[self.rows.len() - size..].to_vec();
        // eKuiper stamps both ends with the time the window completes.
        out.data(Batch::emission(content, WindowRange { start: ts, end: ts, trigger: ts }));
        let keep_from = self.rows.len() + 1 - size;
        self.rows.drain(..keep_from);
    }
}
