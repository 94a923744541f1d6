//! Preallocated buffers for one benchmarked tensor and one call of an
//! operation on them.
//!
//! Every buffer (inputs, outputs, statistics, the memcpy destination) is
//! allocated and filled once, before timing, so a timed call measures the
//! kernel writing into memory that is already mapped — the like-for-like
//! comparison with a preallocated memcpy. The tensors are page-aligned
//! ([`PageAligned`]): every input and output at one page offset, as
//! PyTorch's large tensors are, whatever cells ran before in the process.
//! The validated problem struct
//! (`TrainForward::new` etc.) borrows the buffers mutably and is consumed by
//! the kernel, so it is rebuilt on each call; its checks are O(1) (shape and
//! stride classification, length comparisons) and are part of what a user
//! of the library pays per call.

use super::grid::BenchPoint;
use super::roofline::{self, Copy};
use crate::data::Rng;
use crate::memory::PageAligned;
use bn_impls::{
    kernel, Affine, Backward, BackwardRelu, DType, Dims, Element, EvalForward, EvalRelu, ForDtype,
    GradMode, Implementation, TrainForward, TrainRelu,
};
use serde::Serialize;

/// The timed operations: the three plain ones and the fused activations
/// (`relu(bn(x))`, `relu(bn(x) + residual)`). Serialized by [`Op::name`]
/// (the CSV spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Training-mode forward: batch statistics + normalized output.
    Train,
    /// Forward with given (running) statistics.
    Eval,
    /// Gradients of input, weight and bias (batch statistics).
    Backward,
    /// `relu(bn(x))`, training mode.
    #[value(name = "train_relu")]
    TrainRelu,
    /// `relu(bn(x))` with given statistics.
    #[value(name = "eval_relu")]
    EvalRelu,
    /// Backward of `relu(bn(x))` (batch statistics).
    #[value(name = "backward_relu")]
    BackwardRelu,
    /// `relu(bn(x) + residual)`, training mode.
    #[value(name = "train_add_relu")]
    TrainAddRelu,
    /// `relu(bn(x) + residual)` with given statistics.
    #[value(name = "eval_add_relu")]
    EvalAddRelu,
    /// Backward of `relu(bn(x) + residual)`, with the residual's gradient.
    #[value(name = "backward_add_relu")]
    BackwardAddRelu,
}

impl Op {
    /// Every operation, in report order (what `--ops` accepts).
    pub const ALL: [Op; 9] = [
        Op::Train,
        Op::Eval,
        Op::Backward,
        Op::TrainRelu,
        Op::EvalRelu,
        Op::BackwardRelu,
        Op::TrainAddRelu,
        Op::EvalAddRelu,
        Op::BackwardAddRelu,
    ];

    /// What `bnh bench` times without `--ops`: the three plain operations.
    pub const DEFAULT: [Op; 3] = [Op::Train, Op::Eval, Op::Backward];

    /// The name used in flags, CSV and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Op::Train => "train",
            Op::Eval => "eval",
            Op::Backward => "backward",
            Op::TrainRelu => "train_relu",
            Op::EvalRelu => "eval_relu",
            Op::BackwardRelu => "backward_relu",
            Op::TrainAddRelu => "train_add_relu",
            Op::EvalAddRelu => "eval_add_relu",
            Op::BackwardAddRelu => "backward_add_relu",
        }
    }

    /// Whether the operation reads a residual (and writes its gradient).
    pub fn has_residual(self) -> bool {
        matches!(
            self,
            Op::TrainAddRelu | Op::EvalAddRelu | Op::BackwardAddRelu
        )
    }

    /// Whether the operation normalizes with batch statistics (so needs
    /// N·S ≥ 2): every training forward and backward.
    pub fn is_training(self) -> bool {
        !matches!(self, Op::Eval | Op::EvalRelu | Op::EvalAddRelu)
    }

    /// How many tensors of the size of `x` the operation must read or write
    /// at minimum: train reads `x` twice (statistics, then normalization) and
    /// writes `y`; eval reads `x` and writes `y`; backward reads `x` and
    /// `grad_output` and writes `grad_input`. The ReLU adds nothing to the
    /// forwards (it is applied to `y` before it is written) and one read of
    /// `y` (the mask) to backward; the residual adds one read to the
    /// forwards and one write (its gradient) to backward. `gb_per_s` counts
    /// these bytes — the floor of a fused kernel; a composed one moves more.
    pub fn tensor_passes(self) -> usize {
        match self {
            Op::Train => 3,
            Op::Eval => 2,
            Op::Backward => 3,
            Op::TrainRelu => 3,
            Op::EvalRelu => 2,
            Op::BackwardRelu => 4,
            Op::TrainAddRelu => 4,
            Op::EvalAddRelu => 3,
            Op::BackwardAddRelu => 5,
        }
    }
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Op, String> {
        Op::ALL.into_iter().find(|o| o.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
            format!("unknown op '{s}'; use one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for Op {
    /// The name, padded when a width is given (`{op:9}` in tables).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// `eps` used by every benchmark call (PyTorch's default).
pub const EPS: f64 = 1e-5;

/// Buffers for one benchmarked tensor in one element type.
pub struct Buffers<T> {
    dims: Dims,
    x: PageAligned<T>,
    y: PageAligned<T>,
    dy: PageAligned<T>,
    dx: PageAligned<T>,
    /// The residual of the add-relu ops, and its gradient (empty unless
    /// the sweep times one of them).
    residual: PageAligned<T>,
    grad_residual: PageAligned<T>,
    copy_dst: PageAligned<T>,
    weight: Vec<f64>,
    bias: Vec<f64>,
    mean: Vec<f64>,
    var: Vec<f64>,
    grad_weight: Vec<f64>,
    grad_bias: Vec<f64>,
}

impl<T: Element> Buffers<T> {
    /// Allocate and fill every buffer for `point` (seeded, so runs are
    /// repeatable); the residual and its gradient only `with_residual`.
    pub fn new(point: &BenchPoint, with_residual: bool) -> crate::Result<Self> {
        let dims = Dims::from_shape("x", point.shape.dims(), point.layout)?;
        let len = dims.len();
        let c = dims.c;
        let mut rng = Rng::new(0x5EED ^ len as u64);
        // Fallible allocations: an error, not an abort, if memory runs out
        // (the sweep checks every cell against the budget before this).
        let mut fill = |lo: f64, hi: f64, what: &str| -> crate::Result<PageAligned<T>> {
            let mut v = PageAligned::try_new(T::zero(), len, what)?;
            v.iter_mut()
                .for_each(|e| *e = T::from_f64(rng.range(lo, hi)));
            Ok(v)
        };
        let x = fill(-1.0, 3.0, "x")?;
        let dy = fill(-1.0, 1.0, "dy")?;
        let res_len = if with_residual { len } else { 0 };
        let residual = {
            let mut v = PageAligned::try_new(T::zero(), res_len, "residual")?;
            v.iter_mut()
                .for_each(|e| *e = T::from_f64(rng.range(-1.0, 1.0)));
            v
        };
        let ch = |rng: &mut Rng, lo: f64, hi: f64| -> Vec<f64> {
            (0..c).map(|_| rng.range(lo, hi)).collect()
        };
        let mut rng = Rng::new(0xC0FFEE);
        let weight = ch(&mut rng, 0.5, 1.5);
        let bias = ch(&mut rng, -0.5, 0.5);
        // The statistics of uniform(-1, 3): mean 1, variance 4/3.
        let mean = vec![1.0; c];
        let var = vec![4.0 / 3.0; c];
        Ok(Buffers {
            dims,
            x,
            // Outputs are written once now so their pages are mapped before timing.
            y: PageAligned::try_new(T::zero(), len, "y")?,
            dy,
            dx: PageAligned::try_new(T::zero(), len, "dx")?,
            residual,
            grad_residual: PageAligned::try_new(T::zero(), res_len, "grad_residual")?,
            copy_dst: PageAligned::try_new(T::zero(), len, "the memcpy buffer")?,
            weight,
            bias,
            mean,
            var,
            grad_weight: vec![0.0; c],
            grad_bias: vec![0.0; c],
        })
    }

    /// One call of `op` with `imp`'s kernel for `T`: the plain operation,
    /// or with an activation `relu(bn(x) [+ residual])` forward (train or
    /// eval) or its backward, from `y` as the forward left it. Each
    /// problem is built once for both.
    pub fn call(&mut self, imp: &dyn Implementation, op: Op) -> crate::Result<()> {
        let d = self.dims;
        let affine = Affine {
            weight: Some(&self.weight),
            bias: Some(&self.bias),
        };
        let relu = !Op::DEFAULT.contains(&op);
        let add = op.has_residual();
        let residual = add.then(|| d.tensor(&self.residual)).transpose()?;
        let k = kernel::<T>(imp)?;
        match op {
            Op::Train | Op::TrainRelu | Op::TrainAddRelu => {
                let p = TrainForward::new(
                    d.tensor(&self.x)?,
                    d.tensor_mut(&mut self.y)?,
                    affine,
                    EPS,
                    &mut self.mean,
                    &mut self.var,
                )?;
                if relu {
                    k.try_forward_train_relu(TrainRelu::new(p, residual)?)?;
                } else {
                    k.try_forward_train(p)?;
                }
            }
            Op::Eval | Op::EvalRelu | Op::EvalAddRelu => {
                let p = EvalForward::new(
                    d.tensor(&self.x)?,
                    d.tensor_mut(&mut self.y)?,
                    &self.mean,
                    &self.var,
                    affine,
                    EPS,
                )?;
                if relu {
                    k.try_forward_eval_relu(EvalRelu::new(p, residual)?)?;
                } else {
                    k.try_forward_eval(p)?;
                }
            }
            Op::Backward | Op::BackwardRelu | Op::BackwardAddRelu => {
                let p = Backward::new(
                    d.tensor(&self.x)?,
                    d.tensor(&self.dy)?,
                    d.tensor_mut(&mut self.dx)?,
                    &self.mean,
                    &self.var,
                    Some(&self.weight),
                    EPS,
                    GradMode::Batch,
                    &mut self.grad_weight,
                    &mut self.grad_bias,
                )?;
                if relu {
                    let gr = add
                        .then(|| d.tensor_mut(&mut self.grad_residual))
                        .transpose()?;
                    k.try_backward_relu(BackwardRelu::new(p, d.tensor(&self.y)?, gr)?)?;
                } else {
                    k.try_backward(p)?;
                }
            }
        }
        Ok(())
    }

    /// One roofline copy of `x` into a preallocated buffer of the same size
    /// with routine `copy` (see [`roofline`]), split into `threads`
    /// contiguous chunks, so an N-thread kernel is compared with an N-thread
    /// copy (a 1-thread copy would understate the roofline).
    pub fn copy(&mut self, copy: Copy, threads: usize) {
        let src = as_bytes(&self.x);
        // SAFETY: see `as_bytes`; `copy_dst` is exclusively borrowed here and
        // any byte pattern is a valid `T` for the plain float types
        // `Element` is implemented for (f32, f64, bf16, f16).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(
                self.copy_dst.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(&*self.copy_dst),
            )
        };
        copy.run(dst, src, threads);
    }

    /// The read-only pass over `x` (see [`roofline::read`]).
    pub fn read(&self, threads: usize) -> u64 {
        roofline::read(as_bytes(&self.x), threads)
    }
}

/// The bytes of a slice of elements.
fn as_bytes<T: Element>(v: &[T]) -> &[u8] {
    // SAFETY: the `Element` types (f32, f64, bf16, f16) are plain numbers
    // with no padding, so all `size_of_val(v)` bytes are initialized; `u8`
    // has alignment 1 and the lifetime is `v`'s.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// [`Buffers`] of any element type, so the runner is not generic.
pub trait Measured: Send {
    /// One call of `op` (see [`Buffers::call`]).
    fn call(&mut self, imp: &dyn Implementation, op: Op) -> crate::Result<()>;
    /// One roofline copy (see [`Buffers::copy`]).
    fn copy(&mut self, copy: Copy, threads: usize);
    /// One read-only pass (see [`Buffers::read`]).
    fn read(&self, threads: usize) -> u64;
}

impl<T: Element> Measured for Buffers<T> {
    fn call(&mut self, imp: &dyn Implementation, op: Op) -> crate::Result<()> {
        Buffers::call(self, imp, op)
    }
    fn copy(&mut self, copy: Copy, threads: usize) {
        Buffers::copy(self, copy, threads)
    }
    fn read(&self, threads: usize) -> u64 {
        Buffers::read(self, threads)
    }
}

/// The buffers of one benchmark point in its runtime dtype.
pub type Workload = Box<dyn Measured>;

/// Allocate the buffers of `point` in `dtype` (with the residual buffers
/// when `with_residual`: an add-relu op is timed).
pub fn workload(point: &BenchPoint, dtype: DType, with_residual: bool) -> crate::Result<Workload> {
    struct Alloc<'a>(&'a BenchPoint, bool);
    impl ForDtype for Alloc<'_> {
        type Output = crate::Result<Workload>;
        fn call<T: Element>(self) -> Self::Output {
            Ok(Box::new(Buffers::<T>::new(self.0, self.1)?))
        }
    }
    dtype.dispatch(Alloc(point, with_residual))
}
