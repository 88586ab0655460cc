//! NNG's scalability protocols (SP) over IPC, as the eKuiper plugin SDKs
//! speak them through libnng (pynng for Python): a Unix socket, an 8-byte
//! protocol header from each side, then frames of one type byte (1), a
//! big-endian u64 length and the message. REQ messages carry a 4-byte
//! request id (high bit set) before the body, which the REP side echoes.
//! PUSH/PULL messages are bare bodies.
//!
//! Only what eKuiper's plugin channels use is implemented: one peer per
//! socket, REP and PULL listening, PUSH dialing ([`Pipe::dial`]).

use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// SP protocol numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Protocol {
    /// `req0`.
    Req = 0x30,
    /// `rep0`.
    Rep = 0x31,
    /// `push0`.
    Push = 0x50,
    /// `pull0`.
    Pull = 0x51,
}

impl Protocol {
    /// The protocol a peer of this one must speak.
    fn peer(self) -> Protocol {
        match self {
            Protocol::Req => Protocol::Rep,
            Protocol::Rep => Protocol::Req,
            Protocol::Push => Protocol::Pull,
            Protocol::Pull => Protocol::Push,
        }
    }

    fn header(self) -> [u8; 8] {
        let p = (self as u16).to_be_bytes();
        [0, b'S', b'P', 0, p[0], p[1], 0, 0]
    }
}

/// Largest message accepted from a plugin; a bigger length is a corrupt or
/// hostile frame, not something to allocate.
const MAX_MESSAGE: u64 = 64 << 20;

/// A connected SP pipe. Received bytes are buffered so that a receive
/// timeout in the middle of a frame loses nothing.
#[derive(Debug)]
pub(crate) struct Pipe {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Pipe {
    /// Exchanges protocol headers on a fresh stream.
    fn handshake(stream: UnixStream, me: Protocol, timeout: Duration) -> io::Result<Pipe> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut s = stream;
        s.write_all(&me.header())?;
        let mut theirs = [0u8; 8];
        s.read_exact(&mut theirs)?;
        if theirs[..4] != [0, b'S', b'P', 0] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the peer does not speak NNG's SP protocol"));
        }
        let proto = u16::from_be_bytes([theirs[4], theirs[5]]);
        if proto != me.peer() as u16 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the peer speaks SP protocol {proto:#x}, expected {:#x}", me.peer() as u16),
            ));
        }
        Ok(Pipe { stream: s, buf: Vec::new() })
    }

    /// Dials the socket a plugin listens on at `path` (a sink's data
    /// channel) and exchanges headers, each step within `timeout`.
    pub(crate) fn dial(path: &Path, me: Protocol, timeout: Duration) -> io::Result<Pipe> {
        let stream = UnixStream::connect(path)?;
        Pipe::handshake(stream, me, timeout)
    }

    /// Sends one message made of `parts`.
    pub(crate) fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut frame = Vec::with_capacity(9 + len);
        frame.push(1);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
        for p in parts {
            frame.extend_from_slice(p);
        }
        self.stream.write_all(&frame)
    }

    /// Receives one message, waiting at most `timeout`; `Ok(None)` when
    /// none arrived in time. A closed pipe is `UnexpectedEof`.
    pub(crate) fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(msg) = self.take_frame()? {
                return Ok(Some(msg));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the plugin closed the pipe")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Pops a complete frame off the buffer.
    fn take_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.buf.len() < 9 {
            return Ok(None);
        }
        if self.buf[0] != 1 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown SP frame type {}", self.buf[0])));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&self.buf[1..9]);
        let len = u64::from_be_bytes(len);
        if len > MAX_MESSAGE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("SP message of {len} bytes is too large")));
        }
        let end = 9 + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let msg = self.buf[9..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(msg))
    }
}

/// Whether an I/O error is a receive timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A listening SP socket that keeps the newest peer: a plugin that
/// restarts dials again and replaces its old pipe.
#[derive(Debug)]
pub(crate) struct Listener {
    listener: UnixListener,
    path: PathBuf,
    /// Inode of our socket file, so that dropping a replaced listener does
    /// not delete its successor's file.
    inode: Option<u64>,
    me: Protocol,
}

impl Listener {
    /// Listens on `path` (a stale socket file left by a crash is removed).
    pub(crate) fn bind(path: &Path, me: Protocol) -> io::Result<Listener> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let inode = std::fs::metadata(path).ok().map(|m| m.ino());
        Ok(Listener { listener, path: path.to_path_buf(), inode, me })
    }

    /// The newest peer that dialed since the last call, if any; pipes
    /// that fail the header exchange are dropped.
    pub(crate) fn newest(&self, timeout: Duration) -> Option<Pipe> {
        let mut newest = None;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    match Pipe::handshake(s, self.me, timeout) {
                        Ok(p) => newest = Some(p),
                        Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "plugin pipe refused"),
                    }
                }
                Err(_) => return newest,
            }
        }
    }

    /// Waits up to `timeout` for a peer.
    pub(crate) fn accept(&self, timeout: Duration) -> Option<Pipe> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.newest(timeout) {
                return Some(p);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let ours = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if ours.is_some() && ours == self.inode {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
