//! `bnh bench` options: parsed by clap, validated here in one place before
//! any measurement starts (like hyperfine's `Options`), so a typo in the
//! last shape never wastes a ten-minute sweep.

use super::grid::{cases, BenchPoint, GridName, Shape};
use super::Op;
use crate::error::{Error, Result};
use crate::memory::{human, Budget};
use bn_impls::fused::task_rule::TaskRule;
use bn_impls::{DType, Implementation, Layout};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The raw `bnh bench` flags as clap parses them (comma-separated lists),
/// before [`BenchFlags::validate`] turns them into [`BenchOptions`].
#[derive(Debug, Clone, clap::Args)]
pub struct BenchFlags {
    /// Implementations to time (default: every registered one): `--impls a,b`
    /// or `--impl a --impl b`.
    #[arg(long, alias = "impl", value_delimiter = ',', value_name = "A,B")]
    pub impls: Vec<String>,
    /// Operations to time, comma-separated from: train, eval, backward (the
    /// default), train_relu, eval_relu, backward_relu, train_add_relu,
    /// eval_add_relu, backward_add_relu.
    #[arg(long, value_delimiter = ',', value_name = "OPS")]
    pub ops: Vec<String>,
    /// Element types (default: the grid's; f32,f64 for standard, f32 otherwise).
    #[arg(long, value_delimiter = ',', value_name = "f32,f64")]
    pub dtypes: Vec<String>,
    /// Memory layouts of shapes with spatial dims (default: the grid's).
    #[arg(long, value_delimiter = ',', value_name = "contiguous,channels_last")]
    pub layouts: Vec<String>,
    /// Shapes `NxC[xD][xH][xW]` to time instead of the grid's (the help
    /// text is spelled out below: clap would print the backticks).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SHAPES",
        help = "Shapes NxC[xD][xH][xW] to time instead of the grid's, e.g. 64x64x56x56,256x1024"
    )]
    pub shapes: Vec<String>,
    /// Named grid of shapes.
    #[arg(long, value_enum, default_value = "standard")]
    pub grid: GridName,
    /// Rayon pool sizes to run each measurement in (default: 1).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "1,2",
        allow_negative_numbers = true
    )]
    pub threads: Vec<i64>,
    /// Seconds of timed calls per measurement (default: 0.05 for quick, 0.25 otherwise).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub min_time: Option<f64>,
    /// Write one CSV row per measurement here (plus a NAME.machine.json sidecar).
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
    /// Memory the buffers of one measurement may use, e.g. 8G (default: what
    /// the OS reports available). Every cell is checked before timing starts.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// The `run_id` column of every row (default: UTC time and process id,
    /// one per call). Calls given one id are rounds of one run: `bnh
    /// report` keeps each cell's fastest round (a machine that other
    /// processes slow down only ever adds time).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Which rule decides `fused`'s contiguous channel tasks: `machine` (the
    /// default: the shape and this machine's caches), `shape` (wherever the
    /// shape allows) or `never`. Results are the same bits under each; two
    /// runs with different rules, then `bnh compare`, show which pays here.
    #[arg(long, value_enum, value_name = "RULE", default_value = "machine")]
    pub channel_tasks: ChannelTasks,
}

/// `--channel-tasks`: the command-line names of [`TaskRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelTasks {
    /// Where the shape allows them and this machine's caches favour them.
    Machine,
    /// Wherever the shape allows them, on any machine.
    Shape,
    /// Never: address-ordered sweeps everywhere.
    Never,
}

impl ChannelTasks {
    /// The library's rule of this name.
    pub fn rule(self) -> TaskRule {
        match self {
            ChannelTasks::Machine => TaskRule::Machine,
            ChannelTasks::Shape => TaskRule::Shape,
            ChannelTasks::Never => TaskRule::Never,
        }
    }
}

/// Validated options: everything a sweep needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub impls: Vec<&'static dyn Implementation>,
    pub ops: Vec<Op>,
    pub dtypes: Vec<DType>,
    /// Shape × layout pairs to time, in order.
    pub points: Vec<BenchPoint>,
    pub threads: Vec<usize>,
    pub min_time: Duration,
    pub csv: Option<PathBuf>,
    pub grid: GridName,
    /// The `run_id` of every row ([`check_run_id`]).
    pub run_id: String,
    /// The rule for `fused`'s contiguous channel tasks (`--channel-tasks`).
    pub task_rule: TaskRule,
}

/// Most threads a pool may have: far above any sensible request, low enough
/// to catch a mistyped number before spawning thousands of threads.
pub const MAX_THREADS: usize = 1024;

fn parse_list<T>(values: &[String], what: &str) -> Result<Vec<T>>
where
    T: std::str::FromStr<Err = String> + PartialEq,
{
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()) {
        if v.is_empty() {
            return Err(Error::Usage(format!(
                "empty {what} in a comma-separated list"
            )));
        }
        let t = v.parse::<T>().map_err(Error::Usage)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Longest `--run-id`.
const MAX_RUN_ID: usize = 64;

/// `--run-id`: 1 to `MAX_RUN_ID` (64) ASCII letters, digits or `. _ - : +`, so
/// it needs no quoting as a CSV field or a markdown table cell.
pub fn check_run_id(id: &str) -> Result<String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-:+".contains(c);
    if id.is_empty() || id.len() > MAX_RUN_ID || !id.chars().all(ok_char) {
        return Err(Error::Usage(format!(
            "--run-id {id:?}: use 1 to {MAX_RUN_ID} letters, digits or . _ - : + \
             (e.g. ref-20261202)"
        )));
    }
    Ok(id.to_string())
}

/// Check that a bench CSV can be written at `path` before the sweep, with
/// its machine sidecar and its `NAME.partial.csv` (names that fit, a folder
/// that accepts files), without touching an existing file at `path`.
pub fn check_writable(path: &Path) -> Result<()> {
    crate::output::check_writable("--csv", path)?;
    if crate::output::partial::applies(path) {
        let sidecar = crate::bench::machine::sidecar_path(path);
        crate::output::check_writable("--csv (its machine file)", &sidecar)?;
        let partial = crate::output::partial::partial_path(path);
        crate::output::check_writable("--csv (its partial file)", &partial)?;
    }
    Ok(())
}

impl BenchFlags {
    /// Validate every option; errors name the bad value and the fix.
    pub fn validate(&self) -> Result<BenchOptions> {
        let impls = crate::select_impls(&self.impls)?;
        let ops: Vec<Op> = if self.ops.is_empty() {
            Op::DEFAULT.to_vec()
        } else {
            parse_list(&self.ops, "op")?
        };
        let dtypes: Vec<DType> = if self.dtypes.is_empty() {
            self.grid.default_dtypes()
        } else {
            parse_list(&self.dtypes, "dtype")?
        };
        let layouts: Vec<Layout> = if self.layouts.is_empty() {
            self.grid.default_layouts()
        } else {
            parse_list(&self.layouts, "layout")?
        };
        let shapes = self.shapes()?;
        let threads = self.threads()?;
        let secs = self.min_time_secs()?;
        let run_id = match &self.run_id {
            Some(id) => check_run_id(id)?,
            None => super::provenance::run_id().to_string(),
        };
        check_training_sizes(&shapes, &ops)?;
        let points = cases(&shapes, &layouts);
        check_memory(&points, &dtypes, &ops, self.max_memory.as_deref())?;
        if let Some(p) = &self.csv {
            check_writable(p)?;
        }
        Ok(BenchOptions {
            impls,
            ops,
            dtypes,
            points,
            threads,
            min_time: Duration::from_secs_f64(secs),
            csv: self.csv.clone(),
            grid: self.grid,
            run_id,
            task_rule: self.channel_tasks.rule(),
        })
    }

    /// `--shapes` parsed (duplicates dropped), or the grid's shapes.
    fn shapes(&self) -> Result<Vec<Shape>> {
        if self.shapes.is_empty() {
            return Ok(self.grid.shapes());
        }
        let mut v = Vec::new();
        for s in &self.shapes {
            let shape: Shape = s.parse()?;
            if !v.contains(&shape) {
                v.push(shape);
            }
        }
        Ok(v)
    }

    /// `--threads` checked against 1..=[`MAX_THREADS`] (duplicates dropped), or `[1]`.
    /// Parsed as signed so `--threads -1` gets this message, not clap's.
    fn threads(&self) -> Result<Vec<usize>> {
        let given = if self.threads.is_empty() {
            &[1][..]
        } else {
            &self.threads[..]
        };
        let mut threads = Vec::new();
        for &t in given {
            let t = match usize::try_from(t) {
                Ok(t) if (1..=MAX_THREADS).contains(&t) => t,
                _ => {
                    return Err(Error::Usage(format!(
                        "--threads {t}: a pool needs 1 to {MAX_THREADS} threads"
                    )))
                }
            };
            if !threads.contains(&t) {
                threads.push(t);
            }
        }
        Ok(threads)
    }

    /// `--min-time` (or the grid's default) checked to be in (0, 3600] seconds.
    fn min_time_secs(&self) -> Result<f64> {
        let secs = self.min_time.unwrap_or(self.grid.default_min_time());
        if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
            return Err(Error::Usage(format!(
                "--min-time {secs}: give a number of seconds in (0, 3600], e.g. 0.25"
            )));
        }
        Ok(secs)
    }
}

/// Training (and its backward) needs more than one value per channel:
/// PyTorch raises "Expected more than 1 value per channel when training"
/// for N·S = 1, so timing it would time an input no user can run.
fn check_training_sizes(shapes: &[Shape], ops: &[Op]) -> Result<()> {
    let training: Vec<&str> = ops
        .iter()
        .filter(|o| o.is_training())
        .map(|o| o.name())
        .collect();
    match shapes.iter().find(|s| s.n() * s.spatial() == 1) {
        Some(s) if !training.is_empty() => Err(Error::Usage(format!(
            "shape '{s}' has 1 value per channel (N·S = 1), which training rejects (--ops {}; \
             PyTorch: \"Expected more than 1 value per channel when training\"); \
             use a batch of at least 2 or --ops eval",
            training.join("/")
        ))),
        _ => Ok(()),
    }
}

/// Tensors of the size of `x` one bench cell allocates: `x`, `y`, `dy`,
/// `dx` and the memcpy destination ([`super::workload::Buffers`]), one more
/// of room for the kernels' scratch (e.g. the default ReLU backward's
/// masked `dy`), and the residual and its gradient when an add-relu op is
/// timed.
pub fn cell_tensors(ops: &[Op]) -> u64 {
    if ops.iter().any(|o| o.has_residual()) {
        8
    } else {
        6
    }
}

/// Bytes one bench cell allocates: [`cell_tensors`] tensors and 8
/// per-channel `f64` arrays.
pub fn cell_bytes(point: &BenchPoint, dtype: DType, ops: &[Op]) -> u64 {
    let tensor = point.shape.elements() as u64 * dtype.size() as u64;
    tensor.saturating_mul(cell_tensors(ops)) + 64 * point.shape.c() as u64
}

/// Every cell of the sweep checked against the memory budget before any
/// buffer is allocated (cells run one after another, so each must fit alone).
fn check_memory(
    points: &[BenchPoint],
    dtypes: &[DType],
    ops: &[Op],
    max_memory: Option<&str>,
) -> Result<()> {
    let Some(budget) = Budget::new(max_memory)? else {
        return Ok(());
    };
    for point in points {
        for &dtype in dtypes {
            let what = format!(
                "bench cell {} {dtype} {} ({} tensors of {})",
                point.shape,
                point.layout,
                cell_tensors(ops),
                human(point.shape.elements() as u64 * dtype.size() as u64)
            );
            budget.check(cell_bytes(point, dtype, ops), &what, "use smaller --shapes")?;
        }
    }
    Ok(())
}

impl BenchOptions {
    /// Number of measurements the sweep will take.
    pub fn count(&self) -> usize {
        self.impls.len()
            * self.ops.len()
            * self.dtypes.len()
            * self.points.len()
            * self.threads.len()
    }
}
