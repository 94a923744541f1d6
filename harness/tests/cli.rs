//! `bnh` end to end: the built binary, as a user (or a grader) runs it.

mod common;
use common::{bnh, scratch};
use std::process::Output;

use bn_harness::case::Case;
use bn_harness::conformance::shipped_fixtures;
use bn_harness::run::{run_case, Outcome};
use bn_harness::tolerance::judge;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    shipped_fixtures().join("torch").join(name)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn run_case_cli(case: &Path, imp: &str, out: &Path) -> Output {
    bnh(&[
        "run-case",
        case.to_str().unwrap(),
        "--impl",
        imp,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn list_json_has_exactly_name_stable_description() {
    let out = bnh(&["list", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = v.as_array().unwrap();
    let registry = bn_impls::registry::all();
    assert_eq!(entries.len(), registry.len());
    let want: BTreeSet<String> = ["name", "stable", "description"].map(String::from).into();
    for (e, imp) in entries.iter().zip(registry) {
        assert_eq!(keys(e), want);
        let info = imp.info();
        assert_eq!(e["name"], info.name);
        assert_eq!(e["stable"], info.stable);
        assert!(!e["description"].as_str().unwrap().is_empty());
    }
}

#[test]
fn run_case_writes_outputs_with_the_keys_of_expected() {
    let dir = scratch("cli", "outputs");
    for name in [
        "bn2d-small.json",
        "bn3d-cl-f64-train-momentum0.3.json",
        "bn3d-f64-eval-no-track-affine-false-nograd.json",
    ] {
        let path = fixture(name);
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let case = Case::load(&path).unwrap();
        for imp in bn_impls::registry::all() {
            let out_path = dir.join(format!("{name}.{}.out.json", imp.info().name));
            let out = run_case_cli(&path, imp.info().name, &out_path);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
            assert_eq!(keys(&v), BTreeSet::from(["outputs".to_string()]));
            assert_eq!(keys(&v["outputs"]), keys(&raw["expected"]), "{name}");
            // Null exactly where PyTorch has null.
            for k in keys(&raw["expected"]) {
                assert_eq!(
                    v["outputs"][&k].is_null(),
                    raw["expected"][&k].is_null(),
                    "{name}: {k}"
                );
            }
            // The file holds what the library computes, and it is judged as such.
            let written: bn_harness::case::Outputs =
                serde_json::from_value(v["outputs"].clone()).unwrap();
            let in_process = run_case(&case, *imp);
            assert_eq!(Outcome::Outputs(written.clone()), in_process);
            if imp.info().stable {
                assert!(judge(&case, &Outcome::Outputs(written)).pass());
            }
        }
    }
}

#[test]
fn run_case_writes_error_and_exits_zero_for_a_rejected_input() {
    let dir = scratch("cli", "rejected");
    let out_path = dir.join("out.json");
    let out = run_case_cli(
        &fixture("error-train-1xCx1x1-f32.json"),
        "welford",
        &out_path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(keys(&v), BTreeSet::from(["error".to_string()]));
    assert!(v["error"].as_str().unwrap().contains("per channel"), "{v}");
}

/// Non-zero exit, a message on stderr, and the output path untouched
/// (absent stays absent; an existing file keeps its bytes).
fn fails_without_writing(what: &str, case: &Path, imp: &str, stderr_hint: &str) {
    let dir = scratch("cli", what);
    let absent = dir.join("absent.json");
    let out = run_case_cli(case, imp, &absent);
    assert!(!out.status.success(), "{what}: exit 0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error") && err.contains(stderr_hint),
        "{what}: stderr: {err}"
    );
    assert!(!absent.exists(), "{what}: wrote an output file");
    let existing = dir.join("existing.json");
    std::fs::write(&existing, b"previous result\n").unwrap();
    let out = run_case_cli(case, imp, &existing);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&existing).unwrap(), b"previous result\n");
    // No temporary files left behind either.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "{what}");
}

#[test]
fn invalid_case_file_fails_without_writing() {
    let dir = scratch("cli", "inputs");
    let truncated = dir.join("truncated.json");
    let text = std::fs::read_to_string(fixture("bn2d-small.json")).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 3]).unwrap();
    fails_without_writing("truncated", &truncated, "welford", "truncated.json");
    let wrong_tag = dir.join("wrong-tag.json");
    std::fs::write(&wrong_tag, text.replace("bn-case/1", "bn-case/0")).unwrap();
    fails_without_writing("wrong-tag", &wrong_tag, "welford", "bn-case/0");
    fails_without_writing(
        "missing",
        &dir.join("no-such-case.json"),
        "welford",
        "no-such-case.json",
    );
}

#[test]
fn unknown_implementation_fails_without_writing() {
    fails_without_writing(
        "unknown-impl",
        &fixture("bn2d-small.json"),
        "fastest",
        "welford",
    );
}

/// `bnh` run in `dir` (for commands whose default outputs are relative).
fn bnh_in(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bnh"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run bnh")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Negative numbers reach our validators (clap would call `-1` an unknown
/// flag): one message naming the value and the accepted range, exit 2.
#[test]
fn negative_numbers_get_our_message() {
    for (args, want) in [
        (
            &["bench", "--min-time", "-1"][..],
            "--min-time -1: give a number of seconds in (0, 3600]",
        ),
        (
            &["all", "--min-time", "-0.5"][..],
            "--min-time -0.5: give a number of seconds in (0, 3600]",
        ),
        (
            &["bench", "--threads", "-2"][..],
            "--threads -2: a pool needs 1 to",
        ),
        (
            &["accuracy", "--quick", "--max-n", "-5", "--chart", "none"][..],
            "--max-n -5 is too small",
        ),
    ] {
        let o = bnh(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("unexpected argument"), "{args:?}");
    }
}

/// One spelling for choosing implementations: `--impls a,b` and
/// `--impl a --impl b` select the same ones in `check` and `bench`.
#[test]
fn implementations_are_chosen_the_same_way_in_every_command() {
    let case = fixture("bn2d-small.json");
    let case = case.to_str().unwrap();
    let a = bnh(&["check", case, "--impls", "naive,welford"]);
    let b = bnh(&["check", case, "--impl", "naive", "--impl", "welford"]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(text.contains("naive") && text.contains("welford") && !text.contains("fused"));
    let bench = [
        "bench", "--grid", "quick", "--shapes", "8x4", "--ops", "eval",
    ];
    let time = ["--min-time", "0.001"];
    for select in [
        &["--impls", "naive,welford"][..],
        &["--impl", "naive", "--impl", "welford"][..],
        &["--impl", "naive,welford"][..],
    ] {
        let args: Vec<&str> = bench.iter().chain(select).chain(&time).copied().collect();
        let o = bnh(&args);
        assert!(o.status.success(), "{select:?}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{select:?}: {out}");
        assert!(rows[0].starts_with("naive") && rows[1].starts_with("welford"));
    }
    // `--ops` lists its values in the help.
    let help = String::from_utf8_lossy(&bnh(&["bench", "--help"]).stdout).into_owned();
    assert!(help.contains("train, eval, backward"), "{help}");
}

/// `--export-json PATH` (hyperfine's flag) writes the summary of `check`
/// and `bench` as JSON.
#[test]
fn check_and_bench_export_their_summary_as_json() {
    let dir = scratch("cli", "json");
    let case = fixture("bn2d-small.json");
    let path = dir.join("check.json");
    let o = bnh(&[
        "check",
        case.to_str().unwrap(),
        "--impls",
        "welford,fused",
        "--export-json",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["command"], "check");
    assert_eq!(v["pass"], true);
    let impls = v["impls"].as_array().unwrap();
    assert_eq!(impls.len(), 2);
    assert_eq!(impls[0]["impl"], "welford");
    assert_eq!(
        (impls[0]["pass"].as_u64(), impls[0]["total"].as_u64()),
        (Some(1), Some(1))
    );

    let path = dir.join("bench.json");
    let o = bnh(&[
        "bench",
        "--grid",
        "quick",
        "--shapes",
        "8x4",
        "--impls",
        "welford",
        "--min-time",
        "0.001",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["command"], "bench");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "one per op");
    assert_eq!(results[0]["source"], "bnh");
    assert_eq!(results[0]["run_id"], v["run_id"]);
    assert_eq!(v["fastest"].as_array().unwrap().len(), 3);
    // A bad path fails before measuring.
    let o = bnh(&[
        "bench",
        "--export-json",
        dir.join("no/such/dir/x.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Every file in `dir`, recursively, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// `bnh report`, `bnh accuracy` and `bnh all` write into the scratch folder
/// `reports/local/` by default: the committed reference run in `reports/`
/// changes only with `--out reports`. Run in a temp copy of a `reports/`.
#[test]
fn default_outputs_go_to_reports_local_and_leave_reports_alone() {
    let dir = scratch("cli", "scratch-out");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports");
    for name in [
        "REPORT.md",
        "bench-standard-r1.csv",
        "bench-standard-r1.machine.json",
    ] {
        std::fs::copy(committed.join(name), reports.join(name)).unwrap();
    }
    let before = snapshot(&reports);
    let local = reports.join("local");

    let o = bnh_in(&dir, &["report", "reports/bench-standard-r1.csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(local.join("REPORT.md").is_file());
    assert!(local.join("time_per_element_train.svg").is_file());

    let o = bnh_in(
        &dir,
        &[
            "accuracy", "--quick", "--impls", "welford", "--dtypes", "f64", "--max-n", "100",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(local.join("accuracy.csv").is_file() && local.join("accuracy.svg").is_file());

    let o = bnh_in(&dir, &["all", "--impls", "welford", "--min-time", "0.001"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(local.join("bench.csv").is_file());
    // `all` ends with the one line that adds PyTorch (or says how to install it).
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("add PyTorch:") && last.contains("torch_bench.py"),
        "{out}"
    );

    // Nothing outside reports/local changed.
    let after: Vec<(PathBuf, Vec<u8>)> = snapshot(&reports)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&local))
        .collect();
    assert!(before == after, "reports/ changed outside reports/local");
}
