//! [`TransformSink`]: the runtime's [`Sink`] around a connector, with the
//! `bufferLength` queue between them.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weir_runtime::connector::{BoxFuture, Confirmation, Sink, SinkError};
use weir_runtime::Value;

use super::{Outgoing, SinkOptions, Transform};

/// What a sink connector does: publish one message. Called in order, one
/// at a time; a connector retries recoverable failures itself (the REST
/// sink's backoff, MQTT's reconnect) and returns an error only when it
/// gives the message up.
pub(crate) trait SinkConnector: Send + 'static {
    /// Publishes one message.
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Marks every message published so far; the confirmation resolves
    /// once they are delivered as far as the connector can tell (see
    /// [`Sink::flush`]); by default at once (`publish` returned).
    fn flush(&mut self) -> BoxFuture<'_, Confirmation> {
        Box::pin(std::future::ready(Box::pin(std::future::ready(Ok(()))) as Confirmation))
    }

    /// The rule stopped and every queued message was published: release
    /// connections, flush files.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What goes through the queue to the publishing task: a message, or a
/// flush that is answered once everything before it is delivered.
enum Item {
    Message(Outgoing),
    Flush(tokio::sync::oneshot::Sender<Result<(), SinkError>>),
}

/// A connector behind the common sink properties.
///
/// Messages go through a bounded queue of `bufferLength` to a task that
/// publishes them in order, so a slow connector does not stall the rule
/// until the queue is full, and a full queue makes [`Sink::emit`] wait.
/// A publish failure is logged at once and returned by the next `emit`
/// (or counted at `close`), so it reaches the rule's exception metrics.
pub(crate) struct TransformSink<C: SinkConnector> {
    transform: Transform,
    /// The connector until the publishing task starts (on first emit, in
    /// the rule's runtime).
    idle: Option<C>,
    queue: Option<mpsc::Sender<Item>>,
    task: Option<JoinHandle<()>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl<C: SinkConnector> TransformSink<C> {
    pub(crate) fn new(opts: SinkOptions, connector: C) -> TransformSink<C> {
        TransformSink {
            transform: Transform::new(opts),
            idle: Some(connector),
            queue: None,
            task: None,
            failures: Arc::default(),
        }
    }

    fn start(&mut self) -> Option<mpsc::Sender<Item>> {
        if let Some(mut connector) = self.idle.take() {
            let (tx, mut rx) = mpsc::channel::<Item>(self.transform.options().buffer_length);
            let failures = self.failures.clone();
            self.task = Some(tokio::spawn(async move {
                // Whether a publish failed since the last flush: that flush
                // then fails (the message was given up, not delivered).
                let mut failed = false;
                while let Some(item) = rx.recv().await {
                    match item {
                        Item::Message(msg) => {
                            if let Err(e) = connector.publish(&msg).await {
                                tracing::warn!("sink publish failed: {e}");
                                failures.lock().unwrap_or_else(|p| p.into_inner()).push(e.0);
                                failed = true;
                            }
                        }
                        Item::Flush(done) => {
                            if std::mem::take(&mut failed) {
                                let _ = done.send(Err(SinkError("a message was not published".into())));
                                continue;
                            }
                            // Answered when delivered; publishing goes on.
                            let confirmation = connector.flush().await;
                            tokio::spawn(async move {
                                let _ = done.send(confirmation.await);
                            });
                        }
                    }
                }
                connector.close().await;
            }));
            self.queue = Some(tx);
        }
        self.queue.clone()
    }

    /// Queues a flush behind the messages queued so far ([`Sink::flush`]).
    async fn mark(&mut self) -> Confirmation {
        let stopped = || SinkError("sink connector stopped".into());
        // Nothing was ever queued: nothing to deliver.
        let Some(queue) = self.queue.clone() else {
            return Box::pin(async { Ok(()) });
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        if queue.send(Item::Flush(done)).await.is_err() {
            return Box::pin(async move { Err(stopped()) });
        }
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(stopped())) })
    }

    fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<C: SinkConnector> TransformSink<C> {
    /// The messages of an emission with id `id`: each carries its id
    /// (`<id>/<i>` for row `i` with `sendSingle`), also in the rows'
    /// `idField` when set.
    fn apply_with_id(&mut self, rows: &[Value], id: &str) -> Vec<Result<Outgoing, String>> {
        let opts = self.transform.options();
        let (single, field) = (opts.send_single, opts.id_field.clone());
        let with_field = |row: &Value, id: &str| match (&field, row.as_map()) {
            (Some(f), Some(m)) => {
                let mut m = m.clone();
                m.insert(f.clone(), Value::str(id));
                Value::map(m)
            }
            _ => row.clone(),
        };
        let tag = |messages: Vec<Result<Outgoing, String>>, id: &str| {
            messages.into_iter().map(|m| m.map(|m| Outgoing { id: Some(id.to_string()), ..m })).collect::<Vec<_>>()
        };
        if single {
            let mut out = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let row_id = format!("{id}/{i}");
                let row = with_field(row, &row_id);
                out.extend(tag(self.transform.apply(std::slice::from_ref(&row)), &row_id));
            }
            out
        } else {
            let rows: Vec<Value> = rows.iter().map(|r| with_field(r, id)).collect();
            tag(self.transform.apply(&rows), id)
        }
    }

    /// Queues the messages of one emission; returns the failures since the
    /// last call.
    async fn enqueue(&mut self, messages: Vec<Result<Outgoing, String>>) -> Result<(), SinkError> {
        let mut errors = self.take_failures();
        if !messages.is_empty() {
            let Some(queue) = self.start() else {
                return Err(SinkError("sink is closed".into()));
            };
            for m in messages {
                match m {
                    Ok(m) => {
                        if queue.send(Item::Message(m)).await.is_err() {
                            errors.push("sink connector stopped".into());
                            break;
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SinkError(errors.join("; ")))
        }
    }
}

impl<C: SinkConnector> Sink for TransformSink<C> {
    fn emit_with_id<'a>(&'a mut self, rows: &'a [Value], id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let messages = self.apply_with_id(rows, id);
            self.enqueue(messages).await
        })
    }

    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let messages = self.transform.apply(rows);
            self.enqueue(messages).await
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Confirmation> {
        Box::pin(self.mark())
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.queue = None;
            if let Some(task) = self.task.take() {
                let _ = task.await;
            } else if let Some(mut c) = self.idle.take() {
                c.close().await;
            }
            for e in self.take_failures() {
                tracing::warn!("sink failure at close: {e}");
            }
        })
    }
}
