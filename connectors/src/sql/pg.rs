//! PostgreSQL values: weir [`Value`]s bound as parameters of whatever type
//! the server inferred for them, and columns read back as values.
//!
//! tokio-postgres checks each Rust type against the parameter's SQL type,
//! so an `i64` cannot be bound to an `integer` column. [`Param`] accepts
//! every type and converts when it encodes: ints to `int2/int4/int8`,
//! numbers to `numeric`, text to numbers when it parses, and so on; a
//! value that does not fit is a data error naming it.

use std::error::Error as StdError;
use std::fmt;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};
use weir_runtime::{Map, Value};

use super::db::{DbError, ErrorKind};

type BoxError = Box<dyn StdError + Sync + Send>;

/// A value that cannot be converted to or from a column type.
#[derive(Debug)]
pub(crate) struct ConvertError(String);

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ConvertError {}

fn bad(v: &Value, ty: &Type) -> BoxError {
    Box::new(ConvertError(format!("cannot store {} {} in a {ty} column", v.type_name(), v.to_json())))
}

/// Sorts a tokio-postgres error into retry classes; `context` (the
/// statement) goes into the message.
pub(crate) fn classify(e: &tokio_postgres::Error, context: &str) -> DbError {
    let conversion = sources(e).any(|s| s.is::<ConvertError>());
    let kind = if conversion {
        ErrorKind::Data
    } else if let Some(db) = e.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        // 08: connection exception; 53: insufficient resources; 57P0x:
        // shutting down or starting up; 40: serialization failure/deadlock.
        if matches!(class, "08" | "53" | "40")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            ErrorKind::Connection
        } else {
            ErrorKind::Data
        }
    } else {
        ErrorKind::Connection
    };
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let chain: Vec<String> = sources(e).map(|s| s.to_string()).collect();
            if chain.is_empty() {
                e.to_string()
            } else {
                format!("{e}: {}", chain.join(": "))
            }
        }
    };
    DbError::new(kind, format!("{detail} (in {})", shorten(context)))
}

/// The chain of errors under `e`.
fn sources<'a>(e: &'a tokio_postgres::Error) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(e.source(), |s| StdError::source(*s))
}

fn shorten(sql: &str) -> String {
    const MAX: usize = 200;
    if sql.len() <= MAX {
        return sql.to_string();
    }
    let mut end = MAX;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &sql[..end])
}

/// Wraps values as parameters.
pub(crate) fn params(values: &[Value]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

/// The `&dyn ToSql` slice tokio-postgres takes.
pub(crate) fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// A row as a map of column name to value.
pub(crate) fn row_to_map(row: &tokio_postgres::Row) -> Result<Map, DbError> {
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let Cell(v) = row
            .try_get::<_, Cell>(i)
            .map_err(|e| DbError::new(ErrorKind::Data, format!("cannot read column {}: {e}", col.name())))?;
        m.insert(col.name().to_string(), v);
    }
    Ok(m)
}

/// A weir value bound to a parameter of any type.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let v = self.0;
        if v.is_null() {
            return Ok(IsNull::Yes);
        }
        match *ty {
            Type::BOOL => as_bool(v).ok_or_else(|| bad(v, ty))?.to_sql(ty, out),
            Type::INT2 => as_int(v).and_then(|i| i16::try_from(i).ok()).ok_or_else(|| bad(v, ty))?.to_sql(ty, out),
            Type::INT4 => as_int(v).and_then(|i| i32::try_from(i).ok()).ok_or_else(|| bad(v, ty))?.to_sql(ty, out),
            Type::INT8 => as_int(v).ok_or_else(|| bad(v, ty))?.to_sql(ty, out),
            Type::OID => as_int(v).and_then(|i| u32::try_from(i).ok()).ok_or_else(|| bad(v, ty))?.to_sql(ty, out),
            Type::FLOAT4 => (as_float(v).ok_or_else(|| bad(v, ty))? as f32).to_sql(ty, out),
            Type::FLOAT8 => as_float(v).ok_or_else(|| bad(v, ty))?.to_sql(ty, out),
            Type::NUMERIC => {
                let text = decimal_text(v).ok_or_else(|| bad(v, ty))?;
                encode_numeric(&text, out).ok_or_else(|| bad(v, ty))?;
                Ok(IsNull::No)
            }
            Type::BYTEA => match v {
                Value::Bytes(b) => b.as_ref().to_sql(ty, out),
                _ => text_of(v).as_bytes().to_sql(ty, out),
            },
            Type::JSON | Type::JSONB => v.to_serde_json().to_sql(ty, out),
            Type::TIMESTAMP => as_datetime(v).ok_or_else(|| bad(v, ty))?.naive_local().to_sql(ty, out),
            Type::TIMESTAMPTZ => as_datetime(v).ok_or_else(|| bad(v, ty))?.with_timezone(&Utc).to_sql(ty, out),
            Type::DATE => as_datetime(v).ok_or_else(|| bad(v, ty))?.naive_local().date().to_sql(ty, out),
            Type::TIME => as_datetime(v).ok_or_else(|| bad(v, ty))?.naive_local().time().to_sql(ty, out),
            Type::UUID => {
                let text = text_of(v);
                let hex: String = text.chars().filter(|c| *c != '-').collect();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .filter(|b| b.len() == 16)
                    .ok_or_else(|| bad(v, ty))?;
                out.put_slice(&bytes);
                Ok(IsNull::No)
            }
            _ if matches!(ty.kind(), Kind::Enum(_)) || is_text(ty) => {
                out.put_slice(text_of(v).as_bytes());
                Ok(IsNull::No)
            }
            _ => Err(Box::new(ConvertError(format!("weir cannot bind parameters of type {ty}")))),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR)
}

/// The text a value is stored as in a text column.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Map(_) | Value::Array(_) => v.to_json(),
        Value::Datetime(t) => t.to_rfc3339(),
        other => other.to_text(),
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Some(true),
            "false" | "f" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Datetime(t) => Some(t.timestamp_millis()),
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A datetime from a datetime, Unix ms or an RFC 3339 / `YYYY-MM-DD
/// HH:MM:SS[.f]` (UTC) string.
pub(crate) fn as_datetime(v: &Value) -> Option<weir_runtime::value::Datetime> {
    match v {
        Value::Datetime(t) => Some(*t),
        Value::Int(ms) => Utc.timestamp_millis_opt(*ms).single().map(|t| t.fixed_offset()),
        Value::String(s) => parse_datetime(s),
        _ => None,
    }
}

/// Parses RFC 3339, or a date and time without zone (taken as UTC), or a
/// date.
pub(crate) fn parse_datetime(s: &str) -> Option<weir_runtime::value::Datetime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().fixed_offset());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN).and_utc().fixed_offset())
}

/// A value as decimal text (no exponent), for `numeric`.
fn decimal_text(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        // Rust's `Display` for floats never uses an exponent.
        Value::Float(f) if f.is_finite() => Some(f.to_string()),
        Value::Float(f) if f.is_nan() => Some("NaN".into()),
        Value::String(s) => {
            let s = s.trim();
            let f: f64 = s.parse().ok()?;
            if s.contains(['e', 'E']) {
                f.is_finite().then(|| f.to_string())
            } else {
                Some(s.to_string())
            }
        }
        Value::Bool(b) => Some(u8::from(*b).to_string()),
        _ => None,
    }
}

/// Writes decimal text (`-12.3400`, `NaN`) in `numeric`'s binary form:
/// ndigits, weight, sign, dscale, then base-10000 digits.
fn encode_numeric(text: &str, out: &mut BytesMut) -> Option<()> {
    if text.eq_ignore_ascii_case("nan") {
        out.put_slice(&[0, 0, 0, 0, 0xC0, 0, 0, 0]);
        return Some(());
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if !(int_part.bytes().all(|b| b.is_ascii_digit()) && frac_part.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let int_part = int_part.trim_start_matches('0');
    let dscale = u16::try_from(frac_part.len()).ok()?;
    // Left-pad the integer part and right-pad the fraction to groups of 4.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let digits_text = format!("{}{int_part}{frac_part}{}", "0".repeat(int_pad), "0".repeat(frac_pad));
    let mut groups: Vec<i16> =
        digits_text.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).ok()?.parse().ok()).collect::<Option<_>>()?;
    let mut weight = i32::try_from((int_part.len() + int_pad) / 4).ok()? - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(groups.len()).ok()?);
    out.put_i16(i16::try_from(weight).ok()?);
    out.put_u16(if negative && !groups.is_empty() { 0x4000 } else { 0 });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
    Some(())
}

/// Reads `numeric`'s binary form as decimal text.
fn decode_numeric(raw: &[u8]) -> Option<String> {
    let word = |i: usize| raw.get(i * 2..i * 2 + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)? as u16);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("inf".into()),
        0xF000 => return Some("-inf".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits as usize).map(|i| word(4 + i)).collect::<Option<_>>()?;
    // The point sits after `weight + 1` groups: pad with zero groups on
    // whichever side it falls outside the stored digits.
    let int_groups = i32::from(weight) + 1;
    let mut text: String = digits.iter().map(|d| format!("{d:04}")).collect();
    if int_groups <= 0 {
        text = format!("{}{text}", "0000".repeat((-int_groups) as usize));
    } else if int_groups as usize > digits.len() {
        text.push_str(&"0000".repeat(int_groups as usize - digits.len()));
    }
    let split = int_groups.max(0) as usize * 4;
    let (int_digits, frac_digits) = text.split_at(split);
    let int_text = match int_digits.trim_start_matches('0') {
        "" => "0".to_string(),
        t => t.to_string(),
    };
    let mut frac_text: String = frac_digits.chars().take(dscale as usize).collect();
    while frac_text.len() < dscale as usize {
        frac_text.push('0');
    }
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if frac_text.is_empty() { format!("{sign}{int_text}") } else { format!("{sign}{int_text}.{frac_text}") })
}

/// A column read as a weir value.
pub(crate) struct Cell(pub(crate) Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        let v = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => {
                let text = decode_numeric(raw).ok_or_else(|| ConvertError("malformed numeric".into()))?;
                match text.parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Float(text.parse().map_err(|_| ConvertError(format!("numeric {text}")))?),
                }
            }
            Type::BYTEA => Value::bytes(raw.to_vec()),
            Type::JSON | Type::JSONB => Value::from_json(serde_json::Value::from_sql(ty, raw)?, false),
            Type::TIMESTAMP => Value::Datetime(NaiveDateTime::from_sql(ty, raw)?.and_utc().fixed_offset()),
            Type::TIMESTAMPTZ => Value::Datetime(DateTime::<Utc>::from_sql(ty, raw)?.fixed_offset()),
            Type::DATE => {
                Value::Datetime(NaiveDate::from_sql(ty, raw)?.and_time(NaiveTime::MIN).and_utc().fixed_offset())
            }
            Type::TIME => Value::str(NaiveTime::from_sql(ty, raw)?.to_string()),
            Type::UUID if raw.len() == 16 => {
                let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                Value::str(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
            }
            Type::CHAR if raw.len() == 1 => Value::str((raw[0] as char).to_string()),
            _ => match std::str::from_utf8(raw) {
                // Text types, enums and domains over text arrive as UTF-8.
                Ok(s) => Value::str(s),
                Err(_) => Value::bytes(raw.to_vec()),
            },
        };
        Ok(Cell(v))
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let mut out = BytesMut::new();
        encode_numeric(text, &mut out).unwrap();
        decode_numeric(&out).unwrap()
    }

    #[test]
    fn numeric_codec_round_trips() {
        for (input, expected) in [
            ("0", "0"),
            ("12.5", "12.5"),
            ("-12.3400", "-12.3400"),
            ("10000", "10000"),
            ("123456789.000001", "123456789.000001"),
            ("0.00012", "0.00012"),
            ("-0.5", "-0.5"),
            ("99990000", "99990000"),
            ("NaN", "NaN"),
        ] {
            assert_eq!(round_trip(input), expected, "{input}");
        }
        assert!(encode_numeric("1e5", &mut BytesMut::new()).is_none());
        assert_eq!(decimal_text(&Value::Float(1e-7)).unwrap(), "0.0000001");
    }

    #[test]
    fn conversions() {
        assert_eq!(as_int(&Value::str(" 42 ")), Some(42));
        assert_eq!(as_int(&Value::Float(3.5)), None);
        assert_eq!(as_bool(&Value::str("T")), Some(true));
        assert_eq!(
            parse_datetime("2024-05-01 10:00:00").unwrap().timestamp_millis(),
            parse_datetime("2024-05-01T10:00:00Z").unwrap().timestamp_millis()
        );
    }
}
