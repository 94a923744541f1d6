//! The `bnh` command line: one file per subcommand.

mod accuracy;
mod all;
pub mod bench;
mod check;
mod compare;
mod import_criterion;
mod list;
mod matrix;
mod report;
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
    List(list::ListArgs),
    /// Run one bn-case/1 file with one implementation and write its outputs.
    RunCase(run_case::RunCaseArgs),
    /// Run every case with every implementation and judge them by the tolerance rule.
    Check(check::CheckArgs),
    /// Time implementations over a grid of shapes (table, optional CSV).
    Bench(bench::BenchArgs),
    /// Render REPORT.md and SVG charts from bench CSVs.
    Report(report::ReportArgs),
    /// The whole job: check on the shipped fixtures, time the quick grid, write the report.
    All(all::AllArgs),
    /// Convert `cargo bench` (criterion) results into a bench CSV.
    ImportCriterion(import_criterion::ImportCriterionArgs),
    /// Sweep input conditioning and measure every implementation's error against the oracle.
    Accuracy(accuracy::AccuracyArgs),
    /// Compare two bench CSVs: the change of every measurement, judged against noise.
    Compare(compare::CompareArgs),
    /// The conformance matrix: implementations × capabilities, computed from the cases (matrix.md, matrix.csv).
    Matrix(matrix::MatrixArgs),
}

/// Run a parsed command line; the exit code says whether checks passed.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::List(a) => list::run(a),
        Command::RunCase(a) => run_case::run(a),
        Command::Check(a) => check::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Report(a) => report::run(a),
        Command::All(a) => all::run(a),
        Command::ImportCriterion(a) => import_criterion::run(a),
        Command::Accuracy(a) => accuracy::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Matrix(a) => matrix::run(a),
    }
}
