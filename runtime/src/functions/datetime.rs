//! Built-in functions: date and time (eKuiper `funcs_datetime.go`, plus
//! `tstamp` from `funcs_misc.go`).
//!
//! "Now" is always the rule clock (`FuncContext::now_ms`), never the system
//! clock, so that replays are deterministic. eKuiper's `Local` time zone is
//! taken to be UTC. Most of these functions return strings, as in eKuiper.

use super::golayout as format;

use std::sync::OnceLock;

use chrono::{Datelike, Offset, Timelike};
use regex::Regex;
use weir_planner::ArgHint;

use self::format::{format_pattern, go_date, go_parse, month_name, weekday_name};
use super::golike::{go_f64_to_i64, go_str, go_v, has_nil_or_empty, to_int_strict};
use super::{def, expect_type, lit_is_bool, lit_is_num, lit_is_str, nil_checked};
use super::{FuncContext, FuncError, FuncResult, Registry};
use crate::value::{Datetime, Value};

/// jinzhu/now's default layouts, then eKuiper's two additions.
const TIME_FORMATS: &[&str] = &[
    "2006",
    "2006-1",
    "2006-1-2",
    "2006-1-2 15",
    "2006-1-2 15:4",
    "2006-1-2 15:4:5",
    "1-2",
    "15:4:5",
    "15:4",
    "15",
    "15:4:5 Jan 2, 2006 MST",
    "2006-01-02 15:04:05.999999999 -0700 MST",
    "2006-01-02T15:04:05Z0700",
    "2006-01-02T15:04:05Z07",
    "2006.1.2",
    "2006.1.2 15:04:05",
    "2006.01.02",
    "2006.01.02 15:04:05",
    "2006.01.02 15:04:05.999999999",
    "1/2/2006",
    "1/2/2006 15:4:5",
    "2006/01/02",
    "20060102",
    "2006/01/02 15:04:05",
    "Mon Jan _2 15:04:05 2006",
    "Mon Jan _2 15:04:05 MST 2006",
    "Mon Jan 02 15:04:05 -0700 2006",
    "02 Jan 06 15:04 MST",
    "02 Jan 06 15:04 -0700",
    "Monday, 02-Jan-06 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 -0700",
    "2006-01-02T15:04:05Z07:00",
    "2006-01-02T15:04:05.999999999Z07:00",
    "3:04PM",
    "Jan _2 15:04:05",
    "Jan _2 15:04:05.000",
    "Jan _2 15:04:05.000000",
    "Jan _2 15:04:05.000000000",
    "2006-01-02T15:04:05.000Z07:00",
    "2006-01-02T15:04:05",
];

fn has_time_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(\s+|^\s*|T)\d{1,2}((:\d{1,2})*|((:\d{1,2}){2}\.(\d{3}|\d{6}|\d{9})))(\s*$|[Z+-])")
            .expect("static regex")
    })
}

fn only_time_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\s*\d{1,2}((:\d{1,2})*|((:\d{1,2}){2}\.(\d{3}|\d{6}|\d{9})))\s*$").expect("static regex")
    })
}

/// The rule clock's time, in UTC.
fn now(ctx: &FuncContext<'_>) -> Result<Datetime, FuncError> {
    format::from_unix_nanos(ctx.now_ms.div_euclid(1000), ctx.now_ms.rem_euclid(1000) * 1_000_000)
        .ok_or_else(|| FuncError::new("current time out of range"))
}

/// eKuiper's `cast.padFractionalSeconds`.
fn pad_fraction(s: &str) -> String {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 2 {
        return s.to_string();
    }
    let (int_part, rest) = (parts[0], parts[1]);
    let (mut digits, suffix) = match rest.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (rest[..i].to_string(), &rest[i..]),
        None => (rest.to_string(), ""),
    };
    let target = if digits.len() > 6 {
        9
    } else if digits.len() > 3 {
        6
    } else {
        3
    };
    if digits.len() < target {
        digits.extend(std::iter::repeat_n('0', target - digits.len()));
    } else {
        digits.truncate(target);
    }
    format!("{int_part}.{digits}{suffix}")
}

/// eKuiper's `cast.ParseTime(s, "")`: jinzhu/now's parser, where parts
/// missing from the string are filled from the current time.
pub(crate) fn parse_time(s: &str, now_t: &Datetime) -> Result<Datetime, FuncError> {
    let s = pad_fraction(s);
    let has_time = has_time_re().is_match(&s);
    let only_time = has_time && only_time_re().is_match(&s);
    let t = TIME_FORMATS
        .iter()
        .find_map(|l| go_parse(l, &s))
        .ok_or_else(|| FuncError::new(format!("Can't parse string as time: {s}")))?;
    let mut p = [
        t.nanosecond() as i64,
        t.second() as i64,
        t.minute() as i64,
        t.hour() as i64,
        t.day() as i64,
        t.month() as i64,
        t.year() as i64,
    ];
    let cur = [
        now_t.nanosecond() as i64,
        now_t.second() as i64,
        now_t.minute() as i64,
        now_t.hour() as i64,
        now_t.day() as i64,
        now_t.month() as i64,
        now_t.year() as i64,
    ];
    let mut set_current = false;
    for i in 0..7 {
        if has_time && i <= 3 {
            continue;
        }
        if p[i] == 0 {
            if set_current {
                p[i] = cur[i];
            }
        } else {
            set_current = true;
        }
        if only_time && (i == 4 || i == 5) {
            p[i] = cur[i];
        }
    }
    go_date(*t.offset(), p[6], p[5], p[4], p[3], p[2], p[1], p[0])
        .ok_or_else(|| FuncError::new(format!("Can't parse string as time: {s}")))
}

/// eKuiper's `cast.InterfaceToTime(v, "")`: a datetime, Unix milliseconds,
/// or a string in one of the common layouts.
pub(crate) fn to_time(ctx: &FuncContext<'_>, v: &Value) -> Result<Datetime, FuncError> {
    let from_ms = |ms: i64| {
        format::from_unix_nanos(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
            .ok_or_else(|| FuncError::new(format!("timestamp {ms} out of range")))
    };
    match v {
        Value::Int(ms) => from_ms(*ms),
        Value::Float(f) => from_ms(go_f64_to_i64(*f)),
        Value::Datetime(t) => Ok(*t),
        Value::String(s) => parse_time(s, &now(ctx)?),
        v => Err(FuncError::new(format!("unsupported type to convert to timestamp {}", go_v(v)))),
    }
}

fn fmt(t: &Datetime, pattern: &str) -> Result<String, FuncError> {
    format_pattern(t, pattern).map_err(FuncError::new)
}

/// eKuiper's `getCurrentWithFsp`.
fn current_with_fsp(ctx: &FuncContext<'_>, args: &[Value], time_only: bool) -> FuncResult {
    let fsp = match args.first() {
        None => 0,
        Some(Value::Int(i)) => *i,
        Some(v) => return Err(FuncError::new(format!("expect int type for fsp but got {}", go_v(v)))),
    };
    let mut pattern = String::from("yyyy-MM-dd HH:mm:ss");
    if (1..=6).contains(&fsp) {
        // eKuiper appends ".S…" and its S already prints the dot: the
        // result really has two dots ("12:00:00..123").
        pattern.push('.');
        pattern.extend(std::iter::repeat_n('S', fsp as usize));
    }
    let s = fmt(&now(ctx)?, &pattern)?;
    if time_only {
        return Ok(Value::from(s.split_once(' ').map_or("", |(_, t)| t)));
    }
    Ok(Value::from(s))
}

fn validate_fsp(args: &[ArgHint]) -> Result<(), String> {
    match args.first() {
        None => Ok(()),
        Some(ArgHint::Literal(serde_json::Value::Number(n))) if n.is_i64() => Ok(()),
        Some(_) => Err(expect_type(0, "int")),
    }
}

fn not_datetime_lit(a: &ArgHint) -> bool {
    lit_is_num(a) || lit_is_str(a) || lit_is_bool(a)
}

/// `Expect datetime type for parameter <report>` if argument `i` is a
/// number, string or boolean literal.
fn check_datetime(args: &[ArgHint], i: usize, report: usize) -> Result<(), String> {
    if args.get(i).is_some_and(not_datetime_lit) {
        return Err(expect_type(report, "datetime"));
    }
    Ok(())
}

fn validate_datetime(args: &[ArgHint]) -> Result<(), String> {
    check_datetime(args, 0, 0)
}

/// `f(t)` for one datetime argument; no null short-cut (eKuiper errors on
/// null here).
fn part(r: &mut Registry, name: &'static str, f: fn(&Datetime) -> Value) {
    def(r, name, 1, Some(1), move |ctx, args| Ok(f(&to_time(ctx, &args[0])?)));
    r.set_validate(name, validate_datetime);
}

pub(crate) fn register(r: &mut Registry) {
    def(r, "now", 0, Some(1), |ctx, args| current_with_fsp(ctx, args, false));
    r.set_validate("now", validate_fsp);
    r.alias("current_timestamp", "now");
    r.alias("local_time", "now");
    r.alias("local_timestamp", "now");

    def(r, "cur_date", 0, Some(0), |ctx, _| Ok(Value::from(fmt(&now(ctx)?, "yyyy-MM-dd")?)));
    r.alias("current_date", "cur_date");

    def(r, "cur_time", 0, Some(1), |ctx, args| current_with_fsp(ctx, args, true));
    r.set_validate("cur_time", validate_fsp);
    r.alias("current_time", "cur_time");

    def(r, "tstamp", 0, Some(0), |ctx, _| Ok(Value::Int(ctx.now_ms)));

    def(r, "format_time", 2, Some(2), |ctx, args| {
        if has_nil_or_empty(args) {
            return Ok(Value::Null);
        }
        let t = to_time(ctx, &args[0])?;
        Ok(Value::from(fmt(&t, &go_str(&args[1]))?))
    });
    r.set_validate("format_time", |args| {
        check_datetime(args, 0, 0)?;
        if args.get(1).is_some_and(|a| lit_is_num(a) || lit_is_bool(a)) {
            return Err(expect_type(1, "string"));
        }
        Ok(())
    });

    def(r, "date_calc", 2, Some(2), |ctx, args| {
        let t = to_time(ctx, &args[0])?;
        let mut d = go_str(&args[1]);
        let mut sign = 1i64;
        if d.starts_with('-') {
            sign = -1;
            d.remove(0);
        }
        let ns = format::parse_duration(&d).map_err(FuncError::new)?;
        let shifted = t
            .checked_add_signed(chrono::Duration::nanoseconds(ns.wrapping_mul(sign)))
            .ok_or_else(|| FuncError::new("date_calc: result out of range"))?;
        Ok(Value::from(fmt(&shifted, "yyyy-MM-dd HH:mm:ss")?))
    });
    r.set_validate("date_calc", |args| {
        check_datetime(args, 0, 0)?;
        if args.get(1).is_some_and(|a| !lit_is_str(a)) {
            return Err(expect_type(1, "string"));
        }
        Ok(())
    });

    def(r, "date_diff", 2, Some(2), |ctx, args| {
        let a = to_time(ctx, &args[0])?;
        let b = to_time(ctx, &args[1])?;
        // Go's Time.Sub: nanoseconds, saturating.
        let ns = b.signed_duration_since(a).num_nanoseconds().unwrap_or(if b > a { i64::MAX } else { i64::MIN });
        Ok(Value::Int(ns))
    });
    r.set_validate("date_diff", |args| {
        // eKuiper reports parameter 1 for either argument.
        check_datetime(args, 0, 0)?;
        check_datetime(args, 1, 0)
    });

    part(r, "day_name", |t| Value::from(weekday_name(t)));
    part(r, "day_of_month", |t| Value::Int(t.day() as i64));
    r.alias("day", "day_of_month");
    // Go's time.Weekday: Sunday = 0 (the docs' "Sunday is 1" is wrong).
    part(r, "day_of_week", |t| Value::Int(t.weekday().num_days_from_sunday() as i64));
    part(r, "day_of_year", |t| Value::Int(t.ordinal() as i64));
    part(r, "hour", |t| Value::Int(t.hour() as i64));
    part(r, "minute", |t| Value::Int(t.minute() as i64));
    part(r, "second", |t| Value::Int(t.second() as i64));
    part(r, "microsecond", |t| Value::Int((t.nanosecond() % 1_000_000_000 / 1000) as i64));
    part(r, "month", |t| Value::Int(t.month() as i64));
    part(r, "month_name", |t| Value::from(month_name(t)));
    // eKuiper reports parameter 2 for month_name.
    r.set_validate("month_name", |args| check_datetime(args, 0, 1));

    def(r, "last_day", 1, Some(1), |ctx, args| {
        let t = to_time(ctx, &args[0])?;
        let last = go_date(chrono::Utc.fix(), t.year() as i64, t.month() as i64 + 1, 0, 0, 0, 0, 0)
            .ok_or_else(|| FuncError::new("last_day: date out of range"))?;
        Ok(Value::from(fmt(&last, "yyyy-MM-dd")?))
    });
    r.set_validate("last_day", validate_datetime);

    nil_checked(r, "from_days", 1, Some(1), |args| {
        let days = to_int_strict(&args[0])?;
        if days == 0 {
            return Ok(Value::Null);
        }
        // Go: time.Unix(0, 0).Add(time.Duration(days-1) * 24 * time.Hour),
        // where the duration arithmetic wraps.
        let ns = days.wrapping_sub(1).wrapping_mul(24).wrapping_mul(3_600_000_000_000);
        let t = format::from_unix_nanos(0, ns).ok_or_else(|| FuncError::new("from_days: date out of range"))?;
        Ok(Value::from(fmt(&t, "yyyy-MM-dd")?))
    });
    r.set_validate("from_days", validate_int_only);

    nil_checked(r, "from_unix_time", 1, Some(1), |args| {
        let secs = to_int_strict(&args[0])?;
        if secs == 0 {
            return Ok(Value::Null);
        }
        let t = format::from_unix_nanos(secs, 0)
            .ok_or_else(|| FuncError::new(format!("from_unix_time: {secs} out of range")))?;
        Ok(Value::from(fmt(&t, "yyyy-MM-dd HH:mm:ss")?))
    });
    r.set_validate("from_unix_time", validate_int_only);
}

/// eKuiper rejects every number, string or boolean literal here (even an
/// integer literal): only expressions pass.
fn validate_int_only(args: &[ArgHint]) -> Result<(), String> {
    if args.first().is_some_and(not_datetime_lit) {
        return Err(expect_type(0, "int"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "datetime_tests.rs"]
mod tests;
