//! The registry of loaded models, shared by the `infer` function and the
//! REST/CLI front door.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use super::describe::ModelDescription;
use super::error::{OnnxError, Result};
use super::model::OnnxModel;

/// Longest accepted model name.
const MAX_NAME: usize = 128;

/// Registered models by name; thread-safe, shared as `Arc<OnnxModels>`.
///
/// Registering loads and plans the model before taking the lock, so
/// lookups by running rules never wait for a load. Replacing a model
/// under the same name affects the next batch; batches in flight finish
/// with the model they started with. Persisting the registrations is the
/// caller's job.
#[derive(Debug, Default)]
pub struct OnnxModels {
    models: RwLock<HashMap<String, Arc<OnnxModel>>>,
}

impl OnnxModels {
    /// An empty registry.
    pub fn new() -> OnnxModels {
        OnnxModels::default()
    }

    /// Loads the model at `path` (see [`OnnxModel::load`]) and registers it
    /// as `name`, replacing any model of that name. Returns the model.
    ///
    /// Names are 1 to 128 ASCII letters, digits, `_`, `-` or `.`, so that
    /// they fit in a URL path and a SQL string literal unescaped.
    ///
    /// # Errors
    /// [`OnnxError::InvalidName`], or why the model cannot be loaded; the
    /// registry is then unchanged.
    pub fn register(&self, name: &str, path: impl AsRef<Path>) -> Result<Arc<OnnxModel>> {
        check_name(name)?;
        let model = OnnxModel::load(path)?;
        self.insert(name, model)
    }

    /// Registers an already loaded model as `name`, replacing any model of
    /// that name. Returns the shared model.
    ///
    /// # Errors
    /// [`OnnxError::InvalidName`]; the registry is then unchanged.
    pub fn insert(&self, name: &str, model: OnnxModel) -> Result<Arc<OnnxModel>> {
        check_name(name)?;
        let model = Arc::new(model.with_name(name));
        self.write().insert(name.to_string(), model.clone());
        Ok(model)
    }

    /// Unregisters `name`; returns the model if it was registered. Rules
    /// calling it fail their next rows with "model X is not registered".
    pub fn remove(&self, name: &str) -> Option<Arc<OnnxModel>> {
        self.write().remove(name)
    }

    /// The model registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<OnnxModel>> {
        self.read().get(name).cloned()
    }

    /// The model registered as `name`.
    ///
    /// # Errors
    /// [`OnnxError::NotRegistered`].
    pub fn try_get(&self, name: &str) -> Result<Arc<OnnxModel>> {
        self.get(name).ok_or_else(|| OnnxError::NotRegistered { name: name.to_string() })
    }

    /// Descriptions of all registered models, sorted by name.
    pub fn list(&self) -> Vec<ModelDescription> {
        let mut v: Vec<ModelDescription> = self.read().values().map(|m| m.describe()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of registered models.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no model is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // The map is consistent after any panic (each operation is a single
    // insert, remove or read), so a poisoned lock is safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<OnnxModel>>> {
        self.models.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<OnnxModel>>> {
        self.models.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME {
        "it is longer than 128 characters"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        "use only ASCII letters, digits, '_', '-' and '.'"
    } else {
        return Ok(());
    };
    Err(OnnxError::InvalidName { name: name.to_string(), reason })
}
