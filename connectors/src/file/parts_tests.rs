//! Epoch parts of the file sink: a simulated kill (the writer dropped
//! without closing) and the restored rule's re-sent epoch leave exactly
//! the parts of a run without failure.

use std::path::Path;

use weir_runtime::Value;

use super::parts::{epoch_of, part_path, Parts};
use super::FileType;
use crate::transform::Outgoing;

/// The message `{"n":n}` of output `<rule>/<epoch>/<seq>`.
fn msg(epoch: u64, seq: u64, n: i64) -> Outgoing {
    let text = format!(r#"{{"n":{n}}}"#);
    let value = Value::from_json(serde_json::from_str(&text).unwrap(), false);
    Outgoing { bytes: text.into_bytes(), source: value.clone(), value, id: Some(format!("r/{epoch}/{seq}")) }
}

/// What a reader sees in `dir`: visible files by name, with content.
fn visible(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .map(|n| (n.clone(), std::fs::read_to_string(dir.join(&n)).unwrap()))
        .collect();
    out.sort();
    out
}

/// The run without failure: epochs 1..=3 with 2, 2 and 1 messages.
fn failure_free(file_type: FileType) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.txt");
    let mut parts = Parts::new(file_type, None);
    for (e, s, n) in [(1, 0, 1), (1, 1, 2), (2, 0, 3), (2, 1, 4), (3, 0, 5)] {
        parts.write(&target, e, &msg(e, s, n)).unwrap();
    }
    parts.finalize_all().unwrap();
    visible(dir.path())
}

#[test]
fn ids_give_epochs() {
    assert_eq!(epoch_of("r1/7/3", false), Some(7));
    assert_eq!(epoch_of("r1/7/3/0", true), Some(7));
    assert_eq!(epoch_of("r1/x/3", false), None);
    assert_eq!(epoch_of("3", false), None);
    assert_eq!(part_path(Path::new("/d/out.txt"), 7), Path::new("/d/out.txt.00000000000000000007"));
}

#[test]
fn parts_become_visible_whole_and_in_epoch_order() {
    let got = failure_free(FileType::Lines);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["out.txt.00000000000000000001", "out.txt.00000000000000000002", "out.txt.00000000000000000003"]);
    let all: String = got.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(all, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n");
}

/// Killed in the middle of epoch 2, restored from epoch 2 (the newest
/// commit): half of epoch 2 was never visible, and its re-sent part
/// replaces the temporary one.
#[test]
fn kill_mid_epoch_then_resend_equals_the_failure_free_run() {
    for file_type in [FileType::Lines, FileType::Json] {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let mut before = Parts::new(file_type, None);
        for (e, s, n) in [(1, 0, 1), (1, 1, 2), (2, 0, 3)] {
            before.write(&target, e, &msg(e, s, n)).unwrap();
        }
        let seen = visible(dir.path());
        assert_eq!(seen.len(), 1, "only epoch 1 is visible, not half of epoch 2: {seen:?}");
        drop(before); // the kill: no close, a temporary part left behind
        let mut after = Parts::new(file_type, None);
        for (e, s, n) in [(2, 0, 3), (2, 1, 4), (3, 0, 5)] {
            after.write(&target, e, &msg(e, s, n)).unwrap();
        }
        after.finalize_all().unwrap();
        assert_eq!(visible(dir.path()), failure_free(file_type), "{file_type:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "no temporary part is left");
    }
}

/// A re-sent epoch whose part was already visible replaces it rather than
/// appending to it.
#[test]
fn resent_visible_epoch_replaces_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.txt");
    let mut before = Parts::new(FileType::Lines, None);
    for (e, s, n) in [(1, 0, 1), (1, 1, 2), (2, 0, 3), (2, 1, 4)] {
        before.write(&target, e, &msg(e, s, n)).unwrap();
    }
    before.finalize_all().unwrap();
    drop(before);
    let mut after = Parts::new(FileType::Lines, None);
    for (e, s, n) in [(2, 0, 3), (2, 1, 4), (3, 0, 5)] {
        after.write(&target, e, &msg(e, s, n)).unwrap();
    }
    after.finalize_all().unwrap();
    assert_eq!(visible(dir.path()), failure_free(FileType::Lines));
}

/// Killed after epoch 2 was written in full but before its rename, and
/// restored from a later epoch (3 committed with no output): the leftover
/// part is complete and is renamed into place, closed for json.
#[test]
fn complete_leftover_part_of_an_older_epoch_is_renamed() {
    for file_type in [FileType::Lines, FileType::Json] {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let mut before = Parts::new(file_type, None);
        for (e, s, n) in [(1, 0, 1), (1, 1, 2), (2, 0, 3), (2, 1, 4)] {
            before.write(&target, e, &msg(e, s, n)).unwrap();
        }
        drop(before);
        let mut after = Parts::new(file_type, None);
        after.write(&target, 3, &msg(3, 0, 5)).unwrap();
        after.finalize_all().unwrap();
        assert_eq!(visible(dir.path()), failure_free(file_type), "{file_type:?}");
    }
}

/// An epoch made visible by a flush goes on when more of its messages
/// come: the part is replaced by the longer one.
#[test]
fn flushed_epoch_reopens_for_late_messages() {
    for file_type in [FileType::Lines, FileType::Json] {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let mut parts = Parts::new(file_type, None);
        for (e, s, n) in [(1, 0, 1), (1, 1, 2), (2, 0, 3)] {
            parts.write(&target, e, &msg(e, s, n)).unwrap();
        }
        parts.finalize_all().unwrap();
        assert_eq!(visible(dir.path()).len(), 2);
        for (e, s, n) in [(2, 1, 4), (3, 0, 5)] {
            parts.write(&target, e, &msg(e, s, n)).unwrap();
        }
        parts.finalize_all().unwrap();
        assert_eq!(visible(dir.path()), failure_free(file_type), "{file_type:?}");
        if file_type == FileType::Json {
            let part: serde_json::Value = serde_json::from_str(&visible(dir.path())[1].1).unwrap();
            assert_eq!(part, serde_json::json!([{"n": 3}, {"n": 4}]));
        }
    }
}

#[test]
fn an_older_epoch_after_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.txt");
    let mut parts = Parts::new(FileType::Lines, None);
    parts.write(&target, 2, &msg(2, 0, 1)).unwrap();
    assert!(parts.write(&target, 1, &msg(1, 0, 1)).is_err());
}

/// Through the sink: messages with ids go to a part, visible once the
/// confirmation of a flush resolves (not before: a crash would show half
/// an epoch); messages without ids still append to the file itself.
#[tokio::test]
async fn sink_with_ids_writes_parts_visible_at_flush() {
    use crate::{sink, Environment, SinkContext};
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::new(dir.path());
    let props = serde_json::json!({"path": "out.txt", "sendSingle": true});
    let mut s = sink("file", &props, &SinkContext { rule_id: "r".into(), index: 0 }, &env).unwrap();
    let row = |n: i64| Value::from_json(serde_json::json!({ "n": n }), false);
    s.emit_with_id(&[row(1), row(2)], "r/1/0").await.unwrap();
    s.flush().await.await.unwrap();
    assert_eq!(
        visible(dir.path()),
        [("out.txt.00000000000000000001".to_string(), "{\"n\":1}\n{\"n\":2}\n".to_string())]
    );
    s.emit_with_id(&[row(3)], "r/2/0").await.unwrap();
    s.emit(&[row(9)]).await.unwrap();
    s.close().await;
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "{\"n\":9}\n");
    assert_eq!(visible(dir.path()).len(), 3, "epoch 2's part is in place after the close");
}
