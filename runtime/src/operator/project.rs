//! SELECT: rows to output maps, with LIMIT per emission.

use std::sync::Arc;

use crate::expr::{BatchSite, EvalContext, Expr, Layout};
use crate::functions::FuncError;
use crate::operator::{Operator, Output, RuleContext};
use crate::row::{Batch, Row};
use crate::state::{codec, StateResult};
use crate::value::{Map, Value};

/// Where an item's key lands. eKuiper builds the output in three layers —
/// picked columns (and `*`), then unaliased expressions, then aliases —
/// each overwriting the one before, whatever the SELECT order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// A plain column or `*`.
    Column,
    /// An unaliased expression (`a + 1`, `abs(x)`); a null is never sent.
    Expr,
    /// `... AS name`.
    Alias,
}

/// One output item, compiled.
pub enum ProjectItem {
    /// `expr [AS name]`.
    Expr {
        /// Output key.
        name: String,
        /// Value.
        expr: Expr,
        /// Hidden (`INVISIBLE`).
        invisible: bool,
        /// Emit null instead of omitting the key (`sendNilField`, for
        /// columns and aliases).
        keep_null: bool,
        /// Output layer.
        layer: Layer,
    },
    /// `*` of some sources.
    Wildcard {
        /// Sources, earlier wins.
        sources: Vec<u16>,
        /// Keys left out.
        except: Vec<String>,
        /// Keys computed instead.
        replace: Vec<(String, Expr)>,
    },
    /// `changed_cols(prefix, ignoreNull, cols...)`: `<prefix><name>` for
    /// each column whose value changed since the last event.
    ChangedCols {
        /// Key prefix.
        prefix: String,
        /// Nulls neither count as changes nor replace the stored value.
        ignore_null: bool,
        /// Column names and values.
        cols: Vec<(String, Expr)>,
        /// Last value seen per column.
        last: std::collections::HashMap<String, Value>,
    },
    /// `unnest(array)`: one output row per element.
    Unnest {
        /// Key for non-map elements.
        name: String,
        /// The array.
        expr: Expr,
    },
}

/// Builds the output rows. Each output row is a [`Row`] whose only slot is
/// the output map; a row source tag is kept for the sink.
pub struct ProjectOp {
    items: Vec<ProjectItem>,
    /// Calls with a batch form (model inference), evaluated once per batch.
    batch_sites: Vec<Arc<BatchSite>>,
    layout: Arc<Layout>,
    limit: Option<usize>,
    cx: RuleContext,
}

impl ProjectOp {
    /// Projection of `items` with an optional LIMIT.
    pub fn new(items: Vec<ProjectItem>, layout: Arc<Layout>, limit: Option<usize>, cx: RuleContext) -> ProjectOp {
        let mut batch_sites = Vec::new();
        for item in &items {
            match item {
                ProjectItem::Expr { expr, .. } | ProjectItem::Unnest { expr, .. } => expr.batch_sites(&mut batch_sites),
                ProjectItem::Wildcard { replace, .. } => {
                    replace.iter().for_each(|(_, e)| e.batch_sites(&mut batch_sites))
                }
                ProjectItem::ChangedCols { cols, .. } => cols.iter().for_each(|(_, e)| e.batch_sites(&mut batch_sites)),
            }
        }
        ProjectOp { items, batch_sites, layout, limit, cx }
    }

    /// Evaluates the batch calls of `rows` together; rows of a window
    /// emission are numbered from 1, single events are each number 1.
    fn prefetch(&self, rows: &[Row], base: &EvalContext<'_>, windowed: bool) {
        if self.batch_sites.is_empty() || rows.len() < 2 {
            return;
        }
        for site in &self.batch_sites {
            site.prefetch(rows, |i| EvalContext {
                row_number: if windowed { i + 1 } else { 1 },
                batch_index: Some(i),
                ..*base
            });
        }
    }

    fn clear_prefetch(&self) {
        self.batch_sites.iter().for_each(|s| s.clear());
    }

    /// The output rows of one input row (several with `unnest`).
    fn project(&mut self, row: &Row, ecx: &EvalContext<'_>, out_rows: &mut Vec<Row>) -> Result<(), FuncError> {
        // The three layers, merged in order at the end.
        let mut layers: [Map; 3] = [Map::new(), Map::new(), Map::new()];
        let mut unnest: Option<(String, Value)> = None;
        for item in &mut self.items {
            match item {
                ProjectItem::Expr { name, expr, invisible, keep_null, layer } => {
                    let v = expr.eval(row, ecx)?;
                    // A column whose key the message had with a null value
                    // is picked as null (eKuiper's Tuple.Pick finds it).
                    let present = *layer == Layer::Column && v.is_null() && present_null(row, expr);
                    if *invisible || (v.is_null() && !*keep_null && !present) {
                        continue;
                    }
                    layers[*layer as usize].insert(name.clone(), v);
                }
                ProjectItem::Wildcard { sources, except, replace } => {
                    let m = &mut layers[Layer::Column as usize];
                    self.layout.row_into_map(row, sources, m);
                    present_nulls_into(&self.layout, row, sources, m);
                    for k in except.iter() {
                        m.remove(k);
                    }
                    for (k, e) in replace.iter() {
                        let v = e.eval(row, ecx)?;
                        if v.is_null() {
                            m.remove(k);
                        } else {
                            m.insert(k.clone(), v);
                        }
                    }
                }
                ProjectItem::ChangedCols { prefix, ignore_null, cols, last } => {
                    for (name, e) in cols.iter() {
                        let v = e.eval(row, ecx)?;
                        if v.is_null() && *ignore_null {
                            continue;
                        }
                        if last.get(name) != Some(&v) {
                            last.insert(name.clone(), v.clone());
                            if !v.is_null() {
                                layers[Layer::Expr as usize].insert(format!("{prefix}{name}"), v);
                            }
                        }
                    }
                }
                ProjectItem::Unnest { name, expr } => unnest = Some((name.clone(), expr.eval(row, ecx)?)),
            }
        }
        let [mut m, exprs, aliases] = layers;
        m.extend(exprs);
        m.extend(aliases);
        let ts = row.ts;
        match unnest {
            None => out_rows.push(output_row(m, ts)),
            Some((_, Value::Null)) => {}
            Some((name, Value::Array(items))) => {
                for item in items.iter() {
                    let mut r = m.clone();
                    match item {
                        Value::Map(obj) => r.extend(obj.iter().map(|(k, v)| (k.clone(), v.clone()))),
                        v => {
                            r.insert(name.clone(), v.clone());
                        }
                    }
                    out_rows.push(output_row(r, ts));
                }
            }
            Some((_, v)) => {
                return Err(FuncError::new(format!(
                    "the argument for the unnest function should be array, got {}",
                    v.type_name()
                )))
            }
        }
        Ok(())
    }

    fn has_unnest(&self) -> bool {
        self.items.iter().any(|i| matches!(i, ProjectItem::Unnest { .. }))
    }
}

fn output_row(m: Map, ts: i64) -> Row {
    Row { slots: vec![Value::map(m)], ts, source: 0, nulls: None }
}

/// Whether a column item reads a slot that holds a null present in the
/// message.
fn present_null(row: &Row, expr: &Expr) -> bool {
    match expr {
        _ if row.nulls.is_none() => false,
        Expr::Slot(s) => row.is_present_null(*s),
        Expr::AnySlot(slots) => slots.iter().any(|s| row.is_present_null(*s)),
        _ => false,
    }
}

/// Adds the explicit nulls of `sources` to a `*` output: present-null
/// columns, and null-valued keys the schema does not declare (eKuiper keeps
/// both in the message). Keys already set by another source stay.
fn present_nulls_into(layout: &Layout, row: &Row, sources: &[u16], m: &mut Map) {
    let Some(nulls) = &row.nulls else { return };
    for &s in sources {
        let Some(src) = layout.sources.get(s as usize) else { continue };
        for (name, slot) in &src.columns {
            if row.is_present_null(*slot) && !m.contains_key(&**name) {
                m.insert(name.to_string(), Value::Null);
            }
        }
    }
    if sources.contains(&row.source) {
        for k in &nulls.keys {
            m.entry(k.clone()).or_insert(Value::Null);
        }
    }
}

/// Checkpointed state: `changed_cols` memories and hit counters.
type ProjectState = (Vec<Vec<(String, Value)>>, Vec<(i64, i64)>);

impl Operator for ProjectOp {
    /// The state of `changed_cols` items and the rule's `last_hit_*`
    /// counters (the projection is the last stage to read them).
    fn snapshot(&self) -> StateResult<Option<Vec<u8>>> {
        let changed: Vec<Vec<(&String, &Value)>> = self
            .items
            .iter()
            .filter_map(|i| match i {
                ProjectItem::ChangedCols { last, .. } => {
                    let mut v: Vec<_> = last.iter().collect();
                    v.sort_by(|a, b| a.0.cmp(b.0));
                    Some(v)
                }
                _ => None,
            })
            .collect();
        let hits = self.layout.hit_values();
        if changed.is_empty() && hits.is_empty() {
            return Ok(None);
        }
        codec::encode(&(changed, hits)).map(Some)
    }

    fn restore(&mut self, bytes: &[u8]) -> StateResult<()> {
        let (changed, hits): ProjectState = codec::decode(bytes, "project")?;
        let mut changed = changed.into_iter();
        for item in &mut self.items {
            if let ProjectItem::ChangedCols { last, .. } = item {
                *last = changed.next().unwrap_or_default().into_iter().collect();
            }
        }
        self.layout.set_hit_values(&hits);
        Ok(())
    }

    fn process(&mut self, _input: usize, batch: Batch, now: i64, out: &mut Output) {
        let cx = self.cx.clone();
        let mut ecx = cx.eval(now, batch.window);
        if self.limit == Some(0) {
            return;
        }
        let mut rows = Vec::with_capacity(batch.rows.len());
        match batch.window {
            None => {
                self.prefetch(&batch.rows, &ecx, false);
                for (i, row) in batch.rows.iter().enumerate() {
                    ecx.row_number = 1;
                    ecx.batch_index = Some(i);
                    let before = rows.len();
                    if let Err(e) = self.project(row, &ecx, &mut rows) {
                        out.error(e);
                        continue;
                    }
                    // LIMIT caps the rows unnest makes of one event.
                    if let Some(limit) = self.limit {
                        rows.truncate(before + limit);
                    }
                }
                self.clear_prefetch();
                out.data(Batch::events(rows));
            }
            Some(w) => {
                // With unnest, eKuiper cuts the input to LIMIT rows before
                // expanding them, then cuts the result again.
                let take = match (self.limit, self.has_unnest()) {
                    (Some(limit), true) => limit.min(batch.rows.len()),
                    _ => batch.rows.len(),
                };
                self.prefetch(&batch.rows[..take], &ecx, true);
                for (i, row) in batch.rows[..take].iter().enumerate() {
                    ecx.row_number += 1;
                    ecx.batch_index = Some(i);
                    if let Err(e) = self.project(row, &ecx, &mut rows) {
                        // One failing row fails the whole emission.
                        self.clear_prefetch();
                        out.error(e);
                        return;
                    }
                }
                self.clear_prefetch();
                if let Some(limit) = self.limit {
                    rows.truncate(limit);
                }
                out.data(Batch::emission(rows, w));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use weir_planner::PExpr;

    use super::*;
    use crate::expr::compile;
    use crate::functions::{FuncResult, Registry};
    use crate::row::Message;

    /// A projection calls a batch function once per batch, with every
    /// row's arguments, and each row gets its own result; a row whose
    /// arguments fail fails alone.
    #[test]
    fn batch_functions_see_the_whole_batch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let mut reg = Registry::with_builtins();
        reg.batch_scalar(
            "double_all",
            1,
            Some(1),
            Arc::new(move |_, rows: &[Vec<Value>]| -> Vec<FuncResult> {
                seen.fetch_add(1, Ordering::SeqCst);
                rows.iter().map(|r| Ok(Value::Int(r[0].as_i64().unwrap_or(0) * 2))).collect()
            }),
            None,
        );
        let layout = Arc::new(Layout::default());
        // double_all(slot0 / slot1): the division fails for a zero divisor.
        let arg = PExpr::Binary {
            op: weir_planner::ast::BinOp::Div,
            left: Box::new(PExpr::Slot(0)),
            right: Box::new(PExpr::Slot(1)),
        };
        let call = PExpr::Call { func: "double_all".into(), args: vec![arg] };
        let expr = compile(&call, &reg, &layout).unwrap();
        let item =
            ProjectItem::Expr { name: "d".into(), expr, invisible: false, keep_null: false, layer: Layer::Alias };
        let cx = RuleContext { rule_id: Arc::from("r"), start_ms: 0 };
        let mut op = ProjectOp::new(vec![item], layout, None, cx);
        let rows: Vec<Row> = [(10, 1), (6, 2), (1, 0), (9, 3)]
            .iter()
            .map(|&(a, b)| Row { slots: vec![Value::Int(a), Value::Int(b)], ts: 0, source: 0, nulls: None })
            .collect();
        let mut out = Output::default();
        op.process(0, Batch::events(rows), 0, &mut out);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        let Some(Message::Data(b)) = out.messages.first() else { panic!("no output") };
        let d: Vec<Value> = b.rows.iter().map(|r| r.slots[0].as_map().unwrap().get("d").cloned().unwrap()).collect();
        assert_eq!(d, vec![Value::Int(20), Value::Int(6), Value::Int(6)]);
    }
}
