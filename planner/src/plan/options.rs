//! Rule options: eKuiper's `options` object of the rule JSON, typed.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Validated rule options with eKuiper's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleOptions {
    /// `isEventTime`: windows use the stream's TIMESTAMP field.
    pub is_event_time: bool,
    /// `lateTolerance` in ms (default 1000, as eKuiper's code).
    pub late_tolerance_ms: i64,
    /// `concurrency`: parallel instances of keyed operators.
    pub concurrency: u32,
    /// `bufferLength`: mailbox capacity of each operator, in messages.
    pub buffer_length: u32,
    /// `sendMetaToSink`.
    pub send_meta_to_sink: bool,
    /// `sendNilField`: emit null columns instead of omitting them.
    pub send_nil_field: bool,
    /// `sendError`: send runtime errors to sinks as `{"error": ...}`.
    pub send_error: bool,
    /// `qos`: 0 at most once, 1 at least once, 2 exactly once.
    pub qos: u8,
    /// `checkpointInterval` in ms.
    pub checkpoint_interval_ms: i64,
    /// `restartStrategy.attempts`.
    pub restart_attempts: u32,
    /// `debug`.
    pub debug: bool,
    /// `shards` (weir; eKuiper has none): in a cluster, the rule runs split
    /// by its GROUP BY key over this many shards on different nodes.
    #[serde(default = "one")]
    pub shards: u32,
}

fn one() -> u32 {
    1
}

impl Default for RuleOptions {
    fn default() -> RuleOptions {
        RuleOptions {
            is_event_time: false,
            late_tolerance_ms: 1000,
            concurrency: 1,
            buffer_length: 1024,
            send_meta_to_sink: false,
            send_nil_field: false,
            send_error: false,
            qos: 0,
            checkpoint_interval_ms: 300_000,
            restart_attempts: 0,
            debug: false,
            shards: 1,
        }
    }
}

impl RuleOptions {
    /// Reads the `options` object of a rule JSON. Keys match
    /// case-insensitively and unknown keys are ignored, as Go's
    /// `encoding/json` does for eKuiper.
    ///
    /// # Errors
    /// [`Error::Option`] naming the option with a wrong type or value.
    pub fn from_json(v: &serde_json::Value) -> Result<RuleOptions> {
        let mut o = RuleOptions::default();
        let Some(map) = v.as_object() else {
            if v.is_null() {
                return Ok(o);
            }
            return Err(opt_err("options", "must be a JSON object"));
        };
        for (key, val) in map {
            match key.to_ascii_lowercase().as_str() {
                "iseventtime" => o.is_event_time = as_bool("isEventTime", val)?,
                "latetolerance" => o.late_tolerance_ms = as_duration_ms("lateTolerance", val)?,
                "concurrency" => o.concurrency = as_count("concurrency", val)?,
                "bufferlength" => o.buffer_length = as_count("bufferLength", val)?,
                "sendmetatosink" => o.send_meta_to_sink = as_bool("sendMetaToSink", val)?,
                "sendnilfield" => o.send_nil_field = as_bool("sendNilField", val)?,
                "senderror" => o.send_error = as_bool("sendError", val)?,
                "qos" => {
                    let q = as_count("qos", val)?;
                    if q > 2 {
                        return Err(opt_err("qos", format!("must be 0, 1 or 2, got {q}")));
                    }
                    o.qos = q as u8;
                }
                "checkpointinterval" => o.checkpoint_interval_ms = as_duration_ms("checkpointInterval", val)?,
                "restartstrategy" => {
                    if let Some(a) = val
                        .as_object()
                        .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case("attempts")).map(|(_, v)| v))
                    {
                        o.restart_attempts = as_count("restartStrategy.attempts", a)?;
                    }
                }
                "debug" => o.debug = as_bool("debug", val)?,
                "shards" => {
                    o.shards = as_count("shards", val)?;
                    if !(1..=MAX_SHARDS).contains(&o.shards) {
                        return Err(opt_err("shards", format!("must be 1 to {MAX_SHARDS}, got {}", o.shards)));
                    }
                }
                _ => {}
            }
        }
        if o.concurrency == 0 {
            o.concurrency = 1;
        }
        Ok(o)
    }
}

/// The most shards a rule may have (the cluster's limit).
pub(crate) const MAX_SHARDS: u32 = 1024;

fn opt_err(option: &str, message: impl Into<String>) -> Error {
    Error::Option { option: option.to_string(), message: message.into() }
}

fn as_bool(name: &str, v: &serde_json::Value) -> Result<bool> {
    v.as_bool().ok_or_else(|| opt_err(name, format!("expects true or false, got {v}")))
}

fn as_count(name: &str, v: &serde_json::Value) -> Result<u32> {
    match v.as_i64() {
        Some(n) if n < 0 => Err(opt_err(name, format!("must not be negative, got {n}"))),
        Some(n) => u32::try_from(n).map_err(|_| opt_err(name, format!("is too large: {n}"))),
        None => Err(opt_err(name, format!("expects an integer, got {v}"))),
    }
}

/// An int (ms) or a Go duration string (`"1s"`, `"500ms"`, `"1m30s"`).
fn as_duration_ms(name: &str, v: &serde_json::Value) -> Result<i64> {
    let ms = match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| opt_err(name, format!("expects milliseconds, got {v}")))?,
        serde_json::Value::String(s) => {
            parse_duration_ms(s).ok_or_else(|| opt_err(name, format!("invalid duration \"{s}\"")))?
        }
        _ => return Err(opt_err(name, format!("expects milliseconds or a duration string, got {v}"))),
    };
    if ms < 0 {
        return Err(opt_err(name, format!("must not be negative, got {ms}")));
    }
    Ok(ms)
}

/// Parses a Go duration (`"1h2m3.5s"`, `"300ms"`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * factor;
    }
    let ms = total.round() as i64;
    Some(if neg { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_case_insensitive_keys() {
        let o =
            RuleOptions::from_json(&serde_json::json!({"ISEVENTTIME": true, "lateTolerance": "2s", "foo": 1})).unwrap();
        assert!(o.is_event_time);
        assert_eq!(o.late_tolerance_ms, 2000);
        assert_eq!(o.buffer_length, 1024);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(RuleOptions::from_json(&serde_json::json!({"bufferLength": -1})).is_err());
        assert!(RuleOptions::from_json(&serde_json::json!({"isEventTime": "yes"})).is_err());
        assert!(RuleOptions::from_json(&serde_json::json!({"qos": 3})).is_err());
        let e = RuleOptions::from_json(&serde_json::json!({"lateTolerance": "abc"})).unwrap_err();
        assert!(e.to_string().contains("lateTolerance"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("1.5h"), Some(5_400_000));
        assert_eq!(parse_duration_ms("5x"), None);
    }
}
