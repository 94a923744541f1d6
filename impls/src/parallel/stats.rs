//! `parallel`'s statistics: fixed groups of each channel, each with the
//! corrected two-pass algorithm (or one read when the shifted sums do not
//! cancel), merged in group order with Chan, Golub & LeVeque's formula.

use super::avx512::X86Sums as Sums;
use super::lanes::{self, LaneSums, RowScratch, LANES};
use super::plan::{self, RowPlan};
use crate::element::Element;
use crate::engine::plan::map_ordered;
use crate::formulas::NormCoeffs;
use crate::layout::Dims;
use crate::moments::Moments;
use crate::problem::Affine;

/// Per-channel shifts `K_c`: the channel's first value.
pub(super) fn shifts<T: Element>(x: &[T], dims: Dims) -> Vec<f64> {
    (0..dims.c)
        .map(|c| x[dims.offset(0, c, 0)].as_f64())
        .collect()
}

/// Moments of group `g` of channels `c0..c0 + cs` (contiguous), relative to
/// the shifts: the corrected two-pass algorithm over the group's run pieces
/// (the group, ≤ 256 KiB of `f32` per channel, is re-read from L2 by the
/// second pass). Memory is visited piece by piece and, within a piece,
/// channel by channel — i.e. in address order when runs are short — while
/// each channel's lanes still see its pieces in order, so the result does
/// not depend on how channels are batched.
fn group_moments<T: Element>(
    x: &[T],
    dims: Dims,
    c0: usize,
    cs: usize,
    g: usize,
    shift: &[f64],
) -> Vec<Moments> {
    let pieces = || plan::group_pieces(dims, c0, g);
    let at = |r: &std::ops::Range<usize>, i: usize| &x[r.start + i * dims.s..r.end + i * dims.s];
    let n: usize = pieces().map(|r| r.len()).sum();
    let nf = n as f64;
    // Pass 1: Σd and Σd² (d = x − K), in f64. The one-pass
    // M2 = Σd² − (Σd)²/n loses log2(Σd²/M2) bits to cancellation. For f64
    // data it is used when that is at most 1 bit (as accurate as the
    // corrected two-pass result); for f32 data when it is at most 16 bits
    // (f64 then still carries 2⁻³⁷ relative, far below f32's 2⁻²⁴). Then
    // the group is done with one read; otherwise (K far from the group's
    // mean, e.g. an outlier first value) pass 2 runs for that channel.
    let (mut d1, mut d2) = (vec![[0.0f64; LANES]; cs], vec![[0.0f64; LANES]; cs]);
    for r in pieces() {
        for i in 0..cs {
            let [a, b] = Sums::shifted_sq(at(&r, i), shift[c0 + i]);
            add_lanes(&mut d1[i], &a);
            add_lanes(&mut d2[i], &b);
        }
    }
    let one_pass = one_pass_moments::<T>(&d1, &d2, n);
    if one_pass.iter().all(Option::is_some) {
        return one_pass.into_iter().flatten().collect();
    }
    let mb: Vec<f64> = d1.iter().map(|a| lanes::hsum(a) / nf).collect();
    let (mut s1, mut s2) = (vec![[0.0f64; LANES]; cs], vec![[0.0f64; LANES]; cs]);
    for r in pieces() {
        for i in (0..cs).filter(|&i| one_pass[i].is_none()) {
            let [a, b] = Sums::deviations(at(&r, i), shift[c0 + i], mb[i]);
            add_lanes(&mut s1[i], &a);
            add_lanes(&mut s2[i], &b);
        }
    }
    (0..cs)
        .map(|i| {
            one_pass[i].unwrap_or_else(|| {
                let (a, b) = (lanes::hsum(&s1[i]), lanes::hsum(&s2[i]));
                Moments {
                    count: n as u64,
                    mean: mb[i] + a / nf,
                    m2: b - a * (a / nf),
                }
            })
        })
        .collect()
}

/// The one-pass moments `mean = Σd/n`, `M2 = Σd² − (Σd)²/n` of each
/// channel from its lane sums, or `None` where the subtraction cancels more
/// than [`lanes::one_pass_max_loss`] allows (that channel takes pass 2).
fn one_pass_moments<T: Element>(
    d1: &[[f64; LANES]],
    d2: &[[f64; LANES]],
    n: usize,
) -> Vec<Option<Moments>> {
    let (max_loss, nf) = (lanes::one_pass_max_loss::<T>(), n as f64);
    d1.iter()
        .zip(d2)
        .map(|(d1, d2)| {
            let (a, b) = (lanes::hsum(d1), lanes::hsum(d2));
            let c = a * (a / nf);
            ((b - c) * max_loss >= b).then(|| Moments {
                count: n as u64,
                mean: a / nf,
                m2: b - c,
            })
        })
        .collect()
}

#[inline]
pub(super) fn add_lanes(acc: &mut [f64; LANES], v: &[f64; LANES]) {
    for (a, &b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

/// Moments of every channel of a contiguous batch: fixed groups of each
/// channel (tasks of [`plan::stat_channels`] channels) in parallel, each
/// channel's groups merged in group order.
pub(super) fn contiguous_moments<T: Element>(
    x: &[T],
    dims: Dims,
    shift: &[f64],
    par: bool,
) -> Vec<Moments> {
    let (g, cb) = (plan::groups(dims), plan::stat_channels(dims));
    let items = map_ordered(par, dims.c.div_ceil(cb) * g, |i| {
        let c0 = i / g * cb;
        group_moments(x, dims, c0, cb.min(dims.c - c0), i % g, shift)
    });
    (0..dims.c)
        .map(|c| {
            let item = |gi: usize| items[c / cb * g + gi][c % cb];
            (0..g).fold(Moments::default(), |a, gi| a.merge(item(gi)))
        })
        .collect()
}

/// Moments of every channel of a channels-last batch: fixed groups of rows
/// in parallel, merged group-major (each group's array is streamed once;
/// every channel still merges its groups in order).
pub(super) fn rows_moments<T: Element>(
    x: &[T],
    dims: Dims,
    plan: &RowPlan,
    krep: &[f64],
    par: bool,
) -> Vec<Moments> {
    let rows = dims.n * dims.s;
    let groups = rows.div_ceil(plan.group_rows);
    let per_group = map_ordered(par, groups, |g| {
        let r0 = g * plan.group_rows;
        let r1 = (r0 + plan.group_rows).min(rows);
        let mut w = RowScratch::new(plan.sr.l, plan.sr.c);
        let mut out = vec![Moments::default(); plan.sr.c];
        let xs = &x[r0 * plan.sr.c..r1 * plan.sr.c];
        lanes::rows_moments(xs, plan.sr.c, krep, plan.tile_rows, &mut w, &mut out);
        out
    });
    let mut moments = vec![Moments::default(); dims.c];
    for m in &per_group {
        for (a, &b) in moments.iter_mut().zip(m) {
            *a = a.merge(b);
        }
    }
    moments
}

/// Coefficients of `y = (x − K)·a + b` from shifted moments, and the outputs `mean`, `var`.
pub(super) fn train_coeffs(
    shift: &[f64],
    moments: &[Moments],
    eps: f64,
    affine: &Affine<'_>,
    mean: &mut [f64],
    var: &mut [f64],
) -> [Vec<f64>; 2] {
    let mut a = vec![0.0; shift.len()];
    let mut b = vec![0.0; shift.len()];
    for (c, m) in moments.iter().enumerate() {
        mean[c] = shift[c] + m.mean;
        var[c] = m.var();
        let k = NormCoeffs::new(m.mean, m.var(), eps, affine, c);
        a[c] = k.scale;
        b[c] = k.bias - k.mean * k.scale;
    }
    [a, b]
}
