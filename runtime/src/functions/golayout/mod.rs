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

mod duration;
mod format;
mod parse;

pub(crate) use duration::parse_duration;
#[cfg(test)]
pub(crate) use format::go_format;
pub(crate) use format::{format_pattern, go_time_string};
pub(crate) use parse::{go_date, go_parse};

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

/// A datetime from Unix nanoseconds in UTC (`None` if out of range).
pub(crate) fn from_unix_nanos(secs: i64, nanos: i64) -> Option<Datetime> {
    let extra = nanos.div_euclid(1_000_000_000);
    let ns = nanos.rem_euclid(1_000_000_000) as u32;
    let s = secs.checked_add(extra)?;
    DateTime::from_timestamp(s, ns).map(|t| t.fixed_offset())
}
