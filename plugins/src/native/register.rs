//! A library's functions as SQL functions in the function registry.

use std::sync::Arc;

use weir_runtime::functions::{BatchFn, Registry, ValidateFn};

use super::convert::validate_hints;
use super::error::{NativeError, Result};
use super::library::NativeLibrary;

impl NativeLibrary {
    /// The SQL names [`NativeLibrary::register_functions`] gives the
    /// library's functions: `prefix` (lower-cased) followed by each name.
    ///
    /// # Errors
    /// [`NativeError::InvalidPrefix`] if `prefix` holds anything but ASCII
    /// letters, digits and `_`.
    pub fn sql_names(&self, prefix: &str) -> Result<Vec<String>> {
        if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(NativeError::InvalidPrefix { prefix: prefix.to_string() });
        }
        let prefix = prefix.to_ascii_lowercase();
        Ok(self.functions().iter().map(|f| format!("{prefix}{}", f.name)).collect())
    }

    /// Adds every function of the library to `reg` as a scalar SQL function
    /// named `prefix` + its name (see [`NativeLibrary::sql_names`]), and
    /// returns the names.
    ///
    /// Each function takes exactly its declared arguments, which the
    /// planner checks, together with literal argument types, when a rule
    /// is created. In a projection the rows of a batch are passed to the
    /// library together. The registered functions keep the library loaded
    /// until they are removed and no rule uses them any more.
    ///
    /// # Errors
    /// An invalid prefix, or [`NativeError::FunctionExists`] if a name is
    /// already registered (built-ins are never replaced). Nothing is
    /// registered then.
    pub fn register_functions(&self, reg: &mut Registry, prefix: &str) -> Result<Vec<String>> {
        let names = self.sql_names(prefix)?;
        if let Some(taken) = names.iter().find(|n| reg.get(n).is_some()) {
            return Err(NativeError::FunctionExists { path: self.path().to_path_buf(), function: taken.clone() });
        }
        for (idx, name) in names.iter().enumerate() {
            let nargs = self.spec(idx).args.len();
            let lib = self.clone();
            let batch: BatchFn = Arc::new(move |_cx, rows| lib.call_rows(idx, rows));
            let lib = self.clone();
            let validate: ValidateFn = Arc::new(move |hints| validate_hints(lib.spec(idx), hints));
            reg.batch_scalar(name, nargs, Some(nargs), batch, Some(validate));
        }
        Ok(names)
    }

    /// Removes the functions [`NativeLibrary::register_functions`] added
    /// with the same `prefix`; returns how many were registered.
    ///
    /// # Errors
    /// An invalid prefix.
    pub fn unregister_functions(&self, reg: &mut Registry, prefix: &str) -> Result<usize> {
        Ok(self.sql_names(prefix)?.iter().filter(|n| reg.remove(n)).count())
    }
}
