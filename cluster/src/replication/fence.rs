//! The standby's fencing gates: per rule, the highest shard epoch seen in a
//! batch or set by [`ReplicaServer::fence`](super::ReplicaServer::fence).
//!
//! A batch is applied only if its epoch is at least the gate's, and the
//! check and the apply happen under the rule's gate lock; `fence` takes the
//! same lock. So once `fence(rule, e)` has returned, no batch of an epoch
//! below `e` is applied any more, and every batch applied before is already
//! in the store.
//!
//! The epoch is persisted in the store's raft space (key
//! `replica_epoch/<rule prefix>`, outside `RaftStorage`'s keys), in the
//! same atomic batch as the writes that raise it, so a restarted node does
//! not reopen a gate to a deposed primary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use weir_runtime::state::{rule_prefix, Space, StateBackend, StateError, StateResult, Write};

use super::error::Refusal;

/// Key prefix of persisted gate epochs in [`Space::Raft`].
const EPOCH_KEY: &[u8] = b"replica_epoch/";

fn epoch_key(rule: &str) -> Vec<u8> {
    let mut k = EPOCH_KEY.to_vec();
    k.extend_from_slice(&rule_prefix(rule));
    k
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gates of every rule this node has stored or fenced.
#[derive(Debug)]
pub(crate) struct Gates {
    backend: Arc<dyn StateBackend>,
    /// Rule -> highest known epoch (0: none yet), loaded on first use.
    rules: Mutex<HashMap<String, Arc<Mutex<u64>>>>,
}

impl Gates {
    pub(crate) fn new(backend: Arc<dyn StateBackend>) -> Gates {
        Gates { backend, rules: Mutex::new(HashMap::new()) }
    }

    /// The gate of `rule`, read from the store the first time.
    fn gate(&self, rule: &str) -> StateResult<Arc<Mutex<u64>>> {
        if let Some(g) = lock(&self.rules).get(rule) {
            return Ok(g.clone());
        }
        // Read outside the map lock; a racing loader reads the same value
        // and the first insert wins.
        let stored = match self.backend.get(Space::Raft, &epoch_key(rule))? {
            Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(|_| StateError::Corrupt {
                key: format!("replica epoch of {rule}"),
                message: format!("{} bytes, want 8", b.len()),
            })?),
            None => 0,
        };
        Ok(lock(&self.rules).entry(rule.to_string()).or_insert_with(|| Arc::new(Mutex::new(stored))).clone())
    }

    /// The highest epoch known for `rule` (0: none).
    pub(crate) fn current(&self, rule: &str) -> StateResult<u64> {
        let gate = self.gate(rule)?;
        let epoch = *lock(&gate);
        Ok(epoch)
    }

    /// Raises the gate of `rule` to `epoch` (durably); never lowers it.
    /// Returns the gate's epoch afterwards.
    pub(crate) fn fence(&self, rule: &str, epoch: u64) -> StateResult<u64> {
        let gate = self.gate(rule)?;
        let mut g = lock(&gate);
        if epoch > *g {
            self.backend.write(vec![Write::Put(Space::Raft, epoch_key(rule), epoch.to_be_bytes().to_vec())], true)?;
            tracing::info!(rule, epoch, previous = *g, "replica fenced");
            *g = epoch;
        }
        Ok(*g)
    }

    /// Refuses `epoch` if the gate of `rule` is past it (a chunk check; the
    /// final apply checks again under the lock).
    pub(crate) fn check(&self, rule: &str, epoch: u64) -> Result<(), Refusal> {
        let current = self.current(rule).map_err(store_refusal)?;
        if epoch < current {
            return Err(Refusal::StaleEpoch { epoch, current });
        }
        Ok(())
    }

    /// Applies `writes` atomically if `epoch` passes the gate of `rule`,
    /// raising the gate (in the same batch) when `epoch` is newer.
    pub(crate) fn apply(&self, rule: &str, epoch: u64, mut writes: Vec<Write>, sync: bool) -> Result<(), Refusal> {
        let gate = self.gate(rule).map_err(store_refusal)?;
        let mut g = lock(&gate);
        if epoch < *g {
            return Err(Refusal::StaleEpoch { epoch, current: *g });
        }
        let raise = epoch > *g;
        if raise {
            writes.push(Write::Put(Space::Raft, epoch_key(rule), epoch.to_be_bytes().to_vec()));
        }
        // A raised gate must survive a crash as surely as a fence does.
        self.backend.write(writes, sync || raise).map_err(store_refusal)?;
        if raise {
            tracing::debug!(rule, epoch, previous = *g, "replica epoch raised by a batch");
            *g = epoch;
        }
        Ok(())
    }
}

fn store_refusal(e: StateError) -> Refusal {
    Refusal::Store { message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use weir_runtime::state::MemoryBackend;

    use super::*;

    fn put(rule: &str) -> Vec<Write> {
        vec![Write::Put(Space::Commits, rule_prefix(rule), b"v".to_vec())]
    }

    #[test]
    fn gates_refuse_older_epochs_and_survive_a_restart() {
        let backend: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let gates = Gates::new(backend.clone());
        gates.apply("r", 2, put("r"), false).unwrap();
        assert_eq!(gates.current("r").unwrap(), 2);
        assert_eq!(gates.fence("r", 5).unwrap(), 5);
        assert_eq!(gates.fence("r", 4).unwrap(), 5, "fences never lower the gate");
        assert_eq!(gates.apply("r", 4, put("r"), false), Err(Refusal::StaleEpoch { epoch: 4, current: 5 }));
        assert_eq!(gates.check("r", 4), Err(Refusal::StaleEpoch { epoch: 4, current: 5 }));
        gates.apply("r", 5, put("r"), false).unwrap();
        assert_eq!(gates.current("other").unwrap(), 0);
        // A new `Gates` over the same store (a restarted node) keeps the fence.
        let again = Gates::new(backend);
        assert_eq!(again.current("r").unwrap(), 5);
        assert!(again.apply("r", 3, put("r"), false).is_err());
    }
}
