//! Fuzz driver: arbitrary bytes decoded into module and kernel calls of
//! `bn_impls` with random shapes, lengths, layouts and configs. Included by
//! path (no copy) by the `api_call` cargo-fuzz target (`fuzz/fuzz_targets/`)
//! and by the no-panic property tests (`harness/tests/no_panic.rs`).
//!
//! Contract under test: bad input never panics; every rejection is a typed
//! [`bn_impls::Error`] whose message names the problem. The driver returns
//! the rejection messages it saw so tests can inspect them; a panic anywhere
//! below is a bug.

use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{
    Affine, Backward, BatchNorm, Config, Dims, Element, EvalForward, GradMode, Layout, Tensor,
    TensorMut, TrainForward,
};
use ndarray::{Array3, ArrayD, ArrayView3, ArrayViewMut3, IxDyn};

/// A cursor over the fuzzer's bytes; past the end it yields zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    /// A length near `want`: usually right, sometimes off by a little.
    fn len_near(&mut self, want: usize) -> usize {
        match self.below(8) {
            0 => want + 1,
            1 => want.saturating_sub(1),
            2 => 0,
            _ => want,
        }
    }
}

const EPS: [f64; 7] = [1e-5, 1e-3, 0.0, -1e-5, f64::NAN, f64::INFINITY, 1e-300];
const MOMENTUM: [Option<f64>; 7] = [
    Some(0.1),
    None,
    Some(0.0),
    Some(1.0),
    Some(-0.1),
    Some(1.5),
    Some(f64::NAN),
];
const VALUES: [f64; 8] = [0.0, 1.0, -2.5, 1e30, -1e-30, f64::NAN, f64::INFINITY, 3.0];

fn values<T: Element>(b: &mut Bytes<'_>, n: usize) -> Vec<T> {
    (0..n).map(|_| T::from_f64(b.pick(&VALUES))).collect()
}

/// Decode a random module call (shape of rank 0–6 with dims 0–4, layout,
/// possibly a foreign stride order, config, parameters and buffers of
/// near-right lengths, mode, forward then maybe backward with possibly
/// mismatched shapes) and run it with every implementation, plus the
/// kernel-level constructors with near-right lengths. Returns every
/// rejection message.
pub fn api_call(data: &[u8]) -> Vec<String> {
    let mut b = Bytes(data);
    let f64_dtype = b.flag();
    let mut out = Vec::new();
    for imp in bn_impls::registry::all() {
        let mut b = Bytes(b.0);
        if f64_dtype {
            module_call::<f64>(&mut b, *imp, &mut out);
        } else {
            module_call::<f32>(&mut b, *imp, &mut out);
        }
    }
    kernel_calls(&mut b, &mut out);
    // Shapes whose element count overflows are rejected, not allocated.
    let huge = [b.pick(&[usize::MAX, usize::MAX / 2, 1 << 40]), 3, 1 << 30];
    if let Err(e) = Dims::from_shape("x", &huge, Layout::Contiguous) {
        out.push(e.to_string());
    }
    out
}

fn shape(b: &mut Bytes<'_>) -> Vec<usize> {
    let rank = b.below(7);
    (0..rank).map(|_| b.below(5)).collect()
}

fn module_call<T: Element>(
    b: &mut Bytes<'_>,
    imp: &dyn bn_impls::Implementation,
    out: &mut Vec<String>,
) {
    let shape = shape(b);
    let layout = b.pick(&Layout::ALL);
    let c_cfg = if shape.len() > 1 && b.below(4) != 0 {
        shape[1]
    } else {
        b.below(4)
    };
    let config = Config {
        num_features: c_cfg,
        eps: b.pick(&EPS),
        momentum: b.pick(&MOMENTUM),
        affine: b.flag(),
        track_running_stats: b.flag(),
    };
    let mut bn = match BatchNorm::<T>::new(config) {
        Ok(bn) => bn,
        Err(e) => {
            out.push(e.to_string());
            return;
        }
    };
    bn.training = b.flag();
    if b.below(4) == 0 {
        // A hand-edited state: lengths and presence that may not match the config.
        let c = c_cfg;
        let vec_or_none = |b: &mut Bytes<'_>| {
            if b.flag() {
                let n = b.len_near(c);
                Some(values::<T>(b, n))
            } else {
                None
            }
        };
        bn.weight = vec_or_none(b);
        bn.bias = vec_or_none(b);
        bn.running_mean = vec_or_none(b);
        bn.running_var = vec_or_none(b);
        bn.num_batches_tracked = b.pick(&[None, Some(0), Some(-3), Some(i64::MAX)]);
    }
    let numel: usize = shape.iter().product();
    let x = values::<T>(b, numel);
    let mut y = vec![T::zero(); numel];
    let foreign = b.below(6) == 0;
    let result = (|| -> bn_impls::Result<()> {
        if foreign && shape.len() >= 3 {
            // Reversed axes: neither contiguous nor channels-last in general.
            let arr = ArrayD::from_shape_vec(IxDyn(&shape), x.clone()).expect("numel matches");
            let xv = arr.view().reversed_axes();
            let mut yarr = ArrayD::from_elem(xv.shape(), T::zero());
            bn.forward(imp, xv, yarr.view_mut())?;
        } else {
            bn.forward(
                imp,
                nd_view(&shape, layout, &x)?,
                nd_view_mut(&shape, layout, &mut y)?,
            )?;
        }
        if b.flag() {
            let mut dshape = shape.clone();
            if b.below(4) == 0 && !dshape.is_empty() {
                dshape[0] += 1;
            }
            let dn: usize = dshape.iter().product();
            let dy = values::<T>(b, dn);
            let mut dx = vec![T::zero(); dn];
            bn.backward(
                imp,
                nd_view(&shape, layout, &x)?,
                nd_view(&dshape, layout, &dy)?,
                nd_view_mut(&dshape, layout, &mut dx)?,
            )?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.push(e.to_string());
    }
}

/// The kernel-level constructors with near-right lengths (validated
/// arguments are the only way into a kernel).
fn kernel_calls(b: &mut Bytes<'_>, out: &mut Vec<String>) {
    let dims = Dims {
        n: 1 + b.below(3),
        c: 1 + b.below(3),
        s: 1 + b.below(3),
        layout: Layout::Contiguous,
    };
    let len = dims.len();
    let c = dims.c;
    let x = vec![1.0f32; len];
    let dy = vec![1.0f32; len];
    // y (and dx) with a shape that is usually right, sometimes one row or channel off.
    let (yn, yc) = match b.below(6) {
        0 => (dims.n + 1, dims.c),
        1 => (dims.n, dims.c + 1),
        _ => (dims.n, dims.c),
    };
    let lens: Vec<usize> = (0..5).map(|_| b.len_near(c)).collect();
    let eps = b.pick(&EPS);
    let w = vec![1.0; lens[2]];
    let view =
        |v: &[f32]| ArrayView3::from_shape((dims.n, dims.c, dims.s), v).map(|a| a.to_owned());
    let (xa, dya) = (
        view(&x).expect("length from dims"),
        view(&dy).expect("length from dims"),
    );
    {
        let mut y = Array3::<f32>::zeros((yn, yc, dims.s));
        let (mut mean, mut var) = (vec![0.0; lens[0]], vec![1.0; lens[1]]);
        let affine = Affine {
            weight: Some(&w),
            bias: None,
        };
        let r = tensors(xa.view(), y.view_mut())
            .and_then(|(x, y)| TrainForward::new(x, y, affine, eps, &mut mean, &mut var));
        out.extend(rejection(r));
    }
    let (mean, var) = (vec![0.0; lens[0]], vec![1.0; lens[1]]);
    {
        let mut y = Array3::<f32>::zeros((yn, yc, dims.s));
        let affine = Affine {
            weight: Some(&w),
            bias: None,
        };
        let r = tensors(xa.view(), y.view_mut())
            .and_then(|(x, y)| EvalForward::new(x, y, &mean, &var, affine, eps));
        out.extend(rejection(r));
    }
    {
        let mut dx = Array3::<f32>::zeros((yn, yc, dims.s));
        let (mut gw, mut gb) = (vec![0.0; lens[3]], vec![0.0; lens[4]]);
        let dy = Tensor::from_ndarray("grad_output", dya.view().into_dyn());
        let r = tensors(xa.view(), dx.view_mut()).and_then(|(x, dx)| {
            Backward::new(
                x,
                dy?,
                dx,
                &mean,
                &var,
                Some(&w),
                eps,
                GradMode::Batch,
                &mut gw,
                &mut gb,
            )
        });
        out.extend(rejection(r));
    }
}

/// The validated tensors of an `(x, output)` pair of 3-D arrays.
fn tensors<'a>(
    x: ArrayView3<'a, f32>,
    y: ArrayViewMut3<'a, f32>,
) -> bn_impls::Result<(Tensor<'a, f32>, TensorMut<'a, f32>)> {
    Ok((
        Tensor::from_ndarray("x", x.into_dyn())?,
        TensorMut::from_ndarray("y", y.into_dyn())?,
    ))
}

fn rejection<T>(r: bn_impls::Result<T>) -> Option<String> {
    r.err().map(|e| e.to_string())
}
