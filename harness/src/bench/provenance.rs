//! Where a bench row came from: its `source` (which tool measured it) and
//! `run_id` (which invocation), so CSVs from several runs and tools can be
//! merged in one report without their rows being mistaken for one another.
//!
//! CSVs written before these columns existed (and by other tools) are still
//! read: [`fill_missing`] infers the source from the implementation's name
//! and uses the file name as the run id.

use super::Record;
use std::collections::hash_map::{Entry, HashMap};
use std::path::Path;
use std::sync::OnceLock;

/// Rows measured by `bnh bench` / `bnh all` with a built-in implementation.
pub const BNH: &str = "bnh";
/// Rows of scripts/torch_bench.py (`torch`, `torch-noalloc`).
pub const TORCH: &str = "torch";
/// Rows converted by `bnh import-criterion` from `cargo bench`.
pub const CRITERION: &str = "criterion";

/// The source of an implementation timed by bnh itself: `bnh` for a
/// registered implementation, `plugin:NAME` for a loaded C plugin.
pub fn source_of(imp: &str) -> String {
    if bn_impls::registry::names().iter().any(|n| n == imp) {
        BNH.to_string()
    } else {
        format!("plugin:{imp}")
    }
}

/// The run id of this process: UTC time and process id, e.g.
/// `20261201T022530Z-p4242` — unique per invocation on one machine (two runs
/// in the same second have different process ids), sortable by time, and
/// the same for every row of one `bnh bench` or `bnh all`.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let time: String = super::machine::utc_now()
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        format!("{time}-p{}", std::process::id())
    })
}

/// The source a row without a `source` column most likely has: `torch` for
/// the PyTorch script's implementations (their names start with `torch`),
/// `bnh` otherwise.
pub fn inferred_source(imp: &str) -> &'static str {
    if imp.starts_with("torch") {
        TORCH
    } else {
        BNH
    }
}

/// Fill the provenance of rows read from `path` that lack it (an old CSV):
/// source inferred from the implementation's name, run id the file name.
pub fn fill_missing(records: &mut [Record], path: &Path) {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned());
    for r in records {
        if r.source.is_empty() {
            r.source = inferred_source(&r.imp).to_string();
        }
        if r.run_id.is_empty() {
            r.run_id = file.clone();
        }
    }
}

/// What makes two rows the same measurement: source, run, implementation,
/// op, dtype, layout, shape and threads.
pub type Identity = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    usize,
);

/// The [`Identity`] of a row.
pub fn identity(r: &Record) -> Identity {
    (
        r.source.clone(),
        r.run_id.clone(),
        r.imp.clone(),
        r.op.to_string(),
        r.dtype.to_string(),
        r.layout.to_string(),
        r.shape.clone(),
        r.threads,
    )
}

/// Keep one row per [`Identity`]: the one with the lowest median, in the
/// place of the identity's first row. Several rows of one identity are
/// rounds of one run (`bnh bench --run-id`, `torch_bench.py --run-id`; a
/// machine that other processes slow down only ever adds time, so the
/// fastest round is the least disturbed) or one CSV given twice (the rows
/// are equal). Returns how many rows were dropped and the first dropped
/// row's description, for one note.
pub fn dedup(records: &mut Vec<Record>) -> (usize, Option<String>) {
    let mut kept: HashMap<Identity, usize> = HashMap::new();
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    let (mut dropped, mut first) = (0, None);
    for r in records.drain(..) {
        match kept.entry(identity(&r)) {
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(r);
            }
            Entry::Occupied(e) => {
                let i = *e.get();
                dropped += 1;
                first.get_or_insert_with(|| {
                    format!(
                        "{} {} {} {} {} t{} (source {}, run {})",
                        r.imp, r.op, r.dtype, r.shape, r.layout, r.threads, r.source, r.run_id
                    )
                });
                if r.median_ns < out[i].median_ns {
                    out[i] = r;
                }
            }
        }
    }
    *records = out;
    (dropped, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_stable_within_a_process() {
        assert_eq!(run_id(), run_id());
        assert!(run_id().contains("-p"), "{}", run_id());
    }

    #[test]
    fn sources_are_inferred_from_names() {
        assert_eq!(inferred_source("torch-noalloc"), TORCH);
        assert_eq!(inferred_source("fused"), BNH);
        assert_eq!(source_of("fused"), BNH);
        assert_eq!(source_of("my_kernel"), "plugin:my_kernel");
    }
}
