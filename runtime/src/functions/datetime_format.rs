//! Go's time layouts, as eKuiper uses them.
//!
//! eKuiper converts its Java-like patterns (`YYYY-MM-dd HH:mm:ssSSS`) to a
//! Go layout (`2006-01-02 15:04:05.000`) and then calls Go's `time.Format`
//! or `time.Parse`; literal text of the pattern that happens to spell a Go
//! layout token is interpreted too. This module ports the three pieces
//! (`cast.convertFormat`, Go's `nextStdChunk` with format and parse, and
//! `time.ParseDuration`) so that outputs match byte for byte.
//!
//! Times are `DateTime<FixedOffset>`; Go's `Local` is taken to be UTC and a
//! zone without a name prints as `UTC` (offset 0) or `+hhmm`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike};

use crate::value::Datetime;

/// Converts an eKuiper pattern to a Go layout (`cast.convertFormat`).
pub(crate) fn convert_format(f: &str) -> Result<String, String> {
    let r: Vec<char> = f.chars().collect();
    let n = r.len();
    let mut out = String::new();
    let mut i = 0;
    // Counts repeats of r[i], looking at most `max` characters ahead.
    let run = |i: usize, max: usize| -> usize {
        let mut j = 1;
        while i + j < n && j <= max {
            if r[i + j] != r[i] {
                break;
            }
            j += 1;
        }
        j
    };
    while i < n {
        let c = r[i];
        match c {
            '\\' => {
                i += 1;
                if i >= n {
                    return Err(format!("{f} is invalid"));
                }
                out.push(r[i]);
            }
            'Y' | 'y' => {
                let j = run(i, 4);
                i += j - 1;
                match j {
                    4 => out.push_str("2006"),
                    2 => out.push_str("06"),
                    _ => return Err(format!("invalid time format {f} for Y/y")),
                }
            }
            'G' => out.push_str("AD"),
            'M' => {
                let j = run(i, 4);
                i += j - 1;
                out.push_str(match j {
                    1 => "1",
                    2 => "01",
                    3 => "Jan",
                    _ => "January",
                });
            }
            'd' => {
                let j = run(i, 2);
                i += j - 1;
                out.push_str(if j == 1 { "2" } else { "02" });
            }
            'E' => {
                let j = run(i, 4);
                i += j - 1;
                match j {
                    3 => out.push_str("Mon"),
                    4 => out.push_str("Monday"),
                    _ => return Err(format!("invalid time format {f} for E")),
                }
            }
            'H' => {
                let j = run(i, 2);
                i += j - 1;
                if j == 2 {
                    out.push_str("15");
                } else {
                    return Err(format!("invalid time format {f} of H, only HH is supported"));
                }
            }
            'h' => {
                let j = run(i, 2);
                i += j - 1;
                out.push_str(if j == 1 { "3" } else { "03" });
            }
            'a' => out.push_str("PM"),
            'm' => {
                let j = run(i, 2);
                i += j - 1;
                out.push_str(if j == 1 { "4" } else { "04" });
            }
            's' => {
                let j = run(i, 2);
                i += j - 1;
                out.push_str(if j == 1 { "5" } else { "05" });
            }
            'S' => {
                let mut j = 0;
                while i + j < n && r[i + j] == 'S' {
                    j += 1;
                }
                out.push('.');
                out.extend(std::iter::repeat_n('0', j));
                i += j - 1;
            }
            'z' => out.push_str("MST"),
            'Z' => out.push_str("-0700"),
            'X' => {
                let j = run(i, 3);
                i += j - 1;
                out.push_str(match j {
                    1 => "-07",
                    2 => "-0700",
                    _ => "-07:00",
                });
            }
            '\'' => {
                // '' is a quote; 'text' is literal text. (Go indexes past
                // the end on a trailing quote; we treat it as literal.)
                if i + 1 < n && r[i + 1] == '\'' {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                let mut j = 1;
                while i + j < n && r[i + j] != '\'' {
                    out.push(r[i + j]);
                    j += 1;
                }
                i += j;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// A Go layout element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    Month,
    LongMonth,
    NumMonth,
    ZeroMonth,
    WeekDay,
    LongWeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso8601TZ,
    Iso8601SecondsTZ,
    Iso8601ShortTZ,
    Iso8601ColonTZ,
    Iso8601ColonSecondsTZ,
    NumTZ,
    NumSecondsTz,
    NumShortTZ,
    NumColonTZ,
    NumColonSecondsTZ,
    /// `.000`: digits, separator.
    Frac0(usize, u8),
    /// `.999`: digits, separator.
    Frac9(usize, u8),
}

fn starts_lower(s: &[u8]) -> bool {
    s.first().is_some_and(|c| c.is_ascii_lowercase())
}

fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(|c| c.is_ascii_digit())
}

/// Go's `nextStdChunk`: literal prefix, element, rest.
fn next_chunk(l: &[u8]) -> (&[u8], Option<Std>, &[u8]) {
    let has = |i: usize, s: &str| l.len() >= i + s.len() && &l[i..i + s.len()] == s.as_bytes();
    for i in 0..l.len() {
        let c = l[i];
        let hit = |std: Std, len: usize| (&l[..i], Some(std), &l[i + len..]);
        match c {
            b'J' if has(i, "Jan") => {
                if has(i, "January") {
                    return hit(Std::LongMonth, 7);
                }
                if !starts_lower(&l[i + 3..]) {
                    return hit(Std::Month, 3);
                }
            }
            b'M' => {
                if has(i, "Mon") {
                    if has(i, "Monday") {
                        return hit(Std::LongWeekDay, 6);
                    }
                    if !starts_lower(&l[i + 3..]) {
                        return hit(Std::WeekDay, 3);
                    }
                }
                if has(i, "MST") {
                    return hit(Std::TZ, 3);
                }
            }
            b'0' => {
                if let Some(&d) = l.get(i + 1) {
                    if (b'1'..=b'6').contains(&d) {
                        let std = [
                            Std::ZeroMonth,
                            Std::ZeroDay,
                            Std::ZeroHour12,
                            Std::ZeroMinute,
                            Std::ZeroSecond,
                            Std::Year,
                        ][(d - b'1') as usize];
                        return hit(std, 2);
                    }
                }
                if has(i, "002") {
                    return hit(Std::ZeroYearDay, 3);
                }
            }
            b'1' => {
                if l.get(i + 1) == Some(&b'5') {
                    return hit(Std::Hour, 2);
                }
                return hit(Std::NumMonth, 1);
            }
            b'2' => {
                if has(i, "2006") {
                    return hit(Std::LongYear, 4);
                }
                return hit(Std::Day, 1);
            }
            b'_' => {
                if l.get(i + 1) == Some(&b'2') {
                    if has(i + 1, "2006") {
                        return (&l[..i + 1], Some(Std::LongYear), &l[i + 5..]);
                    }
                    return hit(Std::UnderDay, 2);
                }
                if has(i, "__2") {
                    return hit(Std::UnderYearDay, 3);
                }
            }
            b'3' => return hit(Std::Hour12, 1),
            b'4' => return hit(Std::Minute, 1),
            b'5' => return hit(Std::Second, 1),
            b'P' if l.get(i + 1) == Some(&b'M') => return hit(Std::PM, 2),
            b'p' if l.get(i + 1) == Some(&b'm') => return hit(Std::Pm, 2),
            b'-' => {
                for (s, std) in [
                    ("-070000", Std::NumSecondsTz),
                    ("-07:00:00", Std::NumColonSecondsTZ),
                    ("-0700", Std::NumTZ),
                    ("-07:00", Std::NumColonTZ),
                    ("-07", Std::NumShortTZ),
                ] {
                    if has(i, s) {
                        return hit(std, s.len());
                    }
                }
            }
            b'Z' => {
                for (s, std) in [
                    ("Z070000", Std::Iso8601SecondsTZ),
                    ("Z07:00:00", Std::Iso8601ColonSecondsTZ),
                    ("Z0700", Std::Iso8601TZ),
                    ("Z07:00", Std::Iso8601ColonTZ),
                    ("Z07", Std::Iso8601ShortTZ),
                ] {
                    if has(i, s) {
                        return hit(std, s.len());
                    }
                }
            }
            b'.' | b',' => {
                if let Some(&ch) = l.get(i + 1) {
                    if ch == b'0' || ch == b'9' {
                        let mut j = i + 1;
                        while j < l.len() && l[j] == ch {
                            j += 1;
                        }
                        if !is_digit(l, j) {
                            let n = j - (i + 1);
                            let std = if ch == b'0' { Std::Frac0(n, c) } else { Std::Frac9(n, c) };
                            return (&l[..i], Some(std), &l[j..]);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (l, None, &[])
}

const LONG_DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Go's English weekday name (Sunday = 0).
pub(crate) fn weekday_name(t: &Datetime) -> &'static str {
    LONG_DAYS[t.weekday().num_days_from_sunday() as usize]
}

/// Go's English month name.
pub(crate) fn month_name(t: &Datetime) -> &'static str {
    LONG_MONTHS[t.month0() as usize]
}

fn push_int(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    let s = v.unsigned_abs().to_string();
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(&s);
}

fn push_offset(out: &mut String, off: i32, colon: bool, short: bool, secs: bool) {
    let zone = off / 60;
    let absoff = off.abs();
    out.push(if zone < 0 { '-' } else { '+' });
    let zone = zone.abs();
    push_int(out, (zone / 60) as i64, 2);
    if !short {
        if colon {
            out.push(':');
        }
        push_int(out, (zone % 60) as i64, 2);
    }
    if secs {
        if colon {
            out.push(':');
        }
        push_int(out, (absoff % 60) as i64, 2);
    }
}

/// Formats `t` with a Go layout (`time.Time.Format`).
pub(crate) fn go_format(t: &Datetime, layout: &str) -> String {
    let mut out = String::new();
    let mut l = layout.as_bytes();
    let off = t.offset().local_minus_utc();
    let year = t.year() as i64;
    loop {
        let (prefix, std, rest) = next_chunk(l);
        out.push_str(&String::from_utf8_lossy(prefix));
        let Some(std) = std else { break };
        l = rest;
        match std {
            Std::Year => push_int(&mut out, (year % 100).abs(), 2),
            Std::LongYear => push_int(&mut out, year, 4),
            Std::Month => out.push_str(&LONG_MONTHS[t.month0() as usize][..3]),
            Std::LongMonth => out.push_str(LONG_MONTHS[t.month0() as usize]),
            Std::NumMonth => push_int(&mut out, t.month() as i64, 0),
            Std::ZeroMonth => push_int(&mut out, t.month() as i64, 2),
            Std::WeekDay => out.push_str(&weekday_name(t)[..3]),
            Std::LongWeekDay => out.push_str(weekday_name(t)),
            Std::Day => push_int(&mut out, t.day() as i64, 0),
            Std::UnderDay => {
                if t.day() < 10 {
                    out.push(' ');
                }
                push_int(&mut out, t.day() as i64, 0);
            }
            Std::ZeroDay => push_int(&mut out, t.day() as i64, 2),
            Std::UnderYearDay => {
                let yd = t.ordinal();
                if yd < 100 {
                    out.push(' ');
                    if yd < 10 {
                        out.push(' ');
                    }
                }
                push_int(&mut out, yd as i64, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, t.ordinal() as i64, 3),
            Std::Hour => push_int(&mut out, t.hour() as i64, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let mut hr = t.hour() % 12;
                if hr == 0 {
                    hr = 12;
                }
                push_int(&mut out, hr as i64, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, t.minute() as i64, 0),
            Std::ZeroMinute => push_int(&mut out, t.minute() as i64, 2),
            Std::Second => push_int(&mut out, t.second() as i64, 0),
            Std::ZeroSecond => push_int(&mut out, t.second() as i64, 2),
            Std::PM => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
            Std::Iso8601TZ
            | Std::Iso8601ColonTZ
            | Std::Iso8601SecondsTZ
            | Std::Iso8601ShortTZ
            | Std::Iso8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumColonTZ
            | Std::NumSecondsTz
            | Std::NumShortTZ
            | Std::NumColonSecondsTZ => {
                let iso = matches!(
                    std,
                    Std::Iso8601TZ
                        | Std::Iso8601ColonTZ
                        | Std::Iso8601SecondsTZ
                        | Std::Iso8601ShortTZ
                        | Std::Iso8601ColonSecondsTZ
                );
                if iso && off == 0 {
                    out.push('Z');
                    continue;
                }
                let colon = matches!(
                    std,
                    Std::Iso8601ColonTZ | Std::NumColonTZ | Std::Iso8601ColonSecondsTZ | Std::NumColonSecondsTZ
                );
                let short = matches!(std, Std::Iso8601ShortTZ | Std::NumShortTZ);
                let secs = matches!(
                    std,
                    Std::Iso8601SecondsTZ | Std::NumSecondsTz | Std::Iso8601ColonSecondsTZ | Std::NumColonSecondsTZ
                );
                push_offset(&mut out, off, colon, short, secs);
            }
            Std::TZ => {
                if off == 0 {
                    out.push_str("UTC");
                } else {
                    push_offset(&mut out, off, false, false, false);
                }
            }
            Std::Frac0(n, sep) | Std::Frac9(n, sep) => {
                let trim = matches!(std, Std::Frac9(..));
                let nanos = t.nanosecond() % 1_000_000_000;
                if trim && (n == 0 || nanos == 0) {
                    continue;
                }
                let digits = format!("{nanos:09}");
                let mut frac = String::new();
                frac.push(sep as char);
                frac.push_str(&digits[..n.min(9)]);
                if trim {
                    while frac.ends_with('0') {
                        frac.pop();
                    }
                    if frac.len() == 1 {
                        frac.clear();
                    }
                }
                out.push_str(&frac);
            }
        }
    }
    out
}

/// Go's `Time.String()` (without the monotonic clock reading).
pub(crate) fn go_time_string(t: &Datetime) -> String {
    go_format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Formats with an eKuiper pattern (`cast.FormatTime`).
pub(crate) fn format_pattern(t: &Datetime, pattern: &str) -> Result<String, String> {
    Ok(go_format(t, &convert_format(pattern)?))
}

fn lookup<'a>(tab: &[&str], v: &'a [u8], short: bool) -> Option<(usize, &'a [u8])> {
    for (i, name) in tab.iter().enumerate() {
        let name = if short { &name[..3] } else { name };
        let nb = name.as_bytes();
        if v.len() >= nb.len() && v[..nb.len()].eq_ignore_ascii_case(nb) {
            return Some((i, &v[nb.len()..]));
        }
    }
    None
}

fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    if !is_digit(s, 0) {
        return None;
    }
    if !is_digit(s, 1) {
        if fixed {
            return None;
        }
        return Some(((s[0] - b'0') as i64, &s[1..]));
    }
    Some((((s[0] - b'0') * 10 + (s[1] - b'0')) as i64, &s[2..]))
}

fn getnum3(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let mut n = 0i64;
    let mut i = 0;
    while i < 3 && is_digit(s, i) {
        n = n * 10 + (s[i] - b'0') as i64;
        i += 1;
    }
    if i == 0 || (fixed && i != 3) {
        return None;
    }
    Some((n, &s[i..]))
}

fn atoi(s: &[u8]) -> Option<i64> {
    let (neg, d) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: i64 = std::str::from_utf8(d).ok()?.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn skip<'a>(mut value: &'a [u8], mut prefix: &[u8]) -> Option<&'a [u8]> {
    while let Some(&p) = prefix.first() {
        if p == b' ' {
            if value.first().is_some_and(|&c| c != b' ') {
                return None;
            }
            while prefix.first() == Some(&b' ') {
                prefix = &prefix[1..];
            }
            while value.first() == Some(&b' ') {
                value = &value[1..];
            }
            continue;
        }
        if value.first() != Some(&p) {
            return None;
        }
        prefix = &prefix[1..];
        value = &value[1..];
    }
    Some(value)
}

fn parse_nanos(v: &[u8], n: usize) -> Option<i64> {
    if !matches!(v.first(), Some(b'.' | b',')) {
        return None;
    }
    let n = n.min(10);
    let digits = v.get(1..n)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut ns = 0i64;
    for d in digits {
        ns = ns * 10 + (d - b'0') as i64;
    }
    for _ in 0..(10 - n) {
        ns *= 10;
    }
    Some(ns)
}

fn leading_int(s: &[u8]) -> (i64, usize) {
    let mut x = 0i64;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() && x < 1 << 40 {
        x = x * 10 + (s[i] - b'0') as i64;
        i += 1;
    }
    (x, i)
}

fn parse_signed_offset(v: &[u8]) -> usize {
    if !matches!(v.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let (x, n) = leading_int(&v[1..]);
    if n == 0 || x > 23 {
        return 0;
    }
    1 + n
}

/// Go's `parseTimeZone`: length of a zone abbreviation at the start.
fn parse_time_zone(v: &[u8]) -> Option<usize> {
    if v.len() < 3 {
        return None;
    }
    if v.len() >= 4 && (&v[..4] == b"ChST" || &v[..4] == b"MeST") {
        return Some(4);
    }
    if &v[..3] == b"GMT" {
        let rest = &v[3..];
        if rest.is_empty() {
            return Some(3);
        }
        return Some(3 + parse_signed_offset(rest));
    }
    if v[0] == b'+' || v[0] == b'-' {
        let n = parse_signed_offset(v);
        return (n > 0).then_some(n);
    }
    let mut upper = 0;
    while upper < 6 && upper < v.len() && v[upper].is_ascii_uppercase() {
        upper += 1;
    }
    match upper {
        5 if v[4] == b'T' => Some(5),
        4 if v[3] == b'T' || &v[..4] == b"WITA" => Some(4),
        3 => Some(3),
        _ => None,
    }
}

/// Go's `time.Parse(layout, value)` with `Local` = UTC. The error carries
/// no detail (callers replace it with eKuiper's message).
pub(crate) fn go_parse(layout: &str, value: &str) -> Option<Datetime> {
    let mut l = layout.as_bytes();
    let mut v = value.as_bytes();
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let (mut pm_set, mut am_set) = (false, false);
    let mut utc = false;
    let mut zone_offset: Option<i64> = None;
    let mut zone_name: Option<Vec<u8>> = None;
    loop {
        let (prefix, std, rest) = next_chunk(l);
        v = skip(v, prefix)?;
        let Some(std) = std else {
            if !v.is_empty() {
                return None;
            }
            break;
        };
        l = rest;
        match std {
            Std::Year => {
                let p = v.get(..2)?;
                v = &v[2..];
                year = atoi(p)?;
                year += if year >= 69 { 1900 } else { 2000 };
            }
            Std::LongYear => {
                if v.len() < 4 || !is_digit(v, 0) {
                    return None;
                }
                year = atoi(&v[..4])?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let (m, r) = lookup(&LONG_MONTHS, v, std == Std::Month)?;
                month = m as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (m, r) = getnum(v, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&m) {
                    return None;
                }
                month = m;
                v = r;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let (_, r) = lookup(&LONG_DAYS, v, std == Std::WeekDay)?;
                v = r;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && v.first() == Some(&b' ') {
                    v = &v[1..];
                }
                let (d, r) = getnum(v, std == Std::ZeroDay)?;
                day = d;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                for _ in 0..2 {
                    if std == Std::UnderYearDay && v.first() == Some(&b' ') {
                        v = &v[1..];
                    }
                }
                let (d, r) = getnum3(v, std == Std::ZeroYearDay)?;
                yday = d;
                v = r;
            }
            Std::Hour => {
                let (h, r) = getnum(v, false)?;
                if !(0..24).contains(&h) {
                    return None;
                }
                hour = h;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (h, r) = getnum(v, std == Std::ZeroHour12)?;
                if !(0..=12).contains(&h) {
                    return None;
                }
                hour = h;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let (m, r) = getnum(v, std == Std::ZeroMinute)?;
                if !(0..60).contains(&m) {
                    return None;
                }
                min = m;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let (s, r) = getnum(v, std == Std::ZeroSecond)?;
                if !(0..60).contains(&s) {
                    return None;
                }
                sec = s;
                v = r;
                if v.len() >= 2 && matches!(v[0], b'.' | b',') && is_digit(v, 1) {
                    let (_, next, _) = next_chunk(l);
                    if !matches!(next, Some(Std::Frac0(..) | Std::Frac9(..))) {
                        let mut n = 2;
                        while n < v.len() && is_digit(v, n) {
                            n += 1;
                        }
                        nsec = parse_nanos(v, n)?;
                        v = &v[n..];
                    }
                }
            }
            Std::PM | Std::Pm => {
                let p = v.get(..2)?;
                v = &v[2..];
                let (pmw, amw): (&[u8], &[u8]) = if std == Std::PM { (b"PM", b"AM") } else { (b"pm", b"am") };
                if p == pmw {
                    pm_set = true;
                } else if p == amw {
                    am_set = true;
                } else {
                    return None;
                }
            }
            Std::Iso8601TZ
            | Std::Iso8601ShortTZ
            | Std::Iso8601ColonTZ
            | Std::Iso8601SecondsTZ
            | Std::Iso8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumShortTZ
            | Std::NumColonTZ
            | Std::NumSecondsTz
            | Std::NumColonSecondsTZ => {
                let iso = matches!(
                    std,
                    Std::Iso8601TZ
                        | Std::Iso8601ShortTZ
                        | Std::Iso8601ColonTZ
                        | Std::Iso8601SecondsTZ
                        | Std::Iso8601ColonSecondsTZ
                );
                if iso && v.first() == Some(&b'Z') {
                    v = &v[1..];
                    utc = true;
                    continue;
                }
                let (sign, hh, mm, ss, r): (u8, &[u8], &[u8], &[u8], &[u8]) = match std {
                    Std::Iso8601ColonTZ | Std::NumColonTZ => {
                        if v.len() < 6 || v[3] != b':' {
                            return None;
                        }
                        (v[0], &v[1..3], &v[4..6], b"00", &v[6..])
                    }
                    Std::NumShortTZ | Std::Iso8601ShortTZ => {
                        if v.len() < 3 {
                            return None;
                        }
                        (v[0], &v[1..3], b"00", b"00", &v[3..])
                    }
                    Std::Iso8601ColonSecondsTZ | Std::NumColonSecondsTZ => {
                        if v.len() < 9 || v[3] != b':' || v[6] != b':' {
                            return None;
                        }
                        (v[0], &v[1..3], &v[4..6], &v[7..9], &v[9..])
                    }
                    Std::Iso8601SecondsTZ | Std::NumSecondsTz => {
                        if v.len() < 7 {
                            return None;
                        }
                        (v[0], &v[1..3], &v[3..5], &v[5..7], &v[7..])
                    }
                    _ => {
                        if v.len() < 5 {
                            return None;
                        }
                        (v[0], &v[1..3], &v[3..5], b"00", &v[5..])
                    }
                };
                let (h, _) = getnum(hh, true)?;
                let (m, _) = getnum(mm, true)?;
                let (s, _) = getnum(ss, true)?;
                if h > 24 || m > 60 || s > 60 {
                    return None;
                }
                let o = (h * 60 + m) * 60 + s;
                zone_offset = Some(match sign {
                    b'+' => o,
                    b'-' => -o,
                    _ => return None,
                });
                v = r;
            }
            Std::TZ => {
                if v.len() >= 3 && &v[..3] == b"UTC" {
                    utc = true;
                    v = &v[3..];
                    continue;
                }
                let n = parse_time_zone(v)?;
                zone_name = Some(v[..n].to_vec());
                v = &v[n..];
            }
            Std::Frac0(n, _) => {
                let nd = 1 + n;
                if v.len() < nd {
                    return None;
                }
                nsec = parse_nanos(v, nd)?;
                v = &v[nd..];
            }
            Std::Frac9(..) => {
                if v.len() < 2 || !matches!(v[0], b'.' | b',') || !v[1].is_ascii_digit() {
                    continue;
                }
                let mut i = 0;
                while i + 1 < v.len() && v[i + 1].is_ascii_digit() {
                    i += 1;
                }
                nsec = parse_nanos(v, 1 + i)?;
                v = &v[1 + i..];
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    let date = if yday >= 0 {
        let d = NaiveDate::from_yo_opt(year as i32, yday as u32)?;
        if (month >= 0 && d.month() as i64 != month) || (day >= 0 && d.day() as i64 != day) {
            return None;
        }
        d
    } else {
        NaiveDate::from_ymd_opt(year as i32, month.max(1) as u32, day.max(1) as u32)?
    };
    let naive = date.and_hms_nano_opt(hour as u32, min as u32, sec as u32, nsec as u32)?;
    let offset = if utc {
        0
    } else if let Some(o) = zone_offset {
        o
    } else if let Some(name) = zone_name {
        // Unknown abbreviations get offset 0; GMT+h its hours.
        if name.len() > 3 && &name[..3] == b"GMT" {
            atoi(&name[3..]).unwrap_or(0) * 3600
        } else {
            0
        }
    } else {
        0
    };
    let tz = FixedOffset::east_opt(offset as i32)?;
    tz.from_local_datetime(&naive).single()
}

/// Builds a datetime from local fields in `tz`, normalising overflowing
/// fields as Go's `time.Date` does (used by the `now` fill-in logic).
#[allow(clippy::too_many_arguments)]
pub(crate) fn go_date(
    tz: FixedOffset,
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nsec: i64,
) -> Option<Datetime> {
    let m0 = month - 1;
    let y = year + m0.div_euclid(12);
    let m = m0.rem_euclid(12) + 1;
    let first = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m as u32, 1)?;
    let base = first.and_hms_opt(0, 0, 0)?;
    let secs = (day - 1)
        .checked_mul(86_400)?
        .checked_add(hour.checked_mul(3600)?)?
        .checked_add(min.checked_mul(60)?)?
        .checked_add(sec)?;
    let naive = base
        .checked_add_signed(chrono::Duration::try_seconds(secs)?)?
        .checked_add_signed(chrono::Duration::nanoseconds(nsec))?;
    tz.from_local_datetime(&naive).single()
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let orig = s;
    let err = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = s.as_bytes();
    let mut d: u64 = 0;
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(err());
    }
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(err());
        }
        // Integer part.
        let pl = s.len();
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((s[i] - b'0') as u64))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(err)?;
            i += 1;
        }
        s = &s[i..];
        let pre = pl != s.len();
        // Fraction.
        let mut post = false;
        let (mut f, mut scale) = (0u64, 1f64);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let pl = s.len();
            let mut i = 0;
            let mut overflow = false;
            while i < s.len() && s[i].is_ascii_digit() {
                if !overflow {
                    if f > (1u64 << 63) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + (s[i] - b'0') as u64;
                        if y > 1 << 63 {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            s = &s[i..];
            post = pl != s.len();
        }
        if !pre && !post {
            return Err(err());
        }
        // Unit.
        let mut i = 0;
        while i < s.len() && s[i] != b'.' && !s[i].is_ascii_digit() {
            i += 1;
        }
        if i == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let u = &s[..i];
        s = &s[i..];
        let unit: u64 = match u {
            b"ns" => 1,
            b"us" => 1_000,
            b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(&String::from_utf8_lossy(u)),
                    go_quote(orig)
                ))
            }
        };
        if v > (1u64 << 63) / unit {
            return Err(err());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(err());
            }
        }
        d = d.checked_add(v).filter(|d| *d <= 1 << 63).ok_or_else(err)?;
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > i64::MAX as u64 {
        return Err(err());
    }
    Ok(d as i64)
}

/// Go's `quote` in the time package: `"` + text + `"` with escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A datetime from Unix nanoseconds in UTC (`None` if out of range).
pub(crate) fn from_unix_nanos(secs: i64, nanos: i64) -> Option<Datetime> {
    let extra = nanos.div_euclid(1_000_000_000);
    let ns = nanos.rem_euclid(1_000_000_000) as u32;
    let s = secs.checked_add(extra)?;
    DateTime::from_timestamp(s, ns).map(|t| t.fixed_offset())
}
