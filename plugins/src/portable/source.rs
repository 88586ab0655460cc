//! A plugin source: a stream whose `TYPE` is a source symbol of a portable
//! plugin.
//!
//! When the rule runs, a reader thread listens on the instance's data
//! channel (PULL), asks the plugin to `start` the symbol (the SDK then
//! dials with PUSH) and reads `{"message": {...}, "meta": {...}}` per
//! event; `{"error": "..."}` (the SDK's `emit_error`) and malformed
//! messages are logged and skipped. If the plugin dies, the pipe closes
//! and the thread waits for the restarted plugin to dial again (its
//! supervisor sends `start` again). When the rule stops, `stop` is sent
//! and the channel removed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::Value;

use crate::portable::sp::{Listener, Pipe, Protocol};
use crate::portable::symbol::SymbolArg;
use crate::portable::{PortableError, PortablePlugin};

/// Messages handed to the rule in one `send` at most.
const MAX_BATCH: usize = 512;

/// Messages read ahead of the rule; past that the reader waits (and the
/// plugin's sends time out, as with eKuiper's buffer).
const BUFFER: usize = 1024;

/// How often the reader looks at the stop flag and for new pipes.
const POLL: Duration = Duration::from_millis(50);

/// A stream fed by a plugin's source symbol.
#[derive(Debug)]
pub(crate) struct PluginSource {
    plugin: Arc<PortablePlugin>,
    arg: SymbolArg,
    /// eKuiper's `useInt64ForWholeNumber`: whole numbers become integers.
    int_for_whole: bool,
}

impl PluginSource {
    /// A source of `plugin`'s symbol described by `arg`; nothing runs
    /// until the rule runs it.
    pub(crate) fn new(plugin: Arc<PortablePlugin>, arg: SymbolArg, int_for_whole: bool) -> PluginSource {
        PluginSource { plugin, arg, int_for_whole }
    }

    async fn pump(self, mut out: SourceSender) {
        let (tx, mut rx) = mpsc::channel::<Payload>(BUFFER);
        let (done_tx, done) = oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader { source: self, tx, stop: stop.clone() };
        let spawned =
            std::thread::Builder::new().name(format!("source-{}", reader.source.arg.symbol)).spawn(move || {
                reader.run();
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the plugin source thread");
            return;
        }
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => break },
                _ = out.stopped() => break,
            };
            let ts = out.now_ms();
            let mut batch = vec![Payload { ts, ..first }];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(Payload { ts, ..p }),
                    Err(_) => break,
                }
            }
            if !out.send(batch).await {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        drop(rx);
        // The reader sends `stop` and removes the channel before the rule
        // counts as stopped.
        let _ = done.await;
    }
}

impl Source for PluginSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}

/// The blocking side: channel I/O and control commands.
struct Reader {
    source: PluginSource,
    tx: mpsc::Sender<Payload>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn run(self) {
        let (plugin, arg) = (&self.source.plugin, &self.source.arg);
        let path = arg.data_path(&plugin.config().ipc_dir);
        let listener = match Listener::bind(&path, Protocol::Pull) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(symbol = %arg.symbol, path = %path.display(), error = %e, "plugin source cannot listen");
                return;
            }
        };
        // `start` waits for the SDK to dial, so it runs beside the reads.
        let starter = {
            let (plugin, arg) = (plugin.clone(), arg.clone());
            std::thread::spawn(move || plugin.start_symbol(&arg))
        };
        let mut starter = Some(starter);
        let mut pipe: Option<Pipe> = None;
        while !self.stop.load(Ordering::SeqCst) && !self.tx.is_closed() {
            if starter.as_ref().is_some_and(|s| s.is_finished()) {
                match starter.take().map(|s| s.join()) {
                    Some(Ok(Err(e @ PortableError::Refused { .. }))) => {
                        tracing::error!(symbol = %arg.symbol, error = %e, "plugin source not started");
                        return;
                    }
                    Some(Ok(Err(e))) => {
                        tracing::warn!(symbol = %arg.symbol, error = %e, "plugin source starts when the plugin is back")
                    }
                    _ => {}
                }
            }
            if let Some(p) = listener.newest(plugin.config().call_timeout) {
                pipe = Some(p);
            }
            let Some(p) = pipe.as_mut() else {
                std::thread::sleep(POLL);
                continue;
            };
            match p.recv(POLL) {
                Ok(Some(msg)) => {
                    if let Some(payload) = self.decode(&msg) {
                        if self.tx.blocking_send(payload).is_err() {
                            break;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!(symbol = %arg.symbol, error = %e, "plugin source disconnected; waiting for it");
                    pipe = None;
                }
            }
        }
        if let Some(s) = starter {
            let _ = s.join();
        }
        plugin.stop_symbol(arg);
    }

    /// A payload from one message, or `None` (logged) for an error
    /// message or a malformed one.
    fn decode(&self, msg: &[u8]) -> Option<Payload> {
        let symbol = &self.source.arg.symbol;
        let v: serde_json::Value = match serde_json::from_slice(msg) {
            Ok(v) => v,
            Err(e) => {
                let head = String::from_utf8_lossy(&msg[..msg.len().min(200)]).to_string();
                tracing::warn!(%symbol, error = %e, message = %head, "plugin source sent invalid JSON; skipped");
                return None;
            }
        };
        if let Some(err) = v.get("error") {
            tracing::warn!(%symbol, error = %err, "plugin source reported an error");
            return None;
        }
        let to_map =
            |v: Option<&serde_json::Value>| match v.map(|v| Value::from_json(v.clone(), self.source.int_for_whole)) {
                Some(Value::Map(m)) => Some(Arc::unwrap_or_clone(m)),
                _ => None,
            };
        let Some(data) = to_map(v.get("message")) else {
            tracing::warn!(%symbol, "plugin source message without a \"message\" object; skipped");
            return None;
        };
        Some(Payload { data: PayloadData::Object(data), ts: 0, meta: to_map(v.get("meta")) })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Read, Write};
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::portable::symbol::SymbolKind;
    use crate::portable::{PluginMeta, PortableConfig};

    /// A plugin whose process never starts (its interpreter is missing):
    /// instances register but nothing dials.
    pub(crate) fn dead_plugin(ipc_dir: &Path) -> Arc<PortablePlugin> {
        let meta = PluginMeta {
            version: String::new(),
            language: "python".into(),
            executable: "x.py".into(),
            sources: vec!["src".into()],
            sinks: vec!["snk".into()],
            functions: vec![],
        };
        let config = PortableConfig {
            python: "/nonexistent/python".into(),
            ipc_dir: ipc_dir.to_path_buf(),
            init_timeout: Duration::from_secs(1),
            call_timeout: Duration::from_millis(300),
        };
        let name = format!("dead{}", std::process::id());
        Arc::new(PortablePlugin::start(&name, ipc_dir, meta, config).unwrap())
    }

    fn dial(path: &Path) -> Pipe {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Pipe::dial(path, Protocol::Push, Duration::from_secs(1)) {
                Ok(p) => return p,
                Err(e) => assert!(Instant::now() < deadline, "cannot dial {}: {e}", path.display()),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn bad_messages_and_huge_frames_are_skipped_and_the_plugin_may_redial() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dead_plugin(dir.path());
        let arg = SymbolArg::new(SymbolKind::Source, "src", "r", "", serde_json::json!({}));
        let path = arg.data_path(dir.path());
        let (tx, mut rx) = mpsc::channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader { source: PluginSource::new(plugin, arg, true), tx, stop: stop.clone() };
        let thread = std::thread::spawn(move || reader.run());

        let mut push = dial(&path);
        for bad in [&b"not json"[..], br#"{"error":"boom"}"#, br#"{"message":5}"#] {
            push.send(&[bad]).unwrap();
        }
        push.send(&[br#"{"message":{"a":1},"meta":{"m":"x"}}"#]).unwrap();
        let p = rx.blocking_recv().unwrap();
        let PayloadData::Object(data) = p.data else { panic!("not an object") };
        assert_eq!(data.get("a"), Some(&Value::Int(1)));
        assert_eq!(p.meta.unwrap().get("m"), Some(&Value::str("x")));

        // A frame claiming a terabyte: the pipe is dropped, not allocated.
        let mut raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
        raw.write_all(&[0, b'S', b'P', 0, 0, 0x50, 0, 0]).unwrap();
        raw.write_all(&[1]).unwrap();
        raw.write_all(&(1u64 << 40).to_be_bytes()).unwrap();
        // The reader hangs up on it (after its SP header).
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut header = Vec::new();
        raw.read_to_end(&mut header).unwrap();
        assert_eq!(header.len(), 8);
        let mut push = dial(&path);
        push.send(&[br#"{"message":{"a":2}}"#]).unwrap();
        let p = rx.blocking_recv().unwrap();
        assert_eq!(p.data, PayloadData::Object([("a".to_string(), Value::Int(2))].into_iter().collect()));

        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();
        assert!(!path.exists(), "the channel is removed at stop");
    }
}
