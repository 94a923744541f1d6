//! `bnh list [--json] [--plugin LIB...] [--external NAME=COMMAND...]`.

use crate::error::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `bnh list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print a JSON array of {name, stable, description} (the bn-case/1 contract).
    #[arg(long)]
    json: bool,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
    /// A program checked out of process, as NAME=COMMAND (docs/EXTERNAL.md): listed by name; repeatable.
    #[arg(long = "external", value_name = "NAME=COMMAND")]
    pub externals: Vec<String>,
    /// Accepted as on `bnh check` (and validated), so one command line serves both.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::external::DEFAULT_TIMEOUT_SECS)]
    pub timeout: f64,
}

/// One entry of `bnh list --json`, fields in the contract's order.
#[derive(Serialize)]
struct Entry {
    name: &'static str,
    stable: bool,
    description: &'static str,
}

/// Print the registry and the loaded plugins.
pub fn run(args: ListArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    let timeout = crate::external::timeout(args.timeout)?;
    let externals = crate::external::parse_all(&args.externals, timeout)?;
    let mut infos: Vec<_> = crate::plugin::all().iter().map(|i| i.info()).collect();
    infos.extend(externals.iter().map(|e| e.info));
    if args.json {
        let entries: Vec<Entry> = infos
            .iter()
            .map(|i| Entry {
                name: i.name,
                stable: i.stable,
                description: i.description,
            })
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&entries).expect("plain data")
        );
    } else {
        let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4);
        for i in infos {
            let stable = if i.stable { "stable" } else { "unstable" };
            crate::outln!("{:width$}  {:8}  {}", i.name, stable, i.description);
        }
    }
    Ok(ExitCode::SUCCESS)
}
