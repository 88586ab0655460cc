//! Where a source's read loop sends payloads: the rule's
//! [`SourceSender`] when running, a channel in tests.

use std::future::Future;

use weir_runtime::row::Payload;
use weir_runtime::rule::SourceSender;

/// The part of [`SourceSender`] a source loop uses.
pub(crate) trait Outlet: Send + 'static {
    /// Sends payloads; waits while the rule is busy. False once it stopped.
    fn send(&self, payloads: Vec<Payload>) -> impl Future<Output = bool> + Send;
    /// Sends payloads that bring a rewindable source to `position` (see
    /// [`SourceSender::send_at`]); other outlets ignore the position.
    fn send_at(&self, payloads: Vec<Payload>, position: u64) -> impl Future<Output = bool> + Send {
        let _ = position;
        self.send(payloads)
    }
    /// Where a rewindable source starts (see [`SourceSender::resume_position`]).
    fn resume_position(&self) -> u64 {
        0
    }
    /// The rule clock, ms.
    fn now_ms(&self) -> i64;
    /// Resolves when the rule stops.
    fn stopped(&mut self) -> impl Future<Output = ()> + Send;
}

impl Outlet for SourceSender {
    fn send(&self, payloads: Vec<Payload>) -> impl Future<Output = bool> + Send {
        SourceSender::send(self, payloads)
    }

    fn send_at(&self, payloads: Vec<Payload>, position: u64) -> impl Future<Output = bool> + Send {
        SourceSender::send_at(self, payloads, position)
    }

    fn resume_position(&self) -> u64 {
        SourceSender::resume_position(self)
    }

    fn now_ms(&self) -> i64 {
        SourceSender::now_ms(self)
    }

    fn stopped(&mut self) -> impl Future<Output = ()> + Send {
        SourceSender::stopped(self)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A channel outlet for source tests.

    use std::future::Future;

    use tokio::sync::{mpsc, watch};
    use weir_runtime::row::Payload;

    /// Sends every payload batch into a bounded channel (capacity 1 batch
    /// by default, so a test that does not read holds the source back).
    pub(crate) struct ChannelOutlet {
        pub(crate) tx: mpsc::Sender<Vec<Payload>>,
        pub(crate) stop: watch::Receiver<bool>,
        /// The position a rewindable source is told to resume from.
        pub(crate) resume: u64,
    }

    /// An outlet, its receiving end and its stop switch.
    pub(crate) fn channel(capacity: usize) -> (ChannelOutlet, mpsc::Receiver<Vec<Payload>>, watch::Sender<bool>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (stop_tx, stop) = watch::channel(false);
        (ChannelOutlet { tx, stop, resume: 0 }, rx, stop_tx)
    }

    impl super::Outlet for ChannelOutlet {
        fn send(&self, payloads: Vec<Payload>) -> impl Future<Output = bool> + Send {
            let tx = self.tx.clone();
            async move { tx.send(payloads).await.is_ok() }
        }

        fn resume_position(&self) -> u64 {
            self.resume
        }

        fn now_ms(&self) -> i64 {
            0
        }

        fn stopped(&mut self) -> impl Future<Output = ()> + Send {
            let mut stop = self.stop.clone();
            async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }
}
