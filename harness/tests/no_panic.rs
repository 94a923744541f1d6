//! Bad input never panics: property tests over arbitrary and mutated bytes
//! for the case-file parser and the public entry points (the drivers in
//! `fuzz/drivers/` that the `cargo fuzz` targets run), and `bnh` on bad
//! files and flags.
//!
//! Every rejection must be a typed error whose message names the problem;
//! a panic fails the test (proptest reports it with the shrunk input).

mod common;
use common::{bnh, scratch};

// The cargo-fuzz drivers, included from `fuzz/drivers/` (one copy of the code).
#[path = "../../fuzz/drivers/api_call.rs"]
mod api_call_driver;
#[path = "../../fuzz/drivers/case_file.rs"]
mod case_file_driver;
use api_call_driver::api_call;
use case_file_driver::case_file;

use bn_harness::conformance::shipped_fixtures;
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;

fn fixture_texts() -> Vec<String> {
    [
        "bn2d-small.json",
        "bn1d-2d-f32-train.json",
        "bn1d-2d-f32-eval-nograd.json",
    ]
    .iter()
    .map(|n| std::fs::read_to_string(shipped_fixtures().join("torch").join(n)).unwrap())
    .collect()
}

/// A rejection message is a sentence about the input, not a bare code.
fn assert_messages(msgs: &[String]) -> Result<(), TestCaseError> {
    for m in msgs {
        prop_assert!(
            m.len() >= 12 && m.chars().any(|c| c.is_alphabetic()),
            "unhelpful message: {m:?}"
        );
    }
    Ok(())
}

/// A JSON value to put somewhere it does not belong.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9/]{0,8}".prop_map(Value::String),
        prop::collection::vec(0u64..6, 0..7).prop_map(Value::from),
        prop::collection::vec(-3.0f64..3.0, 0..5).prop_map(Value::from),
        Just(Value::from(vec![u64::MAX, 2])),
    ]
}

/// Replace the `k`-th node (pre-order) of `v` with `new`.
fn replace_nth(v: &mut Value, k: &mut usize, new: &Value) -> bool {
    if *k == 0 {
        *v = new.clone();
        return true;
    }
    *k -= 1;
    match v {
        Value::Object(m) => m.values_mut().any(|c| replace_nth(c, k, new)),
        Value::Array(a) => a.iter_mut().any(|c| replace_nth(c, k, new)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Arbitrary bytes as a case file: parse, and run whatever parses.
    #[test]
    fn case_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_messages(&case_file(&bytes))?;
    }

    /// Real case files, truncated or with a byte range overwritten.
    #[test]
    fn case_parser_survives_damaged_files(which in 0usize..3, cut in 0.0f64..1.0, at in 0.0f64..1.0,
                                          patch in prop::collection::vec(any::<u8>(), 0..8)) {
        let text = &fixture_texts()[which];
        let bytes = text.as_bytes();
        let truncated = &bytes[..(cut * bytes.len() as f64) as usize];
        assert_messages(&case_file(truncated))?;
        let mut patched = bytes.to_vec();
        let i = (at * bytes.len() as f64) as usize;
        for (k, p) in patch.iter().enumerate() {
            if i + k < patched.len() { patched[i + k] = *p; }
        }
        assert_messages(&case_file(&patched))?;
    }

    /// Real case files with one JSON node (a shape, a length, a flag, a
    /// number, a whole tensor) replaced by junk: structurally valid JSON
    /// that is not a valid case, or a valid case with bad values.
    #[test]
    fn case_parser_and_runner_survive_wrong_values(which in 0usize..3, node in 0usize..400, new in junk()) {
        let mut v: Value = serde_json::from_str(&fixture_texts()[which]).unwrap();
        let mut k = node;
        replace_nth(&mut v, &mut k, &new);
        assert_messages(&case_file(v.to_string().as_bytes()))?;
    }

    /// Arbitrary bytes decoded into module and kernel calls (random ranks,
    /// sizes including 0, layouts and foreign strides, configs including NaN
    /// eps and out-of-range momentum, near-right lengths, NaN/inf values).
    #[test]
    fn public_entry_points_survive_random_calls(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        assert_messages(&api_call(&bytes))?;
    }
}

/// `bnh run-case` on a bad file: non-zero exit, a message naming the
/// problem, no output written, an existing output untouched, no temp files.
fn run_case_rejects(dir: &Path, name: &str, bytes: &[u8], hint: &str) {
    let case = dir.join(name);
    std::fs::write(&case, bytes).unwrap();
    let out_path = dir.join(format!("{name}.out"));
    let out = bnh(&[
        "run-case",
        case.to_str().unwrap(),
        "--impl",
        "welford",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name}: exit 0");
    assert!(
        err.contains(name) && err.contains(hint),
        "{name}: stderr {err}"
    );
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(!out_path.exists(), "{name}: wrote output");
    std::fs::write(&out_path, b"keep").unwrap();
    let out = bnh(&[
        "run-case",
        case.to_str().unwrap(),
        "--impl",
        "welford",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        b"keep",
        "{name}: output corrupted"
    );
    std::fs::remove_file(&out_path).unwrap();
}

#[test]
fn run_case_rejects_truncated_wrong_format_and_wrong_length_files() {
    let dir = scratch("nopanic", "run-case");
    let text = &fixture_texts()[0];
    run_case_rejects(&dir, "empty.json", b"", "EOF");
    run_case_rejects(
        &dir,
        "truncated.json",
        &text.as_bytes()[..text.len() / 2],
        "EOF",
    );
    run_case_rejects(&dir, "binary.json", &[0xff, 0x00, 0x13, 0x37], "UTF-8");
    run_case_rejects(&dir, "array.json", b"[1, 2, 3]", "format");
    run_case_rejects(&dir, "other-format.json", br#"{"format": "npy"}"#, "npy");
    let mut v: Value = serde_json::from_str(text).unwrap();
    v["inputs"]["x"].as_array_mut().unwrap().pop();
    run_case_rejects(
        &dir,
        "short-x.json",
        v.to_string().as_bytes(),
        "inputs.x has",
    );
    let mut v: Value = serde_json::from_str(text).unwrap();
    v["inputs"]["weight"]
        .as_array_mut()
        .unwrap()
        .push(Value::from(1.0));
    run_case_rejects(
        &dir,
        "long-weight.json",
        v.to_string().as_bytes(),
        "inputs.weight has",
    );
    let mut v: Value = serde_json::from_str(text).unwrap();
    v["shape"] = Value::from(vec![2u64]);
    run_case_rejects(&dir, "rank-1.json", v.to_string().as_bytes(), "2 to 5 dims");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        8,
        "temporary files left behind"
    );
}

/// `bnh accuracy` validates its flags before doing any work and writes nothing on error.
#[test]
fn accuracy_rejects_bad_options_without_writing() {
    let dir = scratch("nopanic", "accuracy");
    let csv = dir.join("a.csv");
    let c = csv.to_str().unwrap();
    let bad_csv = dir.join("bad.csv");
    std::fs::write(&bad_csv, "impl,dtype\nx,y\n").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--dtypes", "f8"], "unknown dtype 'f8'"),
        (&["--impls", "fastest"], "unknown implementation 'fastest'"),
        (&["--max-n", "1"], "--max-n 1"),
        (&["--csv", "/nonexistent-dir/a.csv"], "does not exist"),
        (
            &["--from-csv", bad_csv.to_str().unwrap()],
            "not an accuracy row",
        ),
        (&["--max-n", "-3"], "-3"),
    ];
    for (args, hint) in cases {
        let chart = dir.join("a.svg");
        let mut all = vec!["accuracy", "--quick", "--chart", chart.to_str().unwrap()];
        if !args.contains(&"--csv") {
            all.extend(["--csv", c]);
        }
        all.extend_from_slice(args);
        let out = bnh(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: exit 0");
        assert!(
            err.contains(hint) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(!csv.exists() && !chart.exists(), "{args:?}: wrote a file");
    }
}

/// Regression (found by `public_entry_points_survive_random_calls`):
/// `nd_view` with a channels-last layout and a rank below 2 indexed past the
/// shape; it must give a view or an error, and the module must reject the rank.
#[test]
fn channels_last_views_of_rank_0_and_1_do_not_panic() {
    use bn_impls::layout::{nd_view, nd_view_mut};
    use bn_impls::{BatchNorm, Config, Layout};
    let data = [1.0f32, 2.0, 3.0];
    let x = nd_view(&[3], Layout::ChannelsLast, &data).unwrap();
    let mut out = [0.0f32; 3];
    let y = nd_view_mut(&[3], Layout::ChannelsLast, &mut out).unwrap();
    let mut bn = BatchNorm::<f32>::new(Config::new(3)).unwrap();
    let imp = bn_impls::registry::by_name("welford").unwrap();
    let err = bn.forward(imp, x, y).unwrap_err().to_string();
    assert!(err.contains("1 dimensions"), "{err}");
    assert!(nd_view(&[], Layout::ChannelsLast, &data[..1]).is_ok());
}

/// Regression (found by the `api_call` fuzz target): a training step with
/// `num_batches_tracked = i64::MAX` overflowed the counter; it now saturates.
#[test]
fn a_saturated_batch_counter_does_not_overflow() {
    use bn_impls::layout::{nd_view, nd_view_mut};
    use bn_impls::{BatchNorm, Config, Layout};
    let data = [1.0f32, 2.0, 3.0, 5.0];
    let mut out = [0.0f32; 4];
    let mut cfg = Config::new(2);
    cfg.momentum = None;
    let mut bn = BatchNorm::<f32>::new(cfg).unwrap();
    bn.num_batches_tracked = Some(i64::MAX);
    for imp in bn_impls::registry::all() {
        let x = nd_view(&[2, 2], Layout::Contiguous, &data).unwrap();
        let y = nd_view_mut(&[2, 2], Layout::Contiguous, &mut out).unwrap();
        bn.forward(*imp, x, y).unwrap();
        assert_eq!(bn.num_batches_tracked, Some(i64::MAX));
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
