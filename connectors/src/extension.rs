//! Sources and sinks from outside this crate: the node's plugins (eKuiper
//! portable plugins) provide connector types that are not built in.
//!
//! The node implements [`ExtensionConnectors`] (in `weir-plugins`) and
//! hands it to the [`Environment`] once with
//! [`Environment::set_extensions`]. [`crate::source`] and [`crate::sink`]
//! consult it for a `TYPE` or sink kind they do not know, so dependencies
//! keep pointing one way: plugins know connectors, not the reverse.
//!
//! A plugin sink publishes encoded payload bytes ([`PayloadSink`]);
//! [`payload_sink`] puts it behind the common sink layer, so `format`,
//! `sendSingle`, `dataTemplate`, `fields` and `bufferLength` work as for
//! the built-in sinks.

use weir_planner::StreamDef;
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::rule::Source;

use crate::props::Props;
use crate::transform::{self, Outgoing, SinkConnector, TransformSink};
use crate::{Environment, Result, SinkContext};

/// Connector types provided by the node's extensions.
///
/// Both methods answer `None` for a type the extension does not provide
/// (the caller then reports an unknown type), and `Some(Err(..))` for one
/// it provides but cannot build (invalid properties). Building must not
/// block or do I/O: rules are validated by building their sinks and
/// dropping them. Connect when the source runs or the sink first emits.
pub trait ExtensionConnectors: std::fmt::Debug + Send + Sync {
    /// The source of stream `def`, whose `TYPE` is `kind` (lower case).
    fn source(&self, kind: &str, def: &StreamDef, env: &Environment) -> Option<Result<Box<dyn Source>>> {
        let _ = (kind, def, env);
        None
    }

    /// The sink of one rule action `{"<kind>": props}` (`kind` lower
    /// case).
    fn sink(
        &self,
        kind: &str,
        props: &serde_json::Value,
        ctx: &SinkContext,
        env: &Environment,
    ) -> Option<Result<Box<dyn Sink>>> {
        let _ = (kind, props, ctx, env);
        None
    }
}

/// A sink that publishes encoded messages: the payload bytes after the
/// common sink properties (a JSON array of the rows unless `sendSingle`).
///
/// Called in order, one message at a time, from the sink's own task. A
/// failure is the message's: it is counted as the rule's exception and
/// the next message is tried again.
pub trait PayloadSink: Send + 'static {
    /// Publishes one message.
    fn publish<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, std::result::Result<(), SinkError>>;

    /// The rule stopped and every queued message was published.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Wraps `sink` in the common sink layer configured by the action's
/// `props` (`format`, `sendSingle`, `dataTemplate`, `bufferLength`...).
///
/// # Errors
/// A common property is invalid (named in the error).
pub fn payload_sink(props: &serde_json::Value, sink: impl PayloadSink) -> Result<Box<dyn Sink>> {
    let opts = transform::SinkOptions::from_props(&Props::new(props))?;
    Ok(Box::new(TransformSink::new(opts, Payloads(sink))))
}

/// Adapts a [`PayloadSink`] to the transform layer's connector trait.
struct Payloads<S>(S);

impl<S: PayloadSink> SinkConnector for Payloads<S> {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        self.0.publish(&msg.bytes)
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use weir_runtime::value::Map;
    use weir_runtime::Value;

    use super::*;

    #[derive(Debug, Default)]
    struct Fake(Arc<Mutex<Vec<Vec<u8>>>>);

    struct Collect(Arc<Mutex<Vec<Vec<u8>>>>);

    impl PayloadSink for Collect {
        fn publish<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
            self.0.lock().unwrap().push(payload.to_vec());
            Box::pin(async { Ok(()) })
        }
    }

    impl ExtensionConnectors for Fake {
        fn sink(
            &self,
            kind: &str,
            props: &serde_json::Value,
            _ctx: &SinkContext,
            _env: &Environment,
        ) -> Option<Result<Box<dyn Sink>>> {
            (kind == "fake").then(|| payload_sink(props, Collect(self.0.clone())))
        }
    }

    #[tokio::test]
    async fn unknown_kinds_go_to_the_extensions_through_the_sink_layer() {
        let env = Environment::new("/tmp");
        let ctx = SinkContext { rule_id: "r".into(), index: 0 };
        let props = serde_json::json!({"sendSingle": true});
        assert!(crate::sink("fake", &props, &ctx, &env).is_err());
        let fake = Arc::new(Fake::default());
        assert!(env.set_extensions(fake.clone()).is_ok());
        assert!(env.set_extensions(Arc::new(Fake::default())).is_err(), "set once");
        let mut sink = crate::sink("FAKE", &props, &ctx, &env).unwrap();
        let mut row = Map::new();
        row.insert("a".into(), Value::Int(1));
        sink.emit(&[Value::map(row.clone()), Value::map(row)]).await.unwrap();
        sink.close().await;
        let seen = fake.0.lock().unwrap().clone();
        assert_eq!(seen, vec![br#"{"a":1}"#.to_vec(), br#"{"a":1}"#.to_vec()]);
        assert!(matches!(crate::sink("other", &props, &ctx, &env), Err(crate::Error::UnknownType { .. })));
    }
}
