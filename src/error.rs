//! Errors of the node: what the REST API turns into eKuiper's
//! `{"error":<code>,"message":...}` bodies.

use std::fmt;

/// eKuiper's error codes (`pkg/errorx`).
pub(crate) mod code {
    /// Undefined (the default).
    pub(crate) const UNDEFINED: u32 = 1000;
    /// Not found: the only code answered with HTTP 404.
    pub(crate) const NOT_FOUND: u32 = 1002;
    /// I/O (persistence).
    pub(crate) const IO: u32 = 1003;
    /// SQL syntax.
    pub(crate) const PARSER: u32 = 2001;
    /// SQL planning.
    pub(crate) const PLAN: u32 = 2101;
    /// Running a rule.
    pub(crate) const EXECUTOR: u32 = 2201;
    /// Stream or table definition.
    pub(crate) const STREAM: u32 = 3000;
    /// Rule definition.
    pub(crate) const RULE: u32 = 4000;
}

/// What went wrong in a node operation.
#[derive(Debug)]
pub(crate) enum Error {
    /// No stream, table or rule of that name.
    NotFound {
        /// `stream`, `table` or `rule`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A stream, table or rule of that name exists already.
    AlreadyExists {
        /// `stream`, `table` or `rule`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A name that does not match `^[a-zA-Z0-9_\-]+$`.
    InvalidName {
        /// `stream`, `table` or `rule`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// SQL that does not parse or plan, or invalid rule options.
    Sql(weir_planner::Error),
    /// Rule JSON that is not a valid rule.
    InvalidRule {
        /// What is wrong, as eKuiper words it.
        message: String,
    },
    /// A request that does not fit the route (name mismatch, wrong statement).
    BadRequest {
        /// eKuiper error code.
        code: u32,
        /// What is wrong.
        message: String,
    },
    /// A stream or table used by rules cannot be dropped without `force`.
    Referenced {
        /// `stream` or `table`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A rule action whose sink cannot be built.
    Sink {
        /// Action index.
        index: usize,
        /// Sink type.
        kind: String,
        /// Why.
        source: weir_connectors::Error,
    },
    /// A rule that cannot start (source, graph).
    Start {
        /// Rule id.
        rule: String,
        /// Why.
        message: String,
    },
    /// The cluster refused or could not take a change (no leader, timeout,
    /// rejected command).
    Cluster(String),
    /// A model, plugin or service could not be registered or used.
    Extension(weir_plugins::ExtensionError),
    /// Reading or writing the data directory failed.
    Io {
        /// What was being done, with the path.
        context: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// eKuiper's error code for this error.
    pub(crate) fn code(&self) -> u32 {
        match self {
            Error::NotFound { .. } => code::NOT_FOUND,
            Error::AlreadyExists { what: "rule", .. } | Error::InvalidRule { .. } | Error::Sink { .. } => code::RULE,
            Error::AlreadyExists { .. } | Error::Referenced { .. } => code::STREAM,
            Error::InvalidName { .. } => code::UNDEFINED,
            Error::Sql(e) => match e {
                weir_planner::Error::Parse { .. } => code::PARSER,
                weir_planner::Error::Plan { .. } => code::PLAN,
                weir_planner::Error::Definition { .. } => code::STREAM,
                _ => code::RULE,
            },
            Error::BadRequest { code, .. } => *code,
            Error::Start { .. } => code::EXECUTOR,
            Error::Io { .. } => code::IO,
            Error::Cluster(_) => code::UNDEFINED,
            Error::Extension(e) if e.is_not_found() => code::NOT_FOUND,
            Error::Extension(_) => code::UNDEFINED,
        }
    }

    pub(crate) fn not_found(what: &'static str, name: &str) -> Error {
        Error::NotFound { what, name: name.to_string() }
    }

    pub(crate) fn invalid_rule(message: impl Into<String>) -> Error {
        Error::InvalidRule { message: message.into() }
    }

    pub(crate) fn bad_request(code: u32, message: impl Into<String>) -> Error {
        Error::BadRequest { code, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { what, name } => write!(f, "{what} {name} is not found"),
            Error::AlreadyExists { what, name } => write!(f, "{what} {name} already exists"),
            Error::InvalidName { what, name } => {
                write!(f, "invalid {what} name {name:?}: it must match ^[a-zA-Z0-9_\\-]+$")
            }
            Error::Sql(e) => write!(f, "{e}"),
            Error::InvalidRule { message } | Error::BadRequest { message, .. } => f.write_str(message),
            Error::Referenced { what, name } => write!(f, "{what} {name} has been referenced by other rules"),
            Error::Sink { index, kind, source } => write!(f, "action {index} ({kind}): {source}"),
            Error::Start { rule, message } => write!(f, "cannot start rule {rule}: {message}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Extension(e) => write!(f, "{e}"),
            Error::Cluster(m) => write!(f, "cluster: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<weir_plugins::ExtensionError> for Error {
    fn from(e: weir_plugins::ExtensionError) -> Error {
        Error::Extension(e)
    }
}

impl From<weir_planner::Error> for Error {
    fn from(e: weir_planner::Error) -> Error {
        Error::Sql(e)
    }
}

/// Result of node operations.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Whether `name` is a valid stream, table or rule id: `^[a-zA-Z0-9_\-]+$`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks `name` with [`valid_name`].
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName { what, name: name.to_string() })
    }
}
