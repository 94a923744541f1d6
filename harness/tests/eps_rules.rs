//! PyTorch's eps rule, exactly: with batch statistics (training, or
//! tracking off) eps ≤ 0 is rejected, otherwise eps < 0 is; NaN and +inf
//! are accepted in both, as are eval eps 0 and −0 (measured with torch 2.15:
//! train eps 0 → "batch_norm eps must be positive during training", eval
//! eps 0 → runs, NaN → NaN outputs, inf → the bias). Every implementation
//! gives the oracle's results for the accepted values, including ±inf and
//! NaN where `1/√(var + eps)` is infinite.

mod common;

use bn_harness::oracle::StepResult;
use bn_impls::{registry, BatchNorm, Config, DType, Error, Layout};
use common::{AnyBn, Params, Scenario};

/// Same NaN positions, same infinities, finite values close (accuracy is
/// tested elsewhere; this is about which values come out).
fn same_values(what: &str, got: &[f64], want: &[f64], dtype: DType, bad: &mut Vec<String>) {
    assert_eq!(got.len(), want.len(), "{what}");
    let tol = if dtype == DType::F32 { 1e-4 } else { 1e-10 };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol * w.abs().max(1.0)
        };
        if !ok {
            bad.push(format!("{what}[{i}]: got {g}, want {w}"));
            return;
        }
    }
}

fn same_step(
    label: &str,
    got: &StepResult,
    want: &StepResult,
    dtype: DType,
    bad: &mut Vec<String>,
) {
    same_values(&format!("{label} y"), &got.y, &want.y, dtype, bad);
    let pairs = [
        ("running_mean", &got.running_mean, &want.running_mean),
        ("running_var", &got.running_var, &want.running_var),
        ("grad_input", &got.grad_input, &want.grad_input),
        ("grad_weight", &got.grad_weight, &want.grad_weight),
        ("grad_bias", &got.grad_bias, &want.grad_bias),
    ];
    for (what, g, w) in pairs {
        match (g, w) {
            (Some(g), Some(w)) => same_values(&format!("{label} {what}"), g, w, dtype, bad),
            (None, None) => {}
            _ => panic!("{label} {what}: present in one result only"),
        }
    }
    assert_eq!(got.num_batches_tracked, want.num_batches_tracked, "{label}");
}

fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = bn_harness::data::Rng::new(seed);
    (0..n).map(|_| rng.range(-2.0, 2.0)).collect()
}

/// Every implementation, both dtypes and layouts, train and eval, with the
/// eps values PyTorch accepts; channel 0 has running variance 0, so eval with
/// eps 0 divides by zero there (±inf, NaN where x equals the mean).
#[test]
fn accepted_eps_values_give_the_oracles_results_everywhere() {
    let cases: [(bool, f64); 9] = [
        (false, 0.0),
        (false, -0.0),
        (false, f64::NAN),
        (false, f64::INFINITY),
        (false, 1e308),
        (true, f64::NAN),
        (true, f64::INFINITY),
        (true, 1e308),
        (true, 1e-300),
    ];
    let mut bad = Vec::new();
    for imp in registry::all() {
        for dtype in [DType::F32, DType::F64] {
            for layout in [Layout::Contiguous, Layout::ChannelsLast] {
                for (training, eps) in cases {
                    let mut sc = Scenario::default_module(&[4, 3, 5], layout, dtype);
                    sc.eps = eps;
                    let mut rng = bn_harness::data::Rng::new(7);
                    let mut p = Params::random(&mut rng, &sc, 0.0);
                    p.running_var[0] = 0.0;
                    // One element of channel 0 equal to its running mean: 0·∞ = NaN.
                    p.running_mean[0] = 0.5;
                    let mut x = data(sc.len(), 11);
                    let first = sc.dims().offset(0, 0, 0);
                    x[first] = 0.5;
                    let dy = data(sc.len(), 13);
                    let mut bn = AnyBn::new(&sc, &p);
                    bn.set_training(training);
                    let label = format!(
                        "{} {dtype} {layout:?} training {training} eps {eps}",
                        imp.info().name
                    );
                    let (got, want) = bn.step(*imp, &sc, &x, &dy);
                    same_step(&label, &got, &want, dtype, &mut bad);
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn forward(bn: &mut BatchNorm<f64>, shape: &[usize]) -> Result<(), Error> {
    let n: usize = shape.iter().product();
    let x = vec![0.25; n];
    let mut y = vec![0.0; n];
    let view = bn_impls::layout::nd_view(shape, Layout::Contiguous, &x).unwrap();
    let out = bn_impls::layout::nd_view_mut(shape, Layout::Contiguous, &mut y).unwrap();
    bn.forward(registry::all()[0], view, out)
}

/// The rejections, with PyTorch's messages; the module takes any eps at
/// construction (PyTorch's does) and checks it at each forward, by mode.
#[test]
fn rejected_eps_values_get_pytorchs_message_in_either_mode() {
    for eps in [0.0, -0.0, -1e-5, f64::NEG_INFINITY] {
        let mut bn = BatchNorm::<f64>::new(Config {
            eps,
            ..Config::new(3)
        })
        .unwrap();
        let err = forward(&mut bn, &[2, 3]).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidEps {
                eps,
                batch_stats: true
            },
            "{eps}"
        );
        assert!(
            err.to_string()
                .starts_with("batch_norm eps must be positive during training"),
            "{err}"
        );
        // Tracking off: batch statistics in eval too, so the training rule.
        bn.training = false;
        let mut off = BatchNorm::<f64>::new(Config {
            eps,
            track_running_stats: false,
            ..Config::new(3)
        })
        .unwrap();
        off.training = false;
        assert!(matches!(
            forward(&mut off, &[2, 3]),
            Err(Error::InvalidEps {
                batch_stats: true,
                ..
            })
        ));
        // Eval with running statistics: only negative eps is rejected.
        let r = forward(&mut bn, &[2, 3]);
        if eps < 0.0 {
            let err = r.unwrap_err();
            assert_eq!(
                err,
                Error::InvalidEps {
                    eps,
                    batch_stats: false
                }
            );
            assert!(err
                .to_string()
                .starts_with("batch_norm eps must be non-negative"));
        } else {
            r.unwrap();
        }
    }
}
