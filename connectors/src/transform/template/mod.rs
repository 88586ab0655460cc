//! The Go `text/template` subset eKuiper users write in `dataTemplate` and
//! dynamic properties (`topic`, `url`, `headers`...).
//!
//! ```text
//! {"device":"{{.id}}","avg":{{printf "%.2f" .t}}}
//! {{range .}}{{if gt .t 30.0}}{{.id}};{{end}}{{end}}
//! {{json .}}   {{index . 0 "a"}}   {{len .}}   {{base64 .payload}}
//! ```
//!
//! Data is a [`Value`]: a row map, or the array of rows of an emission.
//! Printing follows Go's `%v` (`25` for an integral float, `1e+06`,
//! `map[a:1]`, `<no value>` for a missing key). Parsing happens once, when
//! the rule is created, so syntax errors and unknown functions are reported
//! to the user then.

mod exec;
mod funcs;
mod parse;
mod printf;

#[cfg(test)]
mod tests;

use weir_runtime::Value;

pub(crate) use exec::go_sprint;

/// A template that failed to parse or execute.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Syntax error or unknown function, found when parsing.
    #[error("template: {line}: {message}")]
    Parse {
        /// 1-based line of the action.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A failure while executing against data (bad index, field of a
    /// non-map...).
    #[error("template execution: {0}")]
    Exec(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<parse::Node>,
    /// Source text without actions: rendering returns it unchanged.
    constant: Option<String>,
}

impl Template {
    /// Parses `src`.
    ///
    /// # Errors
    /// [`TemplateError::Parse`] naming the line: unbalanced `{{end}}`, an
    /// unterminated action or string, an unknown function.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let nodes = parse::parse(src, &funcs::exists)?;
        let constant = match nodes.as_slice() {
            [] => Some(String::new()),
            [parse::Node::Text(t)] => Some(t.clone()),
            _ => None,
        };
        Ok(Template { nodes, constant })
    }

    /// Whether the template has no actions (renders to the same text for
    /// every input).
    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }

    /// Renders the template with `data` as `.`.
    ///
    /// # Errors
    /// [`TemplateError::Exec`]: an index out of range, a field of a
    /// non-map, a failing function.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        if let Some(c) = &self.constant {
            return Ok(c.clone());
        }
        let mut state = exec::State::new(data);
        state.walk(data, &self.nodes)?;
        Ok(state.out)
    }
}

/// Renders a dynamic property such as an MQTT topic or a REST url against
/// the data of one message (a row map with `sendSingle`, else the array of
/// rows). Parses on every call: connectors that render per message should
/// parse once with [`Template::parse`] instead.
///
/// # Errors
/// The template does not parse or fails on `data`.
pub fn render_topic(template: &str, data: &Value) -> Result<String, TemplateError> {
    if !template.contains("{{") {
        return Ok(template.to_string());
    }
    Template::parse(template)?.render(data)
}
