//! eKuiper's operator semantics: integer arithmetic stays integer, any
//! float makes a float, nulls propagate through arithmetic and make
//! comparisons false, and type mismatches are errors.

use std::cmp::Ordering;

use weir_planner::ast::BinOp;

use crate::functions::{go_type, go_v, FuncError};
use crate::value::Value;

/// Applies a binary operator as eKuiper's `SimpleDataEval` does (AND/OR
/// short-circuits are the evaluator's): a null operand makes comparisons,
/// logic and bitwise operators false and arithmetic null; bitwise
/// operators need integers on both sides; strings only compare; booleans
/// only combine and test equality; a datetime on the left compares with a
/// datetime or Unix ms on the right; anything else is an error.
pub(crate) fn binary(op: BinOp, l: &Value, r: &Value) -> Result<Value, FuncError> {
    use BinOp::*;
    if l.is_null() || r.is_null() {
        return Ok(match op {
            Add | Sub | Mul | Div | Mod => Value::Null,
            _ => Value::Bool(false),
        });
    }
    let cmp = |o: Ordering| -> Option<bool> {
        Some(match op {
            Eq => o == Ordering::Equal,
            NotEq => o != Ordering::Equal,
            Lt => o == Ordering::Less,
            LtEq => o != Ordering::Greater,
            Gt => o == Ordering::Greater,
            GtEq => o != Ordering::Less,
            _ => return None,
        })
    };
    let v = match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => match op {
            And | BitAnd => Some(Value::Bool(*a && *b)),
            Or | BitOr => Some(Value::Bool(*a || *b)),
            BitXor => Some(Value::Bool(a != b)),
            Eq => Some(Value::Bool(a == b)),
            NotEq => Some(Value::Bool(a != b)),
            _ => None,
        },
        (Value::Int(a), Value::Int(b)) => {
            let (a, b) = (*a, *b);
            match op {
                Add => Some(Value::Int(a.wrapping_add(b))),
                Sub => Some(Value::Int(a.wrapping_sub(b))),
                Mul => Some(Value::Int(a.wrapping_mul(b))),
                Div | Mod if b == 0 => return Err(FuncError::new("divided by zero")),
                Div => Some(Value::Int(a.wrapping_div(b))),
                Mod => Some(Value::Int(a.wrapping_rem(b))),
                BitAnd => Some(Value::Int(a & b)),
                BitOr => Some(Value::Int(a | b)),
                BitXor => Some(Value::Int(a ^ b)),
                _ => cmp(a.cmp(&b)).map(Value::Bool),
            }
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (a, b) = (l.as_f64().unwrap_or(0.0), r.as_f64().unwrap_or(0.0));
            match op {
                Add => Some(Value::Float(a + b)),
                Sub => Some(Value::Float(a - b)),
                Mul => Some(Value::Float(a * b)),
                Div | Mod if b == 0.0 => return Err(FuncError::new("divided by zero")),
                Div => Some(Value::Float(a / b)),
                Mod => Some(Value::Float(a % b)),
                // NaN compares false to everything, as in Go.
                _ => match a.partial_cmp(&b) {
                    Some(o) => cmp(o).map(Value::Bool),
                    None => matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq).then_some(Value::Bool(op == NotEq)),
                },
            }
        }
        (Value::String(a), Value::String(b)) => cmp(a.cmp(b)).map(Value::Bool),
        (Value::Datetime(a), b) => {
            let b = match b {
                Value::Datetime(t) => Some(t.timestamp_millis()),
                Value::Int(_) | Value::Float(_) => b.as_f64().map(|f| f as i64),
                Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis()),
                _ => None,
            };
            match b {
                Some(b) => cmp(a.timestamp_millis().cmp(&b)).map(Value::Bool),
                None => None,
            }
        }
        _ => None,
    };
    v.ok_or_else(|| mismatch(op, l, r))
}

fn mismatch(op: BinOp, l: &Value, r: &Value) -> FuncError {
    FuncError::new(format!("invalid operation {}({}) {} {}({})", go_type(l), go_v(l), op.symbol(), go_type(r), go_v(r)))
}

/// SQL LIKE with `%` and `_` (and `\` escaping them).
pub(crate) fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative matching with backtracking on the last `%`.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if j < p.len() && p[j] == '\\' && j + 1 < p.len() && p[j + 1] == s[i] {
            i += 1;
            j += 2;
        } else if j < p.len() && (p[j] == '_' || (p[j] == s[i] && p[j] != '%' && p[j] != '\\')) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == '%' {
        j += 1;
    }
    j == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_division_stays_integer() {
        assert_eq!(binary(BinOp::Div, &Value::Int(7), &Value::Int(2)).unwrap(), Value::Int(3));
        assert_eq!(binary(BinOp::Div, &Value::Float(7.0), &Value::Int(2)).unwrap(), Value::Float(3.5));
        assert!(binary(BinOp::Div, &Value::Int(1), &Value::Int(0)).is_err());
        assert_eq!(binary(BinOp::Mod, &Value::Float(7.5), &Value::Int(2)).unwrap(), Value::Float(1.5));
    }

    #[test]
    fn nulls() {
        assert_eq!(binary(BinOp::Add, &Value::Null, &Value::Int(1)).unwrap(), Value::Null);
        assert_eq!(binary(BinOp::Eq, &Value::Null, &Value::Null).unwrap(), Value::Bool(false));
        // eKuiper: a null operand makes OR false (the evaluator only
        // short-circuits a true left side).
        assert_eq!(binary(BinOp::Or, &Value::Null, &Value::Bool(true)).unwrap(), Value::Bool(false));
        assert_eq!(binary(BinOp::BitAnd, &Value::Null, &Value::Int(1)).unwrap(), Value::Bool(false));
    }

    #[test]
    fn bitwise_needs_integers() {
        assert_eq!(binary(BinOp::BitAnd, &Value::Int(3), &Value::Int(1)).unwrap(), Value::Int(1));
        assert!(binary(BinOp::BitAnd, &Value::Float(3.0), &Value::Int(1)).is_err());
        assert!(binary(BinOp::Lt, &Value::Bool(true), &Value::Bool(false)).is_err());
    }

    #[test]
    fn type_mismatch_is_an_error() {
        let e = binary(BinOp::Gt, &Value::str("a"), &Value::Int(1)).unwrap_err();
        assert_eq!(e.0, "invalid operation string(a) > int64(1)");
        assert!(binary(BinOp::Add, &Value::str("a"), &Value::Int(1)).is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("abc", "a%"));
        assert!(like("abc", "_b_"));
        assert!(like("abc", "%c"));
        assert!(!like("abc", "b%"));
        assert!(like("a%c", "a\\%c"));
        assert!(like("", "%"));
    }
}
