//! The CLI's REST client: `weir stream|table|rule ...` talk to a running
//! node (`weir serve`, or eKuiper itself) over its REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Default address of the REST API.
pub(crate) const DEFAULT_HOST: &str = "http://127.0.0.1:9081";

/// `weir stream ...` / `weir table ...`.
#[derive(Debug, Args)]
pub(crate) struct StreamArgs {
    #[command(subcommand)]
    command: StreamCommand,
    /// REST API of the node.
    #[arg(long, global = true, default_value = DEFAULT_HOST)]
    host: String,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create from a statement, e.g. `CREATE STREAM demo () WITH (DATASOURCE="t")`.
    Create {
        /// The CREATE statement.
        sql: String,
    },
    /// Replace a definition with a new CREATE statement of the same name.
    Replace {
        /// Name.
        name: String,
        /// The CREATE statement.
        sql: String,
    },
    /// List the names.
    List,
    /// Show a definition (eKuiper's statement JSON).
    Describe {
        /// Name.
        name: String,
    },
    /// Drop a definition.
    Drop {
        /// Name.
        name: String,
        /// Drop even if rules use it.
        #[arg(long)]
        force: bool,
    },
}

/// `weir rule ...`.
#[derive(Debug, Args)]
pub(crate) struct RuleArgs {
    #[command(subcommand)]
    command: RuleCommand,
    /// REST API of the node.
    #[arg(long, global = true, default_value = DEFAULT_HOST)]
    host: String,
}

#[derive(Debug, Subcommand)]
enum RuleCommand {
    /// Create (and start, unless `"triggered": false`) a rule from eKuiper rule JSON.
    Create {
        /// Rule id; set in the JSON if it has none, must match if it has one.
        id: String,
        /// The rule JSON inline (instead of --file).
        json: Option<String>,
        /// A file holding the rule JSON.
        #[arg(long, short)]
        file: Option<PathBuf>,
    },
    /// Replace a rule's definition (restarts it).
    Update {
        /// Rule id.
        id: String,
        /// The rule JSON inline (instead of --file).
        json: Option<String>,
        /// A file holding the rule JSON.
        #[arg(long, short)]
        file: Option<PathBuf>,
    },
    /// Check rule JSON without creating the rule.
    Validate {
        /// The rule JSON inline (instead of --file).
        json: Option<String>,
        /// A file holding the rule JSON.
        #[arg(long, short)]
        file: Option<PathBuf>,
    },
    /// List rules with their status.
    List,
    /// Show a rule's JSON.
    Show {
        /// Rule id.
        id: String,
    },
    /// Show a rule's status and metrics.
    Status {
        /// Rule id.
        id: String,
    },
    /// Show a rule's topology.
    Topo {
        /// Rule id.
        id: String,
    },
    /// Start a rule.
    Start {
        /// Rule id.
        id: String,
    },
    /// Stop a rule.
    Stop {
        /// Rule id.
        id: String,
    },
    /// Restart a rule.
    Restart {
        /// Rule id.
        id: String,
    },
    /// Drop a rule.
    Drop {
        /// Rule id.
        id: String,
    },
}

/// A REST call: method, path, optional JSON body.
pub(crate) struct Call {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
}

impl Call {
    pub(crate) fn get(path: impl Into<String>) -> Call {
        Call { method: reqwest::Method::GET, path: path.into(), body: None }
    }

    pub(crate) fn post(path: impl Into<String>, body: Option<Value>) -> Call {
        Call { method: reqwest::Method::POST, path: path.into(), body }
    }

    pub(crate) fn put(path: impl Into<String>, body: Value) -> Call {
        Call { method: reqwest::Method::PUT, path: path.into(), body: Some(body) }
    }

    pub(crate) fn delete(path: impl Into<String>) -> Call {
        Call { method: reqwest::Method::DELETE, path: path.into(), body: None }
    }
}

/// `weir stream ...` (`table` false) or `weir table ...`.
pub(crate) fn stream(args: &StreamArgs, table: bool) -> anyhow::Result<ExitCode> {
    let base = if table { "/tables" } else { "/streams" };
    let call = match &args.command {
        StreamCommand::Create { sql } => Call::post(base, Some(serde_json::json!({ "sql": sql }))),
        StreamCommand::Replace { name, sql } => {
            Call::put(format!("{base}/{}", seg(name)?), serde_json::json!({ "sql": sql }))
        }
        StreamCommand::List => Call::get(base),
        StreamCommand::Describe { name } => Call::get(format!("{base}/{}", seg(name)?)),
        StreamCommand::Drop { name, force } => {
            Call::delete(format!("{base}/{}{}", seg(name)?, if *force { "?force=true" } else { "" }))
        }
    };
    execute(&args.host, call)
}

/// `weir rule ...`.
pub(crate) fn rule(args: &RuleArgs) -> anyhow::Result<ExitCode> {
    let call = match &args.command {
        RuleCommand::Create { id, json, file } => Call::post("/rules", Some(rule_json(Some(id), json, file)?)),
        RuleCommand::Update { id, json, file } => {
            Call::put(format!("/rules/{}", seg(id)?), rule_json(Some(id), json, file)?)
        }
        RuleCommand::Validate { json, file } => Call::post("/rules/validate", Some(rule_json(None, json, file)?)),
        RuleCommand::List => Call::get("/rules"),
        RuleCommand::Show { id } => Call::get(format!("/rules/{}", seg(id)?)),
        RuleCommand::Status { id } => Call::get(format!("/rules/{}/status", seg(id)?)),
        RuleCommand::Topo { id } => Call::get(format!("/rules/{}/topo", seg(id)?)),
        RuleCommand::Start { id } => Call::post(format!("/rules/{}/start", seg(id)?), None),
        RuleCommand::Stop { id } => Call::post(format!("/rules/{}/stop", seg(id)?), None),
        RuleCommand::Restart { id } => Call::post(format!("/rules/{}/restart", seg(id)?), None),
        RuleCommand::Drop { id } => Call::delete(format!("/rules/{}", seg(id)?)),
    };
    execute(&args.host, call)
}

/// A name as a URL path segment: names are `[a-zA-Z0-9_-]+`, so anything
/// else is refused here rather than sent.
pub(crate) fn seg(name: &str) -> anyhow::Result<&str> {
    if crate::error::valid_name(name) {
        Ok(name)
    } else {
        bail!("invalid name {name:?}: names match ^[a-zA-Z0-9_\\-]+$")
    }
}

/// The rule JSON from the argument or the file, with `id` set.
fn rule_json(id: Option<&str>, inline: &Option<String>, file: &Option<PathBuf>) -> anyhow::Result<Value> {
    let text = match (inline, file) {
        (Some(_), Some(_)) => bail!("give the rule JSON inline or with --file, not both"),
        (Some(t), None) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        (None, None) => bail!("the rule JSON is missing: pass it inline or with --file rule.json"),
    };
    let mut v: Value = serde_json::from_str(&text).context("the rule is not valid JSON")?;
    let Some(map) = v.as_object_mut() else { bail!("the rule JSON must be an object") };
    if let Some(id) = id {
        match map.iter().find(|(k, _)| k.eq_ignore_ascii_case("id")).map(|(_, v)| v.clone()) {
            None | Some(Value::Null) => {
                map.insert("id".to_string(), id.into());
            }
            Some(Value::String(s)) if s == id => {}
            Some(other) => bail!("the rule JSON has id {other}, but the command names {id}"),
        }
    }
    Ok(v)
}

/// Sends `call`, prints the answer; exit 0 on success, 1 on an error
/// answer (its message printed to stderr).
pub(crate) fn execute(host: &str, call: Call) -> anyhow::Result<ExitCode> {
    let url = format!("{}{}", host.trim_end_matches('/'), call.path);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(call.method.clone(), &url);
        if let Some(b) = &call.body {
            req = req.json(b);
        }
        let resp =
            req.send().await.with_context(|| format!("cannot reach weir at {host} (is `weir serve` running?)"))?;
        let status = resp.status();
        let body = resp.text().await.context("cannot read the answer")?;
        anyhow::Ok((status, body))
    })?;
    if status.is_success() {
        // Rule status keys are in eKuiper's order; re-encoding would sort them.
        let shown = if call.path.ends_with("/status") { body.trim_end().to_string() } else { render(&body) };
        println!("{shown}");
        return Ok(ExitCode::SUCCESS);
    }
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    eprintln!("weir: {} ({status})", message);
    Ok(ExitCode::from(1))
}

/// JSON answers pretty-printed; sentences as they are.
fn render(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => {
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| body.to_string())
        }
        _ => body.trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_json_sets_and_checks_id() {
        let v = rule_json(Some("r1"), &Some(r#"{"sql":"SELECT 1"}"#.into()), &None).unwrap();
        assert_eq!(v["id"], "r1");
        assert!(rule_json(Some("r1"), &Some(r#"{"id":"r2"}"#.into()), &None).is_err());
        assert!(rule_json(Some("r1"), &None, &None).is_err());
        assert!(rule_json(None, &Some("[1]".into()), &None).is_err());
        assert!(seg("a/b").is_err());
    }
}
