//! Synthetic factory devices: a pure, seeded signal generator.
//!
//! Each field of each device follows
//! `base + amplitude * sin(2π (t / period) + phase) + noise * N(0, 1)`,
//! where `t` is the logical time of the tick (`tick * step_ms`, not the
//! wall clock) and `phase` differs per device. With probability
//! `anomaly.probability` a value is pushed by ±`anomaly.magnitude`. Output
//! depends only on the seed and the tick number, so runs are reproducible.

use weir_runtime::{Map, Value};

/// One generated field.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpec {
    /// Field name.
    pub(crate) name: String,
    /// Mean value.
    #[serde(default)]
    pub(crate) base: f64,
    /// Amplitude of the sine component.
    #[serde(default)]
    pub(crate) amplitude: f64,
    /// Period of the sine component, ms (default 60 s).
    #[serde(default = "default_period")]
    pub(crate) period: f64,
    /// Standard deviation of Gaussian noise.
    #[serde(default)]
    pub(crate) noise: f64,
    /// Decimal places kept (default 2); negative keeps all.
    #[serde(default = "default_precision")]
    pub(crate) precision: i32,
    /// Per-field anomaly injection (overrides the device-wide one).
    #[serde(default)]
    pub(crate) anomaly: Option<AnomalySpec>,
}

fn default_period() -> f64 {
    60_000.0
}

fn default_precision() -> i32 {
    2
}

/// Occasional faults.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnomalySpec {
    /// Chance per value, 0..=1.
    #[serde(default)]
    pub(crate) probability: f64,
    /// Offset added (or subtracted) when an anomaly happens.
    #[serde(default)]
    pub(crate) magnitude: f64,
}

/// SplitMix64: small, fast and good enough for synthetic data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Generates rows for a set of devices.
#[derive(Debug, Clone)]
pub(crate) struct Generator {
    pub(crate) devices: Vec<String>,
    pub(crate) device_field: String,
    pub(crate) fields: Vec<FieldSpec>,
    pub(crate) anomaly: AnomalySpec,
    /// Add `"anomaly": true|false` to each row (ground truth for tests).
    pub(crate) label_anomalies: bool,
    /// Logical ms between ticks.
    pub(crate) step_ms: f64,
    rng: Rng,
}

impl Generator {
    pub(crate) fn new(
        devices: Vec<String>,
        device_field: String,
        fields: Vec<FieldSpec>,
        anomaly: AnomalySpec,
        step_ms: f64,
        seed: u64,
    ) -> Generator {
        Generator { devices, device_field, fields, anomaly, label_anomalies: false, step_ms, rng: Rng::new(seed) }
    }

    /// The rows of tick `tick`: one per device, in device order. Ticks must
    /// be generated in order for the output to be reproducible.
    pub(crate) fn tick(&mut self, tick: u64) -> Vec<Map> {
        let t = tick as f64 * self.step_ms;
        let mut rows = Vec::with_capacity(self.devices.len());
        for (d, name) in self.devices.iter().enumerate() {
            let mut row = Map::new();
            row.insert(self.device_field.clone(), Value::str(name));
            let mut any_anomaly = false;
            for f in &self.fields {
                // Devices are spread over the period so they do not move in step.
                let phase = std::f64::consts::TAU * d as f64 / self.devices.len().max(1) as f64;
                let period = if f.period > 0.0 { f.period } else { default_period() };
                let mut v = f.base + f.amplitude * (std::f64::consts::TAU * t / period + phase).sin();
                if f.noise != 0.0 {
                    v += f.noise * self.rng.gaussian();
                }
                let a = f.anomaly.unwrap_or(self.anomaly);
                if a.probability > 0.0 && self.rng.uniform() < a.probability {
                    any_anomaly = true;
                    v += if self.rng.uniform() < 0.5 { -a.magnitude } else { a.magnitude };
                }
                if f.precision >= 0 {
                    let m = 10f64.powi(f.precision);
                    v = (v * m).round() / m;
                }
                row.insert(f.name.clone(), Value::Float(v));
            }
            if self.label_anomalies {
                row.insert("anomaly".into(), Value::Bool(any_anomaly));
            }
            rows.push(row);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn furnace(seed: u64) -> Generator {
        let fields = vec![
            FieldSpec {
                name: "temperature".into(),
                base: 850.0,
                amplitude: 20.0,
                period: 60_000.0,
                noise: 1.0,
                precision: 2,
                anomaly: None,
            },
            FieldSpec {
                name: "pressure".into(),
                base: 1.2,
                amplitude: 0.0,
                period: 1.0,
                noise: 0.0,
                precision: 3,
                anomaly: None,
            },
        ];
        Generator::new(
            vec!["f1".into(), "f2".into()],
            "device".into(),
            fields,
            AnomalySpec { probability: 0.05, magnitude: 200.0 },
            1000.0,
            seed,
        )
    }

    #[test]
    fn same_seed_same_rows() {
        let (mut a, mut b, mut c) = (furnace(7), furnace(7), furnace(8));
        let ra: Vec<_> = (0..100).flat_map(|t| a.tick(t)).collect();
        let rb: Vec<_> = (0..100).flat_map(|t| b.tick(t)).collect();
        let rc: Vec<_> = (0..100).flat_map(|t| c.tick(t)).collect();
        assert_eq!(ra, rb);
        assert_ne!(ra, rc);
        assert_eq!(ra.len(), 200);
        assert_eq!(ra[1]["device"], Value::str("f2"));
        assert_eq!(ra[0]["pressure"], Value::Float(1.2));
    }

    #[test]
    fn anomalies_are_injected_at_about_the_given_rate() {
        let mut g = furnace(1);
        g.label_anomalies = true;
        let rows: Vec<_> = (0..2000).flat_map(|t| g.tick(t)).collect();
        let flagged = rows.iter().filter(|r| r["anomaly"] == Value::Bool(true)).count();
        // 2 fields x 5% per row: ~9.75% of 4000 rows.
        assert!((250..550).contains(&flagged), "{flagged}");
        let far = rows.iter().filter(|r| (r["temperature"].as_f64().unwrap() - 850.0).abs() > 100.0).count();
        assert!(far > 100 && far < flagged, "{far}");
    }
}
