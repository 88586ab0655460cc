//! `weir model|plugin|service|cluster ...`: register the models rules call,
//! and form clusters, on a running node through its REST API (see
//! `src/api/plugins.rs` and `src/api/cluster.rs`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::client::{execute, seg, Call, DEFAULT_HOST};

/// `weir model ...`: ONNX models, called as `infer('<name>', ...)`.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
    /// REST API of the node.
    #[arg(long, global = true, default_value = DEFAULT_HOST)]
    host: String,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Register an ONNX model file under a name.
    Create {
        /// Model name, as `infer` takes it.
        name: String,
        /// The `.onnx` file (on the node's machine).
        file: String,
    },
    /// List the models with their inputs and outputs.
    List,
    /// Show one model's inputs and outputs.
    Describe {
        /// Model name.
        name: String,
    },
    /// Remove a model.
    Drop {
        /// Model name.
        name: String,
    },
}

/// Kinds of plugins.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PluginKind {
    /// eKuiper portable plugins (Python with the `ekuiper` SDK).
    Portable,
    /// C/C++ model libraries (`plugins/include/weir_model.h`).
    Native,
}

impl PluginKind {
    fn base(self) -> &'static str {
        match self {
            PluginKind::Portable => "/plugins/portables",
            PluginKind::Native => "/plugins/native",
        }
    }
}

/// `weir plugin ...`.
#[derive(Debug, Args)]
pub(crate) struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
    /// REST API of the node.
    #[arg(long, global = true, default_value = DEFAULT_HOST)]
    host: String,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Install a plugin: a portable zip or folder, or a native `.so`.
    Create {
        /// Plugin kind.
        kind: PluginKind,
        /// Plugin name.
        name: String,
        /// The package (portable) or library (native) file.
        file: String,
        /// Native: prefix of the SQL function names.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Native: JSON configuration passed to `weir_model_init`.
        #[arg(long)]
        config: Option<String>,
        /// Portable: arguments of the package's `install.sh`.
        #[arg(long = "shell-para")]
        shell_paras: Vec<String>,
    },
    /// List the plugins of a kind.
    List {
        /// Plugin kind.
        kind: PluginKind,
    },
    /// Show one plugin.
    Describe {
        /// Plugin kind.
        kind: PluginKind,
        /// Plugin name.
        name: String,
    },
    /// Show a portable plugin's process status.
    Status {
        /// Plugin name.
        name: String,
    },
    /// Remove a plugin.
    Drop {
        /// Plugin kind.
        kind: PluginKind,
        /// Plugin name.
        name: String,
    },
}

/// `weir service ...`: HTTP model services.
#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
    /// REST API of the node.
    #[arg(long, global = true, default_value = DEFAULT_HOST)]
    host: String,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Register a service from its JSON definition (inline or a file path).
    Create {
        /// `{"name","address","functions":[{"name","path"}],...}` or a file holding it.
        definition: String,
    },
    /// List the services.
    List,
    /// Show one service.
    Describe {
        /// Service name.
        name: String,
    },
    /// Remove a service.
    Drop {
        /// Service name.
        name: String,
    },
}

/// A file argument as the node should read it: an existing local path is
/// made absolute (the node may run elsewhere in the tree); `file://` and
/// other forms pass unchanged.
fn file_arg(file: &str) -> String {
    let p = Path::new(file);
    if !file.contains("://") && p.exists() {
        if let Ok(abs) = std::fs::canonicalize(p) {
            return abs.display().to_string();
        }
    }
    file.to_string()
}

/// `weir model ...`.
pub(crate) fn model(args: &ModelArgs) -> anyhow::Result<ExitCode> {
    let call = match &args.command {
        ModelCommand::Create { name, file } => {
            Call::post("/models", Some(json!({"name": name, "file": file_arg(file)})))
        }
        ModelCommand::List => Call::get("/models"),
        ModelCommand::Describe { name } => Call::get(format!("/models/{}", seg(name)?)),
        ModelCommand::Drop { name } => Call::delete(format!("/models/{}", seg(name)?)),
    };
    execute(&args.host, call)
}

/// `weir plugin ...`.
pub(crate) fn plugin(args: &PluginArgs) -> anyhow::Result<ExitCode> {
    let call = match &args.command {
        PluginCommand::Create { kind, name, file, prefix, config, shell_paras } => {
            let body = match kind {
                PluginKind::Portable => json!({"name": name, "file": file_arg(file), "shellParas": shell_paras}),
                PluginKind::Native => {
                    let config: Value = match config {
                        Some(c) => serde_json::from_str(c).context("--config is not valid JSON")?,
                        None => json!({}),
                    };
                    json!({"name": name, "file": file_arg(file), "prefix": prefix, "config": config})
                }
            };
            Call::post(kind.base(), Some(body))
        }
        PluginCommand::List { kind } => Call::get(kind.base()),
        PluginCommand::Describe { kind, name } => Call::get(format!("{}/{}", kind.base(), seg(name)?)),
        PluginCommand::Status { name } => Call::get(format!("/plugins/portables/{}/status", seg(name)?)),
        PluginCommand::Drop { kind, name } => Call::delete(format!("{}/{}", kind.base(), seg(name)?)),
    };
    execute(&args.host, call)
}

/// `weir service ...`.
pub(crate) fn service(args: &ServiceArgs) -> anyhow::Result<ExitCode> {
    let call = match &args.command {
        ServiceCommand::Create { definition } => {
            let text = if definition.trim_start().starts_with('{') {
                definition.clone()
            } else {
                std::fs::read_to_string(definition).with_context(|| format!("cannot read {definition}"))?
            };
            let v: Value = serde_json::from_str(&text).context("the service definition is not valid JSON")?;
            if !v.is_object() {
                bail!("the service definition must be a JSON object");
            }
            Call::post("/services", Some(v))
        }
        ServiceCommand::List => Call::get("/services"),
        ServiceCommand::Describe { name } => Call::get(format!("/services/{}", seg(name)?)),
        ServiceCommand::Drop { name } => Call::delete(format!("/services/{}", seg(name)?)),
    };
    execute(&args.host, call)
}

/// `weir cluster ...`: form and inspect a cluster of nodes started with
/// `weir serve --cluster-listen ADDR`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    /// REST API of the node to act on.
    #[arg(long, global = true, default_value = DEFAULT_HOST)]
    host: String,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Make the node a new one-node cluster.
    Init,
    /// Join the node to the cluster of the member at ADDR (its --cluster-listen address).
    Join {
        /// Cluster address of any member, `host:port`.
        addr: String,
    },
    /// Take the node out of its cluster; its rules move to other nodes.
    Leave,
    /// Remove a member that is gone for good (so it no longer counts for the quorum).
    Remove {
        /// The member's id (see `weir cluster status`).
        id: u64,
    },
    /// Members, leader, term, replication progress and rule placement.
    Status,
}

/// `weir cluster ...`.
pub(crate) fn cluster(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let call = match &args.command {
        ClusterCommand::Init => Call::post("/cluster/init", None),
        ClusterCommand::Join { addr } => Call::post("/cluster/join", Some(json!({ "addr": addr }))),
        ClusterCommand::Leave => Call::post("/cluster/leave", None),
        ClusterCommand::Remove { id } => Call::post("/cluster/remove", Some(json!({ "id": id }))),
        ClusterCommand::Status => Call::get("/cluster/status"),
    };
    execute(&args.host, call)
}
