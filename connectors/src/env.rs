//! What connectors share on a node: the data directory, source
//! configuration files, pooled MQTT connections and the memory bus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use crate::extension::ExtensionConnectors;
use crate::http::push::PushServer;
use crate::memory::Bus;
use crate::mqtt::Pool;
use crate::props::{invalid, Props};
use crate::Result;

/// Node-wide connector state. Cloning shares it.
///
/// Source configuration follows eKuiper's files: `etc/mqtt_source.yaml` for
/// `mqtt`, `etc/sources/<type>.yaml` for the others, each a map of
/// sections (`default` plus named sections picked by a stream's
/// `CONF_KEY`). The binary reads the files and hands them over with
/// [`Environment::set_source_conf`] or [`Environment::load_source_yaml`].
#[derive(Debug, Clone)]
pub struct Environment {
    /// Data directory.
    pub data_dir: PathBuf,
    conf: Arc<RwLock<BTreeMap<String, serde_json::Value>>>,
    mqtt: Pool,
    memory: Bus,
    http_push: PushServer,
    /// Connector types of the node's plugins, set once at boot.
    extensions: Arc<OnceLock<Arc<dyn ExtensionConnectors>>>,
}

impl Environment {
    /// An environment rooted at `data_dir`, with no source configuration
    /// (connector defaults apply).
    pub fn new(data_dir: impl Into<PathBuf>) -> Environment {
        Environment {
            data_dir: data_dir.into(),
            conf: Arc::default(),
            mqtt: Pool::default(),
            memory: Bus::default(),
            http_push: PushServer::default(),
            extensions: Arc::default(),
        }
    }

    /// Sets the configuration sections of source type `kind` (lower case,
    /// e.g. `mqtt`, `neuron`, `memory`): a JSON object of section name ->
    /// property object.
    ///
    /// # Errors
    /// `sections` is not an object of objects.
    pub fn set_source_conf(&self, kind: &str, sections: serde_json::Value) -> Result<()> {
        let ok = sections.as_object().is_some_and(|o| o.values().all(|s| s.is_object() || s.is_null()));
        if !ok {
            return Err(invalid(kind, "source configuration must map section names to objects".into()));
        }
        self.conf.write().unwrap_or_else(|e| e.into_inner()).insert(kind.to_ascii_lowercase(), sections);
        Ok(())
    }

    /// Like [`Environment::set_source_conf`], from the text of an eKuiper
    /// YAML file (`etc/mqtt_source.yaml`, `etc/sources/neuron.yaml`...).
    ///
    /// # Errors
    /// Invalid YAML or a shape other than sections of maps.
    pub fn load_source_yaml(&self, kind: &str, yaml: &str) -> Result<()> {
        let v: serde_json::Value =
            serde_yaml::from_str(yaml).map_err(|e| invalid(kind, format!("invalid YAML: {e}")))?;
        self.set_source_conf(kind, v)
    }

    /// The properties of a `kind` source: the `default` section, overridden
    /// key by key by section `conf_key`, then by the stream's `EXTRA` (a
    /// JSON object string). Keys match case-insensitively.
    ///
    /// # Errors
    /// `conf_key` names no section, or `EXTRA` is not a JSON object.
    pub(crate) fn source_props(&self, kind: &str, conf_key: Option<&str>, extra: Option<&str>) -> Result<Props> {
        self.source_props_or(kind, conf_key, extra, None)
    }

    /// Like [`Environment::source_props`]; `defaults` are the sections
    /// used when no configuration of `kind` was loaded.
    fn source_props_or(
        &self,
        kind: &str,
        conf_key: Option<&str>,
        extra: Option<&str>,
        defaults: Option<&serde_json::Value>,
    ) -> Result<Props> {
        let conf = self.conf.read().unwrap_or_else(|e| e.into_inner());
        let sections =
            conf.get(&kind.to_ascii_lowercase()).or(defaults).and_then(|v: &serde_json::Value| v.as_object());
        let section = |name: &str| {
            sections.and_then(|s| s.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| Props::new(v)))
        };
        let mut props = section("default").unwrap_or_default();
        if let Some(key) = conf_key.filter(|k| !k.is_empty()) {
            match section(key) {
                Some(p) => props.merge(&p),
                None if key.eq_ignore_ascii_case("default") => {}
                None => return Err(invalid("CONF_KEY", format!("no {kind} configuration section {key:?}"))),
            }
        }
        if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(extra).map_err(|e| invalid("EXTRA", format!("invalid JSON: {e}")))?;
            if !v.is_object() {
                return Err(invalid("EXTRA", "expects a JSON object".into()));
            }
            props.merge(&Props::new(&v));
        }
        Ok(props)
    }

    /// The configuration of the `kind` source of stream `def`, as a JSON
    /// object: the `default` section, overridden key by key by the
    /// stream's `CONF_KEY` section, then by its `EXTRA`. `defaults` are the
    /// sections used when no file configured `kind` (a plugin package's own
    /// `sources/<kind>.yaml`, which eKuiper copies to `etc/sources/`).
    ///
    /// # Errors
    /// `CONF_KEY` names no section, or `EXTRA` is not a JSON object.
    pub fn source_config(
        &self,
        kind: &str,
        def: &weir_planner::StreamDef,
        defaults: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let props =
            self.source_props_or(kind, def.options.conf_key.as_deref(), def.options.extra.as_deref(), defaults)?;
        Ok(props.into_json())
    }

    /// Makes the connector types of the node's extensions available to
    /// [`crate::source`] and [`crate::sink`] (consulted for types that are
    /// not built in). Set once, at boot, by the node; clones share it.
    ///
    /// # Errors
    /// Extensions were set already; `extensions` is handed back.
    pub fn set_extensions(
        &self,
        extensions: Arc<dyn ExtensionConnectors>,
    ) -> std::result::Result<(), Arc<dyn ExtensionConnectors>> {
        self.extensions.set(extensions)
    }

    /// The extensions' connector types, if the node set them.
    pub(crate) fn extensions(&self) -> Option<&Arc<dyn ExtensionConnectors>> {
        self.extensions.get()
    }

    /// The pool of shared MQTT connections.
    pub(crate) fn mqtt(&self) -> &Pool {
        &self.mqtt
    }

    /// The node's HTTP data server of `httppush` streams (eKuiper's
    /// `source.httpServerIp`/`httpServerPort`, default `0.0.0.0:10081`):
    /// set its address with [`PushServer::set_addr`] before streams start.
    pub fn http_push(&self) -> &PushServer {
        &self.http_push
    }

    /// The in-process pub/sub bus of the `memory` connectors.
    pub(crate) fn memory(&self) -> &Bus {
        &self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_override_default_then_extra() {
        let env = Environment::new("/tmp");
        env.load_source_yaml(
            "mqtt",
            "default:\n  server: tcp://127.0.0.1:1883\n  qos: 1\ndemo:\n  Server: tcp://10.0.0.1:1883\n",
        )
        .unwrap();
        let p = env.source_props("mqtt", Some("demo"), Some(r#"{"QOS": 0}"#)).unwrap();
        assert_eq!(p.str("server").unwrap(), Some("tcp://10.0.0.1:1883"));
        assert_eq!(p.int("qos").unwrap(), Some(0));
        assert!(env.source_props("mqtt", Some("nope"), None).is_err());
        assert!(env.source_props("mqtt", None, Some("[1]")).is_err());
    }
}
