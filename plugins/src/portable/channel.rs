//! eKuiper's "inverted" REQ/REP channel: the plugin is the REQ side and
//! dials; weir is the REP side and listens. The plugin first sends
//! `handshake`; weir's command travels as the *reply* to the plugin's
//! newest request, and the plugin's answer arrives as its *next request*.
//! While idle the plugin re-sends `handshake` every few seconds, which
//! moves the request id weir must reply to.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::portable::sp::{Listener, Pipe, Protocol};
use crate::portable::PortableError;

/// The REP end of a control or function channel.
#[derive(Debug)]
pub(crate) struct ReplyChannel {
    name: String,
    listener: Listener,
    pipe: Option<Pipe>,
    /// Id of the plugin's newest request: the next command answers it.
    pending: Option<[u8; 4]>,
}

/// Splits a REQ message into its request id and body.
fn split_request(msg: &[u8]) -> Option<([u8; 4], &[u8])> {
    let id: [u8; 4] = msg.get(..4)?.try_into().ok()?;
    (id[0] & 0x80 != 0).then_some((id, &msg[4..]))
}

impl ReplyChannel {
    /// Listens on `path`; `name` is used in errors.
    pub(crate) fn bind(path: &Path, name: &str) -> Result<ReplyChannel, PortableError> {
        let listener = Listener::bind(path, Protocol::Rep).map_err(|e| PortableError::Channel {
            name: name.to_string(),
            message: format!("listen {}: {e}", path.display()),
        })?;
        Ok(ReplyChannel { name: name.to_string(), listener, pipe: None, pending: None })
    }

    fn err(&self, message: impl Into<String>) -> PortableError {
        PortableError::Channel { name: self.name.clone(), message: message.into() }
    }

    /// Forgets the current peer (its process is gone).
    pub(crate) fn reset(&mut self) {
        self.pipe = None;
        self.pending = None;
    }

    /// Waits up to `timeout` for the plugin to dial and say `handshake`.
    pub(crate) fn wait_connected(&mut self, timeout: Duration) -> Result<(), PortableError> {
        let deadline = Instant::now() + timeout;
        self.adopt_newest();
        if self.pipe.is_none() {
            self.pipe = self.listener.accept(timeout);
        }
        if self.pipe.is_none() {
            return Err(self.err(format!("the plugin did not connect within {} ms", timeout.as_millis())));
        }
        self.await_request(deadline)
    }

    /// Switches to a pipe dialed since the last call (a restarted plugin).
    fn adopt_newest(&mut self) {
        if let Some(p) = self.listener.newest(Duration::from_secs(1)) {
            self.pipe = Some(p);
            self.pending = None;
        }
    }

    /// Makes sure a request is pending, reading the newest one queued.
    fn await_request(&mut self, deadline: Instant) -> Result<(), PortableError> {
        let Some(pipe) = self.pipe.as_mut() else { return Err(self.err("the plugin is not connected")) };
        // Drain what is queued: only the newest request can be answered.
        loop {
            let wait = if self.pending.is_some() {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match pipe.recv(wait) {
                Ok(Some(msg)) => {
                    if let Some((id, _)) = split_request(&msg) {
                        self.pending = Some(id);
                    }
                }
                Ok(None) if self.pending.is_some() => return Ok(()),
                Ok(None) => return Err(self.err("timed out waiting for the plugin")),
                Err(e) => {
                    self.reset();
                    return Err(self.err(format!("pipe lost: {e}")));
                }
            }
        }
    }

    /// Sends `command` and returns the plugin's answer, within `timeout`.
    ///
    /// # Errors
    /// No plugin connected, a lost pipe, or no answer in time.
    pub(crate) fn call(&mut self, command: &[u8], timeout: Duration) -> Result<Vec<u8>, PortableError> {
        let deadline = Instant::now() + timeout;
        self.adopt_newest();
        self.await_request(deadline)?;
        let mut id = self.pending.take().ok_or_else(|| self.err("no pending request"))?;
        let Some(pipe) = self.pipe.as_mut() else { return Err(self.err("the plugin is not connected")) };
        let mut sent = pipe.send(&[&id, command]);
        loop {
            if let Err(e) = sent {
                self.reset();
                return Err(self.err(format!("send failed: {e}")));
            }
            match pipe.recv(deadline.saturating_duration_since(Instant::now())) {
                Ok(Some(msg)) => {
                    let Some((next, body)) = split_request(&msg) else { continue };
                    if body.first() == Some(&b'h') {
                        // A keepalive crossed our reply, which the plugin
                        // then dropped: send the command again.
                        id = next;
                        sent = pipe.send(&[&id, command]);
                        continue;
                    }
                    self.pending = Some(next);
                    return Ok(body.to_vec());
                }
                Ok(None) => return Err(self.err(format!("no answer within {} ms", timeout.as_millis()))),
                Err(e) => {
                    self.reset();
                    return Err(self.err(format!("pipe lost: {e}")));
                }
            }
        }
    }
}
