//! Runs every replay case of `tests/cases/` in process.

use std::path::PathBuf;

use weir_runtime::replay;

fn cases() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/cases");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// Runs every case, with `concurrency` forced when given, and collects
/// the failures.
fn run_all(concurrency: Option<u32>, replay_options: replay::ReplayOptions) -> (usize, Vec<String>) {
    let cases = cases();
    let mut failures = Vec::new();
    for path in &cases {
        let text = std::fs::read_to_string(path).expect("readable case");
        let result = replay::parse_case(&text)
            .map(|mut c| {
                if let Some(n) = concurrency {
                    if !c.options.is_object() {
                        c.options = serde_json::json!({});
                    }
                    c.options["concurrency"] = n.into();
                }
                c
            })
            .and_then(|c| replay::run_case_with(&c, replay_options).map(|e| (c, e)))
            .map_err(|e| e.to_string())
            .and_then(|(c, e)| replay::check(&c, &e).map_err(|m| m.message));
        if let Err(e) = result {
            failures.push(format!("{}: {e}", path.file_name().unwrap_or_default().to_string_lossy()));
        }
    }
    (cases.len(), failures)
}

#[test]
fn every_replay_case_passes() {
    let (n, failures) = run_all(None, Default::default());
    assert!(n >= 80, "only {n} cases");
    assert!(failures.is_empty(), "{} of {n} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// Parallel instances of stateless stages must not change any output.
#[test]
fn every_replay_case_passes_with_concurrency() {
    let (n, failures) = run_all(Some(3), Default::default());
    assert!(failures.is_empty(), "{} of {n} cases failed with concurrency 3:\n{}", failures.len(), failures.join("\n"));
}

/// Checkpointing every operator at every barrier and restarting the rule
/// from that checkpoint must not change any output.
#[test]
fn every_replay_case_passes_with_restore_at_each_barrier() {
    let (n, failures) = run_all(None, replay::ReplayOptions { restore_each_barrier: true });
    assert!(failures.is_empty(), "{} of {n} cases failed with restores:\n{}", failures.len(), failures.join("\n"));
}

/// `WEIR_CASE=name cargo test -p weir-runtime --test cases one_case -- --nocapture`
/// prints the diff of a single case.
#[test]
fn one_case() {
    let Ok(name) = std::env::var("WEIR_CASE") else { return };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/cases").join(format!("{name}.json"));
    let case = replay::parse_case(&std::fs::read_to_string(path).expect("case exists")).expect("valid case");
    let emissions = replay::run_case(&case).expect("case runs");
    println!("{}", replay::render(&emissions));
    if let Err(m) = replay::check(&case, &emissions) {
        panic!("{}", m.message);
    }
}
