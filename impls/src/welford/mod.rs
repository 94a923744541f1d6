//! `welford`: one streaming pass per operation with Welford's update.
//!
//! Statistics: each channel's values are pushed, in memory order, into a
//! [`Moments`] accumulator (Welford 1962), so `x` is read once for the
//! statistics and once to normalize.
//!
//! Accumulator strategy, the reason this implementation is accurate on
//! ill-conditioned inputs:
//! - every value is widened to `f64` before any arithmetic (exact for `f32`),
//!   as PyTorch's CPU kernel does for `f32` statistics;
//! - values are shifted by `K_c`, the channel's first value, before they are
//!   accumulated ("shifted data", Chan, Golub & LeVeque 1983). For clustered
//!   data `x − K_c` is exact (Sterbenz), so a mean of 1e6 with unit spread is
//!   accumulated as values of size 1, and the normalization uses
//!   `(x − K_c) − mean_shifted`, which never rounds the mean to the scale of
//!   the offset. The reported mean is `K_c + mean_shifted`.
//!
//! A channel whose statistics overflow on finite data (values spanning more
//! than ~1e154) is redone on values scaled by a power of two (module `huge`).

use crate::element::Element;
use crate::formulas::{GradCoeffs, NormCoeffs};
use crate::huge;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::layout::Dims;
use crate::moments::Moments;
use crate::problem::{Backward, EvalForward, GradMode, TrainForward};

/// Single-threaded, single-pass statistics with Welford's update in `f64`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Welford;

/// Shifted moments of every channel: `(K_c, moments of x − K_c)`.
fn shifted_moments<T: Element>(x: &[T], dims: Dims) -> (Vec<f64>, Vec<Moments>) {
    let shift: Vec<f64> = (0..dims.c)
        .map(|c| x[dims.offset(0, c, 0)].as_f64())
        .collect();
    let mut moments = vec![Moments::default(); dims.c];
    dims.for_each_offset(|i, c| moments[c].push(x[i].as_f64() - shift[c]));
    (shift, moments)
}

/// Training forward without the overflow redo.
fn train<T: Element>(p: TrainForward<'_, T>) {
    let (shift, moments) = shifted_moments(p.x, p.dims);
    let coeffs: Vec<NormCoeffs> = moments
        .iter()
        .enumerate()
        .map(|(c, m)| {
            p.mean[c] = shift[c] + m.mean;
            p.var[c] = m.var();
            NormCoeffs::new(m.mean, m.var(), p.eps, &p.affine, c)
        })
        .collect();
    let (x, y) = (p.x, p.y);
    p.dims.for_each_offset(|i, c| {
        y[i] = T::from_f64(coeffs[c].apply(x[i].as_f64() - shift[c]));
    });
}

impl<T: Element> Kernel<T> for Welford {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        huge::train_then_redo(p, train)
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        let coeffs: Vec<NormCoeffs> = (0..p.dims.c)
            .map(|c| NormCoeffs::new(p.mean[c], p.var[c], p.eps, &p.affine, c))
            .collect();
        let (x, y) = (p.x, p.y);
        p.dims
            .for_each_offset(|i, c| y[i] = T::from_f64(coeffs[c].apply(x[i].as_f64())));
    }

    fn backward(&self, p: Backward<'_, T>) {
        huge::backward_then_redo(p, backward_pass)
    }
}

/// Backward with the same shift as the forward pass. With batch
/// statistics the sums are taken over `x − K_c` and the mean relative to
/// `K_c` is recomputed from `x` (`d_c = Σ(x − K_c)/m`), so
/// `Σ dy·(x − mean) = Σ dy·(x − K_c) − d_c·Σ dy` and `x − mean = (x − K_c) − d_c`
/// never involve the `f64` mean rounded at the scale of a large offset
/// (with mean 1e6 that rounding, ~6e-11, would dominate the gradients of
/// `f64` data). With fixed statistics the mean is an exact input: `K_c = mean`.
fn backward_pass<T: Element>(p: Backward<'_, T>) {
    let (x, dy, dx) = (p.x, p.dy, p.dx);
    let c = p.dims.c;
    let shift: Vec<f64> = match p.mode {
        GradMode::Batch => (0..c).map(|c| x[p.dims.offset(0, c, 0)].as_f64()).collect(),
        GradMode::Fixed => p.mean.to_vec(),
    };
    let mut sum_dy = vec![0.0f64; c];
    let mut sum_dy_xk = vec![0.0f64; c];
    let mut sum_xk = vec![0.0f64; c];
    p.dims.for_each_offset(|i, c| {
        let g = dy[i].as_f64();
        let xk = x[i].as_f64() - shift[c];
        sum_dy[c] += g;
        sum_dy_xk[c] += g * xk;
        sum_xk[c] += xk;
    });
    let m = p.dims.per_channel();
    let coeffs: Vec<GradCoeffs> = (0..c)
        .map(|c| {
            // mean − K_c (0 with fixed statistics, where K_c is the mean).
            let d = match p.mode {
                GradMode::Batch => sum_xk[c] / m as f64,
                GradMode::Fixed => 0.0,
            };
            let w = p.weight.map_or(1.0, |w| w[c]);
            let mut k = GradCoeffs::new(
                p.mode,
                m,
                shift[c],
                p.var[c],
                p.eps,
                w,
                sum_dy[c],
                sum_dy_xk[c] - d * sum_dy[c],
            );
            // apply() computes k_xmu·(x − K_c); fold −k_xmu·d_c into the constant.
            k.k_const -= k.k_xmu * d;
            p.grad_weight[c] = k.grad_weight;
            p.grad_bias[c] = k.grad_bias;
            k
        })
        .collect();
    p.dims.for_each_offset(|i, c| {
        dx[i] = T::from_f64(coeffs[c].apply(x[i].as_f64(), dy[i].as_f64()));
    });
}

impl Implementation for Welford {
    fn info(&self) -> Info {
        Info {
            name: "welford",
            description: "single streaming pass, Welford's update on shifted values in f64",
            stable: true,
            deterministic: true,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
