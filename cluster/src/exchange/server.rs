//! [`ExchangeServer`]: the receiving side. Accepts links for the shards
//! registered on this node and delivers their messages into the shards'
//! inboxes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use weir_runtime::row::Message;

use super::error::{ExchangeError, Route};
use super::wire::{self, Answer, Hello, Refusal, HELLO_MAX};
use super::ExchangeConfig;
use crate::tls::Stream;

/// A shard's inbox: (sending shard, message).
type Inbox = mpsc::Sender<(u32, Message)>;

/// One registered shard.
struct Entry {
    /// Tells registrations of the same shard apart.
    id: u64,
    epochs: Vec<u64>,
    inbox: Inbox,
    /// Its sender lives in the [`Registration`]; closed when it drops.
    stop: watch::Receiver<()>,
    /// Sending shards with an open connection.
    connected: Arc<Mutex<HashSet<u32>>>,
    /// The first accepted connection that broke; the registration watches it.
    broken: Arc<watch::Sender<Option<ExchangeError>>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    shards: HashMap<(String, u32), Entry>,
}

type Shared = Arc<Mutex<Registry>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Listens for exchange links and delivers their messages to registered
/// shards. A connection is accepted when its [`Hello`] names a registered
/// shard (`rule`, `to`) with equal epochs; its messages go to that
/// registration's inbox as `(hello.from, message)`, in order, awaiting a
/// full inbox (the socket is not read meanwhile, so the sender slows down).
///
/// A frame too long or that does not decode closes its connection (the
/// sending link then fails); the server never panics on input. Stops, with
/// all connections, on [`ExchangeServer::shutdown`] or drop.
#[derive(Debug)]
pub struct ExchangeServer {
    addr: SocketAddr,
    registry: Shared,
    stop: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.shards.keys()).finish()
    }
}

impl ExchangeServer {
    /// Listens on `addr` (port 0 picks a free one:
    /// [`ExchangeServer::local_addr`]) with default limits and serves on the
    /// current tokio runtime.
    ///
    /// # Errors
    /// [`ExchangeError::Bind`].
    pub async fn bind(addr: SocketAddr, tls: Option<crate::tls::ClusterTls>) -> Result<ExchangeServer, ExchangeError> {
        ExchangeServer::bind_with(addr, ExchangeConfig { tls, ..ExchangeConfig::default() }).await
    }

    /// [`ExchangeServer::bind`] with explicit settings.
    ///
    /// # Errors
    /// [`ExchangeError::InvalidConfig`], [`ExchangeError::Bind`].
    pub async fn bind_with(addr: SocketAddr, config: ExchangeConfig) -> Result<ExchangeServer, ExchangeError> {
        config.validate()?;
        let bind = |e| ExchangeError::Bind { addr: addr.to_string(), source: Arc::new(e) };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let registry = Shared::default();
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(serve(listener, registry.clone(), Arc::new(config), stop.clone()));
        tracing::info!(%addr, "exchange server listening");
        Ok(ExchangeServer { addr, registry, stop, task: Some(task) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts links to shard `shard` of `rule` in the generation `epochs`
    /// from now on, delivering into `inbox`, until the returned
    /// [`Registration`] is dropped (which also closes its connections).
    /// Registering the same shard again replaces the earlier registration
    /// for new connections; the earlier one's open connections stay until
    /// it is dropped.
    pub fn register(
        &self,
        rule: &str,
        shard: u32,
        epochs: Vec<u64>,
        inbox: mpsc::Sender<(u32, Message)>,
    ) -> Registration {
        let (stop_tx, stop) = watch::channel(());
        let mut reg = lock(&self.registry);
        reg.next_id += 1;
        let id = reg.next_id;
        let connected = Arc::default();
        let (broken, broken_rx) = watch::channel(None);
        let broken = Arc::new(broken);
        reg.shards.insert((rule.to_string(), shard), Entry { id, epochs, inbox, stop, connected, broken });
        Registration {
            registry: self.registry.clone(),
            key: (rule.to_string(), shard),
            id,
            broken: broken_rx,
            _stop: stop_tx,
        }
    }

    /// Stops accepting, closes every connection and waits until they are
    /// gone. Dropping the server stops it too, without waiting.
    pub async fn shutdown(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        tracing::info!(addr = %self.addr, "exchange server stopped");
    }
}

impl Drop for ExchangeServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A shard registered with an [`ExchangeServer`]. Dropping it refuses new
/// links to the shard and closes its open connections.
#[must_use = "dropping the registration unregisters the shard"]
pub struct Registration {
    registry: Shared,
    key: (String, u32),
    id: u64,
    broken: watch::Receiver<Option<ExchangeError>>,
    _stop: watch::Sender<()>,
}

impl Registration {
    /// Resolves when an accepted connection to this shard breaks: a socket
    /// error or a frame that is too long or does not decode (at once if one
    /// has). The sending link fails too, but its node may be the only one
    /// to know without this. A sender closing cleanly between frames, the
    /// inbox closing or the registration being dropped do not count.
    /// Independent of `self` once created.
    pub fn broken(&self) -> impl Future<Output = ExchangeError> + Send + 'static {
        let mut broken = self.broken.clone();
        async move {
            let e = broken.wait_for(Option::is_some).await.map(|e| e.clone());
            match e {
                Ok(Some(e)) => e,
                _ => std::future::pending().await,
            }
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("rule", &self.key.0).field("shard", &self.key.1).finish()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut reg = lock(&self.registry);
        if reg.shards.get(&self.key).is_some_and(|e| e.id == self.id) {
            reg.shards.remove(&self.key);
        }
        // `_stop` drops after this: the connections see it closed.
    }
}

/// What an accepted connection delivers into.
struct Admitted {
    inbox: Inbox,
    stop: watch::Receiver<()>,
    broken: Arc<watch::Sender<Option<ExchangeError>>>,
    _slot: Slot,
}

/// A sending shard's place on a registration, freed with the connection.
struct Slot {
    connected: Arc<Mutex<HashSet<u32>>>,
    from: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.connected).remove(&self.from);
    }
}

fn admit(registry: &Shared, hello: &Hello) -> Result<Admitted, Refusal> {
    let reg = lock(registry);
    let no_shard = || Refusal::NoShard { rule: hello.rule.clone(), shard: hello.to };
    let entry = reg.shards.get(&(hello.rule.clone(), hello.to)).ok_or_else(no_shard)?;
    if entry.epochs != hello.epochs {
        return Err(Refusal::Generation { here: entry.epochs.clone(), theirs: hello.epochs.clone() });
    }
    if entry.inbox.is_closed() || entry.stop.has_changed().is_err() {
        return Err(no_shard());
    }
    if !lock(&entry.connected).insert(hello.from) {
        return Err(Refusal::Duplicate { from: hello.from });
    }
    Ok(Admitted {
        inbox: entry.inbox.clone(),
        stop: entry.stop.clone(),
        broken: entry.broken.clone(),
        _slot: Slot { connected: entry.connected.clone(), from: hello.from },
    })
}

/// Accepts connections until stopped or aborted (which also aborts them).
async fn serve(listener: TcpListener, registry: Shared, config: Arc<ExchangeConfig>, stop: Arc<Notify>) {
    let tls = config.tls.clone();
    let handle = move |stream, peer| connection(stream, peer, registry.clone(), config.clone());
    crate::tls::serve(listener, tls, stop, "exchange", handle).await
}

/// Serves one link: Hello, answer, then messages into the inbox.
async fn connection(stream: Box<dyn Stream>, peer: SocketAddr, registry: Shared, config: Arc<ExchangeConfig>) {
    let mut stream = BufReader::new(stream);
    let hello: Hello = match tokio::time::timeout(config.hello_timeout, wire::read(&mut stream, HELLO_MAX)).await {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::warn!(%peer, error = ?e, "exchange connection without a valid hello"),
        Err(_) => return tracing::warn!(%peer, "exchange connection sent no hello in time"),
    };
    let admitted = admit(&registry, &hello);
    let answer = match &admitted {
        Ok(_) => Answer::Accept,
        Err(r) => {
            tracing::debug!(%peer, rule = hello.rule, from = hello.from, to = hello.to, refusal = %r, "exchange link refused");
            Answer::Refuse(r.clone())
        }
    };
    let sent = async {
        let frame = wire::encode(&answer, HELLO_MAX).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        stream.write_all(&frame).await?;
        stream.flush().await
    };
    if let Err(e) = tokio::time::timeout(config.hello_timeout, sent)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    {
        return tracing::debug!(%peer, error = %e, "exchange answer not sent");
    }
    let Ok(Admitted { inbox, mut stop, broken, _slot }) = admitted else { return };
    tracing::debug!(%peer, rule = hello.rule, from = hello.from, to = hello.to, "exchange link accepted");
    let from = hello.from;
    let deliver = async {
        loop {
            match wire::read::<Message, _>(&mut stream, config.max_frame).await {
                Ok(Some(msg)) => {
                    // Awaiting a full inbox is the backpressure.
                    if inbox.send((from, msg)).await.is_err() {
                        tracing::debug!(%peer, "exchange inbox closed; closing the link");
                        return None;
                    }
                }
                Ok(None) => {
                    tracing::debug!(%peer, rule = hello.rule, from, "exchange link closed by the sender");
                    return None;
                }
                Err(e) => return Some(e),
            }
        }
    };
    let e = tokio::select! {
        e = deliver => e,
        // Only ever an error: the registration was dropped.
        _ = stop.changed() => {
            tracing::debug!(%peer, rule = hello.rule, from, "shard unregistered; closing its exchange link");
            None
        }
    };
    if let Some(e) = e {
        let route = Route { addr: peer.to_string(), rule: hello.rule, from, to: hello.to };
        let e = ExchangeError::frame(&route, e, true);
        tracing::warn!(error = %e, "closing a broken exchange link");
        broken.send_if_modified(|b| b.is_none() && b.replace(e).is_none());
    }
}
