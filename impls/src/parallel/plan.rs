//! `parallel`'s fixed work decomposition (sizes of its groups and tiles).
//!
//! Every reduction is cut into chunks whose boundaries depend only on the
//! tensor's dims — never on the number of threads — and partial results are
//! merged in chunk order. Threads only decide *who* computes a chunk, so the
//! result is bitwise identical for any rayon pool size.
//!
//! - contiguous: channel `c`'s `N·S` values, in `(n, s)` order, are cut into
//!   groups of [`GROUP`] values (a few run pieces, cut at run ends), whose
//!   two-pass statistics are computed while the group is in L2.
//! - channels-last: rows (positions `(n, s)`, each holding all C channels) are
//!   cut into groups of [`RowPlan::group_rows`] rows, each into tiles of
//!   [`RowPlan::tile_rows`] rows.

use super::lanes::{MIN_SUPER_ROW, MIN_TILE_ROWS, TILE};
use crate::engine::plan::SuperRow;
use crate::layout::Dims;
use std::ops::Range;

/// Values of one channel per statistics group (contiguous layout).
pub const GROUP: usize = 1 << 16;
/// Elements per statistics group (channels-last layout).
pub const ROW_GROUP: usize = 1 << 17;
/// Fewest rows per channels-last statistics group: each group writes (and
/// the merge reads) one [`crate::moments::Moments`] per channel, so with
/// many channels (C = 4096: 32 rows of 512 KiB would make 96 KiB of partials
/// per group) small groups cost allocation, page faults and merge traffic.
pub const MIN_GROUP_ROWS: usize = 128;
/// Elements per task of the element-wise passes (normalize, `grad_input`).
pub const TASK: usize = 1 << 16;

/// Number of statistics groups of one channel (contiguous layout).
pub fn groups(dims: Dims) -> usize {
    dims.per_channel().div_ceil(GROUP)
}

/// Channels per statistics task (contiguous layout, `parallel`'s
/// schedule): enough that a task reads about [`GROUP`] values, so short runs
/// (S = 49, 64) are read as long address-ordered stretches. Only *who*
/// computes a group changes with it, never the result.
pub fn stat_channels(dims: Dims) -> usize {
    (GROUP / dims.per_channel().min(GROUP)).clamp(1, dims.c)
}

/// Memory ranges of group `g` of channel `c` (contiguous layout), in order.
pub fn group_pieces(dims: Dims, c: usize, g: usize) -> impl Iterator<Item = Range<usize>> {
    let (s, end) = (dims.s, (g * GROUP + GROUP).min(dims.per_channel()));
    let mut j = g * GROUP;
    std::iter::from_fn(move || {
        if j >= end {
            return None;
        }
        let n = j / s;
        let stop = end.min((n + 1) * s);
        let off = dims.offset(n, c, j % s);
        let len = stop - j;
        j = stop;
        Some(off..off + len)
    })
}

/// How channels-last rows are grouped, tiled and vectorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPlan {
    /// Super-rows of `⌈64/C⌉` rows, one vector of `L` lanes.
    pub sr: SuperRow,
    /// Rows per two-pass tile (a multiple of the super-row height).
    pub tile_rows: usize,
    /// Rows per statistics group (a multiple of `tile_rows`).
    pub group_rows: usize,
    /// Rows per element-wise task (a multiple of the super-row height).
    pub task_rows: usize,
}

impl RowPlan {
    /// The plan of rows of `c` channels.
    pub fn new(c: usize) -> RowPlan {
        let sr = SuperRow::new(c, MIN_SUPER_ROW);
        let tile_rows = (TILE / sr.l).max(MIN_TILE_ROWS.div_ceil(sr.m)) * sr.m;
        RowPlan {
            sr,
            tile_rows,
            group_rows: (ROW_GROUP / (tile_rows * c)).max(MIN_GROUP_ROWS.div_ceil(tile_rows))
                * tile_rows,
            task_rows: (TASK / sr.l).max(1) * sr.m,
        }
    }
}
