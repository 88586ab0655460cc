//! Stream and table DDL: `CREATE`, `DROP`, `DESCRIBE`, `SHOW`.

use super::lexer::{Sym, Tok};
use super::Parser;
use crate::ast::{Statement, StreamKind};
use crate::catalog::{StreamDef, StreamOptions};
use crate::error::{Error, Result};
use crate::types::{DataType, FieldDef};

const OPTION_KEYS: &str = "DATASOURCE|FORMAT|KEY|CONF_KEY|SHARED|STRICT_VALIDATION|TYPE|TIMESTAMP|TIMESTAMP_FORMAT|RETAIN_SIZE|SCHEMAID|EXTRA|VERSION|TEMP|KIND|DELIMITER";

impl Parser {
    pub(crate) fn ddl(&mut self, sql: &str) -> Result<Statement> {
        if self.eat_kw("CREATE") {
            let kind = self.stream_kind()?;
            return Ok(Statement::Create(Box::new(self.create(kind, sql)?)));
        }
        if self.eat_kw("DROP") {
            let kind = self.stream_kind()?;
            return Ok(Statement::Drop(kind, self.ident()?));
        }
        if self.eat_kw("DESCRIBE") || self.eat_kw("EXPLAIN") {
            let kind = self.stream_kind()?;
            return Ok(Statement::Describe(kind, self.ident()?));
        }
        if self.eat_kw("SHOW") {
            if self.eat_kw("STREAMS") {
                return Ok(Statement::Show(StreamKind::Stream));
            }
            if self.eat_kw("TABLES") {
                return Ok(Statement::Show(StreamKind::Table));
            }
            return Err(self.unexpected("STREAMS or TABLES"));
        }
        Err(self.unexpected("SELECT, CREATE, DROP, DESCRIBE, EXPLAIN or SHOW"))
    }

    fn stream_kind(&mut self) -> Result<StreamKind> {
        if self.eat_kw("STREAM") {
            Ok(StreamKind::Stream)
        } else if self.eat_kw("TABLE") {
            Ok(StreamKind::Table)
        } else {
            Err(self.unexpected("STREAM or TABLE"))
        }
    }

    fn create(&mut self, kind: StreamKind, sql: &str) -> Result<StreamDef> {
        let name = self.ident()?;
        self.expect_sym(Sym::LParen)?;
        let fields = self.field_defs()?;
        let mut options = StreamOptions::default();
        if self.eat_kw("WITH") {
            self.expect_sym(Sym::LParen)?;
            while !self.eat_sym(Sym::RParen) {
                self.stream_option(&mut options)?;
                if !self.eat_sym(Sym::Comma) {
                    self.expect_sym(Sym::RParen)?;
                    break;
                }
            }
        }
        let fields = if fields.is_empty() { None } else { Some(fields) };
        let def = StreamDef { name, kind, fields, options, sql: sql.trim().trim_end_matches(';').to_string() };
        validate_def(&def)?;
        Ok(def)
    }

    /// `f t, g t, ...)` after the opening parenthesis (a trailing comma
    /// before `)` is tolerated, as eKuiper does).
    fn field_defs(&mut self) -> Result<Vec<FieldDef>> {
        let mut fields = Vec::new();
        while !self.eat_sym(Sym::RParen) {
            fields.push(self.field_def()?);
            if !self.eat_sym(Sym::Comma) {
                self.expect_sym(Sym::RParen)?;
                break;
            }
        }
        Ok(fields)
    }

    fn field_def(&mut self) -> Result<FieldDef> {
        let name = self.ident()?;
        let data_type = self.data_type()?;
        let default = if self.eat_kw("DEFAULT") {
            let pos = self.pos();
            match self.advance() {
                Tok::Str(s) => Some(s),
                Tok::Number(n) => Some(n),
                Tok::Sym(Sym::Minus) => match self.advance() {
                    Tok::Number(n) => Some(format!("-{n}")),
                    t => return Err(Error::parse(pos, format!("found \"{t}\", expected a default value"))),
                },
                Tok::Word { value, quoted: false }
                    if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") =>
                {
                    Some(value.to_ascii_lowercase())
                }
                t => return Err(Error::parse(pos, format!("found \"{t}\", expected a default value"))),
            }
        } else {
            None
        };
        Ok(FieldDef { name, data_type, default })
    }

    fn data_type(&mut self) -> Result<DataType> {
        let pos = self.pos();
        let word = match self.advance() {
            Tok::Word { value, quoted: false } => value.to_ascii_uppercase(),
            t => return Err(Error::parse(pos, format!("found \"{t}\", expected a field type"))),
        };
        Ok(match word.as_str() {
            "BIGINT" => DataType::Bigint,
            "FLOAT" => DataType::Float,
            "STRING" => DataType::String,
            "DATETIME" => DataType::Datetime,
            "BOOLEAN" => DataType::Boolean,
            "BYTEA" => DataType::Bytea,
            "ARRAY" => {
                self.expect_sym(Sym::LParen)?;
                let t = self.data_type()?;
                self.expect_sym(Sym::RParen)?;
                DataType::Array(Box::new(t))
            }
            "STRUCT" => {
                self.expect_sym(Sym::LParen)?;
                DataType::Struct(self.field_defs()?)
            }
            other => {
                return Err(Error::parse(
                    pos,
                    format!("unknown field type {other}, expected BIGINT, FLOAT, STRING, DATETIME, BOOLEAN, BYTEA, ARRAY or STRUCT"),
                ))
            }
        })
    }

    fn stream_option(&mut self, o: &mut StreamOptions) -> Result<()> {
        let pos = self.pos();
        let key = match self.advance() {
            Tok::Word { value, .. } => value.to_ascii_uppercase(),
            t => return Err(Error::parse(pos, format!("found \"{t}\", expected an option name"))),
        };
        self.expect_sym(Sym::Eq)?;
        let vpos = self.pos();
        let value = match self.advance() {
            Tok::Str(s) => s,
            Tok::Word { value, quoted: false }
                if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") =>
            {
                value.to_ascii_lowercase()
            }
            t => {
                return Err(Error::parse(
                    vpos,
                    format!("found \"{t}\", option values must be quoted strings or TRUE/FALSE"),
                ))
            }
        };
        let boolean = |v: &str| -> Result<bool> {
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(Error::parse(vpos, format!("option {key} expects true or false, got \"{v}\""))),
            }
        };
        match key.as_str() {
            "DATASOURCE" => o.datasource = Some(value),
            "FORMAT" => o.format = Some(value.to_ascii_lowercase()),
            "TYPE" => o.source_type = Some(value),
            "KEY" => o.key = Some(value),
            "CONF_KEY" => o.conf_key = Some(value),
            "SHARED" => o.shared = boolean(&value)?,
            "TIMESTAMP" => o.timestamp = Some(value),
            "TIMESTAMP_FORMAT" => o.timestamp_format = Some(value),
            "STRICT_VALIDATION" => o.strict_validation = boolean(&value)?,
            "KIND" => o.kind = Some(value.to_ascii_lowercase()),
            "RETAIN_SIZE" => {
                o.retain_size = Some(value.parse().map_err(|_| {
                    Error::parse(vpos, format!("RETAIN_SIZE expects a non-negative integer, got \"{value}\""))
                })?)
            }
            "DELIMITER" => o.delimiter = Some(value),
            "SCHEMAID" => o.schema_id = Some(value),
            "EXTRA" => o.extra = Some(value),
            "VERSION" => o.version = Some(value),
            "TEMP" => o.temp = boolean(&value)?,
            other => return Err(Error::parse(pos, format!("found \"{other}\", unknown option keys({OPTION_KEYS})."))),
        }
        Ok(())
    }
}

/// Checks option combinations that eKuiper rejects at creation.
fn validate_def(def: &StreamDef) -> Result<()> {
    let bad = |message: String| Err(Error::Definition { name: def.name.clone(), message });
    let format = def.format();
    const FORMATS: &[&str] = &["json", "binary", "delimited", "protobuf", "custom", "urlencoded"];
    if !FORMATS.contains(&format) {
        return bad(format!("unknown format {format}, expected one of {}", FORMATS.join(", ")));
    }
    if format == "binary" {
        if def.kind == StreamKind::Table {
            return bad("binary format is not supported for tables".into());
        }
        if let Some(fields) = &def.fields {
            if fields.len() != 1 || fields[0].data_type != DataType::Bytea {
                return bad("binary format requires no fields or exactly one BYTEA field".into());
            }
        }
    }
    if let Some(kind) = &def.options.kind {
        if def.kind == StreamKind::Stream {
            return bad("KIND applies to tables only".into());
        }
        if kind != "scan" && kind != "lookup" {
            return bad(format!("KIND must be scan or lookup, got {kind}"));
        }
        if kind == "lookup" && def.source_type() == "memory" && def.options.key.is_none() {
            return bad("Option \"key\" is required for memory lookup table.".into());
        }
    }
    if def.source_type() == "httppush" {
        if let Some(ds) = &def.options.datasource {
            if !ds.starts_with('/') {
                return bad(format!("httppush DATASOURCE must start with /, got {ds}"));
            }
        }
    }
    Ok(())
}
