//! REPORT.md's side-by-side table with PyTorch (issue 13): every cell that
//! both bnh and `scripts/torch_bench.py` measured, bnh's best built-in
//! implementation next to `torch` and `torch-noalloc`, and the speed-up from
//! **absolute medians** — never from ratios to each tool's own copy, because
//! PyTorch's copy is issued from Python with about a microsecond of call
//! overhead, which makes its ratios incomparable on small shapes.
//!
//! Rows where PyTorch is faster are marked, with the measured reason: how
//! far bnh's best is from the op's bytes-moved floor. Near the floor the
//! kernel is memory-bound (only fewer bytes could win); far above it, it is
//! compute- or overhead-bound.

use crate::bench::{Op, Record};
use crate::export::table::human_ns;
use std::collections::BTreeMap;

/// One cell: op, dtype, layout, shape, threads (names, for ordering).
type Cell = (Op, &'static str, &'static str, u64, String, usize);

fn cell(r: &Record) -> Cell {
    (
        r.op,
        r.dtype.name(),
        r.layout.name(),
        r.bytes,
        r.shape.clone(),
        r.threads,
    )
}

/// Whether `r` is one of bnh's own implementations (not PyTorch, not a
/// plugin or peer that happens to be in the same CSVs).
fn is_builtin(r: &Record) -> bool {
    bn_impls::registry::by_name(&r.imp).is_ok()
}

/// The op's bytes-moved floor in ns: a copy (one read and one write of `x`)
/// plus one read pass per further tensor pass ([`Op::tensor_passes`]), with
/// the run's measured read pass, or half a copy per pass without one.
pub fn floor_ns(r: &Record) -> f64 {
    let extra = r.op.tensor_passes().saturating_sub(2) as f64;
    let read = if r.read_ns > 0.0 {
        r.read_ns
    } else {
        r.memcpy_ns / 2.0
    };
    r.memcpy_ns + extra * read
}

/// What bnh needs per row of the table.
struct Row<'a> {
    best: &'a Record,
    torch: Option<&'a Record>,
    noalloc: Option<&'a Record>,
}

/// The markdown section, or `None` when no cell has both a bnh and a
/// `torch-noalloc` (or `torch`) measurement.
pub fn markdown(records: &[Record]) -> Option<String> {
    let mut rows: BTreeMap<Cell, Row> = BTreeMap::new();
    for r in records.iter().filter(|r| is_builtin(r)) {
        let e = rows.entry(cell(r)).or_insert(Row {
            best: r,
            torch: None,
            noalloc: None,
        });
        if r.median_ns < e.best.median_ns {
            e.best = r;
        }
    }
    for r in records {
        let Some(row) = rows.get_mut(&cell(r)) else {
            continue;
        };
        match r.imp.as_str() {
            "torch" => row.torch = Some(r),
            "torch-noalloc" => row.noalloc = Some(r),
            _ => {}
        }
    }
    rows.retain(|_, row| row.torch.is_some() || row.noalloc.is_some());
    if rows.is_empty() {
        return None;
    }
    let mut md = String::from(
        "## bnh and PyTorch, cell by cell\n\n\
         Every cell both measured: bnh's fastest built-in implementation, PyTorch as called \
         (`torch`) and without output page faults (`torch-noalloc`), and the speed-up \
         `torch-noalloc median / bnh median` (from `torch` where there is no `torch-noalloc` \
         row). Medians are absolute; only runs made back to back on one machine are \
         comparable. **PyTorch faster** rows give bnh's distance from the op's bytes-moved \
         floor (a copy plus one read pass per further tensor pass): near 1× bnh is \
         memory-bound, far above it compute- or overhead-bound.\n\n\
         | op | dtype | layout | shape | threads | bnh best | median | torch | torch-noalloc | speed-up | note |\n\
         |---|---|---|---|---:|---|---:|---:|---:|---:|---|\n",
    );
    let (mut wins, mut losses) = (0, 0);
    for ((op, dtype, layout, _, shape, threads), row) in &rows {
        let theirs = row.noalloc.or(row.torch).expect("retained rows have one");
        let speedup = theirs.median_ns / row.best.median_ns;
        let note = if speedup < 1.0 {
            losses += 1;
            format!(
                "**PyTorch faster**: bnh at {:.2}× its floor",
                row.best.median_ns / floor_ns(row.best)
            )
        } else {
            wins += 1;
            String::new()
        };
        let t = |r: Option<&Record>| r.map_or("–".to_string(), |r| human_ns(r.median_ns));
        md += &format!(
            "| {op} | {dtype} | {layout} | {shape} | {threads} | {} | {} | {} | {} | {speedup:.2}× | {note} |\n",
            row.best.imp,
            human_ns(row.best.median_ns),
            t(row.torch),
            t(row.noalloc),
        );
    }
    md += &format!(
        "\nbnh faster in {wins} of {} cells, PyTorch in {losses}.\n",
        wins + losses
    );
    Some(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bn_impls::{DType, Layout};

    fn rec(imp: &str, op: Op, median: f64) -> Record {
        let mut r = Record {
            imp: imp.into(),
            op,
            dtype: DType::F32,
            layout: Layout::Contiguous,
            shape: "64x64".into(),
            n: 64,
            c: 64,
            spatial: 1,
            threads: 1,
            bytes: 16384,
            median_ns: median,
            p10_ns: median,
            p90_ns: median,
            memcpy_ns: 100.0,
            ratio_to_memcpy: 0.0,
            gb_per_s: 0.0,
            samples: 5,
            roofline: "vector".into(),
            read_ns: 60.0,
            source: String::new(),
            run_id: "r".into(),
        };
        r.derive();
        r
    }

    #[test]
    fn best_builtin_against_noalloc_by_absolute_medians() {
        let recs = [
            rec("fused", Op::Train, 300.0),
            rec("naive", Op::Train, 200.0),
            rec("my-plugin", Op::Train, 1.0),
            rec("torch", Op::Train, 900.0),
            rec("torch-noalloc", Op::Train, 400.0),
            rec("fused", Op::Eval, 300.0),
            rec("torch-noalloc", Op::Eval, 150.0),
            rec("fused", Op::Backward, 300.0),
        ];
        let md = markdown(&recs).unwrap();
        // Train: naive is the best built-in (the plugin is not bnh's), 2× faster.
        assert!(
            md.contains("| train | f32 | contiguous | 64x64 | 1 | naive |"),
            "{md}"
        );
        assert!(md.contains("| 2.00× |"), "{md}");
        // Eval: PyTorch wins; floor of eval is one copy, so 3.00× its floor.
        assert!(
            md.contains("**PyTorch faster**: bnh at 3.00× its floor"),
            "{md}"
        );
        // Backward has no PyTorch row: not in the table.
        assert!(!md.contains("| backward |"), "{md}");
        assert!(
            md.contains("bnh faster in 1 of 2 cells, PyTorch in 1."),
            "{md}"
        );
        assert!(markdown(&recs[..3]).is_none());
    }

    #[test]
    fn floors_count_one_read_per_extra_pass() {
        assert_eq!(floor_ns(&rec("fused", Op::Eval, 1.0)), 100.0);
        assert_eq!(floor_ns(&rec("fused", Op::Train, 1.0)), 160.0);
        let mut r = rec("fused", Op::Backward, 1.0);
        assert_eq!(floor_ns(&r), 160.0);
        r.read_ns = 0.0;
        assert_eq!(floor_ns(&r), 150.0);
    }
}
