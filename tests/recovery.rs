//! Exactly-once across crashes (issue 5 item 5): a real mosquitto, a real
//! `weir serve` process killed with SIGKILL at random moments and
//! restarted on the same data directory, two `qos: 2` rules (a count
//! window and a stateless one) whose MQTT outputs carry their ids in the
//! payload (`idField`). At the end the outputs, deduplicated by id, must
//! equal what a run without failures gives (computed from the input), and
//! no id may carry two different payloads.
//!
//! Skipped (with a note) when mosquitto is not installed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{runtime, Mosquitto, Publisher, Subscriber};
use crate::util::{created, Server};

/// Sequence-numbered events published in all.
pub(crate) const EVENTS: i64 = 2000;
/// Kill/restart rounds.
const ROUNDS: usize = 20;
/// Count window size of the windowed rule.
const WINDOW: i64 = 10;

/// A small xorshift generator: random kill moments, reproducible from the
/// printed seed (`WEIR_KILL_SEED` replays one).
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from `env_var` if set, else from the clock; the seed is
    /// printed so that a failing run can be replayed.
    pub(crate) fn new(what: &str, env_var: &str) -> Rng {
        let seed = std::env::var(env_var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("{what}: seed {seed} ({env_var}={seed} replays it)");
        Rng(seed)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Starts `weir serve` on `dir/data` with `dir/etc/mqtt_source.yaml`.
pub(crate) fn serve(dir: &Path, source_yaml: &str) -> Server {
    let etc = dir.join("etc");
    std::fs::create_dir_all(etc.join("sources")).unwrap();
    std::fs::write(etc.join("mqtt_source.yaml"), source_yaml).unwrap();
    Server::start_with(&dir.join("data"), &["--etc-dir", etc.to_str().unwrap()])
}

/// Every output seen: id -> payload (without the id), plus how many
/// messages arrived in all.
#[derive(Default)]
pub(crate) struct Outputs {
    by_id: HashMap<String, serde_json::Value>,
    pub(crate) received: usize,
    conflicts: Vec<String>,
}

impl Outputs {
    /// Records one received output.
    pub(crate) fn take(&mut self, topic: &str, payload: &[u8]) {
        let mut v: serde_json::Value =
            serde_json::from_slice(payload).unwrap_or_else(|e| panic!("{topic}: not JSON ({e})"));
        let id = v.as_object_mut().and_then(|m| m.remove("_id")).unwrap_or_else(|| panic!("{topic}: no _id in {v}"));
        let id = format!("{topic}#{}", id.as_str().expect("string id"));
        self.received += 1;
        match self.by_id.get(&id) {
            Some(old) if *old != v => self.conflicts.push(format!("{id}: {old} then {v}")),
            Some(_) => {}
            None => {
                self.by_id.insert(id, v);
            }
        }
    }

    /// The deduplicated payloads of `topic`, counted.
    fn of(&self, topic: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (id, v) in &self.by_id {
            if id.starts_with(&format!("{topic}#")) {
                *m.entry(v.to_string()).or_insert(0) += 1;
            }
        }
        m
    }
}

/// What a failure-free run outputs, computed from the input.
fn expected() -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let pass = (0..EVENTS).map(|i| (json!({"seq": i}).to_string(), 1)).collect();
    let win =
        (0..EVENTS / WINDOW).map(|w| (json!({"c": WINDOW, "last": w * WINDOW + WINDOW - 1}).to_string(), 1)).collect();
    (pass, win)
}

/// The source configuration: one connection per rule, each with a fixed
/// client id, so a persistent session keeps what arrives while weir is
/// down. Both subscribe at QoS 1.
pub(crate) fn source_yaml(port: u16) -> String {
    source_yaml_with(port, 1)
}

/// [`source_yaml`] with the windowed rule subscribing at `win_qos` (a
/// message arrives at the lower of its publish's and the subscription's
/// QoS).
pub(crate) fn source_yaml_with(port: u16, win_qos: u8) -> String {
    format!(
        "default:\n  server: tcp://127.0.0.1:{port}\n  qos: {win_qos}\n  clientid: weir-kill-src-win\n\
         pass:\n  server: tcp://127.0.0.1:{port}\n  qos: 1\n  clientid: weir-kill-src-pass\n"
    )
}

/// Starts weir on `dir` with the two `qos: 2` rules reading `kill/in` and
/// writing `kill/out/<rule>` (ids in `_id`), and waits until both sources
/// are connected.
pub(crate) fn start_rules(dir: &Path, port: u16) -> Server {
    start_rules_with(dir, port, 1)
}

/// [`start_rules`] with the windowed rule's source subscribing at
/// `win_qos` ([`source_yaml_with`]).
pub(crate) fn start_rules_with(dir: &Path, port: u16, win_qos: u8) -> Server {
    let server = serve(dir, &source_yaml_with(port, win_qos));
    let stream = |name: &str, key: &str| {
        json!({"sql": format!(
            "CREATE STREAM {name} () WITH (DATASOURCE=\"kill/in\", FORMAT=\"JSON\", CONF_KEY=\"{key}\")")})
        .to_string()
    };
    created(&server, "/streams", &stream("swin", "default"));
    created(&server, "/streams", &stream("spass", "pass"));
    let options = json!({"qos": 2, "checkpointInterval": 200});
    let action = |rule: &str| {
        json!({"mqtt": {"server": format!("tcp://127.0.0.1:{port}"), "topic": format!("kill/out/{rule}"),
            "qos": 1, "sendSingle": true, "idField": "_id", "clientId": format!("weir-kill-sink-{rule}")}})
    };
    let rule =
        |id: &str, sql: &str| json!({"id": id, "sql": sql, "actions": [action(id)], "options": options}).to_string();
    created(
        &server,
        "/rules",
        &rule("win", &format!("SELECT count(*) AS c, max(seq) AS last FROM swin GROUP BY COUNTWINDOW({WINDOW})")),
    );
    created(&server, "/rules", &rule("pass", "SELECT seq FROM spass"));

    // Fresh client ids have no session yet: wait until both sources are
    // connected (and have had time to subscribe) before publishing.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (id, source) in [("win", "swin"), ("pass", "spass")] {
        let key = format!("source_{source}_0_connection_status");
        while server.call("GET", &format!("/rules/{id}/status"), None).json()[&key] != json!(1) {
            assert!(Instant::now() < deadline, "rule {id}'s source did not connect");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    server
}

/// Takes what `sub` receives for `for_ms`.
pub(crate) fn drain(rt: &tokio::runtime::Runtime, sub: &mut Subscriber, out: &mut Outputs, for_ms: u64) {
    rt.block_on(async {
        let until = tokio::time::Instant::now() + Duration::from_millis(for_ms);
        while let Ok((topic, payload)) = tokio::time::timeout_at(until, sub.next()).await {
            out.take(&topic, &payload);
        }
    })
}

/// Waits (up to 60 s) for every expected output, takes late duplicates
/// for a second, stops `server` and checks: no id with two payloads, and
/// the outputs deduplicated by id equal the failure-free run's.
pub(crate) fn check_outputs(
    what: &str,
    rt: &tokio::runtime::Runtime,
    sub: &mut Subscriber,
    mut out: Outputs,
    server: Server,
    started: Instant,
) {
    let (want_pass, want_win) = expected();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.of("kill/out/pass").len() < want_pass.len() || out.of("kill/out/win").len() < want_win.len())
        && Instant::now() < deadline
    {
        drain(rt, sub, &mut out, 200);
    }
    // Late duplicates (a conflicting payload would show here).
    drain(rt, sub, &mut out, 1000);
    let status = |id: &str| server.call("GET", &format!("/rules/{id}/status"), None).json();
    let (s_win, s_pass) = (status("win"), status("pass"));
    server.kill();

    let unique = out.by_id.len();
    eprintln!(
        "{what}: {} messages received, {unique} distinct ids, {} duplicates dropped, {:.1} s",
        out.received,
        out.received - unique,
        started.elapsed().as_secs_f64()
    );
    assert!(out.conflicts.is_empty(), "ids with two different payloads: {:?}", out.conflicts);
    let (got_pass, got_win) = (out.of("kill/out/pass"), out.of("kill/out/win"));
    let diff = |got: &BTreeMap<String, usize>, want: &BTreeMap<String, usize>| {
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).take(10).collect();
        let extra: Vec<_> = got.iter().filter(|(k, n)| want.get(*k) != Some(n)).take(10).collect();
        let ids: Vec<_> = extra
            .iter()
            .take(3)
            .map(|(k, _)| out.by_id.iter().filter(|(_, v)| v.to_string() == **k).map(|(id, _)| id).collect::<Vec<_>>())
            .collect();
        format!("missing {missing:?}, extra or repeated under another id {extra:?} (ids {ids:?})")
    };
    assert!(
        got_pass == want_pass && got_win == want_win,
        "stateless rule: {} (status {}); windowed rule: {} (status {})",
        diff(&got_pass, &want_pass),
        s_pass["status"],
        diff(&got_win, &want_win),
        s_win["status"]
    );
}

#[test]
fn kill_9_loop_outputs_deduplicated_by_id_equal_a_failure_free_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start_in(dir.path()) else { return };
    let port = broker.port;
    let started = Instant::now();
    let mut rng = Rng::new("kill -9 loop", "WEIR_KILL_SEED");
    let rt = runtime();
    let mut sub = rt.block_on(Subscriber::start(port, "kill-sub", "kill/out/#", 1, true));
    let mut publisher = rt.block_on(async { Publisher::new(port, "kill-pub") });

    let mut server = start_rules(dir.path(), port);
    let mut out = Outputs::default();
    let per_round = EVENTS / ROUNDS as i64;
    for round in 0..ROUNDS {
        // A chunk of events, then weir dies at a random moment while it
        // works on them (or on what it restored).
        rt.block_on(async {
            for i in round as i64 * per_round..(round as i64 + 1) * per_round {
                publisher.publish("kill/in", 1, json!({"seq": i}).to_string()).await;
            }
        });
        drain(&rt, &mut sub, &mut out, rng.below(400));
        server.kill();
        drain(&rt, &mut sub, &mut out, rng.below(50));
        server = serve(dir.path(), &source_yaml(port));
    }
    rt.block_on(publisher.wait_acked(EVENTS as u64));
    check_outputs(&format!("kill -9 loop, {ROUNDS} rounds"), &rt, &mut sub, out, server, started);
    drop(broker);
}
