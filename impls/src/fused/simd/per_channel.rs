//! Per-channel arithmetic written as plain loops over arrays, compiled at
//! each level's width (the level modules wrap these bodies in their target
//! features). One channel at a time, on `Channel` and `Grad` structs, in the
//! baseline instruction set, the bookkeeping of 1024 channels took about
//! 13 µs of a 107 µs (N, C) 256×1024 `f32` train call (timers between the
//! phases, 2-core Xeon VM); with these bodies and the sums kept as one
//! array per sum, train 256×1024 measured 0.76× and 32×1024 0.62×, backward
//! 0.83× and 0.73× (`bnh bench`, 1 thread, builds alternated, 3 rounds).

use crate::fused::coeffs;
use crate::problem::GradMode;

/// Train's one-read statistics of `C` channels: each channel's shift `K`
/// and the shifted sums `Σd`, `Σd²` (`d = x − K`) over `n` values, `eps`,
/// and the weight and bias (ones and zeros without them), `C` values each.
#[derive(Clone, Copy)]
pub struct TrainSums<'a> {
    /// Values per channel.
    pub n: usize,
    /// Largest growth `Σd²/M2` kept from one read (`coeffs::max_growth`).
    pub growth: f64,
    /// The `ε` of `√(var + ε)`.
    pub eps: f64,
    /// Each channel's shift `K`.
    pub shift: &'a [f64],
    /// `[Σd, Σd²]`, one array per sum.
    pub sums: [&'a [f64]; 2],
    /// The weight (ones without one).
    pub weight: &'a [f64],
    /// The bias (zeros without one).
    pub bias: &'a [f64],
}

/// `coeffs::channel`, `coeffs::norm` and the square root and division of
/// `problem::inv_std` for every channel, with their bits (IEEE `+ − × ÷ √`
/// are exact-rounded at any width; no operation is fused): into
/// `out = [a, c, sd, mean, var]`, `y = (x − K)·a + c`, `sd = √(var + ε)`,
/// the batch mean and biased variance. `false` when some channel's one-read
/// `M2` cancelled beyond `growth` (it needs a second pass; the outputs are
/// then to be recomputed).
#[inline(always)]
pub fn train_stats_body(s: &TrainSums<'_>, out: [&mut [f64]; 5]) -> bool {
    let len = s.shift.len();
    let (k, s1, s2) = (&s.shift[..len], &s.sums[0][..len], &s.sums[1][..len]);
    let (w, b) = (&s.weight[..len], &s.bias[..len]);
    let [a, c, sd, mean, var] = out;
    let (a, c, sd) = (&mut a[..len], &mut c[..len], &mut sd[..len]);
    let (mean, var) = (&mut mean[..len], &mut var[..len]);
    let n = s.n as f64;
    let mut redo = false;
    for i in 0..len {
        let st = coeffs::accept(s.n, k[i], [s1[i], s2[i]]);
        redo |= coeffs::cancelled([s1[i], s2[i]], st, s.growth);
        // `norm_coeffs`: the variance, `std_inv_body`, `coeffs::norm`.
        let v = st.m2 / n;
        let r = (v + s.eps).sqrt();
        [a[i], c[i]] = coeffs::norm(st.mean, 1.0 / r, w[i], b[i]);
        sd[i] = r;
        // `write_stats`.
        mean[i] = st.shift + st.mean;
        var[i] = v;
    }
    !redo
}

/// Backward's per-channel inputs: the three sums `Σdy`, `Σdy·(x − K)`,
/// `Σ(x − K)` over `m` values per channel, `inv = 1/√(var + ε)` and the
/// weight (ones without one), `C` values each.
#[derive(Clone, Copy)]
pub struct GradSums<'a> {
    /// Batch statistics, or fixed (given) ones.
    pub mode: GradMode,
    /// Values per channel.
    pub m: usize,
    /// `1/√(var + ε)` per channel.
    pub inv: &'a [f64],
    /// The weight (ones without one).
    pub weight: &'a [f64],
    /// `[Σdy, Σdy·(x − K), Σ(x − K)]`, one array per sum.
    pub sums: [&'a [f64]; 3],
}

/// `coeffs::grad` for every channel, into `out = [kd, kx, kc, grad_weight,
/// grad_bias]` (`dx = kd·dy + kx·(x − K) + kc`).
#[inline(always)]
pub fn grad_body(s: &GradSums<'_>, out: [&mut [f64]; 5]) {
    let len = s.inv.len();
    let (inv, w) = (&s.inv[..len], &s.weight[..len]);
    let [s0, s1, s2] = s.sums.map(|v| &v[..len]);
    let [kd, kx, kc, gw, gb] = out.map(|v| &mut v[..len]);
    for i in 0..len {
        let g = coeffs::grad(s.mode, s.m, inv[i], w[i], [s0[i], s1[i], s2[i]]);
        (kd[i], kx[i], kc[i], gw[i], gb[i]) = (g.kd, g.kx, g.kc, g.weight, g.bias);
    }
}
