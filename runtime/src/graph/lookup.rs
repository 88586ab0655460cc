//! Joins with lookup tables (`KIND="lookup"`): the table is queried by key
//! for the rows that arrive, instead of being held in memory.
//!
//! This stage is asynchronous, so it is its own actor: for each batch it
//! computes the key of every row, answers what it can from its cache, asks
//! the [`Lookup`] for the rest (one call per batch and table), then joins.
//! A failed query drops the batch with an exception on the rule; the rule
//! keeps running and recovers when the table's store does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use weir_planner::ast::JoinKind;

use super::actor::{rows_of, Edge, Msg};
use crate::clock::Clock;
use crate::connector::{CachePolicy, Lookup, LookupError};
use crate::decode::Decoder;
use crate::expr::Expr;
use crate::metrics::OpMetrics;
use crate::operator::RuleContext;
use crate::row::{Batch, Message, Row, WindowRange};
use crate::value::{Map, Value};

/// One lookup join step, compiled.
pub(crate) struct LookupStep {
    pub(crate) kind: JoinKind,
    pub(crate) source: u16,
    pub(crate) columns: Vec<String>,
    pub(crate) values: Vec<Expr>,
    pub(crate) on: Option<Expr>,
    /// Turns the table's rows into row slots.
    pub(crate) decoder: Decoder,
}

/// What the lookup stage does, shared with its queries.
pub(crate) struct LookupSpec {
    pub(crate) steps: Vec<LookupStep>,
    /// Slots of each source, to merge table rows into joined rows.
    pub(crate) source_slots: Vec<Vec<usize>>,
    pub(crate) cx: RuleContext,
}

/// Cached answers per step: key -> (rows, when cached).
type Cache = HashMap<Vec<Value>, (Vec<Map>, i64)>;

/// A lookup table's connector, cache policy and cache.
pub(crate) type Table = (Box<dyn Lookup>, CachePolicy, Cache);

/// The lookup join actor.
pub(crate) struct LookupActor {
    pub(crate) spec: Arc<LookupSpec>,
    pub(crate) tables: Arc<tokio::sync::Mutex<Vec<Table>>>,
    pub(crate) downstream: Vec<Edge>,
    /// Deal data round-robin over `downstream` (parallel instances).
    pub(crate) split: bool,
    pub(crate) dealt: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<OpMetrics>,
    pub(crate) mailbox: usize,
}

impl Actor for LookupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

/// Joins one group of rows (an emission, or one event) step by step.
async fn join_rows(
    spec: &LookupSpec,
    tables: &mut [Table],
    rows: Vec<Row>,
    window: Option<WindowRange>,
    now: i64,
) -> Result<Vec<Row>, LookupError> {
    let ecx = spec.cx.eval(now, window);
    let mut current = rows;
    for (step, (lookup, policy, cache)) in spec.steps.iter().zip(tables.iter_mut()) {
        let mut keys = Vec::with_capacity(current.len());
        for row in &current {
            let mut k = Vec::with_capacity(step.values.len());
            for e in &step.values {
                k.push(e.eval(row, &ecx).map_err(|e| LookupError(e.to_string()))?);
            }
            keys.push(k);
        }
        // Ask only for keys the cache cannot answer, once each.
        let fresh = |at: i64| policy.ttl_ms == 0 || now - at < policy.ttl_ms;
        let mut missing: Vec<Vec<Value>> = Vec::new();
        for k in &keys {
            let cached = policy.enabled && cache.get(k).is_some_and(|(_, at)| fresh(*at));
            if !cached && !missing.contains(k) {
                missing.push(k.clone());
            }
        }
        let mut answers: HashMap<Vec<Value>, Vec<Map>> = HashMap::new();
        if !missing.is_empty() {
            let found = lookup.lookup(&step.columns, &missing).await?;
            for (k, rows) in missing.into_iter().zip(found) {
                if policy.enabled && (policy.cache_missing || !rows.is_empty()) {
                    cache.insert(k.clone(), (rows.clone(), now));
                }
                answers.insert(k, rows);
            }
        }
        let slots = spec.source_slots.get(step.source as usize).cloned().unwrap_or_default();
        let mut next = Vec::new();
        for (row, k) in current.into_iter().zip(keys) {
            let table_rows = answers.get(&k).or_else(|| cache.get(&k).map(|(r, _)| r));
            let mut matched = false;
            for t in table_rows.into_iter().flatten() {
                let t = step.decoder.decode_map(t, row.ts).map_err(|e| LookupError(e.to_string()))?;
                let mut merged = row.clone();
                for &s in &slots {
                    if let (Some(dst), Some(src)) = (merged.slots.get_mut(s), t.slots.get(s)) {
                        *dst = src.clone();
                    }
                }
                merged.copy_present_nulls(&t, &slots);
                let ok = match &step.on {
                    Some(on) => on.eval(&merged, &ecx).map_err(|e| LookupError(e.to_string()))?.is_true(),
                    None => true,
                };
                if ok {
                    matched = true;
                    next.push(merged);
                }
            }
            if !matched && step.kind == JoinKind::Left {
                next.push(row);
            }
        }
        current = next;
    }
    Ok(current)
}

impl Handler<Msg> for LookupActor {
    type Result = ();

    fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) {
        let Message::Data(batch) = msg.message else {
            // Time and control pass through in order.
            self.forward(vec![msg.message], ctx);
            return;
        };
        let (spec, tables, clock, metrics) =
            (self.spec.clone(), self.tables.clone(), self.clock.clone(), self.metrics.clone());
        let rows_in = batch.rows.len() as u64;
        let started = Instant::now();
        let work = async move {
            let now = clock.now_ms();
            let mut tables = tables.lock().await;
            let mut out = Vec::new();
            match batch.window {
                Some(w) => match join_rows(&spec, &mut tables, batch.rows, Some(w), now).await {
                    Ok(rows) if !rows.is_empty() => out.push(Message::Data(Batch::emission(rows, w))),
                    Ok(_) => {}
                    Err(e) => metrics.exception(&format!("lookup failed: {e}"), now),
                },
                None => {
                    for row in batch.rows {
                        match join_rows(&spec, &mut tables, vec![row], None, now).await {
                            Ok(rows) if !rows.is_empty() => {
                                out.push(Message::Data(Batch::emission(rows, WindowRange::default())))
                            }
                            Ok(_) => {}
                            Err(e) => metrics.exception(&format!("lookup failed: {e}"), now),
                        }
                    }
                }
            }
            let rows_out = out.iter().map(rows_of).sum();
            metrics.processed(rows_in, rows_out, started.elapsed().as_micros() as i64, now);
            out
        };
        ctx.wait(work.into_actor(self).map(|out, act, ctx| act.forward(out, ctx)));
    }
}

impl LookupActor {
    /// Sends messages downstream, waiting for room (backpressure).
    fn forward(&mut self, messages: Vec<Message>, ctx: &mut Context<Self>) {
        if messages.is_empty() || self.downstream.is_empty() {
            return;
        }
        let mut sends = Vec::new();
        for m in messages {
            if self.split && matches!(m, Message::Data(_)) {
                sends.push((self.downstream[self.dealt % self.downstream.len()].clone(), m));
                self.dealt += 1;
            } else {
                for e in &self.downstream {
                    sends.push((e.clone(), m.clone()));
                }
            }
        }
        ctx.wait(
            async move {
                for (e, m) in sends {
                    let _ = e.to.send(Msg { input: e.input, message: m }).await;
                }
            }
            .into_actor(self),
        );
    }
}
