//! eKuiper's default output names for unaliased select items.

use crate::ast::Expr;

/// The output key of an unaliased expression: the column name for a column
/// (`demo.age` -> `age`), the lower-case function name for a call
/// (`AVG(t)` -> `avg`), else `kuiper_field_<n>` with `n` counting unnamed
/// items from 0.
pub(crate) fn default_name(expr: &Expr, unnamed: &mut usize) -> String {
    match expr {
        Expr::Column { name, .. } => name.clone(),
        Expr::Call { name, .. } => name.to_ascii_lowercase(),
        _ => {
            let n = *unnamed;
            *unnamed += 1;
            format!("kuiper_field_{n}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_expr;

    #[test]
    fn names_follow_ekuiper() {
        let mut n = 0;
        assert_eq!(default_name(&parse_expr("demo.age").unwrap(), &mut n), "age");
        assert_eq!(default_name(&parse_expr("AVG(t)").unwrap(), &mut n), "avg");
        assert_eq!(default_name(&parse_expr("a + 1").unwrap(), &mut n), "kuiper_field_0");
        assert_eq!(default_name(&parse_expr("a->b").unwrap(), &mut n), "kuiper_field_1");
        assert_eq!(default_name(&parse_expr("(a)").unwrap(), &mut n), "kuiper_field_2");
    }
}
