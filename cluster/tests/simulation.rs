//! Deterministic simulation of the raft metadata and placement logic.
//!
//! Real [`RaftNode`]s (the same code as production) run over a fake network
//! (delays, drops, reordering, partitions) and a virtual clock (ticks), with
//! storage in `MemoryBackend`s that survive simulated crashes. Each schedule
//! is a seeded random mix of client proposals and failures: crashes and
//! restarts, leader kills, partitions, joins, leaves and leadership
//! transfers. Safety invariants are checked after every step; after the
//! chaos the network heals, every member restarts, and the cluster must
//! converge.
//!
//! `WEIR_SIM_SCHEDULES=n` sets the number of schedules (default 200);
//! `WEIR_SIM_SEED=s` runs only schedule `s` (the failure message names it).

mod sim;

use sim::{Sim, SimConfig};

/// `RUST_LOG=weir_cluster=debug` shows the nodes' logs for a failing seed.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn schedules() -> Vec<u64> {
    if let Some(seed) = std::env::var("WEIR_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("WEIR_SIM_SCHEDULES").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    (0..n).collect()
}

#[test]
fn random_failure_schedules_keep_raft_and_placement_safe_and_converge() {
    logs();
    let mut totals = sim::Stats::default();
    let seeds = schedules();
    for &seed in &seeds {
        let stats = Sim::new(seed, SimConfig::default()).run();
        totals.add(&stats);
    }
    println!("simulation: {} schedules, {totals}", seeds.len());
    assert!(totals.elections >= seeds.len() as u64, "every schedule elects at least one leader");
    assert!(totals.crashes > 0 && totals.partitions > 0 && totals.joins > 0 && totals.leaves > 0, "{totals}");
    assert!(totals.applied_commands > 0 && totals.snapshots_installed > 0, "{totals}");
}

#[test]
fn a_schedule_replays_identically_from_its_seed() {
    logs();
    let cfg = SimConfig { chaos_ticks: 300, ..SimConfig::default() };
    let a = Sim::new(7, cfg.clone()).run();
    let b = Sim::new(7, cfg.clone()).run();
    assert_eq!(a.trace, b.trace, "same seed, same run");
    let c = Sim::new(8, cfg).run();
    assert_ne!(a.trace, c.trace, "another seed, another run");
}
