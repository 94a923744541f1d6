//! Folding an eval-mode batch norm into the convolution or linear layer
//! before it: `BN(conv(x, w) + b) = conv(x, w') + b'` with, per output
//! channel `o`,
//!
//! `s_o = γ_o / √(var_o + ε)`, `w'[o, …] = w[o, …]·s_o`,
//! `b'_o = (b_o − mean_o)·s_o + β_o`
//!
//! (`b` absent = 0; `affine=False`: `γ = 1`, `β = 0`). This is what
//! PyTorch's `torch.nn.utils.fuse_conv_bn_weights` computes; here every
//! value is computed in `f64` and rounded once to the weight's dtype.
//!
//! Error bound (`u = 2⁻⁵³`): `s̃ = s·(1 + δ)` with `|δ| ≤ 2.5u` (the sum
//! `var + ε`, the square root and the division, each correctly rounded), and
//! the product `w·s̃` adds `u`, so before the final rounding each `w'` is
//! within `3.5u` relative of the exact `w·s`. After rounding to the dtype:
//! - `f64`: `|w' − w·s| ≤ 3.5u·|w·s|` — at most **4 ulps**;
//! - `f32`, `bf16`, `f16`: half an ulp of the dtype plus `3.5u` relative —
//!   at most **1 ulp** (`3.5·2⁻⁵³` is ~2⁻²⁹ of an `f32` ulp).
//!
//! The bias is computed as `fma(b − mean, s̃, β)`: `b − mean` and the fused
//! multiply-add are each one rounding, so
//! `|b' − exact| ≤ 4.5u·(|b − mean|·s + |β|) + ½ ulp_dtype(b')`, i.e. a
//! relative error of a few `u` times `cond_b = (|b − mean|·s + |β|)/|b'|`
//! (large only when `β` cancels `(b − mean)·s`) plus the final rounding.
//! Ill-conditioned running statistics (a variance of 1e-30 next to
//! `ε = 1e-5`, means of 1e8) cost nothing extra: `var + ε` and `b − mean`
//! are single roundings of the exact values. For the composed layer the
//! output error is then bounded by
//! `Σ|x|·|w'−w·s| + |b'−exact| ≤ ε_w·Σ|x·w·s| + ε_b`, i.e. `ε_w·cond` relative
//! to `|y|` with `cond = Σ|x·w·s|/|y|` (`docs/ACCURACY.md`, *Folding*).

use crate::element::Element;
use crate::error::{Error, Result};
use crate::problem::check_eps;

/// An eval-mode batch norm as folding needs it: running statistics, the
/// optional affine parameters (`None` = `affine=False`) and `eps`.
/// Per-channel values are `f64`, as everywhere at the kernel boundary.
#[derive(Debug, Clone, Copy)]
pub struct EvalBn<'a> {
    pub running_mean: &'a [f64],
    pub running_var: &'a [f64],
    pub weight: Option<&'a [f64]>,
    pub bias: Option<&'a [f64]>,
    pub eps: f64,
}

/// The folded layer's parameters, in the dtype of the given weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded<T> {
    /// Same shape and layout as the given weight.
    pub weight: Vec<T>,
    /// One value per output channel.
    pub bias: Vec<T>,
}

impl EvalBn<'_> {
    /// Number of channels, with every per-channel length, `eps` and every
    /// value checked (finite; variance ≥ 0).
    fn check(&self) -> Result<usize> {
        let c = self.running_mean.len();
        if c == 0 {
            return Err(Error::Empty {
                what: "running_mean".into(),
                shape: vec![0],
            });
        }
        // Eval mode's rule (eps ≥ 0, as PyTorch), and finite: a NaN or
        // infinite eps has no finite folded weight.
        check_eps(self.eps, false)?;
        if !self.eps.is_finite() {
            return Err(Error::InvalidStatistic {
                what: "eps".into(),
                index: 0,
                value: self.eps,
                why: "a folded layer needs a finite eps".into(),
            });
        }
        let lists = [
            ("running_mean", Some(self.running_mean)),
            ("running_var", Some(self.running_var)),
            ("weight (gamma)", self.weight),
            ("bias (beta)", self.bias),
        ];
        for (what, v) in lists {
            let Some(v) = v else { continue };
            if v.len() != c {
                return Err(Error::LengthMismatch {
                    what: format!("{what} (one per batch-norm channel, as running_mean)"),
                    expected: c,
                    actual: v.len(),
                });
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(invalid(what, i, v[i], "it is not finite"));
            }
        }
        if let Some(i) = self.running_var.iter().position(|&v| v < 0.0) {
            let why = "a variance is never negative";
            return Err(invalid("running_var", i, self.running_var[i], why));
        }
        Ok(c)
    }

    /// `s_o = γ_o / √(var_o + ε)` in `f64`.
    fn scale(&self, o: usize) -> f64 {
        let g = self.weight.map_or(1.0, |w| w[o]);
        g / (self.running_var[o] + self.eps).sqrt()
    }
}

fn invalid(what: &str, index: usize, value: f64, why: &str) -> Error {
    Error::InvalidStatistic {
        what: what.into(),
        index,
        value,
        why: why.into(),
    }
}

/// Fold `bn` into a convolution with weight `w` of shape
/// `(C_out, C_in/groups, *kernel)` (1 to 3 kernel dims, row-major) and
/// optional bias `b` (`C_out` values). `C_out` must equal the batch norm's
/// channel count. Returns `w'` and `b'` in `T` (see the module docs for
/// the formula and the error bound).
pub fn fold_into_conv<T: Element>(
    w: &[T],
    shape: &[usize],
    b: Option<&[T]>,
    bn: &EvalBn<'_>,
) -> Result<Folded<T>> {
    if !(3..=5).contains(&shape.len()) {
        return Err(Error::ShapeMismatch {
            what: "convolution weight (C_out, C_in/groups, *kernel) with 1 to 3 kernel dims".into(),
            expected: vec![bn.running_mean.len(), 1, 1],
            actual: shape.to_vec(),
        });
    }
    fold(w, shape, b, bn)
}

/// Fold `bn` into a linear layer with weight `w` of shape `(C_out, C_in)`
/// (row-major) and optional bias `b` (`C_out` values); `C_out` must equal
/// the batch norm's channel count (a `BatchNorm1d` after the layer).
pub fn fold_into_linear<T: Element>(
    w: &[T],
    shape: &[usize],
    b: Option<&[T]>,
    bn: &EvalBn<'_>,
) -> Result<Folded<T>> {
    if shape.len() != 2 {
        return Err(Error::ShapeMismatch {
            what: "linear weight (C_out, C_in)".into(),
            expected: vec![bn.running_mean.len(), 1],
            actual: shape.to_vec(),
        });
    }
    fold(w, shape, b, bn)
}

/// The shared folding of a row-major weight whose first dim is `C_out`.
fn fold<T: Element>(
    w: &[T],
    shape: &[usize],
    b: Option<&[T]>,
    bn: &EvalBn<'_>,
) -> Result<Folded<T>> {
    let c = bn.check()?;
    if shape[0] != c {
        return Err(Error::ShapeMismatch {
            what: format!(
                "weight (dim 0 is C_out, which must equal the batch norm's {c} channels)"
            ),
            expected: [&[c], &shape[1..]].concat(),
            actual: shape.to_vec(),
        });
    }
    if shape.contains(&0) {
        return Err(Error::Empty {
            what: "weight".into(),
            shape: shape.to_vec(),
        });
    }
    let len = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::TooLarge {
            what: "weight".into(),
            shape: shape.to_vec(),
        })?;
    if w.len() != len {
        return Err(Error::LengthMismatch {
            what: format!("weight of shape {shape:?}"),
            expected: len,
            actual: w.len(),
        });
    }
    if let Some(b) = b {
        if b.len() != c {
            return Err(Error::LengthMismatch {
                what: "bias (one per output channel)".into(),
                expected: c,
                actual: b.len(),
            });
        }
    }
    let per_out = len / c;
    let s: Vec<f64> = (0..c).map(|o| bn.scale(o)).collect();
    let weight = w
        .iter()
        .enumerate()
        .map(|(i, &v)| round::<T>("weight", i, v.as_f64() * s[i / per_out]))
        .collect::<Result<Vec<T>>>()?;
    let bias = (0..c)
        .map(|o| {
            let b = b.map_or(0.0, |b| b[o].as_f64());
            let beta = bn.bias.map_or(0.0, |v| v[o]);
            round::<T>("bias", o, (b - bn.running_mean[o]).mul_add(s[o], beta))
        })
        .collect::<Result<Vec<T>>>()?;
    Ok(Folded { weight, bias })
}

/// `v` rounded once to `T`; an error when a finite value overflows `T`.
fn round<T: Element>(what: &str, index: usize, v: f64) -> Result<T> {
    let r = T::from_f64(v);
    if v.is_finite() && !r.as_f64().is_finite() {
        return Err(Error::FoldOverflow {
            what: what.into(),
            index,
            value: v,
            dtype: T::DTYPE.to_string(),
        });
    }
    Ok(r)
}
