//! One running portable plugin: its Python process, kept alive by a
//! supervisor thread, its control channel and one channel per function.
//!
//! Start-up follows eKuiper: listen on the control channel, start
//! `python -u <exe> '{...}'` in the plugin folder, wait for its handshake,
//! then `start` each function symbol, whose runtime dials its own channel,
//! and each source and sink instance of a running rule
//! ([`PortablePlugin::start_symbol`]). If the process exits, or a call times out (a hung plugin), the
//! supervisor kills what is left and starts it again with backoff; calls
//! meanwhile fail fast with the reason, which the rule counts as an
//! exception and shows in its status.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use weir_runtime::functions::{FuncContext, FuncError, FuncResult};
use weir_runtime::value::Value;

use crate::portable::channel::ReplyChannel;
use crate::portable::package::PluginMeta;
use crate::portable::symbol::SymbolArg;
use crate::portable::{PortableConfig, PortableError};

/// Where a plugin is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    /// The process is being started.
    Starting,
    /// Handshake done, functions started.
    Running,
    /// The process died or hung; it is being restarted.
    Restarting(String),
    /// Stopped on request (uninstall, shutdown).
    Stopped,
}

/// What `GET /plugins/portables/{name}/status` shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginStatus {
    /// `running`, `starting`, `restarting` or `stopped`.
    pub status: String,
    /// The last error, empty if none.
    #[serde(rename = "errMsg")]
    pub err_msg: String,
    /// Process id, 0 when not running.
    pub pid: u32,
    /// How many times the process was restarted.
    pub restarts: u32,
}

#[derive(Debug)]
struct Shared {
    name: String,
    dir: PathBuf,
    meta: PluginMeta,
    config: PortableConfig,
    state: Mutex<(PluginState, u32, u32, String)>,
    control: Mutex<ReplyChannel>,
    functions: HashMap<String, Mutex<ReplyChannel>>,
    /// Source and sink instances of running rules, by key: started again
    /// after a restart. Changed only while `control` is locked, so that a
    /// restart and a new instance never both start it.
    symbols: Mutex<BTreeMap<String, SymbolArg>>,
    /// Set by a timed-out call: the supervisor kills the process.
    hung: AtomicBool,
    stop: AtomicBool,
}

/// A running portable plugin. Dropping it stops the process.
#[derive(Debug)]
pub struct PortablePlugin {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PortablePlugin {
    /// Binds the plugin's channels and starts its supervisor, which starts
    /// the process. Returns at once; [`PortablePlugin::wait_running`] waits
    /// for the handshake.
    ///
    /// # Errors
    /// A channel cannot be bound (another process holds the socket path).
    pub fn start(
        name: &str,
        dir: &Path,
        meta: PluginMeta,
        config: PortableConfig,
    ) -> Result<PortablePlugin, PortableError> {
        let control =
            ReplyChannel::bind(&config.ipc_dir.join(format!("plugin_{name}.ipc")), &format!("plugin {name}"))?;
        let mut functions = HashMap::new();
        for f in &meta.functions {
            let ch = ReplyChannel::bind(&config.ipc_dir.join(format!("func_{f}.ipc")), &format!("function {f}"))?;
            functions.insert(f.clone(), Mutex::new(ch));
        }
        let shared = Arc::new(Shared {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            meta,
            config,
            state: Mutex::new((PluginState::Starting, 0, 0, String::new())),
            control: Mutex::new(control),
            functions,
            symbols: Mutex::new(BTreeMap::new()),
            hung: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .spawn(move || supervise(&s))
            .map_err(|e| PortableError::Process { name: name.to_string(), message: e.to_string() })?;
        Ok(PortablePlugin { shared, supervisor: Mutex::new(Some(supervisor)) })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The plugin's metadata.
    pub fn meta(&self) -> &PluginMeta {
        &self.shared.meta
    }

    /// The plugin's folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// How the plugin is run (channel folder, timeouts).
    pub(crate) fn config(&self) -> &PortableConfig {
        &self.shared.config
    }

    /// Registers a source or sink instance and sends its `start` command
    /// if the plugin runs; otherwise, and after every restart, the
    /// supervisor sends it once the plugin is up. The caller must already
    /// listen on the instance's channels (the SDK dials them before it
    /// answers) and accept on another thread while this waits.
    ///
    /// # Errors
    /// [`PortableError::Refused`]: the plugin answered with an error (the
    /// instance is forgotten); [`PortableError::Channel`]: no answer (the
    /// plugin is restarted and the instance started again then).
    pub(crate) fn start_symbol(&self, arg: &SymbolArg) -> Result<(), PortableError> {
        let sh = &self.shared;
        let mut control = lock(&sh.control);
        lock(&sh.symbols).insert(arg.key.clone(), arg.clone());
        if lock(&sh.state).0 != PluginState::Running {
            return Ok(());
        }
        match control.call(arg.command("start").as_bytes(), sh.config.call_timeout) {
            Ok(answer) if answer == b"ok" => Ok(()),
            Ok(answer) => {
                lock(&sh.symbols).remove(&arg.key);
                Err(PortableError::Refused {
                    symbol: arg.symbol.clone(),
                    message: String::from_utf8_lossy(&answer).trim_end().to_string(),
                })
            }
            Err(e) => {
                set_state(sh, PluginState::Restarting(e.to_string()), None, Some(e.to_string()));
                sh.hung.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Forgets an instance and sends its `stop` command if the plugin
    /// runs (failures are logged: the instance is gone either way).
    pub(crate) fn stop_symbol(&self, arg: &SymbolArg) {
        let sh = &self.shared;
        let mut control = lock(&sh.control);
        if lock(&sh.symbols).remove(&arg.key).is_none() || lock(&sh.state).0 != PluginState::Running {
            return;
        }
        match control.call(arg.command("stop").as_bytes(), sh.config.call_timeout) {
            Ok(answer) if answer == b"ok" => {}
            Ok(answer) => {
                tracing::warn!(plugin = %sh.name, symbol = %arg.symbol, answer = %String::from_utf8_lossy(&answer), "stop refused")
            }
            Err(e) => tracing::warn!(plugin = %sh.name, symbol = %arg.symbol, error = %e, "stop failed"),
        }
    }

    /// The current status.
    pub fn status(&self) -> PluginStatus {
        let st = lock(&self.shared.state);
        let (status, err) = match &st.0 {
            PluginState::Starting => ("starting", st.3.clone()),
            PluginState::Running => ("running", String::new()),
            PluginState::Restarting(e) => ("restarting", e.clone()),
            PluginState::Stopped => ("stopped", st.3.clone()),
        };
        PluginStatus { status: status.to_string(), err_msg: err, pid: st.1, restarts: st.2 }
    }

    /// Waits until the plugin runs, up to `timeout`.
    ///
    /// # Errors
    /// It did not start in time; the error carries the last failure.
    pub fn wait_running(&self, timeout: Duration) -> Result<(), PortableError> {
        let deadline = Instant::now() + timeout;
        loop {
            if lock(&self.shared.state).0 == PluginState::Running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let s = self.status();
                return Err(PortableError::Process {
                    name: self.shared.name.clone(),
                    message: format!("not running after {} ms ({}: {})", timeout.as_millis(), s.status, s.err_msg),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Calls function `symbol` with `args` (eKuiper's `Exec`).
    ///
    /// # Errors
    /// The plugin is not running, the call timed out (the plugin is then
    /// restarted), or the function reported an error.
    pub fn call(&self, symbol: &str, cx: &FuncContext<'_>, args: &[Value]) -> FuncResult {
        let sh = &self.shared;
        let Some(channel) = sh.functions.get(symbol) else {
            return Err(FuncError::new(format!("function {symbol} is not in plugin {}", sh.name)));
        };
        {
            let st = lock(&sh.state);
            let why = match &st.0 {
                PluginState::Running => None,
                PluginState::Restarting(e) => Some(format!("restarting after: {e}")),
                PluginState::Starting => Some("starting".to_string()),
                PluginState::Stopped => Some("stopped".to_string()),
            };
            if let Some(why) = why {
                return Err(FuncError::new(format!("portable plugin {} is not running ({why})", sh.name)));
            }
        }
        let fctx = json!({"ruleId": cx.rule_id, "opId": "op", "instanceId": 0, "funcId": 0}).to_string();
        let mut arg: Vec<serde_json::Value> = args.iter().map(Value::to_serde_json).collect();
        arg.push(serde_json::Value::String(fctx));
        let cmd = json!({"func": "Exec", "arg": arg}).to_string();
        let answer = lock(channel).call(cmd.as_bytes(), sh.config.call_timeout);
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                // No answer: the plugin is dead or hung; restart it, and
                // fail calls fast until it is back.
                set_state(sh, PluginState::Restarting(e.to_string()), None, Some(e.to_string()));
                sh.hung.store(true, Ordering::SeqCst);
                return Err(FuncError::new(format!("portable plugin {}: {e}", sh.name)));
            }
        };
        decode_reply(symbol, &answer)
    }
}

/// `{"state": true, "result": v}` or `{"state": false, "result": "error"}`.
fn decode_reply(symbol: &str, answer: &[u8]) -> FuncResult {
    #[derive(serde::Deserialize)]
    struct Reply {
        state: bool,
        #[serde(default)]
        result: serde_json::Value,
    }
    let r: Reply = serde_json::from_slice(answer).map_err(|e| {
        FuncError::new(format!(
            "function {symbol} sent an invalid reply ({e}): {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        ))
    })?;
    if r.state {
        // Go decodes JSON numbers as float64; so does eKuiper's side.
        Ok(Value::from_json(r.result, false))
    } else {
        let msg = match r.result {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        Err(FuncError::new(format!("function {symbol} failed: {}", msg.trim_end())))
    }
}

impl PortablePlugin {
    /// Stops the process for good (uninstall, shutdown); later calls fail.
    /// Rules may still hold the plugin's functions, so this does not wait
    /// for the last reference to go.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = lock(&self.supervisor).take() {
            let _ = h.join();
        }
    }
}

impl Drop for PortablePlugin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_state(sh: &Shared, state: PluginState, pid: Option<u32>, err: Option<String>) {
    let mut st = lock(&sh.state);
    st.0 = state;
    if let Some(p) = pid {
        st.1 = p;
    }
    if let Some(e) = err {
        st.3 = e;
    }
}

/// Keeps the process running until stopped.
fn supervise(sh: &Shared) {
    let mut backoff = Duration::from_millis(200);
    while !sh.stop.load(Ordering::SeqCst) {
        let mut child = match launch(sh) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(plugin = %sh.name, error = %e, "portable plugin failed to start");
                set_state(sh, PluginState::Restarting(e.to_string()), Some(0), Some(e.to_string()));
                sleep_unless_stopped(sh, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let started = Instant::now();
        let reason = watch(sh, &mut child);
        let _ = child.kill();
        let _ = child.wait();
        lock(&sh.control).reset();
        for ch in sh.functions.values() {
            lock(ch).reset();
        }
        if sh.stop.load(Ordering::SeqCst) {
            break;
        }
        tracing::warn!(plugin = %sh.name, reason = %reason, "portable plugin stopped; restarting");
        {
            let mut st = lock(&sh.state);
            st.0 = PluginState::Restarting(reason.clone());
            st.1 = 0;
            st.2 += 1;
            st.3 = reason;
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        sleep_unless_stopped(sh, backoff);
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    set_state(sh, PluginState::Stopped, Some(0), None);
}

fn sleep_unless_stopped(sh: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !sh.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the process and brings its symbols up.
fn launch(sh: &Shared) -> Result<Child, PortableError> {
    let perr = |m: String| PortableError::Process { name: sh.name.clone(), message: m };
    set_state(sh, PluginState::Starting, Some(0), None);
    sh.hung.store(false, Ordering::SeqCst);
    let mut child = Command::new(&sh.config.python)
        .arg("-u")
        .arg(&sh.meta.executable)
        .arg(json!({"sendTimeout": sh.config.call_timeout.as_millis() as u64}).to_string())
        .current_dir(&sh.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| perr(format!("cannot run {}: {e}", sh.config.python.display())))?;
    let pid = child.id();
    forward_output(&sh.name, child.stdout.take());
    forward_output(&sh.name, child.stderr.take());
    if let Err(e) = bring_up(sh, &mut child) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    tracing::info!(plugin = %sh.name, pid, "portable plugin running");
    Ok(child)
}

/// Handshake on the control channel, then `start` each function, then
/// each registered source and sink instance; the plugin is `Running` from
/// then on.
fn bring_up(sh: &Shared, child: &mut Child) -> Result<(), PortableError> {
    let perr = |m: String| PortableError::Process { name: sh.name.clone(), message: m };
    let mut control = lock(&sh.control);
    control.reset();
    let deadline = Instant::now() + sh.config.init_timeout;
    // Poll the handshake so that a process dying at start is seen at once.
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(perr(format!("the process exited during start-up: {status}")));
        }
        match control.wait_connected(Duration::from_millis(200)) {
            Ok(()) => break,
            Err(e) if Instant::now() >= deadline => return Err(perr(format!("no handshake: {e}"))),
            Err(_) => {}
        }
    }
    for f in &sh.meta.functions {
        let arg = json!({
            "symbolName": f,
            "meta": {"ruleId": "$$portable", "opId": f, "instanceId": 0},
            "pluginType": "func",
        })
        .to_string();
        let cmd = json!({"cmd": "start", "arg": arg}).to_string();
        // The SDK dials the function channel before it answers `start`, so
        // the channel is accepted while the answer is awaited.
        let (answer, connected) = std::thread::scope(|scope| {
            let channel = &sh.functions[f];
            let accept = scope.spawn(|| lock(channel).wait_connected(sh.config.init_timeout));
            let answer = control.call(cmd.as_bytes(), sh.config.call_timeout);
            (answer, accept.join())
        });
        let answer = answer?;
        if answer != b"ok" {
            return Err(perr(format!("starting function {f}: {}", String::from_utf8_lossy(&answer).trim_end())));
        }
        connected.map_err(|_| perr(format!("function {f}: the channel thread panicked")))??;
    }
    let instances: Vec<SymbolArg> = lock(&sh.symbols).values().cloned().collect();
    for arg in instances {
        // The instance's own thread accepts the channels the SDK dials.
        let answer = control.call(arg.command("start").as_bytes(), sh.config.call_timeout)?;
        if answer != b"ok" {
            lock(&sh.symbols).remove(&arg.key);
            let answer = String::from_utf8_lossy(&answer);
            tracing::warn!(plugin = %sh.name, symbol = %arg.symbol, %answer, "instance not restarted");
        }
    }
    // Still under the control lock: an instance registered from now on is
    // started by its caller.
    set_state(sh, PluginState::Running, Some(child.id()), Some(String::new()));
    Ok(())
}

/// Waits until the process exits, hangs or is stopped; returns why.
fn watch(sh: &Shared, child: &mut Child) -> String {
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return "stopped".into();
        }
        if sh.hung.swap(false, Ordering::SeqCst) {
            return "a call got no answer in time; the plugin was killed".into();
        }
        match child.try_wait() {
            Ok(Some(status)) => return format!("the plugin process exited: {status}"),
            Ok(None) => {}
            Err(e) => return format!("cannot watch the plugin process: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the plugin's output lines into weir's log.
fn forward_output(name: &str, stream: Option<impl std::io::Read + Send + 'static>) {
    let Some(stream) = stream else { return };
    let name = name.to_string();
    let _ = std::thread::Builder::new().name(format!("plugin-{name}-log")).spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => tracing::info!(plugin = %name, "{l}"),
                Err(_) => break,
            }
        }
    });
}
