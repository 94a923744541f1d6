//! Benchmark shapes and the named grids of shapes (`--grid`, `--shapes`).
//!
//! A shape is a logical `(N, C, *spatial)` tensor written `NxCxHxW`; a
//! [`BenchPoint`] is a shape plus the memory layout it is stored in. Grids are
//! chosen so sizes span the L1 cache up to well beyond the last-level cache
//! (this development machine: 32 KiB L1d per core, 32 MiB L3).

use crate::error::{Error, Result};
use bn_impls::{DType, Layout};

/// A logical tensor shape `(N, C, *spatial)` with 0 to 3 spatial dims, all non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape(Vec<usize>);

/// Ranks the kernels accept: `(N, C)` up to `(N, C, D, H, W)`.
pub const MIN_RANK: usize = 2;
/// See [`MIN_RANK`].
pub const MAX_RANK: usize = 5;

impl Shape {
    /// A shape from its dims; rejects ranks outside 2..=5, zero dims and overflow.
    pub fn new(dims: Vec<usize>) -> Result<Shape> {
        let label = dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        if !(MIN_RANK..=MAX_RANK).contains(&dims.len()) {
            return Err(Error::Usage(format!(
                "shape '{label}' has {} dims; give 2 to 5 sizes NxC[xD][xH][xW], e.g. 64x64x56x56",
                dims.len()
            )));
        }
        if dims.contains(&0) {
            return Err(Error::Usage(format!(
                "shape '{label}' has a zero size; benchmarks need every dim at least 1 \
                 (empty batches are valid for the module and `bnh run-case`, but there is \
                 nothing to time)"
            )));
        }
        // Keep every buffer addressable even as f64 (the kernels' own limit).
        let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match total {
            Some(t) if t <= isize::MAX as usize / 8 => Ok(Shape(dims)),
            _ => Err(Error::Usage(format!(
                "shape '{label}' is too large to allocate"
            ))),
        }
    }

    /// The dims, `N` first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    /// Batch size N.
    pub fn n(&self) -> usize {
        self.0[0]
    }
    /// Channels C.
    pub fn c(&self) -> usize {
        self.0[1]
    }
    /// Product of the spatial sizes (1 when there are none).
    pub fn spatial(&self) -> usize {
        self.0[2..].iter().product()
    }
    /// Number of elements N·C·S.
    pub fn elements(&self) -> usize {
        self.0.iter().product()
    }
    /// Whether the layout makes a difference (it does not for `(N, C)`).
    pub fn has_spatial(&self) -> bool {
        self.0.len() > 2
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        f.write_str(&parts.join("x"))
    }
}

impl std::str::FromStr for Shape {
    type Err = Error;
    /// Parse `NxC[xD][xH][xW]`, e.g. `64x64x56x56` or `256x1024`.
    fn from_str(s: &str) -> Result<Shape> {
        let s = s.trim();
        let mut dims = Vec::new();
        for part in s.split(['x', 'X']) {
            let d: usize = part.trim().parse().map_err(|_| {
                Error::Usage(format!(
                    "malformed shape '{s}': '{part}' is not a size; write NxC[xD][xH][xW], e.g. 64x64x56x56"
                ))
            })?;
            dims.push(d);
        }
        Shape::new(dims)
    }
}

/// One point of a benchmark grid: a shape stored in a layout (the dtype,
/// thread count and operation are chosen per measurement).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BenchPoint {
    /// The logical shape `(N, C, *spatial)`.
    pub shape: Shape,
    /// How the tensor is laid out in memory.
    pub layout: Layout,
}

/// The named grids of `--grid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GridName {
    /// BatchNorm1d, 2d (both layouts) and 3d shapes, 8 KiB (f32) to 128 MiB (f64).
    Standard,
    /// N = 1, 2, 4, ..., 4096 at C = 64, 8x8 spatial (16 KiB to 64 MiB in f32).
    BatchSweep,
    /// C = 1, 2, 4, ..., 4096 at N = 64, 8x8 spatial (16 KiB to 64 MiB in f32).
    FeatureSweep,
    /// A handful of shapes for a sweep that finishes in well under a minute.
    Quick,
}

impl GridName {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GridName::Standard => "standard",
            GridName::BatchSweep => "batch-sweep",
            GridName::FeatureSweep => "feature-sweep",
            GridName::Quick => "quick",
        }
    }

    /// The shapes of this grid.
    pub fn shapes(self) -> Vec<Shape> {
        let raw: Vec<Vec<usize>> = match self {
            GridName::Standard => vec![
                vec![32, 64],
                vec![256, 1024],
                vec![4096, 4096],
                vec![32, 64, 28, 28],
                vec![64, 64, 56, 56],
                vec![64, 512, 7, 7],
                vec![256, 3, 64, 64],
                vec![8, 32, 16, 32, 32],
            ],
            GridName::BatchSweep => pow2(0, 12).map(|n| vec![n, 64, 8, 8]).collect(),
            GridName::FeatureSweep => pow2(0, 12).map(|c| vec![64, c, 8, 8]).collect(),
            GridName::Quick => vec![vec![256, 1024], vec![32, 64, 28, 28], vec![64, 64, 56, 56]],
        };
        raw.into_iter()
            .map(|d| Shape::new(d).expect("built-in grid shapes are valid"))
            .collect()
    }

    /// Layouts measured when `--layouts` is not given.
    pub fn default_layouts(self) -> Vec<Layout> {
        match self {
            GridName::Standard | GridName::Quick => Layout::ALL.to_vec(),
            GridName::BatchSweep | GridName::FeatureSweep => vec![Layout::Contiguous],
        }
    }

    /// Element types measured when `--dtypes` is not given.
    pub fn default_dtypes(self) -> Vec<DType> {
        match self {
            GridName::Standard => vec![DType::F32, DType::F64],
            _ => vec![DType::F32],
        }
    }

    /// `--min-time` when not given: short for `quick` so it stays under a minute.
    pub fn default_min_time(self) -> f64 {
        match self {
            GridName::Quick => 0.05,
            _ => 0.25,
        }
    }
}

fn pow2(from: u32, to: u32) -> impl Iterator<Item = usize> {
    (from..=to).map(|k| 1usize << k)
}

/// Shapes × layouts, in order. `(N, C)` shapes are measured once, as
/// contiguous, since both layouts are the same memory for them.
pub fn cases(shapes: &[Shape], layouts: &[Layout]) -> Vec<BenchPoint> {
    let mut out: Vec<BenchPoint> = Vec::new();
    for shape in shapes {
        for &layout in layouts {
            let layout = if shape.has_spatial() {
                layout
            } else {
                Layout::Contiguous
            };
            let point = BenchPoint {
                shape: shape.clone(),
                layout,
            };
            if !out.contains(&point) {
                out.push(point);
            }
        }
    }
    out
}
