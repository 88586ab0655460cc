//! MQTT topic filters (`+` one level, `#` the rest) and topic name checks.
//! The memory bus routes with the same rules.

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
}
