//! The module's state round-trips through serde_json with PyTorch's names,
//! and a deserialized invalid state is rejected at the next forward.

use bn_harness::data::Rng;
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{BatchNorm, Config, DType, Error, Layout};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const SHAPE: [usize; 4] = [4, 3, 2, 2];

fn welford() -> &'static dyn bn_impls::Implementation {
    bn_impls::registry::by_name("welford").unwrap()
}

fn batch(seed: u64) -> Vec<f32> {
    Rng::new(seed)
        .normal_vec(48, 2.0, 1.5, DType::F32)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

fn forward(bn: &mut BatchNorm<f32>, x: &[f32]) -> Result<Vec<f32>, Error> {
    let mut y = vec![0.0f32; x.len()];
    bn.forward(
        welford(),
        nd_view(&SHAPE, Layout::ChannelsLast, x)?,
        nd_view_mut(&SHAPE, Layout::ChannelsLast, &mut y)?,
    )?;
    Ok(y)
}

/// A module after two training steps (non-trivial buffers).
fn trained() -> BatchNorm<f32> {
    let mut bn = BatchNorm::<f32>::new(Config {
        momentum: None,
        ..Config::new(3)
    })
    .unwrap();
    bn.weight = Some(vec![0.5, -1.25, 2.0]);
    bn.bias = Some(vec![0.1, 0.2, -0.3]);
    forward(&mut bn, &batch(1)).unwrap();
    forward(&mut bn, &batch(2)).unwrap();
    bn
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn state_serializes_with_pytorch_names() {
    let v = serde_json::to_value(trained()).unwrap();
    let want: BTreeSet<String> = [
        "config",
        "training",
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(&v), want);
    let cfg: BTreeSet<String> = [
        "num_features",
        "eps",
        "momentum",
        "affine",
        "track_running_stats",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(&v["config"]), cfg);
    assert_eq!(v["num_batches_tracked"], json!(2));
    assert_eq!(v["config"]["momentum"], Value::Null);
    assert_eq!(v["weight"], json!([0.5, -1.25, 2.0]));
}

#[test]
fn state_round_trips_and_behaves_identically() {
    let mut a = trained();
    let text = serde_json::to_string(&a).unwrap();
    let mut b: BatchNorm<f32> = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string(&b).unwrap(), text);
    assert_eq!(
        (&a.running_mean, &a.running_var, a.num_batches_tracked),
        (&b.running_mean, &b.running_var, b.num_batches_tracked)
    );
    // Bitwise-identical outputs and buffers after another step in both modes.
    let x = batch(3);
    assert_eq!(forward(&mut a, &x).unwrap(), forward(&mut b, &x).unwrap());
    a.eval();
    b.eval();
    assert_eq!(forward(&mut a, &x).unwrap(), forward(&mut b, &x).unwrap());
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    // f64 state round-trips exactly too (serde_json float_roundtrip).
    let mut c = BatchNorm::<f64>::new(Config::new(2)).unwrap();
    c.running_mean = Some(vec![0.1 + 0.2, 1e-300]);
    let back: BatchNorm<f64> = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back.running_mean, c.running_mean);
}

/// Deserialize a mutated state (must succeed: serde checks only the form),
/// then expect the next forward to reject it with a message containing `hint`.
fn rejected_at_forward(what: &str, hint: &str, mutate: impl FnOnce(&mut Value)) -> Error {
    let mut v = serde_json::to_value(trained()).unwrap();
    mutate(&mut v);
    let mut bn: BatchNorm<f32> =
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{what}: not deserialized: {e}"));
    let err = forward(&mut bn, &batch(4)).expect_err(what);
    assert!(
        err.to_string().contains(hint),
        "{what}: expected '{hint}' in: {err}"
    );
    err
}

#[test]
fn deserialized_invalid_state_is_rejected_at_the_next_forward() {
    let err = rejected_at_forward("short weight", "weight", |v| {
        v["weight"] = json!([1.0, 1.0])
    });
    assert!(matches!(
        err,
        Error::LengthMismatch {
            expected: 3,
            actual: 2,
            ..
        }
    ));
    rejected_at_forward("weight without affine", "affine", |v| {
        v["config"]["affine"] = json!(false)
    });
    rejected_at_forward("missing bias", "bias is missing", |v| {
        v["bias"] = Value::Null
    });
    rejected_at_forward("missing running_var", "running_var", |v| {
        v["running_var"] = Value::Null
    });
    rejected_at_forward("long running_mean", "running_mean", |v| {
        v["running_mean"] = json!([0.0, 0.0, 0.0, 0.0])
    });
    rejected_at_forward("negative count", "negative", |v| {
        v["num_batches_tracked"] = json!(-1)
    });
    rejected_at_forward("count without tracking", "track_running_stats", |v| {
        v["config"]["track_running_stats"] = json!(false);
        v["running_mean"] = Value::Null;
        v["running_var"] = Value::Null;
    });
    // PyTorch has no range check on momentum: a loaded state with momentum 2 runs.
    let mut v = serde_json::to_value(trained()).unwrap();
    v["config"]["momentum"] = json!(2.0);
    let mut bn: BatchNorm<f32> = serde_json::from_value(v).unwrap();
    forward(&mut bn, &batch(3)).unwrap();
    let err = rejected_at_forward("eps 0", "eps", |v| v["config"]["eps"] = json!(0.0));
    assert_eq!(
        err,
        Error::InvalidEps {
            eps: 0.0,
            batch_stats: true
        }
    );
    rejected_at_forward("no channels", "num_features", |v| {
        v["config"]["num_features"] = json!(0)
    });
    rejected_at_forward("channel count", "num_features = 5", |v| {
        v["config"]["num_features"] = json!(5);
        for k in ["weight", "bias", "running_mean", "running_var"] {
            v[k] = json!([1.0, 1.0, 1.0, 1.0, 1.0]);
        }
    });
}

#[test]
fn malformed_state_json_is_a_deserialization_error() {
    let mut v = serde_json::to_value(trained()).unwrap();
    v["config"]["unknown_field"] = json!(1);
    assert!(serde_json::from_value::<BatchNorm<f32>>(v).is_err());
    let mut v = serde_json::to_value(trained()).unwrap();
    v["weight"] = json!("not a list");
    assert!(serde_json::from_value::<BatchNorm<f32>>(v).is_err());
    let text = serde_json::to_string(&trained()).unwrap();
    assert!(serde_json::from_str::<BatchNorm<f32>>(&text[..text.len() / 2]).is_err());
}
