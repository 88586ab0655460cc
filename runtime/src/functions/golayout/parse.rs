//! Go's `time.Parse` over a layout, and `time.Date`'s normalisation.

use super::*;

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
