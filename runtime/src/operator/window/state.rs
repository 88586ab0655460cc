//! State windows: opened and closed by conditions on the events, per
//! partition.

use std::collections::HashMap;

use crate::expr::Expr;
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

    /// Single condition: idle until it holds (that event opens the window);
    /// each later event for which it holds emits the window without itself
    /// and opens the next one with itself. Two conditions: `begin` is tested
    /// while idle and opens (event included); `emit` is tested on later
    /// events and closes (event included).
    pub(super) fn process(&mut self, row: Row, cx: &RuleContext, now: i64, out: &mut Output) {
        let (begin, emit) = (&self.begin, self.emit.as_ref());
        let ecx = cx.eval(now, None);
        let test = |e: &Expr, out: &mut Output| match e.eval(&row, &ecx) {
            Ok(v) => Some(v.is_true()),
            Err(err) => {
                out.error(err);
                None
            }
        };
        let mut key = String::new();
        for p in &self.partition {
            match p.eval(&row, &ecx) {
                Ok(v) => key.push_str(&v.to_text()),
                Err(e) => {
                    out.error(e);
                    return;
                }
            }
        }
        let is_open = self.open.contains_key(&key);
        match emit {
            None => {
                let Some(hit) = test(begin, out) else { return };
                if hit {
                    if let Some(rows) = self.open.remove(&key) {
                        emit_rows(rows, out);
                    }
                    self.open.insert(key, vec![row]);
                } else if is_open {
                    self.open.entry(key).or_default().push(row);
                }
            }
            Some(emit) => {
                if !is_open {
                    if test(begin, out) == Some(true) {
                        self.open.insert(key, vec![row]);
                    }
                    return;
                }
                let Some(close) = test(emit, out) else { return };
                let rows = self.open.entry(key.clone()).or_default();
                rows.push(row);
                if close {
                    if let Some(rows) = self.open.remove(&key) {
                        emit_rows(rows, out);
                    }
                }
            }
        }
    }
}

fn emit_rows(rows: Vec<Row>, out: &mut Output) {
    let start = rows.first().map(|r| r.ts).unwrap_or(0);
    let end = rows.last().map(|r| r.ts).unwrap_or(0);
    out.data(Batch::emission(rows, WindowRange { start, end, trigger: end }));
}
