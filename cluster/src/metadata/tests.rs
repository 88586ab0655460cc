use super::*;

fn md_with_rule(shards: u32) -> Metadata {
    let mut m = Metadata::default();
    for id in [1, 2, 3] {
        m.apply_member_change(&MemberChange::Add { id, addr: format!("h{id}:1") }).unwrap();
        m.apply_member_change(&MemberChange::Promote { id }).unwrap();
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
    let e = set(&mut m, vec![sp(3, Some(1), 3), sp(2, Some(3), 2)]).unwrap_err();
    assert!(matches!(e, Rejection::StalePlacement { .. }), "a sharded rule's epochs change together");
    assert_eq!(m, before, "refused commands change nothing");
    // A fresh epoch for an unchanged primary is fine (the rule rolls back).
    set(&mut m, vec![sp(3, Some(1), 3), sp(2, Some(3), 4)]).unwrap();
    assert_eq!(m.last_epoch, 4);
}

#[test]
fn a_single_shard_primary_may_keep_its_epoch_or_get_a_fresh_one() {
    let mut m = md_with_rule(1);
    set(&mut m, vec![sp(1, Some(2), 1)]).unwrap();
    assert!(set(&mut m, vec![sp(1, Some(2), 1)]).is_ok());
    assert!(set(&mut m, vec![sp(1, Some(3), 1)]).is_ok(), "a new standby keeps the epoch");
    assert!(set(&mut m, vec![sp(1, Some(2), 0)]).is_err(), "an old epoch");
    set(&mut m, vec![sp(1, Some(2), 7)]).unwrap();
    assert_eq!((m.placement["r"][0].epoch, m.last_epoch), (7, 7));
}

fn commit(m: &mut Metadata, shard: u32, checkpoint: u64) -> Result<Applied, Rejection> {
    let shard_epoch = m.placement["r"][shard as usize].epoch;
    m.apply(&Command::CommitCheckpoint { rule: "r".into(), shard, shard_epoch, checkpoint })
}

fn epochs(m: &Metadata) -> Vec<u64> {
    m.placement["r"].iter().map(|sp| sp.epoch).collect()
}

/// A three-shard rule on nodes 1..=3 at epochs 1..=3, synced, with
/// checkpoints 7, 5 and 9 committed.
fn sharded_with_checkpoints() -> Metadata {
    let mut m = md_with_rule(3);
    set(&mut m, vec![sp(1, Some(2), 1), sp(2, Some(3), 2), sp(3, Some(1), 3)]).unwrap();
    for (shard, standby) in [(0, 2), (1, 3), (2, 1)] {
        let epoch = shard as u64 + 1;
        m.apply(&Command::StandbySynced { rule: "r".into(), shard, epoch, standby }).unwrap();
    }
    for (shard, checkpoint) in [(0, 7), (1, 5), (2, 9)] {
        commit(&mut m, shard, checkpoint).unwrap();
    }
    m
}

/// Every shard's record is `checkpoint` under its current epoch.
fn assert_reset_to(m: &Metadata, checkpoint: u64) {
    for (i, sp) in m.placement["r"].iter().enumerate() {
        let record = CommittedCheckpoint { checkpoint, shard_epoch: sp.epoch };
        assert_eq!(m.checkpoints["r"][&(i as u32)], record, "shard {i}");
    }
}

#[test]
fn the_global_checkpoint_is_the_least_over_all_shards() {
    let mut m = md_with_rule(3);
    assert_eq!(m.global_checkpoint("r"), 0, "nothing committed");
    assert_eq!(m.global_checkpoint("nope"), 0, "unknown rule");
    set(&mut m, vec![sp(1, None, 1), sp(2, None, 2), sp(3, None, 3)]).unwrap();
    commit(&mut m, 0, 7).unwrap();
    commit(&mut m, 2, 9).unwrap();
    assert_eq!(m.global_checkpoint("r"), 0, "shard 1 has none yet");
    commit(&mut m, 1, 5).unwrap();
    assert_eq!(m.global_checkpoint("r"), 5);
    commit(&mut m, 1, 8).unwrap();
    assert_eq!(m.global_checkpoint("r"), 7);
    // A shrunk rule's global checkpoint is over its remaining shards.
    m.apply(&Command::PutRule { id: "r".into(), json: "{}".into(), shards: 1 }).unwrap();
    assert_eq!(m.global_checkpoint("r"), 7);
    m.apply(&Command::DropRule { id: "r".into() }).unwrap();
    assert_eq!(m.global_checkpoint("r"), 0);
}

#[test]
fn a_failover_of_one_shard_rolls_the_whole_rule_back_to_the_global_checkpoint() {
    let mut m = sharded_with_checkpoints();
    let old = epochs(&m);
    // Node 1 died: shard 0 is promoted on 2, shards 1 and 2 only get fresh epochs.
    set(&mut m, vec![sp(2, Some(3), 4), sp(2, Some(3), 5), sp(3, Some(2), 6)]).unwrap();
    assert_eq!((epochs(&m), m.last_epoch), (vec![4, 5, 6], 6));
    // A moved primary or standby must sync again; an unchanged pair keeps
    // its copy across the rollback.
    let synced: Vec<bool> = m.placement["r"].iter().map(|sp| sp.synced).collect();
    assert_eq!(synced, vec![false, true, false]);
    assert_reset_to(&m, 5);
    assert_eq!(m.global_checkpoint("r"), 5);
    // The old run's primaries are fenced, the new run continues after the cut.
    for (shard, epoch) in old.iter().enumerate() {
        let late =
            Command::CommitCheckpoint { rule: "r".into(), shard: shard as u32, shard_epoch: *epoch, checkpoint: 10 };
        assert!(matches!(m.apply(&late), Err(Rejection::Fenced { .. })));
    }
    assert!(matches!(commit(&mut m, 2, 4), Err(Rejection::StaleCheckpoint { committed: 5, .. })));
    for shard in 0..3 {
        commit(&mut m, shard, 6).unwrap();
    }
    assert_eq!(m.global_checkpoint("r"), 6);
    // A placement that keeps every epoch changes no checkpoint.
    let same = m.placement["r"].clone();
    set(&mut m, same).unwrap();
    assert_reset_to(&m, 6);
}

#[test]
fn a_rollback_before_every_shard_committed_forgets_the_partial_records() {
    let mut m = md_with_rule(2);
    set(&mut m, vec![sp(1, Some(2), 1), sp(2, Some(1), 2)]).unwrap();
    commit(&mut m, 0, 3).unwrap();
    m.apply(&Command::RestartShards { rule: "r".into(), epochs: vec![1, 2] }).unwrap();
    assert_eq!(epochs(&m), vec![3, 4]);
    assert!(!m.checkpoints.contains_key("r"), "no cut every shard has: restart from scratch");
    commit(&mut m, 0, 1).unwrap();
}

#[test]
fn restart_shards_rolls_back_once_and_refuses_stale_requests() {
    let mut m = sharded_with_checkpoints();
    let placed = m.placement["r"].clone();
    let e = m.apply(&Command::RestartShards { rule: "r".into(), epochs: vec![1, 2] }).unwrap_err();
    assert!(matches!(e, Rejection::StalePlacement { .. }), "{e:?}");
    let nope = Command::RestartShards { rule: "nope".into(), epochs: vec![] };
    assert!(matches!(m.apply(&nope), Err(Rejection::NotFound { .. })));
    let request = Command::RestartShards { rule: "r".into(), epochs: vec![1, 2, 3] };
    assert_eq!(m.apply(&request), Ok(Applied::Done));
    assert_eq!((epochs(&m), m.last_epoch), (vec![4, 5, 6], 6));
    for (old, new) in placed.iter().zip(&m.placement["r"]) {
        assert_eq!((old.primary, old.standby, old.synced), (new.primary, new.standby, new.synced));
    }
    assert_reset_to(&m, 5);
    // The same request from another shard is stale now and changes nothing.
    let before = m.clone();
    assert!(matches!(m.apply(&request), Err(Rejection::StalePlacement { .. })));
    assert_eq!(m, before);
}

#[test]
fn bumping_one_shard_of_a_sharded_rule_bumps_them_all() {
    let mut m = sharded_with_checkpoints();
    assert_eq!(m.apply(&Command::BumpShardEpoch { rule: "r".into(), shard: 1 }), Ok(Applied::Epoch(5)));
    assert_eq!(epochs(&m), vec![4, 5, 6]);
    assert_reset_to(&m, 5);
    assert!(m.apply(&Command::BumpShardEpoch { rule: "r".into(), shard: 3 }).is_err());
    assert_eq!(epochs(&m), vec![4, 5, 6], "a missing shard changes nothing");
}

#[test]
fn applying_the_same_commands_gives_the_same_metadata() {
    let commands = |m: &mut Metadata| {
        let results = [
            set(m, vec![sp(2, Some(3), 4), sp(2, Some(3), 5), sp(3, Some(2), 6)]),
            m.apply(&Command::RestartShards { rule: "r".into(), epochs: vec![4, 5, 6] }),
            m.apply(&Command::RestartShards { rule: "r".into(), epochs: vec![4, 5, 6] }),
            commit(m, 1, 11),
            m.apply(&Command::BumpShardEpoch { rule: "r".into(), shard: 2 }),
        ];
        results.map(|r| r.is_ok())
    };
    let (mut a, mut b) = (sharded_with_checkpoints(), sharded_with_checkpoints());
    assert_eq!(commands(&mut a), [true, true, false, true, true]);
    assert_eq!(commands(&mut b), [true, true, false, true, true]);
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
    assert_eq!(Metadata::from_bytes(&a.to_bytes().unwrap()).unwrap(), a);
}

#[test]
fn nodes_report_their_exchange_address() {
    let mut m = md_with_rule(1);
    let report = Command::ReportAddresses {
        node: 2,
        rest: "http://h2:9081".into(),
        replica: "h2:7000".into(),
        exchange: "h2:7100".into(),
    };
    m.apply(&report).unwrap();
    assert_eq!((m.nodes[&2].replica.as_str(), m.nodes[&2].exchange.as_str()), ("h2:7000", "h2:7100"));
    assert_eq!(m.nodes[&1].exchange, "", "empty until reported");
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
    assert!(!m.nodes[&1].learner, "a new address keeps a voter a voter");
    // A joining node is a learner: shown, but not placeable until promoted.
    m.apply_member_change(&MemberChange::Add { id: 4, addr: "h4:1".into() }).unwrap();
    assert!(m.nodes[&4].learner && m.nodes[&4].live);
    assert_eq!(m.live_nodes(), vec![1]);
    let refused = m.apply(&Command::SetPlacement { placement: [("r".into(), vec![sp(1, Some(4), 9)])].into() });
    assert!(matches!(refused, Err(Rejection::StalePlacement { .. })), "{refused:?}");
    m.apply_member_change(&MemberChange::Promote { id: 4 }).unwrap();
    assert_eq!(m.live_nodes(), vec![1, 4]);
    assert!(m.apply_member_change(&MemberChange::Promote { id: 3 }).is_err(), "not a member");
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
