//! The user functions of a node, of every kind, persisted under one folder:
//!
//! ```text
//! <dir>/models/<name>.onnx      ONNX models, called as infer('<name>', ...)
//! <dir>/native/<name>.so        native model libraries
//! <dir>/native/<name>.json      their prefix and init configuration
//! <dir>/portables/<name>/       unpacked portable plugins
//! <dir>/services/<name>.json    model services
//! ```
//!
//! [`Extensions::registry`] gives the built-in catalogue plus every
//! extension's functions. A change that would register a function name
//! twice (or shadow a built-in) is undone and refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use weir_runtime::functions::Registry;

use crate::native::{NativeError, NativeLibrary};
#[cfg(feature = "onnx")]
use crate::onnx::{ModelDescription, OnnxError, OnnxModels};
use crate::portable::{PortableConfig, PortableError, PortablePlugins};
use crate::service::{ServiceDef, ServiceError, Services};

/// Why an extension could not be registered, used or removed.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// A portable plugin failed.
    #[error(transparent)]
    Portable(#[from] PortableError),
    /// A model service failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// An ONNX model failed to load.
    #[cfg(feature = "onnx")]
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// A native library failed to load.
    #[error(transparent)]
    Native(#[from] NativeError),
    /// No such model, library or service.
    #[error("{what} {name} is not found")]
    NotFound {
        /// `model`, `native library`, ...
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A name clashes with a built-in, another extension or an existing
    /// extension of the same name.
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

impl ExtensionError {
    /// Whether the error is "no such model, plugin or service".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ExtensionError::NotFound { .. }
                | ExtensionError::Portable(PortableError::NotFound(_))
                | ExtensionError::Service(ServiceError::NotFound(_))
        )
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExtensionError {
    let context = context.into();
    move |source| ExtensionError::Io { context, source }
}

/// How a native library is registered (`<dir>/native/<name>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeDef {
    /// Model name.
    pub name: String,
    /// Prefix of its SQL function names (may be empty).
    #[serde(default)]
    pub prefix: String,
    /// JSON handed to `weir_model_init`.
    #[serde(default = "empty_config")]
    pub config: String,
}

fn empty_config() -> String {
    "{}".into()
}

/// A loaded native library.
#[derive(Debug)]
struct Native {
    def: NativeDef,
    library: NativeLibrary,
}

/// Every extension of a node.
#[derive(Debug)]
pub struct Extensions {
    dir: PathBuf,
    #[cfg(feature = "onnx")]
    onnx: Arc<OnnxModels>,
    native: Mutex<BTreeMap<String, Native>>,
    /// Shared with the connectors environment ([`Extensions::connectors`]).
    portables: Arc<PortablePlugins>,
    services: Services,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Extensions {
    /// Opens the extensions stored under `dir` and starts them; one that
    /// fails to load is logged and skipped (the node still starts).
    ///
    /// # Errors
    /// The folder cannot be created, or the service client cannot start.
    pub fn open(dir: &Path, portable: PortableConfig) -> Result<Extensions, ExtensionError> {
        for sub in ["models", "native", "portables", "services"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(format!("creating {}", dir.join(sub).display())))?;
        }
        let ext = Extensions {
            dir: dir.to_path_buf(),
            #[cfg(feature = "onnx")]
            onnx: Arc::new(OnnxModels::new()),
            native: Mutex::new(BTreeMap::new()),
            portables: Arc::new(PortablePlugins::new(&dir.join("portables"), portable)),
            services: Services::new().map_err(io("starting the model service client"))?,
        };
        #[cfg(feature = "onnx")]
        for path in files_with(&dir.join("models"), "onnx") {
            let name = stem(&path);
            if let Err(e) = ext.onnx.register(&name, &path) {
                tracing::warn!(model = %name, error = %e, "stored ONNX model skipped");
            }
        }
        for def in read_json_dir::<NativeDef>(&dir.join("native")) {
            let name = def.name.clone();
            if let Err(e) = ext.load_native(def) {
                tracing::warn!(library = %name, error = %e, "stored native library skipped");
            }
        }
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
        match self.build() {
            Ok(r) => Arc::new(r),
            Err(e) => {
                // Changes are checked before they are kept, so this means
                // stored extensions clash: keep what registers.
                tracing::warn!(error = %e, "extension functions clash");
                Arc::new(self.build_lenient())
            }
        }
    }

    /// Every extension's functions over the built-ins; fails on the first
    /// name registered twice.
    fn build(&self) -> Result<Registry, ExtensionError> {
        self.build_with(true)
    }

    fn build_lenient(&self) -> Registry {
        self.build_with(false).unwrap_or_else(|_| Registry::builtins().clone())
    }

    fn build_with(&self, strict: bool) -> Result<Registry, ExtensionError> {
        let mut reg = Registry::builtins().clone();
        let clash = |reg: &Registry, name: &str, owner: &str| -> Result<(), ExtensionError> {
            match reg.get(name) {
                Some(_) if strict => {
                    Err(ExtensionError::Conflict(format!("function {name} of {owner} is already registered")))
                }
                _ => Ok(()),
            }
        };
        #[cfg(feature = "onnx")]
        {
            clash(&reg, crate::onnx::INFER, "the ONNX models")?;
            crate::onnx::register_functions(&mut reg, self.onnx.clone());
        }
        for n in lock(&self.native).values() {
            match n.library.register_functions(&mut reg, &n.def.prefix) {
                Ok(_) => {}
                Err(e) if strict => return Err(e.into()),
                Err(e) => tracing::warn!(library = %n.def.name, error = %e, "native functions skipped"),
            }
        }
        let mut extra = Registry::new();
        self.portables.register_functions(&mut extra);
        self.services.register_functions(&mut extra);
        for name in extra.names() {
            clash(&reg, name, "a plugin or service")?;
            if let Some(def) = extra.get(name) {
                reg.insert(def.as_ref().clone());
            }
        }
        Ok(reg)
    }

    /// Applies `change`; if the functions then clash, runs `undo` and
    /// returns the clash.
    fn checked<T>(
        &self,
        change: impl FnOnce() -> Result<T, ExtensionError>,
        undo: impl FnOnce(),
    ) -> Result<T, ExtensionError> {
        let out = change()?;
        if let Err(e) = self.build() {
            undo();
            return Err(e);
        }
        Ok(out)
    }

    // ---- ONNX models ------------------------------------------------------

    /// Registers the ONNX model in `file` (a path or `file://` URL) as
    /// `name`, keeping a copy under the extension folder.
    ///
    /// # Errors
    /// A model of that name exists, or the file is not a usable model.
    #[cfg(feature = "onnx")]
    pub fn register_model(&self, name: &str, file: &str) -> Result<ModelDescription, ExtensionError> {
        if self.onnx.get(name).is_some() {
            return Err(ExtensionError::Conflict(format!("model {name} already exists")));
        }
        let src = PathBuf::from(file.strip_prefix("file://").unwrap_or(file));
        // Loaded from the source first: a bad file never reaches the folder.
        let model = crate::onnx::OnnxModel::load(&src)?;
        let dst = self.dir.join("models").join(format!("{name}.onnx"));
        let tmp = dst.with_extension("tmp");
        std::fs::copy(&src, &tmp).map_err(io(format!("copying {}", src.display())))?;
        std::fs::rename(&tmp, &dst).map_err(io(format!("storing {}", dst.display())))?;
        drop(model);
        let model = self.onnx.register(name, &dst)?;
        Ok(model.describe())
    }

    /// The registered ONNX models.
    #[cfg(feature = "onnx")]
    pub fn models(&self) -> Vec<ModelDescription> {
        self.onnx.list()
    }

    /// Removes ONNX model `name`.
    ///
    /// # Errors
    /// No such model.
    #[cfg(feature = "onnx")]
    pub fn remove_model(&self, name: &str) -> Result<(), ExtensionError> {
        self.onnx.remove(name).ok_or_else(|| ExtensionError::NotFound { what: "model", name: name.to_string() })?;
        let _ = std::fs::remove_file(self.dir.join("models").join(format!("{name}.onnx")));
        Ok(())
    }

    // ---- native libraries -------------------------------------------------

    fn load_native(&self, def: NativeDef) -> Result<Vec<String>, ExtensionError> {
        let path = self.dir.join("native").join(format!("{}.so", def.name));
        let library = NativeLibrary::load(&path, &def.config)?;
        let names = library.sql_names(&def.prefix)?;
        let name = def.name.clone();
        self.checked(
            || {
                lock(&self.native).insert(name.clone(), Native { def, library });
                Ok(names)
            },
            || {
                lock(&self.native).remove(&name);
            },
        )
    }

    /// Loads the native library in `file` as `def.name`, keeping a copy
    /// under the extension folder; returns its SQL function names.
    ///
    /// # Errors
    /// A library of that name exists, the library is rejected (missing
    /// symbols, ABI version, init error) or its names are taken.
    pub fn register_native(&self, def: NativeDef, file: &str) -> Result<Vec<String>, ExtensionError> {
        if !crate::portable::valid_name(&def.name) {
            return Err(ExtensionError::Conflict(format!("invalid native library name {:?}", def.name)));
        }
        if lock(&self.native).contains_key(&def.name) {
            return Err(ExtensionError::Conflict(format!("native library {} already exists", def.name)));
        }
        let src = PathBuf::from(file.strip_prefix("file://").unwrap_or(file));
        // A fresh file name per install: the loader maps a path once per
        // process, so an update must not reuse the old file in place.
        let dst = self.dir.join("native").join(format!("{}.so", def.name));
        let tmp = dst.with_extension("tmp");
        std::fs::copy(&src, &tmp).map_err(io(format!("copying {}", src.display())))?;
        std::fs::rename(&tmp, &dst).map_err(io(format!("storing {}", dst.display())))?;
        let json =
            serde_json::to_vec_pretty(&def).map_err(|e| io("encoding the definition")(std::io::Error::other(e)))?;
        let name = def.name.clone();
        match self.load_native(def) {
            Ok(names) => {
                write_atomic(&self.dir.join("native").join(format!("{name}.json")), &json)?;
                Ok(names)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&dst);
                Err(e)
            }
        }
    }

    /// The native libraries: definition and SQL function names.
    pub fn natives(&self) -> Vec<(NativeDef, Vec<String>)> {
        lock(&self.native)
            .values()
            .map(|n| (n.def.clone(), n.library.sql_names(&n.def.prefix).unwrap_or_default()))
            .collect()
    }

    /// Unloads native library `name` (rules still running keep it loaded
    /// until they stop).
    ///
    /// # Errors
    /// No such library.
    pub fn remove_native(&self, name: &str) -> Result<(), ExtensionError> {
        lock(&self.native)
            .remove(name)
            .ok_or_else(|| ExtensionError::NotFound { what: "native library", name: name.to_string() })?;
        for ext in ["so", "json"] {
            let _ = std::fs::remove_file(self.dir.join("native").join(format!("{name}.{ext}")));
        }
        Ok(())
    }

    // ---- portable plugins -------------------------------------------------

    /// The portable plugins.
    pub fn portables(&self) -> &PortablePlugins {
        &self.portables
    }

    /// The connector types the extensions provide (the source and sink
    /// symbols of portable plugins, as installed at the time of each
    /// call): hand it to [`weir_connectors::Environment::set_extensions`].
    pub fn connectors(&self) -> Arc<dyn weir_connectors::ExtensionConnectors> {
        self.portables.clone()
    }

    /// Installs (or with `replace`, updates) a portable plugin (see
    /// [`PortablePlugins::install`]).
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
        self.checked(
            || Ok(self.portables.install(name, file, shell_paras, replace)?),
            || {
                let _ = self.portables.uninstall(name);
            },
        )
    }

    // ---- model services ---------------------------------------------------

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
        let previous = self.services.list().into_iter().find(|d| d.name == def.name);
        let name = def.name.clone();
        let json = serde_json::to_vec_pretty(&def).map_err(|e| io("encoding the service")(std::io::Error::other(e)))?;
        self.checked(
            || Ok(self.services.register(def)?),
            || {
                let _ = self.services.remove(&name);
                if let Some(p) = previous {
                    let _ = self.services.register(p);
                }
            },
        )?;
        write_atomic(&self.dir.join("services").join(format!("{name}.json")), &json)
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

/// The files of `dir` with extension `ext`, sorted.
fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

#[cfg(feature = "onnx")]
fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
}

/// The JSON files of a folder that decode as `T`; others are logged.
fn read_json_dir<T: serde::de::DeserializeOwned>(dir: &Path) -> Vec<T> {
    let mut out = Vec::new();
    for p in files_with(dir, "json") {
        match std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!(file = %p.display(), error = %e, "stored extension skipped"),
        }
    }
    out
}
