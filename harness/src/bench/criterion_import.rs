//! Turning `cargo bench`'s criterion results into bench records (same CSV).
//!
//! The criterion benches (`benches/benches/batchnorm.rs`) name each group
//! [`group_id`] = `OP/DTYPE/LAYOUT/SHAPE/tTHREADS` and each function the
//! implementation name, with the roofline copies ([`copy_id`]: `memcpy`,
//! `copy-vector`, `copy-nontemporal`) in every group; the fastest of those
//! present is the group's roofline. Criterion stores, per benchmark, `new/benchmark.json` (the ids),
//! `new/estimates.json` (the median's point estimate) and `new/sample.json`
//! (iterations and total time per sample, from which p10/p90 come).

use super::grid::Shape;
use super::roofline::Copy;
use super::runner::percentile;
use super::{round, Op, Record};
use crate::error::{Error, Result};
use crate::input::{read_limited, regular_files, MAX_CASE_BYTES};
use bn_impls::{DType, Layout};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The function id of the libc memcpy in each criterion group (required).
pub const MEMCPY_ID: &str = "memcpy";

/// The criterion function id of a roofline copy.
pub fn copy_id(copy: Copy) -> &'static str {
    match copy {
        Copy::Memcpy => MEMCPY_ID,
        Copy::Vector => "copy-vector",
        Copy::NonTemporal => "copy-nontemporal",
    }
}

fn is_copy(func: &str) -> bool {
    Copy::ALL.into_iter().any(|c| copy_id(c) == func)
}

/// The criterion group id of one case: `OP/DTYPE/LAYOUT/SHAPE/tTHREADS`.
pub fn group_id(op: Op, dtype: &str, layout: &str, shape: &Shape, threads: usize) -> String {
    format!("{op}/{dtype}/{layout}/{shape}/t{threads}")
}

#[derive(Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: Estimate,
}

#[derive(Deserialize)]
struct SampleJson {
    iters: Vec<f64>,
    times: Vec<f64>,
}

struct Measured {
    median_ns: f64,
    p10_ns: f64,
    p90_ns: f64,
    samples: usize,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = read_limited(path, MAX_CASE_BYTES, "criterion result file")?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not a criterion result: {e}", path.display())))
}

/// Every `new/` folder holding a `benchmark.json` under `dir`. The walk
/// follows symlinks but not loops, and names what it skips (see
/// [`crate::input::walk`]).
fn find_benchmarks(dir: &Path) -> Vec<PathBuf> {
    let is_result = |p: &Path| {
        p.file_name().is_some_and(|n| n == "benchmark.json")
            && p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "new")
    };
    let mut seen = std::collections::HashSet::new();
    regular_files(dir, is_result, &mut seen)
        .into_iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect()
}

/// Records for every group under `criterion_dir` (default `target/criterion`)
/// that has our id format and a memcpy function; other benchmarks are
/// skipped. Each row's roofline is the fastest copy of its group.
pub fn import(criterion_dir: &Path) -> Result<Vec<Record>> {
    if !criterion_dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: no criterion results; run `cargo bench -p bn-benches` first",
            criterion_dir.display()
        )));
    }
    let groups = read_groups(criterion_dir)?;
    let mut out = Vec::new();
    for (gid, funcs) in &groups {
        let (Some(id), true) = (GroupId::parse(gid), funcs.contains_key(MEMCPY_ID)) else {
            continue;
        };
        let best = Copy::ALL
            .into_iter()
            .filter_map(|c| funcs.get(copy_id(c)).map(|m| (c, m)))
            .min_by(|a, b| a.1.median_ns.total_cmp(&b.1.median_ns))
            .expect("memcpy is present");
        for (imp, m) in funcs.iter().filter(|(f, _)| !is_copy(f)) {
            out.push(record(imp, &id, m, best));
        }
    }
    Ok(out)
}

/// Measurements by criterion group id, then function id.
type Groups = BTreeMap<String, BTreeMap<String, Measured>>;

/// Every benchmark with a function id and at least one sample, by group.
fn read_groups(criterion_dir: &Path) -> Result<Groups> {
    let dirs = find_benchmarks(criterion_dir);
    let mut groups: Groups = BTreeMap::new();
    for dir in dirs {
        let b: BenchmarkJson = read_json(&dir.join("benchmark.json"))?;
        let Some(func) = b.function_id else { continue };
        if let Some(m) = read_measured(&dir)? {
            groups.entry(b.group_id).or_default().insert(func, m);
        }
    }
    Ok(groups)
}

/// The median and per-iteration percentiles of one benchmark's `new/` folder
/// (None when it has no samples).
fn read_measured(dir: &Path) -> Result<Option<Measured>> {
    let est: EstimatesJson = read_json(&dir.join("estimates.json"))?;
    let sample: SampleJson = read_json(&dir.join("sample.json"))?;
    let mut per_iter: Vec<f64> = sample
        .times
        .iter()
        .zip(&sample.iters)
        .map(|(t, i)| t / i)
        .collect();
    per_iter.sort_by(f64::total_cmp);
    if per_iter.is_empty() {
        return Ok(None);
    }
    Ok(Some(Measured {
        median_ns: est.median.point_estimate,
        p10_ns: percentile(&per_iter, 0.1),
        p90_ns: percentile(&per_iter, 0.9),
        samples: per_iter.len(),
    }))
}

/// A group id of ours ([`group_id`]) taken apart.
struct GroupId {
    op: Op,
    dtype: DType,
    layout: Layout,
    shape: Shape,
    threads: usize,
}

impl GroupId {
    /// `OP/DTYPE/LAYOUT/SHAPE/tTHREADS`, or None for any other id.
    fn parse(gid: &str) -> Option<GroupId> {
        let parts: Vec<&str> = gid.split('/').collect();
        let [op, dtype, layout, shape, threads] = parts[..] else {
            return None;
        };
        Some(GroupId {
            op: op.parse().ok()?,
            dtype: dtype.parse().ok()?,
            layout: layout.parse().ok()?,
            shape: shape.parse().ok()?,
            threads: threads.strip_prefix('t')?.parse().ok()?,
        })
    }
}

/// The CSV row of one implementation in one group, with the group's fastest copy.
fn record(imp: &str, id: &GroupId, m: &Measured, (kind, copy): (Copy, &Measured)) -> Record {
    let mut rec = Record {
        imp: imp.to_string(),
        op: id.op,
        dtype: id.dtype,
        layout: id.layout,
        shape: id.shape.to_string(),
        n: id.shape.n(),
        c: id.shape.c(),
        spatial: id.shape.spatial(),
        threads: id.threads,
        bytes: (id.shape.elements() * id.dtype.size()) as u64,
        median_ns: round(m.median_ns, 1),
        p10_ns: round(m.p10_ns, 1),
        p90_ns: round(m.p90_ns, 1),
        memcpy_ns: round(copy.median_ns, 1),
        ratio_to_memcpy: 0.0,
        gb_per_s: 0.0,
        samples: m.samples,
        roofline: kind.name().to_string(),
        read_ns: 0.0,
        source: super::provenance::CRITERION.to_string(),
        run_id: super::provenance::run_id().to_string(),
    };
    rec.derive();
    rec
}
