//! ORDER BY within one emission.

use std::cmp::Ordering;

use crate::expr::Expr;
use crate::operator::{Operator, Output, RuleContext};
use crate::row::Batch;
use crate::value::Value;

/// Sorts the rows of each emission by the keys.
pub struct OrderOp {
    keys: Vec<(Expr, bool)>,
    cx: RuleContext,
}

impl OrderOp {
    /// Sorts by `keys` (expression, descending).
    pub fn new(keys: Vec<(Expr, bool)>, cx: RuleContext) -> OrderOp {
        OrderOp { keys, cx }
    }
}

impl Operator for OrderOp {
    fn process(&mut self, _input: usize, batch: Batch, now: i64, out: &mut Output) {
        let ecx = self.cx.eval(now, batch.window);
        let mut keyed = Vec::with_capacity(batch.rows.len());
        for row in batch.rows {
            let mut k = Vec::with_capacity(self.keys.len());
            for (e, _) in &self.keys {
                match e.eval(&row, &ecx) {
                    Ok(v) => k.push(v),
                    Err(err) => {
                        out.error(err);
                        k.push(Value::Null);
                    }
                }
            }
            keyed.push((k, row));
        }
        // Stable: equal keys keep arrival order.
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, (_, desc)) in self.keys.iter().enumerate() {
                let o = a[i].total_cmp(&b[i]);
                if o != Ordering::Equal {
                    return if *desc { o.reverse() } else { o };
                }
            }
            Ordering::Equal
        });
        out.data(Batch { rows: keyed.into_iter().map(|(_, r)| r).collect(), window: batch.window });
    }
}
