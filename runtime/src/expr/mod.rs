//! Compiled expressions: a plan's [`PExpr`] with function implementations
//! resolved once, evaluated per row with plain calls on slots.

mod ops;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use weir_planner::ast::{BinOp, Literal};
use weir_planner::{ContextValue, HitKind, PExpr, PhysicalPlan};

use crate::functions::{check_arity, FuncContext, FuncError, FunctionImpl, Registry, ScalarFn};
use crate::row::{Row, WindowRange};
use crate::value::{Map, Value};

pub(crate) use ops::like;

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
            Expr::Call(Arc::from(func.as_str()), f.clone(), args)
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
            Expr::AnySlot(v) => v
                .iter()
                .filter_map(|s| row.slots.get(*s))
                .find(|x| !x.is_null())
                .cloned()
                .unwrap_or(Value::Null),
            Expr::Binary(op, l, r) => ops::binary(*op, &l.eval(row, cx)?, &r.eval(row, cx)?)?,
            Expr::And(l, r) => {
                let a = truth(&l.eval(row, cx)?, "AND")?;
                Value::Bool(a && truth(&r.eval(row, cx)?, "AND")?)
            }
            Expr::Or(l, r) => {
                let a = truth(&l.eval(row, cx)?, "OR")?;
                Value::Bool(a || truth(&r.eval(row, cx)?, "OR")?)
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
            Expr::Case(value, whens, otherwise) => {
                let v = match value {
                    Some(v) => Some(v.eval(row, cx)?),
                    None => None,
                };
                for (w, t) in whens {
                    let hit = match &v {
                        Some(v) => v.sql_eq(&w.eval(row, cx)?),
                        None => w.eval(row, cx)?.is_true(),
                    };
                    if hit {
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
                if v.is_null() {
                    return Ok(Value::Bool(false));
                }
                let mut found = false;
                for item in list {
                    if v.sql_eq(&item.eval(row, cx)?) {
                        found = true;
                        break;
                    }
                }
                Value::Bool(found != *negated)
            }
            Expr::InArray(e, arr, negated) => {
                let v = e.eval(row, cx)?;
                let a = arr.eval(row, cx)?;
                if v.is_null() {
                    return Ok(Value::Bool(false));
                }
                let found = match &a {
                    Value::Array(items) => items.iter().any(|x| v.sql_eq(x)),
                    Value::Null => false,
                    other => return Err(FuncError::new(format!("IN expects an array, got {}", other.type_name()))),
                };
                Value::Bool(found != *negated)
            }
            Expr::Between(e, lo, hi, negated) => {
                let v = e.eval(row, cx)?;
                let (l, h) = (lo.eval(row, cx)?, hi.eval(row, cx)?);
                if v.is_null() || l.is_null() || h.is_null() {
                    return Ok(Value::Bool(false));
                }
                let ge = ops::binary(BinOp::GtEq, &v, &l)?.is_true();
                let le = ops::binary(BinOp::LtEq, &v, &h)?.is_true();
                Value::Bool((ge && le) != *negated)
            }
            Expr::Like(e, p, negated) => {
                let v = e.eval(row, cx)?;
                let p = p.eval(row, cx)?;
                match (&v, &p) {
                    (Value::Null, _) | (_, Value::Null) => Value::Bool(false),
                    (Value::String(s), Value::String(pat)) => Value::Bool(like(s, pat) != *negated),
                    _ => {
                        return Err(FuncError::new(format!(
                            "LIKE expects strings, got {} LIKE {}",
                            v.type_name(),
                            p.type_name()
                        )))
                    }
                }
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

fn truth(v: &Value, op: &str) -> Result<bool, FuncError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        v => Err(FuncError::new(format!("{op} expects booleans, got {} {}", v.type_name(), v.to_text()))),
    }
}

fn arrow(v: &Value, key: &str) -> Result<Value, FuncError> {
    match v {
        Value::Map(m) => Ok(m.get(key).cloned().unwrap_or(Value::Null)),
        Value::Null => Ok(Value::Null),
        Value::Array(_) => Err(FuncError::new(format!("cannot read key {key} of an array"))),
        other => Err(FuncError::new(format!("cannot read key {key} of {} {}", other.type_name(), other.to_text()))),
    }
}

fn index(v: &Value, i: &Value) -> Result<Value, FuncError> {
    match (v, i) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Array(a), i) => {
            let n = i
                .as_i64()
                .ok_or_else(|| FuncError::new(format!("array index must be an integer, got {}", i.type_name())))?;
            let len = a.len() as i64;
            let idx = if n < 0 { len + n } else { n };
            if idx < 0 || idx >= len {
                return Err(FuncError::new(format!("out of index: {n} of length {len}")));
            }
            Ok(a[idx as usize].clone())
        }
        (Value::Map(m), Value::String(k)) => Ok(m.get(k.as_ref()).cloned().unwrap_or(Value::Null)),
        (other, _) => Err(FuncError::new(format!("cannot index {} {}", other.type_name(), other.to_text()))),
    }
}

fn slice(v: &Value, start: Option<&Value>, end: Option<&Value>) -> Result<Value, FuncError> {
    let len = match v {
        Value::Array(a) => a.len(),
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Null => return Ok(Value::Null),
        other => return Err(FuncError::new(format!("cannot slice {}", other.type_name()))),
    } as i64;
    let bound = |b: Option<&Value>, default: i64| -> Result<i64, FuncError> {
        match b {
            None | Some(Value::Null) => Ok(default),
            Some(x) => {
                let n = x
                    .as_i64()
                    .ok_or_else(|| FuncError::new(format!("slice bound must be an integer, got {}", x.type_name())))?;
                Ok(if n < 0 { len + n } else { n })
            }
        }
    };
    let (s, e) = (bound(start, 0)?, bound(end, len)?);
    if s < 0 || e > len || s > e {
        return Err(FuncError::new(format!("out of index: [{s}:{e}] of length {len}")));
    }
    let (s, e) = (s as usize, e as usize);
    Ok(match v {
        Value::Array(a) => Value::array(a[s..e].to_vec()),
        Value::String(st) => match st.get(s..e) {
            Some(sub) => Value::str(sub),
            None => return Err(FuncError::new("slice splits a multi-byte character")),
        },
        Value::Bytes(b) => Value::bytes(b[s..e].to_vec()),
        _ => Value::Null,
    })
}
