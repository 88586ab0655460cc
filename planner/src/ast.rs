//! The syntax tree of eKuiper SQL, as the parser produces it.

use serde::{Deserialize, Serialize};

use crate::catalog::StreamDef;
use crate::error::Pos;

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE STREAM|TABLE ...`
    Create(Box<StreamDef>),
    /// `DROP STREAM|TABLE name`
    Drop(StreamKind, String),
    /// `DESCRIBE|EXPLAIN STREAM|TABLE name`
    Describe(StreamKind, String),
    /// `SHOW STREAMS|TABLES`
    Show(StreamKind),
    /// A rule query.
    Select(Box<Select>),
}

/// Stream or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamKind {
    /// An unbounded stream of events.
    Stream,
    /// A table: the latest rows of a source, joined by streams.
    Table,
}

impl StreamKind {
    /// `stream` or `table`.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Stream => "stream",
            StreamKind::Table => "table",
        }
    }
}

/// A `SELECT` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// The select list.
    pub fields: Vec<SelectField>,
    /// The `FROM` source.
    pub from: SourceRef,
    /// Joins, in order.
    pub joins: Vec<Join>,
    /// `WHERE`.
    pub condition: Option<Expr>,
    /// `GROUP BY` expressions other than the window.
    pub dimensions: Vec<Expr>,
    /// The window in `GROUP BY`, if any.
    pub window: Option<Window>,
    /// `HAVING`.
    pub having: Option<Expr>,
    /// `ORDER BY`.
    pub order_by: Vec<SortField>,
    /// `LIMIT`.
    pub limit: Option<i64>,
}

/// One item of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectField {
    /// `expr [AS alias] [INVISIBLE]`.
    Expr {
        /// The expression.
        expr: Expr,
        /// `AS` name.
        alias: Option<String>,
        /// Computed but not output.
        invisible: bool,
        /// Where the item starts.
        pos: Pos,
    },
    /// `*` or `s.*`, with `EXCEPT(...)` and `REPLACE(...)`.
    Wildcard {
        /// `s` in `s.*`.
        qualifier: Option<String>,
        /// Columns left out.
        except: Vec<String>,
        /// Columns replaced by expressions.
        replace: Vec<(Expr, String)>,
        /// Where the item starts.
        pos: Pos,
    },
}

/// A stream or table in `FROM` or `JOIN`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRef {
    /// Stream or table name.
    pub name: String,
    /// `AS` alias.
    pub alias: Option<String>,
    /// Where it is named.
    pub pos: Pos,
}

/// Join kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinKind {
    /// `INNER JOIN`
    Inner,
    /// `LEFT JOIN`
    Left,
    /// `RIGHT JOIN`
    Right,
    /// `FULL JOIN`
    Full,
    /// `CROSS JOIN`
    Cross,
}

/// One `JOIN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// Kind.
    pub kind: JoinKind,
    /// The joined source.
    pub source: SourceRef,
    /// `ON` condition (none for CROSS).
    pub on: Option<Expr>,
}

/// `ORDER BY` item.
#[derive(Debug, Clone, PartialEq)]
pub struct SortField {
    /// Sort key.
    pub expr: Expr,
    /// `DESC`.
    pub descending: bool,
}

/// Window kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    /// `TUMBLINGWINDOW(unit, size)`
    Tumbling,
    /// `HOPPINGWINDOW(unit, size, hop)`
    Hopping,
    /// `SLIDINGWINDOW(unit, size[, delay])`
    Sliding,
    /// `SESSIONWINDOW(unit, maxDuration, timeout)`
    Session,
    /// `COUNTWINDOW(n[, m])`
    Count,
    /// `STATEWINDOW(cond)` or `STATEWINDOW(begin, emit)`
    State,
}

/// A window call in `GROUP BY`, with its `FILTER` and `OVER` clauses.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Kind.
    pub kind: WindowKind,
    /// The arguments as written.
    pub args: Vec<Expr>,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Expr>,
    /// `OVER (WHEN ...)` trigger condition (sliding windows).
    pub trigger: Option<Expr>,
    /// `OVER (PARTITION BY ...)` (state windows).
    pub partition: Vec<Expr>,
    /// Where the call is.
    pub pos: Pos,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
    /// `^`
    BitXor,
    /// `=`
    Eq,
    /// `!=` / `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Eq => "=",
            BinOp::NotEq => "!=",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        }
    }
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `NOT x`
    Not,
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// `NULL`? (eKuiper has `nil` only through missing fields; kept for completeness.)
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal.
    String(String),
}

/// `OVER (...)` on a function call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Over {
    /// `PARTITION BY` expressions.
    pub partition_by: Vec<Expr>,
    /// `ORDER BY` (row_number).
    pub order_by: Vec<SortField>,
    /// `WHEN` condition.
    pub when: Option<Box<Expr>>,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Literal(Literal),
    /// A column, optionally qualified by a stream name or alias (`s.a`).
    Column {
        /// `s` in `s.a`.
        qualifier: Option<String>,
        /// Column name.
        name: String,
        /// Where.
        pos: Pos,
    },
    /// `*` as a function argument (`count(*)`).
    Wildcard(Pos),
    /// `l op r`.
    Binary {
        /// Operator.
        op: BinOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
        /// Where the operator is.
        pos: Pos,
    },
    /// `op e`.
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        expr: Box<Expr>,
    },
    /// `f(args) [FILTER (WHERE c)] [OVER (...)]`.
    Call {
        /// Function name as written.
        name: String,
        /// Arguments.
        args: Vec<Expr>,
        /// `FILTER (WHERE ...)` on aggregates.
        filter: Option<Box<Expr>>,
        /// `OVER (...)` on analytic functions and row_number.
        over: Option<Over>,
        /// Where the name is.
        pos: Pos,
    },
    /// `CASE [value] WHEN .. THEN .. [ELSE ..] END`.
    Case {
        /// The compared value, for the simple form.
        value: Option<Box<Expr>>,
        /// `WHEN cond THEN result` pairs.
        whens: Vec<(Expr, Expr)>,
        /// `ELSE`.
        otherwise: Option<Box<Expr>>,
    },
    /// `e [NOT] IN (a, b)` or `e [NOT] IN arrayExpr`.
    In {
        /// Tested value.
        expr: Box<Expr>,
        /// The list (one element that is not parenthesised = array expression).
        list: Vec<Expr>,
        /// Whether the list was written in parentheses.
        parenthesised: bool,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] BETWEEN low AND high`.
    Between {
        /// Tested value.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `e [NOT] LIKE pattern`.
    Like {
        /// Tested value.
        expr: Box<Expr>,
        /// Pattern.
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
        /// Where the operator is.
        pos: Pos,
    },
    /// `e->key`.
    Arrow {
        /// Object.
        expr: Box<Expr>,
        /// Key.
        key: String,
    },
    /// `e[i]`.
    Index {
        /// Array or map.
        expr: Box<Expr>,
        /// Index.
        index: Box<Expr>,
        /// Where the bracket is.
        pos: Pos,
    },
    /// `e[a:b]`.
    Slice {
        /// Array or string.
        expr: Box<Expr>,
        /// Start (inclusive), default 0.
        start: Option<Box<Expr>>,
        /// End (exclusive), default the length.
        end: Option<Box<Expr>>,
        /// Where the bracket is.
        pos: Pos,
    },
    /// `(e)`: kept so that output naming can tell `(a)` from `a`.
    Paren(Box<Expr>),
}

impl Expr {
    /// The position of the expression, where known.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Column { pos, .. }
            | Expr::Wildcard(pos)
            | Expr::Binary { pos, .. }
            | Expr::Call { pos, .. }
            | Expr::Like { pos, .. }
            | Expr::Index { pos, .. }
            | Expr::Slice { pos, .. } => *pos,
            Expr::Unary { expr, .. } | Expr::Arrow { expr, .. } | Expr::Paren(expr) => expr.pos(),
            Expr::In { expr, .. } | Expr::Between { expr, .. } => expr.pos(),
            Expr::Case { whens, .. } => whens.first().map(|(w, _)| w.pos()).unwrap_or_default(),
            Expr::Literal(_) => Pos::default(),
        }
    }

    /// Calls `f` on this expression and every sub-expression, pre-order.
    /// Stops descending where `f` returns false.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr) -> bool) {
        if !f(self) {
            return;
        }
        match self {
            Expr::Literal(_) | Expr::Column { .. } | Expr::Wildcard(_) => {}
            Expr::Binary { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Expr::Unary { expr, .. } | Expr::Arrow { expr, .. } | Expr::Paren(expr) => expr.walk(f),
            Expr::Call { args, filter, over, .. } => {
                args.iter().for_each(|a| a.walk(f));
                if let Some(c) = filter {
                    c.walk(f);
                }
                if let Some(o) = over {
                    o.partition_by.iter().for_each(|p| p.walk(f));
                    if let Some(w) = &o.when {
                        w.walk(f);
                    }
                }
            }
            Expr::Case { value, whens, otherwise } => {
                if let Some(v) = value {
                    v.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Expr::In { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|e| e.walk(f));
            }
            Expr::Between { expr, low, high, .. } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Expr::Index { expr, index, .. } => {
                expr.walk(f);
                index.walk(f);
            }
            Expr::Slice { expr, start, end, .. } => {
                expr.walk(f);
                if let Some(s) = start {
                    s.walk(f);
                }
                if let Some(e) = end {
                    e.walk(f);
                }
            }
        }
    }
}
