//! [`ReplicaServer`]: the standby's side. Receives the batches of the rules
//! this node is standby for and applies them to the node's local store.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use weir_runtime::state::{rule_prefix, StateBackend, Write};

use super::config::ReplicationConfig;
use super::error::{Refusal, ReplicationError};
use super::fence::Gates;
use super::wire::{decode_body, encode_frame, prefix_end, read_body, Ack, Batch};

/// Accepts replication connections and applies their batches to a local
/// [`StateBackend`], one atomic `write` per batch with the sender's `sync`.
///
/// A batch is refused (and nothing of it applied) when its shard epoch is
/// older than the highest this server has seen for the rule or been told by
/// [`ReplicaServer::fence`], or when a write leaves the rule's key prefix.
/// A frame that is too long or does not decode closes its connection; the
/// server never panics on input.
///
/// Stops (with all its connections) on [`ReplicaServer::shutdown`] or drop.
#[derive(Debug)]
pub struct ReplicaServer {
    addr: SocketAddr,
    gates: Arc<Gates>,
    stop: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl ReplicaServer {
    /// Listens on `listen` (port 0 picks a free one:
    /// [`ReplicaServer::local_addr`]) and serves on the current tokio
    /// runtime. `backend` must be the node's local store (not a
    /// [`ReplicatedBackend`](super::ReplicatedBackend)): the same one the
    /// node restores a promoted rule from.
    ///
    /// # Errors
    /// [`ReplicationError::InvalidConfig`]; [`ReplicationError::Io`] when the
    /// address cannot be bound.
    pub async fn bind(
        listen: SocketAddr,
        backend: Arc<dyn StateBackend>,
        config: ReplicationConfig,
    ) -> Result<ReplicaServer, ReplicationError> {
        config.validate()?;
        let io = |source| ReplicationError::Io { addr: listen.to_string(), source };
        let listener = TcpListener::bind(listen).await.map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let gates = Arc::new(Gates::new(backend));
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(serve(listener, gates.clone(), Arc::new(config), stop.clone()));
        tracing::info!(%addr, "replica server listening");
        Ok(ReplicaServer { addr, gates, stop, task: Some(task) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Refuses, from now on, every batch of `rule` with a shard epoch below
    /// `epoch`; returns the rule's epoch afterwards (never lowered).
    ///
    /// The node calls it when the metadata makes it the rule's primary at
    /// `epoch`, **before** restoring the rule from its local store: batches
    /// applied earlier are then part of what it restores, and a deposed
    /// primary's later batches are refused (its `write` fails, so it acks
    /// nothing more). Calling it as standby with the primary's epoch is
    /// allowed too and shuts out even older primaries. The epoch is stored
    /// durably, so it survives a restart. Blocks on one synced store write:
    /// from async code, call it in `spawn_blocking`.
    ///
    /// # Errors
    /// [`ReplicationError::Local`]: the store failed; the fence is not
    /// raised.
    pub fn fence(&self, rule: &str, epoch: u64) -> Result<u64, ReplicationError> {
        Ok(self.gates.fence(rule, epoch)?)
    }

    /// The highest shard epoch known for `rule` (0: none yet).
    ///
    /// # Errors
    /// [`ReplicationError::Local`]: the stored epoch cannot be read.
    pub fn epoch(&self, rule: &str) -> Result<u64, ReplicationError> {
        Ok(self.gates.current(rule)?)
    }

    /// Stops accepting, closes every connection and waits until they are
    /// gone, so the store is no longer used by the server (a batch being
    /// applied at that moment finishes first). Dropping the server stops it
    /// too, without waiting.
    pub async fn shutdown(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        tracing::info!(addr = %self.addr, "replica server stopped");
    }
}

impl Drop for ReplicaServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until stopped or aborted (which also aborts them).
async fn serve(listener: TcpListener, gates: Arc<Gates>, config: Arc<ReplicationConfig>, stop: Arc<Notify>) {
    let tls = config.tls.clone();
    let handle = move |stream, peer| connection(stream, peer, gates.clone(), config.clone());
    crate::tls::serve(listener, tls, stop, "replication", handle).await
}

/// A chunked batch being received on one connection.
struct Staged {
    rule: String,
    epoch: u64,
    next_part: u32,
    bytes: usize,
    writes: Vec<Write>,
}

/// Serves one primary: frame in, apply, ack out, in order.
async fn connection(
    mut stream: Box<dyn crate::tls::Stream>,
    peer: SocketAddr,
    gates: Arc<Gates>,
    config: Arc<ReplicationConfig>,
) {
    let mut staged = None;
    loop {
        let body = match read_body(&mut stream, config.max_frame).await {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing replication connection after a bad frame");
                return;
            }
        };
        let batch: Batch = match decode_body(&body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing replication connection after a corrupt frame");
                return;
            }
        };
        let (seq, rule, epoch) = (batch.seq, batch.rule.clone(), batch.epoch);
        let result = receive(batch, &mut staged, &gates, &config).await;
        if let Err(refusal) = &result {
            tracing::warn!(%peer, rule, epoch, %refusal, "refused a replicated batch");
        }
        let frame = match encode_frame(&Ack { seq, result }, config.max_frame) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(%peer, error = ?e, "cannot encode an ack; closing the connection");
                return;
            }
        };
        // Flushed: a TLS stream holds written records until then.
        if let Err(e) = async {
            stream.write_all(&frame).await?;
            stream.flush().await
        }
        .await
        {
            tracing::debug!(%peer, error = %e, "replication connection lost");
            return;
        }
    }
}

/// Validates, stages or applies one batch.
async fn receive(
    batch: Batch,
    staged: &mut Option<Staged>,
    gates: &Arc<Gates>,
    config: &ReplicationConfig,
) -> Result<(), Refusal> {
    let Batch { rule, epoch, part, more, sync, writes, .. } = batch;
    // Any refusal abandons a batch being staged: its later chunks are then
    // refused as out of order, so half a batch is never applied.
    let mut current = match (part, staged.take()) {
        (0, _) => Staged { rule: rule.clone(), epoch, next_part: 0, bytes: 0, writes: Vec::new() },
        (p, Some(s)) if s.rule == rule && s.epoch == epoch && s.next_part == p => s,
        (p, _) => return Err(Refusal::Protocol { message: format!("chunk {p} of a batch of {rule:?} out of order") }),
    };
    let prefix = rule_prefix(&rule);
    let end = prefix_end(&prefix);
    if !writes.iter().all(|w| w.within(&prefix, end.as_deref())) {
        return Err(Refusal::OutsideRule { rule });
    }
    current.bytes += writes.iter().map(|w| w.size()).sum::<usize>();
    if current.bytes > config.max_staged {
        return Err(Refusal::Protocol {
            message: format!("batch of {} bytes exceeds the staging limit of {}", current.bytes, config.max_staged),
        });
    }
    current.writes.extend(writes.into_iter().map(|w| w.into_write()));
    let gates = gates.clone();
    if more {
        // Refuse a stale sender early; the final apply checks again.
        let r = tokio::task::spawn_blocking(move || gates.check(&rule, epoch).map(|()| current)).await;
        *staged = Some(joined(r)?);
        if let Some(s) = staged.as_mut() {
            s.next_part += 1;
        }
        return Ok(());
    }
    let r = tokio::task::spawn_blocking(move || gates.apply(&current.rule, epoch, current.writes, sync)).await;
    joined(r)
}

fn joined<T>(r: Result<Result<T, Refusal>, tokio::task::JoinError>) -> Result<T, Refusal> {
    r.unwrap_or_else(|e| Err(Refusal::Store { message: format!("apply task failed: {e}") }))
}
