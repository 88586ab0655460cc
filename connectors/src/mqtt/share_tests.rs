//! Shards of a rule reading MQTT through shared subscriptions, against
//! mosquitto (skipped when it is not installed), and which streams a
//! sharded rule can read.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use weir_runtime::row::Payload;

use super::source::SourceConfig;
use super::tests::{
    collect_until, env, free_port, numbers, source_config, start_mosquitto, start_source, terminate, text, Publisher,
    LIMIT,
};
use crate::{Environment, ShardOf, SourceContext};

type Output = (mpsc::Receiver<Vec<Payload>>, watch::Sender<bool>, tokio::task::JoinHandle<()>);

fn shard(port: u16, topics: &str, extra: serde_json::Value, rule: &str, index: u32) -> SourceConfig {
    let mut c = source_config(port, topics, extra);
    c.share(rule, index);
    c
}

fn qos_of(qos: u8) -> rumqttc::QoS {
    if qos == 1 {
        rumqttc::QoS::AtLeastOnce
    } else {
        rumqttc::QoS::ExactlyOnce
    }
}

/// Publishes probes on `topic` every 100 ms until every output has shown
/// one: with a share group, each probe reaches one member only. Returns
/// the other payloads seen meanwhile, per output.
async fn wait_all_subscribed(
    publisher: &Publisher,
    topic: &str,
    outputs: &mut [&mut mpsc::Receiver<Vec<Payload>>],
) -> Vec<Vec<Payload>> {
    let mut others: Vec<Vec<Payload>> = outputs.iter().map(|_| Vec::new()).collect();
    let mut probed = vec![false; outputs.len()];
    tokio::time::timeout(LIMIT, async {
        while probed.contains(&false) {
            publisher.publish(topic, rumqttc::QoS::AtMostOnce, "\"probe\"").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            for (i, rx) in outputs.iter_mut().enumerate() {
                while let Ok(batch) = rx.try_recv() {
                    for p in batch {
                        if text(&p) == "\"probe\"" {
                            probed[i] = true;
                        } else {
                            others[i].push(p);
                        }
                    }
                }
            }
        }
    })
    .await
    .expect("every subscription established");
    others
}

/// Collects what `rx` still hands out within `quiet` of the last batch.
async fn drain(rx: &mut mpsc::Receiver<Vec<Payload>>, got: &mut Vec<Payload>, quiet: Duration) {
    while let Ok(Some(batch)) = tokio::time::timeout(quiet, rx.recv()).await {
        got.extend(batch.into_iter().filter(|p| text(p) != "\"probe\""));
    }
}

/// Every number in `got`, asserting none came twice.
fn once(got: &[Payload], who: &str) -> BTreeSet<i64> {
    let all: Vec<i64> = got.iter().filter_map(|p| text(p).parse().ok()).collect();
    let set: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "{who} got a message twice");
    set
}

/// Shards 0 and 1 of `rule` (and a plain source when `plain`) on one
/// node read 200 messages published at `qos`: the shards get disjoint
/// parts whose union is everything; the plain source gets everything.
async fn split_between_shards(port: u16, rule: &str, qos: u8, extra: serde_json::Value, plain: bool) {
    let env: Environment = env();
    let topic = format!("{rule}/a");
    let filter = format!("{rule}/+");
    let mut outs: Vec<Output> =
        (0..2).map(|i| start_source(&env, shard(port, &filter, extra.clone(), rule, i), 64)).collect();
    if plain {
        outs.push(start_source(&env, source_config(port, &filter, extra.clone()), 64));
    }
    let publisher = Publisher::new(port, &format!("pub-{rule}"));
    let mut rxs: Vec<&mut mpsc::Receiver<Vec<Payload>>> = outs.iter_mut().map(|o| &mut o.0).collect();
    let mut got = wait_all_subscribed(&publisher, &format!("{rule}/probe"), &mut rxs).await;
    // One connection per shard, and the plain source's own.
    assert_eq!(env.mqtt().connections(), outs.len());

    let mut publisher = publisher;
    for i in 0..200 {
        publisher.publish(&topic, qos_of(qos), i.to_string()).await;
    }
    publisher.wait_acked(200).await;
    let (first, rest) = outs.split_at_mut(1);
    let (g0, g_rest) = got.split_at_mut(1);
    // The shards together reach 200; then nothing more may come.
    tokio::time::timeout(LIMIT, async {
        while numbers(&g0[0]).len() + numbers(&g_rest[0]).len() < 200 {
            tokio::select! {
                Some(b) = first[0].0.recv() => g0[0].extend(b.into_iter().filter(|p| text(p) != "\"probe\"")),
                Some(b) = rest[0].0.recv() => g_rest[0].extend(b.into_iter().filter(|p| text(p) != "\"probe\"")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("shards got {} + {} of 200", numbers(&g0[0]).len(), numbers(&g_rest[0]).len()));
    for (o, g) in outs.iter_mut().zip(got.iter_mut()) {
        drain(&mut o.0, g, Duration::from_millis(300)).await;
    }
    let (s0, s1) = (once(&got[0], "shard 0"), once(&got[1], "shard 1"));
    assert!(s0.is_disjoint(&s1), "both shards got {:?}", s0.intersection(&s1).collect::<Vec<_>>());
    assert_eq!(s0.union(&s1).copied().collect::<BTreeSet<_>>(), (0..200).collect::<BTreeSet<_>>());
    // mosquitto deals round robin: neither shard is starved.
    assert!(s0.len() >= 50 && s1.len() >= 50, "split {} / {}", s0.len(), s1.len());
    eprintln!("{rule}: QoS {qos} split {} / {}", s0.len(), s1.len());
    if plain {
        collect_until(&mut outs[2].0, &mut got[2], |g| numbers(g).len() >= 200).await;
        assert_eq!(once(&got[2], "plain source"), (0..200).collect::<BTreeSet<_>>());
    }
    for (_, stop, task) in outs {
        stop.send_replace(true);
        let _ = tokio::time::timeout(LIMIT, task).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_a_topic_at_qos1_and_a_plain_source_reads_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut broker) = start_mosquitto(dir.path(), port) else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    // A fixed clientid: the shards' clients are weir-split-s0 and
    // weir-split-s1 (one id for both would make the broker drop one).
    split_between_shards(port, "split", 1, serde_json::json!({"clientid": "weir-split", "qos": 1}), true).await;
    terminate(&mut broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_a_topic_at_qos2_over_mqtt5_and_mqtt311() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut broker) = start_mosquitto(dir.path(), port) else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    split_between_shards(port, "q2v5", 2, serde_json::json!({"qos": 2, "protocolVersion": "5"}), false).await;
    split_between_shards(port, "q2v3", 2, serde_json::json!({"qos": 2, "clientid": "weir-q2"}), false).await;
    terminate(&mut broker);
}

#[test]
fn a_shard_subscribes_in_its_rule_group_under_its_own_client_id() {
    let with_id = |i| shard(1883, "a/+, b", serde_json::json!({"clientid": "c"}), "r/1", i);
    let (s0, s1) = (with_id(0), with_id(1));
    assert_eq!(s0.conn.client_id.as_deref(), Some("c-s0"));
    assert_eq!(s1.conn.client_id.as_deref(), Some("c-s1"));
    assert_eq!(s0.filters, ["a/+", "b"]);
    assert_eq!(s0.conn.wire_filter("a/+"), "$share/weir-r_1/a/+");
    assert_ne!(s0.conn, s1.conn, "shards must not share a connection");
    let generated = shard(1883, "a", serde_json::json!({}), "r", 0);
    assert_eq!(generated.conn.client_id, None);
    let plain = source_config(1883, "a", serde_json::json!({}));
    assert_eq!(plain.conn.wire_filter("a"), "a");
}

fn stream(name: &str, kind: weir_planner::StreamKind, ty: Option<&str>) -> weir_planner::StreamDef {
    weir_planner::StreamDef {
        name: name.into(),
        kind,
        fields: None,
        options: weir_planner::StreamOptions {
            datasource: Some("a".into()),
            source_type: ty.map(str::to_string),
            ..Default::default()
        },
        sql: String::new(),
    }
}

#[test]
fn only_mqtt_streams_are_shardable() {
    use weir_planner::StreamKind::{Stream, Table};
    assert_eq!(crate::shardable(&stream("s", Stream, None)), Ok(()));
    assert_eq!(crate::shardable(&stream("s", Stream, Some("MQTT"))), Ok(()));
    let e = crate::shardable(&stream("demo", Stream, Some("httppush"))).unwrap_err();
    assert_eq!(
        e,
        "a sharded rule reads its input through MQTT shared subscriptions; stream demo has TYPE=\"httppush\""
    );
    for ty in ["memory", "file", "neuron", "simulator", "httppull", "sql", "someplugin"] {
        assert!(crate::shardable(&stream("s", Stream, Some(ty))).is_err(), "{ty}");
    }
    assert!(crate::shardable(&stream("t", Table, Some("mqtt"))).is_err());

    // A sharded context refuses such a stream rather than hand every
    // shard the whole input; one shard of one is no split.
    let env = env();
    let cx = |count| SourceContext { rule_id: "r".into(), shard: Some(ShardOf { index: 0, count }) };
    let push = stream("demo", Stream, Some("httppush"));
    let err = crate::rule_source(&push, &cx(2), &env).err().expect("refused");
    assert!(matches!(err, crate::Error::NotShardable(_)), "{err}");
    assert!(crate::rule_source(&stream("s", Stream, Some("memory")), &cx(1), &env).is_ok());
}

/// Shard 0 of rule `rule` stops (and its session is ended when `end`);
/// 100 messages are published at QoS 1; then shard 0 starts again on
/// another node (environment). Returns what
/// shard 1 got meanwhile and what shard 0 got once back, asserting that
/// none came twice and that together they got everything.
async fn stop_publish_restart(
    port: u16,
    rule: &str,
    extra: serde_json::Value,
    end: bool,
) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let filter = format!("{rule}/+");
    let (env0, env1) = (env(), env());
    let mut o0 = start_source(&env0, shard(port, &filter, extra.clone(), rule, 0), 64);
    let mut o1 = start_source(&env1, shard(port, &filter, extra.clone(), rule, 1), 64);
    let mut publisher = Publisher::new(port, &format!("pub-{rule}"));
    let mut got = wait_all_subscribed(&publisher, &format!("{rule}/probe"), &mut [&mut o0.0, &mut o1.0]).await;
    o0.1.send_replace(true);
    tokio::time::timeout(LIMIT, o0.2).await.expect("shard 0 stops").unwrap();
    if end {
        let def = weir_planner::StreamDef {
            name: "s".into(),
            kind: weir_planner::StreamKind::Stream,
            fields: None,
            options: weir_planner::StreamOptions {
                datasource: Some(filter.clone()),
                extra: Some(extra.to_string()),
                ..Default::default()
            },
            sql: String::new(),
        };
        let e = env();
        e.set_source_conf("mqtt", serde_json::json!({"default": {"server": format!("tcp://127.0.0.1:{port}")}}))
            .unwrap();
        let cx = SourceContext { rule_id: rule.into(), shard: Some(ShardOf { index: 0, count: 2 }) };
        crate::end_shard_session(&def, &cx, &e, LIMIT).await.expect("session ended");
    }
    // Its connection is closed before the publishes reach the broker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..100 {
        publisher.publish(&format!("{rule}/a"), rumqttc::QoS::AtLeastOnce, i.to_string()).await;
    }
    publisher.wait_acked(100).await;
    let env2 = env();
    let mut back = start_source(&env2, shard(port, &filter, extra, rule, 0), 64);
    let mut got_back = Vec::new();
    // The broker chose each message's shard as it was published: reading
    // them now rather than before shard 0 is back changes nothing.
    let without_probes = |b: Vec<Payload>| b.into_iter().filter(|p| text(p) != "\"probe\"");
    tokio::time::timeout(LIMIT, async {
        while numbers(&got[1]).len() + numbers(&got_back).len() < 100 {
            tokio::select! {
                Some(b) = o1.0.recv() => got[1].extend(without_probes(b)),
                Some(b) = back.0.recv() => got_back.extend(without_probes(b)),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("got {} + {} of 100", numbers(&got[1]).len(), numbers(&got_back).len()));
    drain(&mut o1.0, &mut got[1], Duration::from_millis(300)).await;
    drain(&mut back.0, &mut got_back, Duration::from_millis(300)).await;
    let (s1, s0) = (once(&got[1], "shard 1"), once(&got_back, "shard 0 back"));
    assert!(s0.is_disjoint(&s1), "both shards got {:?}", s0.intersection(&s1).collect::<Vec<_>>());
    assert_eq!(s0.union(&s1).copied().collect::<BTreeSet<_>>(), (0..100).collect::<BTreeSet<_>>());
    eprintln!("{rule}: shard 1 got {}, shard 0 (away, then back) {}", s1.len(), s0.len());
    for (_, stop, task) in [o1, back] {
        stop.send_replace(true);
        let _ = tokio::time::timeout(LIMIT, task).await;
    }
    (s1, s0)
}

/// What failover relies on: mosquitto (2.0) keeps dealing an offline
/// member with a persistent session its share of the messages, queued in
/// the session, and hands them to whoever connects with that client id
/// (the shard's standby), not to the other members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_shard_keeps_its_share_queued_for_its_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut broker) = start_mosquitto(dir.path(), port) else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    let kept = serde_json::json!({"clientid": "weir-kept", "qos": 1});
    let (s1, s0) = stop_publish_restart(port, "kept", kept, false).await;
    assert!(s0.len() >= 30 && s1.len() >= 30, "split {} / {}", s1.len(), s0.len());
    let kept5 = serde_json::json!({"clientid": "weir-kept5", "qos": 1, "protocolVersion": "5"});
    let (s1, s0) = stop_publish_restart(port, "kept5", kept5, false).await;
    assert!(s0.len() >= 30 && s1.len() >= 30, "MQTT 5 split {} / {}", s1.len(), s0.len());
    // Without a clientid the stopped shard's session ends: the others
    // get its share.
    let (s1, s0) = stop_publish_restart(port, "clean", serde_json::json!({"qos": 1}), false).await;
    assert_eq!((s1.len(), s0.len()), (100, 0));
    terminate(&mut broker);
}

/// A shard gone for good: ending its session gives its share back to the
/// others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_shard_session_gives_its_share_to_the_other_shards() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(mut broker) = start_mosquitto(dir.path(), port) else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    let extra = serde_json::json!({"clientid": "weir-ended", "qos": 1});
    let (s1, s0) = stop_publish_restart(port, "ended", extra, true).await;
    assert_eq!((s1.len(), s0.len()), (100, 0));
    let extra = serde_json::json!({"clientid": "weir-ended5", "qos": 1, "protocolVersion": "5"});
    let (s1, s0) = stop_publish_restart(port, "ended5", extra, true).await;
    assert_eq!((s1.len(), s0.len()), (100, 0));
    terminate(&mut broker);
}
