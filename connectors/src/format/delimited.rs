//! The `delimited` format, as eKuiper's converter writes and reads it.

use weir_runtime::value::format_float_v;
use weir_runtime::{Map, Value};

/// Encodes maps as delimited lines.
///
/// A single map is one line ending in `\n`; its columns are the keys of
/// the first map encoded (sorted), kept for later ones, and with
/// `hasHeader` a header line precedes the first. An array of maps is one
/// block (lines joined by `\n`, no final newline) with the header first.
#[derive(Debug, Clone)]
pub(crate) struct DelimitedEncoder {
    delimiter: String,
    has_header: bool,
    columns: Option<Vec<String>>,
}

impl DelimitedEncoder {
    pub(crate) fn new(delimiter: &str, has_header: bool) -> DelimitedEncoder {
        let delimiter = if delimiter.is_empty() { "," } else { delimiter };
        DelimitedEncoder { delimiter: delimiter.to_string(), has_header, columns: None }
    }

    /// The header line (column names) once columns are known.
    #[cfg(test)]
    fn header(&self) -> Option<String> {
        self.columns.as_ref().map(|c| c.join(&self.delimiter))
    }

    pub(crate) fn encode(&mut self, v: &Value) -> Result<Vec<u8>, String> {
        match v {
            Value::Map(m) => {
                let mut out = String::new();
                if self.columns.is_none() {
                    let cols: Vec<String> = m.keys().cloned().collect();
                    if self.has_header && !cols.is_empty() {
                        out.push_str(&cols.join(&self.delimiter));
                        out.push('\n');
                    }
                    self.columns = Some(cols);
                }
                let cols = self.columns.as_deref().unwrap_or_default();
                self.line(m, cols, &mut out);
                out.push('\n');
                Ok(out.into_bytes())
            }
            Value::Array(rows) => {
                let mut out = String::new();
                let mut cols: Option<Vec<String>> = None;
                for (i, r) in rows.iter().enumerate() {
                    let m = r.as_map().ok_or_else(|| format!("unsupported type {}, must be a map", r.to_json()))?;
                    if i > 0 {
                        out.push('\n');
                    }
                    let c = cols.get_or_insert_with(|| {
                        let c: Vec<String> = m.keys().cloned().collect();
                        if self.has_header && !c.is_empty() {
                            out.push_str(&c.join(&self.delimiter));
                            out.push('\n');
                        }
                        c
                    });
                    self.line(m, c, &mut out);
                }
                Ok(out.into_bytes())
            }
            other => Err(format!("unsupported type {}, must be a map", other.to_json())),
        }
    }

    fn line(&self, m: &Map, cols: &[String], out: &mut String) {
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.delimiter);
            }
            out.push_str(&cell(m.get(c).unwrap_or(&Value::Null)));
        }
    }
}

/// eKuiper's `cast.ToString`: floats without exponent, null empty,
/// containers as JSON.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Float(f) if f.is_finite() => format!("{f}"),
        Value::Float(f) => format_float_v(*f),
        Value::Array(_) | Value::Map(_) => v.to_json(),
        other => other.to_text(),
    }
}

/// Splits one line into `columns` (or `col0`, `col1`... when there are
/// none); values stay strings, as in eKuiper.
pub(crate) fn decode(line: &str, delimiter: &str, columns: &[String]) -> Map {
    let line = line.trim_end_matches(['\n', '\r']);
    let mut m = Map::new();
    for (i, tok) in line.split(delimiter).enumerate() {
        match columns.get(i) {
            Some(c) => {
                m.insert(c.clone(), Value::str(tok));
            }
            None if columns.is_empty() => {
                m.insert(format!("col{i}"), Value::str(tok));
            }
            None => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> Value {
        Value::from_json(serde_json::from_str(json).unwrap(), false)
    }

    #[test]
    fn maps_keep_the_first_columns_and_header_once() {
        let mut e = DelimitedEncoder::new(":", true);
        assert_eq!(e.encode(&v(r#"{"b":2.5,"a":"x"}"#)).unwrap(), b"a:b\nx:2.5\n");
        assert_eq!(e.encode(&v(r#"{"a":"y","c":1}"#)).unwrap(), b"y:\n");
        assert_eq!(e.header().as_deref(), Some("a:b"));
    }

    #[test]
    fn arrays_are_blocks() {
        let mut e = DelimitedEncoder::new(",", true);
        assert_eq!(e.encode(&v(r#"[{"a":1,"b":null},{"a":1e6,"b":[1]}]"#)).unwrap(), b"a,b\n1,\n1000000,[1]");
        assert!(e.encode(&v("[1]")).is_err());
    }

    #[test]
    fn decode_names_columns() {
        assert_eq!(decode("1,x\n", ",", &[]), v(r#"{"col0":"1","col1":"x"}"#).as_map().unwrap().clone());
        let cols = vec!["id".to_string()];
        assert_eq!(decode("1,x", ",", &cols), v(r#"{"id":"1"}"#).as_map().unwrap().clone());
    }
}
