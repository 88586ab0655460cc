//! The `file` source and sink.
//!
//! * Source ([`source::FileSource`], the default type of tables):
//!   `DATASOURCE` names a file (or a directory: every file in it, by name)
//!   under `path` (default: the node's data directory). Properties come
//!   from `etc/sources/file.yaml` sections and `EXTRA`: `fileType`
//!   `json` (an array of objects) | `lines` (JSON lines) | `csv`
//!   (`hasHeader`, `delimiter`, `columns`), `ignoreStartLines`,
//!   `ignoreEndLines`, `interval` (0: read once, then the input ends; else
//!   re-read every interval), `sendInterval` (pause between rows),
//!   `actionAfterRead` (0 keep, 1 delete, 2 move to `moveTo`).
//! * Sink ([`sink::FileSink`]): appends each message to `path` (templated,
//!   default `cache` under the data directory): `fileType` `lines` (one
//!   message per line, the default), `json` (the file is one JSON array of
//!   the messages, closed when the rule stops) or `csv` (format delimited,
//!   with a header line when `hasHeader`). Rolling is not implemented.
//!   With `qos: 2` (messages with ids) each checkpoint epoch's messages
//!   go to their own part `<path>.<epoch>`, renamed into place atomically
//!   ([`parts`]): a kill never leaves half an epoch visible, and a
//!   restored rule's re-sent epoch replaces its part.

mod parts;
pub(crate) mod sink;
pub(crate) mod source;

#[cfg(test)]
mod parts_tests;
#[cfg(test)]
mod tests;

use crate::props::invalid;
use crate::Result;

/// How a file's content is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    /// One JSON array of objects (sink: the messages as one array).
    Json,
    /// One JSON object (or message) per line.
    Lines,
    /// Delimited lines, optionally with a header.
    Csv,
}

impl FileType {
    pub(crate) fn parse(s: Option<&str>, default: FileType) -> Result<FileType> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(default),
            Some("json") => Ok(FileType::Json),
            Some("lines") => Ok(FileType::Lines),
            Some("csv") => Ok(FileType::Csv),
            Some(other) => Err(invalid("fileType", format!("unsupported file type {other:?}; use json, lines or csv"))),
        }
    }
}
