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
    std::fs::remove_dir_all(dir).unwrap();
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
    std::fs::remove_dir_all(dir).unwrap();
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
    std::fs::remove_dir_all(dir).unwrap();
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
    std::fs::remove_dir_all(dir).unwrap();
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
