//! A rule's JSON definition, decoded as eKuiper decodes it.
//!
//! eKuiper reads rule JSON with Go's `encoding/json`: keys match
//! case-insensitively (an exact match wins) and unknown keys are ignored.
//! The JSON is kept as submitted, so `GET /rules/{id}` shows what the user
//! sent, plus `triggered` once the rule was started or stopped.

use serde_json::{Map, Value};
use weir_planner::RuleOptions;

use crate::error::{check_name, Error, Result};

/// One entry of `actions`: `{"<kind>": {props}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Action {
    /// Sink type (`log`, `mqtt`, ...), as spelled in the rule.
    pub(crate) kind: String,
    /// Sink properties (an object).
    pub(crate) props: Value,
    /// Position in `actions`.
    pub(crate) index: usize,
}

impl Action {
    /// eKuiper's node name of the sink: `sink_<kind>_<index>`.
    pub(crate) fn node_name(&self) -> String {
        format!("sink_{}_{}", self.kind, self.index)
    }
}

/// A decoded rule.
#[derive(Debug, Clone)]
pub(crate) struct RuleDef {
    /// Rule id.
    pub(crate) id: String,
    /// Display name (`name`), empty when not given.
    pub(crate) name: String,
    /// The rule's SELECT.
    pub(crate) sql: String,
    /// Sinks in order.
    pub(crate) actions: Vec<Action>,
    /// Validated options.
    pub(crate) options: RuleOptions,
    /// Whether the rule should run (default true).
    pub(crate) triggered: bool,
    /// `tags` as given (null when absent).
    pub(crate) tags: Value,
    /// `version` as given.
    pub(crate) version: String,
    /// The JSON as submitted.
    raw: Map<String, Value>,
}

impl RuleDef {
    /// Decodes a request body. `url_id` is the id in the URL (PUT), which
    /// the body's id must equal; a body without an id takes it.
    ///
    /// # Errors
    /// [`Error::InvalidRule`] with eKuiper's wording (`Missing rule id.`,
    /// `Missing rule actions.`, ...), or [`Error::Sql`] for bad options.
    pub(crate) fn parse(body: &[u8], url_id: Option<&str>) -> Result<RuleDef> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| Error::invalid_rule(format!("invalid rule json: {e}")))?;
        RuleDef::from_json(v, url_id)
    }

    /// Decodes rule JSON (see [`RuleDef::parse`]).
    pub(crate) fn from_json(v: Value, url_id: Option<&str>) -> Result<RuleDef> {
        let Value::Object(mut raw) = v else {
            return Err(Error::invalid_rule("invalid rule json: expected a JSON object"));
        };
        let id = match string_field(&raw, "id")? {
            Some(id) if !id.is_empty() => id,
            _ => match url_id {
                Some(u) => {
                    raw.insert("id".to_string(), u.into());
                    u.to_string()
                }
                None => return Err(Error::invalid_rule("Missing rule id.")),
            },
        };
        if let Some(u) = url_id {
            if u != id {
                return Err(Error::invalid_rule(format!("Rule id {id} in the body does not match {u} in the URL.")));
            }
        }
        check_name("rule", &id)?;
        let sql = string_field(&raw, "sql")?.unwrap_or_default();
        let has_graph = field(&raw, "graph").is_some_and(|g| !g.is_null());
        if has_graph && !sql.is_empty() {
            return Err(Error::invalid_rule(format!("Rule {id} has both sql and graph.")));
        }
        if has_graph {
            return Err(Error::invalid_rule(format!("Rule {id}: graph rules are not supported; use sql.")));
        }
        if sql.trim().is_empty() {
            return Err(Error::invalid_rule("Missing rule SQL."));
        }
        let actions = parse_actions(field(&raw, "actions"))?;
        let options = RuleOptions::from_json(field(&raw, "options").unwrap_or(&Value::Null))?;
        let triggered = match field(&raw, "triggered") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::invalid_rule(format!("invalid rule json: triggered must be a boolean, got {other}")))
            }
        };
        Ok(RuleDef {
            name: string_field(&raw, "name")?.unwrap_or_default(),
            version: string_field(&raw, "version")?.unwrap_or_default(),
            tags: field(&raw, "tags").cloned().unwrap_or(Value::Null),
            id,
            sql,
            actions,
            options,
            triggered,
            raw,
        })
    }

    /// Records whether the rule should run, in the stored JSON too.
    pub(crate) fn set_triggered(&mut self, triggered: bool) {
        self.triggered = triggered;
        self.raw.retain(|k, _| !k.eq_ignore_ascii_case("triggered"));
        self.raw.insert("triggered".to_string(), triggered.into());
    }

    /// The JSON to store and show.
    pub(crate) fn to_json(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    /// The name shown in rule lists: `name`, else the id.
    pub(crate) fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// The value of `key`: an exact match, else a case-insensitive one.
fn field<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    raw.get(key).or_else(|| raw.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn string_field(raw: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match field(raw, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid_rule(format!("invalid rule json: {key} must be a string, got {other}"))),
    }
}

fn parse_actions(v: Option<&Value>) -> Result<Vec<Action>> {
    let list = match v {
        None | Some(Value::Null) => return Err(Error::invalid_rule("Missing rule actions.")),
        Some(Value::Array(a)) if a.is_empty() => return Err(Error::invalid_rule("Missing rule actions.")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Error::invalid_rule("invalid rule json: actions must be an array")),
    };
    let mut actions = Vec::new();
    for (index, entry) in list.iter().enumerate() {
        let shape = || Error::invalid_rule(format!("invalid action {index}: expected {{\"<sinkType>\": {{props}}}}"));
        let Value::Object(m) = entry else { return Err(shape()) };
        if m.is_empty() {
            return Err(shape());
        }
        for (kind, props) in m {
            let props = match props {
                Value::Null => Value::Object(Map::new()),
                Value::Object(_) => props.clone(),
                _ => {
                    return Err(Error::invalid_rule(format!(
                        "invalid action {index}: {kind} properties must be an object"
                    )))
                }
            };
            actions.push(Action { kind: kind.clone(), props, index });
        }
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RuleDef> {
        RuleDef::parse(s.as_bytes(), None)
    }

    fn message(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn decodes_ekuiper_rule() {
        let r = parse(
            r#"{"ID":"r1","Sql":"SELECT * FROM demo","actions":[{"log":{}},{"nop":null}],
                "options":{"bufferLength":10},"triggered":false,"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(r.id, "r1");
        assert_eq!(r.sql, "SELECT * FROM demo");
        assert_eq!(r.actions.len(), 2);
        assert_eq!(r.actions[1].node_name(), "sink_nop_1");
        assert_eq!(r.options.buffer_length, 10);
        assert!(!r.triggered);
        assert_eq!(r.display_name(), "r1");
    }

    #[test]
    fn ekuiper_error_texts() {
        assert_eq!(message(r#"{"sql":"SELECT 1","actions":[{"log":{}}]}"#), "Missing rule id.");
        assert_eq!(message(r#"{"id":"r1","sql":"SELECT * FROM s"}"#), "Missing rule actions.");
        assert_eq!(message(r#"{"id":"r1","sql":"SELECT * FROM s","actions":[]}"#), "Missing rule actions.");
        assert_eq!(message(r#"{"id":"r1","actions":[{"log":{}}]}"#), "Missing rule SQL.");
        assert_eq!(
            message(r#"{"id":"r1","sql":"SELECT 1","graph":{},"actions":[{"log":{}}]}"#),
            "Rule r1 has both sql and graph."
        );
        assert!(message("{").starts_with("invalid rule json: "));
        assert!(message(r#"{"id":"a b","sql":"SELECT 1","actions":[{"log":{}}]}"#).contains("invalid rule name"));
        assert!(message(r#"{"id":"r1","sql":"SELECT 1","actions":[{"log":{}}],"options":{"qos":7}}"#).contains("qos"));
    }

    #[test]
    fn url_id_and_triggered() {
        let mut r =
            RuleDef::parse(br#"{"sql":"SELECT 1","actions":[{"log":{}}],"Triggered":true}"#, Some("r2")).unwrap();
        assert_eq!(r.id, "r2");
        r.set_triggered(false);
        let j = r.to_json();
        assert_eq!(j["triggered"], false);
        assert!(j.get("Triggered").is_none());
        assert_eq!(j["id"], "r2");
        assert!(RuleDef::parse(br#"{"id":"x","sql":"SELECT 1","actions":[{"log":{}}]}"#, Some("r2")).is_err());
    }
}
