//! Resources are checked before work starts: a bench cell or accuracy sweep
//! that will not fit in memory is refused with exit 2 (naming the size and
//! the fix) instead of aborting in the allocator; every cell of a sweep is
//! checked before anything is timed; inputs PyTorch rejects in training are
//! not timed; an accuracy CSV that cannot be written fails before the sweep.

mod common;
use common::{bnh, scratch};
use std::process::Output;
use std::time::{Duration, Instant};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2, one `bnh: error:` line, no panic or allocator abort.
fn usage_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("bnh: error:"), "{err}");
    for bad in ["panicked", "memory allocation of", "backtrace"] {
        assert!(!err.contains(bad), "{err}");
    }
    err
}

/// The reproduction: 1e12 elements pass the shape check, then
/// aborted with `memory allocation of … bytes failed` (exit 134).
#[test]
fn a_bench_cell_larger_than_memory_is_refused() {
    let t = Instant::now();
    let out = bnh(&["bench", "--shapes", "100000x100000x100", "--impls", "fused"]);
    let err = usage_error(&out);
    assert!(
        err.contains("100000x100000x100") && err.contains("TiB"),
        "{err}"
    );
    assert!(err.contains("smaller --shapes"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "refused late");
}

/// 1e10 elements (a 200 GiB cell) against an explicit budget, so the test
/// does not depend on the machine's memory.
#[test]
fn max_memory_limits_bench_cells() {
    let out = bnh(&["bench", "--shapes", "100000x100000", "--max-memory", "8G"]);
    let err = usage_error(&out);
    assert!(err.contains("--max-memory limit is 8.0 GiB"), "{err}");
    assert!(err.contains("needs 223.5 GiB"), "{err}");
    let bad = bnh(&["bench", "--shapes", "8x8", "--max-memory", "lots"]);
    assert!(
        usage_error(&bad).contains("--max-memory"),
        "bad size accepted"
    );
}

/// Every cell is validated up front: a sweep whose last cell is too large
/// times nothing and writes no CSV.
#[test]
fn all_cells_are_checked_before_timing() {
    let dir = scratch("resources", "upfront");
    let csv = dir.join("b.csv");
    let out = bnh(&[
        "bench",
        "--shapes",
        "8x8,64x64x56x56",
        "--impls",
        "naive",
        "--max-memory",
        "1M",
        "--min-time",
        "0.01",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let err = usage_error(&out);
    assert!(err.contains("64x64x56x56"), "{err}");
    assert!(out.stdout.is_empty(), "timed before refusing");
    assert!(!csv.exists());
}

/// N·S = 1 in training is an input PyTorch rejects ("Expected more than 1
/// value per channel when training"): not timed. Eval of it is fine.
#[test]
fn one_value_per_channel_is_not_timed_in_training() {
    for ops in ["train", "backward", "eval,train"] {
        let out = bnh(&["bench", "--shapes", "1x1", "--ops", ops, "--impls", "fused"]);
        let err = usage_error(&out);
        assert!(
            err.contains("1 value per channel") && err.contains("--ops eval"),
            "{err}"
        );
    }
    let out = bnh(&[
        "bench",
        "--shapes",
        "1x1",
        "--ops",
        "eval",
        "--impls",
        "fused",
        "--min-time",
        "0.01",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The accuracy sweep is checked against the memory budget before it runs.
#[test]
fn accuracy_sweep_larger_than_the_budget_is_refused() {
    let dir = scratch("resources", "acc-mem");
    let csv = dir.join("a.csv");
    let out = bnh(&[
        "accuracy",
        "--quick",
        "--max-memory",
        "100K",
        "--csv",
        csv.to_str().unwrap(),
        "--chart",
        "none",
    ]);
    let err = usage_error(&out);
    assert!(
        err.contains("accuracy sweep") && err.contains("--max-n"),
        "{err}"
    );
    assert!(!csv.exists());
}

/// A CSV path in a folder that takes no files fails before the sweep (it
/// used to fail after it, with the minute of work lost).
#[test]
fn accuracy_checks_the_csv_is_writable_before_sweeping() {
    let out = bnh(&[
        "accuracy",
        "--quick",
        "--csv",
        "/proc/bnh-acc.csv",
        "--chart",
        "none",
    ]);
    let err = usage_error(&out);
    assert!(err.contains("cannot write in /proc"), "{err}");
    assert!(!err.contains("rows in"), "swept first: {err}");
}
