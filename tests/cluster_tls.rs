//! `weir serve --cluster-tls-cert/--cluster-tls-key/--cluster-tls-ca`:
//! two nodes with certificates of one cluster CA (from
//! `scripts/cluster-certs.sh`) form a cluster with the CLI and share a
//! stream; a node started without TLS cannot join them, and a node given
//! a bad key file does not start.

use std::path::Path;
use std::process::Command;

use crate::cluster::{cli, sees_all_live, wait_until, Member};
use crate::util::{free_port, repo_root, weir_bin, Server};

fn start(root: &Path, name: &str, certs: Option<&Path>) -> Member {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--cluster-listen".to_string(), addr.clone()];
    if let Some(c) = certs {
        let file = |f: String| c.join(f).to_string_lossy().into_owned();
        args.extend([
            "--cluster-tls-cert".into(),
            file(format!("{name}.pem")),
            "--cluster-tls-key".into(),
            file(format!("{name}.key")),
            "--cluster-tls-ca".into(),
            file("ca.pem".into()),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Member { server: Server::start_with(&root.join(name).join("data"), &args), addr }
}

#[test]
fn nodes_with_the_cluster_ca_form_a_cluster_and_a_plain_node_cannot_join() {
    let _serial = crate::cluster::one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let certs = root.path().join("certs");
    let made =
        Command::new("bash").arg(repo_root().join("scripts/cluster-certs.sh")).arg(&certs).args(["a", "b"]).output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("scripts/cluster-certs.sh failed (openssl missing?): skipped");
        return;
    }
    let a = start(root.path(), "a", Some(&certs));
    let b = start(root.path(), "b", Some(&certs));
    cli(&a, &["init"]);
    cli(&b, &["join", &a.addr]);
    wait_until(std::time::Duration::from_secs(20), "both members live", || {
        sees_all_live(&a, 2) && sees_all_live(&b, 2)
    });
    let stream = r#"{"sql":"CREATE STREAM tls_s () WITH (DATASOURCE=\"t/in\", FORMAT=\"json\")"}"#;
    crate::util::created(&a.server, "/streams", stream);
    wait_until(std::time::Duration::from_secs(10), "the stream on the other node", || {
        b.server.call("GET", "/streams", None).json() == serde_json::json!(["tls_s"])
    });

    // Without a certificate the handshake fails: the join is refused.
    let plain = start(root.path(), "plain", None);
    let out =
        Command::new(weir_bin()).args(["cluster", "join", &a.addr, "--host", &plain.server.url]).output().unwrap();
    assert!(!out.status.success(), "a node without TLS joined: {}", String::from_utf8_lossy(&out.stdout));
    assert!(sees_all_live(&a, 2), "the cluster still has its two members");

    // A key file that is not a key: the node says so and does not start.
    let bad = Command::new(weir_bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(root.path().join("bad"))
        .args(["--cluster-listen", &format!("127.0.0.1:{}", free_port()), "--cluster-tls-cert"])
        .arg(certs.join("a.pem"))
        .arg("--cluster-tls-key")
        .arg(certs.join("a.pem"))
        .arg("--cluster-tls-ca")
        .arg(certs.join("ca.pem"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("private key"), "{err}");
}
