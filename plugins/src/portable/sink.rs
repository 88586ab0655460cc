//! A plugin sink: a rule action `{"<symbol>": {props}}` whose kind is a
//! sink symbol of a portable plugin.
//!
//! On the first message a worker thread listens on the instance's ack
//! channel (the SDK dials it while starting, with or without
//! `requireAck`), asks the plugin to `start` the symbol (the SDK then
//! listens on the data channel) and dials the data channel (PUSH). Each
//! message is the encoded payload of the common sink layer; with
//! `requireAck: true` the worker waits for `{}` or `{"error": "..."}` on
//! the ack channel, up to the plugin call timeout. A failed send, a
//! missing or negative ack is the message's error, which the rule counts;
//! the next message dials again, so a restarted plugin is picked up. When
//! the rule stops, `stop` is sent.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use weir_connectors::PayloadSink;
use weir_runtime::connector::{BoxFuture, SinkError};

use crate::portable::sp::{Listener, Pipe, Protocol};
use crate::portable::symbol::SymbolArg;
use crate::portable::PortablePlugin;

/// How often an idle worker looks for a (re)dialed ack pipe.
const POLL: Duration = Duration::from_millis(50);

/// What the sink asks its worker.
enum Request {
    Publish(Vec<u8>, oneshot::Sender<Result<(), SinkError>>),
    Close(oneshot::Sender<()>),
}

/// The sink of a plugin's sink symbol.
#[derive(Debug)]
pub(crate) struct PluginSink {
    plugin: Arc<PortablePlugin>,
    arg: SymbolArg,
    require_ack: bool,
    /// The worker, once the first message came; dropping it stops the
    /// instance.
    worker: Option<std_mpsc::Sender<Request>>,
}

impl PluginSink {
    /// A sink of `plugin`'s symbol described by `arg`; nothing runs until
    /// the first message.
    pub(crate) fn new(plugin: Arc<PortablePlugin>, arg: SymbolArg, require_ack: bool) -> PluginSink {
        PluginSink { plugin, arg, require_ack, worker: None }
    }

    fn worker(&mut self) -> Result<&std_mpsc::Sender<Request>, SinkError> {
        if self.worker.is_none() {
            let (tx, rx) = std_mpsc::channel();
            let worker = Worker {
                plugin: self.plugin.clone(),
                arg: self.arg.clone(),
                require_ack: self.require_ack,
                data: None,
                ack: None,
                failed: None,
            };
            std::thread::Builder::new()
                .name(format!("sink-{}", self.arg.symbol))
                .spawn(move || worker.run(rx))
                .map_err(|e| SinkError(format!("plugin sink {}: cannot start its thread: {e}", self.arg.symbol)))?;
            self.worker = Some(tx);
        }
        self.worker.as_ref().ok_or_else(|| SinkError("plugin sink is closed".into()))
    }
}

impl PayloadSink for PluginSink {
    fn publish<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let symbol = self.arg.symbol.clone();
            let gone = || SinkError(format!("plugin sink {symbol}: its worker is gone"));
            self.worker()?.send(Request::Publish(payload.to_vec(), reply)).map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(worker) = self.worker.take() {
                let (reply, done) = oneshot::channel();
                if worker.send(Request::Close(reply)).is_ok() {
                    let _ = done.await;
                }
            }
        })
    }
}

/// The blocking side: channel I/O and control commands.
struct Worker {
    plugin: Arc<PortablePlugin>,
    arg: SymbolArg,
    require_ack: bool,
    data: Option<Pipe>,
    ack: Option<Pipe>,
    /// Why every message fails (the plugin refused the instance).
    failed: Option<String>,
}

impl Worker {
    fn run(mut self, requests: std_mpsc::Receiver<Request>) {
        let path = self.arg.ack_path(&self.plugin.config().ipc_dir);
        let ack = match Listener::bind(&path, Protocol::Pull) {
            Ok(l) => Some(l),
            Err(e) => {
                self.failed = Some(format!("cannot listen on {}: {e}", path.display()));
                None
            }
        };
        if let Some(ack) = &ack {
            self.start(ack);
        }
        loop {
            match requests.recv_timeout(POLL) {
                Ok(Request::Publish(bytes, reply)) => {
                    let _ = reply.send(self.publish(ack.as_ref(), &bytes));
                }
                Ok(Request::Close(reply)) => {
                    self.stop();
                    let _ = reply.send(());
                    return;
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => self.adopt_ack(ack.as_ref()),
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.stop();
    }

    /// Sends `start`, accepting the ack pipe the SDK dials meanwhile.
    fn start(&mut self, ack: &Listener) {
        let starter = {
            let (plugin, arg) = (self.plugin.clone(), self.arg.clone());
            std::thread::spawn(move || plugin.start_symbol(&arg))
        };
        while !starter.is_finished() {
            self.adopt_ack(Some(ack));
            std::thread::sleep(Duration::from_millis(10));
        }
        self.adopt_ack(Some(ack));
        match starter.join() {
            Ok(Ok(())) => {}
            Ok(Err(e @ crate::portable::PortableError::Refused { .. })) => self.failed = Some(e.to_string()),
            Ok(Err(e)) => {
                tracing::warn!(symbol = %self.arg.symbol, error = %e, "plugin sink starts when the plugin is back")
            }
            Err(_) => self.failed = Some("the start thread panicked".into()),
        }
    }

    fn stop(&mut self) {
        self.data = None;
        self.ack = None;
        self.plugin.stop_symbol(&self.arg);
    }

    /// Switches to an ack pipe dialed since (a restarted plugin).
    fn adopt_ack(&mut self, ack: Option<&Listener>) {
        if let Some(p) = ack.and_then(|l| l.newest(self.plugin.config().call_timeout)) {
            self.ack = Some(p);
        }
    }

    fn publish(&mut self, ack: Option<&Listener>, bytes: &[u8]) -> Result<(), SinkError> {
        let symbol = self.arg.symbol.clone();
        let err = |m: String| SinkError(format!("plugin sink {symbol}: {m}"));
        if let Some(f) = &self.failed {
            return Err(err(f.clone()));
        }
        let timeout = self.plugin.config().call_timeout;
        self.adopt_ack(ack);
        if let Some(a) = self.ack.as_mut() {
            // Acks that came after their message timed out are stale.
            while let Ok(Some(_)) = a.recv(Duration::ZERO) {}
        }
        // A pipe of a plugin that died since fails at once; the message was
        // not delivered, so it goes once more over a fresh pipe (to the
        // restarted plugin, if it is back).
        let path = self.arg.data_path(&self.plugin.config().ipc_dir);
        let mut fresh = false;
        loop {
            let pipe = match self.data.as_mut() {
                Some(p) => p,
                None => {
                    fresh = true;
                    let p =
                        Pipe::dial(&path, Protocol::Push, timeout).map_err(|e| err(format!("not connected: {e}")))?;
                    self.data.insert(p)
                }
            };
            match pipe.send(&[bytes]) {
                Ok(()) => break,
                Err(e) => {
                    self.data = None;
                    if fresh {
                        return Err(err(format!("send failed: {e}")));
                    }
                }
            }
        }
        if !self.require_ack {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.adopt_ack(ack);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(err(format!("no acknowledgement within {} ms", timeout.as_millis())));
            }
            let Some(a) = self.ack.as_mut() else {
                std::thread::sleep(left.min(Duration::from_millis(10)));
                continue;
            };
            match a.recv(left.min(POLL)) {
                Ok(Some(m)) => return decode_ack(&m).map_err(err),
                Ok(None) => {}
                Err(e) => {
                    self.ack = None;
                    return Err(err(format!("ack channel lost: {e}")));
                }
            }
        }
    }
}

/// `{}` is success, `{"error": "..."}` the plugin's failure.
fn decode_ack(msg: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<serde_json::Value>(msg) {
        Ok(serde_json::Value::Object(o)) => match o.get("error") {
            None | Some(serde_json::Value::Null) => Ok(()),
            Some(serde_json::Value::String(s)) => Err(s.clone()),
            Some(other) => Err(other.to_string()),
        },
        _ => Err(format!("invalid acknowledgement {:?}", String::from_utf8_lossy(&msg[..msg.len().min(200)]))),
    }
}

#[cfg(test)]
mod tests {
    use super::decode_ack;

    #[test]
    fn acks_decode() {
        assert_eq!(decode_ack(b"{}"), Ok(()));
        assert_eq!(decode_ack(br#"{"error":"disk full"}"#), Err("disk full".into()));
        assert!(decode_ack(b"nope").unwrap_err().contains("invalid acknowledgement"));
    }
}

#[cfg(test)]
mod worker_tests {
    use super::*;
    use crate::portable::source::tests::dead_plugin;
    use crate::portable::symbol::SymbolKind;

    #[test]
    fn acks_errors_and_missing_peers_are_per_message_errors() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dead_plugin(dir.path());
        let arg = SymbolArg::new(SymbolKind::Sink, "snk", "r", "", serde_json::json!({}));
        let (data_path, ack_path) = (arg.data_path(dir.path()), arg.ack_path(dir.path()));
        let mut w = Worker { plugin, arg, require_ack: true, data: None, ack: None, failed: None };
        let ack = Listener::bind(&ack_path, Protocol::Pull).unwrap();

        // Nobody listens: an error at once, no hang.
        let started = Instant::now();
        let e = w.publish(Some(&ack), b"[1]").unwrap_err();
        assert!(e.0.contains("not connected"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));

        // A fake plugin: reads each message, answers with the next ack.
        let plugin_side = Listener::bind(&data_path, Protocol::Pull).unwrap();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let fake = std::thread::spawn(move || {
            // Accepting from here on: the worker's dial is answered at once
            // even on a loaded machine. The ack pipe's handshake completes
            // when the worker waits for its first ack.
            ready.send(()).unwrap();
            let mut data = plugin_side.accept(Duration::from_secs(5)).unwrap();
            let mut acks = Pipe::dial(&ack_path, Protocol::Push, Duration::from_secs(5)).unwrap();
            let mut got = Vec::new();
            for answer in [Some(&b"{}"[..]), Some(br#"{"error":"disk full"}"#), None, Some(b"garbage")] {
                let msg = loop {
                    if let Some(m) = data.recv(Duration::from_secs(5)).unwrap() {
                        break m;
                    }
                };
                got.push(msg);
                if let Some(a) = answer {
                    acks.send(&[a]).unwrap();
                }
            }
            got
        });
        is_ready.recv().unwrap();
        assert_eq!(w.publish(Some(&ack), b"[1]"), Ok(()));
        let e = w.publish(Some(&ack), b"[2]").unwrap_err();
        assert!(e.0.ends_with("disk full"), "{e}");
        let e = w.publish(Some(&ack), b"[3]").unwrap_err();
        assert!(e.0.contains("no acknowledgement within 300 ms"), "{e}");
        let e = w.publish(Some(&ack), b"[4]").unwrap_err();
        assert!(e.0.contains("invalid acknowledgement"), "{e}");
        assert_eq!(fake.join().unwrap(), vec![b"[1]".to_vec(), b"[2]".to_vec(), b"[3]".to_vec(), b"[4]".to_vec()]);
    }
}
