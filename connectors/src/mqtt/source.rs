//! The `mqtt` source: a stream's subscription on a pooled connection.

use std::future::Future;
use std::pin::Pin;

use weir_planner::StreamDef;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::{Map, Value};

use super::pool::{Delivery, Pool};
use super::{client, qos, topic, ConnConfig, Share, DEFAULT_SERVER};
use crate::outlet::Outlet;
use crate::props::{invalid, Props};
use crate::{Environment, Result};

/// Payloads handed to the rule in one `send` at most: what queued up while
/// the previous batch was being processed.
const MAX_BATCH: usize = 512;

/// Turns a message into a payload (stamped `ts`); `None` skips it.
pub(crate) type Decode = fn(&Delivery, i64) -> Option<Payload>;

/// A stream reading MQTT topics.
pub(crate) struct MqttSource {
    pool: Pool,
    conn: ConnConfig,
    filters: Vec<String>,
    qos: u8,
    capacity: usize,
    decode: Decode,
}

/// What the mqtt source reads from the stream definition and its conf.
pub(crate) struct SourceConfig {
    pub(crate) conn: ConnConfig,
    pub(crate) filters: Vec<String>,
    pub(crate) qos: u8,
    pub(crate) capacity: usize,
}

impl SourceConfig {
    /// Reads `DATASOURCE` (or `default_topics` when it is empty) and the
    /// props of conf type `kind` (sections, `CONF_KEY`, `EXTRA`).
    ///
    /// # Errors
    /// Invalid filters or properties.
    pub(crate) fn new(def: &StreamDef, env: &Environment, kind: &str, default_topics: Option<&str>) -> Result<Self> {
        let props: Props = env.source_props(kind, def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let datasource = def.options.datasource.as_deref().filter(|d| !d.trim().is_empty()).or(default_topics);
        let Some(datasource) = datasource else {
            return Err(invalid("DATASOURCE", "an mqtt stream needs topic filters".into()));
        };
        let filters = topic::parse_filters(datasource).map_err(|m| invalid("DATASOURCE", m))?;
        let conn = ConnConfig::from_props(&props, Some(DEFAULT_SERVER), &env.data_dir)?;
        client::check(&conn).map_err(|m| invalid("server", m))?;
        let capacity = match props.int("bufferLength")? {
            None => 1024,
            Some(n) if n > 0 => n as usize,
            Some(n) => return Err(invalid("bufferLength", format!("expects a positive number, got {n}"))),
        };
        Ok(SourceConfig { conn, filters, qos: qos(&props, "qos", 1)?, capacity })
    }

    /// Makes this the source of shard `index` of rule `rule_id`: its
    /// filters become shared subscriptions of the rule's group, on a
    /// connection of the shard's own. A fixed `clientid` becomes
    /// `<clientid>-s<index>`, so the shard's session (and what the broker
    /// queued in it) is the one a standby taking the shard over resumes;
    /// generated ids stay generated. (Two sharded rules reading one
    /// stream with a `clientid` would both use `<clientid>-s<index>` and
    /// take the connection from each other: give each its own `clientid`.)
    pub(crate) fn share(&mut self, rule_id: &str, index: u32) {
        if let Some(id) = &mut self.conn.client_id {
            id.push_str(&format!("-s{index}"));
        }
        self.conn.share = Some(Share::new(rule_id, index));
    }
}

impl MqttSource {
    /// A source for `config` on the environment's pool, decoding messages
    /// with `decode`.
    pub(crate) fn new(config: SourceConfig, env: &Environment, decode: Decode) -> MqttSource {
        let SourceConfig { conn, filters, qos, capacity } = config;
        MqttSource { pool: env.mqtt().clone(), conn, filters, qos, capacity, decode }
    }

    /// Reads until `out` stops: batches what is queued, sends it, then acks.
    pub(crate) async fn pump(self, mut out: impl Outlet) {
        let mut sub = match self.pool.subscribe(&self.conn, &self.filters, self.qos, self.capacity).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "mqtt source cannot subscribe");
                return;
            }
        };
        loop {
            let first = tokio::select! {
                d = sub.recv() => match d { Some(d) => d, None => return },
                _ = out.stopped() => return,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match sub.try_recv() {
                    Some(d) => batch.push(d),
                    None => break,
                }
            }
            let ts = out.now_ms();
            let payloads: Vec<Payload> = batch.iter().filter_map(|d| (self.decode)(d, ts)).collect();
            if !payloads.is_empty() && !out.send(payloads).await {
                return;
            }
            for d in batch {
                d.ack();
            }
        }
    }
}

impl Source for MqttSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}

/// Ends the broker-side session of `conn`, which has a fixed client id:
/// connects with a clean session and disconnects. The broker then drops
/// the session's subscriptions and what it queued there; for a shard,
/// its share group stops dealing it messages. A no-op for generated ids
/// (their sessions end with their connections). Must not run while a
/// source uses that client id: the broker would disconnect it.
///
/// # Errors
/// The broker cannot be reached or refuses the connection within `limit`.
pub(crate) async fn end_session(conn: &ConnConfig, limit: std::time::Duration) -> Result<()> {
    if conn.client_id.is_none() {
        return Ok(());
    }
    let conn = ConnConfig { clean_session: true, ..conn.clone() };
    let (client, mut event_loop) = client::connect(&conn, false).map_err(crate::Error::Io)?;
    let fail = |what: String| crate::Error::Io(format!("ending mqtt session of {:?}: {what}", conn.client_id));
    let connected = tokio::time::timeout(limit, async {
        loop {
            match event_loop.poll().await {
                Ok(client::Event::Connected { .. }) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match connected {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(e)),
        Err(_) => return Err(fail(format!("no CONNACK within {limit:?}"))),
    }
    client.try_disconnect();
    // Until the DISCONNECT is out and the broker closed the connection.
    let _ = tokio::time::timeout(limit, async { while event_loop.poll().await.is_ok() {} }).await;
    Ok(())
}

/// The metadata `meta()` reads: `topic`, `qos`, `messageId`.
pub(crate) fn meta(d: &Delivery) -> Map {
    let mut m = Map::new();
    m.insert("topic".into(), Value::str(&d.topic));
    m.insert("qos".into(), Value::Int(i64::from(d.qos)));
    m.insert("messageId".into(), Value::Int(i64::from(d.message_id)));
    if d.dup {
        // Lets the ingest log drop a redelivery it already holds.
        m.insert(weir_runtime::row::REDELIVERED.into(), Value::Bool(true));
    }
    m
}

/// The plain mqtt decoding: the bytes, for the stream's FORMAT.
pub(crate) fn decode_bytes(d: &Delivery, ts: i64) -> Option<Payload> {
    Some(Payload { data: PayloadData::Bytes(d.payload.as_ref().clone()), ts, meta: Some(meta(d)) })
}
