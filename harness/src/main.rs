//! `bnh`: the harness command line. See `bnh --help`.

use bn_harness::output::stdout;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = bn_harness::cli::Cli::parse();
    let code = match bn_harness::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = match e {
                bn_harness::Error::Interrupted(_) => ExitCode::from(130),
                _ => ExitCode::from(2),
            };
            // Control characters (from names in files) are escaped; line breaks kept.
            let text = e.to_string();
            let shown: Vec<_> = text.split('\n').map(bn_harness::output::escape).collect();
            stdout::warn(&format!("bnh: error: {}", shown.join("\n")));
            code
        }
    };
    // Files are written by now; a stdout failure only changes the status.
    stdout::finish(code)
}
