//! Built-in functions: miscellany (`isnull`, `coalesce`, `newuuid`,
//! `rule_id`, `rule_start`, `delay`) and the signatures of the functions
//! that operators evaluate themselves (`meta`, `window_start`, `unnest`, …).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use weir_planner::{ArgHint, FunctionKind};

use super::golike::go_typed;
use super::{nil_checked, validate_first_number, validate_first_str, FuncError, Registry};
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.scalar("isnull", 1, Some(1), |_, a| Ok(Value::Bool(a[0].is_null())));
    r.scalar("coalesce", 1, None, |_, a| Ok(a.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null)));
    r.scalar("newuuid", 0, Some(0), |_, _| Ok(Value::str(new_uuid_v1())));
    r.scalar("rule_id", 0, Some(0), |ctx, _| Ok(Value::str(ctx.rule_id)));
    r.scalar("rule_start", 0, Some(0), |ctx, _| Ok(Value::Int(ctx.rule_start_ms)));
    // eKuiper sleeps the rule's goroutine for `ms` milliseconds before
    // returning `v`. weir must not block an actor thread: it validates `ms`
    // the same way and returns `v` immediately.
    nil_checked(r, "delay", 2, Some(2), |a| match &a[0] {
        Value::Int(_) | Value::Float(_) => Ok(a[1].clone()),
        other => Err(FuncError::new(format!("cannot convert {} to int", go_typed(other)))),
    });
    r.set_validate("delay", validate_first_number);

    // Functions that need engine state or row context: the planner binds
    // them, the operators evaluate them.
    use FunctionKind::{Aggregate, Context, SetReturning};
    for (name, kind, min, max) in [
        ("meta", Context, 1, Some(1)),
        ("mqtt", Context, 1, Some(1)),
        ("props", Context, 1, Some(1)),
        ("get_keyed_state", Context, 3, Some(3)),
        ("window_start", Context, 0, Some(0)),
        ("window_end", Context, 0, Some(0)),
        ("window_trigger", Context, 0, Some(0)),
        ("event_time", Context, 0, Some(0)),
        ("row_number", Context, 0, Some(0)),
        ("last_hit_count", Context, 0, Some(0)),
        ("last_hit_time", Context, 0, Some(0)),
        ("last_agg_hit_count", Aggregate, 0, Some(0)),
        ("last_agg_hit_time", Aggregate, 0, Some(0)),
        ("unnest", SetReturning, 1, Some(1)),
        ("extract", SetReturning, 1, Some(1)),
        ("changed_cols", SetReturning, 3, None),
    ] {
        r.builtin(name, kind, min, max);
    }
    r.set_validate("meta", validate_meta_ref);
    r.set_validate("mqtt", validate_meta_ref);
    r.set_validate("props", validate_first_str);
    r.set_validate("get_keyed_state", validate_get_keyed_state);
    r.set_validate("changed_cols", validate_changed_cols);
}

fn validate_meta_ref(args: &[ArgHint]) -> Result<(), String> {
    match args.first() {
        Some(ArgHint::Literal(_)) => Err("Expect meta reference type for parameter 1".into()),
        _ => Ok(()),
    }
}

fn validate_get_keyed_state(args: &[ArgHint]) -> Result<(), String> {
    match args.get(1) {
        // eKuiper reports this one as parameter 1.
        Some(ArgHint::Literal(serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Err("Expect string type for parameter 1".into())
        }
        Some(ArgHint::Literal(serde_json::Value::String(t)))
            if !matches!(t.as_str(), "bigint" | "float" | "string" | "boolean" | "datetime") =>
        {
            Err("expect one of following value for the 2nd parameter: bigint, float, string, boolean, datetime".into())
        }
        _ => Ok(()),
    }
}

fn validate_changed_cols(args: &[ArgHint]) -> Result<(), String> {
    use serde_json::Value as J;
    if args.len() <= 2 {
        return Err(format!("expect more than two args but got {}", args.len()));
    }
    if let ArgHint::Literal(J::Number(_) | J::Bool(_)) = &args[0] {
        return Err("Expect string type for parameter 1".into());
    }
    if let ArgHint::Literal(J::Number(_) | J::String(_)) = &args[1] {
        return Err("Expect bool type for parameter 2".into());
    }
    Ok(())
}

/// A version-1 (time-based) UUID like Go's `uuid.NewUUID()`, with a random
/// node id and clock sequence chosen once per process.
fn new_uuid_v1() -> String {
    // 100 ns intervals between 1582-10-15 and 1970-01-01.
    const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;
    static LAST: AtomicU64 = AtomicU64::new(0);
    static NODE: std::sync::OnceLock<([u8; 6], u16)> = std::sync::OnceLock::new();
    let (node, clock_seq) = *NODE.get_or_init(|| {
        let mut node: [u8; 6] = rand::random();
        node[0] |= 0x01; // multicast bit: not a real MAC address
        (node, rand::random::<u16>() & 0x3fff)
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_nanos() / 100) as u64)
        .unwrap_or(0)
        .wrapping_add(GREGORIAN_OFFSET);
    // Strictly increasing timestamps keep ids unique within the process.
    let mut prev = LAST.load(Ordering::Relaxed);
    let ts = loop {
        let next = now.max(prev.wrapping_add(1));
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    let time_low = (ts & 0xffff_ffff) as u32;
    let time_mid = ((ts >> 32) & 0xffff) as u16;
    let time_hi = (((ts >> 48) & 0x0fff) as u16) | 0x1000;
    let mut d4 = [0u8; 8];
    d4[0] = ((clock_seq >> 8) as u8 & 0x3f) | 0x80;
    d4[1] = clock_seq as u8;
    d4[2..].copy_from_slice(&node);
    uuid::Uuid::from_fields(time_low, time_mid, time_hi, &d4).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{call_scalar, FuncContext, FunctionImpl};
    use weir_planner::FunctionLookup;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        call_scalar(Registry::builtins(), name, args).map_err(|e| e.0)
    }

    #[test]
    fn isnull_coalesce() {
        assert_eq!(call("isnull", &[Value::Null]), Ok(Value::Bool(true)));
        assert_eq!(call("isnull", &[Value::Int(0)]), Ok(Value::Bool(false)));
        assert_eq!(call("isnull", &[Value::array(vec![])]), Ok(Value::Bool(false)));
        assert_eq!(call("isnull", &[]).unwrap_err(), "Expect 1 arguments but found 0.");
        assert_eq!(call("coalesce", &[Value::Null, Value::Int(2), Value::Int(3)]), Ok(Value::Int(2)));
        assert_eq!(call("coalesce", &[Value::Null]), Ok(Value::Null));
        assert_eq!(call("coalesce", &[]).unwrap_err(), "Expect at least 1 arguments but found 0.");
    }

    #[test]
    fn uuid_rule_context() {
        let a = call("newuuid", &[]).unwrap();
        let b = call("newuuid", &[]).unwrap();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.as_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 1);
        assert!(call("newuuid", &[Value::Int(1)]).is_err());

        let def = Registry::builtins().get("rule_id").unwrap();
        let ctx = FuncContext { rule_id: "r1", now_ms: 5, rule_start_ms: 42 };
        let FunctionImpl::Scalar(f) = &def.imp else { panic!("not scalar") };
        assert_eq!(f(&ctx, &[]), Ok(Value::str("r1")));
        let def = Registry::builtins().get("rule_start").unwrap();
        let FunctionImpl::Scalar(f) = &def.imp else { panic!("not scalar") };
        assert_eq!(f(&ctx, &[]), Ok(Value::Int(42)));
    }

    #[test]
    fn delay_returns_value_at_once() {
        let t = std::time::Instant::now();
        assert_eq!(call("delay", &[Value::Int(10_000), Value::str("v")]), Ok(Value::str("v")));
        assert!(t.elapsed().as_secs() < 1);
        assert_eq!(call("delay", &[Value::Null, Value::str("v")]), Ok(Value::Null));
        assert_eq!(call("delay", &[Value::str("a"), Value::Int(1)]).unwrap_err(), "cannot convert string(a) to int");
        let reg = Registry::builtins();
        assert!(reg.validate("delay", &[ArgHint::Literal(serde_json::json!("1")), ArgHint::Expr]).is_err());
    }

    #[test]
    fn context_builtins() {
        let reg = Registry::builtins();
        for (name, kind) in [
            ("meta", FunctionKind::Context),
            ("window_start", FunctionKind::Context),
            ("row_number", FunctionKind::Context),
            ("last_agg_hit_time", FunctionKind::Aggregate),
            ("unnest", FunctionKind::SetReturning),
            ("changed_cols", FunctionKind::SetReturning),
            ("get_keyed_state", FunctionKind::Context),
        ] {
            let sig = reg.signature(name).unwrap();
            assert_eq!(sig.kind, kind, "{name}");
            assert!(matches!(reg.get(name).unwrap().imp, FunctionImpl::Builtin));
        }
        let lit = |v| ArgHint::Literal(v);
        assert!(reg.validate("meta", &[lit(serde_json::json!("topic"))]).is_err());
        assert!(reg.validate("meta", &[ArgHint::Expr]).is_ok());
        assert!(reg
            .validate("get_keyed_state", &[ArgHint::Expr, lit(serde_json::json!("int")), ArgHint::Expr])
            .is_err());
        assert!(reg
            .validate("get_keyed_state", &[ArgHint::Expr, lit(serde_json::json!("bigint")), ArgHint::Expr])
            .is_ok());
        assert_eq!(
            reg.validate("changed_cols", &[ArgHint::Expr, ArgHint::Expr]),
            Err("expect more than two args but got 2".into())
        );
        assert!(reg
            .validate("changed_cols", &[lit(serde_json::json!("c_")), lit(serde_json::json!(1)), ArgHint::Expr])
            .is_err());
    }
}
