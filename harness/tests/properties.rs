//! Property tests (proptest) for every registered implementation: random
//! shapes (2-D to 5-D), both layouts, both dtypes, random module configs.
//!
//! Every case is a [`Case`] (shape, layout, dtype, config, data parameters
//! and the data seed), so a shrunk failure prints all of it. Errors are in
//! units of `eps_dtype · max(1, max|oracle|)`, the unit of the bounds in
//! `agreement.rs` (which measured them); the same bounds are used here.
//! Case counts are set per test so the file runs in seconds on 2 cores.

mod common;

use bn_harness::data::{round_to, Rng};
use bn_harness::dd::DD;
use bn_harness::oracle::{self, metrics::compare};
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{BatchNorm, Config, DType, Element, GradMode, Implementation, Layout};
use common::{batch, bound, errors, grad_output, AnyBn, Params, Scenario, OUTPUTS};
use proptest::prelude::*;

/// One generated test case: shape, layout, dtype, module config, data
/// distribution and the seed of the data (all printed on failure).
#[derive(Debug, Clone)]
struct Case {
    shape: Vec<usize>,
    layout: Layout,
    dtype: DType,
    affine: bool,
    track: bool,
    momentum: Option<f64>,
    eps: f64,
    /// Common offset of the data, in units of `spread`.
    offset_ratio: f64,
    spread: f64,
    seed: u64,
}

impl Case {
    fn scenario(&self) -> Scenario {
        Scenario {
            shape: self.shape.clone(),
            layout: self.layout,
            dtype: self.dtype,
            affine: self.affine,
            track: self.track,
            momentum: self.momentum,
            eps: self.eps,
        }
    }
    fn offset(&self) -> f64 {
        self.offset_ratio * self.spread
    }
}

/// Shapes of rank 2..=5 with at least 2 values per channel (batch statistics need them).
fn shape() -> impl Strategy<Value = Vec<usize>> {
    (
        1usize..=5,
        1usize..=4,
        prop::collection::vec(1usize..=3, 0..=3),
    )
        .prop_map(|(n, c, spatial)| {
            let s: usize = spatial.iter().product();
            let n = if n * s < 2 { 2 } else { n };
            [vec![n, c], spatial].concat()
        })
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Contiguous), Just(Layout::ChannelsLast)]
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F64)]
}

fn momentum() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![Just(None), Just(Some(0.1)), (0.0f64..=1.0).prop_map(Some)]
}

/// Cases with data `offset_ratio·spread + spread·N(0,1)` (plus per-channel
/// shifts of ±spread), offset ratios drawn from `ratios`.
fn cases(ratios: std::ops::RangeInclusive<f64>) -> impl Strategy<Value = Case> {
    (
        shape(),
        layout(),
        dtype(),
        any::<bool>(),
        any::<bool>(),
        momentum(),
        prop_oneof![Just(1e-5), 1e-7f64..1e-3],
        ratios,
        -2.0f64..2.0, // log10 of the spread
        any::<u64>(),
    )
        .prop_map(
            |(shape, layout, dtype, affine, track, momentum, eps, r, ls, seed)| Case {
                shape,
                layout,
                dtype,
                affine,
                track,
                momentum,
                eps,
                offset_ratio: r,
                spread: 10f64.powf(ls),
                seed,
            },
        )
}

fn data(case: &Case, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let sc = case.scenario();
    let x = batch(rng, &sc, case.offset(), case.spread, case.spread);
    let dy = grad_output(rng, &sc);
    (x, dy)
}

/// Each channel's values (flat indices in memory order) of a scenario.
fn channels(sc: &Scenario) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); sc.channels()];
    for i in 0..sc.len() {
        out[common::channel_of(sc, i)].push(i);
    }
    out
}

/// The magnitude of the terms `grad_input` is computed from:
/// `max |w_c|/√(σ_c² + eps) · |dy_i|`. `dx` is a difference of such terms
/// (Ioffe & Szegedy 2015, §3), so its rounding error scales with them, not
/// with `|dx|` (which is ≈ 0 for 2 values per channel). Gradient bounds are
/// in units of `eps_dtype · max(1, max|dx|, this)`.
fn term_scale(sc: &Scenario, x: &[f64], dy: &[f64], weight: Option<&[f64]>, eps: f64) -> f64 {
    let (_, var) = oracle::mean_var(x, &sc.dims());
    dy.iter().enumerate().fold(1.0f64, |a, (i, g)| {
        let c = common::channel_of(sc, i);
        let w = weight.map_or(1.0, |w| w[c]).abs();
        a.max(w / (var[c] + eps).sqrt() * g.abs())
    })
}

/// The magnitude of the terms the parameter gradients are sums of, for the
/// largest channel: `[Σ|dy·x̂|, Σ|dy|]` (`grad_weight`, `grad_bias`), with
/// `x̂ = (x − mean)/√(var + eps)` from the statistics the step normalized
/// with. A sum's rounding error scales with its terms, not with the sum,
/// which cancels for some draws (found by this file: welford and parallel
/// differed by 67.6 units of `max|grad_weight|` on 8 values per channel).
fn param_grad_terms(
    sc: &Scenario,
    x: &[f64],
    dy: &[f64],
    stats: (&[f64], &[f64]),
    eps: f64,
) -> [f64; 2] {
    let (mean, var) = stats;
    let mut t = vec![[0.0f64; 2]; sc.channels()];
    for (i, (v, g)) in x.iter().zip(dy).enumerate() {
        let c = common::channel_of(sc, i);
        let xh = (v - mean[c]) / (var[c] + eps).sqrt();
        t[c][0] += (g * xh).abs();
        t[c][1] += g.abs();
    }
    t.iter()
        .fold([0.0, 0.0], |a, c| [a[0].max(c[0]), a[1].max(c[1])])
}

/// Condition number of the batch for the textbook formulas:
/// `max(1, max_i |x_i| / √(σ_c² + eps))`. Unstable implementations compute
/// `x − μ` in the data's type, so their error grows with it (see
/// `bnh accuracy`); their bounds are multiplied by it, stable ones' are not.
fn kappa(sc: &Scenario, x: &[f64], eps: f64) -> f64 {
    let (_, var) = oracle::mean_var(x, &sc.dims());
    x.iter().enumerate().fold(1.0f64, |a, (i, v)| {
        a.max(v.abs() / (var[common::channel_of(sc, i)] + eps).sqrt())
    })
}

/// The bound of `imp` for this batch: stable ones a constant, unstable ones × κ.
fn bound_for(imp: &dyn Implementation, sc: &Scenario, x: &[f64], eps: f64) -> f64 {
    if imp.info().stable {
        bound(imp, sc.dtype)
    } else {
        bound(imp, sc.dtype) * kappa(sc, x, eps)
    }
}

/// `|got − ref|` of a gradient (or any result summed from terms of up to
/// `terms` in size) in units of `eps_dtype · max(1, max|ref|, terms)`.
fn grad_units(got: &[f64], reference: &[f64], dtype: DType, terms: f64) -> f64 {
    let e = compare(got, reference, dtype);
    if e.misplaced > 0 {
        return f64::INFINITY;
    }
    e.abs / (dtype.epsilon() * e.max_ref.max(terms).max(1.0))
}

fn dd_sum(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(DD::ZERO, |a, x| a + x).to_f64()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Training without affine: every channel of `y` has mean ≈ 0 and biased
    /// variance ≈ 1 when the spread is well above `eps` (exactly
    /// `σ²/(σ²+eps)`, which is within `eps/σ² ≤ 1e-3` of 1 here).
    #[test]
    fn training_output_is_standardized(case in cases(0.0..=10.0).prop_map(|mut c| {
        c.affine = false;
        c.spread = c.spread.max(0.1);
        c
    })) {
        let sc = case.scenario();
        for imp in bn_impls::registry::all() {
            let mut rng = Rng::new(case.seed);
            let params = Params::random(&mut rng, &sc, case.offset());
            let mut bn = AnyBn::new(&sc, &params);
            bn.set_training(true);
            let (x, dy) = data(&case, &mut rng);
            let (got, _) = bn.step(*imp, &sc, &x, &dy);
            let (_, var_x) = oracle::mean_var(&x, &sc.dims());
            let tol = bound_for(*imp, &sc, &x, case.eps) * sc.dtype.epsilon() * 8.0;
            for (c, idx) in channels(&sc).iter().enumerate() {
                let m = idx.len() as f64;
                let mean = dd_sum(idx.iter().map(|&i| got.y[i])) / m;
                let var = dd_sum(idx.iter().map(|&i| (got.y[i] - mean).powi(2))) / m;
                let want = var_x[c] / (var_x[c] + case.eps);
                prop_assert!(mean.abs() <= tol, "{}: channel {c} mean {mean:e}", imp.info().name);
                prop_assert!((var - want).abs() <= tol * 4.0,
                    "{}: channel {c} var {var} want {want}", imp.info().name);
                // Where this batch's spread is well above eps, that is ≈ 1.
                if var_x[c] >= 1e3 * case.eps {
                    prop_assert!((var - 1.0).abs() <= 1.1e-3 + tol * 4.0,
                        "{}: channel {c} var {var} (σ² = {})", imp.info().name, var_x[c]);
                }
            }
        }
    }

    /// `grad_input` sums to ≈ 0 per channel in training mode (the gradient is
    /// orthogonal to a constant shift, which batch norm removes).
    #[test]
    fn grad_input_sums_to_zero_per_channel(case in cases(0.0..=10.0)) {
        let sc = case.scenario();
        for imp in bn_impls::registry::all() {
            let mut rng = Rng::new(case.seed);
            let params = Params::random(&mut rng, &sc, case.offset());
            let mut bn = AnyBn::new(&sc, &params);
            bn.set_training(true);
            let (x, dy) = data(&case, &mut rng);
            let (got, want) = bn.step(*imp, &sc, &x, &dy);
            let gi = got.grad_input.unwrap();
            let w = case.affine.then_some(&params.weight[..]);
            let scale = want.grad_input.unwrap().iter()
                .fold(term_scale(&sc, &x, &dy, w, case.eps), |a, v| a.max(v.abs()));
            let b = bound_for(*imp, &sc, &x, case.eps);
            for (c, idx) in channels(&sc).iter().enumerate() {
                let s = dd_sum(idx.iter().map(|&i| gi[i]));
                let tol = b * sc.dtype.epsilon() * scale * idx.len() as f64;
                prop_assert!(s.abs() <= tol, "{}: channel {c}: Σ grad_input = {s:e} > {tol:e}", imp.info().name);
            }
        }
    }
}

/// The scalar loss `L = Σ dy·y` of a training forward in f64 (tracking off,
/// so repeated calls see the same module).
fn loss(imp: &dyn Implementation, case: &Case, x: &[f64], dy: &[f64], w: &[f64], b: &[f64]) -> f64 {
    let mut bn = BatchNorm::<f64>::new(Config {
        num_features: case.shape[1],
        eps: case.eps,
        momentum: case.momentum,
        affine: case.affine,
        track_running_stats: false,
    })
    .unwrap();
    if case.affine {
        bn.weight = Some(w.to_vec());
        bn.bias = Some(b.to_vec());
    }
    let mut y = vec![0.0; x.len()];
    bn.forward(
        imp,
        nd_view(&case.shape, case.layout, x).unwrap(),
        nd_view_mut(&case.shape, case.layout, &mut y).unwrap(),
    )
    .unwrap();
    dd_sum(y.iter().zip(dy).map(|(y, d)| y * d))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `grad_input` matches central finite differences of `L = Σ dy·y` in
    /// f64 at a few random elements. With `h = 1e-4·√(σ²+eps)` the truncation error
    /// is O(h²) relative and the rounding error ≈ eps·|L|/h, so a relative
    /// tolerance of 1e-5 (of the largest gradient) separates a right gradient
    /// from a wrong one (a missing term is O(1)).
    #[test]
    fn grad_input_matches_finite_differences_in_f64(case in cases(0.0..=3.0).prop_map(|mut c| {
        c.dtype = DType::F64;
        c.track = false;
        c.spread = c.spread.max(0.1);
        c
    })) {
        let sc = case.scenario();
        for imp in bn_impls::registry::all() {
            let mut rng = Rng::new(case.seed);
            let params = Params::random(&mut rng, &sc, case.offset());
            let (x, dy) = data(&case, &mut rng);
            let mut bn = AnyBn::new(&sc, &params);
            bn.set_training(true);
            let (got, _) = bn.step(*imp, &sc, &x, &dy);
            let gi = got.grad_input.unwrap();
            let gmax = gi.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
            // A step small against this batch's smallest spread (which can be
            // far below `spread` with 2 values per channel).
            let (_, var) = oracle::mean_var(&x, &sc.dims());
            let h = 1e-4 * var.iter().fold(f64::INFINITY, |a, v| a.min((v + case.eps).sqrt()));
            for _ in 0..4 {
                let i = (rng.next_u64() % x.len() as u64) as usize;
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (loss(*imp, &case, &xp, &dy, &params.weight, &params.bias)
                    - loss(*imp, &case, &xm, &dy, &params.weight, &params.bias))
                    / (xp[i] - xm[i]);
                prop_assert!((fd - gi[i]).abs() <= 1e-5 * gmax,
                    "{}: element {i}: grad_input {} vs finite difference {fd}", imp.info().name, gi[i]);
            }
        }
    }
}

/// Data for the invariance tests: `k·h` with integers |k| ≤ 1023 and `h` a
/// power of two, so that `x + c` (c a multiple of h with |c| ≤ 1e4·std ≤
/// 1.03e7·h, and |c/h + k| < 2^24) and `a·x` (a with a 4-bit significand)
/// are exact in f32 and the properties hold exactly.
fn grid_data(case: &Case, rng: &mut Rng) -> Vec<f64> {
    let sc = case.scenario();
    let h = 2f64.powi((case.spread.log2().floor() as i32) - 10);
    (0..sc.len())
        .map(|_| h * (rng.normal() * 300.0).round().clamp(-1023.0, 1023.0))
        .collect()
}

/// One training step (forward and backward) with `imp` from fresh
/// parameters (seeded by the case); returns (y, grad_input).
fn train_step(
    imp: &dyn Implementation,
    case: &Case,
    x: &[f64],
    dy: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let sc = Scenario {
        eps,
        ..case.scenario()
    };
    let mut rng = Rng::new(case.seed ^ 0xA5);
    let params = Params::random(&mut rng, &sc, 0.0);
    let mut bn = AnyBn::new(&sc, &params);
    bn.set_training(true);
    let (got, _) = bn.step(imp, &sc, x, dy);
    (got.y, got.grad_input.unwrap())
}

/// The oracle's (y, grad_input, [`term_scale`]) for the same step.
fn oracle_step(case: &Case, x: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
    let sc = case.scenario();
    let mut rng = Rng::new(case.seed ^ 0xA5);
    let p = Params::random(&mut rng, &sc, 0.0);
    let (w, b) = (
        case.affine.then_some(&p.weight[..]),
        case.affine.then_some(&p.bias[..]),
    );
    let stats = oracle::batch_stats(x, &sc.dims());
    let y = oracle::normalize(x, &sc.dims(), &stats, w, b, case.eps);
    let g = oracle::backward(x, dy, &sc.dims(), &stats, w, case.eps, GradMode::Batch);
    let r = |v: Vec<DD>| v.into_iter().map(DD::to_f64).collect::<Vec<f64>>();
    (r(y), r(g.grad_input), term_scale(&sc, x, dy, w, case.eps))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `BN(x + c) = BN(x)` (y and grad_input) for stable implementations,
    /// with `c` up to 1e4·std; both must be within the stable bound of the
    /// oracle's `BN(x)`. Data and shift are chosen so that `x + c` is exact
    /// in f32 (see [`grid_data`]), so the property holds exactly.
    #[test]
    fn shift_invariance_of_stable_implementations(case in cases(0.0..=0.0), c_ratio in -1e4f64..1e4) {
        let mut rng = Rng::new(case.seed);
        let x = grid_data(&case, &mut rng);
        let dy = rng.normal_vec(x.len(), 0.0, 1.0, case.dtype);
        let std = oracle::mean_var(&x, &case.scenario().dims()).1.iter().fold(0.0f64, |a, v| a.max(v.sqrt()));
        let h = 2f64.powi((case.spread.log2().floor() as i32) - 10);
        let shift = (c_ratio * std.max(h) / h).round() * h;
        let shifted: Vec<f64> = x.iter().map(|v| v + shift).collect();
        prop_assert!(shifted.iter().all(|&v| round_to(case.dtype, v) == v), "shifted data not exact");
        let (y_ref, gi_ref, terms) = oracle_step(&case, &x, &dy);
        for imp in bn_impls::registry::all().iter().filter(|i| i.info().stable) {
            let b = bound(*imp, case.dtype);
            for data in [&x, &shifted] {
                let (y, gi) = train_step(*imp, &case, data, &dy, case.eps);
                let (ey, eg) = (compare(&y, &y_ref, case.dtype).scaled, grad_units(&gi, &gi_ref, case.dtype, terms));
                prop_assert!(ey <= b && eg <= b,
                    "{}: shift {shift:e}: y {ey:.2} units, grad_input {eg:.2} units > {b}",
                    imp.info().name);
            }
        }
    }

    /// `BN(a·x) = BN(x)` for a > 0 (with eps scaled by a², which makes it an
    /// identity; `grad_input` scales by 1/a), for every implementation;
    /// `a = 2^p·(8 + j)/8` keeps `a·x` exact in f32.
    #[test]
    fn scale_invariance(case in cases(0.0..=0.0), p in -20i32..20, j in 0u32..8) {
        let a = 2f64.powi(p) * (8 + j) as f64 / 8.0;
        let mut rng = Rng::new(case.seed);
        let x = grid_data(&case, &mut rng);
        let dy = rng.normal_vec(x.len(), 0.0, 1.0, case.dtype);
        let scaled: Vec<f64> = x.iter().map(|v| v * a).collect();
        prop_assert!(scaled.iter().all(|&v| round_to(case.dtype, v) == v), "scaled data not exact");
        let (y_ref, gi_ref, terms) = oracle_step(&case, &x, &dy);
        for imp in bn_impls::registry::all() {
            let b = bound_for(*imp, &case.scenario(), &x, case.eps);
            let (y, gi) = train_step(*imp, &case, &scaled, &dy, case.eps * a * a);
            let gi: Vec<f64> = gi.iter().map(|g| g * a).collect();
            let (ey, eg) = (compare(&y, &y_ref, case.dtype).scaled, grad_units(&gi, &gi_ref, case.dtype, terms));
            prop_assert!(ey <= b && eg <= b,
                "{}: a = {a}: y {ey:.2} units, a·grad_input {eg:.2} units > {b}",
                imp.info().name);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// Over 1–5 training steps (momentum a number or None), each update of
    /// the running buffers follows the module rules (checked against the
    /// oracle's update from the same state) and `num_batches_tracked` counts
    /// the steps; then eval uses exactly those buffers (its `y` matches the
    /// oracle normalizing with them) and leaves them bitwise unchanged.
    #[test]
    fn running_statistics_follow_the_module_rules(
        case in cases(0.0..=10.0).prop_map(|mut c| { c.track = true; c }), steps in 1usize..=5
    ) {
        let sc = case.scenario();
        for imp in bn_impls::registry::all() {
            let b = bound(*imp, sc.dtype);
            let mut rng = Rng::new(case.seed);
            let params = Params::random(&mut rng, &sc, case.offset());
            let mut bn = AnyBn::new(&sc, &params);
            bn.set_training(true);
            // The running mean is a momentum-weighted mean of batch means:
            // like any sum, a stable algorithm's error scales with the values
            // summed (up to the largest |x| seen), not with the mean itself.
            let mut x_max = 0.0f64;
            for k in 0..steps {
                let (x, dy) = data(&case, &mut rng);
                x_max = x.iter().fold(x_max, |m, v| m.max(v.abs()));
                let (got, want) = bn.step(*imp, &sc, &x, &dy);
                prop_assert_eq!(got.num_batches_tracked, Some(params.num_batches_tracked + k as i64 + 1));
                let e = errors(&got, &want, sc.dtype);
                let mean_units = grad_units(
                    got.running_mean.as_deref().unwrap_or_default(),
                    want.running_mean.as_deref().unwrap_or_default(),
                    sc.dtype,
                    x_max,
                );
                prop_assert!(mean_units <= b && e[2].scaled <= b,
                    "{}: step {k}: running_mean {:.2} units of max|x|, running_var {:.2} units > {b}",
                    imp.info().name, mean_units, e[2].scaled);
            }
            bn.set_training(false);
            let before = bn.clone();
            let (x, dy) = data(&case, &mut rng);
            let (got, want) = bn.step(*imp, &sc, &x, &dy);
            let e = errors(&got, &want, sc.dtype);
            prop_assert!(e[0].scaled <= b, "{}: eval y {:.2} units > {b}", imp.info().name, e[0].scaled);
            let same = match (&before, &bn) {
                (AnyBn::F32(a), AnyBn::F32(b)) => bits(&a.running_mean) == bits(&b.running_mean)
                    && bits(&a.running_var) == bits(&b.running_var)
                    && a.num_batches_tracked == b.num_batches_tracked,
                (AnyBn::F64(a), AnyBn::F64(b)) => bits(&a.running_mean) == bits(&b.running_mean)
                    && bits(&a.running_var) == bits(&b.running_var)
                    && a.num_batches_tracked == b.num_batches_tracked,
                _ => false,
            };
            prop_assert!(same, "{}: eval changed the running buffers", imp.info().name);
        }
    }

    /// Every pair of stable implementations agrees on every output within
    /// twice the stable bound (each is within the bound of the oracle), on
    /// data with offsets up to 1e4 spreads.
    #[test]
    fn stable_implementations_agree_pairwise(case in cases(0.0..=1e4), training in any::<bool>()) {
        let sc = case.scenario();
        let stable: Vec<_> = bn_impls::registry::all().iter().filter(|i| i.info().stable).collect();
        let mut results = Vec::new();
        let (mut terms, mut pterms) = (1.0, [1.0, 1.0]);
        for imp in &stable {
            let mut rng = Rng::new(case.seed);
            let params = Params::random(&mut rng, &sc, case.offset());
            let mut bn = AnyBn::new(&sc, &params);
            bn.set_training(training);
            let (x, dy) = data(&case, &mut rng);
            terms = term_scale(&sc, &x, &dy, case.affine.then_some(&params.weight[..]), case.eps);
            // Eval with tracking normalizes with the running buffers, else the batch's.
            let batch_stats = oracle::mean_var(&x, &sc.dims());
            let stats = if !training && case.track {
                (&params.running_mean[..], &params.running_var[..])
            } else {
                (&batch_stats.0[..], &batch_stats.1[..])
            };
            pterms = param_grad_terms(&sc, &x, &dy, stats, case.eps);
            results.push(bn.step(**imp, &sc, &x, &dy));
        }
        let b = bound(*stable[0], sc.dtype);
        for i in 0..results.len() {
            for j in i + 1..results.len() {
                // Measure i against j in the oracle's units of j's magnitude.
                let e = errors(&results[i].0, &results[j].0, sc.dtype);
                for (name, e) in OUTPUTS.iter().zip(e) {
                    let sum_units = |t: f64| e.abs / (sc.dtype.epsilon() * e.max_ref.max(t).max(1.0));
                    let units = if *name == "grad_input" {
                        let (a, b) = (&results[i].0.grad_input, &results[j].0.grad_input);
                        grad_units(a.as_ref().unwrap(), b.as_ref().unwrap(), sc.dtype, terms)
                    } else if e.misplaced > 0 {
                        f64::INFINITY
                    } else if *name == "grad_weight" {
                        sum_units(pterms[0])
                    } else if *name == "grad_bias" {
                        sum_units(pterms[1])
                    } else {
                        e.scaled
                    };
                    prop_assert!(units <= 2.0 * b,
                        "{} vs {}: {name} differs by {units:.2} units > {}",
                        stable[i].info().name, stable[j].info().name, 2.0 * b);
                }
            }
        }
    }
}

fn bits<T: Element>(v: &Option<Vec<T>>) -> Option<Vec<u64>> {
    v.as_ref()
        .map(|v| v.iter().map(|x| x.as_f64().to_bits()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Implementations that claim determinism give bitwise identical results
    /// (every output) in rayon pools of 1, 2 and 3 threads. Shapes are
    /// larger here (up to 64 × C × 16) so parallel kernels really split work.
    #[test]
    fn deterministic_implementations_ignore_the_thread_count(
        case in (cases(0.0..=100.0), 2usize..=64, 1usize..=16)
            .prop_map(|(mut c, n, s)| { c.shape = vec![n, c.shape[1], s]; c }),
        training in any::<bool>()
    ) {
        let sc = case.scenario();
        for imp in bn_impls::registry::all().iter().filter(|i| i.info().deterministic) {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut rng = Rng::new(case.seed);
                    let params = Params::random(&mut rng, &sc, case.offset());
                    let mut bn = AnyBn::new(&sc, &params);
                    bn.set_training(training);
                    let (x, dy) = data(&case, &mut rng);
                    bn.step(*imp, &sc, &x, &dy).0
                })
            };
            let one = run(1);
            for threads in [2, 3] {
                let other = run(threads);
                let as_bits = |v: &Option<Vec<f64>>| v.as_ref().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
                prop_assert!(
                    one.y.iter().map(|v| v.to_bits()).eq(other.y.iter().map(|v| v.to_bits()))
                        && as_bits(&one.running_mean) == as_bits(&other.running_mean)
                        && as_bits(&one.running_var) == as_bits(&other.running_var)
                        && as_bits(&one.grad_input) == as_bits(&other.grad_input)
                        && as_bits(&one.grad_weight) == as_bits(&other.grad_weight)
                        && as_bits(&one.grad_bias) == as_bits(&other.grad_bias),
                    "{}: results with {threads} threads differ from 1 thread", imp.info().name);
            }
        }
    }
}

/// A test must be able to fail: a deliberately wrong gradient (the
/// fixed-statistics formula used in training) is caught by the
/// finite-difference check's tolerance.
#[test]
fn the_finite_difference_check_catches_a_wrong_gradient() {
    let case = Case {
        shape: vec![4, 2, 3],
        layout: Layout::Contiguous,
        dtype: DType::F64,
        affine: true,
        track: false,
        momentum: Some(0.1),
        eps: 1e-5,
        offset_ratio: 1.0,
        spread: 1.0,
        seed: 3,
    };
    let sc = case.scenario();
    let imp = bn_impls::registry::by_name("welford").unwrap();
    let mut rng = Rng::new(case.seed);
    let params = Params::random(&mut rng, &sc, case.offset());
    let (x, dy) = data(&case, &mut rng);
    let st = oracle::batch_stats(&x, &sc.dims());
    let wrong = oracle::backward(
        &x,
        &dy,
        &sc.dims(),
        &st,
        Some(&params.weight),
        case.eps,
        GradMode::Fixed,
    );
    let h = 1e-4;
    let (mut xp, mut xm) = (x.clone(), x.clone());
    xp[0] += h;
    xm[0] -= h;
    let fd = (loss(imp, &case, &xp, &dy, &params.weight, &params.bias)
        - loss(imp, &case, &xm, &dy, &params.weight, &params.bias))
        / (2.0 * h);
    assert!((fd - wrong.grad_input[0].to_f64()).abs() > 1e-5 * 4.0);
}
