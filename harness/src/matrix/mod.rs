//! The conformance matrix (`bnh matrix`): implementations × capabilities,
//! computed by running cases — never written by hand.
//!
//! Each [`columns::Column`] selects cases by a predicate over their metadata
//! and data; a cell is the verdicts of one implementation on the cases of
//! one column: `pass` (every judged case passes), `fail` (at least one
//! fails), `unsupported` (the implementation declined every case), with the
//! counts behind it. [`render`] writes it as Markdown (a section any report
//! can embed) and CSV.

pub mod columns;
pub mod render;

use crate::case::{collect_case_files, Case};
use crate::error::{Error, Result};
use crate::num::Num;
use crate::run::{run_case, Outcome};
use crate::tolerance::{judge, Verdict};
use bn_impls::{Implementation, Info};
use columns::{Column, Judged};
use rayon::prelude::*;
use std::path::PathBuf;

/// What one case showed for one implementation.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseResult {
    Pass,
    /// Why it failed (the output and its error, or the problem).
    Fail(String),
    /// Why the implementation declined.
    Unsupported(String),
}

/// The verdicts behind one cell, with the reasons of failures and
/// unsupported cases (distinct lines, case names first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub pass: usize,
    pub fail: usize,
    pub unsupported: usize,
    /// `case: why` for each failing case.
    pub failures: Vec<String>,
    /// Distinct reasons for declining.
    pub reasons: Vec<String>,
}

/// A cell's overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Unsupported,
    /// No case selected by the column.
    NoCases,
}

impl Status {
    /// The word shown in tables and CSV.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unsupported => "unsupported",
            Status::NoCases => "no cases",
        }
    }
}

impl Cell {
    /// Cases selected by the column (judged or declined).
    pub fn total(&self) -> usize {
        self.pass + self.fail + self.unsupported
    }

    /// `fail` if any case fails, else `pass` if any passes, else
    /// `unsupported` (every case declined), or `no cases`.
    pub fn status(&self) -> Status {
        if self.total() == 0 {
            Status::NoCases
        } else if self.fail > 0 {
            Status::Fail
        } else if self.pass > 0 {
            Status::Pass
        } else {
            Status::Unsupported
        }
    }

    /// The cell text: `pass 12/12`, `fail 2/12`, `unsupported 4/4`, with
    /// `(k unsupported)` when some cases of a pass or fail were declined.
    pub fn text(&self) -> String {
        let n = self.total();
        let declined = if self.unsupported > 0 && self.unsupported < n {
            format!(" ({} unsupported)", self.unsupported)
        } else {
            String::new()
        };
        match self.status() {
            Status::NoCases => "–".into(),
            Status::Pass => format!("pass {}/{n}{declined}", self.pass),
            Status::Fail => format!("fail {}/{n}{declined}", self.fail),
            Status::Unsupported => format!("unsupported {n}/{n}"),
        }
    }

    fn add(&mut self, case: &str, r: &CaseResult) {
        match r {
            CaseResult::Pass => self.pass += 1,
            CaseResult::Fail(why) => {
                self.fail += 1;
                self.failures.push(format!("{case}: {why}"));
            }
            CaseResult::Unsupported(why) => {
                self.unsupported += 1;
                if !self.reasons.contains(why) {
                    self.reasons.push(why.clone());
                }
            }
        }
    }
}

/// The computed matrix: `cells[implementation][column]`.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub impls: Vec<Info>,
    pub columns: Vec<Column>,
    pub cells: Vec<Vec<Cell>>,
    /// Number of cases run.
    pub cases: usize,
}

/// One case's results: per implementation, its verdict and (when judged)
/// its thread-count determinism.
struct CaseRun {
    name: String,
    verdicts: Vec<CaseResult>,
    threads: Vec<CaseResult>,
}

/// A verdict as a matrix result, naming the failing output.
pub fn classify(v: &Verdict) -> CaseResult {
    if let Some(why) = &v.unsupported {
        return CaseResult::Unsupported(why.clone());
    }
    if v.pass() {
        return CaseResult::Pass;
    }
    if let Some(p) = &v.problem {
        return CaseResult::Fail(p.clone());
    }
    match v.worst() {
        Some(w) => CaseResult::Fail(match &w.problem {
            Some(p) => format!("{}: {p}", w.name),
            None => format!(
                "{}: max error {:.3e} > tolerance {:.3e}",
                w.name, w.max_abs_err, w.tol
            ),
        }),
        None => CaseResult::Fail("failed".into()),
    }
}

/// Bit patterns of every number of an outcome (NaN payloads included), with
/// the kind of each result and the text of a rejection, so two runs compare
/// exactly; a multi-step outcome is every step's in order.
fn bits(o: &Outcome) -> Vec<u64> {
    match o {
        Outcome::Outputs(out) => {
            let mut v: Vec<u64> = vec![0];
            for (_, t) in out.tensors() {
                v.extend(t.unwrap_or_default().iter().map(|n: &Num| n.0.to_bits()));
                // Keep "absent" apart from "empty".
                v.push(u64::from(t.is_none()));
            }
            v.push(out.num_batches_tracked.unwrap_or(-1) as u64);
            v
        }
        Outcome::Rejected(why) => std::iter::once(1)
            .chain(why.bytes().map(u64::from))
            .collect(),
        Outcome::Unsupported(why) => std::iter::once(2)
            .chain(why.bytes().map(u64::from))
            .collect(),
        Outcome::Steps(steps) => {
            let mut v = vec![3, steps.len() as u64];
            for s in steps {
                let b = bits(s);
                v.push(b.len() as u64);
                v.extend(b);
            }
            v
        }
    }
}

/// The reason of the first step (or the outcome) an implementation declined.
fn declined(o: &Outcome) -> Option<&str> {
    match o {
        Outcome::Unsupported(why) => Some(why),
        Outcome::Steps(steps) => steps.iter().find_map(declined),
        _ => None,
    }
}

/// Run `case` at 1 and at 2 threads and compare every output bit for bit
/// (every step of a multi-step case).
fn same_at_1_and_2_threads(
    case: &Case,
    imp: &dyn Implementation,
    pools: &[rayon::ThreadPool; 2],
) -> CaseResult {
    let one = pools[0].install(|| run_case(case, imp));
    let two = pools[1].install(|| run_case(case, imp));
    if let Some(why) = declined(&one).or(declined(&two)) {
        return CaseResult::Unsupported(why.to_string());
    }
    if bits(&one) == bits(&two) {
        CaseResult::Pass
    } else {
        CaseResult::Fail("outputs differ between 1 and 2 threads".into())
    }
}

/// Thread pools of 1 and 2 threads for the determinism column.
fn pools() -> Result<[rayon::ThreadPool; 2]> {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::Usage(format!("cannot start a {n}-thread pool: {e}")))
    };
    Ok([pool(1)?, pool(2)?])
}

/// Load every case under `roots`; a case that does not load stops the run
/// (a matrix over some of the cases would be presented as complete).
fn load_cases(roots: &[PathBuf]) -> Result<Vec<Case>> {
    let files = collect_case_files(roots)?;
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "no *.json case files under {}; give case files or folders of them",
            roots
                .iter()
                .map(|p| crate::output::escape_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    files.iter().map(|p| Case::load(p)).collect()
}

/// Run every case under `roots` with every implementation in `impls` and
/// fill the matrix.
pub fn compute(roots: &[PathBuf], impls: &[&dyn Implementation]) -> Result<Matrix> {
    let cases = load_cases(roots)?;
    let columns = columns::all();
    let pools = pools()?;
    let not_claimed = CaseResult::Unsupported(
        "does not claim bitwise identical results for any thread count (Info::deterministic)"
            .into(),
    );
    let runs: Vec<CaseRun> = cases
        .par_iter()
        .map(|case| CaseRun {
            name: case.name.clone(),
            verdicts: impls
                .iter()
                .map(|imp| classify(&judge(case, &run_case(case, *imp))))
                .collect(),
            threads: impls
                .iter()
                .map(|imp| {
                    if case.expected.is_none() {
                        CaseResult::Pass // not selected by the column
                    } else if imp.info().deterministic {
                        same_at_1_and_2_threads(case, *imp, &pools)
                    } else {
                        not_claimed.clone()
                    }
                })
                .collect(),
        })
        .collect();
    let mut cells = vec![vec![Cell::default(); columns.len()]; impls.len()];
    for (case, run) in cases.iter().zip(&runs) {
        for (k, col) in columns.iter().enumerate() {
            if !(col.applies)(case) {
                continue;
            }
            for (i, row) in cells.iter_mut().enumerate() {
                let r = match col.judged {
                    Judged::Verdict => &run.verdicts[i],
                    Judged::Determinism => &run.threads[i],
                };
                row[k].add(&run.name, r);
            }
        }
    }
    Ok(Matrix {
        impls: impls.iter().map(|i| i.info()).collect(),
        columns,
        cells,
        cases: cases.len(),
    })
}

impl Matrix {
    /// The cell of implementation `name` in column `column`, if both exist.
    pub fn cell(&self, name: &str, column: &str) -> Option<&Cell> {
        let i = self.impls.iter().position(|x| x.name == name)?;
        let k = self.columns.iter().position(|c| c.name == column)?;
        Some(&self.cells[i][k])
    }
}
