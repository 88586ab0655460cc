//! The function registry: eKuiper's built-in catalogue, extensible by plugins.
//!
//! Each function is a [`FunctionDef`]: a name, a kind (scalar, aggregate,
//! analytic, ...), an arity and an implementation. The planner sees the
//! registry through [`weir_planner::FunctionLookup`] (kinds and arities for
//! plan-time checks); the runtime calls the implementations.
//!
//! Implementations never panic on user data: a wrong type or value is a
//! [`FuncError`], which the operator counts as an exception on the rule.

mod aggregate;
mod analytic;
mod args;
mod array;
mod convert;
mod datetime;
mod golayout;
mod golike;
mod hash;
mod json;
mod jsonpath;
mod math;
mod object;
mod other;
mod string;
#[cfg(test)]
mod test_util;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use weir_planner::{ArgHint, FunctionKind, FunctionLookup, FunctionSignature};

use crate::value::Value;

pub(crate) use args::*;
pub(crate) use golike::{go_type, go_v};

/// A function failed on its arguments; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FuncError(pub String);

impl FuncError {
    /// Builds an error from any message.
    pub fn new(msg: impl Into<String>) -> FuncError {
        FuncError(msg.into())
    }
}

/// Result of a function call.
pub type FuncResult = Result<Value, FuncError>;

/// What a function may read besides its arguments. Time comes from the
/// rule's clock, never from the system directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct FuncContext<'a> {
    /// Id of the rule evaluating the call.
    pub rule_id: &'a str,
    /// Current time of the rule's clock, Unix ms.
    pub now_ms: i64,
    /// When the rule started, Unix ms.
    pub rule_start_ms: i64,
}

/// A scalar function implementation.
pub type ScalarFn = Arc<dyn Fn(&FuncContext<'_>, &[Value]) -> FuncResult + Send + Sync>;

/// Folds the rows of one group. `update` is called once per row with the
/// evaluated arguments (a `*` argument arrives as the row as a map);
/// `finish` gives the result and may be called more than once.
pub trait Accumulator: Send {
    /// Adds one row's arguments.
    fn update(&mut self, args: &[Value]) -> Result<(), FuncError>;
    /// The aggregate of the rows added so far.
    fn finish(&self) -> FuncResult;
}

/// Creates a fresh accumulator for a group.
pub type AccumulatorFactory = Arc<dyn Fn() -> Box<dyn Accumulator> + Send + Sync>;

/// The state of one analytic call site for one partition (e.g. `lag`).
///
/// Exactly one of the two methods is invoked per event, with the evaluated
/// arguments (evaluated in both cases, as eKuiper does), and returns the
/// result for that event. eKuiper passes the `OVER (WHEN cond)` result as a
/// hidden "valid data" argument; here it selects the method.
pub trait AnalyticState: Send {
    /// Processes an event whose WHEN condition is true (or that has no WHEN
    /// clause): updates the state and returns the result.
    fn call(&mut self, args: &[Value]) -> FuncResult;

    /// Processes an event whose WHEN condition is false (eKuiper's
    /// `validData == false`): the event's value is not taken into the state,
    /// but the arguments are still checked and the result is still computed:
    /// `lag` gives the oldest queued value (creating the queue on a first
    /// call), `latest` the stored value or the default, `changed_col` null,
    /// `had_changed` false, `acc_*` the current total while still applying
    /// their start/reset conditions.
    fn call_skipped(&mut self, args: &[Value]) -> FuncResult;

    /// The state, encoded for a checkpoint.
    ///
    /// # Errors
    /// Encoding failed.
    fn save(&self) -> Result<Vec<u8>, crate::state::StateError>;

    /// Restores the state saved by [`AnalyticState::save`].
    ///
    /// # Errors
    /// The bytes are not a valid state.
    fn load(&mut self, bytes: &[u8]) -> Result<(), crate::state::StateError>;
}

/// Creates the state of an analytic function for a new partition.
pub type AnalyticFactory = Arc<dyn Fn() -> Box<dyn AnalyticState> + Send + Sync>;

/// Checks literal arguments at plan time; returns the error text.
pub type ValidateFn = Arc<dyn Fn(&[ArgHint]) -> Result<(), String> + Send + Sync>;

/// Evaluates a function over the argument lists of many rows in one call,
/// returning one result per row in order. Model inference uses it: a
/// projection infers all rows of a batch together (see [`FunctionDef::batch`]).
pub type BatchFn = Arc<dyn Fn(&FuncContext<'_>, &[Vec<Value>]) -> Vec<FuncResult> + Send + Sync>;

/// How a function is implemented.
#[derive(Clone)]
pub enum FunctionImpl {
    /// Row in, value out.
    Scalar(ScalarFn),
    /// Folds a group.
    Aggregate(AccumulatorFactory),
    /// Keeps per-partition state across events.
    Analytic(AnalyticFactory),
    /// Evaluated by the operators themselves (`window_start`, `meta`,
    /// `row_number`, `unnest`, ...); the registry only knows its signature.
    Builtin,
}

/// One registered function.
#[derive(Clone)]
pub struct FunctionDef {
    /// Lower-case name.
    pub name: String,
    /// Where it is evaluated.
    pub kind: FunctionKind,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments, `None` if variadic.
    pub max_args: Option<usize>,
    /// The implementation.
    pub imp: FunctionImpl,
    /// Optional plan-time check of literal arguments.
    pub validate: Option<ValidateFn>,
    /// For scalar functions that gain from seeing many rows at once: the
    /// batch form, which projections call once per batch of rows.
    pub batch: Option<BatchFn>,
}

impl std::fmt::Debug for FunctionDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionDef")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("min_args", &self.min_args)
            .field("max_args", &self.max_args)
            .finish()
    }
}

/// All functions known to a node: the built-ins plus whatever plugins add.
#[derive(Clone, Default)]
pub struct Registry {
    defs: HashMap<String, Arc<FunctionDef>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A registry with eKuiper's whole built-in catalogue.
    pub fn with_builtins() -> Registry {
        let mut r = Registry::new();
        math::register(&mut r);
        string::register(&mut r);
        convert::register(&mut r);
        hash::register(&mut r);
        datetime::register(&mut r);
        json::register(&mut r);
        array::register(&mut r);
        object::register(&mut r);
        other::register(&mut r);
        aggregate::register(&mut r);
        analytic::register(&mut r);
        r
    }

    /// The shared built-in registry, built once.
    pub fn builtins() -> &'static Registry {
        static BUILTINS: OnceLock<Registry> = OnceLock::new();
        BUILTINS.get_or_init(Registry::with_builtins)
    }

    /// Adds or replaces a function.
    pub fn insert(&mut self, def: FunctionDef) {
        self.defs.insert(def.name.clone(), Arc::new(def));
    }

    /// Registers a scalar function.
    pub fn scalar(
        &mut self,
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        f: impl Fn(&FuncContext<'_>, &[Value]) -> FuncResult + Send + Sync + 'static,
    ) {
        self.insert(FunctionDef {
            name: name.to_string(),
            kind: FunctionKind::Scalar,
            min_args,
            max_args,
            imp: FunctionImpl::Scalar(Arc::new(f)),
            validate: None,
            batch: None,
        });
    }

    /// Registers an aggregate function.
    pub fn aggregate(
        &mut self,
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        factory: impl Fn() -> Box<dyn Accumulator> + Send + Sync + 'static,
    ) {
        self.insert(FunctionDef {
            name: name.to_string(),
            kind: FunctionKind::Aggregate,
            min_args,
            max_args,
            imp: FunctionImpl::Aggregate(Arc::new(factory)),
            validate: None,
            batch: None,
        });
    }

    /// Registers an analytic function.
    pub fn analytic(
        &mut self,
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        factory: impl Fn() -> Box<dyn AnalyticState> + Send + Sync + 'static,
    ) {
        self.insert(FunctionDef {
            name: name.to_string(),
            kind: FunctionKind::Analytic,
            min_args,
            max_args,
            imp: FunctionImpl::Analytic(Arc::new(factory)),
            validate: None,
            batch: None,
        });
    }

    /// Registers a function that operators evaluate themselves.
    pub fn builtin(&mut self, name: &str, kind: FunctionKind, min_args: usize, max_args: Option<usize>) {
        self.insert(FunctionDef {
            name: name.to_string(),
            kind,
            min_args,
            max_args,
            imp: FunctionImpl::Builtin,
            validate: None,
            batch: None,
        });
    }

    /// Registers a scalar function with a batch form: `batch` gets the
    /// argument lists of many rows and returns one result per row. A call
    /// outside a projection evaluates one row at a time through the same
    /// function. `validate` checks literal arguments at plan time.
    pub fn batch_scalar(
        &mut self,
        name: &str,
        min_args: usize,
        max_args: Option<usize>,
        batch: BatchFn,
        validate: Option<ValidateFn>,
    ) {
        let one = batch.clone();
        let scalar = move |cx: &FuncContext<'_>, args: &[Value]| -> FuncResult {
            one(cx, &[args.to_vec()])
                .pop()
                .unwrap_or_else(|| Err(FuncError::new("the batch function returned no result")))
        };
        self.insert(FunctionDef {
            name: name.to_string(),
            kind: FunctionKind::Scalar,
            min_args,
            max_args,
            imp: FunctionImpl::Scalar(Arc::new(scalar)),
            validate,
            batch: Some(batch),
        });
    }

    /// Removes a function (a plugin was uninstalled); returns whether it
    /// was registered.
    pub fn remove(&mut self, name: &str) -> bool {
        self.defs.remove(name).is_some()
    }

    /// Registers `alias` as another name of the already registered `name`.
    ///
    /// # Panics
    /// If `name` is not registered: that is a bug in the catalogue.
    pub fn alias(&mut self, alias: &str, name: &str) {
        let def = self.defs.get(name).unwrap_or_else(|| panic!("alias {alias} of unknown {name}"));
        let mut def = FunctionDef::clone(def);
        def.name = alias.to_string();
        self.insert(def);
    }

    /// Sets the plan-time validator of an already registered function.
    ///
    /// # Panics
    /// If `name` is not registered: that is a bug in the catalogue.
    pub fn set_validate(&mut self, name: &str, validate: fn(&[ArgHint]) -> Result<(), String>) {
        let def = self.defs.get(name).unwrap_or_else(|| panic!("validator for unknown {name}"));
        let mut def = FunctionDef::clone(def);
        def.validate = Some(Arc::new(validate));
        self.insert(def);
    }

    /// Looks a function up; built-in names are case-insensitive.
    pub fn get(&self, name: &str) -> Option<&Arc<FunctionDef>> {
        self.defs.get(name).or_else(|| self.defs.get(&name.to_ascii_lowercase()))
    }

    /// Names of all registered functions, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.defs.keys().map(|s| s.as_str()).collect();
        v.sort_unstable();
        v
    }
}

impl FunctionLookup for Registry {
    fn signature(&self, name: &str) -> Option<FunctionSignature> {
        self.get(name).map(|d| FunctionSignature {
            name: d.name.clone(),
            kind: d.kind,
            min_args: d.min_args,
            max_args: d.max_args,
        })
    }

    fn validate(&self, name: &str, args: &[ArgHint]) -> Result<(), String> {
        match self.get(name).and_then(|d| d.validate.as_ref()) {
            Some(v) => v(args),
            None => Ok(()),
        }
    }
}

/// Calls a scalar function by name with the given arguments; used by tests
/// and by places that evaluate a function outside a compiled expression.
pub fn call_scalar(registry: &Registry, name: &str, args: &[Value]) -> FuncResult {
    let def = registry.get(name).ok_or_else(|| FuncError::new(format!("function {name} not found")))?;
    check_arity(def, args.len())?;
    match &def.imp {
        FunctionImpl::Scalar(f) => f(&FuncContext::default(), args),
        _ => Err(FuncError::new(format!("{name} is not a scalar function"))),
    }
}

/// Checks the argument count of a call against the definition, with
/// eKuiper's message.
pub fn check_arity(def: &FunctionDef, n: usize) -> Result<(), FuncError> {
    let ok = n >= def.min_args && def.max_args.is_none_or(|m| n <= m);
    if ok {
        return Ok(());
    }
    Err(FuncError::new(match def.max_args {
        Some(max) if max == def.min_args => format!("Expect {max} arguments but found {n}."),
        Some(max) => format!("Expect {} to {max} arguments but found {n}.", def.min_args),
        None => format!("Expect at least {} arguments but found {n}.", def.min_args),
    }))
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;

    /// Every function of eKuiper's catalogue (EKUIPER_COMPAT.md §5) is
    /// registered, with its aliases.
    #[test]
    fn the_ekuiper_catalogue_is_complete() {
        const CATALOGUE: &[&str] = &[
            "abs",
            "acc_avg",
            "acc_count",
            "acc_max",
            "acc_min",
            "acc_sum",
            "acos",
            "array_cardinality",
            "array_concat",
            "array_contains",
            "array_contains_any",
            "array_create",
            "array_distinct",
            "array_except",
            "array_flatten",
            "array_intersect",
            "array_join",
            "array_last_position",
            "array_map",
            "array_max",
            "array_min",
            "array_position",
            "array_remove",
            "array_shuffle",
            "array_sort",
            "array_union",
            "asin",
            "atan",
            "atan2",
            "avg",
            "bitand",
            "bitnot",
            "bitor",
            "bitxor",
            "cardinality",
            "cast",
            "ceil",
            "ceiling",
            "changed_col",
            "changed_cols",
            "chr",
            "coalesce",
            "collect",
            "compress",
            "concat",
            "conv",
            "convert_tz",
            "cos",
            "cosh",
            "cot",
            "count",
            "crc32",
            "cur_date",
            "cur_time",
            "current_date",
            "current_time",
            "current_timestamp",
            "date_calc",
            "date_diff",
            "day",
            "day_name",
            "day_of_month",
            "day_of_week",
            "day_of_year",
            "dec2hex",
            "decode",
            "decompress",
            "deduplicate",
            "degrees",
            "delay",
            "element_at",
            "encode",
            "endswith",
            "erase",
            "event_time",
            "exp",
            "extract",
            "floor",
            "format",
            "format_time",
            "from_days",
            "from_unix_time",
            "get_keyed_state",
            "had_changed",
            "hex2dec",
            "hour",
            "indexof",
            "isnull",
            "items",
            "json_path_exists",
            "json_path_query",
            "json_path_query_first",
            "keys",
            "kvpair_array_to_obj",
            "lag",
            "last_agg_hit_count",
            "last_agg_hit_time",
            "last_day",
            "last_hit_count",
            "last_hit_time",
            "last_value",
            "latest",
            "length",
            "ln",
            "local_time",
            "local_timestamp",
            "log",
            "lower",
            "lpad",
            "ltrim",
            "max",
            "md5",
            "median",
            "merge_agg",
            "meta",
            "microsecond",
            "min",
            "minute",
            "mod",
            "month",
            "month_name",
            "mqtt",
            "newuuid",
            "now",
            "numbytes",
            "obj_to_kvpair_array",
            "object",
            "object_concat",
            "object_construct",
            "object_pick",
            "object_size",
            "parse_json",
            "percentile_cont",
            "percentile_disc",
            "pi",
            "pow",
            "power",
            "props",
            "radians",
            "rand",
            "regexp_matches",
            "regexp_replace",
            "regexp_substr",
            "repeat",
            "reverse",
            "round",
            "row_number",
            "rpad",
            "rtrim",
            "rule_id",
            "rule_start",
            "second",
            "sequence",
            "sha1",
            "sha256",
            "sha384",
            "sha512",
            "sign",
            "sin",
            "sinh",
            "split_value",
            "sqrt",
            "startswith",
            "stddev",
            "stddevs",
            "substring",
            "sum",
            "tan",
            "tanh",
            "to_json",
            "to_seconds",
            "trim",
            "trunc",
            "tstamp",
            "unnest",
            "upper",
            "values",
            "var",
            "vars",
            "window_end",
            "window_start",
            "window_trigger",
            "zip",
        ];
        let r = Registry::builtins();
        let missing: Vec<&str> = CATALOGUE.iter().copied().filter(|n| r.get(n).is_none()).collect();
        assert!(missing.is_empty(), "not registered: {missing:?}");
        assert!(r.names().len() >= CATALOGUE.len(), "{} functions", r.names().len());
    }
}
