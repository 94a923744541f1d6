//! `bnh`: the harness command line. See `bnh --help`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = bn_harness::cli::Cli::parse();
    match bn_harness::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bnh: error: {e}");
            ExitCode::from(2)
        }
    }
}
