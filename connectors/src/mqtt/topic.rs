//! MQTT topic filters (`+` one level, `#` the rest) and the `{{.field}}`
//! topic templates of sinks. The memory bus routes with the same rules.

use weir_runtime::Value;

/// Whether `filter` (which may hold wildcards) matches the topic name
/// `topic`. As in MQTT, `a/#` also matches `a`, and wildcards at the first
/// level do not match topics starting with `$`.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks a subscription filter: `#` only as the last level, wildcards
/// only as whole levels, not empty.
pub(crate) fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err(format!("{filter:?}: '#' must be the whole last level"));
        }
        if l.contains('+') && *l != "+" {
            return Err(format!("{filter:?}: '+' must be a whole level"));
        }
    }
    Ok(())
}

/// Checks a topic name to publish to: not empty, no wildcards.
pub(crate) fn validate_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        Err("empty topic".into())
    } else if topic.contains(['+', '#']) {
        Err(format!("{topic:?}: wildcards are not allowed in a topic to publish to"))
    } else {
        Ok(())
    }
}

/// Splits a comma-separated DATASOURCE into validated filters.
pub(crate) fn parse_filters(datasource: &str) -> Result<Vec<String>, String> {
    let filters: Vec<String> =
        datasource.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    if filters.is_empty() {
        return Err("no topic".into());
    }
    for f in &filters {
        validate_filter(f)?;
    }
    Ok(filters)
}

/// A topic (or other dynamic property) template: text with `{{.a}}` or
/// `{{.a.b}}` placeholders, rendered per message.
///
/// This is the subset sinks need before the shared template engine
/// (`transform`) exists: anything else between `{{ }}` is kept verbatim.
/// Against an array (a whole emission) fields are read from its first
/// row, which is what `{{index . 0 "a"}}` would say in eKuiper.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Vec<String>),
}

impl Template {
    /// Parses `text`.
    pub(crate) fn new(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let inner = rest[start + 2..start + len].trim();
            if let Some(path) = inner.strip_prefix('.').filter(|p| !p.is_empty() && !p.contains(char::is_whitespace)) {
                parts.push(Part::Text(rest[..start].to_string()));
                parts.push(Part::Field(path.split('.').map(str::to_string).collect()));
            } else {
                parts.push(Part::Text(rest[..start + len + 2].to_string()));
            }
            rest = &rest[start + len + 2..];
        }
        parts.push(Part::Text(rest.to_string()));
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
        Template { parts }
    }

    /// Renders against a row (or an emission's array of rows). Missing
    /// fields render as `<no value>`, as Go templates do.
    pub(crate) fn render(&self, data: &Value) -> String {
        let root = match data {
            Value::Array(a) => a.first().unwrap_or(&Value::Null),
            v => v,
        };
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => {
                    let mut v = Some(root);
                    for k in path {
                        v = v.and_then(Value::as_map).and_then(|m| m.get(k));
                    }
                    match v {
                        Some(Value::Null) | None => out.push_str("<no value>"),
                        Some(v) => out.push_str(&v.to_text()),
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "x/y"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("/neuron/+/+/+", "/neuron/app/drv/grp"));
        assert!(!matches("a/b", "a/b/c"));
    }

    #[test]
    fn filter_validation() {
        assert!(parse_filters("a/+, b/#").is_ok());
        assert!(parse_filters("a/#/b").is_err());
        assert!(parse_filters("a/b+").is_err());
        assert!(parse_filters(" , ").is_err());
        assert!(validate_name("a/+").is_err());
    }

    #[test]
    fn templates() {
        let mut m = weir_runtime::Map::new();
        m.insert("dev".into(), Value::str("d1"));
        m.insert("n".into(), Value::Int(3));
        let row = Value::map(m);
        let t = Template::new("out/{{.dev}}/{{ .n }}/{{.x}}/{{json .}}");
        assert_eq!(t.render(&row), "out/d1/3/<no value>/{{json .}}");
        assert_eq!(t.render(&Value::array(vec![row])), "out/d1/3/<no value>/{{json .}}");
        assert_eq!(Template::new("plain").render(&Value::Null), "plain");
    }
}
