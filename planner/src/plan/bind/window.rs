//! Window calls in GROUP BY: units, sizes and clauses.

use super::expr::Clause;
use super::Binder;
use crate::ast::{Expr, Literal, Window, WindowKind};
use crate::error::{Error, Result};
use crate::plan::{TimeUnit, WindowPlan, WindowSpec};

impl Binder<'_> {
    pub(crate) fn window(&mut self, w: &Window) -> Result<WindowPlan> {
        let name = format!("{:?}window", w.kind).to_ascii_lowercase();
        let arity = |min: usize, max: usize| -> Result<()> {
            if w.args.len() < min || w.args.len() > max {
                let expect = if min == max { format!("{min}") } else { format!("{min} to {max}") };
                return Err(Error::plan(
                    w.pos,
                    format!("{name}: expect {expect} arguments but found {}", w.args.len()),
                ));
            }
            Ok(())
        };
        let mut unit = TimeUnit::Millisecond;
        let spec = match w.kind {
            WindowKind::Tumbling | WindowKind::Hopping | WindowKind::Sliding | WindowKind::Session => {
                match w.kind {
                    WindowKind::Tumbling => arity(2, 2)?,
                    WindowKind::Sliding => arity(2, 3)?,
                    _ => arity(3, 3)?,
                }
                unit = time_unit(&w.args[0], &name, w.pos)?;
                let time_arg = |i: usize, what: &str| -> Result<i64> {
                    let n = int_arg(&w.args[i], &name, what, w.pos)?;
                    Ok(n * unit.millis())
                };
                match w.kind {
                    WindowKind::Tumbling => WindowSpec::Tumbling { size_ms: time_arg(1, "size")? },
                    WindowKind::Hopping => {
                        let size_ms = time_arg(1, "size")?;
                        let hop_ms = time_arg(2, "hop")?;
                        WindowSpec::Hopping { size_ms, hop_ms }
                    }
                    WindowKind::Sliding => {
                        let size_ms = time_arg(1, "size")?;
                        let delay_ms = if w.args.len() == 3 { time_arg(2, "delay")? } else { 0 };
                        WindowSpec::Sliding { size_ms, delay_ms }
                    }
                    _ => {
                        let max_ms = time_arg(1, "max duration")?;
                        let timeout_ms = time_arg(2, "timeout")?;
                        WindowSpec::Session { max_ms, timeout_ms }
                    }
                }
            }
            WindowKind::Count => {
                arity(1, 2)?;
                let size = int_arg(&w.args[0], &name, "size", w.pos)? as u64;
                let hop = if w.args.len() == 2 { int_arg(&w.args[1], &name, "hop", w.pos)? as u64 } else { size };
                if hop > size {
                    return Err(Error::plan(w.pos, format!("countwindow: hop {hop} must not exceed size {size}")));
                }
                WindowSpec::Count { size, hop }
            }
            WindowKind::State => {
                arity(1, 2)?;
                let begin = self.bind(&w.args[0], Clause::Row)?;
                let emit = match w.args.get(1) {
                    Some(e) => Some(self.bind(e, Clause::Row)?),
                    None => None,
                };
                WindowSpec::State { begin, emit }
            }
        };
        if w.trigger.is_some() && w.kind != WindowKind::Sliding {
            return Err(Error::plan(w.pos, format!("OVER (WHEN ...) is only allowed on slidingwindow, not {name}")));
        }
        if !w.partition.is_empty() && w.kind != WindowKind::State {
            return Err(Error::plan(
                w.pos,
                format!("OVER (PARTITION BY ...) is only allowed on statewindow, not {name}"),
            ));
        }
        let filter = match &w.filter {
            Some(f) => Some(self.bind(f, Clause::Row)?),
            None => None,
        };
        let trigger = match &w.trigger {
            Some(t) => Some(self.bind_condition(t, Clause::Row)?),
            None => None,
        };
        let partition = w.partition.iter().map(|p| self.bind(p, Clause::Row)).collect::<Result<_>>()?;
        Ok(WindowPlan { spec, unit, filter, trigger, partition })
    }
}

fn time_unit(e: &Expr, name: &str, pos: crate::error::Pos) -> Result<TimeUnit> {
    let word = match e {
        Expr::Column { qualifier: None, name, .. } => name.to_ascii_lowercase(),
        Expr::Literal(Literal::String(s)) => s.to_ascii_lowercase(),
        _ => String::new(),
    };
    Ok(match word.as_str() {
        "dd" => TimeUnit::Day,
        "hh" => TimeUnit::Hour,
        "mi" => TimeUnit::Minute,
        "ss" => TimeUnit::Second,
        "ms" => TimeUnit::Millisecond,
        _ => {
            return Err(Error::plan(
                pos,
                format!("{name}: the first argument must be a time unit dd, hh, mi, ss or ms"),
            ))
        }
    })
}

fn int_arg(e: &Expr, name: &str, what: &str, pos: crate::error::Pos) -> Result<i64> {
    match e {
        Expr::Literal(Literal::Int(n)) if *n > 0 => Ok(*n),
        _ => Err(Error::plan(pos, format!("{name}: {what} must be a positive integer literal"))),
    }
}
