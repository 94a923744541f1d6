//! The capability columns of the conformance matrix, each a predicate over a
//! case's metadata and data (never its name), so new fixtures are picked up
//! by the columns they belong to without editing anything here.

use crate::case::Case;
use bn_impls::{DType, Dims, Layout};

/// What a column judges for each case it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// The case's verdict under the tolerance rule (pass, fail, unsupported).
    Verdict,
    /// Whether the outputs are bitwise identical at 1 and 2 rayon threads;
    /// only for implementations that claim `deterministic`.
    Determinism,
}

/// One column: a name for the table, what it selects, and the predicate.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Short header (Markdown table and CSV).
    pub name: &'static str,
    /// One line saying which cases the column selects.
    pub selects: &'static str,
    /// Which cases belong to the column.
    pub applies: fn(&Case) -> bool,
    /// How each selected case is judged.
    pub judged: Judged,
}

/// The ratio |mean| / std of a channel from which a case counts as
/// ill-conditioned: one-pass variance formulas lose about log10 of its
/// square in digits, all of f32's 7 at 1e3–1e4.
pub const ILL_CONDITIONED: f64 = 1e3;

/// Whether the forward pass normalizes with batch statistics (training, or
/// eval without running statistics), which decides the gradient's form.
fn batch_stats(c: &Case) -> bool {
    c.training || !c.config.track_running_stats
}

/// The case's `(N, C, S)` dims, when its shape has them (a loaded case always does).
fn dims(c: &Case) -> Option<Dims> {
    Dims::from_shape("x", &c.shape, c.memory_format).ok()
}

/// The largest |mean| / std over the channels of `x` with a finite,
/// nonzero spread (constant channels and non-finite values are skipped).
pub fn condition(c: &Case) -> f64 {
    let Some(d) = dims(c) else { return 0.0 };
    let mut worst = 0.0f64;
    for ch in 0..d.c {
        let v: Vec<f64> = d
            .channel_offsets(ch)
            .map(|i| c.inputs.x[i].0)
            .filter(|v| v.is_finite())
            .collect();
        if v.len() < 2 {
            continue;
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        if var > 0.0 && var.is_finite() {
            worst = worst.max(mean.abs() / var.sqrt());
        }
    }
    worst
}

/// Some channel of `x` holds a NaN and another holds none: the case shows
/// whether a NaN stays in its channel.
fn nan_in_one_channel(c: &Case) -> bool {
    let Some(d) = dims(c) else { return false };
    let has_nan: Vec<bool> = (0..d.c)
        .map(|ch| d.channel_offsets(ch).any(|i| c.inputs.x[i].0.is_nan()))
        .collect();
    has_nan.iter().any(|&b| b) && has_nan.iter().any(|&b| !b)
}

/// The case has outputs to compute (not a rejection case): capability
/// columns select only these, so a column never passes on rejections alone.
fn computes(c: &Case) -> bool {
    c.expected.is_some()
}

/// Every column, in table order. Capability columns select cases with
/// expected outputs; the `rejections` column the cases PyTorch rejects.
pub fn all() -> Vec<Column> {
    use Judged::{Determinism, Verdict};
    vec![
        Column {
            name: "train",
            selects: "training mode (`training: true`)",
            applies: |c| computes(c) && c.training,
            judged: Verdict,
        },
        Column {
            name: "eval",
            selects: "eval mode (`training: false`)",
            applies: |c| computes(c) && !c.training,
            judged: Verdict,
        },
        Column {
            name: "affine off",
            selects: "`config.affine: false` (no weight or bias)",
            applies: |c| computes(c) && !c.config.affine,
            judged: Verdict,
        },
        Column {
            name: "tracking off",
            selects: "`config.track_running_stats: false`",
            applies: |c| computes(c) && !c.config.track_running_stats,
            judged: Verdict,
        },
        Column {
            name: "momentum None",
            selects: "`config.momentum: null` (cumulative moving average)",
            applies: |c| computes(c) && c.config.momentum.is_none(),
            judged: Verdict,
        },
        Column {
            name: "channels-last",
            selects: "`memory_format: channels_last`",
            applies: |c| computes(c) && c.memory_format == Layout::ChannelsLast,
            judged: Verdict,
        },
        Column {
            name: "5-D",
            selects: "5-dimensional input (BatchNorm3d)",
            applies: |c| computes(c) && c.shape.len() == 5,
            judged: Verdict,
        },
        Column {
            name: "f64",
            selects: "`dtype: f64`",
            applies: |c| computes(c) && c.dtype == DType::F64,
            judged: Verdict,
        },
        Column {
            name: "bf16",
            selects: "`dtype: bf16`",
            applies: |c| computes(c) && c.dtype == DType::BF16,
            judged: Verdict,
        },
        Column {
            name: "f16",
            selects: "`dtype: f16`",
            applies: |c| computes(c) && c.dtype == DType::F16,
            judged: Verdict,
        },
        Column {
            name: "backward batch",
            selects: "`grad_output` given, forward with batch statistics",
            applies: |c| computes(c) && c.inputs.grad_output.is_some() && batch_stats(c),
            judged: Verdict,
        },
        Column {
            name: "backward fixed",
            selects: "`grad_output` given, forward with running statistics",
            applies: |c| computes(c) && c.inputs.grad_output.is_some() && !batch_stats(c),
            judged: Verdict,
        },
        Column {
            name: "ill-conditioned f32",
            selects: "`dtype: f32` and some channel of `x` with |mean|/std ≥ 1e3 (e.g. offset 1e4)",
            applies: |c| computes(c) && c.dtype == DType::F32 && condition(c) >= ILL_CONDITIONED,
            judged: Verdict,
        },
        Column {
            name: "NaN confined",
            selects: "a NaN in some channels of `x` and not in others",
            applies: |c| computes(c) && nan_in_one_channel(c),
            judged: Verdict,
        },
        Column {
            name: "empty batch",
            selects: "a zero in the shape (N = 0 or an empty spatial dim)",
            applies: |c| computes(c) && c.shape.contains(&0),
            judged: Verdict,
        },
        Column {
            name: "rejections",
            selects: "inputs PyTorch rejects (`expected_error`): passes when the implementation's run rejects them too",
            applies: |c| c.expected_error.is_some(),
            judged: Verdict,
        },
        Column {
            name: "threads 1 = 2",
            selects: "every case with expected outputs, run at 1 and 2 rayon threads and compared bit for bit (implementations that claim determinism)",
            applies: computes,
            judged: Determinism,
        },
    ]
}
