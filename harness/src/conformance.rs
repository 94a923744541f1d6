//! Conformance: every case file × every implementation, judged by the tolerance rule.

use crate::case::{collect_case_files, Case};
use crate::error::Result;
use crate::external::run::RunResult;
use crate::external::External;
use crate::run::run_case;
use crate::tolerance::{judge, RunFailure, Verdict};
use bn_impls::{Implementation, Info};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The fixtures shipped with the repository (PyTorch-generated bn-case/1 files).
pub fn shipped_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One case file's results: a verdict per implementation, or why it could not load.
#[derive(Debug)]
pub struct CheckRow {
    pub path: PathBuf,
    pub name: String,
    pub result: std::result::Result<Vec<Verdict>, String>,
}

/// Results of a conformance run.
#[derive(Debug)]
pub struct CheckReport {
    pub impls: Vec<Info>,
    pub rows: Vec<CheckRow>,
}

impl CheckReport {
    /// Implementations (by index) with their pass count, the number of cases
    /// judged (cases the implementation declined as unsupported are not) and
    /// the worst ratio.
    pub fn summary(&self) -> Vec<(Info, usize, usize, f64)> {
        self.impls
            .iter()
            .enumerate()
            .map(|(k, info)| {
                let verdicts = self
                    .rows
                    .iter()
                    .filter_map(|r| r.result.as_ref().ok().map(|v| &v[k]));
                let (mut pass, mut total, mut worst) = (0, 0, 0.0f64);
                for v in verdicts.filter(|v| v.unsupported.is_none()) {
                    total += 1;
                    pass += v.pass() as usize;
                    worst = worst.max(v.worst_ratio());
                }
                (*info, pass, total, worst)
            })
            .collect()
    }

    /// How many cases implementation `k` declined as unsupported.
    pub fn unsupported(&self, k: usize) -> usize {
        self.rows
            .iter()
            .filter_map(|r| r.result.as_ref().ok())
            .filter(|v| v[k].unsupported.is_some())
            .count()
    }

    /// True when every case loaded and every stable implementation passed
    /// every case it did not decline as unsupported.
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| match &r.result {
            Ok(verdicts) => verdicts
                .iter()
                .zip(&self.impls)
                .all(|(v, info)| v.pass() || v.unsupported.is_some() || !info.stable),
            Err(_) => false,
        })
    }
}

/// Run every case under `roots` with every implementation in `impls`.
pub fn check(roots: &[PathBuf], impls: &[&dyn Implementation]) -> Result<CheckReport> {
    check_with_externals(roots, impls, &[])
}

/// [`check`], plus every `--external` program on every case that loads
/// (their columns come after `impls`'). Their output files go to a temp
/// folder removed at the end; Ctrl-C stops the running programs and makes
/// this an [`crate::Error::Interrupted`] (no partial report).
pub fn check_with_externals(
    roots: &[PathBuf],
    impls: &[&dyn Implementation],
    externals: &[External],
) -> Result<CheckReport> {
    let files = collect_case_files(roots)?;
    let scratch = crate::output::temp_builder()
        .tempdir()
        .map_err(|e| crate::Error::io(std::env::temp_dir(), e))?;
    let rows = files
        .par_iter()
        .enumerate()
        .map(|(k, path)| match Case::load(path) {
            Ok(case) => {
                let mut verdicts: Vec<Verdict> = impls
                    .iter()
                    .map(|imp| judge(&case, &run_case(&case, *imp)))
                    .collect();
                for (e, ext) in externals.iter().enumerate() {
                    let out = scratch.path().join(format!("{k}-{e}.json"));
                    verdicts.push(judge_external(&case, &ext.run(path, &out)));
                }
                CheckRow {
                    path: path.clone(),
                    name: case.name.clone(),
                    result: Ok(verdicts),
                }
            }
            Err(e) => CheckRow {
                path: path.clone(),
                name: path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                result: Err(e.to_string()),
            },
        })
        .collect();
    crate::interrupt::check("bnh check stopped; no verdicts written")?;
    let mut infos: Vec<Info> = impls.iter().map(|i| i.info()).collect();
    infos.extend(externals.iter().map(|e| e.info));
    Ok(CheckReport { impls: infos, rows })
}

/// The verdict on one external run: its outcome judged like a built-in's,
/// or a `timeout`/`crashed` failure.
fn judge_external(case: &Case, result: &RunResult) -> Verdict {
    match result {
        RunResult::Finished(outcome) => judge(case, outcome),
        RunResult::TimedOut(why) => Verdict::run_failed(RunFailure::Timeout, why.clone()),
        RunResult::Crashed(why) => Verdict::run_failed(RunFailure::Crashed, why.clone()),
        RunResult::Interrupted => Verdict::run_failed(RunFailure::Crashed, "interrupted".into()),
    }
}
