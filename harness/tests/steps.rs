//! Multi-step cases (`steps` in a case file): loading, validation messages
//! naming the step and field, end-to-end runs on one module, judging per
//! step, and `bnh run-case`'s reply for them.

mod common;
use common::{bnh, scratch};

use bn_harness::case::{collect_case_files, Case};
use bn_harness::conformance::shipped_fixtures;
use bn_harness::run::{run_case, Outcome};
use bn_harness::tolerance::judge;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn steps_dir() -> PathBuf {
    shipped_fixtures().join("steps")
}

fn fixture(name: &str) -> PathBuf {
    steps_dir().join(format!("{name}.json"))
}

fn raw(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn welford() -> &'static dyn bn_impls::Implementation {
    bn_impls::registry::by_name("welford").unwrap()
}

/// The load error of `value` as a case file.
fn load_error(value: &Value) -> String {
    Case::parse(&value.to_string(), Path::new("edited.json"))
        .expect_err("the edited file must be rejected")
        .to_string()
}

fn step_outputs(outcome: &Outcome) -> &[Outcome] {
    match outcome {
        Outcome::Steps(s) => s,
        other => panic!("expected step outcomes, got {other:?}"),
    }
}

#[test]
fn every_steps_fixture_loads_with_all_its_steps() {
    let files = collect_case_files(&[steps_dir()]).unwrap();
    assert!(files.len() >= 16, "found {} steps fixtures", files.len());
    for path in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let case = Case::load(&path).unwrap();
        let n = v["steps"].as_array().unwrap().len();
        assert_eq!(case.step_count(), n, "{}", case.name);
        // The single-call view is step 0.
        let first = case.step_case(0);
        assert_eq!(case.training, first.training);
        assert_eq!(case.inputs, first.inputs);
        assert_eq!(case.expected, first.expected);
    }
}

#[test]
fn single_case_files_read_as_one_step() {
    let path = shipped_fixtures().join("torch/bn2d-small.json");
    let case = Case::load(&path).unwrap();
    assert!(case.steps.is_none());
    assert_eq!(case.step_count(), 1);
    assert_eq!(case.step_case(0), case);
    assert!(matches!(run_case(&case, welford()), Outcome::Outputs(_)));
}

/// Momentum None counts the empty batch in num_batches_tracked, leaves the
/// running statistics unchanged on it, and the next step blends with 1/3.
#[test]
fn empty_batch_in_the_middle_counts_and_carries_state() {
    for d in ["f32", "f64"] {
        let case = Case::load(&fixture(&format!(
            "steps_empty-batch-middle-momentum-none-{d}"
        )))
        .unwrap();
        let outcome = run_case(&case, welford());
        let steps = step_outputs(&outcome);
        assert_eq!(steps.len(), 4);
        let outs: Vec<_> = steps
            .iter()
            .map(|o| match o {
                Outcome::Outputs(o) => o,
                other => panic!("{other:?}"),
            })
            .collect();
        let nbt: Vec<_> = outs.iter().map(|o| o.num_batches_tracked).collect();
        assert_eq!(nbt, [Some(1), Some(2), Some(3), Some(3)]);
        assert_eq!(outs[1].running_mean, outs[0].running_mean);
        assert_eq!(outs[1].y.as_deref(), Some(&[][..]));
        assert_ne!(outs[2].running_mean, outs[1].running_mean);
        assert!(judge(&case, &outcome).pass());
    }
}

/// The buffers must carry over: running every step on a fresh module (from
/// the file's initial state) fails the judge on the later steps.
#[test]
fn steps_run_on_one_module_not_from_scratch() {
    let case = Case::load(&fixture("steps_train4-momentum-none-then-eval-f64")).unwrap();
    let good = run_case(&case, welford());
    assert!(judge(&case, &good).pass());
    let fresh: Vec<Outcome> = (0..case.step_count())
        .map(|k| {
            let mut single = case.step_case(k);
            single.inputs = case.inputs.clone();
            single.inputs.x = case.step_case(k).inputs.x;
            run_case(&single, welford())
        })
        .collect();
    let v = judge(&case, &Outcome::Steps(fresh));
    assert!(!v.pass());
    let worst = v.worst().unwrap();
    assert!(worst.step.unwrap() >= 1, "{worst:?}");
}

#[test]
fn a_wrong_step_fails_and_is_named() {
    let mut v = raw("steps_train3-momentum0.1-f32");
    for part in ["expected", "reference"] {
        let rm = &mut v["steps"][2][part]["running_mean"][1];
        *rm = Value::from(rm.as_f64().unwrap() + 0.5);
    }
    let case = Case::parse(&v.to_string(), Path::new("edited.json")).unwrap();
    let verdict = judge(&case, &run_case(&case, welford()));
    assert!(!verdict.pass());
    assert_eq!(verdict.worst().unwrap().label(), "steps[2].running_mean");
}

#[test]
fn missing_or_extra_step_results_fail() {
    let case = Case::load(&fixture("steps_train3-momentum0.1-f64")).unwrap();
    let Outcome::Steps(mut outs) = run_case(&case, welford()) else {
        panic!()
    };
    let single = outs[0].clone();
    outs.pop();
    let v = judge(&case, &Outcome::Steps(outs.clone()));
    assert!(
        v.problem.as_deref().unwrap().contains("only 2 of 3 steps"),
        "{v:?}"
    );
    outs.push(single.clone());
    outs.push(single.clone());
    assert!(!judge(&case, &Outcome::Steps(outs)).pass());
    // One result for a multi-step case, step results for a single case.
    assert!(judge(&case, &single)
        .problem
        .unwrap()
        .contains("one result per step"));
    let one = Case::load(&shipped_fixtures().join("torch/bn2d-small.json")).unwrap();
    assert!(!judge(&one, &Outcome::Steps(vec![single])).pass());
}

#[test]
fn a_rejected_last_step_ends_the_run_as_pytorch_does() {
    let case = Case::load(&fixture("steps_error-last-step-f32")).unwrap();
    let outcome = run_case(&case, welford());
    let steps = step_outputs(&outcome);
    assert_eq!(steps.len(), 3);
    assert!(matches!(steps[2], Outcome::Rejected(_)));
    assert!(judge(&case, &outcome).pass());
    // An implementation accepting the last step fails.
    let mut accepted = steps.to_vec();
    accepted[2] = steps[1].clone();
    assert!(!judge(&case, &Outcome::Steps(accepted)).pass());
}

#[test]
fn malformed_steps_are_rejected_naming_step_and_field() {
    let base = raw("steps_train3-momentum0.1-f32");
    let bf16 = raw("steps_bf16-mixed-train2-eval");
    type Edit = fn(&mut Value);
    let cases: [(&str, Value, Edit, &[&str]); 11] = [
        (
            "x length",
            base.clone(),
            |v| {
                v["steps"][2]["inputs"]["x"].as_array_mut().unwrap().pop();
            },
            &["steps[2]", "inputs.x", "59 values"],
        ),
        (
            "grad_output length",
            base.clone(),
            |v| {
                v["steps"][1]["inputs"]["grad_output"] = Value::from(vec![1.0; 3]);
            },
            &["steps[1]", "inputs.grad_output"],
        ),
        (
            "channel count",
            base.clone(),
            |v| {
                v["steps"][1]["shape"] = serde_json::json!([4, 2, 5]);
            },
            &["steps[1].shape", "C = 2", "C = 3"],
        ),
        (
            "expected length",
            base.clone(),
            |v| {
                v["steps"][1]["expected"]["running_var"] = Value::from(vec![1.0; 4]);
            },
            &["steps[1]", "expected.running_var"],
        ),
        (
            "not bf16",
            bf16.clone(),
            |v| {
                v["steps"][1]["inputs"]["x"][0] = Value::from(0.1);
            },
            &["steps[1]", "inputs.x[0]", "bf16"],
        ),
        (
            "missing training",
            base.clone(),
            |v| {
                v["steps"][1].as_object_mut().unwrap().remove("training");
            },
            &["steps[1]", "training"],
        ),
        (
            "error not last",
            base.clone(),
            |v| {
                v["steps"][0]["expected_error"] = Value::from("boom");
                v["steps"][0].as_object_mut().unwrap().remove("expected");
            },
            &["steps[0]", "expected_error", "last step"],
        ),
        (
            "top-level training",
            base.clone(),
            |v| {
                v["training"] = Value::Bool(true);
            },
            &["top-level training", "steps"],
        ),
        (
            "top-level x",
            base.clone(),
            |v| {
                v["inputs"]["x"] = Value::from(vec![1.0; 60]);
            },
            &["top-level inputs.x"],
        ),
        (
            "empty steps",
            base.clone(),
            |v| {
                v["steps"] = serde_json::json!([]);
            },
            &["steps is empty"],
        ),
        (
            "buffers null",
            base.clone(),
            |v| {
                v["steps"][0]["expected"]["running_mean"] = Value::Null;
            },
            &["steps[0].expected.running_mean", "track_running_stats"],
        ),
    ];
    for (what, mut v, edit, wants) in cases {
        edit(&mut v);
        let msg = load_error(&v);
        for want in wants {
            assert!(msg.contains(want), "{what}: '{want}' not in: {msg}");
        }
    }
    let mut v = base.clone();
    v["steps"] = Value::from("all of them");
    assert!(load_error(&v).contains("steps must be an array"));
}

fn run_case_cli(case: &Path, out: &Path) -> std::process::Output {
    bnh(&[
        "run-case",
        case.to_str().unwrap(),
        "--impl",
        "welford",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn run_case_writes_every_step_and_the_last_as_outputs() {
    let dir = scratch("steps", "run-case");
    for name in [
        "steps_train4-momentum-none-then-eval-f32",
        "steps_error-last-step-f32",
        "steps_no-track-f32",
    ] {
        let out_path = dir.join(format!("{name}.out.json"));
        let out = run_case_cli(&fixture(name), &out_path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
        let case = Case::load(&fixture(name)).unwrap();
        let in_process = run_case(&case, welford());
        let steps = step_outputs(&in_process);
        let written = v["steps"].as_array().unwrap();
        assert_eq!(written.len(), steps.len(), "{name}");
        for (w, s) in written.iter().zip(steps) {
            match s {
                Outcome::Outputs(o) => assert_eq!(w["outputs"], serde_json::to_value(o).unwrap()),
                _ => assert!(w["error"].is_string(), "{name}: {w}"),
            }
        }
        // The last step's reply also stands at the top level.
        let last = written.last().unwrap();
        for key in ["outputs", "error"] {
            assert_eq!(v.get(key), last.get(key), "{name}: {key}");
        }
    }
}

#[test]
fn run_case_rejects_a_malformed_step_with_exit_2() {
    let dir = scratch("steps", "bad");
    let mut v = raw("steps_cl-2d-f32");
    v["steps"][3]["inputs"]["x"]
        .as_array_mut()
        .unwrap()
        .push(Value::from(1.0));
    let bad = dir.join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let out_path = dir.join("out.json");
    let out = run_case_cli(&bad, &out_path);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("steps[3]") && err.contains("inputs.x"),
        "{err}"
    );
    assert!(!out_path.exists());
}

#[test]
fn check_runs_steps_cases() {
    let out = bnh(&["check", steps_dir().to_str().unwrap(), "--impl", "welford"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("steps_empty-batch-middle-momentum-none-f64"),
        "{text}"
    );
}
