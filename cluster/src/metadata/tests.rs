use super::*;

fn md_with_rule(shards: u32) -> Metadata {
    let mut m = Metadata::default();
    for id in [1, 2, 3] {
        m.apply_member_change(&MemberChange::Add { id, addr: format!("h{id}:1") }).unwrap();
    }
    m.apply(&Command::PutRule { id: "r".into(), json: "{}".into(), shards }).unwrap();
    m
}

fn sp(primary: NodeId, standby: Option<NodeId>, epoch: u64) -> ShardPlacement {
    ShardPlacement { primary, standby, epoch, synced: false }
}

fn set(m: &mut Metadata, shards: Vec<ShardPlacement>) -> Result<Applied, Rejection> {
    m.apply(&Command::SetPlacement { placement: [("r".to_string(), shards)].into() })
}

#[test]
fn catalog_commands_apply_and_missing_objects_are_rejected() {
    let mut m = Metadata::default();
    m.apply(&Command::PutStream { name: "s".into(), sql: "CREATE STREAM s ()".into() }).unwrap();
    m.apply(&Command::PutTable { name: "t".into(), sql: "CREATE TABLE t ()".into() }).unwrap();
    m.apply(&Command::DropStream { name: "s".into() }).unwrap();
    let e = m.apply(&Command::DropStream { name: "s".into() }).unwrap_err();
    assert_eq!(e, Rejection::NotFound { kind: ObjectKind::Stream, name: "s".into() });
    assert!(m.apply(&Command::SetPlan { rule: "nope".into(), plan: "p".into() }).is_err());
    assert!(m.apply(&Command::ReportLoad { node: 9, load: 1 }).is_err());
    let e = m.apply(&Command::PutRule { id: "r".into(), json: "{}".into(), shards: 0 }).unwrap_err();
    assert!(matches!(e, Rejection::InvalidShards { .. }));
    assert_eq!(m.tables.len(), 1);
}

#[test]
fn placement_epochs_must_be_fresh_when_the_primary_changes() {
    let mut m = md_with_rule(2);
    set(&mut m, vec![sp(1, Some(2), 1), sp(2, Some(3), 2)]).unwrap();
    assert_eq!(m.last_epoch, 2);
    // Same primary, same epoch: fine. Same primary, other epoch: stale.
    set(&mut m, vec![sp(1, Some(3), 1), sp(2, Some(3), 2)]).unwrap();
    assert!(set(&mut m, vec![sp(1, Some(3), 5), sp(2, Some(3), 2)]).is_err());
    // New primary with a reused epoch: stale; with a fresh one: fine.
    let before = m.clone();
    assert!(set(&mut m, vec![sp(3, Some(1), 2), sp(2, Some(3), 2)]).is_err());
    assert!(set(&mut m, vec![sp(3, Some(1), 3), sp(1, None, 3)]).is_err(), "duplicate fresh epochs");
    assert!(set(&mut m, vec![sp(3, Some(3), 3), sp(2, None, 2)]).is_err(), "standby on the primary");
    assert!(set(&mut m, vec![sp(9, None, 3), sp(2, None, 2)]).is_err(), "unknown node");
    assert!(set(&mut m, vec![sp(3, None, 3)]).is_err(), "shard count");
    assert_eq!(m, before, "refused commands change nothing");
    set(&mut m, vec![sp(3, Some(1), 3), sp(2, Some(3), 2)]).unwrap();
    assert_eq!(m.last_epoch, 3);
}

#[test]
fn checkpoints_are_fenced_by_epoch_and_never_go_back() {
    let mut m = md_with_rule(1);
    set(&mut m, vec![sp(1, Some(2), 1)]).unwrap();
    let commit =
        |epoch, checkpoint| Command::CommitCheckpoint { rule: "r".into(), shard: 0, shard_epoch: epoch, checkpoint };
    m.apply(&commit(1, 5)).unwrap();
    m.apply(&commit(1, 5)).unwrap(); // a retry is harmless
    assert!(matches!(m.apply(&commit(1, 4)), Err(Rejection::StaleCheckpoint { committed: 5, .. })));
    assert_eq!(m.apply(&Command::BumpShardEpoch { rule: "r".into(), shard: 0 }).unwrap(), Applied::Epoch(2));
    assert!(matches!(m.apply(&commit(1, 6)), Err(Rejection::Fenced { current: 2, .. })));
    m.apply(&commit(2, 6)).unwrap();
    assert_eq!(m.checkpoints["r"][&0], CommittedCheckpoint { checkpoint: 6, shard_epoch: 2 });
    // Dropping and re-creating the rule does not reuse epochs.
    m.apply(&Command::DropRule { id: "r".into() }).unwrap();
    assert!(m.placement.is_empty() && m.checkpoints.is_empty());
    m.apply(&Command::PutRule { id: "r".into(), json: "{}".into(), shards: 1 }).unwrap();
    assert!(set(&mut m, vec![sp(1, None, 1)]).is_err());
    set(&mut m, vec![sp(1, None, 3)]).unwrap();
}

#[test]
fn shrinking_a_rule_drops_its_extra_shards_and_a_new_json_clears_the_plan() {
    let mut m = md_with_rule(3);
    set(&mut m, vec![sp(1, None, 1), sp(2, None, 2), sp(3, None, 3)]).unwrap();
    m.apply(&Command::SetPlan { rule: "r".into(), plan: "p".into() }).unwrap();
    m.apply(&Command::PutRule { id: "r".into(), json: "{}".into(), shards: 2 }).unwrap();
    assert_eq!(m.placement["r"].len(), 2);
    assert_eq!(m.rules["r"].plan.as_deref(), Some("p"));
    m.apply(&Command::PutRule { id: "r".into(), json: "{\"v\":2}".into(), shards: 2 }).unwrap();
    assert_eq!(m.rules["r"].plan, None);
}

#[test]
fn members_follow_conf_changes_and_the_state_round_trips() {
    let mut m = md_with_rule(1);
    m.apply(&Command::SetNodeLive { node: 2, live: false }).unwrap();
    assert_eq!(m.live_nodes(), vec![1, 3]);
    m.apply_member_change(&MemberChange::Remove { id: 3 }).unwrap();
    assert!(m.apply_member_change(&MemberChange::Remove { id: 3 }).is_err());
    m.apply_member_change(&MemberChange::Add { id: 1, addr: "moved:2".into() }).unwrap();
    assert_eq!(m.nodes[&1].addr, "moved:2");
    let back = Metadata::from_bytes(&m.to_bytes().unwrap()).unwrap();
    assert_eq!(back, m);
    assert!(Metadata::from_bytes(&[0xff, 0x01]).is_err());
}

#[test]
fn only_the_primarys_report_marks_a_standby_synced() {
    let mut m = md_with_rule(1);
    set(&mut m, vec![sp(1, Some(2), 1)]).unwrap();
    let report = |epoch, standby| Command::StandbySynced { rule: "r".into(), shard: 0, epoch, standby };
    // A report for another standby or an old epoch is stale.
    assert!(matches!(m.apply(&report(1, 3)), Err(Rejection::StalePlacement { .. })));
    assert!(matches!(m.apply(&report(0, 2)), Err(Rejection::StalePlacement { .. })));
    assert!(!m.placement["r"][0].synced);
    m.apply(&report(1, 2)).unwrap();
    assert!(m.placement["r"][0].synced);
    // The same placement again keeps it; a placement cannot set it, and a
    // new standby clears it.
    set(&mut m, vec![sp(1, Some(2), 1)]).unwrap();
    assert!(m.placement["r"][0].synced);
    set(&mut m, vec![sp(1, Some(3), 1)]).unwrap();
    assert!(!m.placement["r"][0].synced);
    set(&mut m, vec![ShardPlacement { synced: true, ..sp(1, Some(3), 1) }]).unwrap();
    assert!(!m.placement["r"][0].synced, "a placement never sets it");
}
