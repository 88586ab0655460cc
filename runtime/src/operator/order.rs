//! ORDER BY within one emission, as eKuiper's sorter: nulls last in both
//! directions, a tie of nulls ends the comparison, and keys must be of one
//! comparable type per key (numbers, booleans, strings or times).

use crate::expr::{EvalContext, Expr};
use crate::functions::FuncError;
use crate::operator::{Operator, Output, RuleContext};
use crate::row::{Batch, Row};
use crate::value::Value;
use weir_planner::ast::BinOp;

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

    /// The sort keys of every row, checked against the first non-null
    /// type of each key.
    fn key_values(&self, rows: &[Row], ecx: &EvalContext<'_>) -> Result<Vec<Vec<Value>>, FuncError> {
        let mut kinds: Vec<Option<&'static str>> = vec![None; self.keys.len()];
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            let mut k = Vec::with_capacity(self.keys.len());
            for (j, (e, _)) in self.keys.iter().enumerate() {
                let v = e.eval(row, ecx)?;
                if let Some(kind) = sort_kind(&v)? {
                    match kinds[j] {
                        None => kinds[j] = Some(kind),
                        Some(first) if first != kind => {
                            return Err(FuncError::new(format!(
                                "incompatible types for comparison: {first} and {kind}"
                            )))
                        }
                        Some(_) => {}
                    }
                }
                k.push(v);
            }
            all.push(k);
        }
        Ok(all)
    }

    /// eKuiper's `MultiSorter.Less`.
    fn less(&self, p: &[Value], q: &[Value]) -> bool {
        for (j, (_, desc)) in self.keys.iter().enumerate() {
            let (vp, vq) = (&p[j], &q[j]);
            match (vp.is_null(), vq.is_null()) {
                (true, false) => return false,
                (false, true) => return true,
                (true, true) => return false,
                _ => {}
            }
            let lt = |a: &Value, b: &Value| crate::expr::binary(BinOp::Lt, a, b).is_ok_and(|v| v.is_true());
            if lt(vp, vq) {
                return !desc;
            }
            if lt(vq, vp) {
                return *desc;
            }
        }
        false
    }
}

/// The comparison family of a value; `None` for null.
fn sort_kind(v: &Value) -> Result<Option<&'static str>, FuncError> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Int(_) | Value::Float(_) => "number",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Datetime(_) => "time",
        other => return Err(FuncError::new(format!("incompatible types for comparison: {}", other.type_name()))),
    }))
}

/// A stable merge sort driven by a `less` that need not be a total order
/// (NaN, null ties): it never panics, whatever the comparator says.
fn merge_sort<T>(items: Vec<T>, less: &dyn Fn(&T, &T) -> bool) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let (left, right) = (merge_sort(left, less), merge_sort(right, less));
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => {
                // Take from the right only when strictly less: stable.
                if less(b, a) {
                    out.extend(r.next());
                } else {
                    out.extend(l.next());
                }
            }
            (Some(_), None) => out.extend(l.next()),
            (None, Some(_)) => out.extend(r.next()),
            (None, None) => return out,
        }
    }
}

impl Operator for OrderOp {
    fn process(&mut self, _input: usize, batch: Batch, now: i64, out: &mut Output) {
        let ecx = self.cx.eval(now, batch.window);
        let keys = match self.key_values(&batch.rows, &ecx) {
            Ok(k) => k,
            Err(e) => {
                // A key that cannot be sorted fails the whole emission.
                out.error(format!("run Order By error: {e}"));
                return;
            }
        };
        let keyed: Vec<(Vec<Value>, Row)> = keys.into_iter().zip(batch.rows).collect();
        let sorted = merge_sort(keyed, &|a, b| self.less(&a.0, &b.0));
        out.data(Batch { rows: sorted.into_iter().map(|(_, r)| r).collect(), ..batch });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sort_is_stable_and_survives_inconsistent_comparators() {
        let v = vec![(1, 'a'), (0, 'b'), (1, 'c'), (0, 'd')];
        assert_eq!(merge_sort(v, &|x, y| x.0 < y.0), vec![(0, 'b'), (0, 'd'), (1, 'a'), (1, 'c')]);
        let nan = vec![f64::NAN, 2.0, 1.0, f64::NAN, 0.5];
        assert_eq!(merge_sort(nan, &|x, y| x < y).len(), 5);
    }
}
