//! End-to-end throughput (issue #3 item 5): W1 (tumbling-window GROUP BY,
//! event time) and W2 (filter + arithmetic), schema'd and schemaless, fed
//! from a generated NDJSON file through the real rule graph into a counting
//! sink. Same code as `weir bench` (see `src/bench.rs`), at a smaller N.
//!
//! W1 also runs with checkpoints (`qos: 2`, `checkpointInterval: 1000`),
//! its input rewindable (a file source: checkpoints record its position)
//! and through the durable ingest log (a source that cannot rewind, such
//! as MQTT), with the overhead against `qos: 0` of the same run (issue #5
//! item 6: target <= 10%).
//!
//! `cargo bench --bench throughput` runs 1,000,000 events per case;
//! `cargo bench --bench throughput -- --test` (CI) runs 20,000 to check
//! that it still works. Figures for the full 10M runs are in
//! `benches/README.md`.

#[allow(dead_code)]
#[path = "../src/bench.rs"]
mod bench;

// The allocator the `weir` binary runs with, so the figures are its.
#[path = "../src/alloc.rs"]
mod alloc;

use bench::{BenchArgs, Input, Workload};

/// Events per CPU-second the issue asks for.
fn target(w: Workload) -> f64 {
    match w {
        Workload::W1 => 1_000_000.0,
        _ => 1_500_000.0,
    }
}

fn main() {
    let test = std::env::args().any(|a| a == "--test");
    let events = if test { 20_000 } else { 1_000_000 };
    let data = std::env::temp_dir().join(format!("weir-throughput-{}.ndjson", std::process::id()));
    let mut results = Vec::new();
    let cases = [
        (Workload::W1, false, 0, false),
        (Workload::W1, true, 0, false),
        (Workload::W2, false, 0, false),
        (Workload::W2, true, 0, false),
        (Workload::W1, false, 2, false),
        (Workload::W1, false, 2, true),
    ];
    for (workload, schemaless, qos, ingest_log) in cases {
        let args = BenchArgs {
            workload,
            events,
            schemaless,
            input: Input::File,
            data: Some(data.clone()),
            batch: 1024,
            seed: 42,
            qos,
            ingest_log,
            checkpoint_interval: 1000,
        };
        let r = bench::run(&args).unwrap_or_else(|e| panic!("{workload:?}: {e:#}"));
        assert_eq!(r.events, events, "every event fed");
        if workload == Workload::W1 {
            // Every 10 s window but the last (open) one fires: 10,000
            // events each at +1 ms per event.
            assert_eq!(r.c_sum as u64, (events - 1) / 10_000 * 10_000);
        } else {
            assert!(r.rows > 0 && r.rows < events, "the filter passes some rows");
        }
        println!("{r}");
        results.push((workload, schemaless, qos, ingest_log, r));
    }
    let _ = std::fs::remove_file(&data);
    println!("\nsummary (events per CPU-second; ratio to the target, and to W1 schema'd of this run)");
    let base = results[0].4.events_per_cpu_sec();
    for (w, schemaless, qos, ingest_log, r) in &results {
        let eps = r.events_per_cpu_sec();
        let checkpoints = match (qos, ingest_log) {
            (0, _) => String::new(),
            (_, false) => {
                format!(" qos {qos} rewindable: CPU overhead {:+.1}% (target <= +10%)", (base / eps - 1.0) * 100.0)
            }
            (_, true) => format!(" qos {qos} ingest log: CPU overhead {:+.1}%", (base / eps - 1.0) * 100.0),
        };
        println!(
            "  {w:?} {:<10} {eps:>10.0}  x{:.2} of target  x{:.2} of W1  peak RSS {:.1} MiB{checkpoints}",
            if *schemaless { "schemaless" } else { "schema" },
            eps / target(*w),
            eps / base,
            r.peak_rss_kib as f64 / 1024.0
        );
    }
}
