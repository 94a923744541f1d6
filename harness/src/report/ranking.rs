//! Who wins where: each configuration's implementations ranked by median
//! time, and groups of configurations (op × size class × layout × dtype ×
//! threads) summarized by their winner, its margin over the runner-up, its
//! distance to the memcpy roofline and PyTorch's position.
//!
//! Only our implementations (bnh's own, plugins, criterion imports) compete;
//! PyTorch's rows (`source` = `torch`) are a reference point beside them.
//! Every function here is generic over [`Op`]: new operations need nothing.

use super::tables::geomean;
use crate::bench::{provenance, Op, Record};
use std::collections::{BTreeMap, HashMap};

/// Size classes of `x`, by where it can live in the memory hierarchy of a
/// typical x86 server core (L2 ≈ 1–2 MiB per core, L3 tens of MiB shared).
/// The thresholds are fixed so reports of different machines compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SizeClass {
    /// `x` ≤ 1 MiB: stays in L2 between passes.
    Small,
    /// 1 MiB < `x` ≤ 32 MiB: in L3 at best.
    Medium,
    /// `x` > 32 MiB: every pass goes to memory.
    Large,
}

impl SizeClass {
    /// Upper bound of [`SizeClass::Small`] in bytes.
    pub const SMALL_MAX: u64 = 1 << 20;
    /// Upper bound of [`SizeClass::Medium`] in bytes.
    pub const MEDIUM_MAX: u64 = 32 << 20;

    /// The class of a tensor of `bytes` bytes.
    pub fn of(bytes: u64) -> SizeClass {
        if bytes <= Self::SMALL_MAX {
            SizeClass::Small
        } else if bytes <= Self::MEDIUM_MAX {
            SizeClass::Medium
        } else {
            SizeClass::Large
        }
    }

    /// How the report names the class.
    pub fn label(self) -> &'static str {
        match self {
            SizeClass::Small => "small (x ≤ 1 MiB, cache)",
            SizeClass::Medium => "medium (1–32 MiB)",
            SizeClass::Large => "large (> 32 MiB, memory)",
        }
    }
}

/// Whether a row is PyTorch's (a reference, not a competitor).
pub fn is_torch(r: &Record) -> bool {
    r.source == provenance::TORCH
}

/// One configuration: everything that identifies a measurement except the
/// implementation. Ordered for tables: op, dtype, threads, size, shape, layout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Config {
    pub op: Op,
    pub dtype: &'static str,
    pub threads: usize,
    pub bytes: u64,
    pub shape: String,
    pub layout: &'static str,
}

impl Config {
    /// The configuration a record was measured in.
    pub fn of(r: &Record) -> Config {
        Config {
            op: r.op,
            dtype: r.dtype.name(),
            threads: r.threads,
            bytes: r.bytes,
            shape: r.shape.clone(),
            layout: r.layout.name(),
        }
    }
}

/// The implementations of one configuration, fastest first.
#[derive(Debug, Clone)]
pub struct Ranked<'a> {
    /// Our implementations by median time, fastest first (one row each:
    /// its latest run's).
    pub ours: Vec<&'a Record>,
    /// PyTorch's rows (`torch`, `torch-noalloc`), fastest first.
    pub torch: Vec<&'a Record>,
    /// Rows of earlier runs of an implementation in this configuration
    /// (several CSVs of one source merged): listed, not ranked.
    pub earlier: Vec<&'a Record>,
}

impl<'a> Ranked<'a> {
    /// The fastest of ours, if any was measured.
    pub fn winner(&self) -> Option<&'a Record> {
        self.ours.first().copied()
    }

    /// Runner-up time / winner time (None with fewer than two of ours).
    pub fn margin(&self) -> Option<f64> {
        match self.ours.as_slice() {
            [w, r, ..] => Some(r.median_ns / w.median_ns),
            _ => None,
        }
    }
}

/// Split records into the latest run of each (implementation,
/// configuration) and the rows of earlier runs. Run ids are time-sortable
/// (see [`provenance::run_id`]); for CSVs without one (the file name) the
/// order is the names', which is arbitrary but stable.
pub fn latest_runs(records: &[Record]) -> (Vec<&Record>, Vec<&Record>) {
    let mut latest: HashMap<(&str, Config), &Record> = HashMap::new();
    for r in records {
        let e = latest.entry((r.imp.as_str(), Config::of(r))).or_insert(r);
        if r.run_id > e.run_id {
            *e = r;
        }
    }
    records
        .iter()
        .partition(|r| std::ptr::eq(latest[&(r.imp.as_str(), Config::of(r))], *r))
}

/// Every configuration with its ranking, in table order.
pub fn rank(records: &[Record]) -> BTreeMap<Config, Ranked<'_>> {
    let (latest, earlier) = latest_runs(records);
    let mut out: BTreeMap<Config, Ranked> = BTreeMap::new();
    for r in earlier {
        let e = out.entry(Config::of(r)).or_insert(Ranked {
            ours: Vec::new(),
            torch: Vec::new(),
            earlier: Vec::new(),
        });
        e.earlier.push(r);
    }
    for r in latest {
        let e = out.entry(Config::of(r)).or_insert(Ranked {
            ours: Vec::new(),
            torch: Vec::new(),
            earlier: Vec::new(),
        });
        if is_torch(r) {
            e.torch.push(r);
        } else {
            e.ours.push(r);
        }
    }
    for v in out.values_mut() {
        v.ours.sort_by(|a, b| a.median_ns.total_cmp(&b.median_ns));
        v.torch.sort_by(|a, b| a.median_ns.total_cmp(&b.median_ns));
    }
    out
}

/// What a group of configurations is keyed by in the summary; `None` fields
/// are pooled (the one-screen summary pools layout, dtype and threads).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub op: Op,
    pub class: SizeClass,
    pub layout: Option<&'static str>,
    pub dtype: Option<&'static str>,
    pub threads: Option<usize>,
}

/// One summary line: a group's winner and how it won.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    /// Configurations in the group (with at least one of ours).
    pub configs: usize,
    /// Of the implementations that ran in the most configurations, the one
    /// with the lowest geometric-mean time relative to each configuration's
    /// best (ties: more configurations won).
    pub winner: String,
    /// Configurations the winner won.
    pub wins: usize,
    /// The other implementation closest to the winner, and its time over the
    /// winner's (geometric mean over the configurations both ran).
    pub runner_up: Option<(String, f64)>,
    /// The winner's geometric-mean time / memcpy time.
    pub winner_ratio: f64,
    /// PyTorch's best variant and its time over the winner's, if measured.
    pub torch: Option<(String, f64)>,
    /// Measurements of the group that are noisy (see [`Record::is_noisy`]).
    pub noisy: usize,
}

/// Summaries of every group, keyed by `key_of` (which pools facets).
pub fn summarize<'a>(
    ranked: &BTreeMap<Config, Ranked<'a>>,
    key_of: impl Fn(&Config) -> GroupKey,
) -> BTreeMap<GroupKey, GroupSummary> {
    let mut groups: BTreeMap<GroupKey, Vec<&Ranked<'a>>> = BTreeMap::new();
    for (c, r) in ranked {
        if !r.ours.is_empty() {
            groups.entry(key_of(c)).or_default().push(r);
        }
    }
    groups
        .into_iter()
        .filter_map(|(k, rs)| Some((k, summarize_group(&rs)?)))
        .collect()
}

/// Time of `imp` over the best of ours in each configuration it ran, per configuration.
fn relative_times<'a>(rs: &[&Ranked<'a>], imp: &str) -> Vec<f64> {
    rs.iter()
        .filter_map(|r| {
            let best = r.winner()?;
            let mine = r.ours.iter().find(|x| x.imp == imp)?;
            Some(mine.median_ns / best.median_ns)
        })
        .collect()
}

/// The summary of one group's configurations (None if none has ours).
fn summarize_group(rs: &[&Ranked]) -> Option<GroupSummary> {
    let mut wins: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    for r in rs {
        if let Some(w) = r.winner() {
            *wins.entry(w.imp.as_str()).or_default() += 1;
        }
        for x in &r.ours {
            if !names.contains(&x.imp.as_str()) {
                names.push(x.imp.as_str());
            }
        }
    }
    let score = |imp: &str| {
        (
            std::cmp::Reverse(wins.get(imp).copied().unwrap_or(0)),
            geomean(&relative_times(rs, imp)),
        )
    };
    // Only implementations that ran in the most configurations compete, so
    // one measured on a single favourable shape cannot win a whole group.
    let coverage = |imp: &str| {
        rs.iter()
            .filter(|r| r.ours.iter().any(|x| x.imp == imp))
            .count()
    };
    let most = names.iter().map(|n| coverage(n)).max()?;
    let winner = names
        .iter()
        .copied()
        .filter(|n| coverage(n) == most)
        .min_by(|a, b| {
            let (wa, ga) = score(a);
            let (wb, gb) = score(b);
            ga.total_cmp(&gb).then(wa.cmp(&wb)).then(a.cmp(b))
        })?
        .to_string();
    let of = |r: &Ranked, imp: &str| r.ours.iter().find(|x| x.imp == imp).map(|x| x.median_ns);
    let vs_winner = |imp: &str| -> Vec<f64> {
        rs.iter()
            .filter_map(|r| Some(of(r, imp)? / of(r, &winner)?))
            .collect()
    };
    let runner_up = names
        .iter()
        .filter(|n| **n != winner)
        .map(|n| (n.to_string(), geomean(&vs_winner(n))))
        .filter(|(_, g)| g.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let winner_ratio = geomean(
        &rs.iter()
            .filter_map(|r| r.ours.iter().find(|x| x.imp == winner))
            .map(|x| x.ratio_to_memcpy)
            .collect::<Vec<_>>(),
    );
    let torch = torch_position(rs, &winner);
    let noisy = rs
        .iter()
        .flat_map(|r| r.ours.iter().chain(&r.torch))
        .filter(|x| x.is_noisy())
        .count();
    Some(GroupSummary {
        configs: rs.len(),
        wins: wins.get(winner.as_str()).copied().unwrap_or(0),
        winner,
        runner_up,
        winner_ratio,
        torch,
        noisy,
    })
}

/// PyTorch's best variant in the group: its time over the winner's
/// (geometric mean over the configurations both ran).
fn torch_position(rs: &[&Ranked], winner: &str) -> Option<(String, f64)> {
    let mut per: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in rs {
        let Some(w) = r.ours.iter().find(|x| x.imp == winner) else {
            continue;
        };
        for t in &r.torch {
            per.entry(t.imp.as_str())
                .or_default()
                .push(t.median_ns / w.median_ns);
        }
    }
    per.into_iter()
        .map(|(n, v)| (n.to_string(), geomean(&v)))
        .filter(|(_, g)| g.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The one-screen grouping: op × size class, other facets pooled.
pub fn by_op_and_class(c: &Config) -> GroupKey {
    GroupKey {
        op: c.op,
        class: SizeClass::of(c.bytes),
        layout: None,
        dtype: None,
        threads: None,
    }
}

/// The breakdown: op × size class × layout × dtype × threads.
pub fn by_every_facet(c: &Config) -> GroupKey {
    GroupKey {
        op: c.op,
        class: SizeClass::of(c.bytes),
        layout: Some(c.layout),
        dtype: Some(c.dtype),
        threads: Some(c.threads),
    }
}

/// The copy's floor for `op` from the bytes-moved model: `op` moves
/// [`Op::tensor_passes`] tensors of the size of `x`, a copy 2, so once `x`
/// no longer fits in cache the op cannot take less than `passes / 2` copies.
pub fn copy_floor(op: Op) -> f64 {
    op.tensor_passes() as f64 / 2.0
}
