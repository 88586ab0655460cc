//! A network partition in a three-node cluster (issue 8): every node's
//! raft peer is reached through a TCP proxy the test controls. The node
//! running a `qos: 2` rule is cut off (its proxy drops every connection),
//! so the majority gives the rule to the standby with a new epoch, while
//! the cut-off node stops its rules once it cannot read the metadata and
//! has its late writes refused by the fence. After healing, the node
//! rejoins. Outputs, deduplicated by id, are every event exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::brokers::{runtime, Mosquitto, Publisher, Subscriber};
use crate::cluster::{
    assert_placements_agree, create_exactly_once_rule, form, placed_on, sees_all_live, start_on, wait_until, Member,
    Outputs,
};
use crate::util::free_port;

/// A TCP proxy: forwards `listen` to `target` until cut; while cut it
/// drops open connections and refuses new ones.
struct Proxy {
    cut: Arc<AtomicBool>,
}

impl Proxy {
    fn start(rt: &tokio::runtime::Runtime, listen: &str, target: String) -> Proxy {
        let cut = Arc::new(AtomicBool::new(false));
        let listener = rt.block_on(tokio::net::TcpListener::bind(listen)).unwrap();
        let flag = cut.clone();
        rt.spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the peer sees a closed connection
                }
                let (target, flag) = (target.clone(), flag.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let up = tokio::io::copy(&mut ri, &mut wo);
                    let down = tokio::io::copy(&mut ro, &mut wi);
                    let cut = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy { cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

/// Rule `id`'s status as node `m` itself has it.
fn local_status(m: &Member, id: &str) -> serde_json::Value {
    let url = format!("{}/rules/{id}/status", m.server.url);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new().get(url).header("x-weir-forwarded", "1").send().await.unwrap();
        resp.json().await.unwrap()
    })
}

#[test]
fn exactly_once_across_a_partition_of_the_rules_node() {
    let _serial = crate::cluster::one_at_a_time();
    const EVENTS: u64 = 600;
    let root = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(root.path()) else { return };
    let port = broker.port;
    let rt = runtime();
    let mut proxies = Vec::new();
    let mut members: Vec<Option<Member>> = Vec::new();
    for name in ["a", "b", "c"] {
        let (real, front) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
        proxies.push(Proxy::start(&rt, &front, real.clone()));
        members.push(Some(start_on(root.path(), name, port, real, Some(front))));
    }
    form(&members);
    let [Some(a), _, Some(c)] = &members[..] else { unreachable!() };
    create_exactly_once_rule(a, c, "pt", port);
    let running = |m: &Member| {
        let st = m.server.call("GET", "/rules/pt/status", None);
        st.status == 200 && st.json()["status"] == "running"
    };
    wait_until(Duration::from_secs(20), "the rule placed and running", || {
        placed_on(&members, "pt").is_some() && members.iter().flatten().all(running)
    });
    std::thread::sleep(Duration::from_millis(500));

    let mut out = Outputs::default();
    let mut sub = rt.block_on(Subscriber::start(port, "pt-sub", "pt/out", 1, true));
    let mut publisher = rt.block_on(async { Publisher::new(port, "pt-pub") });
    let half = EVENTS / 2;
    rt.block_on(async {
        for i in 0..half {
            publisher.publish("pt/in", 1, json!({"seq": i}).to_string()).await;
        }
        publisher.wait_acked(half).await;
        out.drain(&mut sub, 30).await;
    });
    // Cut the rule's node off while it works on those events.
    let cut = placed_on(&members, "pt").expect("placed");
    proxies[cut].set_cut(true);
    // Out of the list while cut off: the checks below ask the majority.
    let cut_member = members[cut].take().unwrap();
    let start = std::time::Instant::now();
    while !(placed_on(&members, "pt").is_some() && members.iter().flatten().any(running)) {
        if start.elapsed() > Duration::from_secs(30) {
            for m in members.iter().flatten() {
                eprintln!("{}", m.server.call("GET", "/cluster/status", None).body);
                eprintln!("{}", m.server.call("GET", "/rules/pt/status", None).body);
            }
            panic!("the rule never ran on the majority side");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The cut-off node stops acting for the rule on its own (asked for
    // its own view: not forwarded to the node it thinks runs the rule),
    // once it has not read the metadata for 2 s; it abandons the rule
    // without a last checkpoint, which the fence would refuse.
    wait_until(Duration::from_secs(10), "the cut-off node stopping the rule", || {
        local_status(&cut_member, "pt")["status"] != "running"
    });
    eprintln!("partition: the cut-off node stopped the rule {} ms after the cut", start.elapsed().as_millis());
    rt.block_on(async {
        for i in half..EVENTS {
            publisher.publish("pt/in", 1, json!({"seq": i}).to_string()).await;
        }
        out.drain(&mut sub, 300).await;
    });
    // Heal: the node comes back as a member.
    proxies[cut].set_cut(false);
    members[cut] = Some(cut_member);
    wait_until(Duration::from_secs(30), "every member live again", || {
        members.iter().flatten().all(|m| sees_all_live(m, 3))
    });
    rt.block_on(async {
        publisher.wait_acked(EVENTS).await;
        out.collect_all(&mut sub, EVENTS).await;
    });
    out.assert_exactly_once(EVENTS, "partition");
    assert_placements_agree(&members);
    drop(broker);
}
