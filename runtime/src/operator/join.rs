//! Joins: stream-stream inside a window, and stream-table.

use weir_planner::ast::JoinKind;

use crate::expr::Expr;
use crate::functions::FuncError;
use crate::operator::{Operator, Output, RuleContext};
use crate::row::{Batch, Row, WindowRange};
use crate::state::{codec, StateResult};

/// One join step, compiled.
pub struct JoinStep {
    /// Kind.
    pub kind: JoinKind,
    /// Left source of the first step.
    pub left: u16,
    /// The joined source.
    pub source: u16,
    /// `ON`.
    pub on: Option<Expr>,
}

/// Rows a scan table keeps.
pub struct TableState {
    /// Source index of the table.
    pub source: u16,
    /// The table's name, for logs.
    pub name: String,
    /// Rows kept (RETAIN_SIZE).
    pub retain: usize,
    /// Current rows, oldest first.
    pub rows: Vec<Row>,
    /// A snapshot was cut to RETAIN_SIZE and this was logged.
    cut_logged: bool,
}

impl TableState {
    /// An empty table `name` of source `source` keeping `retain` rows.
    pub fn new(source: u16, name: impl Into<String>, retain: usize) -> TableState {
        TableState { source, name: name.into(), retain, rows: Vec::new(), cut_logged: false }
    }

    /// Takes a batch of the table's source. A scan table keeps the latest
    /// RETAIN_SIZE rows (eKuiper's table processor; scan tables do not
    /// deduplicate by KEY). A snapshot batch (a full pull of a `sql`
    /// source, see [`crate::row::SNAPSHOT`]) is the table's new content:
    /// it replaces the rows at once, so an event never joins half of a
    /// pull, and pulling the same rows again does not duplicate them.
    fn take(&mut self, batch: Batch) {
        if batch.snapshot {
            // A full pull larger than RETAIN_SIZE (1 by default for sql
            // tables, as in eKuiper) loses rows: say so once, since the
            // join then quietly misses them.
            if batch.rows.len() > self.retain && !self.cut_logged {
                self.cut_logged = true;
                tracing::warn!(
                    table = %self.name,
                    rows = batch.rows.len(),
                    retain_size = self.retain,
                    "a pull of the scan table has more rows than RETAIN_SIZE; only the last are kept"
                );
            }
            self.rows = batch.rows;
        } else {
            self.rows.extend(batch.rows);
        }
        if self.rows.len() > self.retain {
            let extra = self.rows.len() - self.retain;
            self.rows.drain(..extra);
        }
    }
}

/// Joins the rows of each emission (or each event, with tables only).
///
/// Input 0 carries the stream side; table rows arrive on the inputs that
/// [`JoinOp::table_input`] names and update the tables' contents.
pub struct JoinOp {
    steps: Vec<JoinStep>,
    /// Slots owned by each source, for merging rows.
    source_slots: Vec<Vec<usize>>,
    tables: Vec<TableState>,
    cx: RuleContext,
}

impl JoinOp {
    /// A join over `steps`; `source_slots[s]` lists the slots of source `s`.
    pub fn new(steps: Vec<JoinStep>, source_slots: Vec<Vec<usize>>, tables: Vec<TableState>, cx: RuleContext) -> Self {
        JoinOp { steps, source_slots, tables, cx }
    }

    /// The input index that feeds table `source`.
    pub fn table_input(&self, source: u16) -> Option<usize> {
        self.tables.iter().position(|t| t.source == source).map(|i| i + 1)
    }

    fn merge(&self, left: &Row, right: &Row) -> Row {
        let mut m = left.clone();
        if let Some(slots) = self.source_slots.get(right.source as usize) {
            for &s in slots {
                if let (Some(dst), Some(src)) = (m.slots.get_mut(s), right.slots.get(s)) {
                    *dst = src.clone();
                }
            }
            m.copy_present_nulls(right, slots);
        }
        m
    }

    /// Joins the rows; an ON condition failing on any pair fails the whole
    /// join (eKuiper drops the emission and reports the error).
    fn join(&self, rows: &[Row], now: i64, window: Option<WindowRange>) -> Result<Vec<Row>, FuncError> {
        let ecx = self.cx.eval(now, window);
        let first_left = self.steps.first().map_or(0, |s| s.left);
        let mut current: Vec<Row> = rows.iter().filter(|r| r.source == first_left).cloned().collect();
        for step in &self.steps {
            let right_source = if step.left == step.source { 0 } else { step.source };
            let right: Vec<&Row> = match self.tables.iter().find(|t| t.source == right_source) {
                Some(t) => t.rows.iter().collect(),
                None => rows.iter().filter(|r| r.source == right_source).collect(),
            };
            let mut matched_right = vec![false; right.len()];
            let mut next = Vec::new();
            for l in &current {
                let mut matched = false;
                for (i, r) in right.iter().enumerate() {
                    let merged = self.merge(l, r);
                    let ok = match &step.on {
                        None => true,
                        Some(on) => on.eval(&merged, &ecx)?.is_true(),
                    };
                    if ok {
                        matched = true;
                        matched_right[i] = true;
                        next.push(merged);
                    }
                }
                if !matched && matches!(step.kind, JoinKind::Left | JoinKind::Full) {
                    next.push(l.clone());
                }
            }
            if matches!(step.kind, JoinKind::Right | JoinKind::Full) {
                for (i, r) in right.iter().enumerate() {
                    if !matched_right[i] {
                        next.push((*r).clone());
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }
}

impl Operator for JoinOp {
    fn snapshot(&self) -> StateResult<Option<Vec<u8>>> {
        if self.tables.is_empty() {
            return Ok(None);
        }
        let rows: Vec<&Vec<Row>> = self.tables.iter().map(|t| &t.rows).collect();
        codec::encode(&rows).map(Some)
    }

    fn restore(&mut self, bytes: &[u8]) -> StateResult<()> {
        let rows: Vec<Vec<Row>> = codec::decode(bytes, "join tables")?;
        for (t, r) in self.tables.iter_mut().zip(rows) {
            t.rows = r;
        }
        Ok(())
    }

    fn process(&mut self, input: usize, batch: Batch, now: i64, out: &mut Output) {
        if input > 0 {
            if let Some(t) = self.tables.get_mut(input - 1) {
                t.take(batch);
            }
            return;
        }
        match batch.window {
            Some(w) => match self.join(&batch.rows, now, Some(w)) {
                // eKuiper's join returns nothing for an empty result.
                Ok(rows) if !rows.is_empty() => out.data(Batch::emission(rows, w)),
                Ok(_) => {}
                Err(e) => out.error(format!("run Join error: {e}")),
            },
            None => {
                // Each event joins the tables on its own and is one emission.
                for row in batch.rows {
                    match self.join(std::slice::from_ref(&row), now, None) {
                        Ok(rows) if !rows.is_empty() => out.data(Batch::emission(rows, WindowRange::default())),
                        Ok(_) => {}
                        Err(e) => out.error(format!("run Join error: {e}")),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::value::Value;

    /// A stream (source 0, slot 0) cross-joined with a scan table (source
    /// 1, slot 1) that keeps `retain` rows.
    fn join(retain: usize) -> JoinOp {
        let step = JoinStep { kind: JoinKind::Cross, left: 0, source: 1, on: None };
        let table = TableState::new(1, "t", retain);
        let cx = RuleContext { rule_id: Arc::from("r"), start_ms: 0 };
        JoinOp::new(vec![step], vec![vec![0], vec![1]], vec![table], cx)
    }

    fn table_row(v: i64) -> Row {
        Row { slots: vec![Value::Null, Value::Int(v)], ts: 0, source: 1, nulls: None }
    }

    /// The table values one event joins.
    fn joined(op: &mut JoinOp) -> Vec<i64> {
        let event = Row { slots: vec![Value::Int(0), Value::Null], ts: 0, source: 0, nulls: None };
        let mut out = Output::default();
        op.process(0, Batch::events(vec![event]), 0, &mut out);
        out.messages
            .iter()
            .flat_map(|m| match m {
                crate::row::Message::Data(b) => b.rows.iter().filter_map(|r| r.slots[1].as_i64()).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn feed(op: &mut JoinOp, batch: Batch) {
        let input = op.table_input(1).unwrap();
        op.process(input, batch, 0, &mut Output::default());
    }

    #[test]
    fn snapshots_replace_a_scan_table_and_events_add_to_it() {
        let mut op = join(3);
        feed(&mut op, Batch::snapshot(vec![table_row(1), table_row(2)]));
        assert_eq!(joined(&mut op), [1, 2]);
        // The same pull again, one row changed: no duplicates, new value.
        feed(&mut op, Batch::snapshot(vec![table_row(1), table_row(20)]));
        assert_eq!(joined(&mut op), [1, 20]);
        // Rows of other sources add to the latest RETAIN_SIZE.
        feed(&mut op, Batch::events(vec![table_row(3), table_row(4)]));
        assert_eq!(joined(&mut op), [20, 3, 4]);
        // A snapshot larger than RETAIN_SIZE keeps its last rows.
        feed(&mut op, Batch::snapshot((5..10).map(table_row).collect()));
        assert_eq!(joined(&mut op), [7, 8, 9]);
        // An empty pull empties the table.
        feed(&mut op, Batch::snapshot(Vec::new()));
        assert_eq!(joined(&mut op), Vec::<i64>::new());
    }
}
