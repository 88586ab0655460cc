//! A portable plugin package: `<name>.json` describing the plugin, the
//! executable, optional `sources/*.yaml` and `install.sh`, in a zip file or
//! a folder (eKuiper's layout). Installing unpacks it into
//! `<plugins dir>/portables/<name>/`, which is also how it persists.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::portable::PortableError;

/// `<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginMeta {
    /// Plugin version.
    #[serde(default)]
    pub version: String,
    /// `python` (weir runs Python plugins; eKuiper's Go portables are
    /// refused with a clear error).
    pub language: String,
    /// The program, relative to the plugin folder.
    pub executable: String,
    /// Source symbols.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Sink symbols.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Function symbols, as SQL calls them.
    #[serde(default)]
    pub functions: Vec<String>,
}

impl PluginMeta {
    /// Reads and checks `<dir>/<name>.json`.
    ///
    /// # Errors
    /// A missing or malformed file, an unsupported language, a missing
    /// executable or no symbols.
    pub fn read(dir: &Path, name: &str) -> Result<PluginMeta, PortableError> {
        let path = dir.join(format!("{name}.json"));
        let bad = |m: String| PortableError::Package { name: name.to_string(), message: m };
        let text = fs::read_to_string(&path).map_err(|e| bad(format!("cannot read {name}.json: {e}")))?;
        let meta: PluginMeta = serde_json::from_str(&text).map_err(|e| bad(format!("invalid {name}.json: {e}")))?;
        if meta.language != "python" {
            return Err(bad(format!(
                "language {:?} is not supported (weir runs python portable plugins)",
                meta.language
            )));
        }
        if meta.executable.is_empty() || !dir.join(&meta.executable).is_file() {
            return Err(bad(format!("executable {:?} is missing from the package", meta.executable)));
        }
        if meta.sources.is_empty() && meta.sinks.is_empty() && meta.functions.is_empty() {
            return Err(bad("the plugin declares no sources, sinks or functions".into()));
        }
        for sym in meta.sources.iter().chain(&meta.sinks).chain(&meta.functions) {
            if !valid_name(sym) {
                return Err(bad(format!("invalid symbol name {sym:?}")));
            }
        }
        Ok(meta)
    }
}

/// Plugin and symbol names become file names and SQL names: letters,
/// digits and `_` only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Where a package comes from: `file:///x.zip`, a path to a zip, or a path
/// to a folder.
fn local_path(file: &str) -> PathBuf {
    PathBuf::from(file.strip_prefix("file://").unwrap_or(file))
}

/// Unpacks (or copies) the package `file` into `target`, replacing what
/// was there, and checks it. Runs `install.sh` with `shell_paras` when the
/// package has one.
///
/// # Errors
/// Unreadable or malformed packages, entries escaping the folder, a failing
/// `install.sh`.
pub(crate) fn unpack(
    name: &str,
    file: &str,
    target: &Path,
    shell_paras: &[String],
) -> Result<PluginMeta, PortableError> {
    let bad = |m: String| PortableError::Package { name: name.to_string(), message: m };
    if file.starts_with("http://") || file.starts_with("https://") {
        return Err(bad("download by URL is not supported; give a file:// path".into()));
    }
    let src = local_path(file);
    let staging = target.with_extension("installing");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| bad(format!("cannot create {}: {e}", staging.display())))?;
    let result = if src.is_dir() {
        copy_dir(&src, &staging)
    } else {
        fs::File::open(&src)
            .map_err(|e| format!("cannot open {}: {e}", src.display()))
            .and_then(|f| extract_zip(f, &staging))
    };
    if let Err(m) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(bad(m));
    }
    let meta = match PluginMeta::read(&staging, name) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if staging.join("install.sh").is_file() {
        if let Err(m) = run_install(&staging, shell_paras) {
            let _ = fs::remove_dir_all(&staging);
            return Err(bad(m));
        }
    }
    let _ = fs::remove_dir_all(target);
    fs::rename(&staging, target).map_err(|e| bad(format!("cannot move the package into place: {e}")))?;
    Ok(meta)
}

fn copy_dir(src: &Path, dst: &Path) -> Result<(), String> {
    for entry in fs::read_dir(src).map_err(|e| format!("cannot read {}: {e}", src.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let to = dst.join(entry.file_name());
        let ty = entry.file_type().map_err(|e| e.to_string())?;
        if ty.is_dir() {
            fs::create_dir_all(&to).map_err(|e| e.to_string())?;
            copy_dir(&entry.path(), &to)?;
        } else if ty.is_file() {
            fs::copy(entry.path(), &to).map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Largest unpacked package accepted (zip bombs).
const MAX_UNPACKED: u64 = 512 << 20;

fn extract_zip(file: fs::File, dst: &Path) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a zip file: {e}"))?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("corrupt zip: {e}"))?;
        let rel =
            entry.enclosed_name().ok_or_else(|| format!("zip entry {:?} escapes the plugin folder", entry.name()))?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!("zip entry {:?} escapes the plugin folder", entry.name()));
        }
        let out = dst.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut bytes = Vec::new();
        (&mut entry).take(MAX_UNPACKED - total + 1).read_to_end(&mut bytes).map_err(|e| format!("corrupt zip: {e}"))?;
        total += bytes.len() as u64;
        if total > MAX_UNPACKED {
            return Err(format!("the package unpacks to more than {} MiB", MAX_UNPACKED >> 20));
        }
        fs::write(&out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

/// eKuiper runs `install.sh` with the install request's `shellParas`.
fn run_install(dir: &Path, shell_paras: &[String]) -> Result<(), String> {
    let mut child = Command::new("/bin/sh")
        .arg("install.sh")
        .args(shell_paras)
        .current_dir(dir)
        .spawn()
        .map_err(|e| format!("cannot run install.sh: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("install.sh failed: {status}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                return Err("install.sh did not finish within 10 minutes".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("install.sh: {e}")),
        }
    }
}
