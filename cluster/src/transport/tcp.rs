//! TCP transport on tokio: one outgoing connection per peer fed by a
//! bounded queue, reconnecting with backoff, and a listener that hands
//! incoming raft messages and requests to the node.
//!
//! Sending never blocks the raft driver: a full queue or an unknown peer
//! drops the message (raft retransmits) and the driver reports the peer
//! unreachable. While a peer is down, its queue is emptied at every failed
//! connection attempt, so a reconnect does not flood it with stale traffic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::Message;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::{decode_message, encode_frame, encode_message, read_frame, Frame, Request, Response};
use crate::error::{Error, Result};
use crate::metadata::NodeId;
use crate::tls::{self, ClusterTls, Stream};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the listener hands to the node.
pub(crate) enum Inbound {
    /// A raft message from a peer.
    Raft(Message),
    /// A join request; answer on `reply`.
    Join { id: NodeId, addr: String, reply: oneshot::Sender<Response> },
}

/// Delivers inbound traffic to the node; returns false when the node's queue is full.
pub(crate) type Deliver = Arc<dyn Fn(Inbound) -> bool + Send + Sync>;

struct Peer {
    addr: String,
    tx: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<()>,
}

/// Outgoing connections to the other members.
pub(crate) struct Transport {
    me: NodeId,
    my_addr: String,
    max_frame: usize,
    queue: usize,
    rt: tokio::runtime::Handle,
    peers: Mutex<HashMap<NodeId, Peer>>,
    tls: Option<ClusterTls>,
}

impl Transport {
    pub(crate) fn new(
        me: NodeId,
        my_addr: String,
        max_frame: usize,
        queue: usize,
        rt: tokio::runtime::Handle,
        tls: Option<ClusterTls>,
    ) -> Self {
        Transport { me, my_addr, max_frame, queue, rt, peers: Mutex::new(HashMap::new()), tls }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the peer set equal to `addrs` (this node excluded): starts
    /// senders for new or moved peers and stops those of removed ones.
    pub(crate) fn set_peers(&self, addrs: &BTreeMap<NodeId, String>) {
        let mut peers = self.peers();
        peers.retain(|id, p| {
            let keep = addrs.get(id) == Some(&p.addr);
            if !keep {
                p.task.abort();
            }
            keep
        });
        for (id, addr) in addrs {
            if *id != self.me && !addr.is_empty() && !peers.contains_key(id) {
                peers.insert(*id, self.spawn_peer(addr.clone()));
            }
        }
    }

    /// Adds a peer learned from a `Hello` or a join answer, if unknown.
    pub(crate) fn learn_peer(&self, id: NodeId, addr: String) {
        let mut peers = self.peers();
        if id != self.me && !addr.is_empty() && !peers.contains_key(&id) {
            tracing::debug!(node = self.me, peer = id, %addr, "learned peer address");
            peers.insert(id, self.spawn_peer(addr));
        }
    }

    fn spawn_peer(&self, addr: String) -> Peer {
        let (tx, rx) = mpsc::channel(self.queue);
        let hello = encode_frame(&Frame::Hello { from: self.me, addr: self.my_addr.clone() }, self.max_frame);
        let task = self.rt.spawn(peer_loop(self.me, addr.clone(), hello.unwrap_or_default(), rx, self.tls.clone()));
        Peer { addr, tx, task }
    }

    /// Queues a raft message for its addressee.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] (no address yet), [`Error::Busy`] (queue
    /// full), or the message does not encode; it is dropped in every case.
    pub(crate) fn send(&self, msg: &Message) -> Result<()> {
        let frame = encode_frame(&Frame::Raft(encode_message(msg)?), self.max_frame)?;
        let peers = self.peers();
        let peer = peers.get(&msg.to).ok_or(Error::UnknownNode { node: msg.to })?;
        peer.tx.try_send(frame).map_err(|_| Error::Busy)
    }

    /// Stops every sender.
    pub(crate) fn shutdown(&self) {
        for (_, p) in self.peers().drain() {
            p.task.abort();
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Keeps one connection to `addr` and writes queued frames to it.
async fn peer_loop(me: NodeId, addr: String, hello: Vec<u8>, mut rx: mpsc::Receiver<Vec<u8>>, tls: Option<ClusterTls>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if let Ok(Ok(tcp)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            let r: std::io::Result<()> = async {
                let mut w = BufWriter::new(tls::connect(tls.as_ref(), tcp).await?);
                backoff = BACKOFF_MIN;
                w.write_all(&hello).await?;
                w.flush().await?;
                while let Some(frame) = rx.recv().await {
                    w.write_all(&frame).await?;
                    while let Ok(more) = rx.try_recv() {
                        w.write_all(&more).await?;
                    }
                    w.flush().await?;
                }
                Ok(())
            }
            .await;
            match r {
                Ok(()) => return, // the transport dropped the queue
                Err(e) => tracing::debug!(node = me, %addr, error = %e, "peer connection lost"),
            }
        }
        while rx.try_recv().is_ok() {}
        if rx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Accepts connections until the task is aborted (which also aborts them).
pub(crate) async fn serve(listener: TcpListener, transport: Arc<Transport>, deliver: Deliver, max_frame: usize) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    let (transport, deliver) = (transport.clone(), deliver.clone());
                    conns.spawn(async move {
                        // The handshake runs here, not in the accept loop.
                        match tls::accept(transport.tls.as_ref(), tcp).await {
                            Ok(stream) => connection(stream, transport, deliver, max_frame).await,
                            Err(e) => tracing::warn!(%peer, error = %e, "refused a cluster connection"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(BACKOFF_MIN).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads frames from one connection; any bad frame closes it.
async fn connection(mut stream: Box<dyn Stream>, transport: Arc<Transport>, deliver: Deliver, max_frame: usize) {
    loop {
        let frame = match read_frame(&mut stream, max_frame).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "closing connection after a bad frame");
                return;
            }
        };
        match frame {
            Frame::Hello { from, addr } => transport.learn_peer(from, addr),
            Frame::Raft(bytes) => match decode_message(&bytes) {
                Ok(m) => {
                    if !deliver(Inbound::Raft(m)) {
                        tracing::debug!("node queue full, dropping a raft message");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "closing connection after a bad raft message");
                    return;
                }
            },
            Frame::Request(Request::Join { id, addr }) => {
                let (reply, rx) = oneshot::channel();
                let refused = |reason: &str| Response::Refused { reason: reason.to_string(), retry: true };
                let resp = if deliver(Inbound::Join { id, addr, reply }) {
                    rx.await.unwrap_or_else(|_| refused("node stopped"))
                } else {
                    refused("node busy")
                };
                let Ok(bytes) = encode_frame(&Frame::Response(resp), max_frame) else { return };
                if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
            }
            Frame::Response(_) => {
                tracing::warn!("closing connection after an unexpected response frame");
                return;
            }
        }
    }
}

/// Sends one request to `addr` and waits for the answer.
///
/// # Errors
/// Connection failures, [`Error::Timeout`], a bad or missing answer.
pub(crate) async fn request(
    addr: &str,
    req: Request,
    max_frame: usize,
    timeout: Duration,
    tls: Option<&ClusterTls>,
) -> Result<Response> {
    let exchange = async {
        let mut stream = tls::connect(tls, TcpStream::connect(addr).await?).await?;
        stream.write_all(&encode_frame(&Frame::Request(req), max_frame)?).await?;
        stream.flush().await?;
        match read_frame(&mut stream, max_frame).await? {
            Some(Frame::Response(r)) => Ok(r),
            Some(_) => Err(Error::corrupt("response", "unexpected frame")),
            None => Err(Error::corrupt("response", "connection closed")),
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| Error::Timeout { what: "request" })?
}
