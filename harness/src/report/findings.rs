//! The "why" under the summary: per operation, a few sentences drawn from
//! the bytes-moved model ([`Op::tensor_passes`]) and from the data itself
//! (layout, thread and dtype effects on the winning implementation).

use super::ranking::{copy_floor, is_torch, SizeClass};
use super::tables::geomean;
use crate::bench::{Op, Record};
use crate::output::escape::escape_md;
use std::collections::HashMap;

/// What `op` reads and writes, in words (known ops; a generic sentence
/// for operations added later).
fn traffic(op: Op) -> String {
    match op.name() {
        "train" => "reads x twice (statistics, then normalization) and writes y".into(),
        "eval" => "reads x once and writes y".into(),
        "backward" => "reads x and dy and writes dx".into(),
        _ => format!("moves {} tensors the size of x", op.tensor_passes()),
    }
}

/// The implementation (ours) with the most per-configuration wins for `op`.
fn overall_winner(records: &[&Record]) -> Option<String> {
    let mut best: HashMap<String, &Record> = HashMap::new();
    for r in records.iter().filter(|r| !is_torch(r)) {
        let key = format!(
            "{} {} {} {} {}",
            r.dtype, r.threads, r.layout, r.shape, r.bytes
        );
        let e = best.entry(key).or_insert(r);
        if r.median_ns < e.median_ns {
            *e = r;
        }
    }
    let mut wins: HashMap<&str, usize> = HashMap::new();
    for r in best.values() {
        *wins.entry(r.imp.as_str()).or_default() += 1;
    }
    wins.into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(n, _)| n.to_string())
}

/// Geometric mean of `b`'s time over `a`'s for the records of `imp` that
/// pair up: same key except the facet `pick` tells apart (`Some(true)` for
/// `b`, `Some(false)` for `a`, `None`: not part of the comparison).
fn paired_ratio(
    mine: &[&Record],
    key: impl Fn(&Record) -> String,
    pick: impl Fn(&Record) -> Option<bool>,
    time: impl Fn(&Record) -> f64,
) -> Option<(f64, usize)> {
    let mut a: HashMap<String, f64> = HashMap::new();
    for r in mine.iter().filter(|r| pick(r) == Some(false)) {
        a.insert(key(r), time(r));
    }
    let v: Vec<f64> = mine
        .iter()
        .filter(|r| pick(r) == Some(true))
        .filter_map(|r| Some(time(r) / a.get(&key(r))?))
        .collect();
    let g = geomean(&v);
    g.is_finite().then_some((g, v.len()))
}

/// The findings of one operation as Markdown bullets.
pub fn for_op(op: Op, records: &[Record]) -> String {
    let of_op: Vec<&Record> = records.iter().filter(|r| r.op == op).collect();
    let Some(winner) = overall_winner(&of_op) else {
        return String::new();
    };
    let mine: Vec<&Record> = of_op.iter().copied().filter(|r| r.imp == winner).collect();
    let w = escape_md(&winner);
    let floor = copy_floor(op);
    let mut out = String::new();
    // 1. The model, and the winner against it where the model applies.
    let largest = mine.iter().map(|r| SizeClass::of(r.bytes)).max();
    let at_largest: Vec<&Record> = mine
        .iter()
        .copied()
        .filter(|r| Some(SizeClass::of(r.bytes)) == largest)
        .collect();
    let ratio = geomean(
        &at_largest
            .iter()
            .map(|r| r.ratio_to_memcpy)
            .collect::<Vec<_>>(),
    );
    out.push_str(&format!(
        "- **model**: {op} {}: {} passes over x against a copy's 2, so {floor:.2}× a copy is the \
         expected floor once x no longer fits in cache.",
        traffic(op),
        op.tensor_passes()
    ));
    if let (Some(class), true) = (largest, ratio.is_finite()) {
        let verdict = if class != SizeClass::Large {
            " (x fits in cache at these sizes, so reads after the first can be cheaper than a copy's; \
             measure larger shapes to test the model)"
                .to_string()
        } else if ratio < floor * 0.95 {
            " — below the floor: some passes are served from cache (the tile is reused while it is \
             still in L2)"
                .to_string()
        } else {
            format!(
                " — {:.0}% of the floor's speed: the rest is time not spent moving bytes",
                100.0 * floor / ratio
            )
        };
        out.push_str(&format!(
            " Overall winner `{w}` is at {ratio:.2}× a copy on {}{verdict}.\n",
            class.label()
        ));
    } else {
        out.push('\n');
    }
    // 2. Layout.
    let key = |r: &Record| format!("{} {} {}", r.dtype, r.threads, r.shape);
    if let Some((g, n)) = paired_ratio(
        &mine,
        key,
        |r| match r.layout.name() {
            "channels_last" => Some(true),
            "contiguous" => Some(false),
            _ => None,
        },
        |r| r.median_ns,
    ) {
        out.push_str(&format!(
            "- **layout**: channels-last takes {g:.2}× `{w}`'s contiguous time ({n} shapes in both); \
             the same bytes move, so the difference is how per-channel reductions walk \
             interleaved channels.\n"
        ));
    }
    // 3. Threads: fewest vs most, on the largest size class measured.
    let (lo, hi) = (
        at_largest.iter().map(|r| r.threads).min(),
        at_largest.iter().map(|r| r.threads).max(),
    );
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let key = |r: &Record| format!("{} {} {}", r.dtype, r.layout, r.shape);
        let pick = |r: &Record| match r.threads {
            t if t == lo => Some(true),
            t if t == hi => Some(false),
            _ => None,
        };
        let kernel = paired_ratio(&at_largest, key, pick, |r| r.median_ns);
        let copy = paired_ratio(&at_largest, key, pick, |r| r.memcpy_ns);
        if let (Some((k, _)), Some((c, _)), true) = (kernel, copy, hi > lo) {
            out.push_str(&format!(
                "- **threads**: {hi} threads make `{w}` {k:.2}× faster than {lo} (ideal {:.0}×) and \
                 the copy {c:.2}× — {}.\n",
                hi as f64 / lo as f64,
                if k <= c * 1.1 {
                    "the kernel scales about as far as memory bandwidth lets a copy scale"
                } else {
                    "the kernel scales beyond the copy: it was compute-bound on fewer threads"
                }
            ));
        }
    }
    // 4. dtype: f64 moves twice the bytes of f32.
    let key = |r: &Record| format!("{} {} {}", r.layout, r.threads, r.shape);
    if let Some((g, n)) = paired_ratio(
        &mine,
        key,
        |r| match r.dtype.name() {
            "f64" => Some(true),
            "f32" => Some(false),
            _ => None,
        },
        |r| r.median_ns,
    ) {
        out.push_str(&format!(
            "- **dtype**: f64 takes {g:.2}× `{w}`'s f32 time ({n} shapes); twice the bytes, so \
             2.0× is the expectation when bandwidth-bound, less when compute or latency dominates.\n"
        ));
    }
    out
}
