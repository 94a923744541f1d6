//! Every rejection of user input, one test per kind: the library's errors
//! (with the expected and actual values) and malformed case files.

use bn_harness::case::Case;
use bn_harness::conformance::shipped_fixtures;
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{BatchNorm, Config, Error, Layout};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;

fn welford() -> &'static dyn bn_impls::Implementation {
    bn_impls::registry::by_name("welford").unwrap()
}

fn module(c: usize) -> BatchNorm<f32> {
    BatchNorm::new(Config::new(c)).unwrap()
}

/// Forward `shape` (contiguous, zeros) through a module with `c` channels.
fn forward(bn: &mut BatchNorm<f32>, shape: &[usize]) -> Result<Vec<f32>, Error> {
    let n: usize = shape.iter().product();
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut y = vec![0.0f32; n];
    bn.forward(
        welford(),
        nd_view(shape, Layout::Contiguous, &x)?,
        nd_view_mut(shape, Layout::Contiguous, &mut y)?,
    )?;
    Ok(y)
}

#[test]
fn channel_count_mismatch_names_expected_and_actual_shape() {
    let mut bn = module(3);
    let err = forward(&mut bn, &[2, 4, 5]).unwrap_err();
    match &err {
        Error::ShapeMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &vec![2, 3, 5]);
            assert_eq!(actual, &vec![2, 4, 5]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("num_features = 3"), "{err}");
}

#[test]
fn output_and_gradient_shape_mismatches_are_rejected() {
    let mut bn = module(2);
    let x = ArrayD::<f32>::from_shape_fn(IxDyn(&[3, 2, 2]), |i| i[0] as f32 + i[2] as f32);
    let mut y = ArrayD::<f32>::zeros(IxDyn(&[3, 2, 3]));
    let err = bn.forward(welford(), x.view(), y.view_mut()).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, actual, .. }
            if expected == &vec![3, 2, 2] && actual == &vec![3, 2, 3]),
        "{err:?}"
    );
    let mut y = ArrayD::<f32>::zeros(IxDyn(&[3, 2, 2]));
    bn.forward(welford(), x.view(), y.view_mut()).unwrap();
    let dy = ArrayD::<f32>::zeros(IxDyn(&[3, 2, 1]));
    let mut dx = ArrayD::<f32>::zeros(IxDyn(&[3, 2, 2]));
    let err = bn
        .backward(welford(), x.view(), dy.view(), dx.view_mut())
        .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, actual, .. }
            if expected == &vec![3, 2, 2] && actual == &vec![3, 2, 1]),
        "{err:?}"
    );
    assert!(err.to_string().contains("grad_output"), "{err}");
}

#[test]
fn per_channel_and_buffer_length_mismatches_name_both_lengths() {
    let mut bn = module(3);
    bn.weight = Some(vec![1.0, 1.0]);
    let err = forward(&mut bn, &[2, 3]).unwrap_err();
    assert_eq!(
        err,
        Error::LengthMismatch {
            what: "weight".into(),
            expected: 3,
            actual: 2
        }
    );
    assert!(err.to_string().contains("length 2") && err.to_string().contains("length 3"));
    let mut bn = module(3);
    bn.running_var = Some(vec![1.0; 4]);
    assert!(matches!(
        forward(&mut bn, &[2, 3]),
        Err(Error::LengthMismatch {
            expected: 3,
            actual: 4,
            ..
        })
    ));
    // A flat buffer that does not fit its shape.
    assert!(matches!(
        nd_view(&[2, 3], Layout::ChannelsLast, &[0.0f32; 7]),
        Err(Error::LengthMismatch {
            expected: 6,
            actual: 7,
            ..
        })
    ));
}

#[test]
fn wrong_rank_is_rejected() {
    for shape in [vec![6], vec![1, 2, 1, 1, 1, 2]] {
        let mut bn = module(2);
        let err = forward(&mut bn, &shape).unwrap_err();
        assert!(
            matches!(err, Error::BadRank { actual, .. } if actual == shape.len()),
            "{shape:?}: {err:?}"
        );
        assert!(err.to_string().contains("2 to 5 dimensions"));
    }
}

/// PyTorch (torch 2.15, measured) accepts an empty batch or an empty
/// spatial dim in every mode: the output is empty, the running buffers are
/// unchanged, `num_batches_tracked` is incremented in training (also with
/// momentum None), and grad_weight / grad_bias are 0.
#[test]
fn empty_inputs_run_as_in_pytorch() {
    for shape in [
        vec![0, 3],
        vec![0, 3, 4],
        vec![4, 3, 0, 5],
        vec![2, 3, 4, 0, 1],
    ] {
        for (training, momentum) in [(true, Some(0.1)), (true, None), (false, Some(0.1))] {
            for layout in Layout::ALL {
                let mut bn = BatchNorm::<f32>::new(Config {
                    momentum,
                    ..Config::new(3)
                })
                .unwrap();
                bn.training = training;
                bn.weight = Some(vec![1.5; 3]);
                bn.running_mean = Some(vec![0.5; 3]);
                bn.running_var = Some(vec![2.0; 3]);
                bn.num_batches_tracked = Some(2);
                let what = format!("{shape:?} {layout} training={training} {momentum:?}");
                let mut y: Vec<f32> = vec![];
                bn.forward(
                    welford(),
                    nd_view(&shape, layout, &[]).unwrap(),
                    nd_view_mut(&shape, layout, &mut y).unwrap(),
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(bn.running_mean, Some(vec![0.5; 3]), "{what}");
                assert_eq!(bn.running_var, Some(vec![2.0; 3]), "{what}");
                let nbt = if training { 3 } else { 2 };
                assert_eq!(bn.num_batches_tracked, Some(nbt), "{what}");
                let mut dx: Vec<f32> = vec![];
                let g = bn
                    .backward(
                        welford(),
                        nd_view(&shape, layout, &[]).unwrap(),
                        nd_view(&shape, layout, &[]).unwrap(),
                        nd_view_mut(&shape, layout, &mut dx).unwrap(),
                    )
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(g.weight, Some(vec![0.0; 3]), "{what}");
                assert_eq!(g.bias, Some(vec![0.0; 3]), "{what}");
            }
        }
        // Without tracking (batch statistics in both modes): still accepted.
        let mut bn = BatchNorm::<f32>::new(Config {
            track_running_stats: false,
            affine: false,
            ..Config::new(3)
        })
        .unwrap();
        for training in [true, false] {
            bn.training = training;
            assert_eq!(forward(&mut bn, &shape), Ok(vec![]), "{shape:?}");
            assert_eq!(bn.num_batches_tracked, None);
        }
    }
}

/// Kernels never see an empty tensor: the problem types refuse one, so a
/// direct kernel-level caller gets an error instead of a division by zero.
#[test]
fn kernel_problems_refuse_empty_tensors() {
    use bn_impls::problem::{Affine, TrainForward};
    use bn_impls::Dims;
    let dims = Dims::from_shape("x", &[0, 3, 4], Layout::Contiguous).unwrap();
    let (x, mut y) = (vec![0.0f32; 0], vec![0.0f32; 0]);
    let (mut mean, mut var) = (vec![0.0; 3], vec![0.0; 3]);
    let err = TrainForward::new(
        dims.tensor(&x).unwrap(),
        dims.tensor_mut(&mut y).unwrap(),
        Affine::default(),
        1e-5,
        &mut mean,
        &mut var,
    )
    .err()
    .unwrap();
    assert!(matches!(err, Error::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("BatchNorm"), "{err}");
}

/// An empty batch still has to pass the eps check (PyTorch: "batch_norm eps
/// must be positive during training" for shape (0, 3, 4) and eps 0).
#[test]
fn empty_batch_with_bad_eps_is_still_rejected() {
    let mut bn = module(3);
    bn.config.eps = 0.0;
    assert_eq!(
        forward(&mut bn, &[0, 3, 4]),
        Err(Error::InvalidEps {
            eps: 0.0,
            batch_stats: true
        })
    );
}

/// A tiny eps is fine; the full rule (by mode, NaN and inf accepted as in
/// PyTorch) is tested in eps_rules.rs.
#[test]
fn tiny_eps_is_accepted() {
    assert!(BatchNorm::<f64>::new(Config {
        eps: 1e-300,
        ..Config::new(2)
    })
    .is_ok());
}

/// PyTorch has no range check on momentum. Running stats after one
/// training step on x = [[1, 2]], [[3, 4]] (shape (2, 1, 2), f64, fresh
/// buffers 0 / 1), printed by torch 2.15: (momentum, running_mean, running_var).
#[test]
fn any_momentum_is_accepted_as_in_pytorch() {
    let torch: [(Option<f64>, f64, f64); 8] = [
        (Some(-1.2), -3.0, 0.20000000000000018),
        (Some(-1.0), -2.5, 0.33333333333333326),
        (Some(1.5), 3.75, 2.0),
        (Some(1e6), 2500000.0, 666667.6666666667),
        (Some(f64::NAN), f64::NAN, f64::NAN),
        (Some(f64::INFINITY), f64::NAN, f64::NAN),
        (Some(f64::NEG_INFINITY), f64::NAN, f64::NAN),
        (None, 2.5, 1.6666666666666667),
    ];
    let close = |got: f64, want: f64| {
        (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-12 * want.abs().max(1.0)
    };
    for (momentum, rm, rv) in torch {
        let mut bn = BatchNorm::<f64>::new(Config {
            momentum,
            ..Config::new(1)
        })
        .unwrap();
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = [0.0; 4];
        bn.forward(
            welford(),
            nd_view(&[2, 1, 2], Layout::Contiguous, &x).unwrap(),
            nd_view_mut(&[2, 1, 2], Layout::Contiguous, &mut y).unwrap(),
        )
        .unwrap();
        let (got_m, got_v) = (bn.running_mean.unwrap()[0], bn.running_var.unwrap()[0]);
        assert!(
            close(got_m, rm),
            "{momentum:?}: running_mean {got_m} vs {rm}"
        );
        assert!(
            close(got_v, rv),
            "{momentum:?}: running_var {got_v} vs {rv}"
        );
        assert_eq!(bn.num_batches_tracked, Some(1));
        // The output does not depend on the momentum.
        assert!(y.iter().all(|v| v.is_finite()), "{momentum:?}: {y:?}");
    }
}

#[test]
fn too_few_values_per_channel_with_batch_statistics() {
    for shape in [vec![1, 3], vec![1, 3, 1, 1], vec![1, 3, 1, 1, 1]] {
        let mut bn = module(3);
        let before = bn.clone();
        let err = forward(&mut bn, &shape).unwrap_err();
        assert!(
            matches!(&err, Error::TooFewValues { count: 1, shape: s } if s == &shape),
            "{err:?}"
        );
        // Nothing was updated by the failed call.
        assert_eq!(bn.running_mean, before.running_mean);
        assert_eq!(bn.num_batches_tracked, Some(0));
    }
    // Eval without running statistics uses batch statistics too.
    let mut bn = BatchNorm::<f32>::new(Config {
        track_running_stats: false,
        ..Config::new(3)
    })
    .unwrap();
    bn.eval();
    assert!(matches!(
        forward(&mut bn, &[1, 3]),
        Err(Error::TooFewValues { .. })
    ));
    // Eval with running statistics accepts a single value per channel.
    let mut bn = module(3);
    bn.eval();
    forward(&mut bn, &[1, 3]).unwrap();
}

#[test]
fn unknown_implementation_lists_the_available_ones() {
    let err = bn_impls::registry::by_name("fastest").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fastest"), "{msg}");
    for name in bn_impls::registry::names() {
        assert!(msg.contains(&name), "{msg}");
    }
    assert!(bn_harness::select_impls(&["welford,nope".into()]).is_err());
    assert!(bn_harness::select_impls(&["welford,".into()]).is_err());
}

#[test]
fn backward_before_forward_and_foreign_layouts_are_rejected() {
    let bn = module(2);
    let x = ArrayD::<f32>::zeros(IxDyn(&[2, 2]));
    let mut dx = ArrayD::<f32>::zeros(IxDyn(&[2, 2]));
    assert_eq!(
        bn.backward(welford(), x.view(), x.view(), dx.view_mut()),
        Err(Error::NoForward)
    );
    // A permuted view that is neither contiguous nor channels-last.
    let mut bn = module(3);
    let x = ArrayD::<f32>::zeros(IxDyn(&[4, 3, 2, 5]));
    let xt = x.view().permuted_axes(IxDyn(&[0, 1, 3, 2]));
    let mut y = ArrayD::<f32>::zeros(IxDyn(&[4, 3, 5, 2]));
    let err = bn.forward(welford(), xt, y.view_mut()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedLayout { .. }), "{err:?}");
    // x contiguous, y channels-last.
    let x = vec![1.0f32; 24];
    let mut y = vec![0.0f32; 24];
    let err = bn
        .forward(
            welford(),
            nd_view(&[2, 3, 2, 2], Layout::Contiguous, &x).unwrap(),
            nd_view_mut(&[2, 3, 2, 2], Layout::ChannelsLast, &mut y).unwrap(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{err:?}");
}

// ---- malformed case files ----

fn base_case() -> serde_json::Value {
    let path = shipped_fixtures().join("torch/bn2d-small.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn parse(v: &serde_json::Value) -> Result<Case, String> {
    Case::parse(&v.to_string(), Path::new("mutated.json")).map_err(|e| e.to_string())
}

/// The mutated case must be rejected with a message containing `hint`.
fn rejects(what: &str, hint: &str, mutate: impl FnOnce(&mut serde_json::Value)) {
    let mut v = base_case();
    mutate(&mut v);
    match parse(&v) {
        Ok(_) => panic!("{what}: accepted"),
        Err(msg) => {
            assert!(msg.contains("mutated.json"), "{what}: {msg}");
            assert!(msg.contains(hint), "{what}: expected '{hint}' in: {msg}");
        }
    }
}

#[test]
fn the_unmutated_base_case_parses() {
    parse(&base_case()).unwrap();
}

#[test]
fn truncated_json_is_rejected() {
    let text = base_case().to_string();
    for cut in [0, 1, text.len() / 2, text.len() - 1] {
        let err = Case::parse(&text[..cut], Path::new("cut.json")).unwrap_err();
        assert!(err.to_string().contains("cut.json"), "{err}");
    }
    assert!(Case::load(Path::new("/nonexistent/case.json")).is_err());
}

#[test]
fn wrong_or_missing_format_tag_is_rejected() {
    rejects("wrong tag", "bn-case/2", |v| {
        v["format"] = "bn-case/2".into()
    });
    rejects("missing tag", "format", |v| {
        v.as_object_mut().unwrap().remove("format");
    });
}

#[test]
fn wrong_lengths_are_rejected() {
    rejects("x too short", "inputs.x", |v| {
        v["inputs"]["x"].as_array_mut().unwrap().pop();
    });
    rejects("weight too long", "inputs.weight", |v| {
        v["inputs"]["weight"]
            .as_array_mut()
            .unwrap()
            .push(1.0.into());
    });
    rejects("grad_output too short", "inputs.grad_output", |v| {
        v["inputs"]["grad_output"].as_array_mut().unwrap().pop();
    });
    rejects("expected.y too short", "expected.y", |v| {
        v["expected"]["y"].as_array_mut().unwrap().pop();
    });
    rejects("reference.grad_bias too long", "reference.grad_bias", |v| {
        v["reference"]["grad_bias"]
            .as_array_mut()
            .unwrap()
            .push(0.0.into());
    });
}

#[test]
fn presence_must_match_the_config() {
    rejects("weight with affine false", "config.affine is false", |v| {
        v["config"]["affine"] = false.into();
    });
    rejects("running_mean missing", "running_mean", |v| {
        v["inputs"]["running_mean"] = serde_json::Value::Null;
    });
    rejects("buffers without tracking", "track_running_stats", |v| {
        v["config"]["track_running_stats"] = false.into();
    });
}

#[test]
fn bad_shapes_dtypes_and_numbers_are_rejected() {
    rejects("rank 1", "2 to 5 dims", |v| {
        v["shape"] = serde_json::json!([4])
    });
    rejects("rank 6", "2 to 5 dims", |v| {
        v["shape"] = serde_json::json!([1, 3, 1, 1, 1, 1])
    });
    rejects("zero channels", "C = 0", |v| {
        v["shape"] = serde_json::json!([0, 0, 5, 5])
    });
    rejects("dtype", "f8", |v| v["dtype"] = "f8".into());
    rejects("param_dtype", "f32 parameters with bf16/f16 data", |v| {
        v["param_dtype"] = "f64".into()
    });
    rejects("inexact half value", "is not a bf16 value", |v| {
        v["dtype"] = "bf16".into();
        v["inputs"]["x"][0] = serde_json::json!(1.001);
    });
    rejects("memory format", "channels_first", |v| {
        v["memory_format"] = "channels_first".into()
    });
    rejects("NaN spelling", "NaN", |v| {
        v["inputs"]["x"][0] = "NaN".into()
    });
    rejects("string number", "1.5", |v| {
        v["inputs"]["x"][0] = "1.5".into()
    });
}

#[test]
fn expected_and_expected_error_are_exclusive() {
    rejects("both", "both", |v| v["expected_error"] = "boom".into());
    rejects("neither", "neither", |v| {
        v.as_object_mut().unwrap().remove("expected");
    });
}
