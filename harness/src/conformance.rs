//! Conformance: every case file × every implementation, judged by the tolerance rule.

use crate::case::{collect_case_files, Case};
use crate::error::Result;
use crate::run::run_case;
use crate::tolerance::{judge, Verdict};
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
    let files = collect_case_files(roots)?;
    let rows = files
        .par_iter()
        .map(|path| match Case::load(path) {
            Ok(case) => CheckRow {
                path: path.clone(),
                name: case.name.clone(),
                result: Ok(impls
                    .iter()
                    .map(|imp| judge(&case, &run_case(&case, *imp)))
                    .collect()),
            },
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
    Ok(CheckReport {
        impls: impls.iter().map(|i| i.info()).collect(),
        rows,
    })
}
