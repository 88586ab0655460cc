//! SQL argument values as the numeric inputs models take.

use weir_runtime::functions::FuncError;
use weir_runtime::value::Value;

/// Flattens numbers and (nested) arrays of numbers into `out`, in order:
/// `f(a, b, c)` and `f([a, b, c])` give the same features. Booleans count
/// as 0/1. `what` names the function for errors.
///
/// # Errors
/// A null, string, map or other non-numeric value, with its position.
pub(crate) fn push_numbers(v: &Value, what: &str, position: usize, out: &mut Vec<f64>) -> Result<(), FuncError> {
    match v {
        Value::Int(i) => out.push(*i as f64),
        Value::Float(f) => out.push(*f),
        Value::Bool(b) => out.push(if *b { 1.0 } else { 0.0 }),
        Value::Array(items) => {
            for item in items.iter() {
                push_numbers(item, what, position, out)?;
            }
        }
        other => {
            return Err(FuncError::new(format!(
                "{what}: argument {position} must be a number or an array of numbers, got {}",
                other.type_name()
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(args: &[Value]) -> Result<Vec<f64>, FuncError> {
        let mut out = Vec::new();
        for (i, a) in args.iter().enumerate() {
            push_numbers(a, "f", i + 1, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn scalars_and_arrays_flatten_alike() {
        let a = numbers(&[Value::Int(1), Value::Float(2.5), Value::Bool(true)]).unwrap();
        let b = numbers(&[Value::array(vec![Value::Int(1), Value::Float(2.5), Value::Bool(true)])]).unwrap();
        assert_eq!(a, vec![1.0, 2.5, 1.0]);
        assert_eq!(a, b);
    }

    #[test]
    fn non_numbers_are_named() {
        let e = numbers(&[Value::Int(1), Value::str("x")]).unwrap_err();
        assert_eq!(e.0, "f: argument 2 must be a number or an array of numbers, got string");
        assert!(numbers(&[Value::Null]).is_err());
    }
}
