use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn nodes(ids: &[NodeId]) -> Vec<NodeLoad> {
    ids.iter().map(|id| NodeLoad { id: *id, load: 0 }).collect()
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
    let ids: BTreeSet<NodeId> = live.iter().map(|n| n.id).collect();
    for (r, n) in rules {
        assert_eq!(p[r].len(), *n as usize);
        for sp in &p[r] {
            assert!(ids.contains(&sp.primary));
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
    let plan = place(&live, &rs, &Placement::new(), 10);
    check_valid(&plan.placement, &live, &rs);
    assert_eq!(plan.last_epoch, 16, "six fresh epochs");
    let c = costs(&plan.placement, &live);
    assert!(c.values().max().unwrap() - c.values().min().unwrap() <= 1, "{c:?}");
    // Placing again changes nothing.
    assert_eq!(place(&live, &rs, &plan.placement, plan.last_epoch), plan);
}

#[test]
fn a_dead_primary_is_replaced_by_its_standby_with_a_fresh_epoch() {
    let live = nodes(&[1, 2, 3]);
    let rs = rules(&[("a", 3)]);
    let first = place(&live, &rs, &Placement::new(), 0);
    let dead = first.placement["a"][0].primary;
    let standby = first.placement["a"][0].standby.unwrap();
    let survivors: Vec<_> = live.iter().copied().filter(|n| n.id != dead).collect();
    let next = place(&survivors, &rs, &first.placement, first.last_epoch);
    check_valid(&next.placement, &survivors, &rs);
    let s0 = &next.placement["a"][0];
    assert_eq!(s0.primary, standby, "the standby is promoted");
    assert!(s0.epoch > first.last_epoch, "fencing epoch");
    for (old, new) in first.placement["a"].iter().zip(&next.placement["a"]) {
        if old.primary == new.primary {
            assert_eq!(old.epoch, new.epoch, "untouched primaries keep their epoch");
        } else {
            assert!(new.epoch > first.last_epoch);
        }
    }
}

#[test]
fn a_join_moves_few_shards_and_prefers_standbys() {
    let rs = rules(&[("a", 4), ("b", 4)]);
    let before = place(&nodes(&[1, 2]), &rs, &Placement::new(), 0);
    let live = nodes(&[1, 2, 3]);
    let after = place(&live, &rs, &before.placement, before.last_epoch);
    check_valid(&after.placement, &live, &rs);
    let c = costs(&after.placement, &live);
    assert!(c.values().max().unwrap() - c.values().min().unwrap() <= 2, "{c:?}");
    let moved_primaries = before.placement.values().flatten().zip(after.placement.values().flatten());
    let moved = moved_primaries.filter(|(a, b)| a.primary != b.primary).count();
    assert!(moved <= 3, "only a few primaries move: {moved}");
    assert_eq!(place(&live, &rs, &after.placement, after.last_epoch), after, "stable");
}

#[test]
fn load_steers_new_shards_and_one_node_means_no_standby() {
    let live = vec![NodeLoad { id: 1, load: 100 }, NodeLoad { id: 2, load: 0 }];
    let rs = rules(&[("a", 2)]);
    let p = place(&live, &rs, &Placement::new(), 0);
    assert!(p.placement["a"].iter().all(|sp| sp.primary == 2 && sp.standby == Some(1)));
    let single = place(&nodes(&[5]), &rs, &Placement::new(), 0);
    assert!(single.placement["a"].iter().all(|sp| sp.primary == 5 && sp.standby.is_none()));
    let none = place(&[], &rs, &single.placement, single.last_epoch);
    assert_eq!(none.placement, single.placement, "no live node: unchanged");
    // Dropped rules disappear; a shrunk rule keeps its first shards.
    let shrunk = place(&nodes(&[5]), &rules(&[("a", 1)]), &single.placement, single.last_epoch);
    assert_eq!(shrunk.placement["a"], single.placement["a"][..1]);
    assert!(place(&nodes(&[5]), &rules(&[]), &single.placement, 2).placement.is_empty());
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
                    ShardPlacement { primary, standby, epoch }
                })
                .collect();
            current.insert(r.clone(), shards);
        }
        let plan = place(&live, &rs, &current, epoch);
        if live.is_empty() {
            continue;
        }
        check_valid(&plan.placement, &live, &rs);
        let mut fresh = BTreeSet::new();
        for (r, shards) in &plan.placement {
            for (i, sp) in shards.iter().enumerate() {
                match current.get(r).and_then(|c| c.get(i)) {
                    Some(old) if old.primary == sp.primary => assert_eq!(old.epoch, sp.epoch),
                    _ => assert!(sp.epoch > epoch && fresh.insert(sp.epoch)),
                }
            }
        }
        assert_eq!(place(&live, &rs, &plan.placement, plan.last_epoch), plan, "stable");
    }
}
