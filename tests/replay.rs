//! Every replay case in `tests/cases/` must pass `weir replay --check`, and
//! give byte-identical output when run twice.

use std::process::Command;

use crate::util::{repo_root, weir_bin};

#[test]
fn all_replay_cases_pass() {
    let dir = repo_root().join("tests/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 80, "only {} replay cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let out = Command::new(weir_bin()).arg("replay").arg("--check").arg(case).output().expect("weir runs");
        if !out.status.success() {
            failures.push(format!(
                "{} (exit {:?}):\n{}",
                case.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn replay_output_is_byte_identical_across_runs() {
    let dir = repo_root().join("tests/cases");
    for name in ["window_session_proc.json", "join_full_window.json", "window_hopping_event.json"] {
        let run = || Command::new(weir_bin()).arg("replay").arg(dir.join(name)).output().expect("weir runs").stdout;
        let first = run();
        assert!(!first.is_empty());
        for _ in 0..3 {
            assert_eq!(run(), first, "{name} output changed between runs");
        }
    }
}

#[test]
fn invalid_case_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"setup":["CREATE STREAM s (a BIGINT) WITH (DATASOURCE=\"s\")"],"sql":"SELECT nope FROM s","events":[],"expected":[]}"#,
    )
    .unwrap();
    let out = Command::new(weir_bin()).arg("replay").arg("--check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field nope"), "{err}");
    std::fs::write(&bad, "{not json").unwrap();
    let out = Command::new(weir_bin()).arg("replay").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
