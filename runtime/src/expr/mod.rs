//! Compiled expressions: a plan's [`PExpr`] with function implementations
//! resolved once, evaluated per row with plain calls on slots.

mod batch;
mod ops;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use weir_planner::ast::{BinOp, Literal};
use weir_planner::{ContextValue, HitKind, PExpr, PhysicalPlan};

use crate::functions::{check_arity, FuncContext, FuncError, FunctionImpl, Registry, ScalarFn};

use crate::row::{Row, WindowRange};
use crate::value::{Map, Value};
pub use batch::BatchSite;

pub(crate) use ops::{binary, like};

/// Where each source's columns sit in a row, to rebuild rows as maps
/// (`*`, `collect(*)`, wildcard output), and the rule-wide state that
/// expressions share (`last_hit_*`).
#[derive(Debug, Default)]
pub struct Layout {
    /// Per source: (column name, slot) pairs, and the whole-message slot.
    pub sources: Vec<SourceLayout>,
    /// `last_hit_*` call sites: (hit count, last hit time).
    pub hits: Vec<(AtomicI64, AtomicI64)>,
}

/// The columns of one source.
#[derive(Debug, Default)]
pub struct SourceLayout {
    /// Column names and slots.
    pub columns: Vec<(Arc<str>, usize)>,
    /// Slot of the whole decoded message, for schemaless `*`.
    pub all_slot: Option<usize>,
    /// Slot of the metadata map.
    pub meta_slot: Option<usize>,
}

impl Layout {
    /// The layout of a plan's sources.
    pub fn of(plan: &PhysicalPlan) -> Layout {
        Layout {
            sources: plan
                .sources
                .iter()
                .map(|s| SourceLayout {
                    columns: s.columns.iter().map(|c| (Arc::from(c.name.as_str()), c.slot as usize)).collect(),
                    all_slot: s.all_slot.map(|x| x as usize),
                    meta_slot: s.meta_slot.map(|x| x as usize),
                })
                .collect(),
            hits: (0..plan.hit_sites).map(|_| (AtomicI64::new(0), AtomicI64::new(0))).collect(),
        }
    }

    /// The `last_hit_*` counters: (count, time) per call site.
    pub fn hit_values(&self) -> Vec<(i64, i64)> {
        self.hits.iter().map(|(c, t)| (c.load(Ordering::Relaxed), t.load(Ordering::Relaxed))).collect()
    }

    /// Restores the `last_hit_*` counters.
    pub fn set_hit_values(&self, values: &[(i64, i64)]) {
        for ((c, t), (cv, tv)) in self.hits.iter().zip(values) {
            c.store(*cv, Ordering::Relaxed);
            t.store(*tv, Ordering::Relaxed);
        }
    }

    /// Adds the columns of `sources` of `row` to `out`; earlier sources win
    /// on name collisions (eKuiper: the FROM stream wins). Null columns are
    /// left out, as a missing field is.
    pub fn row_into_map(&self, row: &Row, sources: &[u16], out: &mut Map) {
        for &s in sources.iter().rev() {
            let Some(src) = self.sources.get(s as usize) else { continue };
            if let Some(Value::Map(all)) = src.all_slot.and_then(|i| row.slots.get(i)) {
                for (k, v) in all.iter() {
                    out.insert(k.clone(), v.clone());
                }
            }
            for (name, slot) in &src.columns {
                match row.slots.get(*slot) {
                    Some(Value::Null) | None => {}
                    Some(v) => {
                        out.insert(name.to_string(), v.clone());
                    }
                }
            }
        }
    }
}

/// What an expression may read besides the row.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// Function context (rule id, clock time).
    pub func: FuncContext<'a>,
    /// The emission's window, if any.
    pub window: Option<WindowRange>,
    /// Position of the row in its emission, from 1.
    pub row_number: usize,
    /// Position of the row in the batch being projected, when batch calls
    /// were prefetched for it (see [`BatchSite`]).
    pub batch_index: Option<usize>,
}

/// A compiled expression.
#[derive(Clone)]
pub enum Expr {
    /// Constant.
    Lit(Value),
    /// Slot read.
    Slot(usize),
    /// First non-null slot.
    AnySlot(Vec<usize>),
    /// Binary operator (not AND/OR).
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Short-circuit AND.
    And(Box<Expr>, Box<Expr>),
    /// Short-circuit OR.
    Or(Box<Expr>, Box<Expr>),
    /// NOT.
    Not(Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// Scalar function call.
    Call(Arc<str>, ScalarFn, Vec<Expr>),
    /// Call of a function with a batch form.
    BatchCall(Arc<BatchSite>),
    /// CASE.
    Case(Option<Box<Expr>>, Vec<(Expr, Expr)>, Option<Box<Expr>>),
    /// IN (list).
    InList(Box<Expr>, Vec<Expr>, bool),
    /// IN array.
    InArray(Box<Expr>, Box<Expr>, bool),
    /// BETWEEN.
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    /// LIKE.
    Like(Box<Expr>, Box<Expr>, bool),
    /// `->`.
    Arrow(Box<Expr>, Arc<str>),
    /// `[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `[a:b]`.
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    /// Row as map.
    Row(Arc<Layout>, Vec<u16>),
    /// Metadata lookup.
    Meta(Option<usize>, Vec<String>),
    /// Context value.
    Context(ContextValue),
    /// `last_hit_*` read (and update when the flag is set).
    Hit(Arc<Layout>, usize, HitKind, bool),
    /// A condition recording hits when true.
    HitGate(Arc<Layout>, Vec<usize>, Box<Expr>),
}

/// Compiles a plan expression against the registry.
///
/// # Errors
/// A function the registry does not know or that is not scalar.
pub fn compile(e: &PExpr, registry: &Registry, layout: &Arc<Layout>) -> Result<Expr, FuncError> {
    let c = |e: &PExpr| compile(e, registry, layout).map(Box::new);
    let opt = |e: &Option<Box<PExpr>>| -> Result<Option<Box<Expr>>, FuncError> {
        match e {
            Some(e) => Ok(Some(c(e)?)),
            None => Ok(None),
        }
    };
    Ok(match e {
        PExpr::Lit(l) => Expr::Lit(literal(l)),
        PExpr::Slot(s) => Expr::Slot(*s as usize),
        PExpr::AnySlot(v) => Expr::AnySlot(v.iter().map(|s| *s as usize).collect()),
        PExpr::Binary { op: BinOp::And, left, right } => Expr::And(c(left)?, c(right)?),
        PExpr::Binary { op: BinOp::Or, left, right } => Expr::Or(c(left)?, c(right)?),
        PExpr::Binary { op, left, right } => Expr::Binary(*op, c(left)?, c(right)?),
        PExpr::Not(e) => Expr::Not(c(e)?),
        PExpr::Neg(e) => Expr::Neg(c(e)?),
        PExpr::Call { func, args } => {
            let def = registry.get(func).ok_or_else(|| FuncError::new(format!("function {func} not found")))?;
            check_arity(def, args.len())?;
            let FunctionImpl::Scalar(f) = &def.imp else {
                return Err(FuncError::new(format!("function {func} cannot be used here")));
            };
            let args = args.iter().map(|a| compile(a, registry, layout)).collect::<Result<_, _>>()?;
            match &def.batch {
                Some(b) => {
                    Expr::BatchCall(Arc::new(BatchSite::new(Arc::from(func.as_str()), f.clone(), b.clone(), args)))
                }
                None => Expr::Call(Arc::from(func.as_str()), f.clone(), args),
            }
        }
        PExpr::Case { value, whens, otherwise } => Expr::Case(
            opt(value)?,
            whens
                .iter()
                .map(|(w, t)| Ok((compile(w, registry, layout)?, compile(t, registry, layout)?)))
                .collect::<Result<_, FuncError>>()?,
            opt(otherwise)?,
        ),
        PExpr::InList { expr, list, negated } => Expr::InList(
            c(expr)?,
            list.iter().map(|a| compile(a, registry, layout)).collect::<Result<_, _>>()?,
            *negated,
        ),
        PExpr::InArray { expr, array, negated } => Expr::InArray(c(expr)?, c(array)?, *negated),
        PExpr::Between { expr, low, high, negated } => Expr::Between(c(expr)?, c(low)?, c(high)?, *negated),
        PExpr::Like { expr, pattern, negated } => Expr::Like(c(expr)?, c(pattern)?, *negated),
        PExpr::Arrow { expr, key } => Expr::Arrow(c(expr)?, Arc::from(key.as_str())),
        PExpr::Index { expr, index } => Expr::Index(c(expr)?, c(index)?),
        PExpr::Slice { expr, start, end } => Expr::Slice(c(expr)?, opt(start)?, opt(end)?),
        PExpr::Row(sources) => Expr::Row(layout.clone(), sources.clone()),
        PExpr::Meta { source, path } => {
            Expr::Meta(layout.sources.get(*source as usize).and_then(|s| s.meta_slot), path.clone())
        }
        PExpr::Context(v) => Expr::Context(*v),
        PExpr::Hit { site, kind, update } => Expr::Hit(layout.clone(), *site as usize, *kind, *update),
        PExpr::HitGate { sites, cond } => {
            Expr::HitGate(layout.clone(), sites.iter().map(|s| *s as usize).collect(), c(cond)?)
        }
    })
}

/// A plan literal as a value.
pub fn literal(l: &Literal) -> Value {
    match l {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(f) => Value::Float(*f),
        Literal::String(s) => Value::str(s),
    }
}

impl Expr {
    /// Evaluates the expression on a row.
    ///
    /// # Errors
    /// Type mismatches, division by zero, failing functions: the caller
    /// drops the row and counts the exception.
    pub fn eval(&self, row: &Row, cx: &EvalContext<'_>) -> Result<Value, FuncError> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Slot(s) => row.slots.get(*s).cloned().unwrap_or(Value::Null),
            Expr::AnySlot(v) => {
                v.iter().filter_map(|s| row.slots.get(*s)).find(|x| !x.is_null()).cloned().unwrap_or(Value::Null)
            }
            Expr::Binary(op, l, r) => ops::binary(*op, &l.eval(row, cx)?, &r.eval(row, cx)?)?,
            // eKuiper short-circuits only a false left side of AND and a
            // true left side of OR; otherwise both sides go through the
            // operator, where a null makes the result false.
            Expr::And(l, r) => {
                let a = l.eval(row, cx)?;
                if a == Value::Bool(false) {
                    return Ok(a);
                }
                ops::binary(BinOp::And, &a, &r.eval(row, cx)?)?
            }
            Expr::Or(l, r) => {
                let a = l.eval(row, cx)?;
                if a == Value::Bool(true) {
                    return Ok(a);
                }
                ops::binary(BinOp::Or, &a, &r.eval(row, cx)?)?
            }
            Expr::Not(e) => match e.eval(row, cx)? {
                Value::Bool(b) => Value::Bool(!b),
                Value::Null => Value::Bool(true),
                v => return Err(FuncError::new(format!("NOT expects a boolean, got {}", v.type_name()))),
            },
            Expr::Neg(e) => match e.eval(row, cx)? {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::Float(f) => Value::Float(-f),
                Value::Null => Value::Null,
                v => return Err(FuncError::new(format!("cannot negate {}", v.type_name()))),
            },
            Expr::Call(_, f, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(a.eval(row, cx)?);
                }
                f(&cx.func, &vals)?
            }
            Expr::BatchCall(site) => site.eval(row, cx)?,
            Expr::Case(value, whens, otherwise) => {
                let v = match value {
                    Some(v) => Some(v.eval(row, cx)?),
                    None => None,
                };
                for (w, t) in whens {
                    let w = w.eval(row, cx)?;
                    let hit = match &v {
                        Some(v) => ops::binary(BinOp::Eq, v, &w)
                            .map_err(|e| FuncError::new(format!("evaluate case expression error: {e}")))?,
                        None => w,
                    };
                    if hit.is_true() {
                        return t.eval(row, cx);
                    }
                }
                match otherwise {
                    Some(o) => o.eval(row, cx)?,
                    None => Value::Null,
                }
            }
            Expr::InList(e, list, negated) => {
                let v = e.eval(row, cx)?;
                let mut set = Vec::with_capacity(list.len());
                for item in list {
                    set.push(item.eval(row, cx)?);
                }
                in_set(&v, Some(&set), *negated)?
            }
            Expr::InArray(e, arr, negated) => {
                let v = e.eval(row, cx)?;
                let a = arr.eval(row, cx)?;
                in_set(&v, a.as_array(), *negated)?
            }
            Expr::Between(e, lo, hi, negated) => {
                let v = e.eval(row, cx)?;
                let (l, h) = (lo.eval(row, cx)?, hi.eval(row, cx)?);
                if v.is_null() {
                    return Ok(Value::Bool(false));
                }
                let cannot = |b: &Value| {
                    FuncError::new(format!("between operator cannot compare {} and {}", v.to_text(), b.to_text()))
                };
                let ge = ops::binary(BinOp::GtEq, &v, &l).map_err(|_| cannot(&l))?;
                let le = ops::binary(BinOp::LtEq, &v, &h).map_err(|_| cannot(&h))?;
                Value::Bool((ge.is_true() && le.is_true()) != *negated)
            }
            Expr::Like(e, p, negated) => {
                let v = e.eval(row, cx)?;
                let p = p.eval(row, cx)?;
                let Value::String(s) = &v else {
                    return Err(FuncError::new(format!(
                        "LIKE operator left operand expects string, but found {}",
                        v.to_text()
                    )));
                };
                let Value::String(pat) = &p else {
                    return Err(FuncError::new(format!(
                        "LIKE operator right operand expects string, but found {}",
                        p.to_text()
                    )));
                };
                Value::Bool(like(s, pat) != *negated)
            }
            Expr::Arrow(e, key) => arrow(&e.eval(row, cx)?, key)?,
            Expr::Index(e, i) => index(&e.eval(row, cx)?, &i.eval(row, cx)?)?,
            Expr::Slice(e, s, t) => {
                let v = e.eval(row, cx)?;
                let s = match s {
                    Some(s) => Some(s.eval(row, cx)?),
                    None => None,
                };
                let t = match t {
                    Some(t) => Some(t.eval(row, cx)?),
                    None => None,
                };
                slice(&v, s.as_ref(), t.as_ref())?
            }
            Expr::Row(layout, sources) => {
                let mut m = Map::new();
                layout.row_into_map(row, sources, &mut m);
                Value::map(m)
            }
            Expr::Meta(slot, path) => {
                let mut v = slot.and_then(|s| row.slots.get(s)).cloned().unwrap_or(Value::Null);
                for k in path {
                    v = match &v {
                        Value::Map(m) => m.get(k).cloned().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                }
                v
            }
            Expr::Context(c) => match c {
                ContextValue::WindowStart => cx.window.map(|w| Value::Int(w.start)).unwrap_or(Value::Int(0)),
                ContextValue::WindowEnd => cx.window.map(|w| Value::Int(w.end)).unwrap_or(Value::Int(0)),
                ContextValue::WindowTrigger => cx.window.map(|w| Value::Int(w.trigger)).unwrap_or(Value::Int(0)),
                ContextValue::EventTime => Value::Int(row.ts),
                ContextValue::RowNumber => Value::Int(cx.row_number as i64),
                ContextValue::RuleId => Value::str(cx.func.rule_id),
                ContextValue::RuleStart => Value::Int(cx.func.rule_start_ms),
                ContextValue::SourceIndex => Value::Int(row.source as i64),
            },
            Expr::Hit(layout, site, kind, update) => {
                let Some((count, time)) = layout.hits.get(*site) else { return Ok(Value::Null) };
                let v = match kind {
                    HitKind::Count => count.load(Ordering::Relaxed),
                    HitKind::Time => time.load(Ordering::Relaxed),
                };
                if *update {
                    record_hit(layout, *site, row.ts);
                }
                Value::Int(v)
            }
            Expr::HitGate(layout, sites, cond) => {
                let v = cond.eval(row, cx)?;
                if v.is_true() {
                    for s in sites {
                        record_hit(layout, *s, row.ts);
                    }
                }
                v
            }
        })
    }
}

fn record_hit(layout: &Layout, site: usize, ts: i64) {
    if let Some((count, time)) = layout.hits.get(site) {
        count.fetch_add(1, Ordering::Relaxed);
        time.store(ts, Ordering::Relaxed);
    }
}

/// eKuiper's IN: a missing set (not an array) gives IN false / NOT IN
/// true; a null value gives false; elements compare with `=`, whose type
/// errors fail the row.
fn in_set(v: &Value, set: Option<&[Value]>, negated: bool) -> Result<Value, FuncError> {
    let Some(set) = set else { return Ok(Value::Bool(negated)) };
    if v.is_null() {
        return Ok(Value::Bool(false));
    }
    for item in set {
        let eq = ops::binary(BinOp::Eq, v, item)
            .map_err(|e| FuncError::new(format!("evaluate in expression error: {e}")))?;
        if eq.is_true() {
            return Ok(Value::Bool(!negated));
        }
    }
    Ok(Value::Bool(negated))
}

fn arrow(v: &Value, key: &str) -> Result<Value, FuncError> {
    match v {
        Value::Map(m) => Ok(m.get(key).cloned().unwrap_or(Value::Null)),
        Value::Null => Ok(Value::Null),
        other => {
            Err(FuncError::new(format!("the result {} is not a type of map[string]interface{{}}", other.to_text())))
        }
    }
}

/// `v[i]`: arrays only (negative counts from the end), null stays null.
fn index(v: &Value, i: &Value) -> Result<Value, FuncError> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Array(a) => {
            let n = i.as_i64().ok_or_else(|| FuncError::new(format!("invalid evaluation result - {}", i.to_text())))?;
            Ok(a[resolve_index(n, a.len(), "out of index")?].clone())
        }
        other => Err(FuncError::new(format!("[] is an invalid operation for {}", other.type_name()))),
    }
}

fn resolve_index(n: i64, len: usize, what: &str) -> Result<usize, FuncError> {
    let len_i = len as i64;
    let idx = if n < 0 { n + len_i } else { n };
    if idx < 0 || idx >= len_i {
        return Err(FuncError::new(format!("{what}: {n} of {len}")));
    }
    Ok(idx as usize)
}

/// `v[a:b]` as eKuiper's `subset`: arrays only; equal bounds index one
/// element; the start must be inside the array and the end within it.
fn slice(v: &Value, start: Option<&Value>, end: Option<&Value>) -> Result<Value, FuncError> {
    let a = match v {
        Value::Null => return Ok(Value::Null),
        Value::Array(a) => a,
        other => return Err(FuncError::new(format!("[:] is an invalid operation for {}", other.type_name()))),
    };
    let bound = |b: Option<&Value>| -> Result<Option<i64>, FuncError> {
        match b {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_i64()
                .map(Some)
                .ok_or_else(|| FuncError::new(format!("invalid evaluation result - {}", x.to_text()))),
        }
    };
    let s = bound(start)?.unwrap_or(0);
    let e = bound(end)?;
    if e == Some(s) {
        return Ok(a[resolve_index(s, a.len(), "out of index")?].clone());
    }
    let len = a.len() as i64;
    let s = if s < 0 { resolve_index(s, a.len(), "out of index")? as i64 } else { s };
    if s >= len {
        return Err(FuncError::new(format!("start value is out of index: {s} of {len}")));
    }
    let e = match e {
        None => len,
        Some(e) if e < 0 => resolve_index(e, a.len(), "out of index")? as i64,
        Some(e) if e > len => return Err(FuncError::new(format!("end value is out of index: {e} of {len}"))),
        Some(e) => e,
    };
    if s >= e {
        return Err(FuncError::new(format!("start cannot be greater than end. start:{s}  end:{e}")));
    }
    Ok(Value::array(a[s as usize..e as usize].to_vec()))
}
