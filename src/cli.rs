//! Command-line interface.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weir_runtime::replay;

/// weir: stream processing for the industrial edge, speaking eKuiper's SQL.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a replay case (REPLAY.md) and print what the rule's sink receives.
    Replay {
        /// The case file (JSON).
        case: PathBuf,
        /// Compare with the case's `expected` and exit 1 on a mismatch.
        #[arg(long)]
        check: bool,
    },
    /// Measure a rule's throughput on generated events (issue #3 item 5).
    Bench(crate::bench::BenchArgs),
    /// Run a node: the eKuiper-compatible REST API over persisted streams, tables and rules.
    Serve(ServeArgs),
    /// Create, list, describe and drop streams on a running node.
    Stream(crate::client::StreamArgs),
    /// Create, list, describe and drop tables on a running node.
    Table(crate::client::StreamArgs),
    /// Create, inspect, start, stop and drop rules on a running node.
    Rule(crate::client::RuleArgs),
    /// Register, list and drop ONNX models on a running node.
    Model(crate::extension_cli::ModelArgs),
    /// Install, list and drop portable (Python) and native (C/C++) plugins on a running node.
    Plugin(crate::extension_cli::PluginArgs),
    /// Register, list and drop HTTP model services on a running node.
    Service(crate::extension_cli::ServiceArgs),
    /// Form and inspect a cluster: init, join ADDR, leave, status.
    Cluster(crate::extension_cli::ClusterArgs),
    /// A live factory demo: embedded broker, simulated furnaces, four rules (one runs an ONNX model), Neuron write-back.
    Demo(crate::demo::DemoArgs),
}

/// `weir serve` options.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address of the REST API (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9081")]
    bind: String,
    /// Where streams, tables and rules are stored (created if missing).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// eKuiper configuration directory: `mqtt_source.yaml` and
    /// `sources/<type>.yaml` give source defaults and `CONF_KEY` sections.
    #[arg(long, default_value = "etc")]
    etc_dir: PathBuf,
    /// Threads running rules (default: one per CPU).
    #[arg(long)]
    rule_threads: Option<usize>,
    /// Run as a cluster node: the address other nodes reach this one's
    /// raft peer at (then `weir cluster init` or `weir cluster join`).
    #[arg(long)]
    cluster_listen: Option<std::net::SocketAddr>,
    /// The cluster address to advertise, when it differs from --cluster-listen.
    #[arg(long, requires = "cluster_listen")]
    cluster_advertise: Option<String>,
    /// Mutual TLS between the nodes: this node's certificate (PEM, with
    /// the DNS name `weir-cluster`; see scripts/cluster-certs.sh). Needs
    /// --cluster-tls-key and --cluster-tls-ca.
    #[arg(long, requires_all = ["cluster_listen", "cluster_tls_key", "cluster_tls_ca"])]
    cluster_tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, requires = "cluster_tls_cert")]
    cluster_tls_key: Option<PathBuf>,
    /// The cluster CA certificate (PEM): peers must present a certificate
    /// it signed.
    #[arg(long, requires = "cluster_tls_cert")]
    cluster_tls_ca: Option<PathBuf>,
    /// HTTP worker threads (default: 2).
    #[arg(long, default_value_t = 2)]
    http_workers: usize,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { case, check } => replay_case(&case, check),
        Command::Bench(args) => crate::bench::main(&args),
        Command::Serve(args) => serve(&args),
        Command::Stream(args) => crate::client::stream(&args, false),
        Command::Table(args) => crate::client::stream(&args, true),
        Command::Rule(args) => crate::client::rule(&args),
        Command::Model(args) => crate::extension_cli::model(&args),
        Command::Plugin(args) => crate::extension_cli::plugin(&args),
        Command::Service(args) => crate::extension_cli::service(&args),
        Command::Cluster(args) => crate::extension_cli::cluster(&args),
        Command::Demo(args) => crate::demo::main(&args),
    }
}

/// `weir serve`: opens the node in the data directory (its rules come back)
/// and serves the REST API until SIGINT/SIGTERM.
fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let threads = args.rule_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let system = actix::System::new();
    system.block_on(async {
        let tls = match (&args.cluster_tls_cert, &args.cluster_tls_key, &args.cluster_tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(weir_cluster::ClusterTls::from_pem_files(cert, key, ca)?),
            _ => None,
        };
        let cluster = args.cluster_listen.map(|listen| crate::node::ClusterOptions {
            listen,
            advertise: args.cluster_advertise.clone(),
            tls: tls.clone(),
        });
        let node = crate::node::Node::open(&args.data_dir, Some(&args.etc_dir), threads, cluster.as_ref())
            .await
            .with_context(|| format!("cannot open the data directory {}", args.data_dir.display()))?;
        if let Some(c) = node.cluster() {
            println!("weir: cluster node {} on {}", c.id(), c.local_addr());
            actix::spawn(node.clone().follow_cluster());
        }
        crate::api::serve(node, &args.bind, args.http_workers)
            .await
            .with_context(|| format!("cannot serve on {}", args.bind))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Exit codes: 0 ok, 1 mismatch (with `--check`), 2 invalid case.
fn replay_case(path: &PathBuf, check: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let case = replay::parse_case(&text).with_context(|| format!("{}", path.display()))?;
    let emissions = replay::run_case(&case).with_context(|| format!("{}", path.display()))?;
    println!("{}", replay::render(&emissions));
    if !check {
        return Ok(ExitCode::SUCCESS);
    }
    if case.expected.is_none() {
        eprintln!("{}: no \"expected\" in the case", path.display());
        return Ok(ExitCode::from(2));
    }
    match replay::check(&case, &emissions) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(m) => {
            eprintln!("{}: mismatch: {}", path.display(), m.message);
            Ok(ExitCode::from(1))
        }
    }
}
