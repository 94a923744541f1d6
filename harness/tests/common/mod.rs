//! Test support: run one module step with an implementation and the same
//! step with the oracle, from the same state and data, and measure the error.

#![allow(dead_code)] // each test file uses part of this module

pub mod c_plugin;

use bn_harness::data::{round_to, Rng};
use bn_harness::oracle::{self, metrics::compare, metrics::ErrorStats, OracleStep, StepResult};
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{BatchNorm, Config, DType, Dims, Element, Implementation, Layout};
use std::path::Path;
use std::process::{Command, Output};

/// Bound for stable implementations on any data (well- or ill-conditioned),
/// in units of `eps_dtype · max(1, max|oracle|)`, per dtype.
///
/// f32: measured worst 0.5 (welford, every output, grid and offset 1e4): the
/// final rounding to f32 of results computed in f64. 4 leaves room for
/// kernels that round a few times in f32 (e.g. SIMD normalization) while
/// staying 4× inside the tolerance rule's 16.
pub const STABLE_UNITS_F32: f64 = 4.0;
/// f64: measured worst 14.5 (welford, grad_weight = Σ dy·x̂ over m ≤ 256
/// values; y ≤ 2.6, running stats ≤ 1.4, grad_input ≤ 3.0). Plain `f64`
/// reductions err by about √m·eps relative to their terms, so 32 is the
/// honest bar for an uncompensated f64 implementation at these sizes.
pub const STABLE_UNITS_F64: f64 = 32.0;

/// Bound for unstable implementations (naive: everything in the data's
/// dtype) on well-conditioned data only (offsets ≤ 3, spreads 0.5–4, at
/// most 48 values per channel). Measured worst (naive): 14.4 in f32
/// (grad_weight), 11.6 in f64; 64 keeps a 4× margin.
pub const UNSTABLE_UNITS: f64 = 64.0;

pub fn stable_bound(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => STABLE_UNITS_F32,
        DType::F64 => STABLE_UNITS_F64,
        // The half types are checked by their own tests (fixtures and
        // `half_dtypes.rs`), not by these scenarios.
        other => panic!("no scenario bound for {other}: scenarios are f32/f64"),
    }
}

/// The bound of `imp` on `dtype`: the stable bound, or the unstable one
/// (which holds on well-conditioned data only).
pub fn bound(imp: &dyn Implementation, dtype: DType) -> f64 {
    if imp.info().stable {
        stable_bound(dtype)
    } else {
        UNSTABLE_UNITS
    }
}

/// A module configuration and data shape to test.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub shape: Vec<usize>,
    pub layout: Layout,
    pub dtype: DType,
    pub affine: bool,
    pub track: bool,
    pub momentum: Option<f64>,
    pub eps: f64,
}

impl Scenario {
    /// PyTorch's default module (affine, tracking, momentum 0.1, eps 1e-5) on this shape.
    pub fn default_module(shape: &[usize], layout: Layout, dtype: DType) -> Scenario {
        Scenario {
            shape: shape.to_vec(),
            layout,
            dtype,
            affine: true,
            track: true,
            momentum: Some(0.1),
            eps: 1e-5,
        }
    }

    pub fn dims(&self) -> Dims {
        Dims::from_shape("x", &self.shape, self.layout).unwrap()
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn channels(&self) -> usize {
        self.shape[1]
    }
}

/// A module of either dtype (the tests iterate over both at run time).
#[derive(Debug, Clone)]
pub enum AnyBn {
    F32(BatchNorm<f32>),
    F64(BatchNorm<f64>),
}

fn widen<T: Element>(v: &Option<Vec<T>>) -> Option<Vec<f64>> {
    v.as_ref().map(|v| v.iter().map(|x| x.as_f64()).collect())
}

fn narrow<T: Element>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// Per-channel parameters of a random module state.
pub struct Params {
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
    pub running_mean: Vec<f64>,
    pub running_var: Vec<f64>,
    pub num_batches_tracked: i64,
}

impl Params {
    /// Random parameters and buffers; running statistics near the data's
    /// (`offset`, unit-ish variance) so eval steps are meaningful.
    pub fn random(rng: &mut Rng, sc: &Scenario, offset: f64) -> Params {
        let c = sc.channels();
        let r = |rng: &mut Rng, lo: f64, hi: f64| -> Vec<f64> {
            (0..c)
                .map(|_| round_to(sc.dtype, rng.range(lo, hi)))
                .collect()
        };
        Params {
            weight: r(rng, -2.0, 2.0),
            bias: r(rng, -1.0, 1.0),
            running_mean: (0..c)
                .map(|_| round_to(sc.dtype, offset + rng.range(-1.0, 1.0)))
                .collect(),
            running_var: r(rng, 0.25, 4.0),
            num_batches_tracked: (rng.next_u64() % 4) as i64,
        }
    }
}

impl AnyBn {
    /// A module for the scenario with the given parameters and buffers.
    pub fn new(sc: &Scenario, p: &Params) -> AnyBn {
        fn make<T: Element>(sc: &Scenario, p: &Params) -> BatchNorm<T> {
            let mut bn = BatchNorm::<T>::new(Config {
                num_features: sc.channels(),
                eps: sc.eps,
                momentum: sc.momentum,
                affine: sc.affine,
                track_running_stats: sc.track,
            })
            .unwrap();
            if sc.affine {
                bn.weight = Some(narrow(&p.weight));
                bn.bias = Some(narrow(&p.bias));
            }
            if sc.track {
                bn.running_mean = Some(narrow(&p.running_mean));
                bn.running_var = Some(narrow(&p.running_var));
                bn.num_batches_tracked = Some(p.num_batches_tracked);
            }
            bn
        }
        match sc.dtype {
            DType::F32 => AnyBn::F32(make(sc, p)),
            DType::F64 => AnyBn::F64(make(sc, p)),
            other => panic!("scenarios are f32/f64, not {other}"),
        }
    }

    pub fn set_training(&mut self, training: bool) {
        match self {
            AnyBn::F32(bn) => bn.training = training,
            AnyBn::F64(bn) => bn.training = training,
        }
    }

    /// Forward (and backward with `dy`) with `imp`; the module's state
    /// before the step is handed to the oracle, which computes the same
    /// step. Returns (implementation's result, oracle's result).
    pub fn step(
        &mut self,
        imp: &dyn Implementation,
        sc: &Scenario,
        x: &[f64],
        dy: &[f64],
    ) -> (StepResult, StepResult) {
        match self {
            AnyBn::F32(bn) => step_typed(bn, imp, sc, x, dy),
            AnyBn::F64(bn) => step_typed(bn, imp, sc, x, dy),
        }
    }
}

fn step_typed<T: Element>(
    bn: &mut BatchNorm<T>,
    imp: &dyn Implementation,
    sc: &Scenario,
    x: &[f64],
    dy: &[f64],
) -> (StepResult, StepResult) {
    let (weight, bias) = (widen(&bn.weight), widen(&bn.bias));
    let (rm, rv) = (widen(&bn.running_mean), widen(&bn.running_var));
    let want = oracle::step(&OracleStep {
        dims: sc.dims(),
        x,
        grad_output: Some(dy),
        weight: weight.as_deref(),
        bias: bias.as_deref(),
        running_mean: rm.as_deref(),
        running_var: rv.as_deref(),
        num_batches_tracked: bn.num_batches_tracked,
        eps: sc.eps,
        momentum: sc.momentum,
        training: bn.training,
    })
    .expect("oracle accepts the scenario");

    let (xt, dyt): (Vec<T>, Vec<T>) = (narrow(x), narrow(dy));
    let mut y = vec![T::zero(); xt.len()];
    let mut dx = vec![T::zero(); xt.len()];
    let (shape, layout) = (&sc.shape[..], sc.layout);
    bn.forward(
        imp,
        nd_view(shape, layout, &xt).unwrap(),
        nd_view_mut(shape, layout, &mut y).unwrap(),
    )
    .unwrap();
    let grads = bn
        .backward(
            imp,
            nd_view(shape, layout, &xt).unwrap(),
            nd_view(shape, layout, &dyt).unwrap(),
            nd_view_mut(shape, layout, &mut dx).unwrap(),
        )
        .unwrap();
    let all = |v: Vec<T>| v.into_iter().map(T::as_f64).collect::<Vec<f64>>();
    let got = StepResult {
        y: all(y),
        running_mean: widen(&bn.running_mean),
        running_var: widen(&bn.running_var),
        num_batches_tracked: bn.num_batches_tracked,
        grad_input: Some(all(dx)),
        grad_weight: widen(&grads.weight),
        grad_bias: widen(&grads.bias),
    };
    (got, want)
}

/// Names of the compared outputs, in a fixed order.
pub const OUTPUTS: [&str; 6] = [
    "y",
    "running_mean",
    "running_var",
    "grad_input",
    "grad_weight",
    "grad_bias",
];

/// Error of every output against the oracle (index as [`OUTPUTS`]).
/// Panics if an output is present on one side only or `num_batches_tracked` differs.
pub fn errors(got: &StepResult, want: &StepResult, dtype: DType) -> [ErrorStats; 6] {
    assert_eq!(
        got.num_batches_tracked, want.num_batches_tracked,
        "num_batches_tracked"
    );
    let pairs = [
        (Some(&got.y), Some(&want.y)),
        (got.running_mean.as_ref(), want.running_mean.as_ref()),
        (got.running_var.as_ref(), want.running_var.as_ref()),
        (got.grad_input.as_ref(), want.grad_input.as_ref()),
        (got.grad_weight.as_ref(), want.grad_weight.as_ref()),
        (got.grad_bias.as_ref(), want.grad_bias.as_ref()),
    ];
    let mut out = [ErrorStats::ZERO; 6];
    for (k, (g, w)) in pairs.into_iter().enumerate() {
        out[k] = match (g, w) {
            (Some(g), Some(w)) => compare(g, w, dtype),
            (None, None) => ErrorStats::ZERO,
            _ => panic!("{} present on one side only", OUTPUTS[k]),
        };
    }
    out
}

/// Channel of the element at flat offset `i` (from the layout's definition).
pub fn channel_of(sc: &Scenario, i: usize) -> usize {
    let c = sc.channels();
    match sc.layout {
        Layout::Contiguous => (i / sc.shape[2..].iter().product::<usize>()) % c,
        Layout::ChannelsLast => i % c,
    }
}

/// A batch in memory order: channel c holds `offset + shift_c + spread·N(0,1)`
/// with a per-channel shift in [−1, 1]·`shift` and spread in [0.5, 2]·`spread`,
/// rounded to the dtype.
pub fn batch(rng: &mut Rng, sc: &Scenario, offset: f64, shift: f64, spread: f64) -> Vec<f64> {
    let c = sc.channels();
    let shifts: Vec<f64> = (0..c).map(|_| shift * rng.range(-1.0, 1.0)).collect();
    let spreads: Vec<f64> = (0..c).map(|_| spread * rng.range(0.5, 2.0)).collect();
    (0..sc.len())
        .map(|i| {
            let ch = channel_of(sc, i);
            round_to(sc.dtype, offset + shifts[ch] + spreads[ch] * rng.normal())
        })
        .collect()
}

/// Upstream gradients: standard normal, rounded to the dtype.
pub fn grad_output(rng: &mut Rng, sc: &Scenario) -> Vec<f64> {
    rng.normal_vec(sc.len(), 0.0, 1.0, sc.dtype)
}

/// Run the built `bnh` binary with `args`.
pub fn bnh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bnh"))
        .args(args)
        .output()
        .expect("run bnh")
}

/// A fresh scratch directory for one test, removed when the returned guard
/// drops (`suite` and `name` keep the directories of different tests apart
/// and recognisable: `bnh-{suite}-{name}-XXXXXX` under the system temp dir).
pub fn scratch(suite: &str, name: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("bnh-{suite}-{name}-"))
        .tempdir()
        .expect("create a scratch directory");
    Scratch { dir: Some(dir) }
}

/// A test's scratch directory. Tests must not leave files behind (runs
/// used to pile up `bnh-*` folders in the temp dir), so it is removed with
/// everything in it on drop; when the test fails (the thread is panicking)
/// it is kept instead and its path printed, for inspection.
///
/// Derefs to [`Path`]; bind it to a named variable for the whole test
/// (`let dir = scratch(..)`, not `scratch(..).join(..)` or `let _ = ..`),
/// or it is removed before the test is done with it.
pub struct Scratch {
    // `None` only while dropping.
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// The directory (what `Deref` gives).
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("scratch dir is live").path()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.path().fmt(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if std::thread::panicking() {
            eprintln!("test failed: scratch dir kept at {}", dir.keep().display());
        } else {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!(
                    "warning: could not remove scratch dir {}: {e}",
                    path.display()
                );
            }
        }
    }
}
