//! Shared helpers of the integration tests: deterministic random batches and
//! one call of each operation on flat buffers.
#![allow(dead_code)]

use bn_impls::problem::{Affine, Backward, EvalForward, GradMode, TrainForward};
use bn_impls::{kernel, Dims, Element, Implementation, Layout};

/// A small deterministic generator (SplitMix64), so tests need no RNG crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// `len` values `offset + spread·u`, u uniform in [-1, 1).
pub fn data<T: Element>(rng: &mut Rng, len: usize, offset: f64, spread: f64) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f64(offset + spread * rng.unit()))
        .collect()
}

/// Everything one test run produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs<T> {
    pub y: Vec<T>,
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub y_eval: Vec<T>,
    pub dx: Vec<T>,
    pub gw: Vec<f64>,
    pub gb: Vec<f64>,
    pub dx_fixed: Vec<T>,
}

/// Run train forward, eval forward (with the batch statistics), backward in
/// batch mode and in fixed mode on one input.
pub fn run_all<T: Element>(imp: &dyn Implementation, dims: Dims, x: &[T], dy: &[T]) -> Outputs<T> {
    let k = kernel::<T>(imp).unwrap();
    let c = dims.c;
    let w: Vec<f64> = (0..c).map(|i| 0.5 + (i % 7) as f64 * 0.25).collect();
    let b: Vec<f64> = (0..c).map(|i| (i % 5) as f64 * 0.5 - 1.0).collect();
    let affine = Affine {
        weight: Some(&w),
        bias: Some(&b),
    };
    let eps = 1e-5;
    let mut o = Outputs {
        y: vec![T::zero(); x.len()],
        mean: vec![0.0; c],
        var: vec![0.0; c],
        y_eval: vec![T::zero(); x.len()],
        dx: vec![T::zero(); x.len()],
        gw: vec![0.0; c],
        gb: vec![0.0; c],
        dx_fixed: vec![T::zero(); x.len()],
    };
    k.forward_train(
        TrainForward::new(
            dims.tensor(x).unwrap(),
            dims.tensor_mut(&mut o.y).unwrap(),
            affine,
            eps,
            &mut o.mean,
            &mut o.var,
        )
        .unwrap(),
    );
    k.forward_eval(
        EvalForward::new(
            dims.tensor(x).unwrap(),
            dims.tensor_mut(&mut o.y_eval).unwrap(),
            &o.mean,
            &o.var,
            affine,
            eps,
        )
        .unwrap(),
    );
    for (mode, out) in [
        (GradMode::Batch, &mut o.dx),
        (GradMode::Fixed, &mut o.dx_fixed),
    ] {
        let (mut gw, mut gb) = (vec![0.0; c], vec![0.0; c]);
        k.backward(
            Backward::new(
                dims.tensor(x).unwrap(),
                dims.tensor(dy).unwrap(),
                dims.tensor_mut(out).unwrap(),
                &o.mean,
                &o.var,
                Some(&w),
                eps,
                mode,
                &mut gw,
                &mut gb,
            )
            .unwrap(),
        );
        if mode == GradMode::Batch {
            o.gw = gw;
            o.gb = gb;
        }
    }
    o
}

/// Dims of a logical shape.
pub fn dims(shape: &[usize], layout: Layout) -> Dims {
    Dims::from_shape("x", shape, layout).unwrap()
}

/// Bit patterns, so NaN == NaN and -0 != +0 in comparisons.
pub fn bits<T: Element>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.as_f64().to_bits()).collect()
}

pub fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `got` within `2⁻¹⁹` of `mag` (the sum of the terms' magnitudes) of
/// `want`: the bound of half data's `f32` block sums (19 bits,
/// `runs::NARROW_SUM_BITS`; stated here, not read, so a longer block
/// fails). `what` names the sum in the message.
#[allow(dead_code)] // Not every test binary sums in blocks.
pub fn assert_within_blocks(got: f64, want: f64, mag: f64, what: impl std::fmt::Display) {
    let err = (got - want).abs() / mag;
    assert!(
        err <= 2f64.powi(-19),
        "{what}: off by {err:e} of its magnitude"
    );
}
