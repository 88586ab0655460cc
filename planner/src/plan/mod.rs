//! Physical plans: what a rule runs, serializable and self-contained.
//!
//! A plan follows eKuiper's fixed operator order:
//!
//! ```text
//! sources -> decode -> [watermark] -> [analytic] -> [pre-window WHERE]
//!   -> [window + FILTER] -> [join] -> [WHERE] -> [aggregate]
//!   -> [HAVING] -> [ORDER BY] -> project (+LIMIT) -> sinks
//! ```
//!
//! Rows are flat slot vectors. Every source owns a range of slots (its
//! referenced columns, plus a slot for the whole message when `*` needs it
//! and one for its metadata), analytic results get slots after those, and
//! an aggregating plan appends one slot per aggregate call. Expressions
//! address slots directly, so no field name is looked up per row.

mod bind;
mod expr;
mod naming;
mod options;

use serde::{Deserialize, Serialize};

use crate::ast::{JoinKind, Literal};
use crate::catalog::StreamDef;
use crate::types::DataType;

pub use bind::plan;
pub use expr::{ContextValue, HitKind, PExpr};
pub use options::{parse_duration_ms, RuleOptions};

/// A rule's physical plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalPlan {
    /// Rule id.
    pub rule_id: String,
    /// Rule options.
    pub options: RuleOptions,
    /// Sources in FROM/JOIN order; a row's `source` tag indexes this.
    pub sources: Vec<SourcePlan>,
    /// Slots of an input row (all sources' columns plus analytic results).
    pub width: u32,
    /// Analytic calls evaluated on every event before WHERE and windows.
    pub analytics: Vec<AnalyticCall>,
    /// WHERE applied before the window (processing-time tumbling, hopping
    /// and session windows, and rules without windows or joins).
    pub pre_filter: Option<PExpr>,
    /// The window.
    pub window: Option<WindowPlan>,
    /// Joins in order.
    pub joins: Vec<JoinPlan>,
    /// WHERE applied after the window / join.
    pub filter: Option<PExpr>,
    /// Grouping and aggregate calls, when the rule aggregates.
    pub aggregate: Option<AggregatePlan>,
    /// HAVING, over aggregated rows.
    pub having: Option<PExpr>,
    /// ORDER BY keys.
    pub order: Vec<SortKey>,
    /// Output columns.
    pub project: Vec<ProjectField>,
    /// LIMIT per emission.
    pub limit: Option<u64>,
    /// Operators with stable ids and eKuiper's node names, for metrics and
    /// topology; the same across restarts and nodes.
    pub operators: Vec<OperatorInfo>,
    /// Number of `last_hit_*` call sites (rule state).
    pub hit_sites: u32,
    /// Number of `changed_cols` call sites (rule state).
    pub changed_sites: u32,
}

/// One source of the rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcePlan {
    /// Stream or table name.
    pub name: String,
    /// Alias in the query.
    pub alias: Option<String>,
    /// The definition.
    pub def: StreamDef,
    /// Decoded columns and their slots.
    pub columns: Vec<ColumnSlot>,
    /// Slot holding the whole decoded message as a map (for `*` on a
    /// schemaless source).
    pub all_slot: Option<u32>,
    /// Slot holding the message metadata as a map (for `meta()`).
    pub meta_slot: Option<u32>,
}

impl SourcePlan {
    /// Whether this source is a table.
    pub fn is_table(&self) -> bool {
        self.def.kind == crate::ast::StreamKind::Table
    }
}

/// A decoded column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSlot {
    /// Field name in the payload.
    pub name: String,
    /// Row slot.
    pub slot: u32,
    /// Declared type, if the stream has a schema.
    pub data_type: Option<DataType>,
}

/// An analytic function call site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticCall {
    /// Registered name.
    pub func: String,
    /// Arguments.
    pub args: Vec<PExpr>,
    /// `OVER (PARTITION BY ...)`.
    pub partition: Vec<PExpr>,
    /// `OVER (WHEN ...)`.
    pub when: Option<PExpr>,
    /// Slot receiving the result.
    pub slot: u32,
}

/// Time unit of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// `DD`
    Day,
    /// `HH`
    Hour,
    /// `MI`
    Minute,
    /// `SS`
    Second,
    /// `MS`
    Millisecond,
}

impl TimeUnit {
    /// Length of one unit in ms.
    pub fn millis(self) -> i64 {
        match self {
            TimeUnit::Day => 86_400_000,
            TimeUnit::Hour => 3_600_000,
            TimeUnit::Minute => 60_000,
            TimeUnit::Second => 1000,
            TimeUnit::Millisecond => 1,
        }
    }

    /// The enclosing unit that aligns the first firing (SS -> minute, ...).
    pub fn alignment_millis(self) -> i64 {
        match self {
            TimeUnit::Day | TimeUnit::Hour => 86_400_000,
            TimeUnit::Minute => 3_600_000,
            TimeUnit::Second => 60_000,
            TimeUnit::Millisecond => 1000,
        }
    }
}

/// The window kind with its sizes (in ms for time windows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WindowSpec {
    /// `TUMBLINGWINDOW`.
    Tumbling {
        /// Window length.
        size_ms: i64,
    },
    /// `HOPPINGWINDOW`.
    Hopping {
        /// Window length.
        size_ms: i64,
        /// Hop.
        hop_ms: i64,
    },
    /// `SLIDINGWINDOW`.
    Sliding {
        /// Look-back length.
        size_ms: i64,
        /// Trigger delay.
        delay_ms: i64,
    },
    /// `SESSIONWINDOW`.
    Session {
        /// Maximum duration.
        max_ms: i64,
        /// Inactivity timeout.
        timeout_ms: i64,
    },
    /// `COUNTWINDOW`.
    Count {
        /// Events per window.
        size: u64,
        /// Emit every `hop` events (default `size`).
        hop: u64,
    },
    /// `STATEWINDOW`.
    State {
        /// Begin condition (or the single condition).
        begin: PExpr,
        /// Emit condition of the two-condition form.
        emit: Option<PExpr>,
    },
}

/// The window of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPlan {
    /// Kind and sizes.
    pub spec: WindowSpec,
    /// Unit the sizes were written in (aligns processing-time windows).
    pub unit: TimeUnit,
    /// `FILTER (WHERE ...)`: events entering the window.
    pub filter: Option<PExpr>,
    /// `OVER (WHEN ...)`: events that trigger a sliding window.
    pub trigger: Option<PExpr>,
    /// `OVER (PARTITION BY ...)` of state windows.
    pub partition: Vec<PExpr>,
}

/// One join step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinPlan {
    /// Kind.
    pub kind: JoinKind,
    /// Index of the left source of the first join. eKuiper takes the two
    /// sides from the first two streams named in ON, so `l LEFT JOIN r ON
    /// r.id = l.id` keeps unmatched `r` rows; later joins extend the
    /// joined rows.
    pub left: u16,
    /// Index of the joined (right) source.
    pub source: u16,
    /// `ON` condition.
    pub on: Option<PExpr>,
    /// For a lookup table: the table columns queried and, for each, the
    /// stream expression giving its value (from `ON` equalities).
    pub lookup: Option<LookupKeys>,
}

/// How a lookup table is queried for each row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupKeys {
    /// Table columns compared.
    pub columns: Vec<String>,
    /// The value of each column, from the joined rows.
    pub values: Vec<PExpr>,
}

/// Grouping and aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatePlan {
    /// GROUP BY keys (empty: one group per emission, or per event without
    /// a window).
    pub keys: Vec<PExpr>,
    /// Aggregate calls; call `i` writes slot `base + i`.
    pub calls: Vec<AggregateCall>,
    /// First aggregate slot (the input row width).
    pub base: u32,
}

/// One aggregate call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateCall {
    /// Registered name.
    pub func: String,
    /// Arguments (a `*` argument is [`PExpr::Row`]).
    pub args: Vec<PExpr>,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<PExpr>,
}

/// An ORDER BY key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    /// Key expression.
    pub expr: PExpr,
    /// Descending.
    pub descending: bool,
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProjectField {
    /// `expr AS name`.
    Expr {
        /// Output key.
        name: String,
        /// Value.
        expr: PExpr,
        /// Computed but not output (`INVISIBLE`).
        invisible: bool,
        /// Written with `AS` (with `sendNilField`, aliased and column items
        /// are sent as null; other expressions are omitted when null).
        aliased: bool,
    },
    /// `*` of some sources, minus `except`, with `replace`d columns.
    Wildcard {
        /// Sources whose columns are expanded, in precedence order.
        sources: Vec<u16>,
        /// Names left out.
        except: Vec<String>,
        /// Names computed instead.
        replace: Vec<(String, PExpr)>,
    },
    /// A set-returning call (`unnest(a)`), expanding into rows.
    Unnest {
        /// Output key for non-map elements.
        name: String,
        /// The array.
        expr: PExpr,
    },
    /// `changed_cols(prefix, ignoreNull, cols...)`: adds `<prefix><name>`
    /// keys for changed columns.
    ChangedCols {
        /// Key prefix.
        prefix: String,
        /// Skip nulls.
        ignore_null: bool,
        /// Columns (name, value).
        cols: Vec<(String, PExpr)>,
        /// Slot-independent state key.
        site: u32,
    },
}

/// An operator node with its stable id and eKuiper node name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorInfo {
    /// Stable id within the rule.
    pub id: u32,
    /// eKuiper's node name (`source_demo`, `op_2_decoder`, `op_3_window`).
    pub name: String,
    /// Instances the node runs (rule option `concurrency` for stateless
    /// stages, 1 for the others).
    pub parallelism: u32,
}

/// Builds a literal from a JSON value where possible (plan-time checks).
pub(crate) fn literal_json(l: &Literal) -> serde_json::Value {
    match l {
        Literal::Null => serde_json::Value::Null,
        Literal::Bool(b) => (*b).into(),
        Literal::Int(i) => (*i).into(),
        Literal::Float(f) => serde_json::Number::from_f64(*f).map(Into::into).unwrap_or_default(),
        Literal::String(s) => s.clone().into(),
    }
}
