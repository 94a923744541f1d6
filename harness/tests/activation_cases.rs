//! The bn-case/1 activation extension: `activation`, `inputs.residual` and
//! `grad_residual` are validated, run through every implementation and judged.

use bn_harness::case::Case;
use bn_harness::conformance::shipped_fixtures;
use bn_harness::run::{run_case, Outcome};
use bn_harness::tolerance::judge;
use std::path::Path;

fn fixture(name: &str) -> String {
    let p = shipped_fixtures()
        .join("torch")
        .join(format!("{name}.json"));
    std::fs::read_to_string(p).unwrap()
}

fn parse(text: &str) -> Result<Case, String> {
    Case::parse(text, Path::new("t.json")).map_err(|e| e.to_string())
}

#[test]
fn activation_fields_are_validated() {
    let add = fixture("act_add_relu-f32-train-bn2d");
    let mut v: serde_json::Value = serde_json::from_str(&add).unwrap();
    assert!(parse(&add).is_ok());
    // add_relu without a residual.
    let mut no_res = v.clone();
    no_res["inputs"].as_object_mut().unwrap().remove("residual");
    let e = parse(&no_res.to_string()).unwrap_err();
    assert!(e.contains("add_relu needs inputs.residual"), "{e}");
    // A residual with relu, which has none; and grad_residual there.
    let mut relu = v.clone();
    relu["activation"] = "relu".into();
    let e = parse(&relu.to_string()).unwrap_err();
    assert!(
        e.contains("inputs.residual is given but activation is relu"),
        "{e}"
    );
    relu["inputs"].as_object_mut().unwrap().remove("residual");
    let e = parse(&relu.to_string()).unwrap_err();
    assert!(e.contains("expected.grad_residual is given"), "{e}");
    // A residual of the wrong length; an unknown activation.
    v["inputs"]["residual"].as_array_mut().unwrap().pop();
    let e = parse(&v.to_string()).unwrap_err();
    assert!(e.contains("inputs.residual has"), "{e}");
    v["activation"] = "gelu".into();
    assert!(parse(&v.to_string()).is_err());
}

#[test]
fn add_relu_cases_give_and_judge_grad_residual() {
    let case = parse(&fixture("act_add_relu-f32-train-bn2d")).unwrap();
    for imp in bn_impls::registry::all() {
        let out = run_case(&case, *imp);
        let Outcome::Outputs(o) = &out else {
            panic!("{}: {out:?}", imp.info().name)
        };
        assert!(o.grad_residual.is_some(), "{}", imp.info().name);
        assert!(judge(&case, &out).pass(), "{}", imp.info().name);
    }
    // A wrong residual gradient fails: the expected one is checked.
    let mut bad = case.clone();
    let exp = bad.expected.as_mut().unwrap();
    let g = exp.grad_residual.as_mut().unwrap();
    let i = g.iter().position(|n| n.0 != 0.0).unwrap();
    g[i].0 = -g[i].0;
    bad.reference = None;
    let fused = bn_impls::registry::by_name("fused").unwrap();
    let v = judge(&bad, &run_case(&bad, fused));
    assert!(!v.pass());
    assert_eq!(v.worst().unwrap().name, "grad_residual");
}

#[test]
fn plain_cases_serialize_without_the_new_fields() {
    let case = parse(&fixture("bn2d-cl-f32-train-odd")).unwrap();
    let text = serde_json::to_string(&case).unwrap();
    assert!(!text.contains("activation") && !text.contains("residual"));
}
