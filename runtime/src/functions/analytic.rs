//! Built-in analytic functions (eKuiper's `funcs_analytic.go` and
//! `funcs_acc.go`): one state per call site and partition.
//!
//! eKuiper passes two hidden arguments, the `OVER(WHEN)` result ("valid
//! data") and the partition key. In weir the operator keeps one state per
//! partition and calls [`AnalyticState::call`] when WHEN is true (or absent)
//! and [`AnalyticState::call_skipped`] when it is false. Each state here has
//! one `step(args, valid)` mirroring eKuiper's function body, so both paths
//! check their arguments exactly as eKuiper does. For a skipped event:
//! `lag` returns the oldest queued value, `latest` the stored value or the
//! default, `changed_col` null, `had_changed` false, `acc_*` the current
//! accumulated value (their start/reset conditions are still applied).

use std::collections::VecDeque;

use weir_planner::ArgHint;

use super::golike::{go_eq, go_v, to_int_strict};
use super::{AnalyticState, FuncError, FuncResult, Registry};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.analytic("lag", 1, Some(4), || Box::new(Lag::default()));
    r.set_validate("lag", validate_lag);
    r.analytic("latest", 1, Some(2), || Box::new(Latest::default()));
    r.analytic("changed_col", 2, Some(2), || Box::new(ChangedCol::default()));
    r.set_validate("changed_col", |a| validate_bool_first(a, "boolean"));
    r.analytic("had_changed", 2, None, || Box::new(HadChanged::default()));
    r.set_validate("had_changed", |a| validate_bool_first(a, "bool"));
    for (name, kind) in [
        ("acc_sum", AccKind::Sum),
        ("acc_min", AccKind::Min),
        ("acc_max", AccKind::Max),
        ("acc_count", AccKind::Count),
        ("acc_avg", AccKind::Avg),
    ] {
        r.analytic(name, 1, Some(3), move || Box::new(Acc::new(kind)));
        r.set_validate(name, |a| if a.len() == 2 { Err("Expect 1/3 arguments but found 2.".into()) } else { Ok(()) });
    }
}

fn validate_lag(args: &[ArgHint]) -> Result<(), String> {
    use serde_json::Value as J;
    if let Some(ArgHint::Literal(v)) = args.get(1) {
        match v {
            J::Number(n) if n.is_i64() || n.is_u64() => {
                if n.as_i64().is_some_and(|i| i < 0) {
                    return Err("the index should not be a nagtive integer".into());
                }
            }
            _ => return Err("Expect int type for parameter 2".into()),
        }
    }
    if let Some(ArgHint::Literal(J::Number(_) | J::String(_))) = args.get(3) {
        return Err("Expect bool type for parameter 4".into());
    }
    Ok(())
}

fn validate_bool_first(args: &[ArgHint], what: &str) -> Result<(), String> {
    if let Some(ArgHint::Literal(serde_json::Value::Number(_) | serde_json::Value::String(_))) = args.first() {
        return Err(format!("Expect {what} type for parameter 1"));
    }
    Ok(())
}

/// One analytic function's body, as eKuiper's: `valid` is its hidden
/// "valid data" argument (the `OVER (WHEN)` result).
trait Step: Send {
    fn step(&mut self, args: &[Value], valid: bool) -> FuncResult;
}

impl<T: Step + serde::Serialize + serde::de::DeserializeOwned> AnalyticState for T {
    fn call(&mut self, args: &[Value]) -> FuncResult {
        self.step(args, true)
    }

    fn call_skipped(&mut self, args: &[Value]) -> FuncResult {
        self.step(args, false)
    }

    fn save(&self) -> Result<Vec<u8>, crate::state::StateError> {
        crate::state::codec::encode(self)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), crate::state::StateError> {
        *self = crate::state::codec::decode(bytes, "analytic state")?;
        Ok(())
    }
}

// ---------------------------------------------------------------- lag

/// `lag(e[, offset=1[, default[, ignoreNull=true]]])`: a ring of `offset`
/// values, created on the first call and filled with that call's default.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Lag {
    queue: Option<(usize, VecDeque<Value>)>,
}

impl Step for Lag {
    fn step(&mut self, args: &[Value], valid: bool) -> FuncResult {
        let arg0 = args.first().cloned().unwrap_or(Value::Null);
        let size = match args.get(1) {
            Some(v) => to_int_strict(v)
                .map_err(|e| FuncError::new(format!("error converting second arg {} to int: {}", go_v(v), e.0)))?,
            None => 1,
        };
        let default = args.get(2).cloned().unwrap_or(Value::Null);
        let ignore_null = match args.get(3) {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(FuncError::new(format!("The fourth arg is not a bool but got {}", go_v(&arg0)))),
            None => true,
        };
        let (cap, q) = match &mut self.queue {
            Some(q) => q,
            slot => {
                let cap =
                    usize::try_from(size).map_err(|_| FuncError::new("the index should not be a nagtive integer"))?;
                if cap > 1_000_000 {
                    return Err(FuncError::new(format!("lag offset {cap} is too large")));
                }
                slot.insert((cap, std::iter::repeat_n(default, cap).collect()))
            }
        };
        let mut ret = q.front().cloned().unwrap_or(Value::Null);
        if valid && (!ignore_null || !arg0.is_null()) {
            ret = q.pop_front().unwrap_or(Value::Null);
            if q.len() < *cap {
                q.push_back(arg0);
            }
        }
        Ok(ret)
    }
}

// ---------------------------------------------------------------- latest

/// `latest(e[, default])`: the last non-null value seen.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Latest {
    last: Value,
}

impl Step for Latest {
    fn step(&mut self, args: &[Value], valid: bool) -> FuncResult {
        let v = args.first().cloned().unwrap_or(Value::Null);
        // Nulls are ignored, as are skipped events.
        if valid && !v.is_null() {
            self.last = v.clone();
            return Ok(v);
        }
        if self.last.is_null() {
            return Ok(args.get(1).cloned().unwrap_or(Value::Null));
        }
        Ok(self.last.clone())
    }
}

// ---------------------------------------------------------------- changed_col

/// `changed_col(ignoreNull, e)`: `e` when it differs (Go deep equality)
/// from the last value that changed, else null.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct ChangedCol {
    last: Value,
}

impl Step for ChangedCol {
    fn step(&mut self, args: &[Value], valid: bool) -> FuncResult {
        let ignore_null = match args.first() {
            Some(Value::Bool(b)) => *b,
            other => {
                return Err(FuncError::new(format!(
                    "first arg is not a bool but got {}",
                    go_v(other.unwrap_or(&Value::Null))
                )))
            }
        };
        let v = args.get(1).cloned().unwrap_or(Value::Null);
        if (ignore_null && v.is_null()) || !valid {
            return Ok(Value::Null);
        }
        if !go_eq(&v, &self.last) {
            self.last = v.clone();
            return Ok(v);
        }
        Ok(Value::Null)
    }
}

// ---------------------------------------------------------------- had_changed

/// `had_changed(ignoreNull, e1, …)`: true if any argument differs from its
/// last value (each is then remembered).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct HadChanged {
    last: Vec<Value>,
}

impl Step for HadChanged {
    fn step(&mut self, args: &[Value], valid: bool) -> FuncResult {
        if args.len() <= 1 {
            // eKuiper counts its two hidden arguments.
            return Err(FuncError::new(format!("expect more than one arg but got {}", args.len() + 2)));
        }
        // eKuiper answers a skipped event before checking `ignoreNull`.
        if !valid {
            return Ok(Value::Bool(false));
        }
        let ignore_null = match &args[0] {
            Value::Bool(b) => *b,
            other => return Err(FuncError::new(format!("first arg is not a bool but got {}", go_v(other)))),
        };
        if self.last.len() < args.len() {
            self.last.resize(args.len(), Value::Null);
        }
        let mut changed = false;
        for (i, v) in args.iter().enumerate().skip(1) {
            if ignore_null && v.is_null() {
                continue;
            }
            if let Some(last) = self.last.get_mut(i) {
                if !go_eq(v, last) {
                    changed = true;
                    *last = v.clone();
                }
            }
        }
        Ok(Value::Bool(changed))
    }
}

// ---------------------------------------------------------------- acc_*

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, PartialEq)]
enum AccKind {
    Sum,
    Min,
    Max,
    Count,
    Avg,
}

/// `acc_*(e[, startCond, resetCond])`: accumulates over the rule's life;
/// with conditions, from the event where `startCond` is true up to and
/// including the event where `resetCond` is true.
#[derive(serde::Serialize, serde::Deserialize)]
struct Acc {
    kind: AccKind,
    count: i64,
    sum: f64,
    /// min/max so far; `None` before the first value.
    extreme: Option<f64>,
    has_begin: bool,
}

impl Acc {
    fn new(kind: AccKind) -> Acc {
        Acc { kind, count: 0, sum: 0.0, extreme: None, has_begin: false }
    }

    fn reset(&mut self) {
        self.count = 0;
        self.sum = 0.0;
        self.extreme = None;
    }

    fn exec(&mut self, v: &Value) -> Result<(), FuncError> {
        let not_number = || FuncError::new("the value should be number");
        match self.kind {
            AccKind::Count => {
                if !v.is_null() {
                    self.count += 1;
                }
            }
            AccKind::Sum => {
                if !v.is_null() {
                    self.sum += v.as_f64().ok_or_else(not_number)?;
                }
            }
            AccKind::Min | AccKind::Max => {
                let x = v.as_f64().ok_or_else(not_number)?;
                let cur =
                    self.extreme.unwrap_or(if self.kind == AccKind::Min { i64::MAX as f64 } else { i64::MIN as f64 });
                self.extreme = Some(if self.kind == AccKind::Min {
                    if cur < x {
                        cur
                    } else {
                        x
                    }
                } else if cur > x {
                    cur
                } else {
                    x
                });
            }
            AccKind::Avg => {
                let x = v.as_f64().ok_or_else(not_number)?;
                self.sum += x;
                self.count += 1;
            }
        }
        Ok(())
    }

    fn value(&self) -> Value {
        match self.kind {
            AccKind::Count => Value::Int(self.count),
            AccKind::Sum => Value::Float(self.sum),
            AccKind::Min | AccKind::Max => Value::Float(self.extreme.unwrap_or(0.0)),
            AccKind::Avg if self.count == 0 => Value::Float(0.0),
            AccKind::Avg => Value::Float(self.sum / self.count as f64),
        }
    }
}

impl Step for Acc {
    /// eKuiper's `handleAccFunc`; a skipped event does not reach `exec`
    /// (so its value is not even type-checked) but moves the conditions.
    fn step(&mut self, args: &[Value], valid: bool) -> FuncResult {
        let v = args.first().cloned().unwrap_or(Value::Null);
        match args.len() {
            1 => {
                if valid {
                    self.exec(&v)?;
                }
            }
            3 => {
                let on_begin = args[1].as_bool().ok_or_else(|| FuncError::new("onBegin should be boolean"))?;
                let on_reset = args[2].as_bool().ok_or_else(|| FuncError::new("onReset should be boolean"))?;
                if !self.has_begin {
                    self.reset();
                }
                if on_begin && !self.has_begin {
                    self.has_begin = true;
                }
                if self.has_begin && valid {
                    self.exec(&v)?;
                }
                if on_reset {
                    self.has_begin = false;
                }
            }
            _ => return Err(FuncError::new("wrong args length")),
        }
        Ok(self.value())
    }
}

#[cfg(test)]
#[path = "analytic_tests.rs"]
mod tests;
