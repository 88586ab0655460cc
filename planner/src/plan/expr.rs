//! Bound expressions: column names resolved to row slots, functions
//! checked against the registry. This is what the runtime evaluates.

use serde::{Deserialize, Serialize};

use crate::ast::{BinOp, Literal};

/// A bound expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PExpr {
    /// A constant.
    Lit(Literal),
    /// The value in a row slot.
    Slot(u32),
    /// The first non-null of several slots: an unqualified column of
    /// schemaless joined streams, bound at run time as eKuiper does.
    AnySlot(Vec<u32>),
    /// `l op r`.
    Binary {
        /// Operator.
        op: BinOp,
        /// Left operand.
        left: Box<PExpr>,
        /// Right operand.
        right: Box<PExpr>,
    },
    /// `NOT e`.
    Not(Box<PExpr>),
    /// `-e`.
    Neg(Box<PExpr>),
    /// A scalar function call.
    Call {
        /// Registered (lower-case for built-ins) name.
        func: String,
        /// Arguments.
        args: Vec<PExpr>,
    },
    /// `CASE`.
    Case {
        /// Compared value of the simple form.
        value: Option<Box<PExpr>>,
        /// `WHEN`/`THEN` pairs.
        whens: Vec<(PExpr, PExpr)>,
        /// `ELSE`.
        otherwise: Option<Box<PExpr>>,
    },
    /// `e [NOT] IN (list)`.
    InList {
        /// Tested value.
        expr: Box<PExpr>,
        /// Candidates.
        list: Vec<PExpr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] IN arrayExpr`.
    InArray {
        /// Tested value.
        expr: Box<PExpr>,
        /// The array.
        array: Box<PExpr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high`.
    Between {
        /// Tested value.
        expr: Box<PExpr>,
        /// Lower bound.
        low: Box<PExpr>,
        /// Upper bound.
        high: Box<PExpr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `e [NOT] LIKE pattern`.
    Like {
        /// Tested value.
        expr: Box<PExpr>,
        /// Pattern.
        pattern: Box<PExpr>,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `e->key`.
    Arrow {
        /// Object.
        expr: Box<PExpr>,
        /// Key.
        key: String,
    },
    /// `e[i]`.
    Index {
        /// Array or map.
        expr: Box<PExpr>,
        /// Index or key.
        index: Box<PExpr>,
    },
    /// `e[a:b]`.
    Slice {
        /// Array or string.
        expr: Box<PExpr>,
        /// Start.
        start: Option<Box<PExpr>>,
        /// End (exclusive).
        end: Option<Box<PExpr>>,
    },
    /// The whole row of some sources as a map (`*` as an argument).
    Row(Vec<u16>),
    /// The metadata of a source (`meta(key)`); `None` key is `meta(*)`.
    Meta {
        /// Which source.
        source: u16,
        /// The key path (`meta(a->b)` is `["a", "b"]`).
        path: Vec<String>,
    },
    /// A value from the evaluation context.
    Context(ContextValue),
    /// `last_hit_count()` / `last_hit_time()` (and the `last_agg_hit_*`
    /// forms): rule state of call site `site`. With `update` the call
    /// returns the value and then records a hit (SELECT); without, it only
    /// reads (inside a condition, whose [`PExpr::HitGate`] records hits).
    Hit {
        /// Call site.
        site: u32,
        /// Count or time.
        kind: HitKind,
        /// Record a hit after reading.
        update: bool,
    },
    /// A condition that records a hit on `sites` each time it is true.
    HitGate {
        /// Sites to update.
        sites: Vec<u32>,
        /// The condition.
        cond: Box<PExpr>,
    },
}

/// What a hit function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HitKind {
    /// How many hits so far.
    Count,
    /// Event time of the last hit, ms (0 before any).
    Time,
}

/// Values read from the emission or rule context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContextValue {
    /// `window_start()`, ms.
    WindowStart,
    /// `window_end()`, ms.
    WindowEnd,
    /// `window_trigger()`, ms.
    WindowTrigger,
    /// `event_time()`: the row's timestamp, ms.
    EventTime,
    /// `row_number()` without OVER: position within the emission, from 1.
    RowNumber,
    /// `rule_id()`.
    RuleId,
    /// `rule_start()`, ms.
    RuleStart,
    /// Index of the source a row came from (for per-source filters pushed
    /// below a join's window).
    SourceIndex,
}

impl PExpr {
    /// Rewrites every slot number with `f` (used to place aggregate slots
    /// once the row width is known).
    pub fn map_slots(&mut self, f: &dyn Fn(u32) -> u32) {
        match self {
            PExpr::Slot(s) => *s = f(*s),
            PExpr::AnySlot(v) => v.iter_mut().for_each(|s| *s = f(*s)),
            PExpr::Lit(_) | PExpr::Row(_) | PExpr::Meta { .. } | PExpr::Context(_) | PExpr::Hit { .. } => {}
            PExpr::HitGate { cond, .. } => cond.map_slots(f),
            PExpr::Binary { left, right, .. } => {
                left.map_slots(f);
                right.map_slots(f);
            }
            PExpr::Not(e) | PExpr::Neg(e) | PExpr::Arrow { expr: e, .. } => e.map_slots(f),
            PExpr::Call { args, .. } => args.iter_mut().for_each(|a| a.map_slots(f)),
            PExpr::Case { value, whens, otherwise } => {
                if let Some(v) = value {
                    v.map_slots(f);
                }
                for (w, t) in whens {
                    w.map_slots(f);
                    t.map_slots(f);
                }
                if let Some(o) = otherwise {
                    o.map_slots(f);
                }
            }
            PExpr::InList { expr, list, .. } => {
                expr.map_slots(f);
                list.iter_mut().for_each(|e| e.map_slots(f));
            }
            PExpr::InArray { expr, array: b, .. }
            | PExpr::Like { expr, pattern: b, .. }
            | PExpr::Index { expr, index: b } => {
                expr.map_slots(f);
                b.map_slots(f);
            }
            PExpr::Between { expr, low, high, .. } => {
                expr.map_slots(f);
                low.map_slots(f);
                high.map_slots(f);
            }
            PExpr::Slice { expr, start, end } => {
                expr.map_slots(f);
                if let Some(s) = start {
                    s.map_slots(f);
                }
                if let Some(e) = end {
                    e.map_slots(f);
                }
            }
        }
    }

    /// Calls `f` on this expression and all sub-expressions.
    pub fn visit(&self, f: &mut dyn FnMut(&PExpr)) {
        f(self);
        match self {
            PExpr::Lit(_)
            | PExpr::Slot(_)
            | PExpr::AnySlot(_)
            | PExpr::Row(_)
            | PExpr::Meta { .. }
            | PExpr::Hit { .. }
            | PExpr::Context(_) => {}
            PExpr::HitGate { cond, .. } => cond.visit(f),
            PExpr::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            PExpr::Not(e) | PExpr::Neg(e) | PExpr::Arrow { expr: e, .. } => e.visit(f),
            PExpr::Call { args, .. } => args.iter().for_each(|a| a.visit(f)),
            PExpr::Case { value, whens, otherwise } => {
                if let Some(v) = value {
                    v.visit(f);
                }
                for (w, t) in whens {
                    w.visit(f);
                    t.visit(f);
                }
                if let Some(o) = otherwise {
                    o.visit(f);
                }
            }
            PExpr::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            PExpr::InArray { expr, array: b, .. }
            | PExpr::Like { expr, pattern: b, .. }
            | PExpr::Index { expr, index: b } => {
                expr.visit(f);
                b.visit(f);
            }
            PExpr::Between { expr, low, high, .. } => {
                expr.visit(f);
                low.visit(f);
                high.visit(f);
            }
            PExpr::Slice { expr, start, end } => {
                expr.visit(f);
                if let Some(s) = start {
                    s.visit(f);
                }
                if let Some(e) = end {
                    e.visit(f);
                }
            }
        }
    }
}
