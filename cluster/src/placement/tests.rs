use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn nodes(ids: &[NodeId]) -> Vec<NodeLoad> {
    ids.iter().map(|id| NodeLoad { id: *id, load: 0 }).collect()
}

/// Every node that appears in these tests is a member (none was removed).
fn members() -> BTreeSet<NodeId> {
    (1..=9).collect()
}

/// `place` with every node of the tests a member.
fn place_on(live: &[NodeLoad], rules: &BTreeMap<String, u32>, current: &Placement, last_epoch: u64) -> PlacementPlan {
    place(live, &members(), rules, current, last_epoch)
}

/// The placement after every primary reported its standby synced.
fn synced(mut plan: PlacementPlan) -> PlacementPlan {
    for sp in plan.placement.values_mut().flatten() {
        sp.synced = sp.standby.is_some();
    }
    plan
}

fn rules(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

/// Cost per node as the module docs define it.
fn costs(p: &Placement, live: &[NodeLoad]) -> BTreeMap<NodeId, u64> {
    let mut c: BTreeMap<NodeId, u64> = live.iter().map(|n| (n.id, n.load)).collect();
    for sp in p.values().flatten() {
        *c.entry(sp.primary).or_default() += 2;
        if let Some(b) = sp.standby {
            *c.entry(b).or_default() += 1;
        }
    }
    c
}

fn check_valid(p: &Placement, live: &[NodeLoad], rules: &BTreeMap<String, u32>) {
    check_valid_waiting(p, live, rules, &Placement::new());
}

/// Like [`check_valid`], but a shard of `before` whose primary is dead and
/// had no live synced standby may keep waiting for that primary (with a
/// fresh epoch if its sharded rule rolled back).
fn check_valid_waiting(p: &Placement, live: &[NodeLoad], rules: &BTreeMap<String, u32>, before: &Placement) {
    let ids: BTreeSet<NodeId> = live.iter().map(|n| n.id).collect();
    for (r, n) in rules {
        assert_eq!(p[r].len(), *n as usize);
        for (i, sp) in p[r].iter().enumerate() {
            if !ids.contains(&sp.primary) {
                let old = before.get(r).and_then(|b| b.get(i)).expect("a new shard goes to a live node");
                assert_eq!(old.primary, sp.primary, "waits for its primary");
                assert!(old.epoch == sp.epoch || (*n > 1 && sp.epoch > old.epoch), "waits unchanged");
                assert!(!(old.synced && old.standby.is_some_and(|b| ids.contains(&b))), "a synced standby takes over");
                continue;
            }
            match sp.standby {
                Some(b) => assert!(ids.contains(&b) && b != sp.primary),
                None => assert_eq!(ids.len(), 1),
            }
        }
    }
}

#[test]
fn new_shards_get_a_primary_and_a_standby_spread_by_cost() {
    let live = nodes(&[1, 2, 3]);
    let rs = rules(&[("a", 3), ("b", 3)]);
    let plan = place_on(&live, &rs, &Placement::new(), 10);
    check_valid(&plan.placement, &live, &rs);
    assert_eq!(plan.last_epoch, 16, "six fresh epochs");
    let c = costs(&plan.placement, &live);
    assert!(c.values().max().unwrap() - c.values().min().unwrap() <= 1, "{c:?}");
    // Placing again changes nothing.
    assert_eq!(place_on(&live, &rs, &plan.placement, plan.last_epoch), plan);
}

#[test]
fn a_dead_primary_is_replaced_by_its_standby_with_a_fresh_epoch() {
    let live = nodes(&[1, 2, 3]);
    let rs = rules(&[("a", 3)]);
    let first = synced(place_on(&live, &rs, &Placement::new(), 0));
    let dead = first.placement["a"][0].primary;
    let standby = first.placement["a"][0].standby.unwrap();
    let survivors: Vec<_> = live.iter().copied().filter(|n| n.id != dead).collect();
    let next = place_on(&survivors, &rs, &first.placement, first.last_epoch);
    check_valid(&next.placement, &survivors, &rs);
    let s0 = &next.placement["a"][0];
    assert_eq!(s0.primary, standby, "the standby is promoted");
    assert!(s0.epoch > first.last_epoch, "fencing epoch");
    for (old, new) in first.placement["a"].iter().zip(&next.placement["a"]) {
        assert!(new.epoch > first.last_epoch, "the sharded rule rolls back as a whole");
        assert!(old.primary == new.primary || old.primary == dead, "only the failed primary moves");
    }
    assert_eq!(next.last_epoch, first.last_epoch + 3);
}

#[test]
fn a_single_shard_rule_fails_over_alone() {
    let live = nodes(&[1, 2, 3]);
    let rs = rules(&[("a", 1), ("b", 1), ("c", 1)]);
    let first = synced(place_on(&live, &rs, &Placement::new(), 0));
    let dead = first.placement["a"][0].primary;
    let survivors: Vec<_> = live.iter().copied().filter(|n| n.id != dead).collect();
    let next = place_on(&survivors, &rs, &first.placement, first.last_epoch);
    for (rule, shards) in &next.placement {
        let (old, new) = (&first.placement[rule][0], &shards[0]);
        if old.primary == dead {
            assert!(new.epoch > first.last_epoch);
        } else {
            assert_eq!((old.primary, old.epoch), (new.primary, new.epoch), "other rules keep their epoch");
        }
    }
}

/// Every shard of a rule with more than one shard keeps its epoch, or
/// every shard gets a fresh one.
fn check_rolled_back_together(before: &Placement, after: &Placement, last_epoch: u64) {
    for (rule, shards) in after {
        let old = before.get(rule).map(|o| o.as_slice()).unwrap_or_default();
        let kept = shards.iter().zip(old).filter(|(n, o)| n.epoch == o.epoch).count();
        let fresh = shards.iter().filter(|sp| sp.epoch > last_epoch).count();
        if shards.len() > 1 {
            assert!(kept == shards.len() || fresh == shards.len(), "{rule}: {old:?} -> {shards:?}");
        }
    }
}

#[test]
fn after_a_rollback_and_new_sync_reports_a_second_failover_works() {
    let live = nodes(&[1, 2, 3, 4]);
    let rs = rules(&[("a", 4)]);
    let first = synced(place_on(&live, &rs, &Placement::new(), 0));
    // Node of shard 0 dies: its synced standby takes over, the rule rolls back.
    let dead = first.placement["a"][0].primary;
    let three: Vec<_> = live.iter().copied().filter(|n| n.id != dead).collect();
    let rolled = place_on(&three, &rs, &first.placement, first.last_epoch);
    check_valid(&rolled.placement, &three, &rs);
    check_rolled_back_together(&first.placement, &rolled.placement, first.last_epoch);
    // A shard whose primary and standby stay keeps its synced standby.
    for (old, new) in first.placement["a"].iter().zip(&rolled.placement["a"]) {
        assert!(new.epoch > first.last_epoch);
        assert_eq!(new.synced, old.primary == new.primary && old.standby == new.standby, "{old:?} -> {new:?}");
    }
    let rolled = place_on(&three, &rs, &rolled.placement, rolled.last_epoch);
    // A second death right away: shards with a synced standby fail over,
    // the others wait for their primary.
    let victim = rolled.placement["a"].iter().find(|sp| sp.synced).expect("a shard kept its standby").primary;
    let two: Vec<_> = three.iter().copied().filter(|n| n.id != victim).collect();
    let second = place_on(&two, &rs, &rolled.placement, rolled.last_epoch);
    check_valid_waiting(&second.placement, &two, &rs, &rolled.placement);
    check_rolled_back_together(&rolled.placement, &second.placement, rolled.last_epoch);
    for (old, new) in rolled.placement["a"].iter().zip(&second.placement["a"]) {
        if old.primary == victim && old.synced {
            assert_eq!(Some(new.primary), old.standby, "its synced standby is promoted");
        }
    }
    // Once the primaries reported StandbySynced, the waiting ones move too.
    let resynced = synced(second.clone());
    let third = place_on(&two, &rs, &resynced.placement, resynced.last_epoch);
    check_valid(&third.placement, &two, &rs);
    assert_eq!(place_on(&two, &rs, &third.placement, third.last_epoch), third, "stable");
}

#[test]
fn a_rebalancing_swap_rolls_the_whole_sharded_rule_back() {
    // As in the test above: node 3 joins, gets the standbys, they sync.
    let busy = |id| NodeLoad { id, load: 10 };
    let rs = rules(&[("a", 2)]);
    let before = place_on(&[busy(1), busy(2)], &rs, &Placement::new(), 0);
    let live = [busy(1), busy(2), NodeLoad { id: 3, load: 0 }];
    let after = synced(place_on(&live, &rs, &before.placement, before.last_epoch));
    let later = place_on(&live, &rs, &after.placement, after.last_epoch);
    let moved = after.placement["a"].iter().zip(&later.placement["a"]).filter(|(o, n)| o.primary != n.primary);
    assert!(moved.count() >= 1, "a primary swaps onto node 3: {:?}", later.placement);
    check_rolled_back_together(&after.placement, &later.placement, after.last_epoch);
    assert!(later.placement["a"].iter().all(|sp| sp.epoch > after.last_epoch && !sp.synced));
    assert_eq!(later.last_epoch, after.last_epoch + 2);
}

#[test]
fn a_join_moves_few_shards_and_prefers_standbys() {
    let rs = rules(&[("a", 4), ("b", 4)]);
    let before = synced(place_on(&nodes(&[1, 2]), &rs, &Placement::new(), 0));
    let live = nodes(&[1, 2, 3]);
    let after = place_on(&live, &rs, &before.placement, before.last_epoch);
    check_valid(&after.placement, &live, &rs);
    let c = costs(&after.placement, &live);
    assert!(c.values().max().unwrap() - c.values().min().unwrap() <= 2, "{c:?}");
    let moved_primaries = before.placement.values().flatten().zip(after.placement.values().flatten());
    let moved = moved_primaries.filter(|(a, b)| a.primary != b.primary).count();
    assert!(moved <= 3, "only a few primaries move: {moved}");
    assert_eq!(place_on(&live, &rs, &after.placement, after.last_epoch), after, "stable");
}

#[test]
fn load_steers_new_shards_and_one_node_means_no_standby() {
    let live = vec![NodeLoad { id: 1, load: 100 }, NodeLoad { id: 2, load: 0 }];
    let rs = rules(&[("a", 2)]);
    let p = place_on(&live, &rs, &Placement::new(), 0);
    assert!(p.placement["a"].iter().all(|sp| sp.primary == 2 && sp.standby == Some(1)));
    let single = place_on(&nodes(&[5]), &rs, &Placement::new(), 0);
    assert!(single.placement["a"].iter().all(|sp| sp.primary == 5 && sp.standby.is_none()));
    let none = place_on(&[], &rs, &single.placement, single.last_epoch);
    assert_eq!(none.placement, single.placement, "no live node: unchanged");
    // Dropped rules disappear; a shrunk rule keeps its first shards.
    let shrunk = place_on(&nodes(&[5]), &rules(&[("a", 1)]), &single.placement, single.last_epoch);
    assert_eq!(shrunk.placement["a"], single.placement["a"][..1]);
    assert!(place_on(&nodes(&[5]), &rules(&[]), &single.placement, 2).placement.is_empty());
}

#[test]
fn random_inputs_give_valid_stable_placements_with_fresh_epochs() {
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..300 {
        let ids: Vec<NodeId> = (1..=rng.gen_range(1..6)).filter(|_| rng.gen_bool(0.8)).collect();
        let live: Vec<NodeLoad> = ids.iter().map(|id| NodeLoad { id: *id, load: rng.gen_range(0..4) }).collect();
        let rs: BTreeMap<String, u32> =
            (0..rng.gen_range(0..5)).map(|i| (format!("r{i}"), rng.gen_range(1..5))).collect();
        // A current placement over nodes 1..=6, some of them dead now.
        let mut current = Placement::new();
        let mut epoch = 0;
        for (r, n) in &rs {
            let shards = (0..rng.gen_range(0..=*n))
                .map(|_| {
                    epoch += 1;
                    let primary = rng.gen_range(1..7);
                    let standby = Some(rng.gen_range(1..7)).filter(|b| *b != primary);
                    ShardPlacement { primary, standby, epoch, synced: standby.is_some() && rng.gen_bool(0.7) }
                })
                .collect();
            current.insert(r.clone(), shards);
        }
        let plan = place_on(&live, &rs, &current, epoch);
        if live.is_empty() {
            continue;
        }
        check_valid_waiting(&plan.placement, &live, &rs, &current);
        let mut fresh = BTreeSet::new();
        for (r, shards) in &plan.placement {
            for (i, sp) in shards.iter().enumerate() {
                match current.get(r).and_then(|c| c.get(i)) {
                    Some(old) if old.epoch == sp.epoch => assert_eq!(old.primary, sp.primary),
                    Some(old) if old.primary == sp.primary => assert!(shards.len() > 1, "only a rollback"),
                    _ => {}
                }
                if current.get(r).and_then(|c| c.get(i)).is_none_or(|old| old.epoch != sp.epoch) {
                    assert!(sp.epoch > epoch && fresh.insert(sp.epoch));
                }
            }
        }
        check_rolled_back_together(&current, &plan.placement, epoch);
        assert_eq!(place_on(&live, &rs, &plan.placement, plan.last_epoch), plan, "stable");
    }
}

#[test]
fn an_unsynced_standby_is_not_promoted_unless_the_primary_was_removed() {
    let live = nodes(&[1, 2, 3]);
    let rs = rules(&[("a", 1)]);
    let first = place_on(&live, &rs, &Placement::new(), 0);
    let old = first.placement["a"][0].clone();
    assert!(!old.synced, "nobody reported the standby synced yet");
    let survivors: Vec<_> = live.iter().copied().filter(|n| n.id != old.primary).collect();
    // The standby has no copy of the state: the shard waits for its primary.
    let waiting = place_on(&survivors, &rs, &first.placement, first.last_epoch);
    assert_eq!(waiting.placement["a"][0], old, "unchanged: no promotion, no fresh epoch");
    // Removed from the cluster, the primary is not coming back.
    let remaining: BTreeSet<NodeId> = members().into_iter().filter(|n| *n != old.primary).collect();
    let moved = place(&survivors, &remaining, &rs, &first.placement, first.last_epoch);
    let sp = &moved.placement["a"][0];
    assert_eq!(sp.primary, old.standby.unwrap());
    assert!(sp.epoch > first.last_epoch && !sp.synced);
}

#[test]
fn a_primary_only_moves_to_its_synced_standby() {
    // Node 3 joins two busy nodes that hold every shard.
    let busy = |id| NodeLoad { id, load: 10 };
    let rs = rules(&[("a", 2)]);
    let before = place_on(&[busy(1), busy(2)], &rs, &Placement::new(), 0);
    let live = [busy(1), busy(2), NodeLoad { id: 3, load: 0 }];
    let after = place_on(&live, &rs, &before.placement, before.last_epoch);
    for (old, new) in before.placement["a"].iter().zip(&after.placement["a"]) {
        assert_eq!((old.primary, old.epoch), (new.primary, new.epoch), "no synced copy: primaries stay");
    }
    assert!(after.placement["a"].iter().any(|sp| sp.standby == Some(3)), "standbys move to the new node");
    // Once the new standbys are synced, a primary may swap onto node 3.
    let later = place_on(&live, &rs, &synced(after.clone()).placement, after.last_epoch);
    assert!(later.placement["a"].iter().any(|sp| sp.primary == 3), "{:?}", later.placement);
}
