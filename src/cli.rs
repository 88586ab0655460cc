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
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { case, check } => replay_case(&case, check),
    }
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
    let Some(expected) = &case.expected else {
        eprintln!("{}: no \"expected\" in the case", path.display());
        return Ok(ExitCode::from(2));
    };
    let ordered = case_is_ordered(&case.sql);
    match replay::compare(&emissions, expected, ordered) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(m) => {
            eprintln!("{}: mismatch: {}", path.display(), m.message);
            Ok(ExitCode::from(1))
        }
    }
}

/// Rows of an emission are compared in order only when the rule sorts.
fn case_is_ordered(sql: &str) -> bool {
    matches!(weir_planner::parse_statement(sql), Ok(weir_planner::Statement::Select(s)) if !s.order_by.is_empty())
}
