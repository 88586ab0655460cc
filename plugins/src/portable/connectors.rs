//! The source and sink symbols of portable plugins as connector types:
//! `CREATE STREAM s () WITH (TYPE="<source symbol>", ...)` and a rule
//! action `{"<sink symbol>": {...}}`, through the connectors crate's
//! [`ExtensionConnectors`] hook.
//!
//! A source's `config` is its configuration as eKuiper builds it: the
//! `default` section of `sources/<symbol>.yaml`, overridden by the
//! section the stream's `CONF_KEY` names, then by `EXTRA`. A file
//! `etc/sources/<symbol>.yaml` of the node replaces the package's. A
//! sink's `config` is the action's properties.

use std::sync::Arc;

use weir_connectors::{payload_sink, Environment, Error, ExtensionConnectors, Result, SinkContext};
use weir_planner::StreamDef;
use weir_runtime::connector::Sink;
use weir_runtime::rule::Source;

use crate::portable::package::PluginMeta;
use crate::portable::sink::PluginSink;
use crate::portable::source::PluginSource;
use crate::portable::symbol::{SymbolArg, SymbolKind};
use crate::portable::{PortablePlugin, PortablePlugins};

impl PortablePlugins {
    /// The plugin declaring `kind` in the list `pick` selects, and the
    /// symbol as the plugin spells it.
    fn owner(&self, kind: &str, pick: fn(&PluginMeta) -> &Vec<String>) -> Option<(Arc<PortablePlugin>, String)> {
        self.names().into_iter().filter_map(|n| self.get(&n)).find_map(|p| {
            let sym = pick(p.meta()).iter().find(|s| s.eq_ignore_ascii_case(kind))?.clone();
            Some((p, sym))
        })
    }
}

/// The sections of the package's `sources/<symbol>.yaml`, if any.
fn package_yaml(plugin: &PortablePlugin, symbol: &str) -> Result<Option<serde_json::Value>> {
    let path = plugin.dir().join("sources").join(format!("{symbol}.yaml"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io(format!("cannot read {}: {e}", path.display()))),
    };
    serde_yaml::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Property { property: "CONF_KEY".into(), message: format!("{}: {e}", path.display()) })
}

/// A boolean property, spelled in any case; absent is false.
fn flag(props: &serde_json::Value, name: &str) -> Result<bool> {
    let found = props.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)));
    match found.map(|(_, v)| v) {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::Property { property: name.into(), message: format!("expects a bool, got {other}") }),
    }
}

impl ExtensionConnectors for PortablePlugins {
    fn source(&self, kind: &str, def: &StreamDef, env: &Environment) -> Option<Result<Box<dyn Source>>> {
        let (plugin, symbol) = self.owner(kind, |m| &m.sources)?;
        let build = || -> Result<Box<dyn Source>> {
            let defaults = package_yaml(&plugin, &symbol)?;
            let config = env.source_config(kind, def, defaults.as_ref())?;
            let int_for_whole = flag(&config, "useInt64ForWholeNumber")?;
            let datasource = def.options.datasource.as_deref().unwrap_or("");
            let arg = SymbolArg::new(SymbolKind::Source, &symbol, &def.name, datasource, config);
            Ok(Box::new(PluginSource::new(plugin.clone(), arg, int_for_whole)))
        };
        Some(build())
    }

    fn sink(
        &self,
        kind: &str,
        props: &serde_json::Value,
        ctx: &SinkContext,
        _env: &Environment,
    ) -> Option<Result<Box<dyn Sink>>> {
        let (plugin, symbol) = self.owner(kind, |m| &m.sinks)?;
        let build = || -> Result<Box<dyn Sink>> {
            let require_ack = flag(props, "requireAck")?;
            let arg = SymbolArg::new(SymbolKind::Sink, &symbol, &ctx.rule_id, "", props.clone());
            payload_sink(props, PluginSink::new(plugin.clone(), arg, require_ack))
        };
        Some(build())
    }
}
