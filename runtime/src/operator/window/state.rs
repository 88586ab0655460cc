//! State windows: opened and closed by conditions on the events, per
//! partition.

use std::collections::HashMap;

use crate::expr::Expr;
use crate::functions::go_v;
use crate::operator::{Output, RuleContext};
use crate::row::{Batch, Row, WindowRange};

/// The open state windows, one per partition.
pub(super) struct StateWindows {
    partition: Vec<Expr>,
    begin: Expr,
    emit: Option<Expr>,
    open: HashMap<String, Vec<Row>>,
}

impl StateWindows {
    pub(super) fn new(partition: Vec<Expr>, begin: Expr, emit: Option<Expr>) -> StateWindows {
        StateWindows { partition, begin, emit, open: HashMap::new() }
    }

    /// The open windows by partition key, sorted (for checkpoints).
    pub(super) fn open_windows(&self) -> Vec<(String, Vec<Row>)> {
        let mut v: Vec<_> = self.open.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Replaces the open windows (restore).
    pub(super) fn set_open_windows(&mut self, open: Vec<(String, Vec<Row>)>) {
        self.open = open.into_iter().collect();
    }

    /// Single condition: idle until it holds (that event opens the window);
    /// each later event for which it holds emits the window without itself
    /// (ending at its time) and opens the next one with itself. Two
    /// conditions: `begin` is tested while idle and opens (event included);
    /// `emit` is tested on later events and closes (event included). A
    /// condition that fails to evaluate counts as false, as in eKuiper.
    pub(super) fn process(&mut self, row: Row, cx: &RuleContext, now: i64, out: &mut Output) {
        let ecx = cx.eval(now, None);
        let test = |e: &Expr, out: &mut Output| match e.eval(&row, &ecx) {
            Ok(v) => v.is_true(),
            Err(err) => {
                out.error(err);
                false
            }
        };
        // eKuiper's partition key: "parKey_" then "%v," per value.
        let mut key = String::from("parKey_");
        for p in &self.partition {
            if let Ok(v) = p.eval(&row, &ecx) {
                key.push_str(&go_v(&v));
                key.push(',');
            }
        }
        let (begin, emit) = (&self.begin, self.emit.as_ref());
        let is_open = self.open.contains_key(&key);
        if !is_open {
            if test(begin, out) {
                self.open.insert(key, vec![row]);
            }
            return;
        }
        match emit {
            None => {
                if test(begin, out) {
                    let end = row.ts;
                    if let Some(rows) = self.open.insert(key, vec![row]) {
                        emit_rows(rows, end, out);
                    }
                } else {
                    self.open.entry(key).or_default().push(row);
                }
            }
            Some(emit) => {
                let close = test(emit, out);
                let end = row.ts;
                self.open.entry(key.clone()).or_default().push(row);
                if close {
                    if let Some(rows) = self.open.remove(&key) {
                        emit_rows(rows, end, out);
                    }
                }
            }
        }
    }
}

fn emit_rows(rows: Vec<Row>, end: i64, out: &mut Output) {
    let start = rows.first().map(|r| r.ts).unwrap_or(end);
    out.data(Batch::emission(rows, WindowRange { start, end, trigger: end }));
}
