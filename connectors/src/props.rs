//! Connector property maps, read the way eKuiper's mapstructure reads them:
//! keys match case-insensitively (`clientId` = `clientid`) and values are
//! not weakly typed (`"qos": "1"` is an error), except durations.

use serde_json::Value as Json;

use crate::{Error, Result};

/// A property map with case-insensitive lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Props {
    map: serde_json::Map<String, Json>,
}

impl Props {
    /// Wraps an object; anything else (null) is an empty map.
    pub(crate) fn new(v: &Json) -> Props {
        Props { map: v.as_object().cloned().unwrap_or_default() }
    }

    /// Overrides `self` key by key with `other` (case-insensitively: a key
    /// spelled differently replaces the old spelling).
    pub(crate) fn merge(&mut self, other: &Props) {
        for (k, v) in &other.map {
            if let Some(old) = self.key(k).map(str::to_string) {
                self.map.remove(&old);
            }
            self.map.insert(k.clone(), v.clone());
        }
    }

    /// The properties as a JSON object.
    pub(crate) fn into_json(self) -> Json {
        Json::Object(self.map)
    }

    fn key(&self, name: &str) -> Option<&str> {
        self.map.keys().find(|k| k.eq_ignore_ascii_case(name)).map(String::as_str)
    }

    /// The raw value of `name`; a JSON null counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&Json> {
        self.key(name).and_then(|k| self.map.get(k)).filter(|v| !v.is_null())
    }

    /// A string property.
    ///
    /// # Errors
    /// The value is not a string.
    pub(crate) fn str(&self, name: &str) -> Result<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(v) => Err(invalid(name, format!("expects a string, got {v}"))),
        }
    }

    /// A non-empty string property.
    ///
    /// # Errors
    /// Missing, empty or not a string.
    pub(crate) fn required_str(&self, name: &str) -> Result<&str> {
        match self.str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(invalid(name, "is required".into())),
        }
    }

    /// A boolean property.
    ///
    /// # Errors
    /// The value is not a boolean.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(invalid(name, format!("expects a boolean, got {v}"))),
        }
    }

    /// An integer property (a JSON number without fraction).
    ///
    /// # Errors
    /// The value is not an integer.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                    _ => Err(invalid(name, format!("expects an integer, got {n}"))),
                },
            },
            Some(v) => Err(invalid(name, format!("expects an integer, got {v}"))),
        }
    }

    /// A duration in ms: an integer, or a string like `"5s"`, `"200ms"`,
    /// `"1m"` (eKuiper decodes durations weakly).
    ///
    /// # Errors
    /// Neither form.
    pub(crate) fn duration_ms(&self, name: &str) -> Result<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => parse_duration_ms(s)
                .map(Some)
                .ok_or_else(|| invalid(name, format!("expects a duration like \"5s\", got {s:?}"))),
            Some(_) => match self.int(name)? {
                Some(i) if i >= 0 => Ok(Some(i as u64)),
                _ => Err(invalid(name, "expects a non-negative duration".into())),
            },
        }
    }

    /// A list of strings: a JSON array of strings, or one comma-separated
    /// string.
    ///
    /// # Errors
    /// Anything else.
    pub(crate) fn str_list(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => {
                Ok(Some(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()))
            }
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| invalid(name, format!("expects strings, got {v}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(invalid(name, format!("expects a list of strings, got {v}"))),
        }
    }
}

/// A property error.
pub(crate) fn invalid(name: &str, message: String) -> Error {
    Error::Property { property: name.to_string(), message }
}

/// Parses Go-style durations: `"250ms"`, `"5s"`, `"1m30s"`, `"2h"`, or a
/// bare number of ms.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_merge_replaces_spellings() {
        let mut p = Props::new(&serde_json::json!({"clientid": "a", "qos": 1}));
        p.merge(&Props::new(&serde_json::json!({"clientId": "b"})));
        assert_eq!(p.str("CLIENTID").unwrap(), Some("b"));
        assert_eq!(p.int("QoS").unwrap(), Some(1));
        assert!(Props::new(&serde_json::json!({"qos": "1"})).int("qos").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("7"), Some(7));
        assert_eq!(parse_duration_ms("5x"), None);
    }
}
