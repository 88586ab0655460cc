//! Connector errors.

/// What went wrong building or running a connector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connector of that type.
    #[error("unknown {what} type {kind}")]
    UnknownType {
        /// The type asked for.
        kind: String,
        /// `source` or `sink`.
        what: &'static str,
    },
    /// A property is missing or has the wrong type or value.
    #[error("invalid property {property}: {message}")]
    Property {
        /// Property name as spelled in eKuiper.
        property: String,
        /// What is wrong.
        message: String,
    },
    /// A sharded rule reads a source that cannot split its input.
    #[error("{0}")]
    NotShardable(String),
    /// An I/O failure (file, network).
    #[error("{0}")]
    Io(String),
}

/// Result of connector operations.
pub type Result<T> = std::result::Result<T, Error>;
