//! Three real `Cluster`s on 127.0.0.1 (free ports, RocksDB in temp dirs):
//! init + join, a proposal on a follower, leader loss and failover.
//! Every wait is bounded; the whole test has a hard timeout.

use std::future::Future;
use std::time::Duration;

use weir_cluster::{Cluster, ClusterConfig, ClusterStatus, Command, Error};

const LIMIT: Duration = Duration::from_secs(60);

fn config(id: u64, dir: &tempfile::TempDir) -> ClusterConfig {
    ClusterConfig {
        // 20 ms ticks: elections within 200–400 ms, leases of 600 ms.
        tick: Duration::from_millis(20),
        request_timeout: Duration::from_secs(10),
        ..ClusterConfig::new(id, "127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf())
    }
}

/// Polls `f` every 20 ms until it returns `Some`, at most 15 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(c: &Cluster) -> ClusterStatus {
    c.status().await.expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster_forward_proposals_and_survive_losing_the_leader() {
    tokio::time::timeout(LIMIT, scenario()).await.expect("test finished in time");
}

async fn scenario() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Cluster::start(config(1, &dirs[0])).await.unwrap();
    a.init().await.unwrap();
    assert!(matches!(a.init().await, Err(Error::AlreadyInitialized)));
    let seed = a.local_addr().to_string();
    let b = Cluster::start(config(2, &dirs[1])).await.unwrap();
    // A join adds a learner, which the leader promotes once it caught up;
    // `join` returns when the node is a voter.
    let started = std::time::Instant::now();
    b.join(&seed).await.unwrap();
    let joined_b = started.elapsed();
    let c = Cluster::start(config(3, &dirs[2])).await.unwrap();
    // Join through a follower: it forwards the conf change to the leader.
    let started = std::time::Instant::now();
    c.join(&b.local_addr().to_string()).await.unwrap();
    let joined_c = started.elapsed();
    println!("join to voter: {joined_b:?} (via the leader), {joined_c:?} (via a follower), 20 ms ticks");
    c.join(&seed).await.unwrap(); // idempotent
    let nodes = [a, b, c];

    let s = status(&nodes[0]).await;
    assert_eq!(s.leader, Some(1));
    assert_eq!(s.members.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(s.members.iter().all(|m| !m.learner), "all promoted: {s:?}");
    let voters = s.progress.iter().filter(|p| !p.learner).count();
    assert_eq!(voters, 3, "{s:?}");

    // A proposal on a follower is forwarded, applied, and visible everywhere.
    let put = Command::PutRule { id: "r1".into(), json: r#"{"sql":"SELECT * FROM s"}"#.into(), shards: 3 };
    nodes[2].propose(put).await.unwrap();
    for n in &nodes {
        let md = n.metadata().await.unwrap();
        assert!(md.rules.contains_key("r1"), "node {} has the rule", n.id());
    }
    // The leader places every shard with a standby on another node.
    let placement = eventually("placement", || async {
        let p = status(&nodes[1]).await.placement;
        p.get("r1").filter(|s| s.len() == 3 && s.iter().all(|sp| sp.standby.is_some())).cloned()
    })
    .await;
    assert!(placement.iter().all(|sp| sp.standby != Some(sp.primary)));
    // Each primary reports its standby synced (as a node does once it has
    // copied the shard's state over): only then may a standby take over.
    for (i, sp) in placement.iter().enumerate() {
        let standby = sp.standby.unwrap();
        let report = Command::StandbySynced { rule: "r1".into(), shard: i as u32, epoch: sp.epoch, standby };
        nodes[1].propose(report).await.unwrap();
    }
    let placement = eventually("synced standbys", || async {
        let p = status(&nodes[1]).await.placement;
        p.get("r1").filter(|s| s.iter().all(|sp| sp.synced)).cloned()
    })
    .await;

    // The leader reports replication progress of every voter.
    let progress = eventually("replication progress", || async {
        let p = status(&nodes[0]).await.progress;
        (p.len() == 3).then_some(p)
    })
    .await;
    assert!(progress.iter().all(|p| p.matched > 0), "{progress:?}");

    // Kill the leader (node 1): the others elect a new one.
    let [a, b, c] = nodes;
    let old_term = status(&a).await.term;
    drop(a);
    let leader = eventually("a new leader", || async {
        let s = status(&b).await;
        s.leader.filter(|l| *l != 1 && s.term > old_term)
    })
    .await;
    let (survivor, other) = if leader == 2 { (&b, &c) } else { (&c, &b) };
    survivor.propose(Command::PutStream { name: "s".into(), sql: "CREATE STREAM s ()".into() }).await.unwrap();
    other.propose(Command::PutTable { name: "t".into(), sql: "CREATE TABLE t ()".into() }).await.unwrap();
    let md = other.metadata().await.unwrap();
    assert!(md.streams.contains_key("s") && md.tables.contains_key("t"));

    // Node 1's lease expires: it is marked down and no shard runs on it;
    // shards it led got fresh epochs (fencing it).
    let after = eventually("failover off node 1", || async {
        let md = survivor.metadata().await.ok()?;
        let down = md.nodes.get(&1).is_some_and(|n| !n.live);
        let shards = md.placement.get("r1")?;
        let clear = shards.iter().all(|sp| sp.primary != 1 && sp.standby != Some(1) && sp.standby.is_some());
        (down && clear).then(|| shards.clone())
    })
    .await;
    for (old, new) in placement.iter().zip(&after) {
        if old.primary == 1 {
            assert!(new.epoch > old.epoch, "failed-over shard got a fresh epoch: {old:?} -> {new:?}");
        }
    }
    // A commit by the deposed primary's epoch is fenced.
    if let Some((i, old)) = placement.iter().enumerate().find(|(_, sp)| sp.primary == 1) {
        let stale =
            Command::CommitCheckpoint { rule: "r1".into(), shard: i as u32, shard_epoch: old.epoch, checkpoint: 1 };
        assert!(matches!(survivor.propose(stale).await, Err(Error::Rejected(_))));
    }
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_from_its_data_dir() {
    tokio::time::timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let a = Cluster::start(config(1, &dir)).await.unwrap();
        a.init().await.unwrap();
        a.propose(Command::PutStream { name: "s".into(), sql: "CREATE STREAM s ()".into() }).await.unwrap();
        a.shutdown().await;
        let a = Cluster::start(config(1, &dir)).await.unwrap();
        let md = eventually("re-election", || async { a.metadata().await.ok() }).await;
        assert!(md.streams.contains_key("s"));
        assert!(matches!(a.init().await, Err(Error::AlreadyInitialized)));
        // A node that never joined cannot serve reads or leave.
        let d2 = tempfile::tempdir().unwrap();
        let lone = Cluster::start(config(2, &d2)).await.unwrap();
        assert!(matches!(lone.metadata().await, Err(Error::NotInitialized)));
        assert!(matches!(lone.leave().await, Err(Error::NotInitialized)));
        lone.shutdown().await;
        a.shutdown().await;
    })
    .await
    .expect("test finished in time");
}
