//! GROUP BY and aggregate calls.

use std::collections::HashMap;

use crate::expr::{EvalContext, Expr};
use crate::functions::{Accumulator, AccumulatorFactory};
use crate::operator::{Operator, Output, RuleContext};
use crate::row::{Batch, Row};
use crate::value::Value;

/// One aggregate call of the plan, compiled.
pub struct AggregateSite {
    /// Creates an accumulator per group.
    pub factory: AccumulatorFactory,
    /// Arguments, evaluated per row.
    pub args: Vec<Expr>,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Expr>,
}

/// Groups each emission by the keys and appends one slot per aggregate to
/// the first row of each group (eKuiper evaluates non-aggregate columns of
/// a group on its first row). Without a window every event is a group of
/// its own.
pub struct AggregateOp {
    keys: Vec<Expr>,
    sites: Vec<AggregateSite>,
    base: usize,
    cx: RuleContext,
}

/// One group being folded: its first row and its accumulators.
struct Group {
    first: Row,
    accs: Vec<Box<dyn Accumulator>>,
}

impl AggregateOp {
    /// Aggregates with result slots starting at `base`.
    pub fn new(keys: Vec<Expr>, sites: Vec<AggregateSite>, base: usize, cx: RuleContext) -> AggregateOp {
        AggregateOp { keys, sites, base, cx }
    }

    fn open(&self, first: Row) -> Group {
        Group { first, accs: self.sites.iter().map(|s| (s.factory)()).collect() }
    }

    /// Folds one row into a group's accumulators; `args` is a reused buffer.
    fn fold(
        &self,
        accs: &mut [Box<dyn Accumulator>],
        row: &Row,
        ecx: &EvalContext<'_>,
        args: &mut Vec<Value>,
        out: &mut Output,
    ) {
        for (site, acc) in self.sites.iter().zip(accs.iter_mut()) {
            if let Some(f) = &site.filter {
                match f.eval(row, ecx) {
                    Ok(v) if v.is_true() => {}
                    Ok(_) => continue,
                    Err(e) => {
                        out.error(e);
                        continue;
                    }
                }
            }
            args.clear();
            let mut failed = false;
            for a in &site.args {
                match a.eval(row, ecx) {
                    Ok(v) => args.push(v),
                    Err(e) => {
                        out.error(e);
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                if let Err(e) = acc.update(args) {
                    out.error(e);
                }
            }
        }
    }

    /// The output row of a group: its first row plus one slot per
    /// aggregate (eKuiper evaluates non-aggregate columns on the first row).
    fn finish(&self, group: Option<Group>, ts: i64, out: &mut Output) -> Row {
        let Some(Group { first, accs }) = group else {
            // eKuiper calls the aggregates of an empty window with no
            // values, which gives nil for all of them.
            let mut row = Row::new(self.base, ts, 0);
            row.slots.resize(self.base + self.sites.len(), Value::Null);
            return row;
        };
        let mut row = Row { ts, ..first };
        row.slots.resize(self.base, Value::Null);
        for acc in &accs {
            row.slots.push(acc.finish().unwrap_or_else(|e| {
                out.error(e);
                Value::Null
            }));
        }
        row
    }
}

impl Operator for AggregateOp {
    fn process(&mut self, _input: usize, batch: Batch, now: i64, out: &mut Output) {
        let ecx = self.cx.eval(now, batch.window);
        let mut args = Vec::new();
        let Some(window) = batch.window else {
            // Without a window every event is a group of its own.
            let mut rows = Vec::with_capacity(batch.rows.len());
            for row in batch.rows {
                let ts = row.ts;
                let mut g = self.open(row);
                let first = std::mem::replace(&mut g.first, Row::new(0, 0, 0));
                self.fold(&mut g.accs, &first, &ecx, &mut args, out);
                g.first = first;
                rows.push(self.finish(Some(g), ts, out));
            }
            out.data(Batch::events(rows));
            return;
        };
        let ts = window.end;
        if self.keys.is_empty() {
            let mut group: Option<Group> = None;
            for row in batch.rows {
                let g = group.get_or_insert_with(|| self.open(row.clone()));
                self.fold(&mut g.accs, &row, &ecx, &mut args, out);
            }
            let row = self.finish(group, ts, out);
            out.data(Batch::emission(vec![row], window));
            return;
        }
        // Groups in order of first appearance, for deterministic output.
        // The key buffer is reused: only a new group allocates its key.
        let mut index: HashMap<Vec<Value>, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut key: Vec<Value> = Vec::with_capacity(self.keys.len());
        'rows: for row in batch.rows {
            key.clear();
            for k in &self.keys {
                match k.eval(&row, &ecx) {
                    Ok(v) => key.push(v),
                    Err(e) => {
                        out.error(e);
                        continue 'rows;
                    }
                }
            }
            let g = match index.get(key.as_slice()) {
                Some(&g) => g,
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push(self.open(row.clone()));
                    groups.len() - 1
                }
            };
            let accs = &mut groups[g].accs;
            self.fold(accs, &row, &ecx, &mut args, out);
        }
        // With GROUP BY columns an empty window has no group: nothing is sent.
        if groups.is_empty() {
            return;
        }
        let rows = groups.into_iter().map(|g| self.finish(Some(g), ts, out)).collect();
        out.data(Batch::emission(rows, window));
    }
}
