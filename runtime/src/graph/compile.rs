//! From a physical plan to the operators of a rule, in pipeline order.

use std::sync::Arc;

use weir_planner::{PExpr, PhysicalPlan, ProjectField, WindowSpec};

use crate::decode::Decoder;
use crate::expr::{compile, Expr, Layout};
use crate::functions::{FuncError, FunctionImpl, Registry};
use crate::operator::{
    AggregateOp, AggregateSite, AnalyticOp, AnalyticSite, DecodeOp, FilterOp, JoinOp, JoinStep, Layer, Operator,
    OrderOp, ProjectItem, ProjectOp, RuleContext, StateConditions, TableState, WatermarkOp, WindowOp,
};

/// A compiled stage: its eKuiper node name, the operator and its input count.
pub(crate) struct Stage {
    pub(crate) name: String,
    pub(crate) op: Box<dyn Operator>,
    pub(crate) inputs: usize,
    /// Runs as parallel instances (the plan's parallelism is above 1).
    pub(crate) parallel: bool,
    /// Stable operator id from the plan (addresses its checkpointed state).
    pub(crate) id: u32,
    /// A lookup join: run by its own asynchronous actor instead of `op`.
    pub(crate) lookup: Option<super::lookup::LookupSpec>,
}

/// The operators of a rule.
pub(crate) struct Compiled {
    /// One decoder per plan source.
    pub(crate) decoders: Vec<Stage>,
    /// The pipeline after the decoders, in order.
    pub(crate) stages: Vec<Stage>,
    /// For each table source: (stage index of the join, input index).
    pub(crate) table_inputs: Vec<(u16, usize, usize)>,
}

/// Compiles the plan's operators. Instances compiled for parallel stages
/// share `layout`, which also holds rule-wide state (`last_hit_*`).
pub(crate) fn compile_plan(
    plan: &PhysicalPlan,
    registry: &Registry,
    cx: &RuleContext,
    layout: &Arc<Layout>,
) -> Result<Compiled, FuncError> {
    let c = |e: &PExpr| compile(e, registry, layout);
    let width = plan.width as usize;
    let event_time = plan.options.is_event_time;
    let names = &plan.operators;
    let mut name_idx = plan.sources.len();
    // Node names and parallelism come from the plan, in stage order.
    let mut next_name = |fallback: &str| {
        let n = names.get(name_idx).map(|o| (o.name.clone(), o.parallelism > 1, o.id));
        name_idx += 1;
        n.unwrap_or_else(|| (fallback.to_string(), false, name_idx as u32))
    };

    let (decoder_name, decoder_parallel, decoder_id) = next_name("op_2_decoder");
    let decoders = plan
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ts = if event_time && !s.is_table() { s.def.options.timestamp.as_deref() } else { None };
            let dec = Decoder::new(s, i as u16, width, ts);
            let name =
                if plan.sources.len() == 1 { decoder_name.clone() } else { format!("{decoder_name}_{}", s.name) };
            Stage {
                name,
                op: Box::new(DecodeOp::new(dec, s.meta_slot.map(|m| m as usize))),
                inputs: 1,
                parallel: decoder_parallel,
                id: decoder_id,
                lookup: None,
            }
        })
        .collect();
    let streams = plan.sources.iter().filter(|s| !s.is_table()).count();

    let mut stages: Vec<Stage> = Vec::new();
    let push = |stages: &mut Vec<Stage>, (name, parallel, id): (String, bool, u32), op: Box<dyn Operator>| {
        let inputs = if stages.is_empty() { streams } else { 1 };
        stages.push(Stage { name, op, inputs, parallel, id, lookup: None });
    };
    if event_time {
        push(&mut stages, next_name("watermark"), Box::new(WatermarkOp::new(streams, plan.options.late_tolerance_ms)));
    }
    if !plan.analytics.is_empty() {
        let mut sites = Vec::new();
        for a in &plan.analytics {
            let def = registry.get(&a.func).ok_or_else(|| FuncError::new(format!("function {} not found", a.func)))?;
            let FunctionImpl::Analytic(factory) = &def.imp else {
                return Err(FuncError::new(format!("{} is not an analytic function", a.func)));
            };
            sites.push(AnalyticSite::new(
                factory.clone(),
                a.args.iter().map(c).collect::<Result<_, _>>()?,
                a.partition.iter().map(c).collect::<Result<_, _>>()?,
                a.when.as_ref().map(c).transpose()?,
                a.slot as usize,
            ));
        }
        push(&mut stages, next_name("analytic"), Box::new(AnalyticOp::new(sites, cx.clone())));
    }
    if let Some(f) = &plan.pre_filter {
        push(&mut stages, next_name("filter"), Box::new(FilterOp::new(c(f)?, cx.clone())));
    }
    if let Some(w) = &plan.window {
        let op = WindowOp::new(
            w.spec.clone(),
            w.unit,
            w.filter.as_ref().map(c).transpose()?,
            w.trigger.as_ref().map(c).transpose()?,
            match &w.spec {
                WindowSpec::State { begin, emit } => Some(StateConditions {
                    partition: w.partition.iter().map(c).collect::<Result<_, _>>()?,
                    begin: c(begin)?,
                    emit: emit.as_ref().map(c).transpose()?,
                }),
                _ => None,
            },
            event_time,
            cx.clone(),
        );
        push(&mut stages, next_name("window"), Box::new(op));
    }
    let mut table_inputs = Vec::new();
    let lookups = plan.joins.iter().filter(|j| j.lookup.is_some()).count();
    if lookups > 0 && lookups < plan.joins.len() {
        return Err(FuncError::new("lookup tables cannot be combined with other joins in one rule yet"));
    }
    let source_slots: Vec<Vec<usize>> = plan
        .sources
        .iter()
        .map(|s| {
            let mut v: Vec<usize> = s.columns.iter().map(|c| c.slot as usize).collect();
            v.extend(s.all_slot.map(|x| x as usize));
            v.extend(s.meta_slot.map(|x| x as usize));
            v
        })
        .collect();
    if lookups > 0 {
        let steps = plan
            .joins
            .iter()
            .filter_map(|j| j.lookup.as_ref().map(|k| (j, k)))
            .map(|(j, k)| {
                Ok(super::lookup::LookupStep {
                    kind: j.kind,
                    source: j.source,
                    columns: k.columns.clone(),
                    values: k.values.iter().map(c).collect::<Result<_, _>>()?,
                    on: j.on.as_ref().map(c).transpose()?,
                    decoder: Decoder::new(&plan.sources[j.source as usize], j.source, width, None),
                })
            })
            .collect::<Result<Vec<_>, FuncError>>()?;
        let (name, _, id) = next_name("join");
        let inputs = if stages.is_empty() { streams } else { 1 };
        let spec = super::lookup::LookupSpec { steps, source_slots: source_slots.clone(), cx: cx.clone() };
        stages.push(Stage {
            name,
            op: Box::new(FilterOp::new(Expr::Lit(crate::value::Value::Bool(true)), cx.clone())),
            inputs,
            parallel: false,
            id,
            lookup: Some(spec),
        });
    } else if !plan.joins.is_empty() {
        let steps = plan
            .joins
            .iter()
            .map(|j| {
                Ok(JoinStep {
                    kind: j.kind,
                    left: j.left,
                    source: if j.left == j.source { 0 } else { j.source },
                    on: j.on.as_ref().map(c).transpose()?,
                })
            })
            .collect::<Result<Vec<_>, FuncError>>()?;
        let tables: Vec<TableState> = plan
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_table() && !s.def.is_lookup())
            .map(|(i, s)| TableState::new(i as u16, s.def.name.as_str(), s.def.retain_size().max(1) as usize))
            .collect();
        let join = JoinOp::new(steps, source_slots, tables, cx.clone());
        let stage_idx = stages.len();
        for (i, s) in plan.sources.iter().enumerate() {
            if s.is_table() {
                if let Some(input) = join.table_input(i as u16) {
                    table_inputs.push((i as u16, stage_idx, input));
                }
            }
        }
        let (name, parallel, id) = next_name("join");
        let inputs = if stages.is_empty() { streams } else { 1 } + table_inputs.len();
        stages.push(Stage { name, op: Box::new(join), inputs, parallel, id, lookup: None });
    }
    if let Some(f) = &plan.filter {
        push(&mut stages, next_name("filter"), Box::new(FilterOp::new(c(f)?, cx.clone())));
    }
    if let Some(a) = &plan.aggregate {
        let mut sites = Vec::new();
        for call in &a.calls {
            let def =
                registry.get(&call.func).ok_or_else(|| FuncError::new(format!("function {} not found", call.func)))?;
            let FunctionImpl::Aggregate(factory) = &def.imp else {
                return Err(FuncError::new(format!("{} is not an aggregate function", call.func)));
            };
            // count(*) only needs to know a row is there: skip building the
            // row map for it.
            let args = call
                .args
                .iter()
                .map(|arg| match arg {
                    PExpr::Row(_) if def.name == "count" => Ok(Expr::Lit(crate::value::Value::Bool(true))),
                    e => c(e),
                })
                .collect::<Result<_, _>>()?;
            sites.push(AggregateSite {
                factory: factory.clone(),
                args,
                filter: call.filter.as_ref().map(c).transpose()?,
            });
        }
        let keys = a.keys.iter().map(c).collect::<Result<_, _>>()?;
        push(&mut stages, next_name("aggregate"), Box::new(AggregateOp::new(keys, sites, a.base as usize, cx.clone())));
    }
    if let Some(h) = &plan.having {
        push(&mut stages, next_name("having"), Box::new(FilterOp::having(c(h)?, cx.clone())));
    }
    if !plan.order.is_empty() {
        let keys = plan.order.iter().map(|k| Ok((c(&k.expr)?, k.descending))).collect::<Result<_, FuncError>>()?;
        push(&mut stages, next_name("order"), Box::new(OrderOp::new(keys, cx.clone())));
    }
    let send_nil = plan.options.send_nil_field;
    let items = plan
        .project
        .iter()
        .map(|f| {
            Ok(match f {
                ProjectField::Expr { name, expr, invisible, aliased } => {
                    let layer = match (aliased, expr) {
                        (true, _) => Layer::Alias,
                        (false, PExpr::Slot(_) | PExpr::AnySlot(_)) => Layer::Column,
                        (false, _) => Layer::Expr,
                    };
                    ProjectItem::Expr {
                        name: name.clone(),
                        keep_null: send_nil && layer != Layer::Expr,
                        expr: c(expr)?,
                        invisible: *invisible,
                        layer,
                    }
                }
                ProjectField::Wildcard { sources, except, replace } => ProjectItem::Wildcard {
                    sources: sources.clone(),
                    except: except.clone(),
                    replace: replace.iter().map(|(n, e)| Ok((n.clone(), c(e)?))).collect::<Result<_, FuncError>>()?,
                },
                ProjectField::Unnest { name, expr } => ProjectItem::Unnest { name: name.clone(), expr: c(expr)? },
                ProjectField::ChangedCols { prefix, ignore_null, cols, .. } => ProjectItem::ChangedCols {
                    prefix: prefix.clone(),
                    ignore_null: *ignore_null,
                    cols: cols.iter().map(|(n, e)| Ok((n.clone(), c(e)?))).collect::<Result<_, FuncError>>()?,
                    last: Default::default(),
                },
            })
        })
        .collect::<Result<Vec<_>, FuncError>>()?;
    // eKuiper's joined-row pick drops qualified `s.*` when no column is
    // named and there is no bare `*`: such items output nothing.
    let items = if plan.joins.is_empty() {
        items
    } else {
        let bare_star = plan
            .project
            .iter()
            .any(|f| matches!(f, ProjectField::Wildcard { sources, .. } if sources.len() == plan.sources.len()));
        let named = items.iter().any(|i| matches!(i, ProjectItem::Expr { layer: Layer::Column, .. }));
        if bare_star || named {
            items
        } else {
            items.into_iter().filter(|i| !matches!(i, ProjectItem::Wildcard { .. })).collect()
        }
    };
    let limit = plan.limit.map(|l| l as usize);
    push(&mut stages, next_name("project"), Box::new(ProjectOp::new(items, layout.clone(), limit, cx.clone())));
    Ok(Compiled { decoders, stages, table_inputs })
}
