//! Comparing emissions with a case's expectation (REPLAY.md "Comparing
//! output"): emissions in order, rows as a multiset unless the rule sorts,
//! numbers equal within 1e-9 relative, keys exact.

use crate::value::Value;

/// The first difference found.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// What differs, for a human.
    pub message: String,
}

/// Compares actual emissions with expected ones.
///
/// # Errors
/// The first [`Mismatch`].
pub fn compare(actual: &[Vec<Value>], expected: &[Vec<serde_json::Value>], ordered: bool) -> Result<(), Mismatch> {
    let actual: Vec<Vec<serde_json::Value>> = actual
        .iter()
        .map(|e| e.iter().map(|r| serde_json::from_str(&r.to_json()).unwrap_or_default()).collect())
        .collect();
    if actual.len() != expected.len() {
        return Err(Mismatch {
            message: format!(
                "expected {} emissions, got {}\n{}",
                expected.len(),
                actual.len(),
                side_by_side(&actual, expected)
            ),
        });
    }
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if !rows_equal(a, e, ordered) {
            return Err(Mismatch {
                message: format!(
                    "emission {i} differs\n  expected: {}\n  actual:   {}",
                    serde_json::Value::Array(e.clone()),
                    serde_json::Value::Array(a.clone())
                ),
            });
        }
    }
    Ok(())
}

fn side_by_side(actual: &[Vec<serde_json::Value>], expected: &[Vec<serde_json::Value>]) -> String {
    let mut s = String::new();
    for i in 0..actual.len().max(expected.len()) {
        let show = |v: Option<&Vec<serde_json::Value>>| {
            v.map(|x| serde_json::Value::Array(x.clone()).to_string()).unwrap_or_else(|| "-".into())
        };
        s.push_str(&format!("  [{i}] expected: {}\n      actual:   {}\n", show(expected.get(i)), show(actual.get(i))));
    }
    s
}

fn rows_equal(actual: &[serde_json::Value], expected: &[serde_json::Value], ordered: bool) -> bool {
    if actual.len() != expected.len() {
        return false;
    }
    if ordered {
        return actual.iter().zip(expected).all(|(a, e)| json_equal(a, e));
    }
    let mut used = vec![false; actual.len()];
    expected.iter().all(|e| {
        for (i, a) in actual.iter().enumerate() {
            if !used[i] && json_equal(a, e) {
                used[i] = true;
                return true;
            }
        }
        false
    })
}

/// JSON equality with numbers equal within 1e-9 relative.
pub(crate) fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        // Integers (epoch ms above all) must match exactly: a relative
        // tolerance would hide a window bound off by a second.
        (J::Number(x), J::Number(y)) if x.is_i64() && y.is_i64() => x.as_i64() == y.as_i64(),
        (J::Number(x), J::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_within_tolerance_and_multisets() {
        let a = vec![vec![
            Value::from_json(json!({"a": 1.0000000000001}), false),
            Value::from_json(json!({"b": 2}), false),
        ]];
        assert!(compare(&a, &[vec![json!({"b": 2}), json!({"a": 1})]], false).is_ok());
        assert!(compare(&a, &[vec![json!({"b": 2}), json!({"a": 1})]], true).is_err());
        assert!(compare(&a, &[vec![json!({"a": 1})]], false).is_err());
        assert!(compare(&a, &[], false).is_err());
    }
}
