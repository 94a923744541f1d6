//! `fused`'s per-channel arithmetic: statistics from shifted sums, and the
//! coefficients of the affine maps the element-wise passes apply.
//!
//! Batch normalization (Ioffe & Szegedy 2015, Algorithm 1):
//! `y = (x − μ)/√(σ² + ε)·w + b`, with μ, σ² the batch mean and biased
//! variance; everything here is per channel and in `f64`.

use crate::element::Element;
use crate::problem::GradMode;

/// Largest growth `Σd²/M2` for which the one-read `M2 = Σd² − (Σd)²/n` is
/// kept, for sums of `sum_bits` bits of relative precision: it loses
/// `log2(Σd²/M2)` bits to cancellation, and must keep 16 bits beyond the
/// data's precision `p` — `2^(sum_bits − p − 16)`, at least 2. With `f64`
/// sums (53 bits) that is 2¹³ for `f32` and 2 for `f64`; half-precision
/// train statistics in `f32` blocks (contiguous runs of 256 values,
/// channels-last channels of 1024)
/// ([`super::simd::runs::NARROW_SUM_BITS`], 19 bits), where it is 2 as
/// well: a channel whose shift lies more than one standard deviation from
/// its mean takes the second pass, and one read keeps at least 18 bits
/// (`bf16`: 10 beyond its 8, `f16`: 7 beyond its 11). Derived from the
/// precisions, so a new dtype gets its own threshold.
pub fn max_growth<T: Element>(sum_bits: u32) -> f64 {
    let bits = sum_bits as i32 - T::DTYPE.mantissa_bits() as i32 - 16;
    (bits.max(1) as f64).exp2()
}

/// One channel's statistics relative to its shift `K`: `x̄ − K` and `M2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Channel {
    /// The shift the sums were taken about.
    pub shift: f64,
    /// Mean minus the shift.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

/// Statistics from the shifted sums `[Σd, Σd²]`, `d = x − K`, over `n`
/// values (Chan, Golub & LeVeque 1983, shifted data):
/// `x̄ − K = Σd/n`, `M2 = Σd² − Σd·(Σd/n)`. When that cancels by more than
/// `growth` (`Σd² > growth·M2`; also when rounding made `M2 < 0`), returns
/// `Err(K')` with `K' = K + Σd/n`, the shift for a second pass: about the
/// one-read mean the same formula is the corrected two-pass algorithm
/// (Chan, Golub & LeVeque, eq. 1.7). NaN sums never ask for a second pass.
pub fn channel(n: usize, shift: f64, sums: [f64; 2], growth: f64) -> Result<Channel, f64> {
    let c = accept(n, shift, sums);
    if cancelled(sums, c, growth) {
        Err(shift + c.mean)
    } else {
        Ok(c)
    }
}

/// [`channel`]'s test: whether the one-read `c` (from `sums`) lost more
/// than `growth` to cancellation (`Σd² > growth·M2`; never for NaN).
#[inline(always)]
pub fn cancelled(sums: [f64; 2], c: Channel, growth: f64) -> bool {
    sums[1] > growth * c.m2
}

/// [`channel`] without the cancellation test (the second pass), `M2`
/// clamped at 0 (NaN is kept).
#[inline(always)]
pub fn accept(n: usize, shift: f64, [s1, s2]: [f64; 2]) -> Channel {
    let mean = s1 / n as f64;
    let m2 = s2 - s1 * mean;
    Channel {
        shift,
        mean,
        m2: if m2 < 0.0 { 0.0 } else { m2 },
    }
}

/// `[a, c]` of `y = (x − K)·a + c` for a channel of mean `K + mean` and
/// `inv = 1/√(var + ε)` ([`crate::problem::inv_std`]): `a = w·inv`, `c = b − mean·a`.
#[inline(always)]
pub fn norm(mean: f64, inv: f64, w: f64, b: f64) -> [f64; 2] {
    let a = w * inv;
    [a, b - mean * a]
}

/// Whether the normalize pass may fold the shift into the bias,
/// `y = x·a + (c − K·a)`, saving one coefficient stream. The fold's `f64`
/// error is about `|K·a|·2⁻⁵¹`, i.e. `(|K|/σ)·2⁻⁵¹` at the scale of `y`;
/// for data of `p`-bit precision the condition number `|K|/σ` of
/// non-constant data is below about `2^p`, so the error stays under the
/// output's rounding `2^−p` when `2p ≤ 51` (`f32`: yes; `f64`: no). A
/// constant channel (`x = K`) cancels exactly either way.
pub fn fold_shift<T: Element>() -> bool {
    2 * T::DTYPE.mantissa_bits() <= 51
}

/// The largest `|K|/σ` (shift over standard deviation, every channel) for
/// which channels-last eval folds the shift ([`fold_shift`]); `None`: it
/// never does. `f32` data (`f64` lanes): `2^24`, the fold's error then
/// below `2⁻²⁷·|w|`. Half data compute in `f32` lanes: the fold's three
/// `f32` roundings (of `c − K·a`, of `x·a` and of the sum) err by about
/// `(|K|/σ)·2⁻²²·|w|`, so `2^(18 − p)` (`bf16` `2^10`, `f16` `2^7`) keeps it
/// below a sixteenth of the output's half ulp `2^−p·|w|` at the scale of
/// `w` — the terms' roundings PyTorch's `α`/`β` form has at any `|K|/σ`. A
/// constant channel no longer cancels exactly in `f32` lanes: its `y = b`
/// is off by at most that error.
pub fn fold_ratio<T: Element>() -> Option<f64> {
    let p = T::DTYPE.mantissa_bits() as i32;
    if p < f32::MANTISSA_DIGITS as i32 {
        Some(2f64.powi(18 - p))
    } else if fold_shift::<T>() {
        Some(2f64.powi(p))
    } else {
        None
    }
}

/// Whether every channel's shift `k` is within [`fold_ratio`] standard
/// deviations `sd` of 0 (`|k| ≤ r·sd`), so the normalize pass may fold the
/// shift into its constant term: channels-last eval's `y = x·a + (c − k·a)`.
pub fn folds<T: Element>(k: &[f64], sd: &[f64]) -> bool {
    fold_ratio::<T>().is_some_and(|r| within(k, sd, r))
}

/// The largest `|K|/σ` for which backward folds the shift into `dx`'s
/// constant ([`folds_dx`]), on top of [`fold_ratio`]. Unlike `y`, `dx` can
/// be far smaller than its terms: where `dy` is nearly affine in `x` —
/// always at N·S = 2, or `dy = y`, the gradient of `½‖y‖²` — exact `dx` is
/// about `ε/σ²` of `kd·dy`. The fold's error `(|K|/σ)·u·|kd|·sd(dy)` (`u`
/// the lanes' rounding; `|kx|·σ ≤ |kd|·sd(dy)`, the covariance bound) is
/// then measured against that small `dx`, where the unfolded form errs by
/// about `2u·|kd|·sd(dy)`. Sixteen keeps the fold within 8× of the unfolded
/// error. [`fold_ratio`]'s `2^24` alone cost `f32` `dx` 26–96 ulps at N·S =
/// 2 and `|K|/σ` = 10⁵–10⁶ (`bnh accuracy`, 2026-12-04; unfolded: ≤ 0.5).
pub const DX_FOLD_RATIO: f64 = 16.0;

/// Whether every channel's shift `k` is within `min(`[`fold_ratio`]`,`
/// [`DX_FOLD_RATIO`]`)` standard deviations `sd` of 0, so the backward
/// `dx` pass may fold it: `dx = kd·dy + kx·x + (kc − kx·k)`.
pub fn folds_dx<T: Element>(k: &[f64], sd: &[f64]) -> bool {
    fold_ratio::<T>().is_some_and(|r| within(k, sd, r.min(DX_FOLD_RATIO)))
}

/// `|k| ≤ r·sd` for every channel (false for a NaN `k` or `sd`).
fn within(k: &[f64], sd: &[f64], r: f64) -> bool {
    k.iter().zip(sd).all(|(k, s)| k.abs() <= r * s)
}

/// One channel's backward coefficients:
/// `dx = kd·dy + kx·(x − K) + kc`, and the parameter gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grad {
    pub kd: f64,
    pub kx: f64,
    pub kc: f64,
    /// `Σ dy·x̂`.
    pub weight: f64,
    /// `Σ dy`.
    pub bias: f64,
}

/// Backward coefficients from `[Σdy, Σdy·(x − K), Σ(x − K)]` over `m`
/// values, with `K` the given (`f64`) mean and `inv = 1/√(var + ε)`
/// ([`crate::problem::inv_std`]) of the given variance.
///
/// With `x̂ = (x − μ)·inv`, batch statistics give (Ioffe & Szegedy 2015, §3)
/// `dx = w·inv/m·(m·dy − Σdy − x̂·Σ(dy·x̂))`. `K` is the batch mean rounded
/// to `f64`; its rounding error `δ = μ − K = Σ(x − K)/m` (each `x − K`
/// exact by Sterbenz for clustered data) is recovered from the third sum,
/// so `Σdy·(x − μ) = Σdy·(x − K) − δ·Σdy` and `x − μ = (x − K) − δ`.
/// With fixed statistics the mean is exact: `dx = w·inv·dy`, no `x`.
#[inline(always)]
pub fn grad(mode: GradMode, m: usize, inv: f64, w: f64, [s, t, u]: [f64; 3]) -> Grad {
    grad_sums(mode, m, inv, w, [s, s, t, u])
}

/// [`grad`] from sums about a shifted `dy` as well (batch statistics):
/// `[Σe, Σe·(x − K), Σ(x − K)]` with `e = dy − d0`, `d0` a value of the
/// channel's `dy` ([`super::simd::grad_narrow`]). `Σdy = m·d0 + Σe`, and
/// the covariance needs no term with `d0`:
/// `Σdy·(x − μ) = Σe·(x − K) − δ·Σe + d0·(Σ(x − K) − m·δ)`, whose last
/// term is 0 by `δ = Σ(x − K)/m`.
#[inline(always)]
pub fn grad_shifted(m: usize, inv: f64, w: f64, d0: f64, [e, t, u]: [f64; 3]) -> Grad {
    let s = d0.mul_add(m as f64, e);
    grad_sums(GradMode::Batch, m, inv, w, [s, e, t, u])
}

/// [`grad`]'s arithmetic from `[Σdy, Σe, Σe·(x − K), Σ(x − K)]`, `e = dy −
/// d0` (`Σe = Σdy` without a shift; a shift only with batch statistics).
#[inline(always)]
fn grad_sums(mode: GradMode, m: usize, inv: f64, w: f64, [s, e, t, u]: [f64; 4]) -> Grad {
    let kd = w * inv;
    let (kx, kc, t) = match mode {
        GradMode::Batch => {
            let rm = 1.0 / m as f64;
            let delta = u * rm;
            let t = t - delta * e;
            let kx = -kd * inv * inv * t * rm;
            (kx, -kd * s * rm - kx * delta, t)
        }
        GradMode::Fixed => (0.0, 0.0, t),
    };
    Grad {
        kd,
        kx,
        kc,
        weight: t * inv,
        bias: s,
    }
}

/// When backward keeps its sums about shifted `dy` and `x` from `f32`
/// blocks ([`super::simd::grad_narrow`]) for one channel: the largest
/// product of the growths `g_e·g_d` (`g_e = Σe²/M2(dy)`,
/// `g_d = Σd²·inv²/m`) it vouches for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NarrowGradBound {
    pub growth: f64,
}

impl NarrowGradBound {
    /// The bound for data `T` in blocks of `sum_bits` bits. The blocks'
    /// error moves `dx` by about `2^(1 − sum_bits)·√(g_e·g_d)·(1 + |x̂|)` at
    /// the scale of `kd·sd(dy)` (the covariance's error
    /// `2^−sum_bits·Σ|e·d| ≤ 2^−sum_bits·√(Σe²·Σd²)`, twice with the
    /// product of the means, times `kd·inv²·|x − μ|/m`; the means'
    /// `2^−sum_bits` relative to `rms(e)`, `rms(d)` add the `1`). Keeping
    /// it 4 bits below the output's precision `2^−p` gives
    /// `√(g_e·g_d) ≤ 2^(sum_bits − 5 − p)`: `g_e·g_d ≤ 2^12` for `bf16`,
    /// `2^6` for `f16` with the 19 bits of `f32` blocks. About a `dy` value
    /// of the channel, `g_e = 1 + z²` for a shift `z` standard deviations
    /// from `dy`'s mean: `f16` keeps the blocks to `|z| ≤ 7.9`.
    pub fn of<T: Element>(sum_bits: u32) -> Self {
        let bits = sum_bits as i32 - 5 - T::DTYPE.mantissa_bits() as i32;
        NarrowGradBound {
            growth: ((2 * bits.max(0)) as f64).exp2(),
        }
    }

    /// Whether one channel's `f32`-block sums `[Σe, Σe·d, Σd, Σe², Σd²,
    /// Σmax(e, 0)]` over `m` values are within the bound for
    /// [`grad_shifted`]: every `e` exactly 0 (`Σe` and `Σmax(e, 0)` both 0:
    /// a constant `dy` about its own value, whose sums of `e` are exact),
    /// or `Σe²·Σd²·inv² ≤ growth·M2(e)·m` with `M2(e) = Σe² − (Σe)²/m`.
    /// False where a mean square is below `2⁻¹⁰⁰` (products of such
    /// values leave `f32`'s normal range, and squares may underflow), and
    /// where anything is NaN or infinite (overflow in `f32`, or such data):
    /// those channels are summed again in `f64` lanes.
    #[inline(always)]
    pub fn holds(&self, m: usize, inv: f64, sums: [f64; 6]) -> bool {
        let [e, _, _, ee, dd, pos] = sums;
        if !sums.iter().all(|v| v.is_finite()) || !inv.is_finite() {
            return false;
        }
        if e == 0.0 && pos == 0.0 {
            return true;
        }
        let mf = m as f64;
        let m2 = ee - e * (e / mf);
        let floor = mf * 2f64.powi(-100);
        let lhs = ee * dd * inv * inv;
        ee >= floor && dd >= floor && lhs.is_finite() && lhs <= self.growth * m2 * mf
    }
}
