//! The `mqtt` source and sink, on rumqttc (MQTT 3.1.1 and 5).
//!
//! * Source ([`source::MqttSource`]): `DATASOURCE` is a comma-separated
//!   list of topic filters; properties come from `etc/mqtt_source.yaml`
//!   sections (via [`crate::Environment`]) and the stream's `EXTRA`.
//!   Streams with the same [`ConnConfig`] share one connection
//!   ([`pool::Pool`]), which fans messages out by filter.
//! * Shards: each shard of a sharded rule subscribes its filters as an
//!   MQTT shared subscription (`$share/weir-<rule>/<filter>`, see
//!   [`Share`]) on a connection of its own, so the broker hands every
//!   message to one shard only. mosquitto 2.0 goes on dealing a shard
//!   whose persistent session is offline its share, queued in the session
//!   for whoever resumes it (the shard's standby), up to the broker's
//!   `max_queued_messages` (default 1000; beyond it mosquitto drops).
//! * Sink ([`sink::MqttSink`]): one connection per action, behind the
//!   common sink layer ([`crate::transform`]: `sendSingle`,
//!   `dataTemplate`, `fields`, `format` decide the messages); the topic is
//!   a template rendered per message.
//!
//! # Delivery guarantees
//! QoS 1 and 2 messages are acknowledged manually, only after the rule has
//! taken them (`SourceSender::send` returned): a busy rule stops the
//! broker's flow at its in-flight window instead of dropping. With a fixed
//! `clientid` the session is persistent (`clean session` off, overridable
//! with the weir property `cleanSession`), so a broker that keeps sessions
//! redelivers what was not acknowledged after a disconnect. Connection
//! errors are logged, counted and retried with backoff (200 ms doubling to
//! 10 s); subscriptions are renewed when the broker lost the session.

pub(crate) mod client;
pub(crate) mod pool;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod topic;

#[cfg(test)]
mod share_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::path::Path;

use base64::Engine as _;

pub(crate) use pool::Pool;

use crate::props::{invalid, Props};
use crate::Result;

/// Default broker of sources (eKuiper's shipped `mqtt_source.yaml`).
pub(crate) const DEFAULT_SERVER: &str = "tcp://127.0.0.1:1883";

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) enum Version {
    /// 3.1.1 (also used for eKuiper's `3.1`, which rumqttc does not speak).
    #[default]
    V311,
    /// 5.
    V5,
}

/// TLS settings, with the certificates already loaded (PEM bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct TlsConfig {
    /// CA to trust; `None` = the platform's roots.
    pub(crate) root_ca: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub(crate) client_auth: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any server certificate (`insecureSkipVerify`).
    pub(crate) insecure: bool,
}

/// Everything that identifies one broker connection. Two streams whose
/// configs are equal share a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConnConfig {
    /// Broker host.
    pub(crate) host: String,
    /// Broker port (1883, or 8883 with TLS, unless given).
    pub(crate) port: u16,
    /// `Some` for `ssl://`, `tls://`, `mqtts://` servers.
    pub(crate) tls: Option<TlsConfig>,
    /// `clientid`; `None` = a generated id per connection.
    pub(crate) client_id: Option<String>,
    /// `username`.
    pub(crate) username: Option<String>,
    /// `password`.
    pub(crate) password: Option<String>,
    /// `protocolVersion`.
    pub(crate) version: Version,
    /// Start a new session on connect. Default: true without a
    /// `clientid`, false with one (a persistent session).
    pub(crate) clean_session: bool,
    /// Keep-alive interval, seconds (`keepAlive`, default 60).
    pub(crate) keep_alive_s: u64,
    /// `Some` for a shard of a sharded rule: its filters are subscribed
    /// as shared subscriptions. Part of the pool key, so each shard has a
    /// connection of its own (the broker balances between connections).
    pub(crate) share: Option<Share>,
}

/// A shard's membership in its rule's share group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Share {
    /// The share group: `weir-<rule id>` (characters MQTT forbids in a
    /// group name replaced by `_`).
    pub(crate) group: String,
    /// The shard index; with a `clientid`, the client id ends in
    /// `-s<index>`.
    pub(crate) index: u32,
}

impl Share {
    /// The share of shard `index` of rule `rule_id`.
    pub(crate) fn new(rule_id: &str, index: u32) -> Share {
        // MQTT 5 (4.8.2): a share name must not contain '/', '+' or '#'.
        let rule: String = rule_id.chars().map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c }).collect();
        Share { group: format!("weir-{rule}"), index }
    }
}

impl ConnConfig {
    /// What to send in SUBSCRIBE and UNSUBSCRIBE for `filter`: the
    /// filter, or its shared form. Messages still arrive under their own
    /// topic, so they are matched against the plain filter.
    pub(crate) fn wire_filter(&self, filter: &str) -> String {
        match &self.share {
            Some(s) => format!("$share/{}/{filter}", s.group),
            None => filter.to_string(),
        }
    }
}

impl ConnConfig {
    /// Reads the connection properties; `default_server` applies when
    /// `server` is absent (sources), `None` makes it required (sinks).
    /// Relative certificate paths are resolved against `base_dir`.
    ///
    /// # Errors
    /// A malformed server URL, unknown protocol version, unreadable
    /// certificate or mistyped property.
    pub(crate) fn from_props(p: &Props, default_server: Option<&str>, base_dir: &Path) -> Result<ConnConfig> {
        let server = match (p.str("server")?.filter(|s| !s.is_empty()), default_server) {
            (Some(s), _) => s,
            (None, Some(d)) => d,
            (None, None) => return Err(invalid("server", "is required".into())),
        };
        let (scheme, rest) = server.split_once("://").unwrap_or(("tcp", server));
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "tcp" | "mqtt" => false,
            "ssl" | "tls" | "mqtts" | "tcps" => true,
            other => {
                return Err(invalid("server", format!("unsupported scheme {other:?} (use tcp:// or ssl://)")));
            }
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, port)) => {
                let port = port.parse().map_err(|_| invalid("server", format!("bad port in {server:?}")))?;
                (h.trim_start_matches('[').trim_end_matches(']').to_string(), port)
            }
            None => (rest.to_string(), if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(invalid("server", format!("no host in {server:?}")));
        }
        let version = match p.get("protocolVersion") {
            None => Version::V311,
            Some(v) => match v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()).as_str() {
                "3.1" | "3.1.1" | "3" | "4" => Version::V311,
                "5" | "5.0" => Version::V5,
                other => return Err(invalid("protocolVersion", format!("expects 3.1, 3.1.1 or 5, got {other}"))),
            },
        };
        let client_id = p.str("clientid")?.filter(|s| !s.is_empty()).map(str::to_string);
        let clean_session = p.bool("cleanSession")?.unwrap_or(client_id.is_none());
        let insecure = p.bool("insecureSkipVerify")?.unwrap_or(false);
        let has_tls_props = insecure
            || ["rootCaPath", "rootCARaw", "certificationPath", "certificationRaw", "certficationRaw"]
                .iter()
                .any(|k| p.get(k).is_some());
        let tls = if tls || has_tls_props {
            let cert = pem(p, "certificationPath", &["certificationRaw", "certficationRaw"], base_dir)?;
            let key = pem(p, "privateKeyPath", &["privateKeyRaw"], base_dir)?;
            let client_auth = match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err(invalid("privateKeyPath", "a client certificate needs both cert and key".into())),
            };
            Some(TlsConfig { root_ca: pem(p, "rootCaPath", &["rootCARaw"], base_dir)?, client_auth, insecure })
        } else {
            None
        };
        Ok(ConnConfig {
            host,
            port,
            tls,
            client_id,
            username: p.str("username")?.filter(|s| !s.is_empty()).map(str::to_string),
            password: p.str("password")?.map(str::to_string),
            version,
            clean_session,
            keep_alive_s: p.duration_ms("keepAlive")?.map(|ms| (ms / 1000).max(5)).unwrap_or(60),
            share: None,
        })
    }
}

/// A PEM file (`path_key`, relative to `base`) or base64 text (`raw_keys`).
fn pem(p: &Props, path_key: &str, raw_keys: &[&str], base: &Path) -> Result<Option<Vec<u8>>> {
    for k in raw_keys {
        if let Some(raw) = p.str(k)?.filter(|s| !s.is_empty()) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|e| invalid(k, format!("invalid base64: {e}")))?;
            return Ok(Some(bytes));
        }
    }
    match p.str(path_key)?.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(path) => {
            let path = base.join(path);
            std::fs::read(&path).map(Some).map_err(|e| invalid(path_key, format!("{}: {e}", path.display())))
        }
    }
}

/// QoS 0, 1 or 2 from property `name` (default `default`).
pub(crate) fn qos(p: &Props, name: &str, default: u8) -> Result<u8> {
    match p.int(name)? {
        None => Ok(default),
        Some(q @ 0..=2) => Ok(q as u8),
        Some(q) => Err(invalid(name, format!("expects 0, 1 or 2, got {q}"))),
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    fn conf(v: serde_json::Value, default: Option<&str>) -> Result<ConnConfig> {
        ConnConfig::from_props(&Props::new(&v), default, Path::new("/"))
    }

    #[test]
    fn servers_and_defaults() {
        let c = conf(serde_json::json!({}), Some(DEFAULT_SERVER)).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.clean_session, c.version), ("127.0.0.1", 1883, true, Version::V311));
        let c =
            conf(serde_json::json!({"server": "ssl://b:9000", "ClientId": "x", "protocolVersion": "5"}), None).unwrap();
        assert_eq!((c.port, c.tls.is_some(), c.clean_session, c.version), (9000, true, false, Version::V5));
        assert_eq!(conf(serde_json::json!({"server": "mqtts://b"}), None).unwrap().port, 8883);
        assert!(conf(serde_json::json!({}), None).is_err());
        assert!(conf(serde_json::json!({"server": "ws://b:1"}), None).is_err());
        assert!(conf(serde_json::json!({"server": "tcp://b:1", "protocolVersion": "6"}), None).is_err());
        let c = conf(serde_json::json!({"server": "tcp://b:1", "insecureSkipVerify": true}), None).unwrap();
        assert!(c.tls.unwrap().insecure);
    }
}
