//! A broker restart under the cluster (issue 8): three nodes run a
//! `qos: 2` rule fed through mosquitto (persistence on), and mosquitto is
//! stopped and started again while the rule's node reads its input and
//! publishes its outputs. The rule stays on its node, reconnects, and the
//! outputs, deduplicated by id, are every event exactly once; afterwards
//! every node agrees on the placement.
//!
//! Each chunk of input is acknowledged by the broker before the restart
//! (see [`crate::broker_restart`] for why a publisher cut off mid-publish
//! could leave the broker with a second copy or none).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{runtime, Mosquitto, Publisher, Subscriber};
use crate::cluster::{
    assert_placements_agree, create_exactly_once_rule, form, one_at_a_time, placed_on, running_everywhere,
    start_members, wait_until, Outputs,
};

#[test]
fn exactly_once_across_broker_restarts_under_the_cluster() {
    let _serial = one_at_a_time();
    const EVENTS: u64 = 600;
    const RESTARTS: u64 = 3;
    let root = tempfile::tempdir().unwrap();
    let Some(mut broker) = Mosquitto::start_in(root.path()) else { return };
    let port = broker.port;
    let members = start_members(root.path(), port);
    form(&members);
    let [Some(a), _, Some(c)] = &members[..] else { unreachable!() };
    create_exactly_once_rule(c, a, "br", port);
    wait_until(Duration::from_secs(20), "the rule placed and running", || {
        placed_on(&members, "br").is_some() && running_everywhere(&members, "br")
    });
    let on = placed_on(&members, "br").unwrap();

    let rt = runtime();
    let mut out = Outputs::default();
    let mut sub = rt.block_on(Subscriber::start(port, "br-sub", "br/out", 1, true));
    let chunk = EVENTS / (RESTARTS + 1);
    let mut recoveries = Vec::new();
    for round in 0..=RESTARTS {
        let restarted = (round > 0).then(Instant::now);
        rt.block_on(async {
            // A publisher per chunk, connected after the last restart.
            let mut publisher = Publisher::new(port, &format!("br-pub-{round}"));
            for i in round * chunk..(round + 1) * chunk {
                publisher.publish("br/in", 1, json!({"seq": i}).to_string()).await;
            }
            publisher.wait_acked(chunk).await;
            // Recovery: from the broker's restart to the first output of
            // the chunk published after it.
            let before = out.seqs().range(round * chunk..).count();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while out.seqs().range(round * chunk..).count() == before && tokio::time::Instant::now() < deadline {
                out.drain(&mut sub, 20).await;
            }
            if let Some(t) = restarted {
                recoveries.push(t.elapsed());
            }
            // The next restart comes while the rule still works on the
            // chunk (a different moment each round).
            out.drain(&mut sub, 50 + round * 100).await;
        });
        if round < RESTARTS {
            broker.restart();
        }
    }
    rt.block_on(out.collect_all(&mut sub, EVENTS));
    out.assert_exactly_once(EVENTS, "broker restarts under the cluster");
    eprintln!("broker restart -> first output of the next chunk: {recoveries:?}");
    assert_eq!(placed_on(&members, "br"), Some(on), "a broker restart does not move the rule");
    assert_placements_agree(&members);
    drop(broker);
}
