//! What every lookup table shares: eKuiper's cache options, and how keys
//! match ([`normal_key`]).

use std::time::Duration;

use weir_planner::StreamDef;
use weir_runtime::Value;

use crate::props::{invalid, Props};
use crate::{Environment, Result};

/// The `lookup: {cache, cacheTtl, cacheMissingKey}` section of a lookup
/// table's source configuration (`etc/sources/<type>.yaml` section picked
/// by `CONF_KEY`, or `EXTRA`). The cache itself belongs to the join
/// operator: one per lookup table instance, checked before the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupCache {
    /// `cache`: keep answers (default false: every key goes to the store).
    pub enabled: bool,
    /// `cacheTtl` (seconds in eKuiper; a duration string also works): how
    /// long an answer is kept. Default 600 s.
    pub ttl: Duration,
    /// `cacheMissingKey`: also keep "no rows" answers. Default true.
    pub cache_missing_key: bool,
}

impl Default for LookupCache {
    fn default() -> LookupCache {
        LookupCache { enabled: false, ttl: Duration::from_secs(600), cache_missing_key: true }
    }
}

impl LookupCache {
    /// Reads the options of table `def`.
    ///
    /// # Errors
    /// A `lookup` section that is not an object, or values of the wrong
    /// type.
    pub(crate) fn of(def: &StreamDef, env: &Environment) -> Result<LookupCache> {
        let kind = def.source_type().to_ascii_lowercase();
        let p = env.source_props(&kind, def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let section = match p.get("lookup") {
            None => return Ok(LookupCache::default()),
            Some(v @ serde_json::Value::Object(_)) => Props::new(v),
            Some(v) => return Err(invalid("lookup", format!("expects an object, got {v}"))),
        };
        let d = LookupCache::default();
        let ttl = match section.get("cacheTtl") {
            None => d.ttl,
            // eKuiper's unit is seconds; strings are Go durations.
            Some(serde_json::Value::String(_)) => {
                Duration::from_millis(section.duration_ms("cacheTtl")?.unwrap_or_default())
            }
            Some(_) => match section.int("cacheTtl")? {
                Some(s) if s >= 0 => Duration::from_secs(s as u64),
                _ => return Err(invalid("lookup.cacheTtl", "expects a non-negative number of seconds".into())),
            },
        };
        Ok(LookupCache {
            enabled: section.bool("cache")?.unwrap_or(d.enabled),
            ttl,
            cache_missing_key: section.bool("cacheMissingKey")?.unwrap_or(d.cache_missing_key),
        })
    }
}

/// A lookup table with its cache options, as the join operator reads them.
pub(crate) struct WithCache {
    inner: Box<dyn weir_runtime::connector::Lookup>,
    policy: weir_runtime::connector::CachePolicy,
}

impl WithCache {
    pub(crate) fn new(inner: Box<dyn weir_runtime::connector::Lookup>, cache: LookupCache) -> WithCache {
        let policy = weir_runtime::connector::CachePolicy {
            enabled: cache.enabled,
            ttl_ms: cache.ttl.as_millis() as i64,
            cache_missing: cache.cache_missing_key,
        };
        WithCache { inner, policy }
    }
}

impl weir_runtime::connector::Lookup for WithCache {
    fn cache_policy(&self) -> weir_runtime::connector::CachePolicy {
        self.policy
    }

    fn lookup<'a>(
        &'a mut self,
        columns: &'a [String],
        keys: &'a [Vec<weir_runtime::Value>],
    ) -> weir_runtime::connector::BoxFuture<
        'a,
        std::result::Result<Vec<Vec<weir_runtime::Map>>, weir_runtime::connector::LookupError>,
    > {
        self.inner.lookup(columns, keys)
    }
}
/// A key in a form where values a database finds equal are equal: numbers
/// (and numeric text) by value, datetimes by instant. `None` when a part is
/// null (SQL `=` matches nothing then). Lookup tables match keys by it.
pub(crate) fn normal_key(key: &[Value]) -> Option<Vec<String>> {
    key.iter().map(normal).collect()
}

/// [`normal_key`] of one value.
pub(crate) fn normal(v: &Value) -> Option<String> {
    fn number(f: f64) -> String {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            format!("n{}", f as i64)
        } else {
            format!("n{f}")
        }
    }
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => format!("b{b}"),
        Value::Int(i) => format!("n{i}"),
        Value::Float(f) => number(*f),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => number(f),
            _ => format!("s{s}"),
        },
        Value::Datetime(t) => format!("t{}", t.timestamp_nanos_opt().unwrap_or_else(|| t.timestamp_millis())),
        Value::Bytes(b) => format!("x{}", b.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        other => format!("j{}", other.to_json()),
    })
}

#[cfg(test)]
mod tests {
    use weir_planner::{StreamKind, StreamOptions};

    use super::*;

    #[test]
    fn cache_options_from_the_source_configuration() {
        let env = Environment::new("/tmp");
        env.load_source_yaml(
            "sql",
            "default:\n  url: sqlite:/x.db\ncached:\n  lookup:\n    cache: true\n    cacheTtl: 60\n",
        )
        .unwrap();
        let def = |conf_key: Option<&str>, extra: Option<&str>| StreamDef {
            name: "t".into(),
            kind: StreamKind::Table,
            fields: None,
            options: StreamOptions {
                source_type: Some("sql".into()),
                kind: Some("lookup".into()),
                conf_key: conf_key.map(str::to_string),
                extra: extra.map(str::to_string),
                ..Default::default()
            },
            sql: String::new(),
        };
        assert_eq!(LookupCache::of(&def(None, None), &env).unwrap(), LookupCache::default());
        let c = LookupCache::of(&def(Some("cached"), None), &env).unwrap();
        assert_eq!((c.enabled, c.ttl, c.cache_missing_key), (true, Duration::from_secs(60), true));
        let c = LookupCache::of(
            &def(None, Some(r#"{"lookup": {"cache": true, "cacheTtl": "1m", "cacheMissingKey": false}}"#)),
            &env,
        )
        .unwrap();
        assert_eq!((c.enabled, c.ttl, c.cache_missing_key), (true, Duration::from_secs(60), false));
        assert!(LookupCache::of(&def(None, Some(r#"{"lookup": 1}"#)), &env).is_err());
    }

    #[test]
    fn keys_match_across_number_spellings() {
        assert_eq!(normal(&Value::Int(7)), normal(&Value::str("7")));
        assert_eq!(normal(&Value::Float(7.0)), normal(&Value::Int(7)));
        assert_ne!(normal(&Value::str("a")), normal(&Value::str("b")));
        assert_eq!(normal_key(&[Value::Int(1), Value::Null]), None);
    }
}
