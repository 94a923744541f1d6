//! candle as a peer: `candle_nn::BatchNorm` on candle's CPU device.
//!
//! How each kernel call maps onto candle's API (also in `docs/PEERS.md`):
//!
//! - `forward_train`: a fresh `BatchNorm` with zero running statistics and
//!   momentum 1, then `BatchNorm::forward_train(x)`. candle returns `y` and
//!   updates its running statistics as `running·(1−m) + stat·m`, so with
//!   m = 1 the running mean is the batch mean; candle stores the running
//!   variance unbiased (batch variance · n/(n−1), n = N·S), so the biased
//!   variance the kernel returns is that value · (n−1)/n. candle computes in
//!   f32 for bf16/f16 data, in the data's type otherwise.
//! - `forward_eval`: a `BatchNorm` whose running statistics are the given
//!   mean and variance (in the data's type, as candle's eval path uses them),
//!   then `forward_t(x, false)`.
//! - `backward`: candle's autograd. `x`, weight and bias are `Var`s; the
//!   forward above is replayed (batch statistics for `GradMode::Batch`, the
//!   given ones for `GradMode::Fixed`), then `sum(y · dy).backward()` gives
//!   `dx`, `grad_weight` and `grad_bias`. In batch mode candle recomputes the
//!   statistics from `x` rather than taking the kernel's `mean`/`var`.
//! - Channels-last data is handed over as an `(N, S, C)` tensor that candle
//!   views as `(N, C, S)` with `permute`, so candle computes on strided data.
//! - Every dtype (f32, f64, bf16, f16) is candle's own.
//!
//! Per-channel values cross as `f64` and are converted to candle's dtype
//! (`to_dtype`), which rounds them for 16-bit data as candle would store them.

use super::{
    bias_or_zeros, copy_out, declined, guarded, memory_shape, same_type, same_type_mut,
    weight_or_ones,
};
use crate::fallible::{Declines, Fallible};
use bn_impls::problem::{Affine, Backward, EvalForward, GradMode, TrainForward};
use bn_impls::{Dims, Element, Implementation, Info, Kernels, Layout};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{BatchNorm, ModuleT};

/// The registry name.
pub const NAME: &str = "candle";

/// candle-nn's `BatchNorm` (see the module docs for the mapping).
pub struct Candle;

impl Implementation for Declines<Candle> {
    fn info(&self) -> Info {
        Info {
            name: NAME,
            description: "peer: candle-nn 0.11 BatchNorm on candle's CPU device (--features peers)",
            // Two passes (mean, then mean of squared deviations), but in
            // the data's precision: measured on the shipped fixtures it
            // misses the tolerance on four ill-conditioned cases (offset
            // 1e4 f32, a constant channel), so bnh does not call it stable
            // (its failures are reported, not gating; docs/PEERS.md).
            stable: false,
            // Not promised by candle; bnh makes no claim it cannot check.
            deterministic: false,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}

/// candle's dtype for `T`.
fn dtype_of<T: Element>() -> DType {
    match T::DTYPE {
        bn_impls::DType::F32 => DType::F32,
        bn_impls::DType::F64 => DType::F64,
        bn_impls::DType::BF16 => DType::BF16,
        bn_impls::DType::F16 => DType::F16,
    }
}

/// The dtype candle's `forward_train` computes statistics in.
fn internal_dtype(dt: DType) -> DType {
    match dt {
        DType::BF16 | DType::F16 => DType::F32,
        d => d,
    }
}

/// The flat data as a candle tensor in memory order ([`memory_shape`]).
fn memory_tensor<T: Element>(data: &[T], dims: Dims) -> candle_core::Result<Tensor> {
    let (shape, cpu) = (&memory_shape(dims)[..], &Device::Cpu);
    if let Some(v) = same_type::<T, f32>(data) {
        return Tensor::from_slice(v, shape, cpu);
    }
    if let Some(v) = same_type::<T, f64>(data) {
        return Tensor::from_slice(v, shape, cpu);
    }
    if let Some(v) = same_type::<T, half::bf16>(data) {
        return Tensor::from_slice(v, shape, cpu);
    }
    if let Some(v) = same_type::<T, half::f16>(data) {
        return Tensor::from_slice(v, shape, cpu);
    }
    candle_core::bail!("no candle dtype for {}", T::DTYPE.name())
}

/// A memory-order tensor seen as `(N, C, S)`.
fn logical(t: Tensor, dims: Dims) -> candle_core::Result<Tensor> {
    match dims.layout {
        Layout::Contiguous => Ok(t),
        Layout::ChannelsLast => t.permute((0, 2, 1)),
    }
}

/// Write a tensor holding data in memory order into `out`.
fn write_memory<T: Element>(t: &Tensor, out: &mut [T]) -> candle_core::Result<()> {
    fn put<U: candle_core::WithDType>(t: &Tensor, out: &mut [U]) -> candle_core::Result<()> {
        let v = t.flatten_all()?.to_vec1::<U>()?;
        if v.len() != out.len() {
            candle_core::bail!("returned {} values, expected {}", v.len(), out.len());
        }
        out.copy_from_slice(&v);
        Ok(())
    }
    if let Some(o) = same_type_mut::<T, f32>(&mut *out) {
        return put(t, o);
    }
    if let Some(o) = same_type_mut::<T, f64>(&mut *out) {
        return put(t, o);
    }
    if let Some(o) = same_type_mut::<T, half::bf16>(&mut *out) {
        return put(t, o);
    }
    if let Some(o) = same_type_mut::<T, half::f16>(&mut *out) {
        return put(t, o);
    }
    candle_core::bail!("no candle dtype for {}", T::DTYPE.name())
}

/// Write an `(N, C, S)` tensor into `out` in the layout of `dims`.
fn write_logical<T: Element>(t: &Tensor, dims: Dims, out: &mut [T]) -> candle_core::Result<()> {
    match dims.layout {
        Layout::Contiguous => write_memory(t, out),
        Layout::ChannelsLast => write_memory(&t.permute((0, 2, 1))?, out),
    }
}

/// Per-channel values as a candle vector of dtype `dt`.
fn channel(v: &[f64], dt: DType) -> candle_core::Result<Tensor> {
    Tensor::from_slice(v, v.len(), &Device::Cpu)?.to_dtype(dt)
}

/// A candle vector back as `f64` values.
fn to_f64(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.to_vec1::<f64>()
}

/// candle's module with these statistics, parameters and momentum.
fn module(
    c: usize,
    (mean, var): (Tensor, Tensor),
    affine: Affine<'_>,
    dt: DType,
    eps: f64,
    momentum: f64,
) -> candle_core::Result<BatchNorm> {
    if affine.weight.is_none() && affine.bias.is_none() {
        return BatchNorm::new_no_bias_with_momentum(c, mean, var, eps, momentum);
    }
    let weight = channel(&weight_or_ones(affine.weight, c), dt)?;
    let bias = channel(&bias_or_zeros(affine.bias, c), dt)?;
    BatchNorm::new_with_momentum(c, mean, var, weight, bias, eps, momentum)
}

/// Map a candle error to the string [`guarded`] reports.
fn msg<R>(r: candle_core::Result<R>) -> Result<R, String> {
    r.map_err(|e| e.to_string())
}

/// Values per channel, and the check that candle's unbiased running
/// variance can be turned back into the biased one (n ≥ 2).
fn values_per_channel(dims: Dims, op: &str) -> bn_impls::Result<usize> {
    let n = dims.n * dims.s;
    if n < 2 {
        return Err(declined(
            NAME,
            op,
            "candle stores only the unbiased variance (divided by N·S−1), which one value per channel does not define",
        ));
    }
    Ok(n)
}

fn train<T: Element>(p: TrainForward<'_, T>, n: usize) -> candle_core::Result<()> {
    let (dims, dt) = (p.dims, dtype_of::<T>());
    let zeros = Tensor::zeros(dims.c, internal_dtype(dt), &Device::Cpu)?;
    let bn = module(dims.c, (zeros.clone(), zeros), p.affine, dt, p.eps, 1.0)?;
    let y = bn.forward_train(&logical(memory_tensor(p.x, dims)?, dims)?)?;
    write_logical(&y, dims, p.y)?;
    copy_out("mean", &to_f64(bn.running_mean())?, p.mean).map_err(candle_core::Error::msg)?;
    let unbiased = to_f64(bn.running_var())?;
    let to_biased = (n as f64 - 1.0) / n as f64;
    let biased: Vec<f64> = unbiased.iter().map(|v| v * to_biased).collect();
    copy_out("var", &biased, p.var).map_err(candle_core::Error::msg)
}

fn eval<T: Element>(p: EvalForward<'_, T>) -> candle_core::Result<()> {
    let (dims, dt) = (p.dims, dtype_of::<T>());
    let stats = (channel(p.mean, dt)?, channel(p.var, dt)?);
    let bn = module(dims.c, stats, p.affine, dt, p.eps, 0.1)?;
    let y = bn.forward_t(&logical(memory_tensor(p.x, dims)?, dims)?, false)?;
    write_logical(&y, dims, p.y)
}

fn backward<T: Element>(p: Backward<'_, T>) -> candle_core::Result<()> {
    let (dims, dt, c) = (p.dims, dtype_of::<T>(), p.dims.c);
    let x = Var::from_tensor(&memory_tensor(p.x, dims)?)?;
    let weight = Var::from_tensor(&channel(&weight_or_ones(p.weight, c), dt)?)?;
    let bias = Var::from_tensor(&channel(&vec![0.0; c], dt)?)?;
    let (w, b) = (weight.as_tensor().clone(), bias.as_tensor().clone());
    let input = logical(x.as_tensor().clone(), dims)?;
    let y = match p.mode {
        GradMode::Batch => {
            let zeros = Tensor::zeros(c, internal_dtype(dt), &Device::Cpu)?;
            BatchNorm::new_with_momentum(c, zeros.clone(), zeros, w, b, p.eps, 1.0)?
                .forward_train(&input)?
        }
        GradMode::Fixed => {
            let (mean, var) = (channel(p.mean, dt)?, channel(p.var, dt)?);
            BatchNorm::new(c, mean, var, w, b, p.eps)?.forward_t(&input, false)?
        }
    };
    let dy = logical(memory_tensor(p.dy, dims)?, dims)?;
    let grads = y.mul(&dy)?.sum_all()?.backward()?;
    let grad = |v: &Var, what: &str| {
        grads.get(v.as_tensor()).cloned().ok_or_else(|| {
            candle_core::Error::msg(format!("candle returned no gradient for {what}"))
        })
    };
    write_memory(&grad(&x, "x")?, p.dx)?;
    let gw = to_f64(&grad(&weight, "weight")?)?;
    copy_out("grad_weight", &gw, p.grad_weight).map_err(candle_core::Error::msg)?;
    let gb = to_f64(&grad(&bias, "bias")?)?;
    copy_out("grad_bias", &gb, p.grad_bias).map_err(candle_core::Error::msg)
}

impl<T: Element> Fallible<T> for Candle {
    fn try_forward_train(&self, p: TrainForward<'_, T>) -> bn_impls::Result<()> {
        let n = values_per_channel(p.dims, "forward_train")?;
        guarded(NAME, "forward_train", || msg(train(p, n)))
    }

    fn try_forward_eval(&self, p: EvalForward<'_, T>) -> bn_impls::Result<()> {
        guarded(NAME, "forward_eval", || msg(eval(p)))
    }

    fn try_backward(&self, p: Backward<'_, T>) -> bn_impls::Result<()> {
        if p.mode == GradMode::Batch {
            values_per_channel(p.dims, "backward")?;
        }
        guarded(NAME, "backward", || msg(backward(p)))
    }
}
