//! Stream and table definitions, and the catalog rules are planned against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ast::StreamKind;
use crate::types::FieldDef;

/// The `WITH (...)` options of a stream or table, typed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// `DATASOURCE`: topic, file, path... depending on the type.
    pub datasource: Option<String>,
    /// `FORMAT` (lower-case), default `json`.
    pub format: Option<String>,
    /// `TYPE`: source type, default `mqtt` for streams and `file` for tables.
    pub source_type: Option<String>,
    /// `KEY`: table primary key.
    pub key: Option<String>,
    /// `CONF_KEY`: configuration section.
    pub conf_key: Option<String>,
    /// `SHARED`.
    pub shared: bool,
    /// `TIMESTAMP`: event-time field.
    pub timestamp: Option<String>,
    /// `TIMESTAMP_FORMAT`.
    pub timestamp_format: Option<String>,
    /// `STRICT_VALIDATION`.
    pub strict_validation: bool,
    /// `KIND`: `scan` or `lookup` for tables.
    pub kind: Option<String>,
    /// `RETAIN_SIZE`: rows kept by a scan table.
    pub retain_size: Option<u64>,
    /// `DELIMITER` for the delimited format.
    pub delimiter: Option<String>,
    /// `SCHEMAID`.
    pub schema_id: Option<String>,
    /// `EXTRA`: JSON overriding configuration properties.
    pub extra: Option<String>,
    /// `VERSION`.
    pub version: Option<String>,
    /// `TEMP`.
    pub temp: bool,
}

/// A stream or table as created by `CREATE STREAM|TABLE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDef {
    /// Name.
    pub name: String,
    /// Stream or table.
    pub kind: StreamKind,
    /// Declared fields; `None` for a schemaless `()` definition.
    pub fields: Option<Vec<FieldDef>>,
    /// `WITH` options.
    pub options: StreamOptions,
    /// The statement text it was created from.
    pub sql: String,
}

impl StreamDef {
    /// The source type with eKuiper's defaults applied.
    pub fn source_type(&self) -> &str {
        match (&self.options.source_type, self.kind) {
            (Some(t), _) if !t.is_empty() => t,
            (_, StreamKind::Stream) => "mqtt",
            (_, StreamKind::Table) => "file",
        }
    }

    /// The payload format, lower-case, default `json`.
    pub fn format(&self) -> &str {
        self.options.format.as_deref().unwrap_or("json")
    }

    /// Whether this is a lookup table (queried per event, not scanned).
    pub fn is_lookup(&self) -> bool {
        self.kind == StreamKind::Table && self.options.kind.as_deref() == Some("lookup")
    }

    /// Rows a scan table keeps: `RETAIN_SIZE`, else 9999 for file tables and
    /// 1 for every other type (eKuiper's defaults).
    pub fn retain_size(&self) -> u64 {
        match self.options.retain_size {
            Some(n) => n,
            None if self.source_type() == "file" => 9999,
            None => 1,
        }
    }

    /// The declared field `name`, if the definition has a schema.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.as_ref()?.iter().find(|f| f.name == name)
    }

    /// eKuiper's `GET /streams/{n}` body.
    pub fn to_ekuiper_json(&self) -> serde_json::Value {
        let o = &self.options;
        let mut opts = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                opts.insert(k.to_string(), v);
            }
        };
        put("datasource", o.datasource.clone().map(Into::into));
        put("format", o.format.as_ref().map(|f| f.to_uppercase().into()));
        put("type", o.source_type.clone().map(Into::into));
        put("key", o.key.clone().map(Into::into));
        put("confKey", o.conf_key.clone().map(Into::into));
        put("shared", o.shared.then_some(true.into()));
        put("strictValidation", o.strict_validation.then_some(true.into()));
        put("timestamp", o.timestamp.clone().map(Into::into));
        put("timestampFormat", o.timestamp_format.clone().map(Into::into));
        put("schemaid", o.schema_id.clone().map(Into::into));
        put("retainSize", o.retain_size.map(Into::into));
        put("kind", o.kind.clone().map(Into::into));
        put("delimiter", o.delimiter.clone().map(Into::into));
        put("version", o.version.clone().map(Into::into));
        put("extra", o.extra.clone().map(Into::into));
        put("temp", o.temp.then_some(true.into()));
        serde_json::json!({
            "Name": self.name,
            "StreamFields": self.fields.as_ref().map(|f| f.iter().map(FieldDef::to_ekuiper_json).collect::<Vec<_>>()),
            "Options": opts,
            "StreamType": match self.kind { StreamKind::Stream => 0, StreamKind::Table => 1 },
            "Statement": null,
        })
    }
}

/// The streams and tables a rule can read, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    defs: BTreeMap<String, StreamDef>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds a definition; returns the previous one of that name.
    pub fn insert(&mut self, def: StreamDef) -> Option<StreamDef> {
        self.defs.insert(def.name.clone(), def)
    }

    /// Removes a definition.
    pub fn remove(&mut self, name: &str) -> Option<StreamDef> {
        self.defs.remove(name)
    }

    /// The definition called `name`.
    pub fn get(&self, name: &str) -> Option<&StreamDef> {
        self.defs.get(name)
    }

    /// Names of all definitions of `kind`, sorted.
    pub fn names(&self, kind: StreamKind) -> Vec<String> {
        self.defs.values().filter(|d| d.kind == kind).map(|d| d.name.clone()).collect()
    }
}
