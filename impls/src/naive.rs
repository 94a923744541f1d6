//! `naive`: the textbook formulas, transcribed plainly.
//!
//! Ioffe & Szegedy (2015), Algorithm 1: `μ = (1/m)Σx`, `σ² = (1/m)Σ(x − μ)²`,
//! `x̂ = (x − μ)/√(σ² + ε)`, `y = γx̂ + β`; and the backward pass of §3. All
//! arithmetic runs in the data's own type, as a straightforward port would.
//! It is the readable baseline and is registered `stable: false`: in `f32`,
//! summing values with a large common offset (mean 1e4, spread 1) loses the
//! spread to rounding, and the harness shows it.

use crate::element::Element;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::problem::{Backward, EvalForward, GradMode, TrainForward};

/// Textbook batch norm in the data's own precision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Naive;

fn t<T: Element>(v: f64) -> T {
    T::from_f64(v)
}

impl<T: Element> Kernel<T> for Naive {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        let (x, y, dims) = (p.x, p.y, p.dims);
        let m: T = t(dims.per_channel() as f64);
        for c in 0..dims.c {
            let xc = || dims.channel_offsets(c).map(|i| x[i]);
            let mean = xc().fold(T::zero(), |acc, v| acc + v) / m;
            let var = xc().fold(T::zero(), |acc, v| acc + (v - mean) * (v - mean)) / m;
            let inv_std = T::one() / (var + t(p.eps)).sqrt();
            let (w, b) = (t::<T>(p.affine.weight(c)), t::<T>(p.affine.bias(c)));
            for i in dims.channel_offsets(c) {
                y[i] = (x[i] - mean) * inv_std * w + b;
            }
            p.mean[c] = mean.as_f64();
            p.var[c] = var.as_f64();
        }
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        let (x, y, dims) = (p.x, p.y, p.dims);
        for c in 0..dims.c {
            let (mean, var) = (t::<T>(p.mean[c]), t::<T>(p.var[c]));
            let inv_std = T::one() / (var + t(p.eps)).sqrt();
            let (w, b) = (t::<T>(p.affine.weight(c)), t::<T>(p.affine.bias(c)));
            for i in dims.channel_offsets(c) {
                y[i] = (x[i] - mean) * inv_std * w + b;
            }
        }
    }

    fn backward(&self, p: Backward<'_, T>) {
        let (x, dy, dx, dims) = (p.x, p.dy, p.dx, p.dims);
        let m: T = t(dims.per_channel() as f64);
        for c in 0..dims.c {
            let mean = t::<T>(p.mean[c]);
            let inv_std = T::one() / (t::<T>(p.var[c]) + t(p.eps)).sqrt();
            let w = t::<T>(p.weight.map_or(1.0, |w| w[c]));
            let mut sum_dy = T::zero();
            let mut sum_dy_xhat = T::zero();
            for i in dims.channel_offsets(c) {
                sum_dy = sum_dy + dy[i];
                sum_dy_xhat = sum_dy_xhat + dy[i] * (x[i] - mean) * inv_std;
            }
            for i in dims.channel_offsets(c) {
                dx[i] = match p.mode {
                    GradMode::Batch => {
                        let x_hat = (x[i] - mean) * inv_std;
                        w * inv_std / m * (m * dy[i] - sum_dy - x_hat * sum_dy_xhat)
                    }
                    GradMode::Fixed => dy[i] * w * inv_std,
                };
            }
            p.grad_weight[c] = sum_dy_xhat.as_f64();
            p.grad_bias[c] = sum_dy.as_f64();
        }
    }
}

impl Implementation for Naive {
    fn info(&self) -> Info {
        Info {
            name: "naive",
            description:
                "textbook two-pass formulas in the data's own precision (readable baseline)",
            stable: false,
            deterministic: true,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
