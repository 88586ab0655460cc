//! Go's `time.Format` over a layout, and eKuiper's pattern formatting.

use super::*;

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
