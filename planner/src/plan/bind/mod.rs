//! From a parsed SELECT to a [`PhysicalPlan`].

mod expr;
mod scope;
mod window;

use expr::{Clause, AGG_MARK};
use scope::Scope;

use crate::ast::{BinOp, Expr, JoinKind, Select, SelectField, Statement, StreamKind, WindowKind};
use crate::catalog::Catalog;
use crate::error::{Error, Pos, Result};
use crate::functions::{FunctionKind, FunctionLookup};
use crate::parse::parse_statement;
use crate::plan::naming::default_name;
use crate::plan::{
    AggregateCall, AggregatePlan, AnalyticCall, ContextValue, JoinPlan, LookupKeys, OperatorInfo, PExpr, PhysicalPlan,
    ProjectField, RuleOptions, SortKey, WindowSpec,
};

/// Plans rule `sql` against the catalog with the given options.
///
/// # Errors
/// [`Error::Parse`] or [`Error::Plan`] naming the position and the problem.
///
/// # Examples
/// ```
/// # use weir_planner::*;
/// # struct NoFunctions;
/// # impl FunctionLookup for NoFunctions { fn signature(&self, _: &str) -> Option<FunctionSignature> { None } }
/// let mut catalog = Catalog::new();
/// let Statement::Create(def) = parse_statement(r#"CREATE STREAM s (a BIGINT) WITH (DATASOURCE="t")"#).unwrap() else { panic!() };
/// catalog.insert(*def);
/// let p = plan("r1", "SELECT a * 2 AS b FROM s WHERE a > 1", &catalog, &RuleOptions::default(), &NoFunctions).unwrap();
/// assert_eq!(p.sources[0].columns[0].name, "a");
/// ```
pub fn plan(
    rule_id: &str,
    sql: &str,
    catalog: &Catalog,
    options: &RuleOptions,
    functions: &dyn FunctionLookup,
) -> Result<PhysicalPlan> {
    let stmt = match parse_statement(sql)? {
        Statement::Select(s) => s,
        _ => return Err(Error::plan(Pos { line: 1, column: 1 }, "a rule needs a SELECT statement")),
    };
    let mut refs = vec![&stmt.from];
    refs.extend(stmt.joins.iter().map(|j| &j.source));
    let scope = Scope::new(&refs, catalog)?;
    let mut b = Binder {
        scope,
        functions,
        aliases: Vec::new(),
        expanding: Vec::new(),
        aggregates: Vec::new(),
        analytics: Vec::new(),
        hit_sites: 0,
        gate: None,
        changed_sites: 0,
    };
    b.build(rule_id, &stmt, options)
}

/// Binding state of one statement.
pub(crate) struct Binder<'a> {
    scope: Scope,
    functions: &'a dyn FunctionLookup,
    /// Select aliases and their expressions.
    aliases: Vec<(String, Expr)>,
    /// Aliases being expanded (an alias means the column inside itself).
    expanding: Vec<String>,
    aggregates: Vec<(Expr, AggregateCall)>,
    analytics: Vec<(Expr, AnalyticCall)>,
    /// `last_hit_*` call sites handed out.
    hit_sites: u32,
    /// While binding a condition: the hit sites it must update.
    gate: Option<Vec<u32>>,
    changed_sites: u32,
}

impl Binder<'_> {
    fn build(&mut self, rule_id: &str, s: &Select, options: &RuleOptions) -> Result<PhysicalPlan> {
        self.check_sources(s, options)?;
        for f in &s.fields {
            if let SelectField::Expr { expr, alias: Some(a), .. } = f {
                self.aliases.push((a.clone(), expr.clone()));
            }
        }
        let project = self.project(&s.fields)?;
        let window = match &s.window {
            Some(w) => Some(self.window(w)?),
            None => None,
        };
        let joins = s
            .joins
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let (left, source) = match (&j.on, i) {
                    (Some(on), 0) => self.join_sides(on).unwrap_or((0, 1)),
                    _ => (0, i as u16 + 1),
                };
                let on = match &j.on {
                    Some(on) => Some(self.bind(on, Clause::Row)?),
                    None => None,
                };
                let joined = i as u16 + 1;
                let lookup = if self.scope.sources[joined as usize].def.is_lookup() {
                    Some(self.lookup_keys(j, joined, on.as_ref())?)
                } else {
                    None
                };
                Ok(JoinPlan { kind: j.kind, left, source, on, lookup })
            })
            .collect::<Result<Vec<_>>>()?;
        let condition = match &s.condition {
            Some(c) => Some(self.bind_condition(c, Clause::Row)?),
            None => None,
        };
        let mut keys = s.dimensions.iter().map(|d| self.bind(d, Clause::Row)).collect::<Result<Vec<_>>>()?;
        if !keys.is_empty() && window.is_none() {
            return Err(Error::plan(s.dimensions[0].pos(), "select stmt group by should be used with window"));
        }
        let having = match &s.having {
            Some(h) => {
                self.check_having(h)?;
                Some(self.bind_condition(h, Clause::Output)?)
            }
            None => None,
        };
        let mut order = s
            .order_by
            .iter()
            .map(|o| Ok(SortKey { expr: self.bind(&o.expr, Clause::Output)?, descending: o.descending }))
            .collect::<Result<Vec<_>>>()?;

        // eKuiper builds no grouping for state windows: their GROUP BY
        // dimensions are ignored and the whole window is one group.
        if matches!(window.as_ref().map(|w| &w.spec), Some(WindowSpec::State { .. })) {
            keys.clear();
        }
        let base = self.scope.width();
        let aggregating = !self.aggregates.is_empty() || !keys.is_empty();
        let mut project = project;
        let mut having = having;
        let remap = |s: u32| if s >= AGG_MARK { base + (s - AGG_MARK) } else { s };
        for f in &mut project {
            match f {
                ProjectField::Expr { expr, .. } | ProjectField::Unnest { expr, .. } => expr.map_slots(&remap),
                ProjectField::Wildcard { replace, .. } => replace.iter_mut().for_each(|(_, e)| e.map_slots(&remap)),
                ProjectField::ChangedCols { cols, .. } => cols.iter_mut().for_each(|(_, e)| e.map_slots(&remap)),
            }
        }
        if let Some(h) = &mut having {
            h.map_slots(&remap);
        }
        order.iter_mut().for_each(|k| k.expr.map_slots(&remap));

        // eKuiper pushes WHERE below processing-time windows other than
        // count and sliding; with joins only the conjuncts that read one
        // stream go down, each applied to that stream's rows.
        let pushdown = match &window {
            None => s.joins.is_empty(),
            Some(w) => {
                !options.is_event_time && !matches!(w.spec, WindowSpec::Count { .. } | WindowSpec::Sliding { .. })
            }
        };
        let (pre_filter, filter) = match condition {
            Some(c) if pushdown && !s.joins.is_empty() => self.split_for_join(c),
            Some(c) if pushdown => (Some(c), None),
            c => (None, c),
        };
        let aggregate = aggregating.then(|| AggregatePlan {
            keys,
            calls: self.aggregates.iter().map(|(_, c)| c.clone()).collect(),
            base,
        });
        let limit = match s.limit {
            Some(n) if n < 0 => return Err(Error::plan(Pos::default(), "LIMIT must not be negative")),
            Some(n) => Some(n as u64),
            None => None,
        };
        let mut plan = PhysicalPlan {
            rule_id: rule_id.to_string(),
            options: options.clone(),
            sources: self.scope.sources.clone(),
            width: base,
            analytics: self.analytics.iter().map(|(_, a)| a.clone()).collect(),
            pre_filter,
            window,
            joins,
            filter,
            aggregate,
            having,
            order,
            project,
            limit,
            operators: Vec::new(),
            hit_sites: self.hit_sites,
            changed_sites: self.changed_sites,
        };
        plan.operators = operator_names(&plan);
        Ok(plan)
    }

    fn check_sources(&self, s: &Select, options: &RuleOptions) -> Result<()> {
        let streams = self.scope.sources.iter().filter(|src| src.def.kind == StreamKind::Stream).count();
        if self.scope.sources[0].def.kind == StreamKind::Table && streams == 0 && s.window.is_some() {
            return Err(Error::plan(s.from.pos, "cannot run window for TABLE sources"));
        }
        if streams > 1 && s.window.as_ref().is_none_or(|w| w.kind == WindowKind::State) {
            return Err(Error::plan(s.from.pos, "a time window or count window is required to join multiple streams"));
        }
        if streams == 0 {
            return Err(Error::plan(s.from.pos, "a rule needs at least one stream"));
        }
        if options.is_event_time {
            for src in self.scope.sources.iter().filter(|src| src.def.kind == StreamKind::Stream) {
                if src.def.options.timestamp.is_none() {
                    return Err(Error::plan(
                        s.from.pos,
                        format!("isEventTime is set but stream {} has no TIMESTAMP field", src.name),
                    ));
                }
            }
        }
        if options.send_meta_to_sink && (s.window.is_some() || !s.joins.is_empty()) {
            return Err(Error::plan(s.from.pos, "sendMetaToSink cannot be used with windows or joins"));
        }
        Ok(())
    }

    fn project(&mut self, fields: &[SelectField]) -> Result<Vec<ProjectField>> {
        let mut out = Vec::new();
        let mut unnamed = 0;
        for f in fields {
            match f {
                SelectField::Wildcard { qualifier, except, replace, pos } => {
                    let sources: Vec<u16> = match qualifier {
                        Some(q) => vec![self
                            .scope
                            .source_index(q)
                            .ok_or_else(|| Error::plan(*pos, format!("unknown stream {q} in {q}.*")))?],
                        None => (0..self.scope.sources.len() as u16).collect(),
                    };
                    for &i in &sources {
                        self.scope.expand(i, *pos)?;
                    }
                    let replace = replace
                        .iter()
                        .map(|(e, n)| Ok((n.clone(), self.bind(e, Clause::Output)?)))
                        .collect::<Result<_>>()?;
                    out.push(ProjectField::Wildcard { sources, except: except.clone(), replace });
                }
                SelectField::Expr { expr, alias, invisible, pos } => {
                    if let Some(srf) = self.set_returning(expr, alias.as_deref(), *pos)? {
                        out.push(srf);
                        continue;
                    }
                    let name = match alias {
                        Some(a) => {
                            // Count unnamed items even when aliased? eKuiper
                            // numbers only unnamed ones.
                            a.clone()
                        }
                        None => default_name(expr, &mut unnamed),
                    };
                    let bound = match alias {
                        Some(a) => {
                            self.expanding.push(a.clone());
                            let r = self.bind(expr, Clause::Output);
                            self.expanding.pop();
                            r?
                        }
                        None => self.bind(expr, Clause::Output)?,
                    };
                    out.push(ProjectField::Expr { name, expr: bound, invisible: *invisible, aliased: alias.is_some() });
                }
            }
        }
        Ok(out)
    }

    /// `unnest(...)` as a select item.
    fn set_returning(&mut self, e: &Expr, alias: Option<&str>, pos: Pos) -> Result<Option<ProjectField>> {
        let Expr::Call { name, args, .. } = e else { return Ok(None) };
        let Some(sig) = self.functions.signature(name) else { return Ok(None) };
        if sig.kind != FunctionKind::SetReturning {
            return Ok(None);
        }
        match sig.name.as_str() {
            "unnest" => {
                if args.len() != 1 {
                    return Err(Error::plan(pos, format!("unnest: expect 1 arguments but found {}", args.len())));
                }
                let expr = self.bind(&args[0], Clause::Output)?;
                Ok(Some(ProjectField::Unnest { name: alias.unwrap_or("unnest").to_string(), expr }))
            }
            "changed_cols" => self.changed_cols(args, pos).map(Some),
            other => Err(Error::plan(pos, format!("set-returning function {other} is not supported yet"))),
        }
    }

    /// Binds a condition (WHERE, HAVING, a window trigger): hit functions
    /// inside it only read, and the condition records a hit when true.
    pub(crate) fn bind_condition(&mut self, e: &Expr, clause: Clause) -> Result<PExpr> {
        let outer = self.gate.replace(Vec::new());
        let bound = self.bind(e, clause);
        let sites = std::mem::replace(&mut self.gate, outer).unwrap_or_default();
        let bound = bound?;
        Ok(if sites.is_empty() { bound } else { PExpr::HitGate { sites, cond: Box::new(bound) } })
    }

    /// The key columns of a lookup join: each `stream expression = table
    /// column` equality of ON (eKuiper requires at least one).
    fn lookup_keys(&self, j: &crate::ast::Join, table: u16, on: Option<&PExpr>) -> Result<LookupKeys> {
        if !matches!(j.kind, JoinKind::Inner | JoinKind::Left) {
            return Err(Error::plan(j.source.pos, "a lookup table can only be joined with INNER or LEFT JOIN"));
        }
        let mut conjuncts = Vec::new();
        if let Some(on) = on {
            split_and(on.clone(), &mut conjuncts);
        }
        let table_cols = &self.scope.sources[table as usize].columns;
        let column_of = |e: &PExpr| match e {
            PExpr::Slot(s) => table_cols.iter().find(|c| c.slot == *s).map(|c| c.name.clone()),
            _ => None,
        };
        let mut keys = LookupKeys { columns: Vec::new(), values: Vec::new() };
        for c in conjuncts {
            if let PExpr::Binary { op: BinOp::Eq, left, right } = c {
                for (col, other) in [(&left, &right), (&right, &left)] {
                    if let Some(name) = column_of(col) {
                        if !self.sources_of(other).contains(&table) {
                            keys.columns.push(name);
                            keys.values.push((**other).clone());
                            break;
                        }
                    }
                }
            }
        }
        if keys.columns.is_empty() {
            return Err(Error::plan(
                j.source.pos,
                format!(
                    "join with lookup table {} needs an ON equality between a stream expression and a table column",
                    j.source.name
                ),
            ));
        }
        Ok(keys)
    }

    /// The first two distinct streams an ON condition names, as eKuiper's
    /// join takes its left and right sides from them.
    fn join_sides(&self, on: &Expr) -> Option<(u16, u16)> {
        let mut seen: Vec<u16> = Vec::new();
        on.walk(&mut |e| {
            if let Expr::Column { qualifier: Some(q), .. } = e {
                if let Some(i) = self.scope.source_index(q) {
                    if !seen.contains(&i) {
                        seen.push(i);
                    }
                }
            }
            true
        });
        match seen[..] {
            [a, b, ..] if a <= 1 && b <= 1 => Some((a, b)),
            _ => None,
        }
    }

    /// Splits a WHERE over joined streams: conjuncts reading a single
    /// stream become per-stream filters before the window, the rest stay
    /// after the join.
    fn split_for_join(&self, c: PExpr) -> (Option<PExpr>, Option<PExpr>) {
        let mut conjuncts = Vec::new();
        split_and(c, &mut conjuncts);
        let (mut pushed, mut kept) = (Vec::new(), Vec::new());
        for c in conjuncts {
            let sources = self.sources_of(&c);
            if sources.len() == 1 {
                let s = *sources.iter().next().expect("one source");
                let not_this = PExpr::Binary {
                    op: BinOp::NotEq,
                    left: Box::new(PExpr::Context(ContextValue::SourceIndex)),
                    right: Box::new(PExpr::Lit(crate::ast::Literal::Int(s as i64))),
                };
                pushed.push(PExpr::Binary { op: BinOp::Or, left: Box::new(not_this), right: Box::new(c) });
            } else {
                kept.push(c);
            }
        }
        (join_and(pushed), join_and(kept))
    }

    /// The sources whose columns an expression reads.
    fn sources_of(&self, e: &PExpr) -> std::collections::BTreeSet<u16> {
        let mut out = std::collections::BTreeSet::new();
        e.visit(&mut |x| {
            let mut slot = |s: u32| {
                for (i, src) in self.scope.sources.iter().enumerate() {
                    if src.columns.iter().any(|c| c.slot == s) || src.all_slot == Some(s) || src.meta_slot == Some(s) {
                        out.insert(i as u16);
                    }
                }
            };
            match x {
                PExpr::Slot(s) => slot(*s),
                PExpr::AnySlot(v) => v.iter().for_each(|s| slot(*s)),
                PExpr::Row(v) => out.extend(v.iter().copied()),
                PExpr::Meta { source, .. } => {
                    out.insert(*source);
                }
                _ => {}
            }
        });
        out
    }

    /// `changed_cols(prefix, ignoreNull, col, ... | *)`.
    fn changed_cols(&mut self, args: &[Expr], pos: Pos) -> Result<ProjectField> {
        use crate::ast::Literal;
        let (Some(Expr::Literal(Literal::String(prefix))), Some(Expr::Literal(Literal::Bool(ignore_null)))) =
            (args.first(), args.get(1))
        else {
            return Err(Error::plan(pos, "changed_cols expects a string prefix and a boolean ignoreNull first"));
        };
        if args.len() < 3 {
            return Err(Error::plan(pos, "changed_cols expects at least one column"));
        }
        let mut cols = Vec::new();
        for a in &args[2..] {
            match a {
                Expr::Wildcard(p) => {
                    for i in 0..self.scope.sources.len() as u16 {
                        self.scope.expand(i, *p)?;
                        let names: Vec<String> =
                            self.scope.sources[i as usize].columns.iter().map(|c| c.name.clone()).collect();
                        for n in names {
                            let e = self.scope.unqualified(&n, *p)?;
                            cols.push((n, e));
                        }
                    }
                }
                e => {
                    let mut unnamed = 0;
                    let name = default_name(e, &mut unnamed);
                    cols.push((name, self.bind(e, Clause::Output)?));
                }
            }
        }
        let site = self.changed_sites;
        self.changed_sites += 1;
        Ok(ProjectField::ChangedCols { prefix: prefix.clone(), ignore_null: *ignore_null, cols, site })
    }

    /// HAVING must be "all aggregate" as eKuiper's `allAggregate` sees it:
    /// binary operators are checked on both sides; a call must be or contain
    /// an aggregate; a column must be the alias of an aggregate; anything
    /// else (literals, parentheses, CASE, ...) passes unchecked.
    fn check_having(&self, h: &Expr) -> Result<()> {
        match h {
            Expr::Binary { left, right, .. } => {
                self.check_having(left)?;
                self.check_having(right)
            }
            Expr::Call { name, pos, .. } if !self.contains_aggregate(h) => {
                Err(Error::plan(*pos, format!("Not allowed to call non-aggregate functions in HAVING clause: {name}")))
            }
            Expr::Column { qualifier, name, pos } => {
                let alias_of_agg =
                    qualifier.is_none() && self.aliases.iter().any(|(a, ae)| a == name && self.contains_aggregate(ae));
                if alias_of_agg {
                    Ok(())
                } else {
                    Err(Error::plan(
                        *pos,
                        format!(
                            "HAVING may only use aggregate functions, their aliases and constants; found column {name}"
                        ),
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    fn contains_aggregate(&self, e: &Expr) -> bool {
        let mut found = false;
        e.walk(&mut |x| {
            if let Expr::Call { name, .. } = x {
                if self.functions.signature(name).is_some_and(|s| s.kind == FunctionKind::Aggregate) {
                    found = true;
                }
            }
            !found
        });
        found
    }
}

fn split_and(e: PExpr, out: &mut Vec<PExpr>) {
    match e {
        PExpr::Binary { op: BinOp::And, left, right } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        e => out.push(e),
    }
}

fn join_and(v: Vec<PExpr>) -> Option<PExpr> {
    v.into_iter().reduce(|l, r| PExpr::Binary { op: BinOp::And, left: Box::new(l), right: Box::new(r) })
}

/// eKuiper's node names (`source_<stream>`, then `op_<n>_<kind>` counting
/// plan nodes from the source), with each node's parallelism: stages that
/// keep no state across messages run `concurrency` instances; the others
/// (watermark, analytic, window, join, stateful projections, rules with
/// rule-wide hit state) run one.
fn operator_names(p: &PhysicalPlan) -> Vec<OperatorInfo> {
    let par = if p.hit_sites > 0 { 1 } else { p.options.concurrency.max(1) };
    let stateful_project = p.project.iter().any(|f| matches!(f, ProjectField::ChangedCols { .. }));
    let streams = p.sources.iter().filter(|s| !s.is_table()).count();
    let mut ops: Vec<(String, u32)> = p.sources.iter().map(|s| (format!("source_{}", s.name), 1)).collect();
    let mut n = 2;
    let mut push = |kind: &str, parallel: bool, ops: &mut Vec<(String, u32)>| {
        ops.push((format!("op_{n}_{kind}"), if parallel { par } else { 1 }));
        n += 1;
    };
    // Parallel instances need a single input to deal from.
    push("decoder", p.sources.len() == 1, &mut ops);
    let mut first = true;
    let mut stage = |kind: &str, stateless: bool, ops: &mut Vec<(String, u32)>| {
        let single_input = !first || streams == 1;
        first = false;
        push(kind, stateless && single_input, ops);
    };
    if p.options.is_event_time {
        stage("watermark", false, &mut ops);
    }
    if !p.analytics.is_empty() {
        stage("analytic", false, &mut ops);
    }
    if p.pre_filter.is_some() {
        stage("filter", true, &mut ops);
    }
    if p.window.is_some() {
        stage("window", false, &mut ops);
    }
    if !p.joins.is_empty() {
        stage("join", false, &mut ops);
    }
    if p.filter.is_some() {
        stage("filter", true, &mut ops);
    }
    if p.aggregate.is_some() {
        stage("aggregate", true, &mut ops);
    }
    if p.having.is_some() {
        stage("having", true, &mut ops);
    }
    if !p.order.is_empty() {
        stage("order", true, &mut ops);
    }
    stage("project", !stateful_project, &mut ops);
    ops.into_iter()
        .enumerate()
        .map(|(id, (name, parallelism))| OperatorInfo { id: id as u32, name, parallelism })
        .collect()
}

#[cfg(test)]
mod tests;
