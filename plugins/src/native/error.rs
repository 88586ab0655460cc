//! Why a native model library could not be loaded or registered.

use std::path::PathBuf;

/// A native model library was rejected. Every variant names the file (or
/// the model) so that the user knows which one to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// The file could not be found or read.
    #[error("cannot read native model library {}: {source}", path.display())]
    File {
        /// The library file, as given.
        path: PathBuf,
        /// The file system's error.
        source: std::io::Error,
    },
    /// The operating system could not load the file (missing, not a
    /// shared library, wrong architecture, unresolved dependency).
    #[error("cannot load native model library {}: {source}", path.display())]
    Open {
        /// The library file.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The library lacks entry points of `weir_model.h`.
    #[error(
        "{} is not a weir model library: missing symbol(s) {} (see plugins/include/weir_model.h)",
        path.display(),
        .symbols.join(", ")
    )]
    MissingSymbols {
        /// The library file.
        path: PathBuf,
        /// The required symbols it does not export.
        symbols: Vec<&'static str>,
    },
    /// The library was built against another version of `weir_model.h`.
    #[error(
        "{} was built for weir model ABI version {found}, this weir supports version {expected}: rebuild it with this weir's weir_model.h",
        path.display()
    )]
    AbiVersion {
        /// The library file.
        path: PathBuf,
        /// What `weir_model_abi_version()` returned.
        found: u32,
        /// `WEIR_MODEL_ABI_VERSION` of this weir.
        expected: u32,
    },
    /// The function table of `weir_model_functions` is invalid.
    #[error("{}: invalid function table: {problem}", path.display())]
    Descriptor {
        /// The library file.
        path: PathBuf,
        /// What is wrong with it.
        problem: DescriptorProblem,
    },
    /// The configuration given for the model is not valid JSON text.
    #[error("configuration of {} is not valid JSON: {message}", path.display())]
    Config {
        /// The library file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// `weir_model_init` returned an error code.
    #[error("{}: weir_model_init failed with code {code}: {message}", path.display())]
    Init {
        /// The library file.
        path: PathBuf,
        /// The nonzero code it returned.
        code: i32,
        /// The message it wrote (empty if none).
        message: String,
    },
    /// Registering would replace a function that already exists (a
    /// built-in or another model's).
    #[error("cannot register {function} from {}: a function of that name already exists", path.display())]
    FunctionExists {
        /// The library file.
        path: PathBuf,
        /// The SQL name already taken.
        function: String,
    },
    /// A function name prefix that would not give SQL identifiers.
    #[error("invalid function name prefix {prefix:?}: use letters, digits and _")]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
    },
}

/// What is wrong with a library's function table. Indexes count from 0, in
/// table order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorProblem {
    /// `weir_model_functions` returned NULL with a nonzero count.
    #[error("weir_model_functions returned NULL for {count} function(s)")]
    NullTable {
        /// The count it gave.
        count: usize,
    },
    /// More functions than `WEIR_MAX_FUNCTIONS`.
    #[error("{count} functions, at most {max} are allowed")]
    TooManyFunctions {
        /// The count it gave.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A function has a NULL name.
    #[error("function #{index} has no name")]
    NullName {
        /// Table index.
        index: usize,
    },
    /// A name (of a function or argument) is not an SQL identifier.
    #[error("function #{index}: {name:?} is not a valid name (letters, digits and _, not starting with a digit, at most {max} bytes)")]
    BadName {
        /// Table index of the function.
        index: usize,
        /// The name, as far as it could be read.
        name: String,
        /// Longest name allowed.
        max: usize,
    },
    /// Two functions have the same name, ignoring case.
    #[error("function {name} is declared twice (names are case-insensitive)")]
    DuplicateName {
        /// The lower-case name.
        name: String,
    },
    /// A function declares more arguments than `WEIR_MAX_ARGS`.
    #[error("function {function} declares {nargs} arguments, at most {max} are allowed")]
    TooManyArgs {
        /// The function.
        function: String,
        /// Its argument count.
        nargs: usize,
        /// The limit.
        max: usize,
    },
    /// `args` is NULL though `nargs` is not zero.
    #[error("function {function} declares {nargs} arguments but its args table is NULL")]
    NullArgs {
        /// The function.
        function: String,
        /// Its argument count.
        nargs: usize,
    },
    /// An argument has a type code `weir_model.h` does not define.
    #[error("argument {position} of {function} has unknown type code {code}")]
    UnknownArgType {
        /// The function.
        function: String,
        /// Position, from 1.
        position: usize,
        /// The code.
        code: u32,
    },
    /// An array argument's fixed length exceeds `WEIR_MAX_ARRAY_LEN`.
    #[error("argument {position} of {function} has length {len}, at most {max} is allowed")]
    ArgTooLong {
        /// The function.
        function: String,
        /// Position, from 1.
        position: usize,
        /// The declared length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The result has a type code `weir_model.h` does not define.
    #[error("function {function} has unknown result type code {code}")]
    UnknownResultType {
        /// The function.
        function: String,
        /// The code.
        code: u32,
    },
    /// An array result without a usable maximum length.
    #[error("function {function} returns an array of at most {len} values: it must be 1..={max}")]
    BadResultLen {
        /// The function.
        function: String,
        /// The declared `ret_len`.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// Flag bits this weir does not know.
    #[error("function {function} has unknown flags {flags:#x}")]
    UnknownFlags {
        /// The function.
        function: String,
        /// The unknown bits.
        flags: u32,
    },
    /// The `call` entry point is NULL.
    #[error("function {function} has no call entry point (NULL)")]
    NullCall {
        /// The function.
        function: String,
    },
}

/// Result of loading or registering native models.
pub type Result<T> = std::result::Result<T, NativeError>;
