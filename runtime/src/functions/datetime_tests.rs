#![allow(clippy::cloned_ref_to_slice_refs, clippy::approx_constant)]

use super::format::{convert_format, go_format, parse_duration};
use super::*;
use crate::functions::test_util::{i, s};
use crate::functions::{FunctionImpl, FunctionLookup};

/// 2023-08-14 06:38:25.123 UTC.
const NOW_MS: i64 = 1_691_995_105_123;

fn call_at(now_ms: i64, name: &str, args: &[Value]) -> FuncResult {
    let def = Registry::builtins().get(name).expect("registered");
    crate::functions::check_arity(def, args.len())?;
    let ctx = FuncContext { rule_id: "r", now_ms, rule_start_ms: 0 };
    match &def.imp {
        FunctionImpl::Scalar(f) => f(&ctx, args),
        _ => panic!("not scalar"),
    }
}
fn call(name: &str, args: &[Value]) -> FuncResult {
    call_at(NOW_MS, name, args)
}
fn dt(x: &str) -> Datetime {
    chrono::DateTime::parse_from_rfc3339(x).unwrap()
}
fn parse(x: &str) -> Result<Datetime, FuncError> {
    let now = dt("2023-08-14T06:38:25.123Z");
    parse_time(x, &now)
}

#[test]
fn convert_format_like_ekuiper() {
    assert_eq!(convert_format("yyyy-MM-ddTHH:mm:ssSS\\ZXX").unwrap(), "2006-01-02T15:04:05.00Z-0700");
    assert!(convert_format("\\").is_err());
    assert_eq!(convert_format("yyyy-MM-dd HH:mm:ssSSSSSSSXX").unwrap(), "2006-01-02 15:04:05.0000000-0700");
    assert!(convert_format("YYY").is_err());
    assert!(convert_format("H").is_err());
    assert!(convert_format("E").is_err());
    assert_eq!(convert_format("G a z Z X XXX EEEE MMMM").unwrap(), "AD PM MST -0700 -07 -07:00 Monday January");
}

#[test]
fn format_time_patterns() {
    let t = Value::Datetime(dt("2020-01-16T02:14:24.913Z"));
    let f = |p: &str| call("format_time", &[t.clone(), s(p)]).unwrap();
    assert_eq!(f("YYYY-MM-dd HH:mm:ssSSS"), s("2020-01-16 02:14:24.913"));
    assert_eq!(f("YYYY-MM-dd T HH:mm:ss"), s("2020-01-16 T 02:14:24"));
    // eKuiper's S includes the dot, so ".SSS" prints two.
    assert_eq!(f("YYYY-MM-dd HH:mm:ss.SSS"), s("2020-01-16 02:14:24..913"));
    assert_eq!(f("yy/M/d h:m:s a"), s("20/1/16 2:14:24 AM"));
    assert_eq!(f("EEE EEEE MMM MMMM G"), s("Thu Thursday Jan January AD"));
    // X is Go's -07 (not Z07), so UTC prints +00.
    assert_eq!(f("z Z X XX XXX"), s("UTC +0000 +00 +0000 +00:00"));
    assert_eq!(f("'at' HH''mm"), s("at 02'14"));
    let sh = Value::Datetime(dt("2020-01-16T10:14:24+08:00"));
    assert_eq!(call("format_time", &[sh, s("HH:mm z Z XXX")]).unwrap(), s("10:14 +0800 +0800 +08:00"));
    assert!(call("format_time", &[t.clone(), s("YYY")]).is_err());
    assert_eq!(call("format_time", &[Value::Null, s("YYYY")]).unwrap(), Value::Null);
    // Numbers are Unix ms, strings are parsed.
    assert_eq!(call("format_time", &[i(0), s("YYYY-MM-dd")]).unwrap(), s("1970-01-01"));
    assert_eq!(call("format_time", &[s("2019-01-01 00:00:00"), s("YYYY/MM/dd")]).unwrap(), s("2019/01/01"));
    assert!(call("format_time", &[Value::Bool(true), s("YYYY")]).is_err());
}

#[test]
fn go_layouts() {
    let t = dt("2006-01-02T15:04:05.123456789-07:00");
    assert_eq!(go_format(&t, "2006-01-02T15:04:05.999999999Z07:00"), "2006-01-02T15:04:05.123456789-07:00");
    assert_eq!(go_format(&t, "Jan _2 3:4:5 pm .000 ,99"), "Jan  2 3:4:5 pm .123 ,12");
    assert_eq!(go_format(&dt("2020-01-16T02:14:24Z"), "05.999"), "24");
    assert_eq!(go_time_string_of("2020-01-16T02:14:24.5Z"), "2020-01-16 02:14:24.5 +0000 UTC");
}

fn go_time_string_of(x: &str) -> String {
    super::format::go_time_string(&dt(x))
}

#[test]
fn parse_common_layouts() {
    assert_eq!(parse("2019-01-01 00:00:00").unwrap(), dt("2019-01-01T00:00:00Z"));
    assert_eq!(parse("2022-04-13 06:22:32.233").unwrap(), dt("2022-04-13T06:22:32.233Z"));
    assert_eq!(parse("2019-01-01 01:00:00.123456").unwrap(), dt("2019-01-01T01:00:00.123456Z"));
    assert_eq!(parse("2022-04-13T06:22:32.233Z").unwrap(), dt("2022-04-13T06:22:32.233Z"));
    assert_eq!(parse("2022-04-13T06:22:32+08:00").unwrap(), dt("2022-04-13T06:22:32+08:00"));
    assert_eq!(parse("2022-04-13T06:22:32.7+08:00").unwrap(), dt("2022-04-13T06:22:32.7+08:00"));
    assert_eq!(parse("2022-04-13T06:22:32").unwrap(), dt("2022-04-13T06:22:32Z"));
    assert_eq!(parse("2019-01-01").unwrap(), dt("2019-01-01T00:00:00Z"));
    assert_eq!(parse("2019-1-2").unwrap(), dt("2019-01-02T00:00:00Z"));
    assert_eq!(parse("2019/01/02").unwrap(), dt("2019-01-02T00:00:00Z"));
    assert_eq!(parse("20190102").unwrap(), dt("2019-01-02T00:00:00Z"));
    assert_eq!(parse("1/2/2019").unwrap(), dt("2019-01-02T00:00:00Z"));
    assert_eq!(parse("Mon, 02 Jan 2006 15:04:05 -0700").unwrap(), dt("2006-01-02T15:04:05-07:00"));
    assert_eq!(parse("Mon Jan  2 15:04:05 2006").unwrap(), dt("2006-01-02T15:04:05Z"));
    assert_eq!(parse("2020").unwrap(), dt("2020-01-01T00:00:00Z"));
    // Only a time: today's date from the rule clock.
    assert_eq!(parse("15:04:05").unwrap(), dt("2023-08-14T15:04:05Z"));
    // jinzhu/now does not see "3:04PM" as a time: only the zero year is filled.
    assert_eq!(parse("3:04PM").unwrap(), dt("2023-01-01T15:04:00Z"));
    // Month-day: the current year.
    assert_eq!(parse("12-25").unwrap(), dt("2023-12-25T00:00:00Z"));
    assert_eq!(parse("garbage").unwrap_err().0, "Can't parse string as time: garbage");
    assert!(parse("2019-02-30").is_err());
    assert!(parse("2019-01-01 25:00:00").is_err());
}

#[test]
fn durations_like_go() {
    assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
    assert_eq!(parse_duration("-1.5h").unwrap(), -5_400_000_000_000);
    assert_eq!(parse_duration("100ms200us300ns").unwrap(), 100_200_300);
    assert_eq!(parse_duration("1µs").unwrap(), 1000);
    assert_eq!(parse_duration("0").unwrap(), 0);
    assert_eq!(parse_duration("1").unwrap_err(), "time: missing unit in duration \"1\"");
    assert_eq!(parse_duration("1d").unwrap_err(), "time: unknown unit \"d\" in duration \"1d\"");
    assert_eq!(parse_duration("").unwrap_err(), "time: invalid duration \"\"");
    assert!(parse_duration("9999999999999h").is_err());
}

#[test]
fn now_family_uses_the_rule_clock() {
    assert_eq!(call("now", &[]).unwrap(), s("2023-08-14 06:38:25"));
    assert_eq!(call("current_timestamp", &[]).unwrap(), s("2023-08-14 06:38:25"));
    assert_eq!(call("local_time", &[]).unwrap(), s("2023-08-14 06:38:25"));
    assert_eq!(call("local_timestamp", &[]).unwrap(), s("2023-08-14 06:38:25"));
    assert_eq!(call("now", &[i(3)]).unwrap(), s("2023-08-14 06:38:25..123"));
    assert_eq!(call("now", &[i(9)]).unwrap(), s("2023-08-14 06:38:25"));
    assert_eq!(call("cur_date", &[]).unwrap(), s("2023-08-14"));
    assert_eq!(call("current_date", &[]).unwrap(), s("2023-08-14"));
    assert_eq!(call("cur_time", &[]).unwrap(), s("06:38:25"));
    assert_eq!(call("current_time", &[i(1)]).unwrap(), s("06:38:25..1"));
    assert_eq!(call("tstamp", &[]).unwrap(), i(NOW_MS));
    assert_eq!(call_at(0, "now", &[]).unwrap(), s("1970-01-01 00:00:00"));
    assert!(call("now", &[i(1), i(2)]).is_err());
    assert!(call("now", &[s("1")]).is_err());
    assert!(call("tstamp", &[i(1)]).is_err());
    let r = Registry::builtins();
    assert!(r.validate("now", &[ArgHint::Literal(serde_json::json!(3))]).is_ok());
    assert!(r.validate("now", &[ArgHint::Literal(serde_json::json!("3"))]).is_err());
    assert!(r.validate("cur_time", &[ArgHint::Expr]).is_err());
}

#[test]
fn date_calc_and_diff() {
    assert_eq!(call("date_calc", &[s("2019-01-01 00:00:00"), s("24h")]).unwrap(), s("2019-01-02 00:00:00"));
    assert_eq!(call("date_calc", &[s("2019-01-01 00:00:00"), s("-24h")]).unwrap(), s("2018-12-31 00:00:00"));
    assert_eq!(call("date_calc", &[i(0), s("1h30m")]).unwrap(), s("1970-01-01 01:30:00"));
    assert!(call("date_calc", &[i(0), s("1d")]).is_err());
    assert_eq!(
        call("date_calc", &[Value::Null, s("1h")]).unwrap_err().0,
        "unsupported type to convert to timestamp <nil>"
    );
    assert_eq!(
        call("date_diff", &[s("2019-01-01 00:00:00"), s("2019-01-02 00:00:00")]).unwrap(),
        i(86_400_000_000_000)
    );
    assert_eq!(call("date_diff", &[i(1000), i(0)]).unwrap(), i(-1_000_000_000));
    let r = Registry::builtins();
    assert_eq!(
        r.validate("date_calc", &[ArgHint::Literal(serde_json::json!(1)), ArgHint::Literal(serde_json::json!("24h"))])
            .unwrap_err(),
        "Expect datetime type for parameter 1"
    );
    assert!(r.validate("date_calc", &[ArgHint::Expr, ArgHint::Expr]).is_err());
    assert!(r.validate("date_diff", &[ArgHint::Expr, ArgHint::Literal(serde_json::json!(2))]).is_err());
}

#[test]
fn parts_of_a_date() {
    let d = s("2019-01-01 01:23:45.123456");
    assert_eq!(call("day_name", &[d.clone()]).unwrap(), s("Tuesday"));
    assert_eq!(call("day_of_month", &[d.clone()]).unwrap(), i(1));
    assert_eq!(call("day", &[d.clone()]).unwrap(), i(1));
    // Go's Weekday: Sunday = 0, so Tuesday = 2.
    assert_eq!(call("day_of_week", &[d.clone()]).unwrap(), i(2));
    assert_eq!(call("day_of_week", &[s("2019-01-06")]).unwrap(), i(0));
    assert_eq!(call("day_of_year", &[s("2019-02-01")]).unwrap(), i(32));
    assert_eq!(call("hour", &[d.clone()]).unwrap(), i(1));
    assert_eq!(call("minute", &[d.clone()]).unwrap(), i(23));
    assert_eq!(call("second", &[d.clone()]).unwrap(), i(45));
    assert_eq!(call("microsecond", &[d.clone()]).unwrap(), i(123456));
    assert_eq!(call("month", &[d.clone()]).unwrap(), i(1));
    assert_eq!(call("month_name", &[d.clone()]).unwrap(), s("January"));
    assert_eq!(call("last_day", &[d.clone()]).unwrap(), s("2019-01-31"));
    assert_eq!(call("last_day", &[s("2020-02-10")]).unwrap(), s("2020-02-29"));
    assert_eq!(call("last_day", &[s("2020-12-10")]).unwrap(), s("2020-12-31"));
    assert_eq!(call("hour", &[Value::Datetime(dt("2020-01-01T10:00:00+08:00"))]).unwrap(), i(10));
    assert_eq!(call("hour", &[i(3_600_000)]).unwrap(), i(1));
    assert!(call("hour", &[Value::Null]).is_err());
    assert!(call("hour", &[Value::Bool(true)]).is_err());
    assert!(call("hour", &[]).is_err());
    let r = Registry::builtins();
    let one = |n: &str, v: serde_json::Value| r.validate(n, &[ArgHint::Literal(v)]);
    assert_eq!(one("hour", serde_json::json!(1)).unwrap_err(), "Expect datetime type for parameter 1");
    assert_eq!(one("month_name", serde_json::json!(1)).unwrap_err(), "Expect datetime type for parameter 2");
    assert!(r.validate("day_of_week", &[ArgHint::Expr]).is_ok());
}

#[test]
fn from_days_and_unix_time() {
    assert_eq!(call("from_days", &[i(100)]).unwrap(), s("1970-04-10"));
    assert_eq!(call("from_days", &[i(1)]).unwrap(), s("1970-01-01"));
    assert_eq!(call("from_days", &[i(0)]).unwrap(), Value::Null);
    assert_eq!(call("from_days", &[Value::Null]).unwrap(), Value::Null);
    assert!(call("from_days", &[Value::Float(1.5)]).is_err());
    assert!(call("from_days", &[i(i64::MAX)]).is_ok());
    assert_eq!(call("from_unix_time", &[i(1_691_995_105)]).unwrap(), s("2023-08-14 06:38:25"));
    assert_eq!(call("from_unix_time", &[i(0)]).unwrap(), Value::Null);
    assert!(call("from_unix_time", &[i(i64::MAX)]).is_err());
    let r = Registry::builtins();
    assert_eq!(
        r.validate("from_days", &[ArgHint::Literal(serde_json::json!(1))]).unwrap_err(),
        "Expect int type for parameter 1"
    );
    assert!(r.validate("from_unix_time", &[ArgHint::Expr]).is_ok());
}
