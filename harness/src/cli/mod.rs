//! The `bnh` command line: one file per subcommand.

mod accuracy;
mod check;
mod list;
mod run_case;

use crate::error::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// bnh: verify and benchmark batch-norm implementations.
#[derive(Debug, Parser)]
#[command(name = "bnh", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered implementations.
    List(list::Args),
    /// Run one bn-case/1 file with one implementation and write its outputs.
    RunCase(run_case::Args),
    /// Run every case with every implementation and judge them by the tolerance rule.
    Check(check::Args),
    /// Sweep input conditioning and measure every implementation's error against the oracle.
    Accuracy(accuracy::Args),
}

/// Run a parsed command line; the exit code says whether checks passed.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::List(a) => list::run(a),
        Command::RunCase(a) => run_case::run(a),
        Command::Check(a) => check::run(a),
        Command::Accuracy(a) => accuracy::run(a),
    }
}
