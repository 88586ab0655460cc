//! What a rule's sources send into: [`SourceSender`], and the [`Source`]
//! trait connectors implement.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::Recipient;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::feed::{LogFeed, Positioned};
use crate::graph::Msg;
use crate::row::{Message, Payload};

/// Where a source sends what it reads. Sending waits while the rule is
/// busy (backpressure): a source should stop reading (an MQTT source stops
/// acknowledging) until `send` returns.
#[derive(Clone)]
pub struct SourceSender {
    pub(super) to: Recipient<Msg>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) feed: Feed,
}

/// How a source's payloads reach the graph (see the `feed` module).
#[derive(Clone)]
pub(super) enum Feed {
    /// No checkpoints (`qos` 0): straight in.
    Direct,
    /// Checkpoints, a source that cannot rewind: through the ingest log.
    Logged(LogFeed),
    /// Checkpoints, a rewindable source: straight in with its positions.
    Positioned(Positioned),
}

impl SourceSender {
    /// Sends payloads into the rule. Returns false once the rule stops, or
    /// when they could not be made durable: the source must then not
    /// acknowledge them. With `qos` 1 or 2 it returns once they are in the
    /// durable ingest log (a redelivery the log already holds is dropped).
    pub async fn send(&self, payloads: Vec<Payload>) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        match &self.feed {
            Feed::Direct => self.to.send(Msg { input: 0, message: Message::Payloads(payloads) }).await.is_ok(),
            Feed::Logged(log) => log.send(&self.to, payloads, &self.stop).await,
            // A rewindable source sends with its position (send_at); this
            // leaves the position where it was.
            Feed::Positioned(p) => p.send(&self.to, payloads, None).await,
        }
    }

    /// Where a rewindable source starts reading: the position of the
    /// restored checkpoint, 0 on a fresh start or without checkpoints.
    pub fn resume_position(&self) -> u64 {
        match &self.feed {
            Feed::Positioned(p) => p.start(),
            _ => 0,
        }
    }

    /// What a rewindable source sends with: `payloads` bring it to
    /// `position` (the position to resume from after them). Returns false
    /// once the rule stops. Other sources' positions are ignored.
    pub async fn send_at(&self, payloads: Vec<Payload>, position: u64) -> bool {
        match &self.feed {
            Feed::Positioned(p) if !*self.stop.borrow() => p.send(&self.to, payloads, Some(position)).await,
            Feed::Positioned(_) => false,
            _ => self.send(payloads).await,
        }
    }

    /// The rule clock's time, ms: the arrival time to stamp payloads with.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Resolves when the rule stops.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A source of payloads for one stream or table of a rule.
pub trait Source: Send + 'static {
    /// Reads until the input ends or `out.stopped()` resolves, sending what
    /// it reads with `out.send`.
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Whether the source can re-read its input from a position: it then
    /// starts at [`SourceSender::resume_position`] and sends with
    /// [`SourceSender::send_at`], and with `qos` 1 or 2 it is checkpointed
    /// by position instead of through the ingest log.
    fn rewindable(&self) -> bool {
        false
    }
}
