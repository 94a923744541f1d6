//! Reading what a report is made from: bench CSVs with their machine
//! sidecars, and accuracy CSVs (told apart by their header line).

use super::accuracy::is_accuracy_header;
use super::conformance::{self, MatrixRow};
use super::{sanitize, Source};
use crate::accuracy::export::AccuracyRow;
use crate::bench::machine::{sidecar_path, Machine};
use crate::bench::{provenance, Record};
use crate::error::{Error, Result};
use crate::export::csv::read_csv;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Everything one report renders: bench records with the files they came
/// from, accuracy rows and conformance-matrix cells. Any part may be
/// empty, not all.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    /// Bench measurements of every bench CSV, in file order.
    pub records: Vec<Record>,
    /// One entry per bench CSV (listed under "Sources" in REPORT.md).
    pub sources: Vec<Source>,
    /// Rows of every accuracy CSV.
    pub accuracy: Vec<AccuracyRow>,
    /// Cells of every matrix CSV (`bnh matrix`).
    pub matrix: Vec<MatrixRow>,
    /// One warning per row left out because a value cannot be drawn
    /// (non-finite, non-positive or absurdly large; see [`super::sanitize`]).
    pub skipped: Vec<String>,
    /// Other things the reader should know, one warning each (e.g. rows of
    /// one cell in one run dropped but the fastest: rounds, or a CSV given twice).
    pub notes: Vec<String>,
}

/// The first line of `path` without its line end (which kind of CSV it
/// is), or "" when it cannot be read — the bench reader then reports why.
fn first_line(path: &Path) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = std::io::BufReader::new(f).read_line(&mut line);
    }
    line.trim_end_matches(['\n', '\r']).to_string()
}

/// Read every CSV in `csvs`: accuracy CSVs into `accuracy`, matrix CSVs
/// into `matrix`, the others as
/// bench CSVs with their machine sidecars (when present). Rows a report
/// cannot draw are left out and named in `skipped`.
pub fn read_inputs(csvs: &[PathBuf]) -> Result<ReportInputs> {
    let mut inputs = ReportInputs::default();
    for path in csvs {
        let header = first_line(path);
        if is_accuracy_header(&header) {
            let rows = crate::accuracy::export::read_csv(path)?;
            let (rows, skipped) = sanitize::accuracy_rows(rows, path);
            inputs.accuracy.extend(rows);
            inputs.skipped.extend(skipped);
            continue;
        }
        if conformance::is_matrix_header(&header) {
            inputs.matrix.extend(conformance::read(path)?);
            continue;
        }
        let (rows, skipped) = sanitize::bench_rows(read_csv(path)?, path);
        inputs.skipped.extend(skipped);
        inputs.sources.push(Source {
            path: path.clone(),
            machine: read_sidecar(path)?,
            rows: rows.len(),
        });
        inputs.records.extend(rows);
    }
    let (dropped, first) = provenance::dedup(&mut inputs.records);
    if let Some(first) = first {
        inputs.notes.push(format!(
            "{dropped} duplicate row(s) dropped (same source, run, implementation, op, dtype, \
             layout, shape and threads, e.g. {first}): rounds of one run, or a CSV given twice; \
             kept the fastest of each (lowest median)"
        ));
    }
    relabel_sources(&mut inputs.records);
    Ok(inputs)
}

/// Keep sources apart where they overlap: when one implementation was
/// measured in the same configuration (op, dtype, layout, shape, threads)
/// by more than one source (e.g. `bnh` and `criterion`), every row of that
/// implementation from those sources is labelled `NAME@SOURCE`, so tables
/// and charts show both measurements side by side. Several runs of one
/// source are kept apart by the report itself (it ranks on the latest run
/// and lists the others, see [`super::ranking::latest_runs`]).
pub fn relabel_sources(records: &mut [Record]) {
    let mut sources: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for r in records.iter() {
        let config = format!(
            "{} {} {} {} t{}",
            r.op, r.dtype, r.layout, r.shape, r.threads
        );
        sources
            .entry((r.imp.clone(), config))
            .or_default()
            .insert(r.source.clone());
    }
    let mixed: HashSet<String> = sources
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|((imp, _), _)| imp)
        .collect();
    for r in records.iter_mut() {
        if mixed.contains(&r.imp) {
            r.imp = format!("{}@{}", r.imp, r.source);
        }
    }
}

/// The machine sidecar of a bench CSV, if it has one.
fn read_sidecar(csv: &Path) -> Result<Option<Machine>> {
    let side = sidecar_path(csv);
    if !side.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&side).map_err(|e| Error::io(&side, e))?;
    let machine = serde_json::from_str::<Machine>(&text)
        .map_err(|e| Error::Usage(format!("{}: not a machine sidecar: {e}", side.display())))?;
    Ok(Some(machine))
}
