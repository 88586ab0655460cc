//! One weir node: the catalog of streams and tables, the rules, and their
//! persistence in the data directory. The REST API and the CLI's `serve`
//! drive it; nothing here knows HTTP.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::Value;
use weir_connectors::Environment;
use weir_planner::{Catalog, Statement, StreamDef, StreamKind};
use weir_runtime::state::{RocksBackend, StateBackend};

use crate::error::{check_name, code, Error, Result};
use crate::rules::{self, Functions, Rule, RuleDef, RuleState, Rules};

mod cluster;
mod shard_runs;
mod shards;

use crate::store::Store;
pub(crate) use cluster::ClusterOptions;
use cluster::Replication;
use weir_cluster::Command;

/// What a stream statement sent to `POST /streams` produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A sentence (`Stream demo is created.`).
    Text(String),
    /// A JSON document (DESCRIBE, SHOW).
    Json(Value),
}

/// A node.
pub(crate) struct Node {
    catalog: RwLock<Catalog>,
    rules: Rules,
    /// Models, plugins and services, and the functions they make.
    extensions: weir_plugins::Extensions,
    functions: Arc<Functions>,
    /// The raft peer, in a cluster; the metadata is then the cluster's.
    cluster: Option<weir_cluster::Cluster>,
    /// Rule-state replication, in a cluster.
    replication: Option<Arc<Replication>>,
    /// The exchange and checkpoint agreement of sharded rules, in a cluster.
    shard_host: Option<shards::ShardHost>,
    /// One reconcile with the cluster's metadata at a time.
    reconciling: tokio::sync::Mutex<()>,
    /// The REST API's base URL once it listens (other nodes forward to it).
    rest_url: std::sync::OnceLock<String>,
    store: Store,
    started: Instant,
}

/// `Stream` or `Table`, as success sentences start.
fn title(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Stream => "Stream",
        StreamKind::Table => "Table",
    }
}

impl Node {
    /// Opens the node stored in `data_dir`: streams, tables and rules come
    /// back, and rules with `triggered: true` are started. Source
    /// configuration comes from eKuiper's files in `etc_dir`, if given
    /// (see [`load_source_conf`]). Must run inside an actix system.
    ///
    /// # Errors
    /// The data directory cannot be created or read, or a configuration
    /// file is invalid.
    pub(crate) async fn open(
        data_dir: &Path,
        etc_dir: Option<&Path>,
        threads: usize,
        cluster: Option<&ClusterOptions>,
    ) -> Result<Arc<Node>> {
        let store = Store::open(data_dir)?;
        let loaded = store.load()?;
        let env = Environment::new(store.dir());
        if let Some(etc) = etc_dir {
            load_source_conf(&env, etc)?;
        }
        configure_http_server(&env, etc_dir)?;
        // One RocksDB per node for operator state (checkpoints).
        let state: Arc<dyn StateBackend> =
            Arc::new(RocksBackend::open(&store.dir().join("state")).map_err(|e| Error::Io {
                context: format!("opening the state store in {}", store.dir().join("state").display()),
                source: std::io::Error::other(e.to_string()),
            })?);
        // Models, plugins and services come back before the rules using them.
        let extensions = weir_plugins::Extensions::open(
            &store.dir().join("plugins"),
            weir_plugins::portable::PortableConfig::default(),
        )?;
        let functions = Arc::new(Functions::new(extensions.registry()));
        // Plugin source and sink symbols become stream TYPEs and actions.
        if env.set_extensions(extensions.connectors()).is_err() {
            tracing::warn!("connector extensions were set twice; keeping the first");
        }
        // In a cluster, rules keep their state through the replicating
        // backend; raft keeps its own in the same store.
        let (cluster, replication, shard_host, rule_state) = match cluster {
            Some(opts) => {
                let (c, r, h) = cluster::start(opts, store.dir(), state.clone()).await?;
                let rule_state: Arc<dyn StateBackend> = r.backend.clone();
                (Some(c), Some(r), Some(h), rule_state)
            }
            None => (None, None, None, state),
        };
        let node = Arc::new(Node {
            catalog: RwLock::new(Catalog::new()),
            rules: Rules::new(threads, env, rule_state, functions.clone()),
            extensions,
            functions,
            cluster,
            replication,
            shard_host,
            reconciling: tokio::sync::Mutex::new(()),
            rest_url: std::sync::OnceLock::new(),
            store,
            started: Instant::now(),
        });
        for (kind, list) in [(StreamKind::Stream, loaded.streams), (StreamKind::Table, loaded.tables)] {
            for (name, sql) in list {
                match weir_planner::parse_statement(&sql) {
                    Ok(Statement::Create(def)) if def.name == name && def.kind == kind => {
                        node.catalog_mut().insert(*def);
                    }
                    Ok(_) => tracing::warn!(%name, "stored {} is not its CREATE statement; skipped", kind.name()),
                    Err(e) => tracing::warn!(%name, "stored {} does not parse: {e}; skipped", kind.name()),
                }
            }
        }
        for (id, json) in loaded.rules {
            let def = match RuleDef::from_json(json, Some(&id)) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(rule = %id, "stored rule is invalid: {e}; skipped");
                    continue;
                }
            };
            let planned = rules::plan(&def, &node.catalog(), &node.functions.current());
            // In a cluster, placement decides where rules run.
            let triggered = def.triggered && node.cluster.is_none();
            // A rule whose streams are gone still comes back, stopped by error.
            let rule = node.rules.insert(def, planned.as_ref().ok().cloned())?;
            if triggered {
                let _ = node.rules.start(&rule, planned).await;
            }
        }
        Ok(node)
    }

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds since the node started.
    pub(crate) fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    // ---- streams and tables ------------------------------------------

    /// Runs a DDL statement (`POST /streams`, `POST /tables`).
    pub(crate) async fn exec_stream_sql(&self, sql: &str) -> Result<Outcome> {
        match weir_planner::parse_statement(sql)? {
            Statement::Create(def) => {
                let (kind, name) = (def.kind, def.name.clone());
                self.create_stream(*def).await?;
                Ok(Outcome::Text(format!("{} {name} is created.", title(kind))))
            }
            Statement::Drop(kind, name) => self.drop_stream(kind, &name, false).await.map(Outcome::Text),
            Statement::Describe(kind, name) => self.describe_stream(kind, &name).map(Outcome::Json),
            Statement::Show(kind) => Ok(Outcome::Json(self.stream_names(kind).into())),
            Statement::Select(_) => {
                Err(Error::bad_request(code::STREAM, "a SELECT is a rule, not a stream statement; POST it to /rules"))
            }
        }
    }

    async fn create_stream(&self, def: StreamDef) -> Result<()> {
        check_name(def.kind.name(), &def.name)?;
        self.catch_up().await?;
        if self.catalog().get(&def.name).is_some() {
            return Err(Error::AlreadyExists { what: def.kind.name(), name: def.name });
        }
        if let Some(c) = self.cluster() {
            return self.propose(c, put_stream(def.kind, &def.name, &def.sql)).await;
        }
        let mut catalog = self.catalog_mut();
        self.store.put_stream(def.kind, &def.name, &def.sql)?;
        catalog.insert(def);
        Ok(())
    }

    /// `PUT /streams/{name}`: creates or replaces `name` with `sql`.
    pub(crate) async fn replace_stream(&self, kind: StreamKind, name: &str, sql: &str) -> Result<String> {
        self.catch_up().await?;
        self.check_replace(kind, name, sql)?;
        if let Some(c) = self.cluster() {
            self.propose(c, put_stream(kind, name, sql)).await?;
        } else {
            let Statement::Create(def) = weir_planner::parse_statement(sql)? else { unreachable!("checked") };
            self.store.put_stream(kind, name, &def.sql)?;
            self.catalog_mut().insert(*def);
        }
        Ok(format!("{} {name} is replaced.", title(kind)))
    }

    /// What `replace_stream` checks before it changes anything.
    fn check_replace(&self, kind: StreamKind, name: &str, sql: &str) -> Result<()> {
        let Statement::Create(def) = weir_planner::parse_statement(sql)? else {
            return Err(Error::bad_request(code::STREAM, format!("expected CREATE {}", kind.name().to_uppercase())));
        };
        if def.name != name {
            return Err(Error::bad_request(
                code::STREAM,
                format!("{} name {} in the statement does not match {name} in the URL", kind.name(), def.name),
            ));
        }
        check_name(kind.name(), name)?;
        let catalog = self.catalog();
        if def.kind != kind || catalog.get(name).is_some_and(|old| old.kind != kind) {
            return Err(Error::not_found(kind.name(), name));
        }
        if let Some(old) = catalog.get(name) {
            if old.options.temp {
                return Err(Error::bad_request(
                    code::STREAM,
                    format!("temporary {} {name} cannot be replaced", kind.name()),
                ));
            }
            if old.options.shared != def.options.shared {
                return Err(Error::bad_request(code::STREAM, format!("cannot change the SHARED option of {name}")));
            }
            let (old_v, new_v) =
                (old.options.version.as_deref().unwrap_or(""), def.options.version.as_deref().unwrap_or(""));
            if !(old_v.is_empty() && new_v.is_empty()) && new_v <= old_v {
                return Err(Error::bad_request(
                    code::STREAM,
                    format!("{} {name}: version {new_v:?} is not newer than {old_v:?}", kind.name()),
                ));
            }
        }
        Ok(())
    }

    /// `DELETE /streams/{name}`; refused while rules use it unless `force`.
    pub(crate) async fn drop_stream(&self, kind: StreamKind, name: &str, force: bool) -> Result<String> {
        self.catch_up().await?;
        if self.catalog().get(name).is_none_or(|d| d.kind != kind) {
            return Err(Error::not_found(kind.name(), name));
        }
        if !force && !self.rules.referencing(name).is_empty() {
            return Err(Error::Referenced { what: kind.name(), name: name.to_string() });
        }
        if let Some(c) = self.cluster() {
            let command = match kind {
                StreamKind::Stream => Command::DropStream { name: name.to_string() },
                StreamKind::Table => Command::DropTable { name: name.to_string() },
            };
            self.propose(c, command).await?;
            return Ok(format!("{} {name} is dropped.", title(kind)));
        }
        let mut catalog = self.catalog_mut();
        self.store.remove_stream(kind, name)?;
        catalog.remove(name);
        Ok(format!("{} {name} is dropped.", title(kind)))
    }

    /// `GET /streams/{name}`: eKuiper's statement JSON.
    pub(crate) fn describe_stream(&self, kind: StreamKind, name: &str) -> Result<Value> {
        match self.catalog().get(name) {
            Some(d) if d.kind == kind => Ok(d.to_ekuiper_json()),
            // eKuiper wraps this one as a stream error (400), unlike drop.
            _ => Err(Error::bad_request(code::STREAM, format!("{} {name} is not found", kind.name()))),
        }
    }

    /// Names of the streams or tables, sorted.
    pub(crate) fn stream_names(&self, kind: StreamKind) -> Vec<String> {
        self.catalog().names(kind)
    }

    /// Tables of one `KIND` (`scan` or `lookup`).
    pub(crate) fn table_names_of_kind(&self, lookup: bool) -> Vec<String> {
        let catalog = self.catalog();
        catalog
            .names(StreamKind::Table)
            .into_iter()
            .filter(|n| catalog.get(n).is_some_and(|d| d.is_lookup() == lookup))
            .collect()
    }

    /// `GET /streamdetails`: `[{"name","type","format"}]`.
    pub(crate) fn stream_details(&self, kind: StreamKind) -> Value {
        let catalog = self.catalog();
        let list: Vec<Value> = catalog
            .names(kind)
            .iter()
            .filter_map(|n| catalog.get(n))
            .map(|d| {
                // eKuiper shows `mqtt` for an empty TYPE, tables included.
                let ty = d.options.source_type.as_deref().filter(|t| !t.is_empty()).unwrap_or("mqtt");
                serde_json::json!({ "name": d.name, "type": ty.to_lowercase(), "format": d.format().to_lowercase() })
            })
            .collect();
        list.into()
    }

    // ---- rules -----------------------------------------------------------

    /// Plans `def` and builds its sinks: what must hold before it is stored.
    /// In a cluster the caller catches up with the metadata first.
    async fn validate(&self, def: &RuleDef) -> Result<weir_planner::PhysicalPlan> {
        let plan = rules::plan(def, &self.catalog(), &self.functions.current())?;
        if def.options.shards > 1 {
            self.check_shardable(def, &plan)?;
        }
        self.rules.check_sinks(def).await?;
        Ok(plan)
    }

    /// Whether rule `def` (planned as `plan`) can run split over shards.
    fn check_shardable(&self, def: &RuleDef, plan: &weir_planner::PhysicalPlan) -> Result<()> {
        let invalid = |m: String| Error::InvalidRule { message: format!("rule {}: {m}", def.id) };
        if self.cluster().is_none() {
            return Err(invalid(format!(
                "shards: {} needs a cluster (weir serve --cluster-listen, then weir cluster init or join)",
                def.options.shards
            )));
        }
        weir_runtime::shard::check_shardable(plan).map_err(invalid)?;
        for s in &plan.sources {
            weir_connectors::shardable(&s.def).map_err(invalid)?;
        }
        Ok(())
    }

    /// `POST /rules/validate`: the streams the rule reads.
    pub(crate) async fn validate_rule(&self, body: &[u8]) -> Result<Vec<String>> {
        let def = RuleDef::parse(body, None)?;
        self.catch_up().await?;
        let plan = self.validate(&def).await?;
        Ok(plan.sources.iter().map(|s| s.name.clone()).collect())
    }

    /// `POST /rules`: validates, stores and (unless `triggered: false`)
    /// starts a rule. A rule that fails to start is still created; its
    /// status says why. Returns the id.
    pub(crate) async fn create_rule(&self, body: &[u8]) -> Result<String> {
        let def = RuleDef::parse(body, None)?;
        self.catch_up().await?;
        if self.rules.contains(&def.id) {
            return Err(Error::AlreadyExists { what: "rule", name: def.id });
        }
        let plan = self.validate(&def).await?;
        let (id, json, triggered) = (def.id.clone(), def.to_json(), def.triggered);
        if let Some(c) = self.cluster() {
            self.propose(c, put_rule(&id, &json)).await?;
            return Ok(id);
        }
        let rule = self.rules.insert(def, Some(plan))?;
        if let Err(e) = self.store.put_rule(&id, &json) {
            let _ = self.rules.remove(&id).await;
            return Err(e);
        }
        if triggered {
            let _ = self.rules.start(&rule, self.plan_of(&rule)).await;
        }
        Ok(id)
    }

    /// `PUT /rules/{id}`: validates the new definition first (the old one
    /// keeps running if it is invalid), then replaces and restarts.
    pub(crate) async fn update_rule(&self, id: &str, body: &[u8]) -> Result<()> {
        let def = RuleDef::parse(body, Some(id))?;
        self.catch_up().await?;
        let plan = self.validate(&def).await?;
        let (json, triggered) = (def.to_json(), def.triggered);
        if let Some(c) = self.cluster() {
            return self.propose(c, put_rule(id, &json)).await;
        }
        let rule = match self.rules.get(id) {
            Ok(rule) => {
                self.rules.replace(&rule, def, plan).await;
                rule
            }
            Err(_) => self.rules.insert(def, Some(plan))?,
        };
        self.store.put_rule(id, &json)?;
        if triggered {
            let _ = self.rules.start(&rule, self.plan_of(&rule)).await;
        }
        Ok(())
    }

    /// `DELETE /rules/{id}`.
    pub(crate) async fn delete_rule(&self, id: &str) -> Result<()> {
        if let Some(c) = self.cluster() {
            self.rules.get(id)?;
            return self.propose(c, Command::DropRule { id: id.to_string() }).await;
        }
        self.rules.remove(id).await?;
        self.store.remove_rule(id)
    }

    fn plan_of(&self, rule: &Rule) -> Result<weir_planner::PhysicalPlan> {
        rules::plan(&rule.state().def, &self.catalog(), &self.functions.current())
    }

    /// `POST /rules/{id}/start`: re-plans against the current catalog and
    /// starts; the rule is stored as triggered.
    pub(crate) async fn start_rule(&self, id: &str) -> Result<()> {
        let rule = self.rules.get(id)?;
        if let Some(c) = self.cluster() {
            return self.propose(c, put_rule(id, &triggered_json(&rule, true))).await;
        }
        let json = self.rules.set_triggered(&rule, true);
        self.store.put_rule(id, &json)?;
        self.rules.start(&rule, self.plan_of(&rule)).await
    }

    /// `POST /rules/{id}/stop`; the rule is stored as not triggered.
    pub(crate) async fn stop_rule(&self, id: &str) -> Result<()> {
        let rule = self.rules.get(id)?;
        if let Some(c) = self.cluster() {
            return self.propose(c, put_rule(id, &triggered_json(&rule, false))).await;
        }
        self.rules.stop(&rule, "canceled manually").await;
        let json = self.rules.set_triggered(&rule, false);
        self.store.put_rule(id, &json)
    }

    /// `POST /rules/{id}/restart`.
    pub(crate) async fn restart_rule(&self, id: &str) -> Result<()> {
        let rule = self.rules.get(id)?;
        if let Some(c) = self.cluster() {
            // Triggered in the metadata; restarted here if it runs here.
            self.propose(c, put_rule(id, &triggered_json(&rule, true))).await?;
            if rule.state().def.options.shards > 1 {
                // All shards restart together, from the committed checkpoint.
                return self.restart_shards(c, id).await;
            }
            if rule.is_live().await {
                self.rules.stop(&rule, "").await;
                self.rules.start(&rule, self.plan_of(&rule)).await?;
            }
            return Ok(());
        }
        self.rules.stop(&rule, "").await;
        let json = self.rules.set_triggered(&rule, true);
        self.store.put_rule(id, &json)?;
        self.rules.start(&rule, self.plan_of(&rule)).await
    }

    /// A snapshot of rule `id`.
    pub(crate) fn rule_state(&self, id: &str) -> Result<RuleState> {
        Ok(self.rules.get(id)?.state())
    }

    /// Snapshots of every rule, by id.
    pub(crate) fn rule_states(&self) -> Vec<RuleState> {
        self.rules.list().iter().map(|r| r.state()).collect()
    }

    /// Stops every rule (sinks flush) and the rule threads.
    pub(crate) async fn shutdown(&self) {
        self.rules.shutdown().await;
    }

    // ---- models, plugins and services ------------------------------------

    /// The node's models, plugins and services.
    pub(crate) fn extensions(&self) -> &weir_plugins::Extensions {
        &self.extensions
    }

    /// Runs `change` on the extensions (off the async workers: it may
    /// unpack packages or start processes), then gives new rules the
    /// functions it made. Running rules keep theirs.
    pub(crate) async fn change_extensions<T: Send + 'static>(
        self: &Arc<Node>,
        change: impl FnOnce(&weir_plugins::Extensions) -> std::result::Result<T, weir_plugins::ExtensionError>
            + Send
            + 'static,
    ) -> Result<T> {
        let node = self.clone();
        let out = tokio::task::spawn_blocking(move || {
            let out = change(&node.extensions);
            node.functions.set(node.extensions.registry());
            out
        })
        .await
        .map_err(|e| Error::Io { context: "changing extensions".into(), source: std::io::Error::other(e) })?;
        Ok(out?)
    }
}

/// A stream or table definition as a cluster command.
fn put_stream(kind: StreamKind, name: &str, sql: &str) -> Command {
    match kind {
        StreamKind::Stream => Command::PutStream { name: name.to_string(), sql: sql.to_string() },
        StreamKind::Table => Command::PutTable { name: name.to_string(), sql: sql.to_string() },
    }
}

/// A rule definition as a cluster command, with its `shards` option (1
/// unless it asks for more; validated before).
fn put_rule(id: &str, json: &Value) -> Command {
    let options = json.get("options").cloned().unwrap_or(Value::Null);
    let shards = weir_planner::RuleOptions::from_json(&options).map_or(1, |o| o.shards);
    Command::PutRule { id: id.to_string(), json: json.to_string(), shards }
}

/// The rule's JSON with `triggered` set.
fn triggered_json(rule: &Rule, triggered: bool) -> Value {
    let mut def = (*rule.state().def).clone();
    def.set_triggered(triggered);
    def.to_json()
}

/// Loads eKuiper's source configuration files from `etc`:
/// `mqtt_source.yaml` for `mqtt` and `sources/<type>.yaml` for the others
/// (sections `default` and the names streams pick with `CONF_KEY`).
/// Missing files are fine; invalid ones are an error.
/// The address of the `httppush` data server: eKuiper's
/// `source.httpServerIp` / `source.httpServerPort` from `etc/kuiper.yaml`,
/// overridden by `KUIPER__SOURCE__HTTPSERVERIP` / `..._HTTPSERVERPORT`;
/// default `0.0.0.0:10081`.
fn configure_http_server(env: &Environment, etc: Option<&Path>) -> Result<()> {
    let bad = |context: String, e: String| Error::Io { context, source: std::io::Error::other(e) };
    let (mut ip, mut port) = ("0.0.0.0".to_string(), 10081u16);
    if let Some(path) = etc.map(|e| e.join("kuiper.yaml")).filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Io { context: format!("cannot read {}", path.display()), source: e })?;
        let conf: serde_json::Value =
            serde_yaml::from_str(&text).map_err(|e| bad(format!("invalid {}", path.display()), e.to_string()))?;
        let source = conf.get("source");
        if let Some(v) = source.and_then(|s| s.get("httpServerIp")).and_then(|v| v.as_str()) {
            ip = v.to_string();
        }
        if let Some(v) = source.and_then(|s| s.get("httpServerPort")).and_then(|v| v.as_u64()) {
            port =
                u16::try_from(v).map_err(|_| bad(format!("{}", path.display()), format!("bad httpServerPort {v}")))?;
        }
    }
    if let Ok(v) = std::env::var("KUIPER__SOURCE__HTTPSERVERIP") {
        ip = v;
    }
    if let Ok(v) = std::env::var("KUIPER__SOURCE__HTTPSERVERPORT") {
        port = v.parse().map_err(|_| bad("KUIPER__SOURCE__HTTPSERVERPORT".into(), format!("bad port {v:?}")))?;
    }
    let addr = format!("{ip}:{port}")
        .parse()
        .map_err(|_| bad("source.httpServerIp".into(), format!("bad address {ip}:{port}")))?;
    env.http_push().set_addr(addr);
    Ok(())
}

fn load_source_conf(env: &Environment, etc: &Path) -> Result<()> {
    let mut files = vec![("mqtt".to_string(), etc.join("mqtt_source.yaml"))];
    if let Ok(entries) = std::fs::read_dir(etc.join("sources")) {
        for e in entries.flatten() {
            let path = e.path();
            let kind = path.file_stem().and_then(|s| s.to_str()).map(str::to_string);
            if let (Some(kind), Some("yaml" | "yml")) = (kind, path.extension().and_then(|x| x.to_str())) {
                files.push((kind, path));
            }
        }
    }
    for (kind, path) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::Io { context: format!("cannot read {}", path.display()), source: e }),
        };
        env.load_source_yaml(&kind, &text).map_err(|e| Error::Io {
            context: format!("invalid source configuration {}", path.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(())
}
