//! weir's connectors: the sources and sinks rules read from and write to,
//! and the payload formats.
//!
//! The runtime defines the traits ([`weir_runtime::rule::Source`],
//! [`weir_runtime::connector::Sink`]); this crate implements them per
//! connector type and builds them from stream definitions and rule actions:
//! [`source`] for a `CREATE STREAM|TABLE ... WITH (TYPE=...)`, [`sink`] for
//! one `{"<type>": {props}}` entry of a rule's `actions`, [`lookup`] (and
//! [`lookup_cache`]) for a `KIND="lookup"` table.
#![warn(missing_docs)]

mod env;
mod error;
mod extension;
mod file;
mod format;
mod http;
mod log;
mod lookup;
mod memory;
mod mqtt;
mod neuron;
mod nop;
mod outlet;
mod props;
mod rest;
mod simulator;
mod sql;
mod transform;

use weir_planner::StreamDef;
use weir_runtime::connector::{Lookup, Sink};
use weir_runtime::rule::Source;

pub use env::Environment;
pub use error::{Error, Result};
pub use extension::{payload_sink, ExtensionConnectors, PayloadSink};
pub use http::push::PushServer;
pub use lookup::LookupCache;
#[cfg(feature = "testing")]
pub use sql::testing as sql_testing;
pub use transform::{render_topic, Template, TemplateError};

/// Where a sink runs: the rule and the action's position.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// Rule id.
    pub rule_id: String,
    /// Index of the action in the rule's `actions`.
    pub index: usize,
}

/// Where a source runs: the rule reading it. Sources that keep their own
/// state between runs (the `sql` source's index) keep it per rule, since
/// every rule reading a stream has its own instance of the source.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    /// Rule id; empty for a source built outside a rule.
    pub rule_id: String,
    /// The shard of a sharded rule this source reads for; `None` (or a
    /// count of 1) reads the whole input. See [`shardable`].
    pub shard: Option<ShardOf>,
}

/// One shard of a rule split over `count` instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardOf {
    /// This instance's shard, `0..count`.
    pub index: u32,
    /// How many shards the rule has.
    pub count: u32,
}

impl SourceContext {
    /// The shard when the input is actually split (more than one shard).
    fn split(&self) -> Option<ShardOf> {
        self.shard.filter(|s| s.count > 1)
    }
}

/// Whether a sharded rule can read stream `def`: each shard must get its
/// own share of the input, which only MQTT streams can do (through
/// shared subscriptions, `$share/<group>/<filter>`). Other sources would
/// hand every shard the whole input.
///
/// # Errors
/// Why not, naming the stream and its type.
pub fn shardable(def: &StreamDef) -> std::result::Result<(), String> {
    let kind = def.source_type().to_ascii_lowercase();
    if def.kind != weir_planner::StreamKind::Stream {
        return Err(format!("a sharded rule reads a stream, and {} is a table", def.name));
    }
    if kind == "mqtt" {
        return Ok(());
    }
    Err(format!(
        "a sharded rule reads its input through MQTT shared subscriptions; stream {} has TYPE={:?}",
        def.name,
        def.source_type()
    ))
}

/// Deletes what the sources of rule `rule_id` kept between runs (the `sql`
/// source's index values). For a dropped rule: a new rule with the same
/// id then starts afresh, as it would with its checkpoints gone.
pub fn forget_rule(rule_id: &str, env: &Environment) {
    if !rule_id.is_empty() {
        sql::forget_rule(&env.data_dir.join("sql"), rule_id);
    }
}

/// Ends the MQTT session that shard `ctx.shard` of rule `ctx.rule_id`
/// keeps at the broker for stream `def` (client id `<clientid>-s<index>`),
/// for a shard that is gone for good: a rule deleted, or its shard count
/// lowered. The broker keeps dealing a member with a persistent session
/// its share of the messages while it is offline (queued for its return,
/// as failover needs), so a shard that never returns would hold that
/// share back from the rule. What its session had queued is dropped.
/// Nothing to do for a stream without a `clientid`, a context without a
/// shard, or a type other than MQTT. Must not run while the shard runs.
///
/// # Errors
/// Invalid properties, or the broker cannot be reached within `limit`.
pub async fn end_shard_session(
    def: &StreamDef,
    ctx: &SourceContext,
    env: &Environment,
    limit: std::time::Duration,
) -> Result<()> {
    let Some(shard) = ctx.shard else { return Ok(()) };
    if !def.source_type().eq_ignore_ascii_case("mqtt") {
        return Ok(());
    }
    let mut config = mqtt::source::SourceConfig::new(def, env, "mqtt", None)?;
    config.share(&ctx.rule_id, shard.index);
    mqtt::source::end_session(&config.conn, limit).await
}

/// Builds the source of a stream or table outside a rule (tools, tests):
/// [`rule_source`] with an empty [`SourceContext`].
///
/// # Errors
/// As [`rule_source`].
pub fn source(def: &StreamDef, env: &Environment) -> Result<Box<dyn Source>> {
    rule_source(def, &SourceContext::default(), env)
}

/// Builds the source of a stream or table for the rule of `ctx`. Types
/// that are not built in are asked of the node's extensions
/// ([`Environment::set_extensions`]).
///
/// A sharded context ([`SourceContext::shard`]) makes an MQTT source
/// read its shard's share of the topics.
///
/// # Errors
/// An unknown `TYPE`, connector properties that are invalid, or a shard
/// of a stream that is not [`shardable`].
pub fn rule_source(def: &StreamDef, ctx: &SourceContext, env: &Environment) -> Result<Box<dyn Source>> {
    let kind = def.source_type().to_ascii_lowercase();
    if ctx.split().is_some() {
        shardable(def).map_err(Error::NotShardable)?;
    }
    match kind.as_str() {
        "mqtt" => {
            let mut config = mqtt::source::SourceConfig::new(def, env, "mqtt", None)?;
            if let Some(shard) = ctx.split() {
                config.share(&ctx.rule_id, shard.index);
            }
            Ok(Box::new(mqtt::source::MqttSource::new(config, env, mqtt::source::decode_bytes)))
        }
        "neuron" => Ok(Box::new(neuron::source::new(def, env)?)),
        "memory" => Ok(Box::new(memory::source::MemorySource::new(def, env)?)),
        "file" => Ok(Box::new(file::source::FileSource::new(def, env)?)),
        "simulator" => Ok(Box::new(simulator::SimulatorSource::new(def, env)?)),
        "httppull" => Ok(Box::new(http::pull::HttpPullSource::new(def, env)?)),
        "httppush" => Ok(Box::new(http::push::HttpPushSource::new(def, env)?)),
        "sql" => Ok(Box::new(sql::source::SqlSource::new(def, ctx, env)?)),
        _ => match env.extensions().and_then(|x| x.source(&kind, def, env)) {
            Some(built) => built,
            None => Err(Error::UnknownType { kind, what: "source" }),
        },
    }
}

/// Builds the sink of one rule action `{"<kind>": props}`. Kinds that
/// are not built in are asked of the node's extensions
/// ([`Environment::set_extensions`]).
///
/// # Errors
/// An unknown sink type, or properties that are invalid (named in the
/// message).
pub fn sink(kind: &str, props: &serde_json::Value, ctx: &SinkContext, env: &Environment) -> Result<Box<dyn Sink>> {
    match kind.to_ascii_lowercase().as_str() {
        "log" => transformed(props, log::LogSink::new(ctx)),
        "nop" => transformed(props, nop::NopSink::new(&props::Props::new(props))?),
        "file" => file::sink::build(props, env),
        "rest" => transformed(props, rest::RestSink::new(&props::Props::new(props))?),
        "mqtt" => {
            let config = mqtt::sink::SinkConfig::new(&props::Props::new(props), env)?;
            transformed(props, mqtt::sink::MqttSink::new(config))
        }
        "neuron" => transformed(props, neuron::sink::NeuronSink::new(&props::Props::new(props), ctx, env)?),
        "memory" => transformed(props, memory::sink::MemorySink::new(&props::Props::new(props), env)?),
        "sql" => sql::sink::build(props),
        other => match env.extensions().and_then(|x| x.sink(other, props, ctx, env)) {
            Some(built) => built,
            None => Err(Error::UnknownType { kind: other.to_string(), what: "sink" }),
        },
    }
}

/// Builds the lookup side of a `KIND="lookup"` table: queried by key as
/// events arrive (see [`Lookup`]). No I/O happens here: a store that is
/// down makes the lookups fail, not the rule's start. Caching is the join
/// operator's business, configured by [`lookup_cache`].
///
/// # Errors
/// A type without lookup support, or invalid properties.
pub fn lookup(def: &StreamDef, env: &Environment) -> Result<Box<dyn Lookup>> {
    let kind = def.source_type().to_ascii_lowercase();
    let inner: Box<dyn Lookup> = match kind.as_str() {
        "sql" => Box::new(sql::lookup::SqlLookup::new(def, env)?),
        "memory" => Box::new(memory::table::MemoryLookup::new(def, env)?),
        _ => return Err(Error::UnknownType { kind, what: "lookup table" }),
    };
    // eKuiper's `lookup: {cache, cacheTtl, cacheMissingKey}` options.
    Ok(Box::new(lookup::WithCache::new(inner, LookupCache::of(def, env)?)))
}

/// Wraps a connector in the common sink layer (`sendSingle`,
/// `dataTemplate`, `fields`, `format`, `bufferLength`...).
fn transformed<C: transform::SinkConnector>(props: &serde_json::Value, connector: C) -> Result<Box<dyn Sink>> {
    let opts = transform::SinkOptions::from_props(&props::Props::new(props))?;
    Ok(Box::new(transform::TransformSink::new(opts, connector)))
}
