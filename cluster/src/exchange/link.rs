//! [`ExchangeLink`]: the sending side of one link, a task that connects to
//! the receiving shard's node and writes the messages of its queue.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_runtime::row::Message;

use super::error::{ExchangeError, Route};
use super::wire::{self, Answer, Hello, HELLO_MAX};
use super::ExchangeConfig;
use crate::tls::{self, ClusterTls, Stream};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Write buffer: bursts are batched into writes of up to this size.
const WRITE_BUFFER: usize = 64 << 10;

/// Where a link is.
#[derive(Debug, Clone)]
pub enum LinkState {
    /// Not accepted yet: connecting, or waiting to retry after `last`
    /// (the peer is down, or its shard is not registered yet). Nothing has
    /// been sent; the queue fills up meanwhile.
    Connecting {
        /// Failed attempts so far.
        attempts: u32,
        /// Why the last attempt failed.
        last: Option<ExchangeError>,
    },
    /// Accepted: writing the queue's messages.
    Connected,
    /// The queue closed and everything was flushed; the connection is
    /// closed cleanly.
    Closed,
    /// The accepted connection broke: messages may be lost. Final.
    Failed(ExchangeError),
}

/// The sending end of one link of a rule's exchange: a tokio task that
/// connects to `addr` (retrying with backoff 50 ms..1 s while the
/// connection or the [`Hello`] is refused), then writes every `(from,
/// message)` of its queue in order, flushing whenever the queue has nothing
/// more ready. It never reconnects after being accepted: a break ends the
/// link in [`LinkState::Failed`] ([`ExchangeLink::failed`] resolves). When
/// the queue closes, the link flushes and closes cleanly.
///
/// Dropping the link aborts its task (and closes its connection).
#[derive(Debug)]
pub struct ExchangeLink {
    state: watch::Receiver<LinkState>,
    task: JoinHandle<()>,
}

impl ExchangeLink {
    /// Starts a link to `addr` (the receiving node's exchange server) on the
    /// current tokio runtime, with default limits. Every message in `rx`
    /// must come from `hello.from`.
    pub fn spawn(
        addr: String,
        hello: Hello,
        tls: Option<ClusterTls>,
        rx: mpsc::Receiver<(u32, Message)>,
    ) -> ExchangeLink {
        ExchangeLink::spawn_with(addr, hello, ExchangeConfig { tls, ..ExchangeConfig::default() }, rx)
    }

    /// [`ExchangeLink::spawn`] with explicit settings. An invalid config
    /// fails the link at once.
    pub fn spawn_with(
        addr: String,
        hello: Hello,
        config: ExchangeConfig,
        rx: mpsc::Receiver<(u32, Message)>,
    ) -> ExchangeLink {
        let (tx, state) = watch::channel(LinkState::Connecting { attempts: 0, last: None });
        let route = Route { addr, rule: hello.rule.clone(), from: hello.from, to: hello.to };
        let task = tokio::spawn(async move {
            let end = match run(&route, &hello, &config, rx, &tx).await {
                Ok(()) => LinkState::Closed,
                Err(e) => {
                    tracing::warn!(error = %e, "exchange link failed");
                    LinkState::Failed(e)
                }
            };
            tx.send_replace(end);
        });
        ExchangeLink { state, task }
    }

    /// The link's current state.
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Resolves when the link fails (at once if it has); never if it closes
    /// cleanly or is dropped. For the node to `select!` on and roll the
    /// rule back. Independent of `self` once created.
    pub fn failed(&self) -> impl Future<Output = ExchangeError> + Send + 'static {
        let mut state = self.state.clone();
        async move {
            let end =
                state.wait_for(|s| matches!(s, LinkState::Failed(_) | LinkState::Closed)).await.map(|s| s.clone());
            match end {
                Ok(LinkState::Failed(e)) => e,
                _ => std::future::pending().await,
            }
        }
    }

    /// Waits until the link has ended: `Ok` after a clean close (the queue
    /// closed and everything was written), the error after a failure.
    ///
    /// # Errors
    /// The link's failure.
    pub async fn finished(mut self) -> Result<(), ExchangeError> {
        let end =
            self.state.wait_for(|s| matches!(s, LinkState::Failed(_) | LinkState::Closed)).await.map(|s| s.clone());
        match end {
            Ok(LinkState::Failed(e)) => Err(e),
            // Closed, or the task is gone (it sets a final state first).
            _ => Ok(()),
        }
    }
}

impl Drop for ExchangeLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The link's life: connect, then send until the queue closes.
async fn run(
    route: &Route,
    hello: &Hello,
    config: &ExchangeConfig,
    mut rx: mpsc::Receiver<(u32, Message)>,
    state: &watch::Sender<LinkState>,
) -> Result<(), ExchangeError> {
    config.validate()?;
    let hello_frame = wire::encode(hello, HELLO_MAX).map_err(|e| ExchangeError::frame(route, e, false))?;
    let mut backoff = BACKOFF_MIN;
    let mut attempts = 0;
    let stream = loop {
        // A shard that stopped before the peer came leaves nothing to send.
        if rx.is_closed() && rx.is_empty() {
            return Ok(());
        }
        match connect(route, &hello_frame, config).await {
            Ok(stream) => break stream,
            Err(e) => {
                attempts += 1;
                tracing::debug!(error = %e, attempts, "exchange link not accepted yet; retrying");
                state.send_replace(LinkState::Connecting { attempts, last: Some(e) });
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    };
    state.send_replace(LinkState::Connected);
    tracing::debug!(%route, "exchange link connected");
    send(route, config, stream, &mut rx).await
}

/// One attempt: TCP, TLS, Hello and its answer.
async fn connect(route: &Route, hello: &[u8], config: &ExchangeConfig) -> Result<Box<dyn Stream>, ExchangeError> {
    let timeout = |what| ExchangeError::Timeout { route: route.clone(), what };
    let io = |e| ExchangeError::Connect { route: route.clone(), source: Arc::new(e) };
    let tcp = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&route.addr))
        .await
        .map_err(|_| timeout("connect"))?
        .map_err(io)?;
    let mut stream = tls::connect(config.tls.as_ref(), tcp).await.map_err(io)?;
    let answer = tokio::time::timeout(config.hello_timeout, async {
        stream.write_all(hello).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        wire::read::<Answer, _>(&mut stream, HELLO_MAX).await.map_err(|e| ExchangeError::frame(route, e, false))
    })
    .await
    .map_err(|_| timeout("hello"))??;
    match answer {
        Some(Answer::Accept) => Ok(stream),
        Some(Answer::Refuse(refusal)) => Err(ExchangeError::Refused { route: route.clone(), refusal }),
        None => Err(io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Writes the queue's messages until it closes. The server sends nothing
/// after its answer, so anything readable (data, end of stream, an error)
/// means it closed the connection.
async fn send(
    route: &Route,
    config: &ExchangeConfig,
    stream: Box<dyn Stream>,
    rx: &mut mpsc::Receiver<(u32, Message)>,
) -> Result<(), ExchangeError> {
    let (mut reader, writer) = tokio::io::split(stream);
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, writer);
    let lost = |e| ExchangeError::Lost { route: route.clone(), source: Arc::new(e) };
    let mut probe = [0u8; 1];
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            r = reader.read(&mut probe) => return Err(match r {
                Err(e) => lost(e),
                Ok(_) => ExchangeError::Closed { route: route.clone() },
            }),
        };
        let Some(mut next) = first else {
            w.flush().await.map_err(lost)?;
            w.shutdown().await.map_err(lost)?;
            tracing::debug!(%route, "exchange link closed");
            return Ok(());
        };
        // Write what is ready as one burst, then flush once.
        loop {
            let (from, msg) = next;
            if from != route.from {
                return Err(ExchangeError::WrongSender { route: route.clone(), got: from });
            }
            let frame = wire::encode(&msg, config.max_frame).map_err(|e| ExchangeError::frame(route, e, true))?;
            w.write_all(&frame).await.map_err(lost)?;
            match rx.try_recv() {
                Ok(m) => next = m,
                Err(_) => break,
            }
        }
        w.flush().await.map_err(lost)?;
    }
}
