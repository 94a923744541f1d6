//! `bnh matrix [PATH...] [--out DIR] [--impl NAME...] [--plugin LIB...]`.

use crate::conformance::shipped_fixtures;
use crate::error::{Error, Result};
use crate::matrix::{compute, render};
use crate::output::{check_out_dir, escape_path, refuse_overlap, write_atomic};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `bnh matrix`.
#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// Case files or folders of *.json cases (default: the fixtures shipped in the repo).
    paths: Vec<PathBuf>,
    /// Folder to write matrix.md and matrix.csv into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "reports/local")]
    out: PathBuf,
    /// Implementations to run (default: all of this run); repeat the flag or separate with commas.
    #[arg(long = "impl", alias = "impls", value_name = "NAME")]
    imps: Vec<String>,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
}

/// Compute the matrix, write `matrix.md` and `matrix.csv` atomically, print
/// the Markdown. Exit 0: the matrix describes, it does not gate (`bnh
/// check` does).
pub fn run(args: MatrixArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    let impls = crate::select_impls(&args.imps)?;
    let paths = if args.paths.is_empty() {
        vec![shipped_fixtures()]
    } else {
        args.paths
    };
    check_out_dir("--out", &args.out)?;
    let (md_path, csv_path) = (args.out.join("matrix.md"), args.out.join("matrix.csv"));
    let inputs: Vec<(&str, &Path)> = paths.iter().map(|p| ("case", p.as_path())).collect();
    refuse_overlap(
        &inputs,
        &[("--out", md_path.as_path()), ("--out", csv_path.as_path())],
    )?;
    let matrix = compute(&paths, &impls)?;
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::Usage(format!(
            "--out {}: cannot create the folder: {e}",
            escape_path(&args.out)
        ))
    })?;
    let md = render::markdown(&matrix);
    write_atomic(&md_path, md.as_bytes())?;
    write_atomic(&csv_path, render::csv(&matrix)?.as_bytes())?;
    crate::out!("{md}");
    crate::outln!("{}", render::summary(&matrix));
    crate::output::stdout::warn(&format!(
        "bnh matrix: wrote {} and {}",
        escape_path(&md_path),
        escape_path(&csv_path)
    ));
    Ok(ExitCode::SUCCESS)
}
