//! WHERE and HAVING.

use crate::expr::Expr;
use crate::functions::FuncError;
use crate::operator::{Operator, Output, RuleContext};
use crate::row::Batch;
use crate::value::Value;

/// Keeps the rows for which the condition is true.
///
/// On independent events a failing row is dropped alone. On a window
/// emission eKuiper drops the whole emission when the condition fails on
/// any row, and sends nothing when no row passes.
pub struct FilterOp {
    cond: Expr,
    cx: RuleContext,
    /// HAVING: only emissions are valid input (eKuiper's having operator
    /// fails on single events, so a HAVING without a window passes nothing).
    having: bool,
}

impl FilterOp {
    /// A WHERE filter on `cond`.
    pub fn new(cond: Expr, cx: RuleContext) -> FilterOp {
        FilterOp { cond, cx, having: false }
    }

    /// A HAVING filter on `cond`.
    pub fn having(cond: Expr, cx: RuleContext) -> FilterOp {
        FilterOp { cond, cx, having: true }
    }
}

impl Operator for FilterOp {
    fn process(&mut self, _input: usize, mut batch: Batch, now: i64, out: &mut Output) {
        if self.having && batch.window.is_none() {
            for _ in &batch.rows {
                out.error("run Having error: invalid input, HAVING needs a window");
            }
            return;
        }
        let mut ecx = self.cx.eval(now, batch.window);
        let mut err = None;
        batch.rows.retain(|row| {
            if err.is_some() && batch.window.is_some() {
                return false;
            }
            ecx.row_number += 1;
            let r = self.cond.eval(row, &ecx).and_then(|v| match v {
                Value::Bool(b) => Ok(b),
                Value::Null => Ok(false),
                v => Err(FuncError::new(format!(
                    "run Where error: invalid condition that returns non-bool value {}",
                    v.to_text()
                ))),
            });
            match r {
                Ok(b) => b,
                Err(e) => {
                    if batch.window.is_some() {
                        err = Some(e);
                    } else {
                        out.error(e);
                    }
                    false
                }
            }
        });
        if batch.window.is_some() {
            if let Some(e) = err {
                out.error(e);
                return;
            }
            if batch.rows.is_empty() {
                return;
            }
        }
        out.data(batch);
    }
}
