//! The simulated furnace line: a few gas-fired furnaces publishing their
//! readings to the embedded broker, as a Neuron gateway would.
//!
//! Each furnace has a gas-flow set point (changed by the stand-in Neuron when
//! weir's control rule writes one), and its temperature follows
//! `850 °C + 25 °C per m³/h above 12 m³/h + a slow wander + fault heat` with
//! a one-second lag, so the control rule's writes visibly pull an overheating
//! furnace back. Faults: the first overheat is scheduled (furnace 2, half a
//! second in, so a short run shows every rule working), later ones start at
//! random; now and then a temperature sensor reads `-999` (a dropout the
//! device-twin rule cleans out and the alarm rule reports). Until `start`
//! is set (every rule has seen a reading) the line runs steady: no fault
//! is missed by a rule that is still connecting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rumqttd::local::LinkTx;
use serde_json::json;

/// Nominal gas flow, m³/h.
pub(super) const NOMINAL_GAS: f64 = 12.0;
/// Temperature the line is run at, °C.
pub(super) const NOMINAL_TEMP: f64 = 850.0;
/// °C per m³/h of gas flow.
const GAS_GAIN: f64 = 25.0;
/// Time constant of the temperature, s.
const TAU_S: f64 = 1.0;
/// Chance per reading of a sensor dropout.
const DROPOUT: f64 = 0.004;
/// Chance per furnace and second that an overheat starts.
const OVERHEAT: f64 = 0.02;

/// Gas-flow set points by furnace name, shared with the stand-in Neuron.
pub(super) type SetPoints = Arc<Mutex<HashMap<String, f64>>>;

/// The topic a furnace publishes on.
pub(super) fn topic(furnace: &str) -> String {
    format!("line1/{furnace}/telemetry")
}

/// `furnace-1`, `furnace-2`, ...
pub(super) fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("furnace-{i}")).collect()
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.next().max(f64::MIN_POSITIVE), self.next());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

struct Furnace {
    name: String,
    phase: f64,
    temp: f64,
    /// A fault: extra heat, °C, from and until (seconds since the start).
    fault: Option<(f64, f64, f64)>,
}

/// Publishes `rate` readings per second per furnace (counted in
/// `published`) until the task is dropped. Returns only if the broker link fails.
pub(super) async fn run(
    mut link: LinkTx,
    furnaces: Vec<String>,
    rate: f64,
    set_points: SetPoints,
    start: Arc<OnceLock<Instant>>,
    published: Arc<AtomicU64>,
) {
    let n = furnaces.len().max(1) as f64;
    let mut rng = Rng(0x5eed_f00d);
    let mut line: Vec<Furnace> = furnaces
        .into_iter()
        .enumerate()
        .map(|(i, name)| Furnace { name, phase: std::f64::consts::TAU * i as f64 / n, temp: NOMINAL_TEMP, fault: None })
        .collect();
    if let Some(f) = line.get_mut(1) {
        f.fault = Some((120.0, 0.5, 9.5));
    }
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let dt = period.as_secs_f64();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let t = start.get().map(|s| s.elapsed().as_secs_f64());
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        for f in &mut line {
            step(f, dt, t, &set_points, &mut rng);
            let sp = set_point(&set_points, &f.name);
            let gas = round(sp + 0.08 * rng.gaussian(), 2);
            let pressure = round(1.2 + 0.002 * (f.temp - NOMINAL_TEMP) + 0.004 * rng.gaussian(), 3);
            let temperature = if rng.next() < DROPOUT { -999.0 } else { round(f.temp + 1.2 * rng.gaussian(), 1) };
            // Flue-gas oxygen, %: what the advisor model reads besides
            // temperature and pressure.
            let o2 = round(3.0 + 0.25 * rng.gaussian(), 2);
            let payload = json!({
                "furnace": f.name, "temperature": temperature, "pressure": pressure, "o2": o2, "gas_flow": gas,
                "ts": now_ms,
            });
            if link.publish(topic(&f.name), payload.to_string()).is_err() {
                return;
            }
            published.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn set_point(set_points: &SetPoints, furnace: &str) -> f64 {
    set_points.lock().unwrap_or_else(|e| e.into_inner()).get(furnace).copied().unwrap_or(NOMINAL_GAS)
}

/// Advances one furnace by `dt` seconds; `t` is the time since the start,
/// `None` before it.
fn step(f: &mut Furnace, dt: f64, t: Option<f64>, set_points: &SetPoints, rng: &mut Rng) {
    let started = t.is_some();
    let t = t.unwrap_or(0.0);
    match f.fault {
        Some((_, _, until)) if t >= until => f.fault = None,
        None if started && rng.next() < OVERHEAT * dt => {
            f.fault = Some((60.0 + 60.0 * rng.next(), t, t + 6.0 + 6.0 * rng.next()));
        }
        _ => {}
    }
    let heat = match f.fault {
        Some((h, from, _)) if started && t >= from => h,
        _ => 0.0,
    };
    let wander = 10.0 * (std::f64::consts::TAU * t / 40.0 + f.phase).sin();
    let target = NOMINAL_TEMP + GAS_GAIN * (set_point(set_points, &f.name) - NOMINAL_GAS) + wander + heat;
    f.temp += (target - f.temp) * (1.0 - (-dt / TAU_S).exp());
}

fn round(v: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (v * m).round() / m
}
