//! Planner errors: every one names where in the statement it happened.

use std::fmt;

/// A position in the SQL text, 1-based like editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What went wrong while parsing or planning a statement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not valid eKuiper SQL.
    #[error("parse error at {pos}: {message}")]
    Parse {
        /// Where.
        pos: Pos,
        /// What.
        message: String,
    },
    /// The statement parses but cannot be planned (unknown stream or field,
    /// misuse of a window or aggregate, wrong argument count, ...).
    #[error("plan error at {pos}: {message}")]
    Plan {
        /// Where.
        pos: Pos,
        /// What.
        message: String,
    },
    /// A stream or table definition is invalid.
    #[error("invalid definition of {name}: {message}")]
    Definition {
        /// The stream or table.
        name: String,
        /// What.
        message: String,
    },
    /// A rule option is invalid.
    #[error("invalid rule option {option}: {message}")]
    Option {
        /// The option, as spelled in rule JSON.
        option: String,
        /// What.
        message: String,
    },
}

impl Error {
    pub(crate) fn parse(pos: Pos, message: impl Into<String>) -> Error {
        Error::Parse { pos, message: message.into() }
    }

    pub(crate) fn plan(pos: Pos, message: impl Into<String>) -> Error {
        Error::Plan { pos, message: message.into() }
    }
}

/// Result of planner operations.
pub type Result<T> = std::result::Result<T, Error>;
