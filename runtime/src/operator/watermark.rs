//! Event time: watermarks and in-order release of events.
//!
//! Each input stream's watermark is the largest event time it has shown;
//! the rule's watermark is the smallest of those minus `lateTolerance`. Events older than the current
//! watermark are late and dropped silently, as eKuiper does; the others
//! wait, sorted, until the watermark passes them. The watermark only moves
//! when events arrive.

use std::collections::BTreeMap;

use crate::operator::{Operator, Output};
use crate::row::{Batch, Message, Row};
use crate::state::{codec, StateResult};

/// Sorts events by event time and emits watermarks.
pub struct WatermarkOp {
    late_tolerance: i64,
    input_max: Vec<Option<i64>>,
    watermark: Option<i64>,
    /// Waiting events by (ts, arrival sequence): stable for equal times.
    pending: BTreeMap<(i64, u64), Row>,
    seq: u64,
    /// Late events dropped so far.
    pub late_dropped: u64,
}

impl WatermarkOp {
    /// For `inputs` streams with the given tolerance (ms).
    pub fn new(inputs: usize, late_tolerance: i64) -> WatermarkOp {
        WatermarkOp {
            late_tolerance,
            input_max: vec![None; inputs.max(1)],
            watermark: None,
            pending: BTreeMap::new(),
            seq: 0,
            late_dropped: 0,
        }
    }
}

impl Operator for WatermarkOp {
    fn snapshot(&self) -> StateResult<Option<Vec<u8>>> {
        let pending: Vec<(&(i64, u64), &Row)> = self.pending.iter().collect();
        codec::encode(&(&self.input_max, self.watermark, pending, self.seq, self.late_dropped)).map(Some)
    }

    fn restore(&mut self, bytes: &[u8]) -> StateResult<()> {
        type S = (Vec<Option<i64>>, Option<i64>, Vec<((i64, u64), Row)>, u64, u64);
        let (input_max, watermark, pending, seq, late): S = codec::decode(bytes, "watermark")?;
        self.input_max = input_max;
        self.watermark = watermark;
        self.pending = pending.into_iter().collect();
        self.seq = seq;
        self.late_dropped = late;
        Ok(())
    }

    fn process(&mut self, input: usize, batch: Batch, _now: i64, out: &mut Output) {
        for row in batch.rows {
            if self.watermark.is_some_and(|wm| row.ts < wm) {
                self.late_dropped += 1;
                continue;
            }
            self.progress(input, row.ts);
            self.pending.insert((row.ts, self.seq), row);
            self.seq += 1;
        }
        self.advance(out);
    }

    /// In a sharded rule, the shard that read input `input` has seen
    /// events up to `ts` (the rows it sent here may be fewer): the same
    /// progress as a row at `ts`, so each source's watermark follows all
    /// it read, as one rule instance's would.
    fn on_input_watermark(&mut self, input: usize, ts: i64, out: &mut Output) {
        self.progress(input, ts);
        self.advance(out);
    }
}

impl WatermarkOp {
    fn progress(&mut self, input: usize, ts: i64) {
        if let Some(m) = self.input_max.get_mut(input) {
            *m = Some(m.map_or(ts, |x| x.max(ts)));
        }
    }

    /// Moves the watermark to the least input's progress minus the
    /// tolerance, releasing the events it passed, in order.
    fn advance(&mut self, out: &mut Output) {
        // eKuiper seeds every stream's watermark at zero: nothing is released
        // until every stream has sent something.
        if self.input_max.iter().any(Option::is_none) {
            return;
        }
        let Some(min_max) = self.input_max.iter().flatten().min().copied() else { return };
        let wm = min_max - self.late_tolerance;
        if self.watermark.is_some_and(|cur| wm <= cur) {
            return;
        }
        self.watermark = Some(wm);
        let keep = self.pending.split_off(&(wm + 1, 0));
        let ready = std::mem::replace(&mut self.pending, keep);
        out.data(Batch::events(ready.into_values().collect()));
        out.messages.push(Message::Watermark(wm));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Row;

    fn rows(ts: &[i64]) -> Batch {
        Batch::events(ts.iter().map(|&t| Row::new(0, t, 0)).collect())
    }

    #[test]
    fn releases_sorted_and_drops_late() {
        let mut w = WatermarkOp::new(1, 1000);
        let mut out = Output::default();
        w.process(0, rows(&[5000, 3000]), 0, &mut out);
        // wm = 4000: 3000 released.
        let Message::Data(b) = &out.messages[0] else { panic!() };
        assert_eq!(b.rows.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![3000]);
        assert_eq!(out.messages[1], Message::Watermark(4000));
        let mut out = Output::default();
        w.process(0, rows(&[3500, 7000]), 0, &mut out);
        assert_eq!(w.late_dropped, 1);
        let Message::Data(b) = &out.messages[0] else { panic!() };
        assert_eq!(b.rows.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![5000]);
    }
}
