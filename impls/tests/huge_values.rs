//! Statistics that do not overflow on finite input: `welford`, `parallel`
//! and `fused` give no NaN unless the input has one, and scale-equivariant
//! results, on data near the dtype's maximum (±1e308 in `f64`, ±3e38 in
//! `f32`), where shifted sums of squares overflow `f64`.
//!
//! Batch norm is scale-equivariant: with `x·2^k` and `dy·2^j` the outputs
//! are `mean·2^k`, `var·4^k`, the same `y`, `dx·2^(j−k)`, `grad_weight·2^j`,
//! `grad_bias·2^j` (up to `eps`, negligible at these sizes). So each
//! implementation's results on huge data are checked against its own
//! results on the same data scaled down.

mod common;

use bn_impls::{registry, Element, Layout};
use common::{bits, bits64, data, dims, run_all, Outputs, Rng};

const IMPLS: [&str; 3] = ["welford", "parallel", "fused"];

fn pow2(k: i32) -> f64 {
    2f64.powi(k)
}

fn finite<T: Element>(v: &[T]) -> bool {
    v.iter().all(|x| x.as_f64().is_finite())
}

/// `got ≈ want·factor`, relative to the largest `|want·factor|`.
fn close<T: Element>(got: &[T], want: &[T], factor: f64, tol: f64, what: &str) {
    let scale = want
        .iter()
        .map(|w| (w.as_f64() * factor).abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.as_f64(), w.as_f64() * factor);
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: got {g:e}, want {w:e} (scale {scale:e})"
        );
    }
}

/// The huge run (`x·2^k`, `dy·2^j`) against the small one, output by output.
fn equivariant<T: Element>(h: &Outputs<T>, s: &Outputs<T>, k: i32, j: i32, tol: f64, what: &str) {
    close(&h.mean, &s.mean, pow2(k), tol, &format!("{what} mean"));
    close(&h.var, &s.var, pow2(2 * k), tol, &format!("{what} var"));
    close(&h.y, &s.y, 1.0, tol, &format!("{what} y"));
    close(&h.dx, &s.dx, pow2(j - k), tol, &format!("{what} dx"));
    close(
        &h.dx_fixed,
        &s.dx_fixed,
        pow2(j - k),
        tol,
        &format!("{what} fixed dx"),
    );
    close(&h.gw, &s.gw, pow2(j), tol, &format!("{what} grad_weight"));
    close(&h.gb, &s.gb, pow2(j), tol, &format!("{what} grad_bias"));
}

/// Every output free of NaN and inf.
fn all_finite<T: Element>(o: &Outputs<T>, what: &str) {
    for (name, ok) in [
        ("y", finite(&o.y)),
        ("mean", finite(&o.mean)),
        ("var", finite(&o.var)),
        ("eval y", finite(&o.y_eval)),
        ("dx", finite(&o.dx)),
        ("fixed dx", finite(&o.dx_fixed)),
        ("grad_weight", finite(&o.gw)),
        ("grad_bias", finite(&o.gb)),
    ] {
        assert!(ok, "{what}: non-finite {name}");
    }
}

/// The reproduction: `x = [1e308, −1e308]` in `f64` training. The
/// true variance (1e616) exceeds `f64::MAX`, so `var` is inf (as in
/// PyTorch), but the mean is 0 and `y = ±1·w + b` (PyTorch: `b`, from
/// `x·(1/√inf)`); backward with that variance gives `dx = 0`,
/// `grad_weight = 0`, `grad_bias = Σdy` — nothing is NaN.
#[test]
fn plus_minus_1e308_f64_train_and_backward_have_no_nan() {
    for name in IMPLS {
        for layout in Layout::ALL {
            let imp = registry::by_name(name).unwrap();
            let d = dims(&[2, 1], layout);
            let out = run_all::<f64>(imp, d, &[1e308, -1e308], &[1.0, -3.0]);
            let what = format!("{name} {layout}");
            // run_all: weight 0.5, bias −1 on channel 0.
            assert_eq!(out.mean, [0.0], "{what}: mean");
            assert_eq!(out.var, [f64::INFINITY], "{what}: var");
            close(&out.y, &[-0.5, -1.5], 1.0, 1e-12, &format!("{what} y"));
            assert_eq!(out.dx, [0.0, 0.0], "{what}: dx");
            assert_eq!(out.gw, [0.0], "{what}: grad_weight");
            assert_eq!(out.gb, [-2.0], "{what}: grad_bias");
            assert!(
                finite(&out.dx_fixed) && finite(&out.y_eval),
                "{what}: fixed dx, eval y"
            );
        }
    }
}

/// Huge data whose variance still fits `f64` (so sums of squares over the
/// channel overflow but the result does not): every output finite and equal
/// to the scaled results of the same data scaled down.
fn check_scaled<T: Element>(max: f64, dy_exp: i32, tol: f64) {
    let shapes: [&[usize]; 3] = [&[4, 3, 5, 7], &[300, 4], &[3, 2, 40]];
    for (si, shape) in shapes.iter().enumerate() {
        for layout in Layout::ALL {
            let d = dims(shape, layout);
            let mut rng = Rng::new(si as u64 + 5);
            let x: Vec<T> = data(&mut rng, d.len(), 3.0, 1e3);
            let dy: Vec<T> = data(&mut rng, d.len(), 0.1, 1.0);
            let xmax = x.iter().map(|v| v.as_f64().abs()).fold(0.0, f64::max);
            // 2^k·max|x| ≤ max: the largest value near the dtype's maximum.
            let k = (max / xmax).log2().floor() as i32;
            let xh: Vec<T> = x
                .iter()
                .map(|v| T::from_f64(v.as_f64() * pow2(k)))
                .collect();
            let dyh: Vec<T> = dy
                .iter()
                .map(|v| T::from_f64(v.as_f64() * pow2(dy_exp)))
                .collect();
            for name in IMPLS {
                let imp = registry::by_name(name).unwrap();
                let what = format!("{name} {} {shape:?} {layout}", T::DTYPE);
                let small = run_all::<T>(imp, d, &x, &dy);
                let huge = run_all::<T>(imp, d, &xh, &dyh);
                if T::DTYPE.mantissa_bits() > 24 {
                    // f64: sums of squares of x·2^k overflow.
                    let m2 = small.var.iter().fold(0.0, |a: f64, &b| a.max(b)) * pow2(2 * k);
                    assert!(m2 * d.per_channel() as f64 > f64::MAX, "{what}: too small");
                }
                if m2_fits(&small, k) {
                    all_finite(&huge, &what);
                    equivariant(&huge, &small, k, dy_exp, tol, &what);
                } else {
                    assert!(
                        finite(&huge.y) && finite(&huge.mean),
                        "{what}: non-finite y or mean"
                    );
                    assert!(!huge.var.iter().any(|v| v.is_nan()), "{what}: NaN var");
                }
            }
        }
    }
}

/// Whether every scaled variance fits `f64`.
fn m2_fits<T>(small: &Outputs<T>, k: i32) -> bool {
    small.var.iter().all(|v| (v * pow2(2 * k)).is_finite())
}

#[test]
fn huge_f64_data_gives_scaled_results() {
    // Largest value 1.5e154: the variance (~2e307) fits, its sums overflow.
    check_scaled::<f64>(1.5e154, 0, 1e-9);
    check_scaled::<f64>(1.5e154, 900, 1e-9);
    // Values up to 1e308: the variance overflows too; y and mean stay finite.
    check_scaled::<f64>(1e308, 0, 1e-9);
}

#[test]
fn huge_f32_data_gives_scaled_results() {
    check_scaled::<f32>(3e38, 0, 1e-5);
    check_scaled::<f32>(3e38, 100, 1e-5);
}

/// The redo of overflowing channels is as deterministic as the rest:
/// bitwise identical results in pools of 1 to 3 threads.
#[test]
fn huge_data_is_bitwise_identical_across_thread_counts() {
    let d = dims(&[64, 3, 33, 17], Layout::Contiguous);
    let mut rng = Rng::new(3);
    let x: Vec<f64> = data::<f64>(&mut rng, d.len(), 0.0, 1.0)
        .iter()
        .map(|v| v * 1e300)
        .collect();
    let dy: Vec<f64> = data(&mut rng, d.len(), 0.0, 1.0);
    for name in ["parallel", "fused"] {
        let imp = registry::by_name(name).unwrap();
        let runs: Vec<Outputs<f64>> = (1..=3)
            .map(|t| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap();
                pool.install(|| run_all::<f64>(imp, d, &x, &dy))
            })
            .collect();
        for r in &runs[1..] {
            assert_eq!(bits(&r.y), bits(&runs[0].y), "{name}: y");
            assert_eq!(bits64(&r.var), bits64(&runs[0].var), "{name}: var");
            assert_eq!(bits(&r.dx), bits(&runs[0].dx), "{name}: dx");
        }
        assert!(finite(&runs[0].y) && finite(&runs[0].dx), "{name}");
    }
}
