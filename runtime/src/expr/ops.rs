//! eKuiper's operator semantics: integer arithmetic stays integer, any
//! float makes a float, nulls propagate through arithmetic and make
//! comparisons false, and type mismatches are errors.

use std::cmp::Ordering;

use weir_planner::ast::BinOp;

use crate::functions::FuncError;
use crate::value::Value;

/// Applies a binary operator that is not AND/OR (those short-circuit in
/// the evaluator).
pub(crate) fn binary(op: BinOp, l: &Value, r: &Value) -> Result<Value, FuncError> {
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arithmetic(op, l, r),
        BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => bitwise(op, l, r),
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => compare(op, l, r),
        BinOp::And | BinOp::Or => logic(op, l, r),
    }
}

fn mismatch(op: BinOp, l: &Value, r: &Value) -> FuncError {
    FuncError::new(format!(
        "invalid operation {}({}) {} {}({})",
        l.type_name(),
        l.to_text(),
        op.symbol(),
        r.type_name(),
        r.to_text()
    ))
}

fn arithmetic(op: BinOp, l: &Value, r: &Value) -> Result<Value, FuncError> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => {
            let (a, b) = (*a, *b);
            let v = match op {
                BinOp::Add => a.wrapping_add(b),
                BinOp::Sub => a.wrapping_sub(b),
                BinOp::Mul => a.wrapping_mul(b),
                BinOp::Div => {
                    if b == 0 {
                        return Err(FuncError::new("divided by zero"));
                    }
                    a.wrapping_div(b)
                }
                _ => {
                    if b == 0 {
                        return Err(FuncError::new("divided by zero"));
                    }
                    a.wrapping_rem(b)
                }
            };
            Ok(Value::Int(v))
        }
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (a, b) = (l.as_f64().unwrap_or(0.0), r.as_f64().unwrap_or(0.0));
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(FuncError::new("divided by zero"));
                    }
                    a / b
                }
                _ => {
                    if b == 0.0 {
                        return Err(FuncError::new("divided by zero"));
                    }
                    a % b
                }
            };
            Ok(Value::Float(v))
        }
        (Value::Datetime(t), n @ (Value::Int(_) | Value::Float(_))) if matches!(op, BinOp::Add | BinOp::Sub) => {
            let ms = n.as_f64().unwrap_or(0.0) as i64;
            let delta = chrono::Duration::milliseconds(if op == BinOp::Add { ms } else { -ms });
            Ok(t.checked_add_signed(delta).map(Value::Datetime).unwrap_or(Value::Null))
        }
        _ => Err(mismatch(op, l, r)),
    }
}

fn bitwise(op: BinOp, l: &Value, r: &Value) -> Result<Value, FuncError> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(match op {
            BinOp::BitAnd => *a && *b,
            BinOp::BitOr => *a || *b,
            _ => *a != *b,
        })),
        _ => match (l.as_i64(), r.as_i64()) {
            (Some(a), Some(b)) => Ok(Value::Int(match op {
                BinOp::BitAnd => a & b,
                BinOp::BitOr => a | b,
                _ => a ^ b,
            })),
            _ => Err(mismatch(op, l, r)),
        },
    }
}

fn compare(op: BinOp, l: &Value, r: &Value) -> Result<Value, FuncError> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Bool(false));
    }
    if matches!(op, BinOp::Eq | BinOp::NotEq) {
        if let (Value::Array(_), Value::Array(_)) | (Value::Map(_), Value::Map(_)) = (l, r) {
            let eq = l.sql_eq(r);
            return Ok(Value::Bool(if op == BinOp::Eq { eq } else { !eq }));
        }
    }
    let ord = l.compare(r).ok_or_else(|| mismatch(op, l, r))?;
    Ok(Value::Bool(match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::NotEq => ord != Ordering::Equal,
        BinOp::Lt => ord == Ordering::Less,
        BinOp::LtEq => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    }))
}

fn logic(op: BinOp, l: &Value, r: &Value) -> Result<Value, FuncError> {
    let truth = |v: &Value| -> Result<bool, FuncError> {
        match v {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            _ => Err(mismatch(op, l, r)),
        }
    };
    let (a, b) = (truth(l)?, truth(r)?);
    Ok(Value::Bool(if op == BinOp::And { a && b } else { a || b }))
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
        assert_eq!(binary(BinOp::Or, &Value::Null, &Value::Bool(true)).unwrap(), Value::Bool(true));
    }

    #[test]
    fn type_mismatch_is_an_error() {
        let e = binary(BinOp::Gt, &Value::str("a"), &Value::Int(1)).unwrap_err();
        assert!(e.0.contains("invalid operation"), "{e}");
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
