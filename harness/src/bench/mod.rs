//! Measurement: what `bnh bench` and the criterion benches time.
//!
//! Split as in criterion: this module measures and produces [`Record`]s;
//! [`crate::export`] writes them (CSV, terminal table) and [`crate::report`]
//! renders REPORT.md and charts from CSV alone.
//!
//! - [`grid`]: shapes, layouts and the named grids; shape parsing;
//! - [`options`]: validated `bnh bench` options;
//! - [`workload`]: the timed operations ([`Op`]), preallocated buffers and one call of each;
//! - [`roofline`]: the copies (libc, vector, non-temporal) and the read pass rows are set against;
//! - [`runner`]: warm-up, sampling, statistics and the interleaved roofline probes;
//! - [`sweep`]: every measurement of validated options, one rayon pool per thread count;
//! - [`machine`]: the machine description written beside each CSV;
//! - [`criterion_import`]: criterion's results turned into the same records.

pub mod criterion_import;
pub mod grid;
pub mod machine;
pub mod options;
pub mod provenance;
pub mod roofline;
pub mod runner;
pub mod sweep;
pub mod workload;

pub use workload::Op;

use bn_impls::{DType, Layout};
use serde::{Deserialize, Deserializer, Serialize};

/// The CSV columns, in order: the stable schema documented in docs/BENCHMARKS.md.
/// Columns after the first [`REQUIRED_COLUMNS`] were added later (the
/// roofline's `roofline`, `read_ns`; provenance's `source`, `run_id`), so a
/// reader of the first [`REQUIRED_COLUMNS`] columns keeps working; a CSV without them is
/// still read (see [`provenance::fill_missing`]).
pub const CSV_COLUMNS: [&str; 21] = [
    "impl",
    "op",
    "dtype",
    "layout",
    "shape",
    "n",
    "c",
    "spatial",
    "threads",
    "bytes",
    "median_ns",
    "p10_ns",
    "p90_ns",
    "memcpy_ns",
    "ratio_to_memcpy",
    "gb_per_s",
    "samples",
    "roofline",
    "read_ns",
    "source",
    "run_id",
];

/// How many leading columns of [`CSV_COLUMNS`] a bench CSV must have: the
/// schema before the roofline and provenance columns were added (older CSVs
/// and other tools' CSVs); the later ones take their defaults when absent.
pub const REQUIRED_COLUMNS: usize = 17;

/// One measurement: one implementation, operation, dtype, layout, shape and
/// thread count. Field order is the CSV column order ([`CSV_COLUMNS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Implementation name (`torch`, `torch-noalloc` for the PyTorch script).
    #[serde(rename = "impl")]
    pub imp: String,
    /// `train`, `eval` or `backward`.
    #[serde(deserialize_with = "from_name")]
    pub op: Op,
    /// `f32` or `f64`.
    #[serde(deserialize_with = "from_name")]
    pub dtype: DType,
    /// `contiguous` or `channels_last`.
    #[serde(deserialize_with = "from_name")]
    pub layout: Layout,
    /// `NxCxHxW`-style logical shape.
    pub shape: String,
    pub n: usize,
    pub c: usize,
    /// Product of the spatial sizes (1 for `(N, C)`).
    pub spatial: usize,
    /// Size of the rayon pool (or `torch.set_num_threads`) the call ran in.
    pub threads: usize,
    /// Size of `x` in bytes.
    pub bytes: u64,
    /// Median time of one call.
    pub median_ns: f64,
    /// 10th percentile of the per-sample times.
    pub p10_ns: f64,
    /// 90th percentile of the per-sample times.
    pub p90_ns: f64,
    /// The roofline: median time of the fastest way to copy `x` into a
    /// preallocated buffer (see `roofline` and [`roofline`]), over every
    /// copy timed interleaved with the run's measurements of this size and
    /// thread count.
    pub memcpy_ns: f64,
    /// `median_ns / memcpy_ns`.
    pub ratio_to_memcpy: f64,
    /// `tensor_passes(op) * bytes / median_ns`: the bandwidth the op reaches.
    pub gb_per_s: f64,
    /// Number of timed samples the statistics are over.
    pub samples: usize,
    /// Which copy set `memcpy_ns` ([`roofline::Copy::name`]: `memcpy`,
    /// `vector` or `nontemporal`; `copy_` for PyTorch's rows). Empty in CSVs
    /// written before the column existed.
    #[serde(default)]
    pub roofline: String,
    /// Median time of a read-only pass over `x` (a sum of its words), timed
    /// like the copies; 0 where not measured (old CSVs, other tools).
    #[serde(default)]
    pub read_ns: f64,
    /// Who measured the row: `bnh`, `torch`, `criterion` or `plugin:NAME`
    /// (empty in an old CSV until [`provenance::fill_missing`] infers it).
    #[serde(default)]
    pub source: String,
    /// Which invocation measured the row (one id per `bnh bench` run; the
    /// file name for an old CSV), so merged CSVs keep their runs apart.
    #[serde(default)]
    pub run_id: String,
}

impl Record {
    /// Fill the derived columns (`ratio_to_memcpy`, `gb_per_s`) from the timings.
    pub fn derive(&mut self) {
        let passes = self.op.tensor_passes() as f64;
        self.ratio_to_memcpy = round(self.median_ns / self.memcpy_ns, 4);
        self.gb_per_s = round(passes * self.bytes as f64 / self.median_ns, 3);
    }

    /// Elements of `x`.
    pub fn elements(&self) -> usize {
        self.n * self.c * self.spatial
    }

    /// Spread of the samples, `p90 / p10` (1.0: every sample alike).
    pub fn spread(&self) -> f64 {
        self.p90_ns / self.p10_ns
    }

    /// Whether the measurement is too noisy to rank on (see [`NOISY_SPREAD`]).
    pub fn is_noisy(&self) -> bool {
        // NaN (a zero p10) counts as noisy: nothing can be ranked on it.
        use std::cmp::Ordering::{Equal, Less};
        !matches!(self.spread().partial_cmp(&NOISY_SPREAD), Some(Less | Equal))
    }

    /// Bandwidth of the memcpy roofline (one read and one write of `x`), GB/s.
    pub fn memcpy_gb_per_s(&self) -> f64 {
        2.0 * self.bytes as f64 / self.memcpy_ns
    }

    /// Bandwidth of the read-only pass, GB/s (None where not measured).
    pub fn read_gb_per_s(&self) -> Option<f64> {
        (self.read_ns > 0.0).then(|| self.bytes as f64 / self.read_ns)
    }
}

/// A measurement whose `p90 / p10` exceeds this is flagged as unreliable
/// (hyperfine warns likewise when outliers or spread make a mean suspect).
///
/// Why 1.5: on a quiet machine our samples (each ≥ 100 µs, see
/// [`runner::TARGET_SAMPLE`]) spread by a few percent, so p90/p10 stays below
/// about 1.1; at 1.5 a fifth of the samples are off from the rest by more
/// than the margins a report ranks on (implementations of one op are often
/// within 1.1–1.5× of each other), so the median can move by that much
/// between runs and a ranking on it is not trustworthy. Spreads of this
/// size come from the machine (other processes, frequency changes, page
/// faults), not from the kernel.
pub const NOISY_SPREAD: f64 = 1.5;

/// Read a CSV column through the type's `FromStr`, so an unknown value gets
/// the same message as the command-line flag, naming the accepted values
/// (e.g. "unknown layout 'nhwc'; use contiguous or channels_last").
fn from_name<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Round to `digits` decimals, so the CSV stays readable.
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}
