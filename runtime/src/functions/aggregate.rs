//! Built-in aggregate functions (eKuiper's `funcs_agg.go`).
//!
//! eKuiper evaluates each argument over the group into a slice and calls
//! the function once; these accumulators reproduce that result:
//! * a group without rows gives null for every function (eKuiper's
//!   `returnNilIfHasAnyNil` sees an empty slice), `collect` included;
//! * nulls are skipped, and the first non-null value decides whether
//!   `sum`/`avg`/`max`/`min` work on ints (floats then truncated), floats
//!   (ints then rejected) or strings (`max`/`min` only);
//! * `avg` of ints is an int (truncating division); `median` looks at the
//!   *first* value (null included) to choose ints or floats;
//! * statistics use `montanaflynn/stats` v0.7.1 formulas.
//!
//! Type errors are kept and reported by `finish`, as eKuiper fails when it
//! computes the aggregate.

use weir_planner::ArgHint;

use super::golike::{go_typed, go_v, slice_extreme, to_float_samekind, to_int_samekind};
use super::{validate_numbers, Accumulator, FuncError, FuncResult, Registry};
use crate::value::{Map, Value};

pub(crate) fn register(r: &mut Registry) {
    r.aggregate("count", 1, Some(1), || Box::new(Count::default()));
    r.aggregate("sum", 1, Some(1), || Box::new(SumAvg::new(false)));
    r.aggregate("avg", 1, Some(1), || Box::new(SumAvg::new(true)));
    r.aggregate("max", 1, Some(1), || Box::new(Extreme::new(true)));
    r.aggregate("min", 1, Some(1), || Box::new(Extreme::new(false)));
    r.aggregate("median", 1, Some(1), || Box::new(Collected::new(Kind::Median)));
    r.aggregate("stddev", 1, Some(1), || Box::new(Collected::new(Kind::Stddev)));
    r.aggregate("stddevs", 1, Some(1), || Box::new(Collected::new(Kind::Stddevs)));
    r.aggregate("var", 1, Some(1), || Box::new(Collected::new(Kind::Var)));
    r.aggregate("vars", 1, Some(1), || Box::new(Collected::new(Kind::Vars)));
    r.aggregate("percentile_cont", 2, Some(2), || Box::new(Collected::new(Kind::PercentileCont)));
    r.aggregate("percentile_disc", 2, Some(2), || Box::new(Collected::new(Kind::PercentileDisc)));
    r.aggregate("collect", 1, Some(1), || Box::new(Collected::new(Kind::Collect)));
    r.aggregate("merge_agg", 1, Some(1), || Box::new(Collected::new(Kind::MergeAgg)));
    r.aggregate("last_value", 2, Some(2), || Box::new(Collected::new(Kind::LastValue)));
    r.aggregate("deduplicate", 2, Some(2), || Box::new(Collected::new(Kind::Deduplicate)));
    for name in ["sum", "avg", "max", "min", "median", "stddev", "stddevs", "var", "vars"] {
        r.set_validate(name, validate_numbers);
    }
    r.set_validate("percentile_cont", validate_numbers);
    r.set_validate("percentile_disc", validate_numbers);
    r.set_validate("last_value", validate_bool_second);
    r.set_validate("deduplicate", validate_bool_second);
}

fn validate_bool_second(args: &[ArgHint]) -> Result<(), String> {
    match args.get(1) {
        Some(ArgHint::Literal(serde_json::Value::Bool(_))) | Some(ArgHint::Expr) | None => Ok(()),
        _ => Err("Expect bool type for parameter 2".into()),
    }
}

fn first(args: &[Value]) -> Value {
    args.first().cloned().unwrap_or(Value::Null)
}

// ---------------------------------------------------------------- count

#[derive(Default)]
struct Count {
    rows: usize,
    n: i64,
}

impl Accumulator for Count {
    fn update(&mut self, args: &[Value]) -> Result<(), FuncError> {
        self.rows += 1;
        if !first(args).is_null() {
            self.n += 1;
        }
        Ok(())
    }

    fn finish(&self) -> FuncResult {
        Ok(if self.rows == 0 { Value::Null } else { Value::Int(self.n) })
    }
}

// ---------------------------------------------------------------- sum, avg

enum Total {
    None,
    Int(i64),
    Float(f64),
}

struct SumAvg {
    avg: bool,
    rows: usize,
    count: i64,
    total: Total,
    err: Option<FuncError>,
}

impl SumAvg {
    fn new(avg: bool) -> SumAvg {
        SumAvg { avg, rows: 0, count: 0, total: Total::None, err: None }
    }

    fn add(&mut self, v: &Value) -> Result<(), FuncError> {
        if matches!(self.total, Total::None) {
            self.total = match v {
                Value::Int(_) => Total::Int(0),
                Value::Float(_) => Total::Float(0.0),
                other => {
                    let f = if self.avg { "avg" } else { "sum" };
                    return Err(FuncError::new(format!(
                        "run {f} function error: found invalid arg {}",
                        go_typed(other)
                    )));
                }
            };
        }
        match &mut self.total {
            Total::Int(t) => {
                let i = to_int_samekind(v)
                    .map_err(|_| FuncError::new(format!("requires int but found {}", go_typed(v))))?;
                *t = t.wrapping_add(i);
            }
            Total::Float(t) => match v {
                Value::Float(f) => *t += f,
                _ => return Err(FuncError::new(format!("requires float64 but found {}", go_typed(v)))),
            },
            Total::None => {}
        }
        self.count += 1;
        Ok(())
    }
}

impl Accumulator for SumAvg {
    fn update(&mut self, args: &[Value]) -> Result<(), FuncError> {
        self.rows += 1;
        let v = first(args);
        if v.is_null() || self.err.is_some() {
            return Ok(());
        }
        if let Err(e) = self.add(&v) {
            self.err = Some(e);
        }
        Ok(())
    }

    fn finish(&self) -> FuncResult {
        if self.rows == 0 {
            return Ok(Value::Null);
        }
        if let Some(e) = &self.err {
            return Err(e.clone());
        }
        Ok(match self.total {
            Total::None => Value::Null,
            Total::Int(t) if self.avg => Value::Int(t.checked_div(self.count).unwrap_or(0)),
            Total::Int(t) => Value::Int(t),
            Total::Float(t) if self.avg => Value::Float(t / self.count as f64),
            Total::Float(t) => Value::Float(t),
        })
    }
}

// ---------------------------------------------------------------- max, min

struct Extreme {
    want_max: bool,
    rows: usize,
    best: Value,
    err: Option<FuncError>,
}

impl Extreme {
    fn new(want_max: bool) -> Extreme {
        Extreme { want_max, rows: 0, best: Value::Null, err: None }
    }
}

impl Accumulator for Extreme {
    fn update(&mut self, args: &[Value]) -> Result<(), FuncError> {
        self.rows += 1;
        let v = first(args);
        if v.is_null() || self.err.is_some() {
            return Ok(());
        }
        // The running best keeps the kind chosen by the first value.
        let pair = [self.best.clone(), v];
        match slice_extreme(pair.iter(), self.want_max) {
            Ok(b) => self.best = b,
            Err(e) => self.err = Some(e),
        }
        Ok(())
    }

    fn finish(&self) -> FuncResult {
        if self.rows == 0 {
            return Ok(Value::Null);
        }
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(self.best.clone()),
        }
    }
}

// ---------------------------------------------------------------- collected

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Median,
    Stddev,
    Stddevs,
    Var,
    Vars,
    PercentileCont,
    PercentileDisc,
    Collect,
    MergeAgg,
    LastValue,
    Deduplicate,
}

/// Keeps the arguments of every row and computes at `finish`.
struct Collected {
    kind: Kind,
    /// One entry per row: the evaluated arguments.
    rows: Vec<Vec<Value>>,
}

impl Collected {
    fn new(kind: Kind) -> Collected {
        Collected { kind, rows: Vec::new() }
    }

    fn column(&self, i: usize) -> Vec<Value> {
        self.rows.iter().map(|r| r.get(i).cloned().unwrap_or(Value::Null)).collect()
    }
}

impl Accumulator for Collected {
    fn update(&mut self, args: &[Value]) -> Result<(), FuncError> {
        self.rows.push(args.to_vec());
        Ok(())
    }

    fn finish(&self) -> FuncResult {
        if self.rows.is_empty() {
            return Ok(Value::Null);
        }
        let col = self.column(0);
        match self.kind {
            Kind::Collect => Ok(Value::array(col)),
            Kind::MergeAgg => {
                let mut m = Map::new();
                for v in &col {
                    if let Value::Map(x) = v {
                        m.extend(x.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                Ok(if m.is_empty() { Value::Null } else { Value::map(m) })
            }
            Kind::LastValue => {
                let flags = self.column(1);
                let ignore_null = match flags.iter().find(|v| !v.is_null()) {
                    Some(Value::Bool(b)) => *b,
                    other => {
                        return Err(FuncError::new(format!(
                            "the second parameter requires bool but found {}",
                            go_typed(other.unwrap_or(&Value::Null))
                        )))
                    }
                };
                let last = if ignore_null { col.iter().rev().find(|v| !v.is_null()) } else { None };
                Ok(last.or(col.last()).cloned().unwrap_or(Value::Null))
            }
            Kind::Deduplicate => self.deduplicate(),
            Kind::Median => median(&col),
            Kind::Stddev | Kind::Stddevs | Kind::Var | Kind::Vars => {
                let xs = floats(&col)?;
                if xs.is_empty() {
                    return Ok(Value::Null);
                }
                let sample = matches!(self.kind, Kind::Stddevs | Kind::Vars);
                let var = variance(&xs, sample);
                Ok(Value::Float(match self.kind {
                    Kind::Stddev | Kind::Stddevs => var.sqrt(),
                    _ => var,
                }))
            }
            Kind::PercentileCont | Kind::PercentileDisc => {
                let ps = self.column(1);
                let p = match ps.iter().find(|v| !v.is_null()).and_then(|v| to_float_samekind(v).ok()) {
                    Some(p) => p,
                    None => {
                        return Err(FuncError::new(format!(
                            "the second parameter requires float64 but found {}",
                            go_typed(&Value::array(ps))
                        )))
                    }
                };
                let xs = floats(&col)?;
                if xs.is_empty() {
                    return Ok(Value::Null);
                }
                if self.kind == Kind::PercentileCont {
                    percentile(xs, p * 100.0)
                        .map(Value::Float)
                        .ok_or_else(|| FuncError::new("percentile exec with error: Input is outside of range."))
                } else {
                    percentile_nearest_rank(xs, p * 100.0)
                        .map(Value::Float)
                        .ok_or_else(|| FuncError::new("PopulationVariance exec with error: Input is outside of range."))
                }
            }
        }
    }
}

impl Collected {
    /// `deduplicate(c, allRows)`: eKuiper's parser prepends `*`, so the
    /// operator may pass `(row, c, allRows)`; with two arguments the column
    /// value stands for the row.
    fn deduplicate(&self) -> FuncResult {
        let (ri, ci, ai) = match self.rows.first().map(Vec::len) {
            Some(3) => (0, 1, 2),
            _ => (0, 0, 1),
        };
        let rows = self.column(ri);
        let col = self.column(ci);
        let all = match self.column(ai).iter().find(|v| !v.is_null()) {
            Some(Value::Bool(b)) => *b,
            _ => return Err(FuncError::new("Invalid argument type found.")),
        };
        let mut seen = std::collections::HashSet::new();
        let mut result = Vec::new();
        let last = col.len().saturating_sub(1);
        for (i, v) in col.iter().enumerate() {
            if seen.insert(go_v(v)) && (all || i == last) {
                result.push(rows.get(i).cloned().unwrap_or(Value::Null));
            }
        }
        if all {
            Ok(Value::array(result))
        } else {
            Ok(result.into_iter().next().unwrap_or(Value::Null))
        }
    }
}

/// `cast.ToFloat64Slice(col, CONVERT_SAMEKIND, IGNORE_NIL)`.
fn floats(col: &[Value]) -> Result<Vec<f64>, FuncError> {
    col.iter()
        .filter(|v| !v.is_null())
        .map(|v| {
            to_float_samekind(v).map_err(|_| {
                FuncError::new(format!("requires float64 slice but found {}", go_typed(&Value::array(col.to_vec()))))
            })
        })
        .collect()
}

fn median(col: &[Value]) -> FuncResult {
    let slice_err = |i: usize, v: &Value, to: &str| {
        FuncError::new(format!(
            "cannot convert {} to {to} slice for the {i} element: cannot convert {} to {to}64",
            go_typed(&Value::array(col.to_vec())),
            go_typed(v)
        ))
    };
    match col.first() {
        Some(Value::Float(_)) => {
            let mut xs = Vec::with_capacity(col.len());
            for (i, v) in col.iter().enumerate() {
                if v.is_null() {
                    continue;
                }
                xs.push(to_float_samekind(v).map_err(|_| slice_err(i, v, "float"))?);
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            let n = xs.len();
            Ok(match n {
                0 => Value::Int(0),
                _ if n % 2 == 1 => Value::Float(xs[n / 2]),
                _ => Value::Float((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
            })
        }
        Some(Value::Int(_)) => {
            let mut xs = Vec::with_capacity(col.len());
            for (i, v) in col.iter().enumerate() {
                xs.push(to_int_samekind(v).map_err(|_| slice_err(i, v, "int"))?);
            }
            xs.sort_unstable();
            let n = xs.len();
            Ok(match n {
                0 => Value::Int(0),
                _ if n % 2 == 1 => Value::Int(xs[n / 2]),
                _ => Value::Float(xs[n / 2 - 1].wrapping_add(xs[n / 2]) as f64 / 2.0),
            })
        }
        Some(other) => Err(FuncError::new(format!("{} should be number", go_v(other)))),
        None => Ok(Value::Int(0)),
    }
}

fn variance(xs: &[f64], sample: bool) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    ss / if sample { n - 1.0 } else { n }
}

/// `stats.Percentile` of v0.7.1 (not the interpolation of later versions).
fn percentile(mut xs: Vec<f64>, percent: f64) -> Option<f64> {
    if xs.len() == 1 {
        return xs.first().copied();
    }
    if percent <= 0.0 || percent > 100.0 || percent.is_nan() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let index = (percent / 100.0) * xs.len() as f64;
    let i = index as usize;
    if index == index.trunc() {
        i.checked_sub(1).and_then(|j| xs.get(j)).copied()
    } else if index > 1.0 {
        Some((xs.get(i.checked_sub(1)?)? + xs.get(i)?) / 2.0)
    } else {
        None
    }
}

/// `stats.PercentileNearestRank` of v0.7.1.
fn percentile_nearest_rank(mut xs: Vec<f64>, percent: f64) -> Option<f64> {
    if !(0.0..=100.0).contains(&percent) {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    if percent == 100.0 {
        return xs.last().copied();
    }
    let or = (xs.len() as f64 * percent / 100.0).ceil() as usize;
    if or == 0 {
        return xs.first().copied();
    }
    xs.get(or - 1).copied()
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
