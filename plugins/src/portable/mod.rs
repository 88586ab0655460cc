//! eKuiper portable plugins: Python programs written with the PyPI
//! `ekuiper` SDK, run as child processes and spoken to over NNG IPC
//! sockets (EKUIPER_COMPAT.md §9). A plugin written for eKuiper runs
//! unchanged: weir implements the SP wire protocol itself ([`sp`]) and
//! eKuiper's inverted REQ/REP control and function channels ([`channel`]).
//!
//! [`PortablePlugins`] installs packages into `<dir>/<name>/`, starts each
//! plugin's process under a supervisor ([`PortablePlugin`]), registers
//! the plugin's functions as SQL functions and, as the connectors crate's
//! [`weir_connectors::ExtensionConnectors`], makes its source and sink
//! symbols stream `TYPE`s and rule actions ([`connectors`]).

mod channel;
mod connectors;
mod package;
mod plugin;
mod sink;
mod source;
mod sp;
mod symbol;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use weir_runtime::functions::Registry;

pub use package::{valid_name, PluginMeta};
pub use plugin::{PluginState, PluginStatus, PortablePlugin};

/// Why a portable plugin could not be installed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortableError {
    /// The package is malformed.
    #[error("portable plugin {name}: {message}")]
    Package {
        /// Plugin name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The process could not be started or handshaked.
    #[error("portable plugin {name}: {message}")]
    Process {
        /// Plugin name.
        name: String,
        /// What failed.
        message: String,
    },
    /// A channel failed.
    #[error("{name} channel: {message}")]
    Channel {
        /// Channel name.
        name: String,
        /// What failed.
        message: String,
    },
    /// The plugin refused to start a source or sink (its `configure` or
    /// `open` failed, or it has no such symbol).
    #[error("plugin symbol {symbol} refused to start: {message}")]
    Refused {
        /// The symbol.
        symbol: String,
        /// The plugin's answer.
        message: String,
    },
    /// No such plugin.
    #[error("portable plugin {0} is not found")]
    NotFound(String),
    /// A plugin of that name, or a function of that name, exists.
    #[error("{0}")]
    Conflict(String),
}

/// How plugins are run (eKuiper's `portable.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortableConfig {
    /// The Python interpreter (`portable.pythonBin`).
    pub python: PathBuf,
    /// Where the IPC sockets live; the SDKs dial `/tmp/...`.
    pub ipc_dir: PathBuf,
    /// Handshake deadline at start (`portable.initTimeout`).
    pub init_timeout: Duration,
    /// Deadline of one call (`portable.sendTimeout`).
    pub call_timeout: Duration,
}

impl Default for PortableConfig {
    fn default() -> PortableConfig {
        PortableConfig {
            python: PathBuf::from(std::env::var_os("WEIR_PYTHON").unwrap_or_else(|| "python3".into())),
            ipc_dir: PathBuf::from("/tmp"),
            init_timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// The portable plugins of a node.
#[derive(Debug)]
pub struct PortablePlugins {
    dir: PathBuf,
    config: PortableConfig,
    plugins: Mutex<BTreeMap<String, Arc<PortablePlugin>>>,
}

impl PortablePlugins {
    /// Plugins installed under `dir` (e.g. `<data>/plugins/portables`).
    pub fn new(dir: &Path, config: PortableConfig) -> PortablePlugins {
        PortablePlugins { dir: dir.to_path_buf(), config, plugins: Mutex::new(BTreeMap::new()) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<PortablePlugin>>> {
        self.plugins.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts every plugin installed under the folder (node boot). A
    /// plugin that fails is logged and skipped.
    pub fn load_all(&self) -> Vec<PortableError> {
        let mut errors = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return errors };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !entry.path().is_dir() || !valid_name(&name) {
                continue;
            }
            match PluginMeta::read(&entry.path(), &name).and_then(|meta| self.run(&name, meta)) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "portable plugin not loaded");
                    errors.push(e);
                }
            }
        }
        errors
    }

    fn run(&self, name: &str, meta: PluginMeta) -> Result<(), PortableError> {
        let p = PortablePlugin::start(name, &self.dir.join(name), meta, self.config.clone())?;
        self.map().insert(name.to_string(), Arc::new(p));
        Ok(())
    }

    /// Installs (or, with `replace`, updates) plugin `name` from `file` (a
    /// zip or folder, `file://` or a path) and starts it.
    ///
    /// # Errors
    /// A bad name or package, an existing plugin without `replace`, a
    /// function name another plugin already registers.
    pub fn install(&self, name: &str, file: &str, shell_paras: &[String], replace: bool) -> Result<(), PortableError> {
        if !valid_name(name) {
            return Err(PortableError::Package {
                name: name.to_string(),
                message: "a plugin name has letters, digits and _ only".into(),
            });
        }
        if !replace && self.map().contains_key(name) {
            return Err(PortableError::Conflict(format!("portable plugin {name} already exists")));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| PortableError::Package {
            name: name.to_string(),
            message: format!("cannot create {}: {e}", self.dir.display()),
        })?;
        // Stop the old process first: it holds the channel sockets.
        if let Some(old) = self.map().remove(name) {
            old.stop();
        }
        let meta = package::unpack(name, file, &self.dir.join(name), shell_paras)?;
        for f in &meta.functions {
            if let Some((other, _)) = self.map().iter().find(|(_, p)| p.meta().functions.contains(f)) {
                return Err(PortableError::Conflict(format!("function {f} is already registered by plugin {other}")));
            }
        }
        for (what, mine, theirs) in [
            ("source", &meta.sources, (|m: &PluginMeta| m.sources.clone()) as fn(&PluginMeta) -> Vec<String>),
            ("sink", &meta.sinks, |m: &PluginMeta| m.sinks.clone()),
        ] {
            for s in mine {
                let taken = |p: &Arc<PortablePlugin>| theirs(p.meta()).iter().any(|t| t.eq_ignore_ascii_case(s));
                if let Some((other, _)) = self.map().iter().find(|(_, p)| taken(p)) {
                    return Err(PortableError::Conflict(format!("{what} {s} is already provided by plugin {other}")));
                }
            }
        }
        self.run(name, meta)
    }

    /// Stops plugin `name` and deletes its folder.
    ///
    /// # Errors
    /// No such plugin.
    pub fn uninstall(&self, name: &str) -> Result<(), PortableError> {
        let p = self.map().remove(name).ok_or_else(|| PortableError::NotFound(name.to_string()))?;
        p.stop();
        let _ = std::fs::remove_dir_all(self.dir.join(name));
        Ok(())
    }

    /// A plugin by name.
    pub fn get(&self, name: &str) -> Option<Arc<PortablePlugin>> {
        self.map().get(name).cloned()
    }

    /// Installed plugin names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// Registers every plugin function in `reg` (variadic; the plugin
    /// checks its arguments).
    pub fn register_functions(&self, reg: &mut Registry) {
        for plugin in self.map().values() {
            for f in &plugin.meta().functions {
                let p = plugin.clone();
                let sym = f.clone();
                reg.scalar(f, 0, None, move |cx, args| p.call(&sym, cx, args));
            }
        }
    }
}
