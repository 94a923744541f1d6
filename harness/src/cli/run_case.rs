//! `bnh run-case CASE --impl NAME --out OUT`.

use crate::case::{Case, Outputs};
use crate::error::{Error, Result};
use crate::output::{check_writable, refuse_overlap, write_atomic};
use crate::run::{run_case_with_state, Outcome};
use crate::state_dict;
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
    /// Start the module from this safetensors state dict (PyTorch's keys:
    /// weight, bias, running_mean, running_var, num_batches_tracked) instead
    /// of the case's `inputs` parameters and buffers.
    #[arg(long = "state-in", value_name = "FILE")]
    state_in: Option<PathBuf>,
    /// Write the module's state after the run (after the last step) as a
    /// safetensors state dict that `safetensors.torch.load_file` reads.
    #[arg(long = "save-state", value_name = "OUT")]
    save_state: Option<PathBuf>,
    /// Key prefix of the state dict for --state-in and --save-state, e.g.
    /// `bn1.` for the module `bn1` of a model (default: none).
    #[arg(long = "state-prefix", value_name = "PREFIX", default_value = "")]
    state_prefix: String,
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
    let mut inputs = vec![("", args.case.as_path())];
    inputs.extend(args.state_in.as_deref().map(|p| ("--state-in", p)));
    let mut outputs = vec![("--out", args.out.as_path())];
    outputs.extend(args.save_state.as_deref().map(|p| ("--save-state", p)));
    refuse_overlap(&inputs, &outputs)?;
    for (flag, path) in &outputs {
        check_writable(flag, path)?;
    }
    if args.state_in.is_none() && args.save_state.is_none() && !args.state_prefix.is_empty() {
        return Err(Error::Usage(
            "--state-prefix without --state-in or --save-state; it names the keys of a state dict"
                .into(),
        ));
    }
    let case = Case::load(&args.case)?;
    let initial = match &args.state_in {
        Some(path) => Some(state_dict::read(
            path,
            &args.state_prefix,
            state_dict::Expect::of(&case),
        )?),
        None => None,
    };
    let (outcome, state) = run_case_with_state(&case, imp, initial.as_ref());
    if let Some(path) = &args.save_state {
        let Some(state) = state else {
            let why = match &outcome {
                Outcome::Rejected(m) | Outcome::Unsupported(m) => m.as_str(),
                _ => "no module",
            };
            return Err(Error::Usage(format!(
                "--save-state: the case's module could not be built ({why}); there is no state to save"
            )));
        };
        state_dict::write(path, &state, &args.state_prefix)?;
    }
    write_atomic(&args.out, reply_text(&outcome).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
