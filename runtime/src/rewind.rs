//! Rewindable sources: checkpointed by the position they report instead
//! of through the durable ingest log.
//!
//! A source that can re-read its input from a position (a file it keeps,
//! generated data) needs no copy of what it read: with `qos` 1 or 2 the
//! rule records, at each barrier, the position of everything the source
//! sent before that barrier, and a restored rule has the source start
//! there. This is how Flink and Arroyo checkpoint their file and Kafka
//! sources, and it is what keeps a checkpointed rule nearly as cheap as an
//! unchecked one: nothing is written per event.
//!
//! Ordering is what makes the position exact: a batch and the position it
//! brings the source to are published under one lock, and a barrier is
//! sent under the same lock, so every barrier lands in the graph between
//! two batches with the position of the batches before it.

use std::sync::Arc;

use actix::Recipient;
use tokio::sync::{mpsc, watch, Mutex};

use crate::graph::Msg;
use crate::row::{Message, Payload};

/// A barrier request: inject barrier `epoch` and answer with the source
/// position it was injected at.
pub(crate) type BarrierRequest = (u64, tokio::sync::oneshot::Sender<u64>);

/// The positioned feed of one rewindable source.
#[derive(Clone)]
pub(crate) struct Positioned {
    /// Where the source starts (the restored checkpoint's position).
    start: u64,
    /// The position of everything sent to the graph so far.
    sent: Arc<Mutex<u64>>,
}

impl Positioned {
    /// A feed whose source starts at `start`.
    pub(crate) fn new(start: u64) -> Positioned {
        Positioned { start, sent: Arc::new(Mutex::new(start)) }
    }

    /// The position the source resumes from.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Sends `payloads` into the graph and records that they bring the
    /// source to `position`. False once the graph is gone.
    pub(crate) async fn send(&self, to: &Recipient<Msg>, payloads: Vec<Payload>, position: u64) -> bool {
        let mut sent = self.sent.lock().await;
        if to.send(Msg { input: 0, message: Message::Payloads(payloads) }).await.is_err() {
            return false;
        }
        *sent = position;
        true
    }

    /// Injects the barriers asked for until the rule stops; each lands
    /// after the batches sent before it and answers with their position.
    pub(crate) async fn serve_barriers(
        self,
        to: Recipient<Msg>,
        mut barriers: mpsc::Receiver<BarrierRequest>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let (epoch, reply) = tokio::select! {
                r = barriers.recv() => match r { Some(r) => r, None => return },
                _ = stop.changed() => return,
            };
            let sent = self.sent.lock().await;
            if to.send(Msg { input: 0, message: Message::Barrier(epoch) }).await.is_err() {
                return;
            }
            let _ = reply.send(*sent);
        }
    }
}
