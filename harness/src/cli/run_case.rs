//! `bnh run-case CASE --impl NAME --out OUT`.

use crate::case::{Case, Outputs};
use crate::error::Result;
use crate::output::{check_writable, refuse_overlap, write_atomic};
use crate::run::{run_case, Outcome};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `bnh run-case`.
#[derive(Debug, clap::Args)]
pub struct RunCaseArgs {
    /// The bn-case/1 file to run.
    case: PathBuf,
    /// The implementation to run it with (see `bnh list`).
    #[arg(long = "impl", value_name = "NAME")]
    imp: String,
    /// Where to write `{"outputs": {...}}` or `{"error": "..."}`.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// A C kernel plugin (include/bnh_kernel.h) to load and register under its own name; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
}

#[derive(Serialize)]
enum RunCaseReply<'a> {
    #[serde(rename = "outputs")]
    Outputs(&'a Outputs),
    #[serde(rename = "error")]
    Error(&'a str),
}

/// The reply of a multi-step case: the last step's reply (so a reader of
/// single cases finds `outputs` or `error` as usual) and every step's.
#[derive(Serialize)]
struct StepsReply<'a> {
    #[serde(flatten)]
    last: RunCaseReply<'a>,
    steps: Vec<RunCaseReply<'a>>,
}

/// One outcome as the reply of one call.
fn reply(outcome: &Outcome) -> RunCaseReply<'_> {
    match outcome {
        Outcome::Outputs(o) => RunCaseReply::Outputs(o),
        Outcome::Rejected(msg) | Outcome::Unsupported(msg) => RunCaseReply::Error(msg),
        Outcome::Steps(_) => unreachable!("steps do not nest"),
    }
}

/// The text written to `--out`: `{"outputs": ...}` or `{"error": ...}`; for a
/// multi-step case also `"steps": [...]`, one such object per step run.
pub fn reply_text(outcome: &Outcome) -> String {
    let mut text = match outcome {
        Outcome::Steps(steps) => {
            let last = steps
                .last()
                .map_or(RunCaseReply::Error("no step ran"), reply);
            serde_json::to_string(&StepsReply {
                last,
                steps: steps.iter().map(reply).collect(),
            })
        }
        single => serde_json::to_string(&reply(single)),
    }
    .expect("plain data");
    text.push('\n');
    text
}

/// Run the case and write the result; a rejected input is a result (exit 0),
/// an unreadable or invalid case file is an error (non-zero, nothing written).
pub fn run(args: RunCaseArgs) -> Result<ExitCode> {
    crate::plugin::load_all(&args.plugins)?;
    let imp = crate::plugin::by_name(&args.imp)?;
    // Before reading or running anything: never write over the case, and
    // know the output can be written.
    refuse_overlap(&[("", &args.case)], &[("--out", &args.out)])?;
    check_writable("--out", &args.out)?;
    let case = Case::load(&args.case)?;
    let outcome = run_case(&case, imp);
    write_atomic(&args.out, reply_text(&outcome).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
