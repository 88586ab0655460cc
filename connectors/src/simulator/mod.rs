//! The `simulator` source: rows made up in process, for demos, tests and
//! benchmarks.
//!
//! Two modes, by properties (from `etc/sources/simulator.yaml` sections and
//! the stream's `EXTRA`):
//!
//! * eKuiper's: `data` (a list of objects, sent in order, one per
//!   `interval`, default 1 s) and `loop` (default true; false ends the
//!   input after one pass).
//! * weir's device generator, when `fields` is set: `devices` (a count,
//!   named `devicePrefix` + 1..n, or a list of names; default 1) each with
//!   the `fields` (`name`, `base`, `amplitude`, `period` ms, `noise`,
//!   `precision`, optional `anomaly`), keyed by `deviceField` (`device`);
//!   `rate` ticks per second (one row per device per tick; default
//!   `1000 / interval`, `0` = as fast as the rule takes them); `anomaly`
//!   `{probability, magnitude}` for every field; `seed` (1); `count` ticks
//!   then the input ends (0 = endless); `labelAnomalies` adds the ground
//!   truth `anomaly` boolean; `timestampField` adds the arrival time (ms).
//!
//! Values depend only on the seed and the tick number (see [`generator`]);
//! pacing and timestamps come from the rule clock (`now_ms`).
//!
//! ```json
//! {"devices": 3, "devicePrefix": "furnace-", "rate": 10, "seed": 7,
//!  "fields": [{"name": "temperature", "base": 850, "amplitude": 15, "noise": 2,
//!              "anomaly": {"probability": 0.01, "magnitude": 120}}]}
//! ```

pub(crate) mod generator;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use weir_planner::StreamDef;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::{Map, Value};

use generator::{AnomalySpec, FieldSpec, Generator};

use crate::outlet::Outlet;
use crate::props::{invalid, Props};
use crate::{Environment, Result};

/// Rows per `send` at most when catching up or unthrottled.
const MAX_BATCH: usize = 1024;

enum Mode {
    Data { rows: Vec<Map>, interval_ms: u64, looping: bool },
    Generate { generator: Generator, rate: f64, count: u64, ts_field: Option<String> },
}

/// A simulated stream.
pub(crate) struct SimulatorSource {
    mode: Mode,
}

impl SimulatorSource {
    /// # Errors
    /// Properties of the wrong shape (named).
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<SimulatorSource> {
        let p = env.source_props("simulator", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        SimulatorSource::from_props(&p)
    }

    pub(crate) fn from_props(p: &Props) -> Result<SimulatorSource> {
        let interval_ms = p.duration_ms("interval")?;
        if let Some(fields) = p.get("fields") {
            let fields: Vec<FieldSpec> =
                serde_json::from_value(fields.clone()).map_err(|e| invalid("fields", e.to_string()))?;
            if fields.is_empty() {
                return Err(invalid("fields", "needs at least one field".into()));
            }
            let prefix = p.str("devicePrefix")?.unwrap_or("device-");
            let devices = match p.get("devices") {
                None => vec![format!("{prefix}1")],
                Some(serde_json::Value::Array(_)) => p.str_list("devices")?.unwrap_or_default(),
                Some(_) => match p.int("devices")? {
                    Some(n) if n > 0 => (1..=n).map(|i| format!("{prefix}{i}")).collect(),
                    _ => return Err(invalid("devices", "expects a positive count or a list of names".into())),
                },
            };
            let anomaly = match p.get("anomaly") {
                Some(a) => serde_json::from_value(a.clone()).map_err(|e| invalid("anomaly", e.to_string()))?,
                None => AnomalySpec::default(),
            };
            let rate = match p.get("rate") {
                Some(serde_json::Value::Number(n)) if n.as_f64().is_some_and(|r| r >= 0.0) => n.as_f64().unwrap_or(1.0),
                Some(v) => return Err(invalid("rate", format!("expects a non-negative number, got {v}"))),
                None => interval_ms.map_or(1.0, |i| if i == 0 { 0.0 } else { 1000.0 / i as f64 }),
            };
            let seed = p.int("seed")?.unwrap_or(1) as u64;
            let step_ms = if rate > 0.0 { 1000.0 / rate } else { 1.0 };
            let device_field = p.str("deviceField")?.unwrap_or("device").to_string();
            let mut generator = Generator::new(devices, device_field, fields, anomaly, step_ms, seed);
            generator.label_anomalies = p.bool("labelAnomalies")?.unwrap_or(false);
            let count = p.int("count")?.unwrap_or(0).max(0) as u64;
            let ts_field = p.str("timestampField")?.filter(|s| !s.is_empty()).map(str::to_string);
            return Ok(SimulatorSource { mode: Mode::Generate { generator, rate, count, ts_field } });
        }
        let rows = match p.get("data") {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|o| match Value::from_json(o.clone(), false) {
                    Value::Map(m) => Ok(Map::clone(&m)),
                    _ => Err(invalid("data", format!("expects a list of objects, got {o}"))),
                })
                .collect::<Result<_>>()?,
            Some(v) => return Err(invalid("data", format!("expects a list of objects, got {v}"))),
        };
        if rows.is_empty() {
            return Err(invalid("data", "the simulator needs `data` (a list of objects) or generator `fields`".into()));
        }
        let interval_ms = interval_ms.unwrap_or(1000);
        Ok(SimulatorSource { mode: Mode::Data { rows, interval_ms, looping: p.bool("loop")?.unwrap_or(true) } })
    }

    /// Sends until the data ends or `out` stops.
    pub(crate) async fn pump(self, mut out: impl Outlet) {
        match self.mode {
            Mode::Data { rows, interval_ms, looping } => {
                let start = out.now_ms();
                for i in 0u64.. {
                    if !looping && i as usize >= rows.len() {
                        return;
                    }
                    let deadline = start + (i * interval_ms) as i64;
                    if !wait_until(&mut out, deadline).await {
                        return;
                    }
                    let row = rows[i as usize % rows.len()].clone();
                    let p = Payload { data: PayloadData::Object(row), ts: out.now_ms(), meta: None };
                    if !out.send(vec![p]).await {
                        return;
                    }
                }
            }
            Mode::Generate { mut generator, rate, count, ts_field } => {
                let start = out.now_ms();
                let per_tick = generator.devices.len().max(1);
                let max_ticks = (MAX_BATCH / per_tick).max(1) as u64;
                let mut tick = 0u64;
                loop {
                    if count > 0 && tick >= count {
                        return;
                    }
                    let mut due = tick + max_ticks;
                    if rate > 0.0 {
                        let elapsed = (out.now_ms() - start).max(0) as f64;
                        due = due.min((elapsed * rate / 1000.0).floor() as u64 + 1);
                        if due <= tick {
                            let deadline = start + (tick as f64 * 1000.0 / rate).ceil() as i64;
                            if !wait_until(&mut out, deadline).await {
                                return;
                            }
                            continue;
                        }
                    }
                    if count > 0 {
                        due = due.min(count);
                    }
                    let ts = out.now_ms();
                    let mut batch = Vec::with_capacity(((due - tick) as usize) * per_tick);
                    for t in tick..due {
                        for mut row in generator.tick(t) {
                            if let Some(f) = &ts_field {
                                row.insert(f.clone(), Value::Int(ts));
                            }
                            batch.push(Payload { data: PayloadData::Object(row), ts, meta: None });
                        }
                    }
                    tick = due;
                    if !out.send(batch).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Waits until the rule clock reads `deadline` (ms); false if the rule
/// stopped first.
async fn wait_until(out: &mut impl Outlet, deadline: i64) -> bool {
    let wait = deadline - out.now_ms();
    if wait <= 0 {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => true,
        _ = out.stopped() => false,
    }
}

impl Source for SimulatorSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }
}
