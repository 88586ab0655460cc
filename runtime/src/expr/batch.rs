//! Calls of functions with a batch form (model inference), evaluated for
//! all rows of a batch in one call before the rows are projected one by one.
//!
//! A [`BatchSite`] is one such call in a compiled expression. The projection
//! asks every site to [`BatchSite::prefetch`] its results for the batch; the
//! per-row evaluation then takes the prefetched result of its row
//! ([`EvalContext::batch_index`]). Anywhere else (WHERE, a row the prefetch
//! did not see) the call runs on its own row, with the same results.

use std::sync::{Arc, Mutex, PoisonError};

use crate::expr::{EvalContext, Expr};
use crate::functions::{BatchFn, FuncError, FuncResult, ScalarFn};
use crate::row::Row;
use crate::value::Value;

/// One call of a batch-capable function.
pub struct BatchSite {
    /// The function name, for errors.
    pub name: Arc<str>,
    scalar: ScalarFn,
    batch: BatchFn,
    args: Vec<Expr>,
    /// Results by row position in the current batch; empty between batches.
    prefetched: Mutex<Vec<Option<FuncResult>>>,
}

impl BatchSite {
    /// A call of `name` with its row form, its batch form and its arguments.
    pub fn new(name: Arc<str>, scalar: ScalarFn, batch: BatchFn, args: Vec<Expr>) -> BatchSite {
        BatchSite { name, scalar, batch, args, prefetched: Mutex::new(Vec::new()) }
    }

    /// The arguments, to find nested sites.
    pub fn args(&self) -> &[Expr] {
        &self.args
    }

    /// Evaluates the call for one row: the prefetched result when there is
    /// one, else a call of the row form.
    pub fn eval(&self, row: &Row, cx: &EvalContext<'_>) -> Result<Value, FuncError> {
        if let Some(i) = cx.batch_index {
            let mut pre = self.prefetched.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = pre.get_mut(i).and_then(Option::take) {
                return r;
            }
        }
        let mut vals = Vec::with_capacity(self.args.len());
        for a in &self.args {
            vals.push(a.eval(row, cx)?);
        }
        (self.scalar)(&cx.func, &vals)
    }

    /// Evaluates the arguments of every row (with the context `cx_of`
    /// gives for row `i`) and calls the batch form once for the rows whose
    /// arguments evaluated; rows whose arguments failed keep their error.
    pub fn prefetch<'a>(&self, rows: &[Row], cx_of: impl Fn(usize) -> EvalContext<'a>) {
        let mut results: Vec<Option<FuncResult>> = Vec::with_capacity(rows.len());
        let mut arg_rows = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let cx = cx_of(i);
            match self.args.iter().map(|a| a.eval(row, &cx)).collect::<Result<Vec<Value>, _>>() {
                Ok(args) => {
                    arg_rows.push(args);
                    positions.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !arg_rows.is_empty() {
            let out = (self.batch)(&cx_of(0).func, &arg_rows);
            if out.len() != arg_rows.len() {
                let e =
                    FuncError::new(format!("{} returned {} results for {} rows", self.name, out.len(), arg_rows.len()));
                for &i in &positions {
                    results[i] = Some(Err(e.clone()));
                }
            } else {
                for (i, r) in positions.into_iter().zip(out) {
                    results[i] = Some(r);
                }
            }
        }
        *self.prefetched.lock().unwrap_or_else(PoisonError::into_inner) = results;
    }

    /// Drops the results of the batch.
    pub fn clear(&self) {
        self.prefetched.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl Expr {
    /// The batch call sites in this expression, innermost first, so that a
    /// site's arguments can use the prefetched results of the sites inside
    /// them.
    pub fn batch_sites(&self, out: &mut Vec<Arc<BatchSite>>) {
        self.for_each_child(&mut |c| c.batch_sites(out));
        if let Expr::BatchCall(site) = self {
            for a in site.args() {
                a.batch_sites(out);
            }
            out.push(site.clone());
        }
    }

    /// Calls `f` on each direct sub-expression (not the arguments of batch
    /// calls, which [`Expr::batch_sites`] visits itself).
    fn for_each_child(&self, f: &mut dyn FnMut(&Expr)) {
        match self {
            Expr::Lit(_)
            | Expr::Slot(_)
            | Expr::AnySlot(_)
            | Expr::Row(..)
            | Expr::Meta(..)
            | Expr::Context(_)
            | Expr::Hit(..)
            | Expr::BatchCall(_) => {}
            Expr::Binary(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                f(a);
                f(b);
            }
            Expr::Not(a) | Expr::Neg(a) | Expr::Arrow(a, _) | Expr::HitGate(_, _, a) => f(a),
            Expr::Call(_, _, args) => args.iter().for_each(f),
            Expr::Case(v, whens, otherwise) => {
                v.iter().for_each(|e| f(e));
                for (w, t) in whens {
                    f(w);
                    f(t);
                }
                otherwise.iter().for_each(|e| f(e));
            }
            Expr::InList(e, list, _) => {
                f(e);
                list.iter().for_each(f);
            }
            Expr::InArray(a, b, _) | Expr::Like(a, b, _) | Expr::Index(a, b) => {
                f(a);
                f(b);
            }
            Expr::Between(a, b, c, _) => {
                f(a);
                f(b);
                f(c);
            }
            Expr::Slice(e, s, t) => {
                f(e);
                s.iter().for_each(|e| f(e));
                t.iter().for_each(|e| f(e));
            }
        }
    }
}
