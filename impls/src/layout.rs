//! Memory formats and the `(N, C, S)` view every kernel works on.
//!
//! A logical tensor `(N, C, *spatial)` with 0 to 3 spatial dims is, for a
//! per-channel operation, the same as `(N, C, S)` with `S` the product of the
//! spatial sizes, because the spatial dims are adjacent in memory in both
//! formats PyTorch uses:
//! - contiguous: row-major over `(N, C, S)`;
//! - channels-last: row-major over `(N, S, C)`.
//!
//! Public entry points take `ndarray` views whose strides say which format
//! the data is in; [`classify`] names the format, and
//! [`crate::engine::tensor::Tensor`] carries the flat memory with its
//! [`Dims`] to the kernels.

use crate::error::{Error, Result};
use ndarray::{ArrayViewD, ArrayViewMutD, Dimension, ShapeBuilder};
use serde::{Deserialize, Serialize};

/// Memory format of a batch, named as in bn-case/1 files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Row-major over `(N, C, *spatial)`: each channel's spatial run is contiguous.
    Contiguous,
    /// Row-major over `(N, *spatial, C)`: the channels of one position are contiguous.
    ChannelsLast,
}

impl Layout {
    /// Both layouts, for sweeps.
    pub const ALL: [Layout; 2] = [Layout::Contiguous, Layout::ChannelsLast];

    /// The name used in case files, CLI flags and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Contiguous => "contiguous",
            Layout::ChannelsLast => "channels_last",
        }
    }

    /// Element strides of a logical `(N, C, *spatial)` tensor stored in this format.
    pub fn strides_for(self, shape: &[usize]) -> Vec<usize> {
        let rank = shape.len();
        let mut strides = vec![0usize; rank];
        // Memory order of the logical axes, outermost first.
        // Below rank 2 there is no channel axis to move; such shapes are
        // rejected by the rank check, so they only need to not panic here.
        let order: Vec<usize> = match self {
            Layout::ChannelsLast if rank < 2 => (0..rank).collect(),
            Layout::Contiguous => (0..rank).collect(),
            Layout::ChannelsLast => std::iter::once(0)
                .chain(2..rank)
                .chain(std::iter::once(1))
                .collect(),
        };
        let mut step = 1usize;
        for &axis in order.iter().rev() {
            strides[axis] = step;
            step = step.saturating_mul(shape[axis]);
        }
        strides
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "contiguous" => Ok(Layout::Contiguous),
            "channels_last" => Ok(Layout::ChannelsLast),
            other => Err(format!(
                "unknown layout '{other}'; use contiguous or channels_last"
            )),
        }
    }
}

/// Sizes of a batch seen as `(N, C, S)`, plus its memory format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Batch size N.
    pub n: usize,
    /// Channels C (the module's `num_features`).
    pub c: usize,
    /// Product of the spatial sizes (1 when there are none).
    pub s: usize,
    /// Where each element lives in the flat memory.
    pub layout: Layout,
}

impl Dims {
    /// Dims of a logical shape `(N, C, *spatial)`; rejects ranks outside
    /// 2..=5 and element counts that overflow. Zero sizes are accepted
    /// (PyTorch accepts empty batches and empty spatial dims); the problem
    /// types ([`crate::problem`]) reject them, so kernels never see one.
    pub fn from_shape(what: &str, shape: &[usize], layout: Layout) -> Result<Dims> {
        if !(2..=5).contains(&shape.len()) {
            return Err(Error::BadRank {
                what: what.to_string(),
                actual: shape.len(),
            });
        }
        let s = shape[2..]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let total = s.and_then(|s| s.checked_mul(shape[0])?.checked_mul(shape[1]));
        match (s, total) {
            (Some(s), Some(total)) if total <= isize::MAX as usize / 8 => Ok(Dims {
                n: shape[0],
                c: shape[1],
                s,
                layout,
            }),
            _ => Err(Error::TooLarge {
                what: what.to_string(),
                shape: shape.to_vec(),
            }),
        }
    }

    /// Number of elements N·C·S.
    pub fn len(&self) -> usize {
        self.n * self.c * self.s
    }

    /// Whether N, C or a spatial size is 0 (no element): such a batch is
    /// handled by the module, never passed to a kernel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per channel, N·S: the count that batch statistics average over.
    pub fn per_channel(&self) -> usize {
        self.n * self.s
    }

    /// The same memory described with the layout kernels handle best: with
    /// no spatial extent (S = 1) both layouts are row-major `(N, C)`, which
    /// is channels-last in effect (one row holds every channel), so walking
    /// it as rows avoids N·C runs of length 1.
    pub fn canonical(&self) -> Dims {
        if self.s == 1 {
            Dims {
                layout: Layout::ChannelsLast,
                ..*self
            }
        } else {
            *self
        }
    }

    /// Element strides of the logical `(N, C, S)` view in this layout.
    pub fn strides3(&self) -> [usize; 3] {
        match self.layout {
            Layout::Contiguous => [self.c * self.s, self.s, 1],
            Layout::ChannelsLast => [self.s * self.c, 1, self.c],
        }
    }

    /// Offset in flat memory of logical element `(n, c, s)`.
    #[inline(always)]
    pub fn offset(&self, n: usize, c: usize, s: usize) -> usize {
        let [sn, sc, ss] = self.strides3();
        n * sn + c * sc + s * ss
    }

    /// Offsets of channel `c`'s N·S values, in `(n, s)` order (a convenience
    /// for checks and tests; kernels walk runs or rows instead).
    pub fn channel_offsets(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).flat_map(move |n| (0..self.s).map(move |s| self.offset(n, c, s)))
    }

    /// Visit every offset of the flat memory in order, with its channel.
    ///
    /// Streaming in memory order is what makes a single pass cache-friendly
    /// in both layouts: contiguous memory is N·C runs of S values of one
    /// channel; channels-last memory is N·S rows of all C channels.
    #[inline(always)]
    pub fn for_each_offset(&self, mut f: impl FnMut(usize, usize)) {
        match self.canonical().layout {
            Layout::Contiguous => {
                for run in 0..self.n * self.c {
                    let c = run % self.c;
                    for i in run * self.s..(run + 1) * self.s {
                        f(i, c);
                    }
                }
            }
            Layout::ChannelsLast => {
                for row in 0..self.n * self.s {
                    for c in 0..self.c {
                        f(row * self.c + c, c);
                    }
                }
            }
        }
    }
}

/// Which supported layout (if any) a shape/stride pair is. Dimensions of
/// length 1 may carry any stride, as in ndarray and PyTorch; when both
/// layouts fit (e.g. no spatial dims) the answer is `Contiguous`, and the
/// two are then the same memory order.
pub fn classify(shape: &[usize], strides: &[isize]) -> Option<Layout> {
    Layout::ALL.into_iter().find(|layout| {
        let want = layout.strides_for(shape);
        shape
            .iter()
            .zip(strides)
            .zip(&want)
            .all(|((&len, &got), &want)| len <= 1 || got == want as isize)
    })
}

/// A logical `(N, C, *spatial)` view of flat memory stored in `layout`,
/// e.g. a case file's data; fails if the length does not match the shape.
/// An empty shape gets standard strides (ndarray rejects the layout's
/// strides for zero-sized arrays; with no elements the layout is moot), so
/// the caller's shape check reports it as empty instead of panicking here.
pub fn nd_view<'a, T>(shape: &[usize], layout: Layout, data: &'a [T]) -> Result<ArrayViewD<'a, T>> {
    check_len("tensor data", shape, data.len())?;
    let shape = ndarray::IxDyn(shape);
    Ok(if data.is_empty() {
        ArrayViewD::from_shape(shape, data)
    } else {
        let strides = ndarray::IxDyn(&layout.strides_for(shape.slice()));
        ArrayViewD::from_shape(shape.strides(strides), data)
    }
    .expect("length checked above"))
}

/// Mutable counterpart of [`nd_view`].
pub fn nd_view_mut<'a, T>(
    shape: &[usize],
    layout: Layout,
    data: &'a mut [T],
) -> Result<ArrayViewMutD<'a, T>> {
    check_len("output buffer", shape, data.len())?;
    let shape = ndarray::IxDyn(shape);
    Ok(if data.is_empty() {
        ArrayViewMutD::from_shape(shape, data)
    } else {
        let strides = ndarray::IxDyn(&layout.strides_for(shape.slice()));
        ArrayViewMutD::from_shape(shape.strides(strides), data)
    }
    .expect("length checked above"))
}

fn check_len(what: &str, shape: &[usize], len: usize) -> Result<()> {
    let dims = ndarray::IxDyn(shape);
    let expected = dims.size_checked().unwrap_or(usize::MAX);
    if expected != len {
        return Err(Error::LengthMismatch {
            what: format!("{what} for shape {shape:?}"),
            expected,
            actual: len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_of_both_layouts() {
        assert_eq!(
            Layout::Contiguous.strides_for(&[2, 3, 4, 5]),
            vec![60, 20, 5, 1]
        );
        assert_eq!(
            Layout::ChannelsLast.strides_for(&[2, 3, 4, 5]),
            vec![60, 1, 15, 3]
        );
        assert_eq!(Layout::ChannelsLast.strides_for(&[2, 3]), vec![3, 1]);
    }

    #[test]
    fn nd_view_checks_length_and_accepts_empty_shapes() {
        for layout in Layout::ALL {
            for shape in [vec![0, 3], vec![2, 3, 0], vec![2, 0, 4, 1]] {
                assert!(nd_view::<f32>(&shape, layout, &[]).is_ok());
                assert!(nd_view_mut::<f32>(&shape, layout, &mut []).is_ok());
            }
        }
        assert!(matches!(
            nd_view(&[2, 3], Layout::Contiguous, &[0.0f32; 5]),
            Err(Error::LengthMismatch {
                expected: 6,
                actual: 5,
                ..
            })
        ));
    }
}
