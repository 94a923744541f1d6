//! bnh: verification and benchmarking harness for batch-norm implementations.
//!
//! - [`case`]: bn-case/1 conformance files; [`run`]: running one through the module rules;
//! - [`tolerance`]: the bn-case/1 agreement rule; [`conformance`]: cases × implementations;
//! - [`oracle`] (in [`dd`] double-double arithmetic): the precise reference tests measure errors against;
//! - [`data`]: seeded random batches for tests and benchmarks;
//! - [`cli`]: the `bnh` command line.

pub mod accuracy;
pub mod bench;
pub mod case;
pub mod cli;
pub mod conformance;
pub mod data;
pub mod dd;
pub mod error;
pub mod export;
pub mod num;
pub mod oracle;
pub mod output;
pub mod report;
pub mod run;
pub mod tolerance;

pub use error::{Error, Result};

use bn_impls::Implementation;

/// Implementations named on a command line (all registered ones when `names` is empty).
/// Names may be repeated flags or comma-separated lists.
pub fn select_impls(names: &[String]) -> Result<Vec<&'static dyn Implementation>> {
    if names.is_empty() {
        return Ok(bn_impls::registry::all().to_vec());
    }
    let mut out: Vec<&'static dyn Implementation> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if name.is_empty() {
            return Err(Error::Usage(
                "empty implementation name; see `bnh list`".into(),
            ));
        }
        let imp = bn_impls::registry::by_name(name)?;
        if !out.iter().any(|i| i.info().name == name) {
            out.push(imp);
        }
    }
    Ok(out)
}
