//! Benchmark plumbing: CSV schema, shape parsing, grids, option validation,
//! criterion import and report rendering (no timing assertions here).

use bn_harness::bench::criterion_import::import;
use bn_harness::bench::grid::{cases, GridName, Shape};
use bn_harness::bench::options::BenchFlags;
use bn_harness::bench::{round, Op, Record, CSV_COLUMNS};
use bn_harness::export::csv::{read_csv, CsvExporter};
use bn_harness::export::Exporter;
use bn_impls::{DType, Layout};
use clap::Parser;
use std::path::Path;

mod common;
use common::scratch;

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: BenchFlags,
}

fn args(extra: &[&str]) -> BenchFlags {
    let mut argv = vec!["bench"];
    argv.extend_from_slice(extra);
    Cmd::try_parse_from(argv).unwrap().args
}

// ---- CSV schema ----

/// The header the issue fixes, column for column, then the columns added
/// since: the roofline's (which copy, the read-only pass) and provenance
/// (appended, so readers of the first 17 keep working).
const ISSUE_HEADER: &str = "impl,op,dtype,layout,shape,n,c,spatial,threads,bytes,median_ns,p10_ns,p90_ns,memcpy_ns,ratio_to_memcpy,gb_per_s,samples,roofline,read_ns,source,run_id";

fn record(imp: &str, op: &str, shape: &str, threads: usize, median: f64, memcpy: f64) -> Record {
    let s: Shape = shape.parse().unwrap();
    let mut r = Record {
        imp: imp.into(),
        op: op.parse().unwrap(),
        dtype: DType::F32,
        layout: Layout::Contiguous,
        shape: s.to_string(),
        n: s.n(),
        c: s.c(),
        spatial: s.spatial(),
        threads,
        bytes: (s.elements() * 4) as u64,
        median_ns: median,
        p10_ns: median * 0.9,
        p90_ns: median * 1.2,
        memcpy_ns: memcpy,
        ratio_to_memcpy: 0.0,
        gb_per_s: 0.0,
        samples: 20,
        roofline: "memcpy".into(),
        read_ns: memcpy / 2.0,
        source: bn_harness::bench::provenance::inferred_source(imp).into(),
        run_id: "run-a".into(),
    };
    r.derive();
    r
}

#[test]
fn csv_header_is_the_documented_schema() {
    assert_eq!(CSV_COLUMNS.join(","), ISSUE_HEADER);
    let bytes = CsvExporter.serialize(&[]).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap().trim_end(), ISSUE_HEADER);
    let r = record("welford", "train", "2x3x4x5", 1, 1000.0, 500.0);
    let text = String::from_utf8(CsvExporter.serialize(&[r]).unwrap()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(ISSUE_HEADER));
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row.len(), CSV_COLUMNS.len());
    assert_eq!(
        &row[..10],
        &[
            "welford",
            "train",
            "f32",
            "contiguous",
            "2x3x4x5",
            "2",
            "3",
            "20",
            "1",
            "480"
        ]
    );
}

#[test]
fn derived_columns_follow_the_definitions() {
    // train moves 3 × bytes; 480 B × 3 / 1000 ns = 1.44 GB/s; ratio 1000/500.
    let r = record("welford", "train", "2x3x4x5", 1, 1000.0, 500.0);
    assert_eq!(r.ratio_to_memcpy, 2.0);
    assert!((r.gb_per_s - 1.44).abs() < 1e-9);
    let e = record("welford", "eval", "2x3x4x5", 1, 1000.0, 500.0);
    assert!((e.gb_per_s - 0.96).abs() < 1e-9);
    assert_eq!(Op::Backward.tensor_passes(), 3);
}

#[test]
fn csv_round_trips_and_tolerates_extra_columns() {
    let dir = scratch("bench", "csv");
    let recs = vec![
        record("naive", "train", "8x4", 1, 2000.0, 100.0),
        record("welford", "backward", "8x4x2x2", 2, 1500.5, 120.0),
    ];
    let p = dir.join("a.csv");
    std::fs::write(&p, CsvExporter.serialize(&recs).unwrap()).unwrap();
    assert_eq!(read_csv(&p).unwrap(), recs);
    // A later schema with one more column still reads.
    let text = std::fs::read_to_string(&p).unwrap();
    let extended: String = text.lines().map(|l| format!("{l},x\n")).collect();
    std::fs::write(&p, extended).unwrap();
    assert_eq!(read_csv(&p).unwrap(), recs);
    // A CSV without the schema is rejected, naming the missing column.
    std::fs::write(&p, "a,b\n1,2\n").unwrap();
    let err = read_csv(&p).unwrap_err().to_string();
    assert!(err.contains("'impl'"), "{err}");
}

/// The committed reference CSVs (ours and the PyTorch script's `torch` /
/// `torch-noalloc` rows) read, and write back their measurement columns
/// byte for byte (up to line ends) and their provenance unchanged.
#[test]
fn committed_csvs_read_and_write_back_unchanged() {
    let reports = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports");
    let back_dir = scratch("bench", "roundtrip");
    let mut seen = 0;
    for entry in std::fs::read_dir(&reports).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("bench-") || name.starts_with("torch-")) || !name.ends_with(".csv") {
            continue;
        }
        let recs = read_csv(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!recs.is_empty(), "{name}");
        // The PyTorch script's csv module ends lines with CRLF; bnh writes LF.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\r\n", "\n");
        let written = String::from_utf8(CsvExporter.serialize(&recs).unwrap()).unwrap();
        let want_source = |imp: &str| {
            if imp.starts_with("torch") {
                "torch"
            } else {
                "bnh"
            }
        };
        // The first 17 columns (the measurement) write back byte for byte.
        let first_17 = |t: &str| -> String {
            t.lines()
                .map(|l| l.split(',').take(17).collect::<Vec<_>>().join(",") + "\n")
                .collect()
        };
        assert!(
            first_17(&written) == first_17(&text),
            "{name} does not write back unchanged"
        );
        let header = text.lines().next().unwrap_or("");
        if header.split(',').any(|h| h == "run_id") {
            // A CSV with provenance (written since issue 14) keeps its
            // source and run, and what is written reads back the same.
            let col = |row: &str, i: usize| row.split(',').nth(i).unwrap_or("").to_string();
            let n = header.split(',').count();
            for (r, line) in recs.iter().zip(text.lines().skip(1)) {
                assert_eq!(r.source, want_source(&r.imp), "{name}");
                assert_eq!(
                    (r.source.clone(), r.run_id.clone()),
                    (col(line, n - 2), col(line, n - 1))
                );
            }
            let back = back_dir.join(&name);
            std::fs::write(&back, &written).unwrap();
            assert_eq!(
                read_csv(&back).unwrap(),
                recs,
                "{name} reads back differently"
            );
        } else {
            // Provenance inferred for an older CSV: torch rows from their
            // names, the run from the file name.
            for r in &recs {
                assert_eq!(
                    (r.source.as_str(), r.run_id.as_str()),
                    (want_source(&r.imp), name.as_str())
                );
            }
        }
        seen += 1;
    }
    assert!(seen >= 2, "no committed CSVs under {}", reports.display());
}

#[test]
fn bad_values_in_a_csv_name_file_row_and_what_is_accepted() {
    let dir = scratch("bench", "csv-bad");
    let good = String::from_utf8(
        CsvExporter
            .serialize(&[record("naive", "train", "8x4x2x2", 1, 2000.0, 100.0)])
            .unwrap(),
    )
    .unwrap();
    for (from, to, want) in [
        (
            ",train,",
            ",forward,",
            "unknown op 'forward'; use one of train, eval, backward, train_relu",
        ),
        (
            ",f32,",
            ",f8,",
            "unknown dtype 'f8'; use f32, f64, bf16 or f16",
        ),
        (
            ",contiguous,",
            ",nhwc,",
            "unknown layout 'nhwc'; use contiguous or channels_last",
        ),
        (",2000.0,", ",slow,", "column 'median_ns'"),
    ] {
        let p = dir.join("bad.csv");
        // Row 2 is good, row 3 has the bad value.
        let bad_row = good.lines().nth(1).unwrap().replacen(from, to, 1);
        std::fs::write(&p, format!("{good}{bad_row}\n")).unwrap();
        let err = read_csv(&p).unwrap_err().to_string();
        assert!(err.contains("bad.csv: row 3: "), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

// ---- shapes ----

#[test]
fn shapes_parse() {
    let s: Shape = "64x64x56x56".parse().unwrap();
    assert_eq!(
        (s.n(), s.c(), s.spatial(), s.elements()),
        (64, 64, 3136, 64 * 64 * 3136)
    );
    assert_eq!(s.to_string(), "64x64x56x56");
    let s: Shape = "256x1024".parse().unwrap();
    assert_eq!((s.n(), s.c(), s.spatial()), (256, 1024, 1));
    assert!(!s.has_spatial());
    let s: Shape = " 8x32x16x32x32 ".parse().unwrap();
    assert_eq!(s.dims().len(), 5);
}

#[test]
fn malformed_shapes_are_rejected_with_a_reason() {
    for (bad, why) in [
        ("64x0x3", "zero"),
        ("abc", "not a size"),
        ("1x", "not a size"),
        ("x4", "not a size"),
        ("64", "1 dims"),
        ("1x2x3x4x5x6", "6 dims"),
        ("-1x4", "not a size"),
        ("", "not a size"),
        ("99999999999x99999999999", "too large"),
    ] {
        let err = bad.parse::<Shape>().unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

// ---- grids ----

#[test]
fn standard_grid_covers_the_required_shapes_and_layouts() {
    let shapes: Vec<String> = GridName::Standard
        .shapes()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for need in [
        "32x64",
        "256x1024",
        "4096x4096",
        "32x64x28x28",
        "64x64x56x56",
        "64x512x7x7",
        "256x3x64x64",
    ] {
        assert!(shapes.contains(&need.to_string()), "missing {need}");
    }
    assert!(
        GridName::Standard
            .shapes()
            .iter()
            .any(|s| s.dims().len() == 5),
        "no 3-D shape"
    );
    let cs = cases(
        &GridName::Standard.shapes(),
        &GridName::Standard.default_layouts(),
    );
    for s in GridName::Standard
        .shapes()
        .iter()
        .filter(|s| s.has_spatial())
    {
        for l in Layout::ALL {
            assert!(cs.iter().any(|c| &c.shape == s && c.layout == l), "{s} {l}");
        }
    }
    // (N, C) shapes are one memory layout: measured once.
    assert_eq!(
        cs.iter().filter(|c| c.shape.to_string() == "32x64").count(),
        1
    );
    // Sizes span L1 (≤ 32 KiB) to well beyond a 32 MiB last-level cache, in f32.
    let bytes: Vec<usize> = GridName::Standard
        .shapes()
        .iter()
        .map(|s| s.elements() * 4)
        .collect();
    assert!(*bytes.iter().min().unwrap() <= 32 << 10);
    assert!(*bytes.iter().max().unwrap() >= 64 << 20);
}

#[test]
fn sweeps_are_monotone_and_span_their_range() {
    let b = GridName::BatchSweep.shapes();
    let ns: Vec<usize> = b.iter().map(|s| s.n()).collect();
    assert_eq!((ns[0], *ns.last().unwrap()), (1, 4096));
    assert!(ns.windows(2).all(|w| w[0] < w[1]));
    assert!(b
        .iter()
        .all(|s| s.c() == b[0].c() && s.spatial() == b[0].spatial()));
    let f = GridName::FeatureSweep.shapes();
    let cs: Vec<usize> = f.iter().map(|s| s.c()).collect();
    assert_eq!((cs[0], *cs.last().unwrap()), (1, 4096));
    assert!(cs.windows(2).all(|w| w[0] < w[1]));
    assert!(f
        .iter()
        .all(|s| s.n() == f[0].n() && s.spatial() == f[0].spatial()));
    for g in [b, f] {
        assert!(g[0].elements() * 4 <= 32 << 10);
        assert!(g.last().unwrap().elements() * 4 >= 64 << 20);
    }
    assert!(!GridName::Quick.shapes().is_empty());
}

// ---- options ----

#[test]
fn good_options_validate() {
    let o = args(&[
        "--grid",
        "quick",
        "--impls",
        "naive",
        "--ops",
        "eval,train",
        "--threads",
        "1,2",
        "--shapes",
        "4x3x2x2,8x5",
        "--layouts",
        "channels_last",
    ])
    .validate()
    .unwrap();
    assert_eq!(o.impls.len(), 1);
    assert_eq!(o.ops, vec![Op::Eval, Op::Train]);
    assert_eq!(o.threads, vec![1, 2]);
    assert_eq!(o.points.len(), 2);
    // 1 impl × 2 ops × 1 dtype (quick: f32) × 2 cases × 2 thread counts.
    assert_eq!(o.count(), 8);
    // Defaults pick up every registered implementation.
    let all = args(&["--grid", "quick"]).validate().unwrap();
    assert_eq!(all.impls.len(), bn_impls::registry::all().len());
}

/// The fused-activation ops: named in `--ops`, timed for every
/// implementation (plain kernels run them through the default
/// composition), written with their names, and their bytes-moved model
/// counts the residual and the mask.
#[test]
fn activation_ops_are_timed_when_asked_for() {
    let names = "train_relu,eval_relu,backward_relu,train_add_relu,eval_add_relu,backward_add_relu";
    let o = args(&[
        "--grid",
        "quick",
        "--shapes",
        "4x3x5x5,6x5",
        "--dtypes",
        "f32,bf16",
        "--ops",
        names,
        "--layouts",
        "contiguous,channels_last",
        "--min-time",
        "0.001",
    ])
    .validate()
    .unwrap();
    assert_eq!(o.ops.len(), 6);
    let recs = bn_harness::bench::sweep::run(&o, |_| {}, |_| {}).unwrap();
    assert_eq!(recs.len(), o.count());
    for imp in bn_impls::registry::all() {
        for op in &o.ops {
            assert!(recs.iter().any(|r| r.imp == imp.info().name && r.op == *op));
        }
    }
    let passes: Vec<usize> = o.ops.iter().map(|op| op.tensor_passes()).collect();
    assert_eq!(passes, [3, 2, 4, 4, 3, 5]);
    let joined: Vec<&str> = o.ops.iter().map(|op| op.name()).collect();
    assert_eq!(joined.join(","), names);
    for r in &recs {
        assert_eq!(r.op.to_string().parse::<Op>().unwrap(), r.op);
    }
    let e = args(&["--ops", "eval_gelu"])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("eval_gelu") && e.contains("eval_add_relu"),
        "{e}"
    );
}

#[test]
fn bad_options_are_rejected_before_measuring() {
    let dir = scratch("bench", "opts");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--impls".into(), "nope".into()], "nope"),
        (vec!["--threads".into(), "0".into()], "--threads 0"),
        (vec!["--shapes".into(), "64x0x3".into()], "zero"),
        (vec!["--ops".into(), "forward".into()], "unknown op"),
        (vec!["--dtypes".into(), "f8".into()], "f8"),
        (vec!["--layouts".into(), "nhwc".into()], "nhwc"),
        (vec!["--min-time".into(), "0".into()], "--min-time"),
        (vec!["--run-id".into(), "".into()], "--run-id"),
        (vec!["--run-id".into(), "a,b".into()], "--run-id"),
        (vec!["--run-id".into(), "a|b".into()], "--run-id"),
        (vec!["--run-id".into(), "x".repeat(65)], "--run-id"),
        (
            vec![
                "--csv".into(),
                dir.join("missing/out.csv").display().to_string(),
            ],
            "does not exist",
        ),
        (
            vec!["--csv".into(), dir.display().to_string()],
            "is a directory",
        ),
    ];
    for (extra, why) in cases {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let err = args(&refs).validate().unwrap_err().to_string();
        assert!(err.contains(why), "{extra:?}: {err}");
    }
}

#[test]
fn a_given_run_id_is_every_rows_and_the_default_is_per_call() {
    let opts = args(&["--run-id", "ref-2026.12.02+r1"]).validate().unwrap();
    assert_eq!(opts.run_id, "ref-2026.12.02+r1");
    let default = args(&[]).validate().unwrap().run_id;
    assert!(default.contains("-p"), "{default}");
    let dir = scratch("bench", "run-id");
    let csv = dir.join("out.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bnh"))
        .args([
            "bench", "--impls", "fused", "--ops", "eval", "--shapes", "4x8",
        ])
        .args(["--min-time", "0.001", "--run-id", "round-1", "--csv"])
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(!rows.is_empty(), "{text}");
    assert!(rows.iter().all(|r| r.ends_with(",round-1")), "{text}");
}

/// `--channel-tasks` picks the rule `fused`'s contiguous schedule runs
/// under (default: this machine's), and a run under each rule writes its rows.
#[test]
fn channel_tasks_flag_sets_the_rule() {
    use bn_impls::fused::task_rule::TaskRule;
    assert_eq!(args(&[]).validate().unwrap().task_rule, TaskRule::Machine);
    for (flag, rule) in [
        ("machine", TaskRule::Machine),
        ("shape", TaskRule::Shape),
        ("never", TaskRule::Never),
    ] {
        let opts = args(&["--channel-tasks", flag]).validate().unwrap();
        assert_eq!(opts.task_rule, rule, "{flag}");
    }
    let dir = scratch("bench", "channel-tasks");
    for flag in ["shape", "never"] {
        let csv = dir.join(format!("{flag}.csv"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bnh"))
            .args(["bench", "--impls", "fused", "--ops", "train"])
            .args([
                "--shapes",
                "2x16x40x40",
                "--layouts",
                "contiguous",
                "--dtypes",
                "f32",
            ])
            .args(["--min-time", "0.001", "--channel-tasks", flag, "--csv"])
            .arg(&csv)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}

#[test]
fn cli_rejects_bad_options_without_writing_anything() {
    let dir = scratch("bench", "cli");
    let csv = dir.join("out.csv");
    for extra in [
        vec!["--impls", "nope"],
        vec!["--threads", "0"],
        vec!["--shapes", "abc"],
        vec!["--channel-tasks", "sometimes"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bnh"))
            .args(["bench", "--grid", "quick", "--csv", csv.to_str().unwrap()])
            .args(&extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{err}");
        assert!(!err.contains("measurements"), "sweep started: {err}");
        assert!(!csv.exists());
    }
}

// ---- criterion import ----

fn fake_criterion(dir: &Path, group: &str, func: &str, median: f64, per_iter: &[f64]) {
    let d = dir.join(group.replace('/', "_")).join(func).join("new");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("benchmark.json"),
        format!(r#"{{"group_id":"{group}","function_id":"{func}","value_str":null,"throughput":null,"full_id":"x","directory_name":"x","title":"x"}}"#),
    )
    .unwrap();
    std::fs::write(
        d.join("estimates.json"),
        format!(r#"{{"median":{{"point_estimate":{median},"standard_error":1.0,"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}}}}}}"#),
    )
    .unwrap();
    let iters: Vec<String> = per_iter.iter().map(|_| "2.0".to_string()).collect();
    let times: Vec<String> = per_iter.iter().map(|t| (2.0 * t).to_string()).collect();
    std::fs::write(
        d.join("sample.json"),
        format!(
            r#"{{"sampling_mode":"Flat","iters":[{}],"times":[{}]}}"#,
            iters.join(","),
            times.join(",")
        ),
    )
    .unwrap();
}

#[test]
fn criterion_results_import_to_records() {
    let dir = scratch("bench", "crit");
    let g = "eval/f64/channels_last/8x4x2x2/t1";
    fake_criterion(&dir, g, "welford", 800.0, &[700.0, 800.0, 900.0]);
    fake_criterion(&dir, g, "memcpy", 200.0, &[200.0, 200.0, 200.0]);
    // A group without a memcpy baseline is skipped.
    fake_criterion(&dir, "train/f32/contiguous/8x4/t1", "welford", 5.0, &[5.0]);
    let recs = import(&dir).unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(
        (r.imp.as_str(), r.op, r.dtype, r.layout),
        ("welford", Op::Eval, DType::F64, Layout::ChannelsLast)
    );
    assert_eq!(
        (r.shape.as_str(), r.n, r.c, r.spatial, r.threads, r.bytes),
        ("8x4x2x2", 8, 4, 4, 1, 8 * 4 * 4 * 8)
    );
    assert_eq!(
        (r.median_ns, r.memcpy_ns, r.ratio_to_memcpy, r.samples),
        (800.0, 200.0, 4.0, 3)
    );
    assert!((r.p10_ns - 720.0).abs() < 1e-9 && (r.p90_ns - 880.0).abs() < 1e-9);
    assert!(import(&dir.join("absent")).is_err());
}

// ---- report ----

#[test]
fn report_renders_tables_and_charts_from_a_tiny_csv() {
    let dir = scratch("bench", "report");
    let mut recs = Vec::new();
    for (shape, scale) in [("16x8", 1.0), ("64x32x4x4", 40.0), ("256x64x8x8", 800.0)] {
        for threads in [1, 2] {
            let t = threads as f64;
            for op in ["train", "eval", "backward"] {
                recs.push(record(
                    "naive",
                    op,
                    shape,
                    threads,
                    4000.0 * scale / t,
                    500.0 * scale / t,
                ));
                recs.push(record(
                    "welford",
                    op,
                    shape,
                    threads,
                    1000.0 * scale / t,
                    500.0 * scale / t,
                ));
                recs.push(record(
                    "torch-noalloc",
                    op,
                    shape,
                    threads,
                    2000.0 * scale / t,
                    500.0 * scale / t,
                ));
            }
        }
    }
    let csv = dir.join("tiny.csv");
    std::fs::write(&csv, CsvExporter.serialize(&recs).unwrap()).unwrap();
    let out = dir.join("out");
    let w = bn_harness::report::from_csvs(&[csv], &out).unwrap();
    let md = std::fs::read_to_string(&w.report).unwrap();
    for needle in [
        "# Batch-norm benchmark report",
        "## Summary",
        "### Why",
        "## Breakdown by layout, dtype and threads",
        "### train — f32, 1 thread(s)",
        "### backward — f32, 2 thread(s)",
        "torch-noalloc",
        "like-for-like",
        "## Method",
    ] {
        assert!(md.contains(needle), "REPORT.md lacks {needle:?}");
    }
    // Top-down: summary, breakdown, per-shape tables, method.
    let at = |s: &str| md.find(s).unwrap();
    assert!(at("## Summary") < at("## Breakdown") && at("## Breakdown") < at("## Per-shape"));
    assert!(at("## Per-shape") < at("## Method"));
    // welford takes 1/4 of naive's time and 1/2 of torch-noalloc's, 2× a copy,
    // in every configuration: the winner, its margin over the runner-up
    // (naive is 4×; torch is not ranked) and PyTorch's position.
    assert!(
        md.contains(
            "| train | small (x ≤ 1 MiB, cache) | 4 | **welford** (4/4) | 4.00× over naive | 2.00× (1.50) | torch-noalloc 2.00× slower | – |"
        ),
        "{md}"
    );
    // Per-shape rows: the winner in bold, named, with its margin and ratio.
    assert!(
        md.contains("| 64x32x4x4 | contiguous | 128 KiB | 160.00 µs | **40.00 µs** | 80.00 µs | welford | 4.00× | 2.00× |"),
        "{md}"
    );
    // 3 ops × 3 shapes × 2 thread counts, each counted once.
    assert!(md.contains("in 18 configurations"), "{md}");
    let names: Vec<String> = w
        .charts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for op in ["train", "eval", "backward"] {
        for kind in ["time_per_element", "gbps", "thread_scaling"] {
            assert!(
                names.contains(&format!("{kind}_{op}.svg")),
                "{kind}_{op} missing: {names:?}"
            );
        }
    }
    for p in &w.charts {
        let svg = std::fs::read_to_string(p).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            p.display()
        );
        assert!(
            svg.contains("welford") && svg.contains("naive"),
            "legend missing in {}",
            p.display()
        );
        assert!(md.contains(&format!("]({})", p.file_name().unwrap().to_string_lossy())));
    }
    let gbps = std::fs::read_to_string(out.join("gbps_eval.svg")).unwrap();
    assert!(gbps.contains("memcpy") && gbps.contains("GB/s") && gbps.contains("bandwidth"));
    // Nothing to report is an error, not an empty file.
    let empty = dir.join("empty.csv");
    std::fs::write(&empty, CsvExporter.serialize(&[]).unwrap()).unwrap();
    assert!(bn_harness::report::from_csvs(&[empty], &dir.join("o2")).is_err());
}

// ---- measurement plumbing (no speed assertions) ----

#[test]
fn a_tiny_sweep_measures_every_implementation_and_op() {
    let o = args(&[
        "--grid",
        "quick",
        "--shapes",
        "4x3x2x2,6x5",
        "--dtypes",
        "f32,f64",
        "--threads",
        "1,2",
        "--min-time",
        "0.001",
    ])
    .validate()
    .unwrap();
    let mut steps = 0;
    let recs = bn_harness::bench::sweep::run(&o, |_| steps += 1, |_| {}).unwrap();
    assert_eq!(recs.len(), o.count());
    assert_eq!(steps, o.count());
    for imp in bn_impls::registry::all() {
        for op in Op::DEFAULT {
            assert!(recs.iter().any(|r| r.imp == imp.info().name && r.op == op));
        }
    }
    // Without --ops only the three plain operations are timed.
    assert!(recs.iter().all(|r| Op::DEFAULT.contains(&r.op)));
    for r in &recs {
        assert!(r.median_ns > 0.0 && r.memcpy_ns > 0.0, "{r:?}");
        assert!(r.p10_ns <= r.median_ns && r.median_ns <= r.p90_ns, "{r:?}");
        assert!(r.samples >= bn_harness::bench::runner::MIN_SAMPLES);
        assert_eq!(
            r.bytes as usize,
            r.elements() * if r.dtype == DType::F32 { 4 } else { 8 }
        );
    }
    // (N, C) shapes appear once, as contiguous, even with both layouts asked for.
    assert!(recs
        .iter()
        .filter(|r| r.shape == "6x5")
        .all(|r| r.layout == Layout::Contiguous));
}

/// Issue 13/14: every row of one run is divided by the run's best copy for
/// its size and thread count, so rows of one size and thread count share
/// one ruler (whatever their own interleaved samples were), the winning copy
/// is named, and the read-only pass is recorded.
#[test]
fn rows_of_one_size_and_thread_count_share_the_runs_best_copy() {
    let o = args(&[
        "--shapes",
        "16x8x4x4,64x32",
        "--layouts",
        "contiguous,channels_last",
        "--threads",
        "1,2",
        "--min-time",
        "0.002",
    ])
    .validate()
    .unwrap();
    let mut provisional = Vec::new();
    let recs = bn_harness::bench::sweep::run(&o, |_| {}, |r| provisional.push(r.clone())).unwrap();
    assert_eq!(provisional.len(), recs.len());
    let mut rulers = std::collections::BTreeMap::new();
    for r in &recs {
        assert!(
            ["memcpy", "vector", "nontemporal"].contains(&r.roofline.as_str()),
            "{r:?}"
        );
        assert!(r.read_ns > 0.0, "{r:?}");
        let ruler = rulers
            .entry((r.bytes, r.threads))
            .or_insert((r.memcpy_ns, r.roofline.clone()));
        assert_eq!(*ruler, (r.memcpy_ns, r.roofline.clone()), "{r:?}");
        assert_eq!(r.ratio_to_memcpy, round(r.median_ns / r.memcpy_ns, 4));
    }
    // Two sizes × two thread counts; both layouts, 4 impls and 3 ops share
    // each ruler. A median of pooled samples is never below the smallest
    // median of the parts: the pooled ruler is at least the fastest row's own.
    assert_eq!(rulers.len(), 4);
    for (p, r) in provisional.iter().zip(&recs) {
        assert_eq!((p.median_ns, &p.imp), (r.median_ns, &r.imp));
    }
    for ((bytes, threads), (ruler, _)) in &rulers {
        let fastest_own = provisional
            .iter()
            .filter(|p| (p.bytes, p.threads) == (*bytes, *threads))
            .map(|p| p.memcpy_ns)
            .fold(f64::INFINITY, f64::min);
        assert!(*ruler >= fastest_own - 0.1, "{ruler} < {fastest_own}");
    }
}

#[test]
fn report_adds_the_accuracy_section_when_given_an_accuracy_csv() {
    use bn_harness::accuracy::export::{to_csv, AccuracyRow};
    let dir = scratch("bench", "report-accuracy");
    let row = |imp: &str, ratio: f64, err: f64| AccuracyRow {
        imp: imp.into(),
        dtype: "f32".into(),
        op: "y".into(),
        n_per_channel: 100,
        offset_ratio: ratio,
        scale: 1.0,
        max_rel_err: err,
        max_ulp_err: err / 1.2e-7,
        nan_count: 0,
    };
    let rows = vec![
        row("naive", 1.0, 1e-7),
        row("naive", 1e4, 3.0),
        row("welford", 1.0, 5e-8),
        row("welford", 1e4, 6e-8),
    ];
    let acc = dir.join("accuracy.csv");
    std::fs::write(&acc, to_csv(&rows).unwrap()).unwrap();
    let recs = vec![record("welford", "train", "64x32x4x4", 1, 2000.0, 1000.0)];
    let bench = dir.join("bench.csv");
    std::fs::write(&bench, CsvExporter.serialize(&recs).unwrap()).unwrap();

    // Accuracy alone: a report of its own.
    let w = bn_harness::report::from_csvs(std::slice::from_ref(&acc), &dir.join("a")).unwrap();
    let md = std::fs::read_to_string(&w.report).unwrap();
    assert!(md.contains("## Accuracy vs conditioning"), "{md}");
    assert!(md.contains("r=1e4") && md.contains("3.0e0"), "{md}");
    assert!(w.charts.iter().any(|p| p.ends_with("accuracy.svg")));

    // With a bench CSV: both sections, the bench tables first.
    let w = bn_harness::report::from_csvs(&[bench, acc], &dir.join("b")).unwrap();
    let md = std::fs::read_to_string(&w.report).unwrap();
    let (b, a) = (
        md.find("## Summary").unwrap(),
        md.find("## Accuracy").unwrap(),
    );
    assert!(b < a);
    let svg = std::fs::read_to_string(dir.join("b/accuracy.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("welford"));
}

/// Noisy measurements (p90/p10 > 1.5) are counted and named in one
/// warning, and marked `~` in REPORT.md; steady ones get no warning.
#[test]
fn noisy_measurements_are_warned_about_and_marked() {
    use bn_harness::cli::bench::noisy_warning;
    let steady = record("welford", "train", "64x32x4x4", 1, 1000.0, 500.0);
    let mut noisy = record("fused", "train", "64x32x4x4", 1, 800.0, 500.0);
    noisy.p10_ns = 500.0;
    noisy.p90_ns = 1500.0;
    assert!(!steady.is_noisy() && noisy.is_noisy());
    assert_eq!(noisy_warning(std::slice::from_ref(&steady)), None);
    let w = noisy_warning(&[steady.clone(), noisy.clone()]).unwrap();
    assert!(w.contains("1 of 2 measurements are noisy"), "{w}");
    assert!(
        w.contains("fused train f32 64x32x4x4 contiguous t1 at 3.00×"),
        "{w}"
    );
    let dir = scratch("bench", "noisy");
    let csv = dir.join("n.csv");
    std::fs::write(&csv, CsvExporter.serialize(&[steady, noisy]).unwrap()).unwrap();
    let w = bn_harness::report::from_csvs(&[csv], &dir.join("out")).unwrap();
    let md = std::fs::read_to_string(w.report).unwrap();
    assert!(md.contains("**800 ns** ~"), "{md}");
    assert!(md.contains("1.25× over welford ~"), "{md}");
}
