//! Analytic functions (`lag`, `acc_sum`, ...), evaluated on every event
//! before WHERE and windows, as eKuiper does.

use std::collections::HashMap;

use crate::expr::Expr;
use crate::functions::{go_v, AnalyticFactory, AnalyticState, FuncError};
use crate::operator::{Operator, Output, RuleContext};
use crate::row::{Batch, Row};
use crate::state::{codec, StateResult};
use crate::value::Value;

/// One analytic call site with its per-partition state.
pub struct AnalyticSite {
    /// Creates the state of a new partition.
    pub factory: AnalyticFactory,
    /// Arguments.
    pub args: Vec<Expr>,
    /// `PARTITION BY` keys.
    pub partition: Vec<Expr>,
    /// `WHEN` condition.
    pub when: Option<Expr>,
    /// Slot receiving the result.
    pub slot: usize,
    states: HashMap<String, Box<dyn AnalyticState>>,
}

impl AnalyticSite {
    /// A call site.
    pub fn new(
        factory: AnalyticFactory,
        args: Vec<Expr>,
        partition: Vec<Expr>,
        when: Option<Expr>,
        slot: usize,
    ) -> Self {
        AnalyticSite { factory, args, partition, when, slot, states: HashMap::new() }
    }

    fn eval(&mut self, row: &Row, cx: &crate::expr::EvalContext<'_>) -> Result<Value, FuncError> {
        // eKuiper keys partitions by the values' `%v`, concatenated.
        let mut key = String::new();
        for p in &self.partition {
            key.push_str(&go_v(&p.eval(row, cx)?));
        }
        // Only a boolean false skips: null and other values count as valid.
        let valid = match &self.when {
            Some(w) => w.eval(row, cx)? != Value::Bool(false),
            None => true,
        };
        let mut args = Vec::with_capacity(self.args.len());
        for a in &self.args {
            args.push(a.eval(row, cx)?);
        }
        let factory = &self.factory;
        let state = self.states.entry(key).or_insert_with(|| factory());
        if valid {
            state.call(&args)
        } else {
            state.call_skipped(&args)
        }
    }
}

/// Evaluates every analytic call site on each event, in order, writing
/// each result to its slot (later sites may read earlier ones).
pub struct AnalyticOp {
    sites: Vec<AnalyticSite>,
    cx: RuleContext,
}

impl AnalyticOp {
    /// The operator for these call sites.
    pub fn new(sites: Vec<AnalyticSite>, cx: RuleContext) -> AnalyticOp {
        AnalyticOp { sites, cx }
    }
}

impl Operator for AnalyticOp {
    fn snapshot(&self) -> StateResult<Option<Vec<u8>>> {
        let mut sites = Vec::with_capacity(self.sites.len());
        for site in &self.sites {
            let mut parts: Vec<(&String, Vec<u8>)> = Vec::with_capacity(site.states.len());
            for (k, st) in &site.states {
                parts.push((k, st.save()?));
            }
            parts.sort_by(|a, b| a.0.cmp(b.0));
            sites.push(parts);
        }
        codec::encode(&sites).map(Some)
    }

    fn restore(&mut self, bytes: &[u8]) -> StateResult<()> {
        let sites: Vec<Vec<(String, Vec<u8>)>> = codec::decode(bytes, "analytic")?;
        for (site, parts) in self.sites.iter_mut().zip(sites) {
            site.states.clear();
            for (k, b) in parts {
                let mut st = (site.factory)();
                st.load(&b)?;
                site.states.insert(k, st);
            }
        }
        Ok(())
    }

    fn process(&mut self, _input: usize, mut batch: Batch, now: i64, out: &mut Output) {
        let ecx = self.cx.eval(now, batch.window);
        batch.rows.retain_mut(|row| {
            for site in &mut self.sites {
                match site.eval(row, &ecx) {
                    Ok(v) => {
                        if let Some(cell) = row.slots.get_mut(site.slot) {
                            *cell = v;
                        }
                    }
                    Err(e) => {
                        out.error(e);
                        return false;
                    }
                }
            }
            true
        });
        out.data(batch);
    }
}
