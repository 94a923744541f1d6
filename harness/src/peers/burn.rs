//! burn as a peer: `burn::nn::BatchNorm` on burn's ndarray backend.
//!
//! How each kernel call maps onto burn's API (also in `docs/PEERS.md`):
//!
//! - `forward_train`: a `BatchNorm` (momentum 1, zero running statistics)
//!   on the ndarray device with autodiff, which is where burn's module takes
//!   its training path (`batch_norm_train`); `forward(x)` returns `y` and
//!   sets `running·(1−m) + stat·m`, so with m = 1 the running mean and
//!   running variance are the batch mean and burn's batch variance, which the
//!   kernel returns as they are. burn's variance is the biased one (divided
//!   by N·S), which is what the kernel call asks for; burn's *module* also
//!   feeds that biased value into its running variance, where PyTorch uses
//!   the unbiased one — a module rule bnh keeps in `bn_impls::BatchNorm`, so
//!   it is not exercised through this adapter (see `docs/PEERS.md`).
//! - `forward_eval`: a `BatchNorm` whose running statistics are the given
//!   mean and variance, on the plain ndarray device (burn's inference path).
//! - `backward`: burn's autodiff. `x`, gamma and beta require gradients; the
//!   module's training path (`GradMode::Batch`, statistics recomputed from
//!   `x`) or inference path with the given statistics (`GradMode::Fixed`,
//!   training flag off) is replayed, then `sum(y · dy).backward()`.
//! - burn's `BatchNorm` always has gamma and beta; `affine=False` is gamma
//!   1 and beta 0, the same arithmetic (×1 and +0 are exact).
//! - Channels-last data is handed over as an `(N, S, C)` tensor that burn
//!   views as `(N, C, S)` with `swap_dims`.
//! - bf16 and f16 are declined: burn's ndarray backend supports f32 and f64
//!   only (`supports_dtype` is false for both half types).

use super::{bias_or_zeros, copy_out, declined, guarded, memory_shape, weight_or_ones};
use crate::fallible::{Declines, Fallible};
use ::burn::module::{Param, RunningState};
use ::burn::nn::{BatchNorm, BatchNormConfig};
use ::burn::tensor::{DType, Device, Tensor, TensorData};
use bn_impls::problem::{Backward, EvalForward, GradMode, TrainForward};
use bn_impls::{Dims, Element, Implementation, Info, Kernels, Layout};

/// The registry name.
pub const NAME: &str = "burn";

/// burn's `BatchNorm` (see the module docs for the mapping).
pub struct Burn;

impl Implementation for Declines<Burn> {
    fn info(&self) -> Info {
        Info {
            name: NAME,
            description: "peer: burn 0.22 nn::BatchNorm on the ndarray backend (--features peers)",
            // Two passes (mean, then mean of squared deviations), in the
            // data's precision: measured on the shipped fixtures it misses
            // the tolerance on two ill-conditioned f32 cases (offset 1e4),
            // so bnh does not call it stable (docs/PEERS.md).
            stable: false,
            // Not promised by burn; bnh makes no claim it cannot check.
            deterministic: false,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}

/// burn's ndarray CPU device. burn 0.22 deprecates it in favour of its
/// new `flex` backend; bnh compares against the ndarray backend (the one
/// burn has shipped longest) until that one is removed.
#[allow(deprecated)]
fn ndarray_device() -> Device {
    Device::ndarray()
}

/// burn's dtype for `T`, or why burn's ndarray backend cannot run it.
fn dtype_of<T: Element>(op: &str) -> bn_impls::Result<DType> {
    match T::DTYPE {
        bn_impls::DType::F32 => Ok(DType::F32),
        bn_impls::DType::F64 => Ok(DType::F64),
        bn_impls::DType::BF16 | bn_impls::DType::F16 => Err(declined(
            NAME,
            op,
            &format!(
                "burn's ndarray backend has no {} tensors (f32 and f64 only)",
                T::DTYPE.name()
            ),
        )),
    }
}

/// The flat data as a burn tensor in memory order, seen as `(N, C, S)`.
fn input<T: Element>(data: &[T], dims: Dims, dt: DType, device: &Device) -> Tensor<3> {
    let values: Vec<f64> = data.iter().map(|v| v.as_f64()).collect();
    let t = Tensor::<3>::from_data(TensorData::new(values, memory_shape(dims)), (device, dt));
    match dims.layout {
        Layout::Contiguous => t,
        Layout::ChannelsLast => t.swap_dims(1, 2),
    }
}

/// Values of a burn tensor as `f64`, in row-major order of its shape.
fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>, String> {
    t.into_data_dtype(DType::F64)
        .try_to_vec::<f64>()
        .map_err(|e| format!("cannot read burn's result: {e:?}"))
}

/// Write an `(N, C, S)` tensor into `out` in the layout of `dims`.
fn write_logical<T: Element>(t: Tensor<3>, dims: Dims, out: &mut [T]) -> Result<(), String> {
    let t = match dims.layout {
        Layout::Contiguous => t,
        Layout::ChannelsLast => t.swap_dims(1, 2),
    };
    let v = values(t)?;
    if v.len() != out.len() {
        return Err(format!(
            "returned {} values, expected {}",
            v.len(),
            out.len()
        ));
    }
    for (o, v) in out.iter_mut().zip(v) {
        // Exact: burn computed in T's own type (f32 or f64).
        *o = T::from_f64(v);
    }
    Ok(())
}

/// Per-channel values as a burn vector.
fn channel(v: &[f64], dt: DType, device: &Device) -> Tensor<1> {
    Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), (device, dt))
}

/// burn's module with these parameters and running statistics.
fn module(
    c: usize,
    (gamma, beta): (Tensor<1>, Tensor<1>),
    (mean, var): (Tensor<1>, Tensor<1>),
    eps: f64,
    training: bool,
    device: &Device,
) -> BatchNorm {
    let mut bn = BatchNormConfig::new(c)
        .with_epsilon(eps)
        .with_momentum(1.0)
        .init(device);
    bn.gamma = Param::from_tensor(gamma);
    bn.beta = Param::from_tensor(beta);
    bn.running_mean = RunningState::new(mean);
    bn.running_var = RunningState::new(var);
    bn.training = Param::from_bool(training);
    bn
}

fn train<T: Element>(p: TrainForward<'_, T>, dt: DType) -> Result<(), String> {
    let (dims, c) = (p.dims, p.dims.c);
    let device = ndarray_device().autodiff();
    let params = (
        channel(&weight_or_ones(p.affine.weight, c), dt, &device),
        channel(&bias_or_zeros(p.affine.bias, c), dt, &device),
    );
    let zeros = channel(&vec![0.0; c], dt, &device);
    let bn = module(c, params, (zeros.clone(), zeros), p.eps, true, &device);
    let y = bn.forward(input(p.x, dims, dt, &device));
    write_logical(y, dims, p.y)?;
    // `value_sync`: burn's `value()` may still hold the state before the
    // update this forward just made.
    copy_out("mean", &values(bn.running_mean.value_sync())?, p.mean)?;
    copy_out("var", &values(bn.running_var.value_sync())?, p.var)
}

fn eval<T: Element>(p: EvalForward<'_, T>, dt: DType) -> Result<(), String> {
    let (dims, c) = (p.dims, p.dims.c);
    let device = ndarray_device();
    let params = (
        channel(&weight_or_ones(p.affine.weight, c), dt, &device),
        channel(&bias_or_zeros(p.affine.bias, c), dt, &device),
    );
    let stats = (channel(p.mean, dt, &device), channel(p.var, dt, &device));
    let bn = module(c, params, stats, p.eps, false, &device);
    write_logical(bn.forward(input(p.x, dims, dt, &device)), dims, p.y)
}

fn backward<T: Element>(p: Backward<'_, T>, dt: DType) -> Result<(), String> {
    let (dims, c) = (p.dims, p.dims.c);
    let device = ndarray_device().autodiff();
    let x = input(p.x, dims, dt, &device).require_grad();
    let params = (
        channel(&weight_or_ones(p.weight, c), dt, &device).require_grad(),
        channel(&vec![0.0; c], dt, &device).require_grad(),
    );
    let (bn, training) = match p.mode {
        GradMode::Batch => {
            let zeros = channel(&vec![0.0; c], dt, &device);
            ((zeros.clone(), zeros), true)
        }
        GradMode::Fixed => (
            (channel(p.mean, dt, &device), channel(p.var, dt, &device)),
            false,
        ),
    };
    let bn = module(c, params, bn, p.eps, training, &device);
    let y = bn.forward(x.clone());
    let dy = input(p.dy, dims, dt, &device);
    let grads = y.mul(dy).sum().backward();
    let missing = |what: &str| format!("burn returned no gradient for {what}");
    let dx = x.grad(&grads).ok_or_else(|| missing("x"))?;
    write_logical(dx, dims, p.dx)?;
    // The parameters as the module used them (its `forward` reads `val()`).
    let gw = bn
        .gamma
        .val()
        .grad(&grads)
        .ok_or_else(|| missing("gamma"))?;
    copy_out("grad_weight", &values(gw)?, p.grad_weight)?;
    let gb = bn.beta.val().grad(&grads).ok_or_else(|| missing("beta"))?;
    copy_out("grad_bias", &values(gb)?, p.grad_bias)
}

impl<T: Element> Fallible<T> for Burn {
    fn try_forward_train(&self, p: TrainForward<'_, T>) -> bn_impls::Result<()> {
        let dt = dtype_of::<T>("forward_train")?;
        guarded(NAME, "forward_train", || train(p, dt))
    }

    fn try_forward_eval(&self, p: EvalForward<'_, T>) -> bn_impls::Result<()> {
        let dt = dtype_of::<T>("forward_eval")?;
        guarded(NAME, "forward_eval", || eval(p, dt))
    }

    fn try_backward(&self, p: Backward<'_, T>) -> bn_impls::Result<()> {
        let dt = dtype_of::<T>("backward")?;
        guarded(NAME, "backward", || backward(p, dt))
    }
}
