//! Mutual TLS between nodes: with certificates from one cluster CA (made
//! by `scripts/cluster-certs.sh`), nodes form a cluster and replicate rule
//! state; a node with a certificate of another CA, or without TLS, is
//! refused, for raft traffic and for state replication alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weir_cluster::replication::{ReplicaServer, ReplicatedBackend, ReplicationConfig};
use weir_cluster::{Cluster, ClusterConfig, ClusterTls};
use weir_runtime::state::{rule_prefix, MemoryBackend, Space, StateBackend, Write};

const LIMIT: Duration = Duration::from_secs(60);

/// Certificates for `nodes` under a CA of their own in `dir`, or `None`
/// (with a note) where `openssl` is missing.
fn certs(dir: &Path, nodes: &[&str]) -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-certs.sh");
    let out = std::process::Command::new("bash").arg(script).arg(dir).args(nodes).output().ok()?;
    if !out.status.success() {
        eprintln!("cluster-certs.sh failed (is openssl installed?): {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(dir.to_path_buf())
}

fn tls(dir: &Path, node: &str) -> ClusterTls {
    ClusterTls::from_pem_files(&dir.join(format!("{node}.pem")), &dir.join(format!("{node}.key")), &dir.join("ca.pem"))
        .unwrap()
}

fn config(id: u64, dir: &tempfile::TempDir, tls: Option<ClusterTls>) -> ClusterConfig {
    ClusterConfig {
        tick: Duration::from_millis(20),
        request_timeout: Duration::from_secs(3),
        tls,
        ..ClusterConfig::new(id, "127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_one_ca_form_a_cluster_and_others_are_refused() {
    let certs_dir = tempfile::tempdir().unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    let (Some(good), Some(rogue)) = (certs(certs_dir.path(), &["a", "b"]), certs(rogue_dir.path(), &["x"])) else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let a = Cluster::start(config(1, &dirs[0], Some(tls(&good, "a")))).await.unwrap();
        a.init().await.unwrap();
        let seed = a.local_addr().to_string();
        let b = Cluster::start(config(2, &dirs[1], Some(tls(&good, "b")))).await.unwrap();
        b.join(&seed).await.unwrap();
        // A write through the follower reaches the leader over TLS.
        let put = weir_cluster::Command::PutStream { name: "s".into(), sql: "CREATE STREAM s ()".into() };
        b.propose(put).await.unwrap();
        assert!(a.metadata().await.unwrap().streams.contains_key("s"));

        // Another CA's certificate, or no TLS at all: the join is refused
        // in the handshake and the cluster keeps its two members.
        let x = Cluster::start(config(3, &dirs[2], Some(tls(&rogue, "x")))).await.unwrap();
        assert!(x.join(&seed).await.is_err(), "a node of another CA joined");
        let plain = Cluster::start(config(4, &dirs[3], None)).await.unwrap();
        assert!(plain.join(&seed).await.is_err(), "a node without TLS joined");
        assert_eq!(a.status().await.unwrap().members.len(), 2);
        for c in [a, b, x, plain] {
            c.shutdown().await;
        }
    })
    .await
    .expect("test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_replicates_over_tls_and_a_foreign_primary_is_refused() {
    let certs_dir = tempfile::tempdir().unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    let (Some(good), Some(rogue)) = (certs(certs_dir.path(), &["a", "b"]), certs(rogue_dir.path(), &["x"])) else {
        return;
    };
    tokio::time::timeout(LIMIT, async {
        let with = |t: ClusterTls| ReplicationConfig {
            timeout: Duration::from_secs(3),
            tls: Some(t),
            ..ReplicationConfig::default()
        };
        let replica: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
        let server =
            ReplicaServer::bind("127.0.0.1:0".parse().unwrap(), replica.clone(), with(tls(&good, "b"))).await.unwrap();
        let addr = server.local_addr().to_string();
        fn key(s: &[u8]) -> Vec<u8> {
            [rule_prefix("r"), s.to_vec()].concat()
        }
        let write = |k: &[u8]| vec![Write::Put(Space::Checkpoints, key(k), b"v".to_vec())];
        for (config, allowed) in [(with(tls(&good, "a")), true), (with(tls(&rogue, "x")), false)] {
            let primary = Arc::new(ReplicatedBackend::new(Arc::new(MemoryBackend::default()), config).unwrap());
            primary.set_standby("r", Some(&addr), 1);
            let synced: Result<(), String> = tokio::task::spawn_blocking(move || {
                primary.sync_standby("r").map_err(|e| e.to_string())?;
                primary.write(write(b"k"), true).map_err(|e| e.to_string())
            })
            .await
            .unwrap();
            assert_eq!(synced.is_ok(), allowed, "{synced:?}");
        }
        // Only the primary of the cluster's CA wrote to the standby.
        let keys: Vec<Vec<u8>> =
            replica.scan(Space::Checkpoints, &rule_prefix("r")).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![key(b"k")]);
    })
    .await
    .expect("test finished in time");
}

#[test]
fn unusable_pem_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let e = ClusterTls::from_pem_files(&junk, &junk, &junk).unwrap_err().to_string();
    assert!(e.contains("certificate") && e.contains("junk.pem"), "{e}");
    let e = ClusterTls::from_pem_files(&missing, &junk, &junk).unwrap_err().to_string();
    assert!(e.contains("missing.pem"), "{e}");
}
