//! The common sink layer: eKuiper's sink properties applied to every
//! emission before a connector publishes it.
//!
//! A connector implements [`SinkConnector`] (publish one [`Outgoing`]
//! message) and is wrapped in a [`TransformSink`], which is the
//! [`weir_runtime::connector::Sink`] the rule sees. Per emission:
//!
//! 1. `omitIfEmpty`: an emission without rows (or, with `sendSingle`, an
//!    empty row) is dropped.
//! 2. `sendSingle`: false makes one message of the whole emission (a JSON
//!    array, `[{...}]` for a single event); true one message per row.
//! 3. `dataTemplate` renders the message data ([`template`]).
//! 4. `dataField` then `fields` / `excludeFields` pick from the data (the
//!    template output decoded as JSON when there was one).
//! 5. `format` encodes (`json`, `delimited` with `delimiter`/`hasHeader`,
//!    `binary`); a template's output without field selection is sent as-is.
//! 6. An emission with a deterministic id (`qos: 2`,
//!    [`weir_runtime::connector::Sink::emit_with_id`]) gives its messages
//!    the id (`<id>` for a whole emission, `<id>/<i>` for row `i` with
//!    `sendSingle`), in [`Outgoing::id`] and, with `idField`, as that
//!    field of each row before the steps above.
//! 7. The message goes into a queue of `bufferLength` messages drained by
//!    the connector. A full queue makes `emit` wait, which slows the rule
//!    down: nothing is dropped.
//!
//! Dynamic properties (MQTT `topic`, REST `url`...) are rendered by the
//! connector from [`Outgoing::source`] with [`template::Template`] or
//! [`render_topic`].

mod apply;
mod sink;
pub(crate) mod template;

#[cfg(test)]
mod tests;

pub(crate) use apply::{Outgoing, Transform};
pub(crate) use sink::{SinkConnector, TransformSink};
pub(crate) use template::go_sprint;
pub use template::{render_topic, Template, TemplateError};

use crate::format::Encoder;
use crate::props::{invalid, Props};
use crate::Result;

/// Default `bufferLength` (eKuiper's).
pub(crate) const DEFAULT_BUFFER_LENGTH: usize = 1024;

/// eKuiper's common sink properties, validated.
#[derive(Debug, Clone)]
pub(crate) struct SinkOptions {
    /// `sendSingle`.
    pub(crate) send_single: bool,
    /// `dataTemplate`, parsed.
    pub(crate) template: Option<Template>,
    /// `fields`.
    pub(crate) fields: Vec<String>,
    /// `excludeFields`.
    pub(crate) exclude_fields: Vec<String>,
    /// `dataField` (alias `tableDataField`).
    pub(crate) data_field: Option<String>,
    /// `omitIfEmpty`.
    pub(crate) omit_if_empty: bool,
    /// `format` with `delimiter` / `hasHeader`.
    pub(crate) encoder: Encoder,
    /// `bufferLength`: messages queued for the connector.
    pub(crate) buffer_length: usize,
    /// `idField`: with an exactly-once emission, the field that carries
    /// its id in each row (for consumers that cannot see MQTT v5 user
    /// properties).
    pub(crate) id_field: Option<String>,
}

impl SinkOptions {
    /// Reads the common properties; connector-specific ones are ignored.
    ///
    /// # Errors
    /// A property of the wrong type, a template that does not parse, both
    /// `fields` and `excludeFields`, an unsupported `format`.
    pub(crate) fn from_props(props: &Props) -> Result<SinkOptions> {
        let template = match props.str("dataTemplate")? {
            Some(t) if !t.is_empty() => Some(Template::parse(t).map_err(|e| invalid("dataTemplate", e.to_string()))?),
            _ => None,
        };
        let fields = props.str_list("fields")?.unwrap_or_default();
        let exclude_fields = props.str_list("excludeFields")?.unwrap_or_default();
        if !fields.is_empty() && !exclude_fields.is_empty() {
            return Err(invalid("fields", "fields and excludeFields cannot be set together".into()));
        }
        let data_field = match props.str("dataField")? {
            Some(f) if !f.is_empty() => Some(f.to_string()),
            _ => props.str("tableDataField")?.filter(|f| !f.is_empty()).map(str::to_string),
        };
        let format = props.str("format")?.unwrap_or("json");
        let encoder =
            Encoder::new(format, props.str("delimiter")?.unwrap_or(","), props.bool("hasHeader")?.unwrap_or(false))?;
        let buffer_length = match props.int("bufferLength")? {
            None => DEFAULT_BUFFER_LENGTH,
            Some(n) if n > 0 => n as usize,
            Some(n) => return Err(invalid("bufferLength", format!("must be positive, got {n}"))),
        };
        Ok(SinkOptions {
            send_single: props.bool("sendSingle")?.unwrap_or(false),
            template,
            fields,
            exclude_fields,
            data_field,
            omit_if_empty: props.bool("omitIfEmpty")?.unwrap_or(false),
            encoder,
            buffer_length,
            id_field: props.str("idField")?.filter(|f| !f.is_empty()).map(str::to_string),
        })
    }
}

/// Parses a dynamic property (topic, url, header value...) once.
///
/// # Errors
/// The template does not parse (named after `property`).
pub(crate) fn dynamic_prop(property: &str, text: &str) -> Result<Template> {
    Template::parse(text).map_err(|e| invalid(property, e.to_string()))
}
