//! bnh: verification and benchmarking harness for batch-norm implementations.
//!
//! The library behind the `bnh` binary; every module is public so tests,
//! the criterion benches (`benches/`) and the fuzz targets (`fuzz/`) can use it.
//!
//! - [`accuracy`]: `bnh accuracy`, each implementation's error against the oracle
//!   as inputs get ill-conditioned;
//! - [`bench`](mod@bench): timing (grids of shapes, options, workloads, runner, sweep,
//!   criterion import) into [`bench::Record`]s;
//! - [`case`]: bn-case/1 conformance files (`docs/BN-CASE-FORMAT.md`): parsing
//!   and structural checks;
//! - [`cli`]: the `bnh` command line, one file per subcommand;
//! - [`conformance`]: every case file × every implementation, judged by the tolerance rule;
//! - [`data`]: seeded random batches for tests and benchmarks;
//! - [`dd`]: double-double arithmetic (≈106-bit significands) for the oracle;
//! - [`error`]: the harness's error type, each message naming the problem and the fix;
//! - [`export`]: bench records written as CSV (the stable schema) or a terminal table;
//! - [`external`]: `--external NAME=COMMAND`, implementations run out of process (any language);
//! - [`fallible`]: kernels that may decline or fail, adapted to `Kernel<T>`;
//! - [`input`]: bounded reads and loop-safe folder walks of input files;
//! - [`interrupt`]: Ctrl-C during a sweep stops it cleanly, keeping what was measured;
//! - [`matrix`]: `bnh matrix`, implementations × capabilities computed from the cases;
//! - [`memory`]: memory budgets (`--max-memory`, the OS's available memory),
//!   checked before any buffer is allocated;
//! - [`num`]: numbers as case files write them (`"nan"`, `"inf"`, `"-inf"` as strings);
//! - [`oracle`]: the precise reference, in [`dd`] arithmetic, that tests measure errors against;
//! - [`output`]: every write (files, stdout): atomic, never over an input,
//!   locked where runs could race, and names from files escaped;
//! - `peers` (`--features peers`): candle and burn registered as implementations;
//! - [`plugin`]: `--plugin PATH`, C kernels loaded in-process (ABI v1, `include/bnh_kernel.h`);
//! - [`report`]: REPORT.md and SVG charts from bench and accuracy CSVs (the one
//!   place they are written);
//! - [`run`]: running one case with one implementation under the module rules;
//! - [`state_dict`]: a module's state as a safetensors file with PyTorch's key names;
//! - [`steps`]: multi-step cases (several calls on one module, `steps` in a case file);
//! - [`tolerance`]: the bn-case/1 agreement rule and the verdict on one run.

pub mod accuracy;
pub mod bench;
pub mod case;
pub mod cli;
pub mod compare;
pub mod conformance;
pub mod data;
pub mod dd;
pub mod error;
pub mod export;
pub mod external;
pub mod fallible;
pub mod input;
pub mod interrupt;
pub mod matrix;
pub mod memory;
pub mod num;
pub mod oracle;
pub mod output;
#[cfg(feature = "peers")]
pub mod peers;
pub mod plugin;
pub mod report;
pub mod run;
pub mod state_dict;
pub mod steps;
pub mod tolerance;

pub use error::{Error, Result};

use bn_impls::Implementation;

/// Implementations named on a command line (all registered ones and loaded
/// `--plugin`s when `names` is empty).
/// Names may be repeated flags or comma-separated lists.
pub fn select_impls(names: &[String]) -> Result<Vec<&'static dyn Implementation>> {
    if names.is_empty() {
        return Ok(plugin::all());
    }
    let mut out: Vec<&'static dyn Implementation> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if name.is_empty() {
            return Err(Error::Usage(
                "empty implementation name; see `bnh list`".into(),
            ));
        }
        let imp = plugin::by_name(name)?;
        if !out.iter().any(|i| i.info().name == name) {
            out.push(imp);
        }
    }
    Ok(out)
}
