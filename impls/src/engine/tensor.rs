//! The validated tensor at the problem boundary.
//!
//! A [`Tensor`] is flat memory plus the [`Dims`] that say how to read it as
//! `(N, C, S)`: made once from an `ndarray` view (whose strides are
//! classified as contiguous or channels-last) or from flat memory with known
//! dims (whose length is checked), and carried unchanged to the kernels.
//! Nothing inside the library converts it back to an `ndarray` view.

use crate::error::{Error, Result};
use crate::layout::{classify, Dims, Layout};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// A read-only batch: flat memory in `dims.layout` order, `dims.len()` long.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a, T> {
    data: &'a [T],
    dims: Dims,
}

/// A writable batch (an output buffer), validated like [`Tensor`].
#[derive(Debug)]
pub struct TensorMut<'a, T> {
    data: &'a mut [T],
    dims: Dims,
}

fn check_len(what: &str, dims: Dims, len: usize) -> Result<()> {
    if dims.len() != len {
        return Err(Error::LengthMismatch {
            what: format!("{what} (shape ({}, {}, {}))", dims.n, dims.c, dims.s),
            expected: dims.len(),
            actual: len,
        });
    }
    Ok(())
}

/// Dims of an `(N, C, *spatial)` shape with the given strides, or the error
/// that names what is wrong (rank, too large, unsupported strides). An empty
/// shape is read as contiguous: with no elements the memory format is moot
/// (and ndarray gives empty arrays zero strides, which fit neither format).
fn dims_of(what: &str, shape: &[usize], strides: &[isize]) -> Result<Dims> {
    let dims = Dims::from_shape(what, shape, Layout::Contiguous)?;
    if dims.is_empty() {
        return Ok(dims);
    }
    let layout = classify(shape, strides).ok_or_else(|| Error::UnsupportedLayout {
        what: what.to_string(),
        shape: shape.to_vec(),
        strides: strides.to_vec(),
    })?;
    Ok(Dims { layout, ..dims })
}

impl<'a, T> Tensor<'a, T> {
    /// Flat memory read as `dims`; fails if the length is not `dims.len()`.
    pub fn new(what: &str, dims: Dims, data: &'a [T]) -> Result<Self> {
        check_len(what, dims, data.len())?;
        Ok(Tensor { data, dims })
    }

    /// An `(N, C, *spatial)` view with 2 to 5 dimensions, contiguous or
    /// channels-last in memory (the public input type of the library).
    pub fn from_ndarray(what: &str, x: ArrayViewD<'a, T>) -> Result<Self> {
        let dims = dims_of(what, x.shape(), x.strides())?;
        let unsupported = || Error::UnsupportedLayout {
            what: what.to_string(),
            shape: x.shape().to_vec(),
            strides: x.strides().to_vec(),
        };
        let data = x.to_slice_memory_order().ok_or_else(unsupported)?;
        Ok(Tensor { data, dims })
    }

    /// Sizes and memory format.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// The flat memory, `dims().len()` values in layout order.
    pub fn data(&self) -> &'a [T] {
        self.data
    }
}

impl<'a, T> TensorMut<'a, T> {
    /// Flat memory read as `dims`; fails if the length is not `dims.len()`.
    pub fn new(what: &str, dims: Dims, data: &'a mut [T]) -> Result<Self> {
        check_len(what, dims, data.len())?;
        Ok(TensorMut { data, dims })
    }

    /// Mutable counterpart of [`Tensor::from_ndarray`].
    pub fn from_ndarray(what: &str, x: ArrayViewMutD<'a, T>) -> Result<Self> {
        let (shape, strides) = (x.shape().to_vec(), x.strides().to_vec());
        let dims = dims_of(what, &shape, &strides)?;
        let data = x
            .into_slice_memory_order()
            .ok_or(Error::UnsupportedLayout {
                what: what.to_string(),
                shape,
                strides,
            })?;
        Ok(TensorMut { data, dims })
    }

    /// Sizes and memory format.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// The flat memory, consumed (the problem types keep it).
    pub fn into_data(self) -> &'a mut [T] {
        self.data
    }
}

impl Dims {
    /// `data` as a [`Tensor`] of these dims (checks the length).
    pub fn tensor<'a, T>(&self, data: &'a [T]) -> Result<Tensor<'a, T>> {
        Tensor::new("tensor", *self, data)
    }

    /// `data` as a [`TensorMut`] of these dims (checks the length).
    pub fn tensor_mut<'a, T>(&self, data: &'a mut [T]) -> Result<TensorMut<'a, T>> {
        TensorMut::new("output tensor", *self, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::nd_view;

    #[test]
    fn from_ndarray_classifies_both_layouts() {
        for layout in Layout::ALL {
            let data: Vec<u32> = (0..120).collect();
            let v = nd_view(&[2, 3, 4, 5], layout, &data).unwrap();
            let t = Tensor::from_ndarray("x", v.view()).unwrap();
            assert_eq!(t.dims().layout, layout);
            assert_eq!((t.dims().n, t.dims().c, t.dims().s), (2, 3, 20));
            for n in 0..2 {
                for c in 0..3 {
                    for h in 0..4 {
                        for w in 0..5 {
                            let i = t.dims().offset(n, c, h * 5 + w);
                            assert_eq!(t.data()[i], v[[n, c, h, w]]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_other_strides_rank_and_length() {
        let a = ndarray::Array3::<f32>::zeros((2, 3, 4));
        let t = a.view().reversed_axes();
        assert!(matches!(
            Tensor::from_ndarray("x", t.into_dyn()),
            Err(Error::UnsupportedLayout { .. })
        ));
        let a1 = ndarray::Array1::<f32>::zeros(3);
        assert!(matches!(
            Tensor::from_ndarray("x", a1.view().into_dyn()),
            Err(Error::BadRank { actual: 1, .. })
        ));
        // Empty tensors are valid tensors (PyTorch accepts them); only the
        // problem types keep them from the kernels.
        for shape in [&[0, 3][..], &[4, 3, 0, 5], &[2, 0, 4]] {
            let e = ndarray::ArrayD::<f32>::zeros(shape);
            let t = Tensor::from_ndarray("x", e.view()).unwrap();
            assert!(t.dims().is_empty() && t.data().is_empty(), "{shape:?}");
            assert_eq!(t.dims().layout, Layout::Contiguous);
            let mut e = ndarray::ArrayD::<f32>::zeros(shape);
            assert!(TensorMut::from_ndarray("y", e.view_mut()).is_ok());
        }
        let dims = Dims::from_shape("x", &[2, 3], Layout::Contiguous).unwrap();
        assert!(matches!(
            dims.tensor(&[0.0f32; 5]),
            Err(Error::LengthMismatch {
                expected: 6,
                actual: 5,
                ..
            })
        ));
        assert!(dims.tensor(&[0.0f32; 6]).is_ok());
    }
}
