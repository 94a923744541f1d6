//! BN+ReLU and BN+Add+ReLU: `fused`'s one-pass versions against the
//! default composition (the same kernel's plain operation, then a ReLU pass),
//! and the new SIMD kernels against their scalar twin at every level.
//!
//! What must agree, and why:
//! - backward (`dx`, `grad_weight`, `grad_bias`, `grad_residual`):
//!   **bitwise** — the mask only zeroes `dy` values, which the fused
//!   kernels do as they load `dy`, so they sum exactly the values the
//!   composition's masked copy holds, in the same order;
//! - forward with ReLU only: **equal as numbers** (bitwise except the sign
//!   of a zero) — the fused pass rounds `relu(v)`, the composition rounds
//!   `v` then applies the ReLU; rounding is monotone and keeps 0, so the two
//!   agree except when a negative `v` rounds to −0 (composition: `relu(−0)`
//!   = −0 as in PyTorch; fused: +0);
//! - forward with the residual: **within 1 ulp of the output plus 1 ulp of
//!   the plain output** — the fused pass rounds once, `round(v + r)`,
//!   where the composition (like PyTorch) rounds twice, `round(round(v) + r)`;
//! - batch statistics: bitwise (the same reduction code).

mod common;

use bn_impls::activation::{eval_then_relu, mask_then_backward, train_then_relu};
use bn_impls::fused::simd::{self, Lane, Level, Post, RowCoeffs, RowsDx, RunAcc};
use bn_impls::fused::task_rule::{self, with_task_rule, TaskRule};
use bn_impls::fused::Fused;
use bn_impls::{
    Affine, Backward, BackwardRelu, Dims, Element, EvalForward, EvalRelu, GradMode, Kernel, Layout,
    TrainForward, TrainRelu,
};
use common::{bits, bits64, dims, Rng};

/// Values around 0 (so the ReLU cuts about half), with zeros, −0 and a NaN
/// sprinkled in, so every branch of the masks is taken.
fn signed<T: Element>(rng: &mut Rng, n: usize) -> Vec<T> {
    (0..n)
        .map(|i| match i % 37 {
            5 => T::from_f64(-0.0),
            11 => T::zero(),
            23 if n > 200 => T::nan(),
            _ => T::from_f64(2.0 * rng.unit()),
        })
        .collect()
}

fn b64(v: &[f64]) -> Vec<u64> {
    bits64(v)
}

// ---- SIMD levels -----------------------------------------------------------

fn runs_at<T: Lane>(lv: Level, x: &[T], r: &[T], yo: &[T], dy: &[T]) -> Vec<u64> {
    let n = x.len();
    let mut out = Vec::new();
    for post in [Post::Plain, Post::Relu, Post::AddRelu] {
        let mut y = vec![T::zero(); n];
        simd::run_affine_post(lv, x, r, &mut y, 0.25, 0.75, -0.125, post);
        out.extend(bits(&y));
    }
    let mut acc: RunAcc<3> = std::array::from_fn(|s| std::array::from_fn(|l| (s + l) as f64));
    simd::run_grad_relu(lv, x, dy, yo, None, 0.25, &mut acc);
    out.extend(b64(&acc.concat()));
    for fixed in [false, true] {
        let (mut dx, mut dres) = (vec![T::zero(); n], vec![T::zero(); n]);
        let c = [0.5, -0.25, 2.0];
        simd::run_dx_relu(lv, [x, dy, yo], &mut dx, Some(&mut dres), 0.25, c, fixed);
        out.extend(bits(&dx));
        out.extend(bits(&dres));
        simd::run_dx_relu(lv, [x, dy, yo], &mut dx, None, 0.25, c, fixed);
        out.extend(bits(&dx));
    }
    out
}

fn rows_at<T: Lane>(lv: Level, x: &[T], r: &[T], yo: &[T], dy: &[T], l: usize) -> Vec<u64> {
    let n = x.len();
    let coef = |s: f64| -> Vec<f64> { (0..l).map(|i| s * (1.0 + i as f64 / 7.0)).collect() };
    let (k, a, b, c) = (coef(0.1), coef(0.5), coef(-0.25), coef(0.125));
    let mut out = Vec::new();
    for post in [Post::Plain, Post::Relu, Post::AddRelu] {
        let mut y = vec![T::zero(); n];
        let kab = RowCoeffs::affine::<T>([&k, &a, &b]);
        simd::rows_affine_post(lv, x, r, &mut y, &kab, post);
        out.extend(bits(&y));
        let ab = RowCoeffs::scale::<T>([&a, &b]);
        simd::rows_scale_post(lv, x, r, &mut y, &ab, post);
        out.extend(bits(&y));
    }
    let [mut g1, mut g2, mut g3] = [1.0, 2.0, -3.0].map(coef);
    simd::rows_grad_relu(lv, x, dy, yo, &k, [&mut g1, &mut g2, &mut g3]);
    out.extend(b64(&[g1, g2, g3].concat()));
    for fixed in [false, true] {
        let (mut dx, mut dres) = (vec![T::zero(); n], vec![T::zero(); n]);
        let cs = RowsDx::shifted::<T>([&k, &a, &b, &c]);
        simd::rows_dx_relu(lv, [x, dy, yo], &mut dx, Some(&mut dres), &cs, fixed);
        out.extend(bits(&dx));
        out.extend(bits(&dres));
        let cf = RowsDx::folded::<T>([&a, &b, &c]);
        simd::rows_dx_relu(lv, [x, dy, yo], &mut dx, Some(&mut dres), &cf, fixed);
        out.extend(bits(&dx));
        out.extend(bits(&dres));
    }
    out
}

fn levels_agree<T: Lane>() {
    // Each level plain and streaming (prefetches, non-temporal stores, the
    // row-pair backward sums).
    for lv in Level::available()
        .into_iter()
        .flat_map(|l| [l, l.streaming(true)])
    {
        for n in (0..=40).chain([127, 1000, 4099]) {
            let mut rng = Rng::new(n as u64 + 7);
            let (x, r, yo, dy) = (
                signed::<T>(&mut rng, n),
                signed::<T>(&mut rng, n),
                signed::<T>(&mut rng, n),
                signed::<T>(&mut rng, n),
            );
            let want = runs_at(Level::scalar(), &x, &r, &yo, &dy);
            assert_eq!(
                runs_at(lv, &x, &r, &yo, &dy),
                want,
                "runs {} {} n={n}",
                lv.name(),
                T::DTYPE
            );
            for l in [1, 3, 8, 13, 64, 72] {
                let want = rows_at(Level::scalar(), &x, &r, &yo, &dy, l);
                let got = rows_at(lv, &x, &r, &yo, &dy, l);
                assert_eq!(got, want, "rows {} {} n={n} L={l}", lv.name(), T::DTYPE);
            }
        }
    }
}

#[test]
fn relu_kernels_equal_the_scalar_twin_at_every_level() {
    levels_agree::<f32>();
    levels_agree::<f64>();
    levels_agree::<half::bf16>();
    levels_agree::<half::f16>();
}

#[test]
fn scalar_relu_is_pytorchs() {
    // torch.relu: -0 stays -0, NaN stays NaN; threshold_backward passes the
    // gradient where the output is NaN and zeroes it where it is <= 0.
    use bn_impls::activation::{relu, relu_grad};
    assert_eq!(relu(-0.0).to_bits(), (-0.0f64).to_bits());
    assert!(relu(f64::NAN).is_nan());
    assert_eq!(relu(-2.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(relu(3.0), 3.0);
    assert_eq!(relu_grad(f64::NAN, 5.0), 5.0);
    assert_eq!(relu_grad(-0.0, 5.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(relu_grad(0.0, 5.0), 0.0);
    assert_eq!(relu_grad(1e-300, 5.0), 5.0);
}

// ---- fused vs the default composition ---------------------------------------

struct Batch<T> {
    d: Dims,
    x: Vec<T>,
    r: Vec<T>,
    dy: Vec<T>,
    w: Vec<f64>,
    b: Vec<f64>,
}

fn batch<T: Element>(shape: &[usize], layout: Layout, seed: u64) -> Batch<T> {
    let d = dims(shape, layout);
    let mut rng = Rng::new(seed);
    let x = common::data(&mut rng, d.len(), 0.5, 2.0);
    let r = common::data(&mut rng, d.len(), 0.0, 1.0);
    let dy = common::data(&mut rng, d.len(), 0.0, 1.0);
    let w = (0..d.c).map(|i| 0.5 + (i % 7) as f64 * 0.25).collect();
    let b = (0..d.c).map(|i| (i % 5) as f64 * 0.5 - 1.0).collect();
    Batch { d, x, r, dy, w, b }
}

/// The outputs of one forward (train or eval) and its backward.
struct Run<T> {
    y: Vec<T>,
    stats: Vec<u64>,
    dx: Vec<T>,
    gw: Vec<f64>,
    gb: Vec<f64>,
}

/// Forward (training when `train`) and backward of `relu(bn(x) [+ r])`,
/// fused (`fused = true`, the kernel's methods) or composed (the defaults).
fn run<T: Lane>(bt: &Batch<T>, add: bool, train: bool, fused: bool) -> Run<T> {
    let (d, k) = (bt.d, Fused);
    let af = Affine {
        weight: Some(&bt.w),
        bias: Some(&bt.b),
    };
    let res = add.then(|| d.tensor(&bt.r).unwrap());
    let mut y = vec![T::zero(); d.len()];
    let (mut mean, mut var) = (vec![0.0; d.c], vec![0.0; d.c]);
    if train {
        let p = TrainForward::new(
            d.tensor(&bt.x).unwrap(),
            d.tensor_mut(&mut y).unwrap(),
            af,
            1e-5,
            &mut mean,
            &mut var,
        )
        .unwrap();
        let p = TrainRelu::new(p, res).unwrap();
        if fused {
            Kernel::<T>::try_forward_train_relu(&k, p).unwrap();
        } else {
            train_then_relu(&k, p).unwrap();
        }
    } else {
        mean = (0..d.c).map(|c| 0.25 + c as f64 / 8.0).collect();
        var = (0..d.c).map(|c| 1.5 + c as f64 / 4.0).collect();
        let p = EvalForward::new(
            d.tensor(&bt.x).unwrap(),
            d.tensor_mut(&mut y).unwrap(),
            &mean,
            &var,
            af,
            1e-5,
        )
        .unwrap();
        let p = EvalRelu::new(p, res).unwrap();
        if fused {
            Kernel::<T>::try_forward_eval_relu(&k, p).unwrap();
        } else {
            eval_then_relu(&k, p).unwrap();
        }
    }
    let (mut dx, mut dres) = (vec![T::zero(); d.len()], vec![T::zero(); d.len()]);
    let (mut gw, mut gb) = (vec![0.0; d.c], vec![0.0; d.c]);
    let mode = if train {
        GradMode::Batch
    } else {
        GradMode::Fixed
    };
    let p = Backward::new(
        d.tensor(&bt.x).unwrap(),
        d.tensor(&bt.dy).unwrap(),
        d.tensor_mut(&mut dx).unwrap(),
        &mean,
        &var,
        Some(&bt.w),
        1e-5,
        mode,
        &mut gw,
        &mut gb,
    )
    .unwrap();
    let gr = add.then(|| d.tensor_mut(&mut dres).unwrap());
    let p = BackwardRelu::new(p, d.tensor(&y).unwrap(), gr).unwrap();
    if fused {
        Kernel::<T>::try_backward_relu(&k, p).unwrap();
    } else {
        mask_then_backward(&k, p).unwrap();
    }
    let stats = [b64(&mean), b64(&var)].concat();
    Run {
        y,
        stats,
        dx,
        gw,
        gb,
    }
}

/// The plain batch norm's output (for the bound of the residual case).
fn plain_y<T: Lane>(bt: &Batch<T>, train: bool) -> Vec<T> {
    let d = bt.d;
    let mut y = vec![T::zero(); d.len()];
    let af = Affine {
        weight: Some(&bt.w),
        bias: Some(&bt.b),
    };
    let (x, out) = (d.tensor(&bt.x).unwrap(), d.tensor_mut(&mut y).unwrap());
    if train {
        let (mut m0, mut v0) = (vec![0.0; d.c], vec![0.0; d.c]);
        let p = TrainForward::new(x, out, af, 1e-5, &mut m0, &mut v0).unwrap();
        Kernel::<T>::forward_train(&Fused, p);
    } else {
        let mean: Vec<f64> = (0..d.c).map(|c| 0.25 + c as f64 / 8.0).collect();
        let var: Vec<f64> = (0..d.c).map(|c| 1.5 + c as f64 / 4.0).collect();
        let p = EvalForward::new(x, out, &mean, &var, af, 1e-5).unwrap();
        Kernel::<T>::forward_eval(&Fused, p);
    }
    y
}

fn fused_matches_composition<T: Lane>(shape: &[usize], layout: Layout) {
    let bt = batch::<T>(shape, layout, shape.iter().product::<usize>() as u64);
    for train in [true, false] {
        for add in [false, true] {
            let rule = task_rule::current();
            let what = format!(
                "{} {shape:?} {layout:?} train={train} add={add} {rule:?}",
                T::DTYPE
            );
            let (f, c) = (run(&bt, add, train, true), run(&bt, add, train, false));
            assert_eq!(f.stats, c.stats, "statistics, {what}");
            if add {
                let (u, p) = (T::DTYPE.epsilon(), plain_y(&bt, train));
                for (i, ((a, b), v)) in f.y.iter().zip(&c.y).zip(&p).enumerate() {
                    let (a, b, v) = (a.as_f64(), b.as_f64(), v.as_f64());
                    let tol = u * (a.abs().max(b.abs()) + v.abs()) + 1e-300;
                    assert!((a - b).abs() <= tol, "y[{i}] {a} vs {b}, {what}");
                }
            } else {
                let same = f.y.iter().zip(&c.y).all(|(a, b)| a.as_f64() == b.as_f64());
                assert!(same, "y not equal as numbers, {what}");
            }
            // Backward from each side's own y, so the masks are its own: with
            // add the two y may differ by an ulp, so only the relu case
            // compares backward bitwise from different forwards; the add case
            // is compared from the same y below.
            if !add {
                assert_eq!(bits(&f.dx), bits(&c.dx), "dx, {what}");
                assert_eq!(b64(&f.gw), b64(&c.gw), "grad_weight, {what}");
                assert_eq!(b64(&f.gb), b64(&c.gb), "grad_bias, {what}");
            }
        }
    }
}

/// Backward alone from one shared `y` (so both see the same mask), with and
/// without the residual's gradient, batch and fixed statistics: bitwise.
fn backward_bitwise<T: Lane>(shape: &[usize], layout: Layout) {
    let bt = batch::<T>(shape, layout, 11);
    let d = bt.d;
    let mut rng = Rng::new(5);
    let y: Vec<T> = signed(&mut rng, d.len());
    let mean: Vec<f64> = (0..d.c).map(|c| 0.5 + c as f64 / 16.0).collect();
    let var: Vec<f64> = (0..d.c).map(|c| 1.25 + c as f64 / 8.0).collect();
    for mode in [GradMode::Batch, GradMode::Fixed] {
        for with_res in [false, true] {
            let mut outs = Vec::new();
            for fused in [true, false] {
                let (mut dx, mut dres) = (vec![T::zero(); d.len()], vec![T::nan(); d.len()]);
                let (mut gw, mut gb) = (vec![0.0; d.c], vec![0.0; d.c]);
                let p = Backward::new(
                    d.tensor(&bt.x).unwrap(),
                    d.tensor(&bt.dy).unwrap(),
                    d.tensor_mut(&mut dx).unwrap(),
                    &mean,
                    &var,
                    Some(&bt.w),
                    1e-5,
                    mode,
                    &mut gw,
                    &mut gb,
                )
                .unwrap();
                let gr = with_res.then(|| d.tensor_mut(&mut dres).unwrap());
                let p = BackwardRelu::new(p, d.tensor(&y).unwrap(), gr).unwrap();
                if fused {
                    Kernel::<T>::try_backward_relu(&Fused, p).unwrap();
                } else {
                    mask_then_backward(&Fused, p).unwrap();
                }
                outs.push((bits(&dx), bits(&dres), b64(&gw), b64(&gb)));
            }
            let rule = task_rule::current();
            let what = format!(
                "{} {shape:?} {layout:?} {mode:?} res={with_res} {rule:?}",
                T::DTYPE
            );
            assert!(outs[0] == outs[1], "backward differs, {what}");
        }
    }
}

/// Shapes: tails, few and many channels, one large enough for the
/// parallel and the cache-blocked paths, and one of short runs over two
/// address-ordered tasks (the second starts inside a batch row: channel 5).
const SHAPES: &[&[usize]] = &[
    &[2, 3, 7, 5],
    &[4, 70, 3],
    &[3, 5],
    &[8, 16, 33, 33],
    &[64, 70, 17],
];

/// Each under both schedules of `fused`'s contiguous channel tasks (this
/// machine's rule, [`TaskRule::Machine`], takes one of them).
fn all_shapes<T: Lane>() {
    for rule in [TaskRule::Shape, TaskRule::Never] {
        with_task_rule(rule, || {
            for layout in Layout::ALL {
                for shape in SHAPES {
                    fused_matches_composition::<T>(shape, layout);
                    backward_bitwise::<T>(shape, layout);
                }
            }
        });
    }
}

#[test]
fn fused_relu_matches_the_composition_f32() {
    all_shapes::<f32>();
}

#[test]
fn fused_relu_matches_the_composition_f64() {
    all_shapes::<f64>();
}

#[test]
fn fused_relu_matches_the_composition_bf16() {
    all_shapes::<half::bf16>();
}

#[test]
fn fused_relu_matches_the_composition_f16() {
    all_shapes::<half::f16>();
}

/// The default composition is PyTorch's: `relu(round(bn) + r)` rounded
/// in `T`, the mask from the output. Checked on a hand-sized case with the
/// `naive` implementation (a different kernel under the same default).
#[test]
fn default_composition_on_a_small_case() {
    let imp = bn_impls::registry::by_name("naive").unwrap();
    let k = bn_impls::kernel::<f32>(imp).unwrap();
    let d = dims(&[4, 1], Layout::Contiguous);
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let r = [0.0f32, 1.0, -0.5, -3.0];
    let mut y = [0.0f32; 4];
    let (mut mean, mut var) = ([0.0], [0.0]);
    let p = TrainForward::new(
        d.tensor(&x).unwrap(),
        d.tensor_mut(&mut y).unwrap(),
        Affine::default(),
        1e-5,
        &mut mean,
        &mut var,
    )
    .unwrap();
    k.try_forward_train_relu(TrainRelu::new(p, Some(d.tensor(&r).unwrap())).unwrap())
        .unwrap();
    // bn(x) = (x − 2.5)/sqrt(1.25 + 1e-5) in f32, then + r, then relu.
    let inv = 1.0 / (1.25f64 + 1e-5).sqrt();
    let want: Vec<f32> = (0..4)
        .map(|i| {
            let bn = ((x[i] as f64 - 2.5) * inv) as f32;
            let v = bn + r[i];
            if v < 0.0 {
                0.0
            } else {
                v
            }
        })
        .collect();
    for i in 0..4 {
        assert!(
            (y[i] - want[i]).abs() <= 2e-7 * want[i].abs().max(1.0),
            "y[{i}] {} vs {}",
            y[i],
            want[i]
        );
    }
    assert_eq!(y[0], 0.0);
    assert_eq!(y[3], 0.0);
}
