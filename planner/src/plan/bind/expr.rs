//! Binding expressions: names to slots, calls to registered functions,
//! aggregates and analytic calls to their own slots.

use super::Binder;
use crate::ast::{BinOp, Expr, Literal, UnaryOp};
use crate::error::{Error, Pos, Result};
use crate::functions::{ArgHint, FunctionKind};
use crate::plan::{literal_json, AggregateCall, AnalyticCall, ContextValue, PExpr};
use crate::types::DataType;

/// Where an expression appears, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clause {
    /// SELECT, HAVING, ORDER BY: aggregates allowed.
    Output,
    /// WHERE, GROUP BY, window FILTER/OVER, JOIN ON, analytic arguments.
    Row,
    /// Inside an aggregate's arguments: no nested aggregates.
    InAggregate,
}

/// Marker base for aggregate slots until the row width is known.
pub(crate) const AGG_MARK: u32 = u32::MAX / 2;

impl Binder<'_> {
    pub(crate) fn bind(&mut self, e: &Expr, clause: Clause) -> Result<PExpr> {
        Ok(match e {
            Expr::Literal(l) => PExpr::Lit(l.clone()),
            Expr::Paren(e) => self.bind(e, clause)?,
            Expr::Column { qualifier, name, pos } => self.column(qualifier.as_deref(), name, *pos, clause)?,
            Expr::Wildcard(pos) => {
                for i in 0..self.scope.sources.len() as u16 {
                    self.scope.expand(i, *pos)?;
                }
                PExpr::Row((0..self.scope.sources.len() as u16).collect())
            }
            Expr::Binary { op, left, right, pos } => {
                let l = self.bind(left, clause)?;
                let r = self.bind(right, clause)?;
                self.check_types(*op, &l, &r, *pos)?;
                PExpr::Binary { op: *op, left: Box::new(l), right: Box::new(r) }
            }
            Expr::Unary { op, expr } => {
                let inner = Box::new(self.bind(expr, clause)?);
                match op {
                    UnaryOp::Neg => PExpr::Neg(inner),
                    UnaryOp::Not => PExpr::Not(inner),
                }
            }
            Expr::Call { .. } => self.call(e, clause)?,
            Expr::Case { value, whens, otherwise } => PExpr::Case {
                value: match value {
                    Some(v) => Some(Box::new(self.bind(v, clause)?)),
                    None => None,
                },
                whens: whens
                    .iter()
                    .map(|(w, t)| Ok((self.bind(w, clause)?, self.bind(t, clause)?)))
                    .collect::<Result<_>>()?,
                otherwise: match otherwise {
                    Some(o) => Some(Box::new(self.bind(o, clause)?)),
                    None => None,
                },
            },
            Expr::In { expr, list, parenthesised, negated } => {
                let x = Box::new(self.bind(expr, clause)?);
                if *parenthesised {
                    let list = list.iter().map(|e| self.bind(e, clause)).collect::<Result<_>>()?;
                    PExpr::InList { expr: x, list, negated: *negated }
                } else {
                    let array = Box::new(self.bind(&list[0], clause)?);
                    PExpr::InArray { expr: x, array, negated: *negated }
                }
            }
            Expr::Between { expr, low, high, negated } => PExpr::Between {
                expr: Box::new(self.bind(expr, clause)?),
                low: Box::new(self.bind(low, clause)?),
                high: Box::new(self.bind(high, clause)?),
                negated: *negated,
            },
            Expr::Like { expr, pattern, negated, pos } => {
                let x = self.bind(expr, clause)?;
                if let Some(t) = self.static_type(&x) {
                    if t != "string" {
                        return Err(Error::plan(*pos, format!("LIKE expects a string operand, got {t}")));
                    }
                }
                PExpr::Like { expr: Box::new(x), pattern: Box::new(self.bind(pattern, clause)?), negated: *negated }
            }
            Expr::Arrow { expr, key } => PExpr::Arrow { expr: Box::new(self.bind(expr, clause)?), key: key.clone() },
            Expr::Index { expr, index, .. } => {
                PExpr::Index { expr: Box::new(self.bind(expr, clause)?), index: Box::new(self.bind(index, clause)?) }
            }
            Expr::Slice { expr, start, end, .. } => PExpr::Slice {
                expr: Box::new(self.bind(expr, clause)?),
                start: match start {
                    Some(s) => Some(Box::new(self.bind(s, clause)?)),
                    None => None,
                },
                end: match end {
                    Some(s) => Some(Box::new(self.bind(s, clause)?)),
                    None => None,
                },
            },
        })
    }

    fn column(&mut self, qualifier: Option<&str>, name: &str, pos: Pos, clause: Clause) -> Result<PExpr> {
        if let Some(q) = qualifier {
            if let Some(i) = self.scope.source_index(q) {
                return Ok(PExpr::Slot(self.scope.column(i, name, pos)?));
            }
            // `a.b` where `a` is not a source: a path into column `a`.
            let base = self.column(None, q, pos, clause)?;
            return Ok(PExpr::Arrow { expr: Box::new(base), key: name.to_string() });
        }
        if let Some(alias_expr) = self.alias_for(name) {
            self.expanding.push(name.to_string());
            let r = self.bind(&alias_expr, clause);
            self.expanding.pop();
            return r;
        }
        self.scope.unqualified(name, pos)
    }

    /// The expression of select alias `name`, unless we are inside it
    /// (`SELECT a + 1 AS a` means the column inside its own expression) or
    /// a schema declares a column of that name.
    fn alias_for(&self, name: &str) -> Option<Expr> {
        if self.expanding.iter().any(|n| n == name) {
            return None;
        }
        self.aliases.iter().find(|(a, _)| a == name).map(|(_, e)| e.clone())
    }

    fn call(&mut self, e: &Expr, clause: Clause) -> Result<PExpr> {
        let Expr::Call { name, args, filter, over, pos } = e else { unreachable!("call() on a non-call") };
        let pos = *pos;
        let lname = name.to_ascii_lowercase();
        if let Some(ctx) = context_value(&lname) {
            if !args.is_empty() {
                return Err(Error::plan(pos, format!("function {lname} takes no arguments")));
            }
            if lname == "row_number" && over.is_some() {
                return Err(Error::plan(pos, "row_number() OVER (...) is not supported yet; use row_number()"));
            }
            return Ok(PExpr::Context(ctx));
        }
        if lname == "meta" || lname == "mqtt" {
            return self.meta(args, pos);
        }
        if let Some(kind) = hit_kind(&lname) {
            if !args.is_empty() {
                return Err(Error::plan(pos, format!("function {lname} takes no arguments")));
            }
            let site = self.hit_sites;
            self.hit_sites += 1;
            let update = match &mut self.gate {
                Some(sites) => {
                    sites.push(site);
                    false
                }
                None => true,
            };
            return Ok(PExpr::Hit { site, kind, update });
        }
        if is_window_name(&lname) {
            return Err(Error::plan(pos, format!("window function {lname} is only allowed in GROUP BY")));
        }
        let sig =
            self.functions.signature(name).ok_or_else(|| Error::plan(pos, format!("function {name} not found")))?;
        let n = args.len();
        if n < sig.min_args || sig.max_args.is_some_and(|m| n > m) {
            let expect = match sig.max_args {
                Some(m) if m == sig.min_args => format!("{m}"),
                Some(m) => format!("{} to {m}", sig.min_args),
                None => format!("at least {}", sig.min_args),
            };
            return Err(Error::plan(pos, format!("function {lname}: expect {expect} arguments but found {n}")));
        }
        let hints: Vec<ArgHint> = args
            .iter()
            .map(|a| match a {
                Expr::Literal(l) => ArgHint::Literal(literal_json(l)),
                Expr::Wildcard(_) => ArgHint::Wildcard,
                _ => ArgHint::Expr,
            })
            .collect();
        self.functions.validate(&sig.name, &hints).map_err(|m| Error::plan(pos, format!("function {lname}: {m}")))?;
        if filter.is_some() && sig.kind != FunctionKind::Aggregate {
            return Err(Error::plan(pos, format!("FILTER is only allowed on aggregate functions, not {lname}")));
        }
        if over.is_some() && sig.kind != FunctionKind::Analytic {
            return Err(Error::plan(pos, format!("OVER is only allowed on analytic functions, not {lname}")));
        }
        match sig.kind {
            FunctionKind::Aggregate => self.aggregate(e, &sig.name, clause, pos),
            FunctionKind::Analytic => self.analytic(e, &sig.name),
            FunctionKind::SetReturning => Err(Error::plan(pos, format!("{lname} must be a select item of its own"))),
            FunctionKind::Context => {
                Err(Error::plan(pos, format!("function {lname} is not supported in this position")))
            }
            FunctionKind::Scalar => {
                let args = args.iter().map(|a| self.bind(a, clause)).collect::<Result<_>>()?;
                Ok(PExpr::Call { func: sig.name, args })
            }
        }
    }

    fn aggregate(&mut self, e: &Expr, func: &str, clause: Clause, pos: Pos) -> Result<PExpr> {
        match clause {
            Clause::Row => {
                return Err(Error::plan(pos, format!("aggregate function {func} is not allowed here")));
            }
            Clause::InAggregate => {
                return Err(Error::plan(pos, format!("aggregate function {func} cannot be nested")));
            }
            Clause::Output => {}
        }
        if let Some(i) = self.aggregates.iter().position(|(ast, _)| ast == e) {
            return Ok(PExpr::Slot(AGG_MARK + i as u32));
        }
        let Expr::Call { args, filter, pos: call_pos, .. } = e else { unreachable!("aggregate() on a non-call") };
        let mut args: Vec<PExpr> = match &args[..] {
            // count(*) only counts rows: no need to decode whole messages.
            [Expr::Wildcard(_)] if func == "count" => vec![PExpr::Row(Vec::new())],
            _ => args.iter().map(|a| self.bind(a, Clause::InAggregate)).collect::<Result<_>>()?,
        };
        if func == "deduplicate" {
            // eKuiper's parser gives deduplicate the whole row as a hidden
            // first argument, after validating the user's two.
            args.insert(0, self.bind(&Expr::Wildcard(*call_pos), Clause::InAggregate)?);
        }
        let filter = match filter {
            Some(f) => Some(self.bind(f, Clause::Row)?),
            None => None,
        };
        self.aggregates.push((e.clone(), AggregateCall { func: func.to_string(), args, filter }));
        Ok(PExpr::Slot(AGG_MARK + self.aggregates.len() as u32 - 1))
    }

    fn analytic(&mut self, e: &Expr, func: &str) -> Result<PExpr> {
        if let Some(a) = self.analytics.iter().find(|(ast, _)| ast == e) {
            return Ok(PExpr::Slot(a.1.slot));
        }
        let Expr::Call { args, over, .. } = e else { unreachable!("analytic() on a non-call") };
        let args = args.iter().map(|a| self.bind(a, Clause::Row)).collect::<Result<_>>()?;
        let (partition, when) = match over {
            Some(o) => (
                o.partition_by.iter().map(|p| self.bind(p, Clause::Row)).collect::<Result<_>>()?,
                match &o.when {
                    Some(w) => Some(self.bind(w, Clause::Row)?),
                    None => None,
                },
            ),
            None => (Vec::new(), None),
        };
        let slot = self.scope.alloc();
        self.analytics.push((e.clone(), AnalyticCall { func: func.to_string(), args, partition, when, slot }));
        Ok(PExpr::Slot(slot))
    }

    /// `meta(key)`, `meta(s.key)`, `meta(a->b)`, `meta(*)`.
    fn meta(&mut self, args: &[Expr], pos: Pos) -> Result<PExpr> {
        if args.len() != 1 {
            return Err(Error::plan(pos, format!("meta: expect 1 arguments but found {}", args.len())));
        }
        let mut path = Vec::new();
        let mut cur = &args[0];
        let source = loop {
            match cur {
                Expr::Wildcard(_) => break 0,
                Expr::Arrow { expr, key } => {
                    path.insert(0, key.clone());
                    cur = expr;
                }
                Expr::Column { qualifier: Some(q), name, .. } => {
                    path.insert(0, name.clone());
                    match self.scope.source_index(q) {
                        Some(i) => break i,
                        None => {
                            path.insert(0, q.clone());
                            break 0;
                        }
                    }
                }
                Expr::Column { qualifier: None, name, .. } => {
                    path.insert(0, name.clone());
                    break 0;
                }
                _ => return Err(Error::plan(pos, "meta expects a key name, a.b path or *")),
            }
        };
        self.scope.meta_slot(source);
        Ok(PExpr::Meta { source, path })
    }

    /// The type of an expression when it is known at plan time.
    pub(crate) fn static_type(&self, e: &PExpr) -> Option<&'static str> {
        match e {
            PExpr::Lit(Literal::Int(_)) => Some("bigint"),
            PExpr::Lit(Literal::Float(_)) => Some("float"),
            PExpr::Lit(Literal::String(_)) => Some("string"),
            PExpr::Lit(Literal::Bool(_)) => Some("boolean"),
            PExpr::Slot(s) => self.scope.slot_type(*s).map(DataType::name),
            _ => None,
        }
    }

    /// Rejects operations on types that can never work (`"a" + 1`,
    /// `size > "x"` on a BIGINT column), as eKuiper's validator does.
    fn check_types(&self, op: BinOp, l: &PExpr, r: &PExpr, pos: Pos) -> Result<()> {
        let (Some(lt), Some(rt)) = (self.static_type(l), self.static_type(r)) else { return Ok(()) };
        let numeric = |t: &str| t == "bigint" || t == "float";
        let ok = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => numeric(lt) && numeric(rt),
            BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
                (lt == "bigint" && rt == "bigint") || (lt == "boolean" && rt == "boolean")
            }
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
                (numeric(lt) && numeric(rt)) || lt == rt || lt == "datetime" || rt == "datetime"
            }
            BinOp::And | BinOp::Or => lt == "boolean" && rt == "boolean",
        };
        if ok {
            Ok(())
        } else {
            Err(Error::plan(pos, format!("invalid operation {lt} {} {rt}", op.symbol())))
        }
    }
}

fn context_value(name: &str) -> Option<ContextValue> {
    Some(match name {
        "window_start" => ContextValue::WindowStart,
        "window_end" => ContextValue::WindowEnd,
        "window_trigger" => ContextValue::WindowTrigger,
        "event_time" => ContextValue::EventTime,
        "row_number" => ContextValue::RowNumber,
        "rule_id" => ContextValue::RuleId,
        "rule_start" => ContextValue::RuleStart,
        _ => return None,
    })
}

fn hit_kind(name: &str) -> Option<crate::plan::HitKind> {
    match name {
        "last_hit_count" | "last_agg_hit_count" => Some(crate::plan::HitKind::Count),
        "last_hit_time" | "last_agg_hit_time" => Some(crate::plan::HitKind::Time),
        _ => None,
    }
}

pub(crate) fn is_window_name(name: &str) -> bool {
    matches!(
        name,
        "tumblingwindow" | "hoppingwindow" | "slidingwindow" | "sessionwindow" | "countwindow" | "statewindow"
    )
}
