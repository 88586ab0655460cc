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

impl AggregateOp {
    /// Aggregates with result slots starting at `base`.
    pub fn new(keys: Vec<Expr>, sites: Vec<AggregateSite>, base: usize, cx: RuleContext) -> AggregateOp {
        AggregateOp { keys, sites, base, cx }
    }

    fn finish_group(&self, rows: &[Row], ecx: &EvalContext<'_>, ts: i64, out: &mut Output) -> Row {
        let mut accs: Vec<Box<dyn Accumulator>> = self.sites.iter().map(|s| (s.factory)()).collect();
        for row in rows {
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
                let mut args = Vec::with_capacity(site.args.len());
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
                    if let Err(e) = acc.update(&args) {
                        out.error(e);
                    }
                }
            }
        }
        let mut result = match rows.first() {
            Some(r) => Row { slots: r.slots.clone(), ts, source: r.source, nulls: r.nulls.clone() },
            None => Row::new(self.base, ts, 0),
        };
        result.slots.resize(self.base, Value::Null);
        for acc in &accs {
            // eKuiper calls aggregates of an empty window with no values,
            // which gives nil for all of them.
            let v = if rows.is_empty() {
                Value::Null
            } else {
                acc.finish().unwrap_or_else(|e| {
                    out.error(e);
                    Value::Null
                })
            };
            result.slots.push(v);
        }
        result
    }
}

impl Operator for AggregateOp {
    fn process(&mut self, _input: usize, batch: Batch, now: i64, out: &mut Output) {
        let ecx = self.cx.eval(now, batch.window);
        let Some(window) = batch.window else {
            let rows = batch.rows.iter().map(|r| self.finish_group(std::slice::from_ref(r), &ecx, r.ts, out)).collect();
            out.data(Batch::events(rows));
            return;
        };
        let ts = window.end;
        if self.keys.is_empty() {
            let row = self.finish_group(&batch.rows, &ecx, ts, out);
            out.data(Batch::emission(vec![row], window));
            return;
        }
        // Groups in order of first appearance, for deterministic output.
        let mut index: HashMap<Vec<Value>, usize> = HashMap::new();
        let mut groups: Vec<Vec<Row>> = Vec::new();
        for row in batch.rows {
            let mut key = Vec::with_capacity(self.keys.len());
            let mut failed = false;
            for k in &self.keys {
                match k.eval(&row, &ecx) {
                    Ok(v) => key.push(v),
                    Err(e) => {
                        out.error(e);
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                continue;
            }
            let next = groups.len();
            let g = *index.entry(key).or_insert(next);
            if g == next {
                groups.push(Vec::new());
            }
            groups[g].push(row);
        }
        // With GROUP BY columns an empty window has no group: nothing is sent.
        if groups.is_empty() {
            return;
        }
        let rows = groups.iter().map(|g| self.finish_group(g, &ecx, ts, out)).collect();
        out.data(Batch::emission(rows, window));
    }
}
