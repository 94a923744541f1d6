//! Backward's sums of half-precision data in `f32` blocks about shifted
//! `dy` and `x` (`fused::simd::grad_narrow`): every level equals the scalar
//! twin bit for bit, a block loses at most `2⁻¹⁹` of its terms'
//! magnitudes, the shifted coefficients are the unshifted ones, the bound
//! sends the channels it cannot vouch for to `f64` lanes, and `fused`'s
//! `dx` stays within one ulp of `welford`'s on either side of it.

mod common;

use bn_impls::fused::coeffs::{self, NarrowGradBound};
use bn_impls::fused::simd::grad_narrow::NarrowGrad;
use bn_impls::fused::simd::runs::NARROW_SUM_BITS;
use bn_impls::fused::simd::{self, Lane, Level};
use bn_impls::fused::task_rule::{with_task_rule, TaskRule};
use bn_impls::{registry, Backward, Element, GradMode, Layout};
use common::{dims, run_all, Rng};

fn seeded(seed: f64) -> NarrowGrad {
    std::array::from_fn(|s| std::array::from_fn(|l| seed * (s * 16 + l) as f64))
}

/// The sums' bits of `runs` runs of `s` values at level `lv`, plain and
/// with `dy` masked by `x` as if it were the ReLU's output.
fn narrow_at<T: Lane>(lv: Level, [x, dy]: [&[T]; 2], s: usize, k: &[f64], d0: &[f32]) -> Vec<u64> {
    let mut out = Vec::new();
    for yo in [None, Some(x)] {
        let mut acc = vec![seeded(0.25); k.len()];
        simd::runs_grad_narrow(lv, (x, dy, yo), s, Some(s), (k, d0), &mut acc);
        out.extend(acc.iter().flatten().flatten().map(|v| v.to_bits()));
    }
    out
}

fn check_twin<T: Lane>(lv: Level) {
    // Every tail length, around a block (32 × 16 values) and several blocks.
    let lengths = (0..=70).chain(255..=273).chain([511, 512, 513, 1000, 4099]);
    for s in lengths.filter(|&s| s > 0) {
        // Offset 0: about half of `x` is ≤ 0, so the mask cuts half of `dy`.
        for (runs, offset) in [(1, 0.0), (3, 50.0)] {
            let mut rng = Rng::new(s as u64);
            let x: Vec<T> = common::data(&mut rng, runs * s, offset, 1.0);
            let dy: Vec<T> = common::data(&mut rng, runs * s, -3.0 * offset, 2.0);
            // Data values (exact `x − k_hi`), and shifts with an `f32`
            // remainder that must be subtracted too.
            let k0: Vec<f64> = (0..runs).map(|r| x[r * s].as_f64()).collect();
            let k1: Vec<f64> = k0.iter().map(|k| k + 1.0 / 3.0).collect();
            let d0: Vec<f32> = (0..runs).map(|r| dy[r * s].as_f64() as f32).collect();
            for k in [&k0, &k1] {
                assert_eq!(
                    narrow_at(lv, [&x, &dy], s, k, &d0),
                    narrow_at(Level::scalar(), [&x, &dy], s, k, &d0),
                    "{} {} s = {s}, {runs} runs",
                    lv.name(),
                    T::DTYPE
                );
            }
        }
    }
}

#[test]
fn narrow_grad_sums_equal_the_scalar_twin_at_every_level() {
    for lv in Level::available()
        .into_iter()
        .flat_map(|l| [l, l.streaming(true)])
    {
        check_twin::<half::bf16>(lv);
        check_twin::<half::f16>(lv);
    }
}

/// 60,000 equal values about shifts that are not data values, where every
/// `f32` addition of a block rounds the same way: each of the six sums
/// stays within `2⁻¹⁹` of the sum of its terms' magnitudes (the 19 bits of
/// `NARROW_SUM_BITS` the bound is built on; stated here, not read, so a
/// longer block fails). Unblocked `f32` sums drift by about `2⁻¹³` here.
#[test]
fn narrow_grad_sums_stay_within_their_block_bound() {
    fn check<T: Lane>(lv: Level) {
        let n = 60_000;
        let (xv, gv) = (1.0, 3.0);
        let x = vec![T::from_f64(xv); n];
        let dy = vec![T::from_f64(gv); n];
        for (k, d0) in [
            (1.0 / 3.0, 1.0f32),
            (-1e3 / 7.0, -0.5),
            (1.0 + 1.0 / 3072.0, 0.0),
        ] {
            let mut a = [[0.0; 16]; 6];
            let (k1, d1) = ([k], [d0]);
            let one = std::slice::from_mut(&mut a);
            simd::runs_grad_narrow(lv, (&x, &dy, None), n, None, (&k1, &d1), one);
            let got = a.map(|l| l.iter().sum::<f64>());
            let (e, d) = (gv - d0 as f64, xv - k);
            let nf = n as f64;
            let want = [
                nf * e,
                nf * e * d,
                nf * d,
                nf * e * e,
                nf * d * d,
                nf * e.max(0.0),
            ];
            for (s, (&g, w)) in got.iter().zip(want).enumerate() {
                let what = format!("{} {} k = {k}, d0 = {d0}: sum {s}", lv.name(), T::DTYPE);
                common::assert_within_blocks(g, w, w.abs(), what);
            }
        }
    }
    for lv in Level::available() {
        check::<half::bf16>(lv);
        check::<half::f16>(lv);
    }
}

/// `coeffs::grad_shifted` from sums about `dy − d0` gives the coefficients
/// `coeffs::grad` gives from the plain sums, both computed exactly enough
/// in `f64` from the same data (a shift far from `dy`'s mean included).
#[test]
fn shifted_grad_coefficients_are_the_unshifted_ones() {
    let mut rng = Rng::new(5);
    let m = 1000;
    let x: Vec<f64> = (0..m).map(|_| 4.0 + rng.unit()).collect();
    let dy: Vec<f64> = (0..m).map(|_| 0.3 + 0.5 * rng.unit()).collect();
    let k = x.iter().sum::<f64>() / m as f64 + 1e-3;
    let (inv, w) = (1.7, 0.8);
    let plain = [
        dy.iter().sum(),
        dy.iter().zip(&x).map(|(g, v)| g * (v - k)).sum(),
        x.iter().map(|v| v - k).sum(),
    ];
    let want = coeffs::grad(GradMode::Batch, m, inv, w, plain);
    for d0 in [0.25, -0.2, 7.5] {
        let shifted = [
            dy.iter().map(|g| g - d0).sum(),
            dy.iter().zip(&x).map(|(g, v)| (g - d0) * (v - k)).sum(),
            plain[2],
        ];
        let got = coeffs::grad_shifted(m, inv, w, d0, shifted);
        let pairs = [
            (got.kd, want.kd),
            (got.kx, want.kx),
            (got.kc, want.kc),
            (got.weight, want.weight),
            (got.bias, want.bias),
        ];
        for (i, (g, w)) in pairs.into_iter().enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "d0 = {d0}, field {i}: {g} vs {w}"
            );
        }
    }
}

/// The bound: within and past its growth, on constant and non-finite
/// channels, and with squares that leave `f32`'s normal range.
#[test]
fn narrow_grad_bound_sends_what_it_cannot_vouch_for_to_f64() {
    let [bf, f16] = [
        NarrowGradBound::of::<half::bf16>(NARROW_SUM_BITS),
        NarrowGradBound::of::<half::f16>(NARROW_SUM_BITS),
    ];
    assert_eq!((bf.growth, f16.growth), (4096.0, 64.0));
    let m = 1 << 16;
    let mf = m as f64;
    // `dy` of standard deviation 1 about a shift `z` deviations from its
    // mean (`g_e = 1 + z²`), `x` about its mean (`g_d = 1` at `inv = 1`).
    let sums = |z: f64| [z * mf, 0.0, 0.0, (1.0 + z * z) * mf, mf, mf / 2.0];
    for b in [bf, f16] {
        let z = (b.growth - 1.0).sqrt();
        assert!(b.holds(m, 1.0, sums(z * 0.99)), "{b:?} within");
        assert!(!b.holds(m, 1.0, sums(z * 1.01)), "{b:?} past");
        // `x` about a shift 10 deviations off (`g_d = 101`) leaves `f16`
        // (64) no room at all, `bf16` some.
        let mut far = sums(0.0);
        far[4] *= 101.0;
        assert_eq!(b.holds(m, 1.0, far), b.growth > 101.0, "{b:?} far x");
        for bad in [f64::NAN, f64::INFINITY] {
            for i in 0..6 {
                let mut s = sums(0.5);
                s[i] = bad;
                assert!(!b.holds(m, 1.0, s), "{b:?} {bad} at {i}");
            }
            assert!(!b.holds(m, bad, sums(0.5)), "{b:?} inv {bad}");
        }
        // Mean squares below the floor: products may be subnormal. With
        // `Σe = 0` but positive terms, `e` is not all 0: underflow.
        let tiny = sums(0.5).map(|v| v * 2f64.powi(-110));
        assert!(!b.holds(m, 1.0, tiny), "{b:?} tiny");
        let underflow = [0.0, 0.0, 0.0, 0.0, mf, 2f64.powi(-120)];
        assert!(!b.holds(m, 1.0, underflow), "{b:?} underflowing e");
        // A constant `dy` about its own value: every sum of `e` exactly 0.
        assert!(b.holds(m, 1.0, [0.0, 0.0, 0.0, 0.0, mf, 0.0]), "{b:?} zero");
    }
}

/// The weight of channel `c`.
fn w(c: usize) -> f64 {
    0.5 + c as f64 * 0.25
}

/// `dx`, weight and bias gradients of `name`'s batch-statistics backward at
/// the given statistics.
fn backward_of<T: Element>(
    name: &str,
    d: bn_impls::Dims,
    (x, dy): (&[T], &[T]),
    (mean, var): (&[f64], &[f64]),
) -> (Vec<T>, Vec<f64>, Vec<f64>) {
    let k = bn_impls::kernel::<T>(registry::by_name(name).unwrap()).unwrap();
    let w: Vec<f64> = (0..d.c).map(w).collect();
    let (mut dx, mut gw, mut gb) = (vec![T::zero(); d.len()], vec![0.0; d.c], vec![0.0; d.c]);
    k.backward(
        Backward::new(
            d.tensor(x).unwrap(),
            d.tensor(dy).unwrap(),
            d.tensor_mut(&mut dx).unwrap(),
            mean,
            var,
            Some(&w),
            1e-5,
            GradMode::Batch,
            &mut gw,
            &mut gb,
        )
        .unwrap(),
    );
    (dx, gw, gb)
}

/// Contiguous half data in runs of 1024 (sums in `f32` blocks), with
/// `welford`'s statistics given to both: `fused`'s `dx` within one ulp of
/// `T` (at the largest `|dx|`) of `welford`'s, the weight and bias
/// gradients within `2⁻¹⁶` of `Σ|dy − mean(dy)|`-scaled error, for
/// - spread data and `dy` with a large common offset (the shift `d0` takes
///   it out);
/// - a `dy` whose first values, where its shift is picked, sit 3000 above
///   the rest (`f16`: `g_e ≈ 1000`, past its bound of 64: summed again in
///   `f64`; `bf16`: within its 4096);
/// - a constant `dy` (`e = 0`: exact).
///
/// Under both schedules (channel tasks and sweeps).
#[test]
fn half_backward_keeps_its_accuracy_about_shifted_dy() {
    fn check<T: Element>() {
        let d = dims(&[64, 2, 32, 32], Layout::Contiguous);
        let mut rng = Rng::new(11);
        let x: Vec<T> = common::data(&mut rng, d.len(), 20.0, 1.0);
        let spread: Vec<T> = common::data(&mut rng, d.len(), 0.0, 1.0);
        // Spread `dy` resolves: 4 ulps of `T` at 1000 (`f16` 4, `bf16` 31).
        let offset: Vec<T> = common::data(&mut rng, d.len(), 1000.0, 4000.0 * T::DTYPE.epsilon());
        let mut prefix: Vec<T> = common::data(&mut rng, d.len(), 0.0, 1.0);
        for c in 0..d.c {
            for i in 0..64 {
                prefix[d.offset(0, c, i)] = T::from_f64(3000.0);
            }
        }
        let constant = vec![T::from_f64(0.75); d.len()];
        let welford = registry::by_name("welford").unwrap();
        let stats = run_all(welford, d, &x, &spread);
        let st = (&stats.mean[..], &stats.var[..]);
        let cases = [
            ("spread", &spread),
            ("offset", &offset),
            ("prefix", &prefix),
            ("constant", &constant),
        ];
        for (name, dy) in cases {
            let (wdx, wgw, wgb) = backward_of("welford", d, (&x, dy), st);
            // Per channel `Σ|dy − mean(dy)|` (what `f32` blocks lose a
            // part of) and `Σ|dy|` (what `f64` sums lose a part of).
            let scale: Vec<[f64; 2]> = (0..d.c)
                .map(|c| {
                    let v: Vec<f64> = d.channel_offsets(c).map(|i| dy[i].as_f64()).collect();
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let abs = |f: &dyn Fn(f64) -> f64| v.iter().map(|g| f(*g).abs()).sum::<f64>();
                    [abs(&|g| g - mean), abs(&|g| g)]
                })
                .collect();
            let kd = (0..d.c)
                .map(|c| w(c) / stats.var[c].sqrt())
                .fold(0.0, f64::max);
            let floor =
                2f64.powi(-12) * kd * dy.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
            for rule in [TaskRule::Shape, TaskRule::Never] {
                let (dx, gw, gb) = with_task_rule(rule, || backward_of("fused", d, (&x, dy), st));
                let what = format!("{} {name} {rule:?}", T::DTYPE);
                // One ulp at the largest `|dx|`, or where `dx` cancels to
                // about 0 (a constant `dy`) at 2⁻¹² of the largest `|w·inv·dy|`:
                // the `f32` lanes' `kd·dy + kc` leaves `2⁻²⁴` of it.
                let max = wdx.iter().fold(floor, |m, v| m.max(v.as_f64().abs()));
                for (i, (g, w)) in dx.iter().zip(&wdx).enumerate() {
                    let err = (g.as_f64() - w.as_f64()).abs();
                    assert!(
                        err <= T::DTYPE.epsilon() * max,
                        "{what}: dx[{i}] {g:?} vs {w:?}"
                    );
                }
                for c in 0..d.c {
                    let [dev, abs] = scale[c];
                    let tol = (2f64.powi(-16) * dev + 2f64.powi(-40) * abs)
                        * stats.var[c].sqrt().recip().max(1.0);
                    assert!(
                        (gw[c] - wgw[c]).abs() <= tol,
                        "{what}: gw[{c}] {} vs {}",
                        gw[c],
                        wgw[c]
                    );
                    let tol = 2f64.powi(-16) * dev + 2f64.powi(-40) * abs;
                    assert!(
                        (gb[c] - wgb[c]).abs() <= tol,
                        "{what}: gb[{c}] {} vs {}",
                        gb[c],
                        wgb[c]
                    );
                }
            }
        }
    }
    check::<half::bf16>();
    check::<half::f16>();
}
