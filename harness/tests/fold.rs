//! Folding an eval-mode batch norm into the preceding convolution / linear
//! layer (`bn_impls::fold`): each folded weight and bias against the exact
//! value (double-double), and the folded layer against conv-then-BN computed
//! in double-double, under the bounds stated in `impls/src/fold.rs` and
//! `docs/ACCURACY.md` (*Folding*), including ill-conditioned statistics.

use bn_harness::dd::DD;
use bn_impls::{fold_into_conv, fold_into_linear, DType, Element, Error, EvalBn, ForDtype};

/// The spacing of `T` at `x` (subnormal spacing below the normal range).
fn ulp<T: Element>(x: f64) -> f64 {
    let d = T::DTYPE;
    let e = if x == 0.0 {
        d.min_exponent()
    } else {
        (x.abs().log2().floor() as i32).max(d.min_exponent())
    };
    (e as f64 - (d.mantissa_bits() as f64 - 1.0)).exp2()
}

/// Allowed error of a folded weight, in ulps of `T` (module docs: 4 for
/// f64, 1 for the others).
fn weight_ulps<T: Element>() -> f64 {
    if T::DTYPE == DType::F64 {
        4.0
    } else {
        1.0
    }
}

const U: f64 = 1.1102230246251565e-16; // 2^-53

/// Deterministic values in [-1, 1).
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// One statistics set: (mean, var, gamma, beta, eps), affine or not.
struct Stats {
    name: &'static str,
    mean: Vec<f64>,
    var: Vec<f64>,
    gamma: Option<Vec<f64>>,
    beta: Option<Vec<f64>>,
    eps: f64,
}

impl Stats {
    fn bn(&self) -> EvalBn<'_> {
        EvalBn {
            running_mean: &self.mean,
            running_var: &self.var,
            weight: self.gamma.as_deref(),
            bias: self.beta.as_deref(),
            eps: self.eps,
        }
    }
    /// The exact scale `γ/√(var + ε)` in double-double.
    fn s(&self, o: usize) -> DD {
        let g = self.gamma.as_ref().map_or(1.0, |g| g[o]);
        (DD::from(self.var[o]) + self.eps).sqrt().recip() * g
    }
    fn beta(&self, o: usize) -> f64 {
        self.beta.as_ref().map_or(0.0, |b| b[o])
    }
}

fn stat_sets(c: usize) -> Vec<Stats> {
    let mut r = Rng(7);
    let mut v = |lo: f64, hi: f64| -> Vec<f64> {
        (0..c)
            .map(|_| lo + (hi - lo) * (r.unit() + 1.0) / 2.0)
            .collect()
    };
    let (m, var, g, b) = (v(-1.0, 1.0), v(0.5, 1.5), v(-2.0, 2.0), v(-1.0, 1.0));
    let set = |name, mean: Vec<f64>, var: Vec<f64>, eps| Stats {
        name,
        mean,
        var,
        gamma: Some(g.clone()),
        beta: Some(b.clone()),
        eps,
    };
    let big = |e: f64| -> Vec<f64> { m.iter().map(|x| e * (1.0 + 0.1 * x)).collect() };
    vec![
        set("plain", m.clone(), var.clone(), 1e-5),
        set("var 1e-30, eps 1e-5", m.clone(), vec![1e-30; c], 1e-5),
        set("var 0", m.clone(), vec![0.0; c], 1e-5),
        set(
            "eps dominates (0.5 vs 1e-12)",
            m.clone(),
            vec![1e-12; c],
            0.5,
        ),
        set("mean 1e4", big(1e4), var.clone(), 1e-5),
        set("mean 1e6, var 1e-30", big(1e6), vec![1e-30; c], 1e-5),
        set("mean 1e8", big(1e8), var.clone(), 1e-5),
        set("var 1e8", m.clone(), vec![1e8; c], 1e-5),
        Stats {
            name: "affine off",
            mean: m.clone(),
            var: var.clone(),
            gamma: None,
            beta: None,
            eps: 1e-3,
        },
    ]
}

/// The folded parameters, or `None` when folding refused a bias that
/// overflows `T` — checked to be right: the exact bias is beyond `T`'s range
/// (f16 cannot hold `mean·s` for means of 1e6 and more).
fn folded_or_overflow<T: Element>(
    got: bn_impls::Result<bn_impls::Folded<T>>,
    st: &Stats,
    _with_bias: bool,
) -> Option<bn_impls::Folded<T>> {
    match got {
        Ok(f) => Some(f),
        Err(Error::FoldOverflow { what, value, .. }) => {
            assert_eq!(what, "bias");
            assert!(
                value.abs() > T::DTYPE.max_finite(),
                "{value} fits {}",
                T::DTYPE
            );
            assert!(st.mean.iter().any(|m| m.abs() >= 1e4), "{}", st.name);
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Per-element bounds of `w'` and `b'` for one layer (`shape[0] = C_out`).
fn elements_within_bounds<T: Element>(shape: &[usize], conv: bool, with_bias: bool) {
    let c = shape[0];
    let len: usize = shape.iter().product();
    let mut r = Rng(3);
    let w: Vec<T> = (0..len).map(|_| T::from_f64(0.5 * r.unit())).collect();
    let b: Vec<T> = (0..c).map(|_| T::from_f64(r.unit())).collect();
    let bias = with_bias.then_some(&b[..]);
    for st in stat_sets(c) {
        let got = if conv {
            fold_into_conv(&w, shape, bias, &st.bn())
        } else {
            fold_into_linear(&w, shape, bias, &st.bn())
        };
        let Some(f) = folded_or_overflow::<T>(got, &st, bias.is_some()) else {
            continue;
        };
        let what = format!("{} {shape:?} bias={with_bias} {}", T::DTYPE, st.name);
        for (i, (&wi, fi)) in w.iter().zip(&f.weight).enumerate() {
            let exact = (st.s(i / (len / c)) * wi.as_f64()).to_f64();
            let err = (fi.as_f64() - exact).abs();
            let bound = weight_ulps::<T>() * ulp::<T>(exact);
            assert!(
                err <= bound,
                "w'[{i}] {} vs {exact:e}: {} ulps, {what}",
                fi.as_f64(),
                err / ulp::<T>(exact)
            );
        }
        for o in 0..c {
            let bo = bias.map_or(0.0, |b| b[o].as_f64());
            let d = DD::from(bo) - st.mean[o];
            let exact = (d * st.s(o) + st.beta(o)).to_f64();
            let scale = (d * st.s(o)).to_f64().abs() + st.beta(o).abs();
            let bound = 4.5 * U * scale + ulp::<T>(exact);
            let err = (f.bias[o].as_f64() - exact).abs();
            assert!(
                err <= bound,
                "b'[{o}] {} vs {exact:e}, {what}",
                f.bias[o].as_f64()
            );
        }
    }
}

#[test]
fn folded_weights_and_biases_are_within_their_bounds() {
    for (shape, conv) in [
        (&[4, 3, 3, 3][..], true),
        (&[6, 2, 5][..], true),
        (&[3, 2, 2, 2, 2][..], true),
        (&[5, 7][..], false),
    ] {
        for with_bias in [true, false] {
            struct Each<'a>(&'a [usize], bool, bool);
            impl ForDtype for Each<'_> {
                type Output = ();
                fn call<T: Element>(self) {
                    elements_within_bounds::<T>(self.0, self.1, self.2)
                }
            }
            for d in DType::ALL {
                d.dispatch(Each(shape, conv, with_bias));
            }
        }
    }
}

/// Conv2d (no padding, stride 1, `groups`) of one image, in double-double:
/// `out[o, i, j] = b[o] + Σ_{c, p, q} x[g·cin + c, i + p, j + q]·w[o, c, p, q]`.
fn conv2d(
    x: &[f64],
    (ci, h, wd): (usize, usize, usize),
    w: &[f64],
    (co, cg, k): (usize, usize, usize),
    bias: &dyn Fn(usize) -> DD,
) -> Vec<(DD, f64)> {
    let groups = ci / cg;
    let (oh, ow) = (h - k + 1, wd - k + 1);
    let mut out = Vec::new();
    for o in 0..co {
        let g = o / (co / groups);
        for i in 0..oh {
            for j in 0..ow {
                let (mut acc, mut abs) = (bias(o), 0.0);
                for c in 0..cg {
                    for p in 0..k {
                        for q in 0..k {
                            let xv = x[((g * cg + c) * h + i + p) * wd + j + q];
                            let wv = w[((o * cg + c) * k + p) * k + q];
                            acc = acc + DD::prod2(xv, wv);
                            abs += (xv * wv).abs();
                        }
                    }
                }
                out.push((acc, abs));
            }
        }
    }
    out
}

/// The folded conv against conv-then-BN in double-double:
/// `|y_folded − y_exact| ≤ ε_w·Σ|x·w·s| + ε_b` with `ε_w` the weight bound
/// (relative) and `ε_b` the bias bound — the error of the composed layer is
/// the weight bound times `cond = Σ|x·w·s| / |y|`.
fn composed_conv<T: Element>(groups: usize) {
    let (ci, h, wd, co, k) = (4, 6, 5, 8, 3);
    let cg = ci / groups;
    let mut r = Rng(11);
    let x: Vec<f64> = (0..ci * h * wd)
        .map(|_| T::from_f64(2.0 * r.unit()).as_f64())
        .collect();
    let w: Vec<T> = (0..co * cg * k * k)
        .map(|_| T::from_f64(0.5 * r.unit()))
        .collect();
    let b: Vec<T> = (0..co).map(|_| T::from_f64(r.unit())).collect();
    let wf: Vec<f64> = w.iter().map(|v| v.as_f64()).collect();
    let rel_w = weight_ulps::<T>() * (1.0 - T::DTYPE.mantissa_bits() as f64 + 1.0).exp2();
    for st in stat_sets(co) {
        let got = fold_into_conv(&w, &[co, cg, k, k], Some(&b), &st.bn());
        let Some(f) = folded_or_overflow::<T>(got, &st, true) else {
            continue;
        };
        let plain = conv2d(&x, (ci, h, wd), &wf, (co, cg, k), &|o| {
            DD::from(b[o].as_f64())
        });
        let folded_w: Vec<f64> = f.weight.iter().map(|v| v.as_f64()).collect();
        let folded = conv2d(&x, (ci, h, wd), &folded_w, (co, cg, k), &|o| {
            DD::from(f.bias[o].as_f64())
        });
        let per_out = plain.len() / co;
        for (idx, ((z, zabs), (yf, _))) in plain.iter().zip(&folded).enumerate() {
            let o = idx / per_out;
            let exact = ((*z - st.mean[o]) * st.s(o) + st.beta(o)).to_f64();
            let s = st.s(o).to_f64().abs();
            let bo = b[o].as_f64();
            let eb = 4.5 * U * ((bo - st.mean[o]).abs() * s + st.beta(o).abs())
                + ulp::<T>(f.bias[o].as_f64());
            let bound = rel_w * zabs * s + eb + 1e-300;
            let err = (yf.to_f64() - exact).abs();
            assert!(
                err <= bound,
                "y[{idx}] {} vs {exact:e} (bound {bound:e}), {} groups={groups} {}",
                yf.to_f64(),
                T::DTYPE,
                st.name
            );
        }
    }
}

#[test]
fn folded_conv_matches_conv_then_bn_within_the_bound() {
    for groups in [1, 2, 4] {
        struct Each(usize);
        impl ForDtype for Each {
            type Output = ();
            fn call<T: Element>(self) {
                composed_conv::<T>(self.0)
            }
        }
        for d in DType::ALL {
            d.dispatch(Each(groups));
        }
    }
}

#[test]
fn folded_linear_matches_linear_then_bn() {
    let (co, ci) = (5, 7);
    let mut r = Rng(5);
    let x: Vec<f64> = (0..ci).map(|_| r.unit() as f32 as f64).collect();
    let w: Vec<f32> = (0..co * ci).map(|_| r.unit() as f32).collect();
    for st in stat_sets(co) {
        let f = fold_into_linear(&w, &[co, ci], None, &st.bn()).unwrap();
        for o in 0..co {
            let (mut z, mut zf, mut abs) = (DD::ZERO, DD::from(f.bias[o] as f64), 0.0);
            for i in 0..ci {
                z = z + DD::prod2(x[i], w[o * ci + i] as f64);
                zf = zf + DD::prod2(x[i], f.weight[o * ci + i] as f64);
                abs += (x[i] * w[o * ci + i] as f64).abs();
            }
            let exact = ((z - st.mean[o]) * st.s(o) + st.beta(o)).to_f64();
            let s = st.s(o).to_f64().abs();
            let eb =
                4.5 * U * (st.mean[o].abs() * s + st.beta(o).abs()) + ulp::<f32>(f.bias[o] as f64);
            let bound = 2f64.powi(-23) * abs * s + eb;
            assert!(
                (zf.to_f64() - exact).abs() <= bound,
                "out[{o}], {}",
                st.name
            );
        }
    }
}

#[test]
fn bad_shapes_and_statistics_are_typed_errors() {
    let (mean, var, g) = (vec![0.0; 3], vec![1e-6; 3], vec![1.0; 3]);
    let bn = EvalBn {
        running_mean: &mean,
        running_var: &var,
        weight: Some(&g),
        bias: None,
        eps: 1e-5,
    };
    let w = vec![0.5f32; 3 * 2 * 3 * 3];
    // C_out against the batch norm's channels.
    let e = fold_into_conv(&w, &[2, 3, 3, 3], None, &bn).unwrap_err();
    assert!(
        matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("3 channels"),
        "{e}"
    );
    // Rank, length, bias length.
    assert!(matches!(
        fold_into_conv(&w, &[3, 18], None, &bn),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        fold_into_linear(&w, &[3, 2, 3, 3], None, &bn),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        fold_into_conv(&w, &[3, 2, 3, 2], None, &bn),
        Err(Error::LengthMismatch { .. })
    ));
    let b = [0.0f32; 2];
    assert!(matches!(
        fold_into_conv(&w, &[3, 2, 3, 3], Some(&b), &bn),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        fold_into_conv(&w, &[3, 0, 3, 3], None, &bn),
        Err(Error::Empty { .. })
    ));
    // Statistics: negative or NaN variance, infinite mean, bad eps, gamma length.
    let bad_var = [1.0, -1e-3, 1.0];
    let e = fold_into_conv(
        &w,
        &[3, 2, 3, 3],
        None,
        &EvalBn {
            running_var: &bad_var,
            ..bn
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidStatistic { index: 1, .. }), "{e}");
    let nan_var = [1.0, 1.0, f64::NAN];
    assert!(matches!(
        fold_into_conv(
            &w,
            &[3, 2, 3, 3],
            None,
            &EvalBn {
                running_var: &nan_var,
                ..bn
            }
        ),
        Err(Error::InvalidStatistic { index: 2, .. })
    ));
    let inf_mean = [f64::INFINITY, 0.0, 0.0];
    assert!(fold_into_conv(
        &w,
        &[3, 2, 3, 3],
        None,
        &EvalBn {
            running_mean: &inf_mean,
            ..bn
        }
    )
    .is_err());
    // Eval's eps rule (PyTorch: eps >= 0), and a folded layer needs a finite one.
    assert!(matches!(
        fold_into_conv(&w, &[3, 2, 3, 3], None, &EvalBn { eps: -1e-5, ..bn }),
        Err(Error::InvalidEps { .. })
    ));
    assert!(matches!(
        fold_into_conv(
            &w,
            &[3, 2, 3, 3],
            None,
            &EvalBn {
                eps: f64::NAN,
                ..bn
            }
        ),
        Err(Error::InvalidStatistic { .. })
    ));
    let g2 = [1.0; 2];
    assert!(matches!(
        fold_into_conv(
            &w,
            &[3, 2, 3, 3],
            None,
            &EvalBn {
                weight: Some(&g2),
                ..bn
            }
        ),
        Err(Error::LengthMismatch { .. })
    ));
    // A folded weight that overflows f16 (65504): 100 · 10/√1e-5 ≈ 3.2e5.
    struct Overflow<'a>(EvalBn<'a>);
    impl ForDtype for Overflow<'_> {
        type Output = Error;
        fn call<T: Element>(self) -> Error {
            let wh = vec![T::from_f64(100.0); 3 * 4];
            fold_into_linear(&wh, &[3, 4], None, &self.0).unwrap_err()
        }
    }
    let g10 = [10.0; 3];
    let e = DType::F16.dispatch(Overflow(EvalBn {
        weight: Some(&g10),
        ..bn
    }));
    assert!(
        matches!(e, Error::FoldOverflow { .. }) && e.to_string().contains("f16"),
        "{e}"
    );
}
