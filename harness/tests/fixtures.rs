//! Every shipped PyTorch fixture passes for every stable implementation, and
//! the oracle agrees with every fixture's `reference` better than PyTorch does.

use bn_harness::case::{collect_case_files, Case};
use bn_harness::conformance::{check, shipped_fixtures};
use bn_harness::num::to_f64s;
use bn_harness::oracle::{self, metrics::compare};
use bn_harness::run::Outcome;
use bn_harness::tolerance::judge;
use bn_impls::DType;

fn cases() -> Vec<Case> {
    let files = collect_case_files(&[shipped_fixtures()]).unwrap();
    assert!(
        files.len() >= 40,
        "expected the shipped fixtures, found {}",
        files.len()
    );
    files.iter().map(|p| Case::load(p).unwrap()).collect()
}

#[test]
fn every_fixture_passes_for_every_stable_implementation() {
    let impls = bn_impls::registry::all();
    let report = check(&[shipped_fixtures()], impls).unwrap();
    assert!(report.rows.len() >= 40);
    let mut failures = Vec::new();
    for row in &report.rows {
        match &row.result {
            Err(e) => failures.push(format!("{}: {e}", row.name)),
            Ok(verdicts) => {
                for (v, info) in verdicts.iter().zip(&report.impls) {
                    if info.stable && !v.pass() {
                        failures.push(format!(
                            "{} / {}: worst ratio {:.3e} {:?} {:?}",
                            row.name,
                            info.name,
                            v.worst_ratio(),
                            v.problem,
                            v.worst()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert!(report.ok());
    assert!(
        report.impls.iter().any(|i| i.stable),
        "no stable implementation registered"
    );
}

#[test]
fn oracle_passes_every_fixture_under_the_tolerance_rule() {
    for case in cases() {
        let outcome = oracle::run_case(&case);
        let v = judge(&case, &outcome);
        assert!(
            v.pass() || v.rejected_as_expected,
            "{}: oracle fails: {:?} {:?}",
            case.name,
            v.problem,
            v.worst()
        );
    }
}

/// The oracle's error against `reference` must not exceed PyTorch's own
/// error (`|expected − reference|`) on any output, up to the `f64`
/// rounding of the reference itself (f64 cases: references are mpmath
/// values rounded to f64, so the oracle must be within a couple of f64 ulps).
#[test]
fn oracle_is_closer_to_the_reference_than_pytorch() {
    /// Allowed oracle error in units of `f64::EPSILON · max(1, max|ref|)`:
    /// the reference's and the oracle's final roundings (½ ulp each) plus slack.
    const ORACLE_F64_UNITS: f64 = 2.0;
    let mut checked = 0;
    // Every step of a multi-step case is a single case of its own.
    let singles = cases()
        .into_iter()
        .flat_map(|c| (0..c.step_count()).map(move |k| c.step_case(k)));
    for case in singles {
        let (Some(expected), Some(reference)) = (&case.expected, &case.reference) else {
            continue;
        };
        let Outcome::Outputs(got) = oracle::run_case(&case) else {
            panic!("{}: oracle rejected an accepted case", case.name)
        };
        assert_eq!(got.num_batches_tracked, expected.num_batches_tracked);
        for ((name, e), ((_, r), (_, g))) in expected
            .tensors()
            .into_iter()
            .zip(reference.tensors().into_iter().zip(got.tensors()))
        {
            let (Some(e), Some(r)) = (e, r) else {
                assert_eq!(g.is_some(), e.is_some(), "{}: {name}", case.name);
                continue;
            };
            let g = g.unwrap_or_else(|| panic!("{}: oracle has no {name}", case.name));
            let (e, r, g) = (to_f64s(e), to_f64s(r), to_f64s(g));
            let oracle_err = compare(&g, &r, DType::F64);
            let torch_err = compare(&e, &r, DType::F64);
            assert_eq!(oracle_err.misplaced, 0, "{}: {name} NaN pattern", case.name);
            let allowed = torch_err
                .abs
                .max(ORACLE_F64_UNITS * f64::EPSILON * r_scale(&r));
            assert!(
                oracle_err.abs <= allowed,
                "{}: {name}: oracle error {:.3e} > PyTorch's {:.3e}",
                case.name,
                oracle_err.abs,
                torch_err.abs
            );
            if case.dtype == DType::F64 {
                assert!(
                    oracle_err.scaled <= ORACLE_F64_UNITS,
                    "{}: {name}: oracle {:.2} f64 units from the mpmath reference",
                    case.name,
                    oracle_err.scaled
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} outputs compared");
}

fn r_scale(r: &[f64]) -> f64 {
    r.iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, v| m.max(v.abs()))
}

/// Print the worst tolerance ratio (as `bnh check`) of every implementation
/// and of the oracle over the shipped fixtures, per output:
/// `cargo test -p bn-harness --test fixtures -- --ignored --nocapture`.
#[test]
#[ignore]
fn report_fixture_ratios() {
    let cases = cases();
    let mut rows: Vec<(String, Vec<Outcome>)> = bn_impls::registry::all()
        .iter()
        .map(|imp| {
            let outs = cases
                .iter()
                .map(|c| bn_harness::run::run_case(c, *imp))
                .collect();
            (imp.info().name.to_string(), outs)
        })
        .collect();
    rows.push((
        "oracle".into(),
        cases.iter().map(oracle::run_case).collect(),
    ));
    for (name, outcomes) in rows {
        let mut worst: Vec<(&str, f64, String)> = Vec::new();
        for (case, outcome) in cases.iter().zip(&outcomes) {
            for check in judge(case, outcome).checks {
                match worst.iter_mut().find(|w| w.0 == check.name) {
                    Some(w) if check.ratio > w.1 => (w.1, w.2) = (check.ratio, case.name.clone()),
                    Some(_) => {}
                    None => worst.push((check.name, check.ratio, case.name.clone())),
                }
            }
        }
        println!("{name}:");
        for (output, ratio, case) in worst {
            println!("  {output:13} worst ratio {ratio:10.3e}  ({case})");
        }
    }
}

/// `naive` computes in the data's own precision: on half-precision data its
/// running sums stall (a channel of 60,000 values) and `x²` overflows f16
/// (values near 300 and near 65504), so it must fail these PyTorch fixtures
/// while the stable implementations pass them (test above). If `naive`
/// passed, it would no longer show where half-precision arithmetic breaks.
#[test]
fn naive_visibly_fails_where_half_precision_arithmetic_breaks() {
    let naive = bn_impls::registry::by_name("naive").unwrap();
    let dir = shipped_fixtures().join("torch");
    for name in [
        "f16_long-channel-60000-offset300",
        "bf16_long-channel-15x1x40x100-offset30",
        "f16_offset300-train",
        "bf16_offset300-train",
        "f16_near-max-train",
        "bf16_near-max-train",
    ] {
        let case = Case::load(&dir.join(format!("{name}.json"))).unwrap();
        let v = judge(&case, &bn_harness::run::run_case(&case, naive));
        assert!(
            !v.pass(),
            "{name}: naive passes (worst ratio {:.3e})",
            v.worst_ratio()
        );
    }
}
