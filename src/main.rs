//! The `weir` command: arguments in, exit code out.

mod alloc;
mod api;
mod bench;
mod cli;
mod client;
mod demo;
mod error;
mod extension_cli;
mod node;
mod rules;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // Errors only by default; the demo's embedded broker logs normal disconnects as errors.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weir: {e:#}");
            ExitCode::from(2)
        }
    }
}
