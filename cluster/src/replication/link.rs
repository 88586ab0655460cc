//! The primary's side of one standby connection: blocking std sockets, so
//! that the synchronous `StateBackend::write` can use it from any thread
//! (the ingest log's blocking writer, actor code) without a runtime.
//!
//! One [`Link`] per standby address keeps one connection, opened lazily and
//! reused. A [`Session`] holds it exclusively: it sends batches (pipelined)
//! and reads their acks in order. Any socket error, timeout or unexpected
//! frame drops the connection, since a late ack could otherwise be taken
//! for the next batch's; the next session reconnects.

use std::collections::VecDeque;
use std::io::{Read, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::ReplicationConfig;
use super::error::ReplicationError;
use super::wire::{check_len, decode_body, encode_frame, Ack, Batch, EncodeError};

/// The connection to one standby.
#[derive(Debug)]
pub(crate) struct Link {
    addr: String,
    conn: Mutex<Option<Conn>>,
}

#[derive(Debug)]
struct Conn {
    stream: LinkStream,
    next_seq: u64,
}

/// The blocking connection to a standby, plain or TLS.
enum LinkStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, TcpStream>>),
}

impl std::fmt::Debug for LinkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkStream::Plain(_) => "LinkStream::Plain",
            LinkStream::Tls(_) => "LinkStream::Tls",
        })
    }
}

impl LinkStream {
    /// The socket, for its timeouts.
    fn socket(&self) -> &TcpStream {
        match self {
            LinkStream::Plain(s) => s,
            LinkStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for LinkStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            LinkStream::Plain(s) => s.read(buf),
            LinkStream::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for LinkStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LinkStream::Plain(s) => s.write(buf),
            LinkStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LinkStream::Plain(s) => s.flush(),
            LinkStream::Tls(s) => s.flush(),
        }
    }
}

impl Link {
    pub(crate) fn new(addr: String) -> Link {
        Link { addr, conn: Mutex::new(None) }
    }

    /// Takes the connection for a series of exchanges.
    pub(crate) fn session<'a>(&'a self, config: &'a ReplicationConfig) -> Session<'a> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Session { addr: &self.addr, config, conn, pending: VecDeque::new() }
    }
}

/// Exclusive use of a [`Link`]'s connection.
pub(crate) struct Session<'a> {
    addr: &'a str,
    config: &'a ReplicationConfig,
    conn: MutexGuard<'a, Option<Conn>>,
    /// Seqs (and the caller's tags) of batches sent and not acked yet.
    pending: VecDeque<(u64, usize)>,
}

impl Session<'_> {
    /// The standby's address.
    pub(crate) fn addr(&self) -> &str {
        self.addr
    }

    /// Sends `batch` (its `seq` is assigned here) without waiting for the
    /// ack; `tag` comes back from [`Session::recv`] with it.
    pub(crate) fn send(&mut self, mut batch: Batch, tag: usize, deadline: Instant) -> Result<(), ReplicationError> {
        let r = self.try_send(&mut batch, deadline);
        match r {
            Ok(()) => {
                self.pending.push_back((batch.seq, tag));
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn try_send(&mut self, batch: &mut Batch, deadline: Instant) -> Result<(), Failure> {
        let max = self.config.max_frame;
        let conn = self.connect(deadline)?;
        batch.seq = conn.next_seq;
        let frame = encode_frame(batch, max).map_err(|e| match e {
            EncodeError::TooLarge { len, max } => ReplicationError::FrameTooLarge { len, max },
            EncodeError::Codec(message) => ReplicationError::Protocol { addr: String::new(), message },
        })?;
        let left = remaining(deadline).ok_or(IoFail::Timeout)?;
        conn.stream.socket().set_write_timeout(Some(left)).map_err(IoFail::Io)?;
        conn.stream.write_all(&frame).map_err(IoFail::from)?;
        conn.stream.flush().map_err(IoFail::from)?;
        conn.next_seq += 1;
        Ok(())
    }

    /// Reads the ack of the oldest pending batch: its tag, and whether the
    /// standby applied it. `Err` is a failure of the connection (which is
    /// dropped, with every other pending batch); a refusal is
    /// `Ok((tag, Err(..)))` and the connection stays usable.
    pub(crate) fn recv(
        &mut self,
        deadline: Instant,
    ) -> Result<(usize, Result<(), ReplicationError>), ReplicationError> {
        let Some(&(seq, tag)) = self.pending.front() else {
            return Err(ReplicationError::Protocol { addr: self.addr.to_string(), message: "no batch pending".into() });
        };
        match self.read_ack(deadline) {
            Ok(ack) if ack.seq == seq => {
                self.pending.pop_front();
                let addr = self.addr.to_string();
                Ok((tag, ack.result.map_err(|refusal| ReplicationError::Refused { addr, refusal })))
            }
            Ok(ack) => Err(self.fail(IoFail::Protocol(format!("ack for seq {} while waiting for {seq}", ack.seq)))),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Whether acks are outstanding.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn read_ack(&mut self, deadline: Instant) -> Result<Ack, IoFail> {
        let max = self.config.max_frame;
        let conn = self.conn.as_mut().ok_or_else(|| IoFail::Protocol("not connected".into()))?;
        let left = remaining(deadline).ok_or(IoFail::Timeout)?;
        conn.stream.socket().set_read_timeout(Some(left))?;
        let mut len = [0u8; 4];
        conn.stream.read_exact(&mut len)?;
        let len = check_len(len, max)?;
        let mut body = Vec::with_capacity(len.min(64 << 10));
        (&mut conn.stream).take(len as u64).read_to_end(&mut body)?;
        if body.len() != len {
            return Err(IoFail::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        decode_body(&body).map_err(IoFail::Protocol)
    }

    fn connect(&mut self, deadline: Instant) -> Result<&mut Conn, ReplicationError> {
        if self.conn.is_none() {
            let stream = self.open(deadline).map_err(|e| e.into_error(self.addr, self.config.timeout))?;
            tracing::debug!(addr = self.addr, "connected to standby");
            *self.conn = Some(Conn { stream, next_seq: 0 });
        }
        self.conn.as_mut().ok_or_else(|| ReplicationError::Protocol {
            addr: self.addr.to_string(),
            message: "connection vanished".into(),
        })
    }

    fn open(&self, deadline: Instant) -> Result<LinkStream, IoFail> {
        let mut last = IoFail::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing"));
        for sa in self.addr.to_socket_addrs()? {
            let left = remaining(deadline).ok_or(IoFail::Timeout)?.min(self.config.connect_timeout);
            match TcpStream::connect_timeout(&sa, left) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return match &self.config.tls {
                        None => Ok(LinkStream::Plain(stream)),
                        // The handshake happens on the first write, under
                        // that write's timeout.
                        Some(tls) => Ok(LinkStream::Tls(Box::new(tls.client_blocking(stream)?))),
                    };
                }
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    /// Drops the connection and everything pending on it.
    fn fail(&mut self, e: impl Into<Failure>) -> ReplicationError {
        *self.conn = None;
        self.pending.clear();
        match e.into() {
            Failure::Io(e) => e.into_error(self.addr, self.config.timeout),
            Failure::Done(ReplicationError::Protocol { message, .. }) => {
                ReplicationError::Protocol { addr: self.addr.to_string(), message }
            }
            Failure::Done(e) => e,
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Unread acks would be mistaken for the next session's.
        if !self.pending.is_empty() {
            *self.conn = None;
        }
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}

/// A socket-level failure, before it is named after the address.
#[derive(Debug)]
enum IoFail {
    Io(std::io::Error),
    Timeout,
    Protocol(String),
}

impl From<std::io::Error> for IoFail {
    fn from(e: std::io::Error) -> IoFail {
        match e.kind() {
            // std reports an expired socket timeout as either, by platform.
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => IoFail::Timeout,
            _ => IoFail::Io(e),
        }
    }
}

impl IoFail {
    fn into_error(self, addr: &str, timeout: Duration) -> ReplicationError {
        let addr = addr.to_string();
        match self {
            IoFail::Io(source) => ReplicationError::Io { addr, source },
            IoFail::Timeout => ReplicationError::Timeout { addr, after: timeout },
            IoFail::Protocol(message) => ReplicationError::Protocol { addr, message },
        }
    }
}

enum Failure {
    Io(IoFail),
    Done(ReplicationError),
}

impl From<IoFail> for Failure {
    fn from(e: IoFail) -> Failure {
        Failure::Io(e)
    }
}

impl From<ReplicationError> for Failure {
    fn from(e: ReplicationError) -> Failure {
        Failure::Done(e)
    }
}
