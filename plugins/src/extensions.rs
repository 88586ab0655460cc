//! The user functions of a node, of every kind, persisted under one folder:
//!
//! ```text
//! <dir>/portables/<name>/   unpacked portable plugins (their own persistence)
//! <dir>/models/<name>.onnx  ONNX models
//! <dir>/native/<name>.so    native model libraries (+ <name>.json: init config)
//! <dir>/services/<name>.json model services
//! ```
//!
//! [`Extensions::registry`] gives the built-in catalogue plus every
//! registered function; the node plans rules against it and rebuilds it
//! after each change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_runtime::functions::Registry;

use crate::portable::{PortableConfig, PortablePlugins};
use crate::service::{ServiceDef, ServiceError, Services};

/// Why an extension could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// A portable plugin failed.
    #[error(transparent)]
    Portable(#[from] crate::portable::PortableError),
    /// A model service failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A name clashes with a built-in or another extension's function.
    #[error("{0}")]
    Conflict(String),
    /// Reading or writing the extension folder failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExtensionError {
    let context = context.into();
    move |source| ExtensionError::Io { context, source }
}

/// Every extension of a node.
#[derive(Debug)]
pub struct Extensions {
    dir: PathBuf,
    portables: PortablePlugins,
    services: Services,
}

impl Extensions {
    /// Opens the extensions stored under `dir` and starts them; one that
    /// fails to load is logged and skipped (the node still starts).
    ///
    /// # Errors
    /// The folder cannot be created, or the service runtime cannot start.
    pub fn open(dir: &Path, portable: PortableConfig) -> Result<Extensions, ExtensionError> {
        for sub in ["portables", "services"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(format!("creating {}", dir.join(sub).display())))?;
        }
        let ext = Extensions {
            dir: dir.to_path_buf(),
            portables: PortablePlugins::new(&dir.join("portables"), portable),
            services: Services::new().map_err(io("starting the model service client"))?,
        };
        ext.portables.load_all();
        for def in read_json_dir::<ServiceDef>(&dir.join("services")) {
            if let Err(e) = ext.services.register(def) {
                tracing::warn!(error = %e, "stored model service skipped");
            }
        }
        Ok(ext)
    }

    /// The built-in functions plus every extension's.
    pub fn registry(&self) -> Arc<Registry> {
        let mut reg = Registry::builtins().clone();
        self.portables.register_functions(&mut reg);
        self.services.register_functions(&mut reg);
        Arc::new(reg)
    }

    /// Fails when `names` clash with built-ins or with functions other
    /// extensions registered (those not in `replacing`).
    fn check_free(&self, names: &[String], replacing: &[String]) -> Result<(), ExtensionError> {
        let builtins = Registry::builtins();
        let current = self.registry();
        for n in names {
            if builtins.get(n).is_some() {
                return Err(ExtensionError::Conflict(format!("function {n} is a built-in function")));
            }
            if current.get(n).is_some() && !replacing.contains(n) {
                return Err(ExtensionError::Conflict(format!("function {n} is already registered")));
            }
        }
        Ok(())
    }

    /// The portable plugins.
    pub fn portables(&self) -> &PortablePlugins {
        &self.portables
    }

    /// Installs a portable plugin (see [`PortablePlugins::install`]).
    ///
    /// # Errors
    /// A bad package or a function name already taken.
    pub fn install_portable(
        &self,
        name: &str,
        file: &str,
        shell_paras: &[String],
        replace: bool,
    ) -> Result<(), ExtensionError> {
        let replacing = self.portables.get(name).map(|p| p.meta().functions.clone()).unwrap_or_default();
        self.portables.install(name, file, shell_paras, replace)?;
        let funcs = self.portables.get(name).map(|p| p.meta().functions.clone()).unwrap_or_default();
        if let Err(e) = self.check_free(&funcs, &replacing) {
            let _ = self.portables.uninstall(name);
            return Err(e);
        }
        Ok(())
    }

    /// The model services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Registers (or replaces) a model service and stores it.
    ///
    /// # Errors
    /// An invalid definition or a function name already taken.
    pub fn register_service(&self, def: ServiceDef) -> Result<(), ExtensionError> {
        def.validate()?;
        let replacing: Vec<String> = self
            .services
            .list()
            .into_iter()
            .filter(|d| d.name == def.name)
            .flat_map(|d| d.functions.into_iter().map(|f| f.name))
            .collect();
        let names: Vec<String> = def.functions.iter().map(|f| f.name.clone()).collect();
        self.check_free(&names, &replacing)?;
        let path = self.dir.join("services").join(format!("{}.json", def.name));
        let json = serde_json::to_vec_pretty(&def).map_err(|e| io("encoding the service")(std::io::Error::other(e)))?;
        write_atomic(&path, &json)?;
        self.services.register(def)?;
        Ok(())
    }

    /// Removes a model service.
    ///
    /// # Errors
    /// No such service.
    pub fn remove_service(&self, name: &str) -> Result<(), ExtensionError> {
        self.services.remove(name)?;
        let _ = std::fs::remove_file(self.dir.join("services").join(format!("{name}.json")));
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExtensionError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming {}", tmp.display())))
}

/// The JSON files of a folder that decode as `T`; others are logged.
fn read_json_dir<T: serde::de::DeserializeOwned>(dir: &Path) -> Vec<T> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        match std::fs::read(&p).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!(file = %p.display(), error = %e, "stored extension skipped"),
        }
    }
    out
}
