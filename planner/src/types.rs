//! Field types of stream and table schemas.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a declared field (`BIGINT`, `ARRAY(STRING)`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    /// `BIGINT`
    Bigint,
    /// `FLOAT`
    Float,
    /// `STRING`
    String,
    /// `DATETIME`
    Datetime,
    /// `BOOLEAN`
    Boolean,
    /// `BYTEA`
    Bytea,
    /// `ARRAY(t)`
    Array(Box<DataType>),
    /// `STRUCT(f t, ...)`
    Struct(Vec<FieldDef>),
}

/// A declared field of a stream, table or struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Field name as declared.
    pub name: String,
    /// Field type.
    pub data_type: DataType,
    /// `DEFAULT` literal text, applied under strict validation.
    pub default: Option<String>,
}

impl DataType {
    /// eKuiper's lower-case name (`bigint`, `array`, `struct`).
    pub fn name(&self) -> &'static str {
        match self {
            DataType::Bigint => "bigint",
            DataType::Float => "float",
            DataType::String => "string",
            DataType::Datetime => "datetime",
            DataType::Boolean => "boolean",
            DataType::Bytea => "bytea",
            DataType::Array(_) => "array",
            DataType::Struct(_) => "struct",
        }
    }

    /// eKuiper's `FieldType` JSON in `GET /streams/{n}`: a plain string for
    /// scalars, `{"Type":"array","ElementType":...}` or
    /// `{"Type":"struct","Fields":[...]}` otherwise.
    pub fn to_ekuiper_json(&self) -> serde_json::Value {
        match self {
            DataType::Array(t) => serde_json::json!({"Type": "array", "ElementType": t.to_ekuiper_json()}),
            DataType::Struct(fields) => serde_json::json!({
                "Type": "struct",
                "Fields": fields.iter().map(FieldDef::to_ekuiper_json).collect::<Vec<_>>(),
            }),
            t => serde_json::Value::String(t.name().to_string()),
        }
    }
}

impl FieldDef {
    /// eKuiper's JSON for one field.
    pub fn to_ekuiper_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("FieldType".into(), self.data_type.to_ekuiper_json());
        m.insert("Name".into(), self.name.clone().into());
        if let Some(d) = &self.default {
            m.insert("DefaultClause".into(), d.clone().into());
        }
        serde_json::Value::Object(m)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Array(t) => write!(f, "array({t})"),
            DataType::Struct(fields) => {
                write!(f, "struct(")?;
                for (i, fd) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{} {}", fd.name, fd.data_type)?;
                }
                write!(f, ")")
            }
            t => f.write_str(t.name()),
        }
    }
}
