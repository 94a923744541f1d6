//! The one error type of the batch-norm library.
//!
//! Every rejection of user input is a variant here with the expected and the
//! actual value, so a caller (or the `bnh` CLI) can say exactly what is wrong
//! and how to fix it. Nothing in this crate panics on user input.

use thiserror::Error;

/// Errors raised by the batch-norm API: invalid shapes, parameters or modes.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// A tensor has the wrong number of dimensions.
    #[error("{what} has {actual} dimensions; batch norm takes (N, C) or (N, C, *spatial) with 2 to 5 dimensions")]
    BadRank { what: String, actual: usize },

    /// A kernel problem was built from a tensor with no elements (N, C or a
    /// spatial size is 0). Only the kernel-level API rejects this: the module
    /// ([`crate::BatchNorm`]) accepts empty inputs as PyTorch does and never
    /// hands them to a kernel.
    #[error("{what} is empty (shape {shape:?}); kernels need at least one element; run empty batches through BatchNorm, which handles them as PyTorch does")]
    Empty { what: String, shape: Vec<usize> },

    /// The element count of a shape does not fit in memory addressing.
    #[error("{what} has shape {shape:?}, whose element count overflows; use a smaller tensor")]
    TooLarge { what: String, shape: Vec<usize> },

    /// Two tensors that must have the same shape do not.
    #[error("{what} has shape {actual:?} but must match {expected:?}")]
    ShapeMismatch {
        what: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    /// A per-channel vector (or a flat buffer) has the wrong length.
    #[error("{what} has length {actual} but must have length {expected}")]
    LengthMismatch {
        what: String,
        expected: usize,
        actual: usize,
    },

    /// A tensor's strides are neither contiguous nor channels-last.
    #[error("{what} has strides {strides:?} for shape {shape:?}, which is neither contiguous (N, C, *spatial) nor channels-last (N, *spatial, C) in memory; copy it with `.as_standard_layout()` first")]
    UnsupportedLayout {
        what: String,
        shape: Vec<usize>,
        strides: Vec<isize>,
    },

    /// Inputs and outputs of one call use different memory formats.
    #[error("{what} is {actual} but x is {expected}; all tensors of one call must share a memory format")]
    LayoutMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    /// `eps` out of PyTorch's range: it must be > 0 when normalizing with
    /// batch statistics and ≥ 0 otherwise (NaN and +inf pass, as in PyTorch).
    #[error("{}", eps_message(*eps, *batch_stats))]
    InvalidEps {
        /// The rejected value.
        eps: f64,
        /// Whether the call normalizes with batch statistics (training).
        batch_stats: bool,
    },

    /// Batch statistics need at least two values per channel.
    #[error("expected more than 1 value per channel when using batch statistics, got input of shape {shape:?} (N x spatial = {count}); use a batch of at least 2, or eval mode with running statistics")]
    TooFewValues { shape: Vec<usize>, count: usize },

    /// Parameters or buffers disagree with the module configuration.
    #[error("invalid module state: {0}")]
    InvalidState(String),

    /// An activation call whose inputs do not fit the activation (a residual
    /// without `add_relu`, backward of another activation than forward's).
    #[error("activation mismatch: {0}")]
    Activation(String),

    /// `backward` was called without a preceding `forward`.
    #[error("backward called before forward; run forward on this batch first")]
    NoForward,

    /// An implementation has no kernel for the element type of the data.
    #[error("implementation '{implementation}' does not support dtype {dtype}; pick another implementation (`bnh list`) or convert the data")]
    UnsupportedDtype {
        implementation: String,
        dtype: String,
    },

    /// A kernel declined this input at run time (a plugin function returned
    /// nonzero): "not supported", which callers report as a verdict, not a failure.
    #[error("implementation '{implementation}' does not support this input ({op} returned {code}); pick another implementation (`bnh list`)")]
    KernelUnsupported {
        implementation: String,
        op: String,
        code: i32,
    },

    /// A batch-norm statistic or parameter that cannot be folded (not
    /// finite, or a negative variance).
    #[error("{what}[{index}] = {value:?} cannot be folded: {why}")]
    InvalidStatistic {
        what: String,
        index: usize,
        value: f64,
        why: String,
    },

    /// A folded weight or bias that does not fit the weight's dtype.
    #[error("folded {what}[{index}] = {value:.6e} overflows {dtype}; fold in a wider dtype (f32 or f64)")]
    FoldOverflow {
        what: String,
        index: usize,
        value: f64,
        dtype: String,
    },

    /// A kernel declined this input and says why (a peer library lacking a
    /// capability): "not supported", reported as a verdict like
    /// [`Error::KernelUnsupported`], with the reason shown to the user.
    #[error("implementation '{implementation}' does not support this input ({op}: {reason}); pick another implementation (`bnh list`)")]
    KernelDeclined {
        implementation: String,
        op: String,
        reason: String,
    },

    /// A kernel failed on an input it should handle (a peer library returned
    /// an error or panicked): a failure of that implementation, not "unsupported".
    #[error("implementation '{implementation}' failed in {op}: {detail}")]
    KernelFailed {
        implementation: String,
        op: String,
        detail: String,
    },

    /// An implementation name that is not in the registry.
    #[error("unknown implementation '{name}'; available: {}", available.join(", "))]
    UnknownImplementation {
        name: String,
        available: Vec<String>,
    },
}

impl Error {
    /// True when the implementation does not support the input (a dtype it has
    /// no kernel for, or a kernel that declined at run time): callers show
    /// "unsupported" instead of a failure.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedDtype { .. }
                | Error::KernelUnsupported { .. }
                | Error::KernelDeclined { .. }
        )
    }
}

/// PyTorch's two eps messages, with the fix.
fn eps_message(eps: f64, batch_stats: bool) -> String {
    if batch_stats {
        format!("batch_norm eps must be positive during training, but got {eps:?}; use eps > 0 (PyTorch's default is 1e-5)")
    } else {
        format!("batch_norm eps must be non-negative, but got {eps:?}; use eps >= 0 (PyTorch's default is 1e-5)")
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Huge or tiny values print in short exponent form, not 309 digits.
    #[test]
    fn numbers_in_messages_are_short() {
        let e = |eps, batch_stats| Error::InvalidEps { eps, batch_stats }.to_string();
        let m = e(-1e308, true);
        assert!(
            m.starts_with("batch_norm eps must be positive during training, but got -1e308;"),
            "{m}"
        );
        let m = e(-1e-300, false);
        assert!(
            m.starts_with("batch_norm eps must be non-negative, but got -1e-300;"),
            "{m}"
        );
    }
}
