//! bn-case/1 conformance cases: parsing and structural validation.
//!
//! A case is one call of PyTorch's `F.batch_norm` under the module rules of
//! `nn.BatchNorm{1,2,3}d` (see `docs/BN-CASE-FORMAT.md`). Parsing checks the
//! structure — format tag, shape, every length against the shape, presence
//! of parameters and buffers against the config — so that a case that loads
//! can always be run. Value-level rules (eps, momentum, values per channel)
//! are left to the library, which rejects them like PyTorch does.

use crate::error::{Error, Result};
use crate::input::{read_limited, regular_files, MAX_CASE_BYTES};
use crate::num::Num;
use crate::output::escape_path;
use bn_impls::{Activation, DType, Layout};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The format tag every case carries.
pub const FORMAT: &str = "bn-case/1";

/// Module configuration as a case states it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CaseConfig {
    pub eps: f64,
    pub momentum: Option<f64>,
    pub affine: bool,
    pub track_running_stats: bool,
}

/// Inputs of the call; absent parts are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub x: Vec<Num>,
    pub weight: Option<Vec<Num>>,
    pub bias: Option<Vec<Num>>,
    pub running_mean: Option<Vec<Num>>,
    pub running_var: Option<Vec<Num>>,
    pub num_batches_tracked: Option<i64>,
    pub grad_output: Option<Vec<Num>>,
    /// Added before the ReLU of an `add_relu` case (`x`'s shape and memory
    /// order); absent otherwise (bn-case/1 activation extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual: Option<Vec<Num>>,
}

/// Outputs of a call, in PyTorch's names; `null` where not applicable.
/// Also the `outputs` object `bnh run-case` writes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outputs {
    pub y: Option<Vec<Num>>,
    pub running_mean: Option<Vec<Num>>,
    pub running_var: Option<Vec<Num>>,
    pub num_batches_tracked: Option<i64>,
    pub grad_input: Option<Vec<Num>>,
    pub grad_weight: Option<Vec<Num>>,
    pub grad_bias: Option<Vec<Num>>,
    /// The residual's gradient of an `add_relu` case with `grad_output`;
    /// absent (not `null`) otherwise, so plain outputs serialize as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_residual: Option<Vec<Num>>,
}

impl Outputs {
    /// The float outputs with their names, in file order.
    pub fn tensors(&self) -> [(&'static str, Option<&[Num]>); 7] {
        [
            ("y", self.y.as_deref()),
            ("running_mean", self.running_mean.as_deref()),
            ("running_var", self.running_var.as_deref()),
            ("grad_input", self.grad_input.as_deref()),
            ("grad_weight", self.grad_weight.as_deref()),
            ("grad_bias", self.grad_bias.as_deref()),
            ("grad_residual", self.grad_residual.as_deref()),
        ]
    }
}

/// Outputs whose length is the whole tensor's (the others have one value per channel).
pub fn is_tensor_output(name: &str) -> bool {
    matches!(name, "y" | "grad_input" | "grad_residual")
}

/// One bn-case/1 file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub format: String,
    pub name: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub source: String,
    pub dtype: DType,
    /// dtype of `weight`, `bias`, the running statistics and their
    /// gradients; absent means `dtype`. PyTorch also allows `f32` parameters
    /// with `bf16`/`f16` data (mixed precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_dtype: Option<DType>,
    pub shape: Vec<usize>,
    pub memory_format: Layout,
    pub config: CaseConfig,
    pub training: bool,
    /// What follows the batch norm: absent or `"none"` for plain batch
    /// norm, `"relu"`, or `"add_relu"` with `inputs.residual`
    /// (bn-case/1 activation extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    pub inputs: Inputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_error: Option<String>,
    /// Every call of a multi-step case, step 0 included (the fields above
    /// are then step 0's); `None` for a single call. See [`crate::steps`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<crate::steps::Step>>,
}

impl Case {
    /// Read and validate a case file (at most [`MAX_CASE_BYTES`]; a FIFO or
    /// device is refused rather than read).
    pub fn load(path: &Path) -> Result<Case> {
        let text = read_limited(path, MAX_CASE_BYTES, "case file")?;
        Case::parse(&text, path)
    }

    /// Parse and validate case text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Case> {
        let bad = |detail: String| Error::Case {
            path: path.to_path_buf(),
            detail,
        };
        // Check the tag first, so a file of another format gets that message
        // rather than a complaint about its first unfamiliar field.
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => return Err(bad(format!("format is '{other}', expected '{FORMAT}'"))),
            None => return Err(bad(format!("no \"format\": \"{FORMAT}\" field"))),
        }
        // A multi-step file becomes step 0's single case plus its steps.
        let steps = crate::steps::split(&mut value).map_err(bad)?;
        let mut case: Case = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        case.steps = steps;
        if case.steps.is_some() {
            case.validate_steps().map_err(bad)?; // names the step in its messages
        } else {
            case.validate().map_err(bad)?;
        }
        Ok(case)
    }

    /// Structural checks: every length follows from the shape and config.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let numel = self.check_shape()?;
        self.check_input_lengths(numel)?;
        self.check_presence()?;
        match (&self.expected, &self.expected_error) {
            (Some(_), Some(_)) => return Err("has both expected and expected_error".into()),
            (None, None) => return Err("has neither expected nor expected_error".into()),
            _ => {}
        }
        self.check_output_lengths(numel)?;
        self.check_activation()?;
        self.check_dtypes()
    }

    /// The activation of the case (absent means none).
    pub fn activation(&self) -> Activation {
        self.activation.unwrap_or_default()
    }

    /// `inputs.residual` is given exactly for `add_relu`, and
    /// `grad_residual` appears only in an `add_relu` case with `grad_output`.
    fn check_activation(&self) -> std::result::Result<(), String> {
        let act = self.activation();
        match (act.has_residual(), self.inputs.residual.is_some()) {
            (true, false) => {
                return Err("activation add_relu needs inputs.residual (x's shape)".into())
            }
            (false, true) => {
                return Err(format!(
                    "inputs.residual is given but activation is {}; use add_relu or drop it",
                    act.name()
                ))
            }
            _ => {}
        }
        let may_have = act.has_residual() && self.inputs.grad_output.is_some();
        for (part, outputs) in [("expected", &self.expected), ("reference", &self.reference)] {
            let has = outputs.as_ref().is_some_and(|o| o.grad_residual.is_some());
            if has && !may_have {
                return Err(format!(
                    "{part}.grad_residual is given but the case is not add_relu with grad_output; \
                     drop it"
                ));
            }
        }
        Ok(())
    }

    /// `param_dtype` is one PyTorch accepts with `dtype` (the same, or `f32`
    /// with half-precision data), and for the half types every number is an
    /// exact value of its dtype (so reading it cannot round it).
    fn check_dtypes(&self) -> std::result::Result<(), String> {
        let (data, param) = (self.dtype, self.param_dtype());
        if param != data && !(data.is_half() && param == DType::F32) {
            return Err(format!(
                "param_dtype {param} with dtype {data}: PyTorch allows parameters of the data's \
                 dtype, or f32 parameters with bf16/f16 data; drop param_dtype or use one of those"
            ));
        }
        let exact = |what: &str, v: Option<&[Num]>, dtype: DType| {
            if !dtype.is_half() {
                return Ok(());
            }
            match v
                .into_iter()
                .flatten()
                .position(|n| dtype.round(n.0).to_bits() != n.0.to_bits() && !n.0.is_nan())
            {
                Some(i) => Err(format!(
                    "{what}[{i}] = {} is not a {dtype} value; write the exact value of the dtype",
                    v.unwrap()[i].0
                )),
                None => Ok(()),
            }
        };
        let i = &self.inputs;
        exact("inputs.x", Some(&i.x), data)?;
        exact("inputs.grad_output", i.grad_output.as_deref(), data)?;
        exact("inputs.residual", i.residual.as_deref(), data)?;
        for (what, v) in [
            ("inputs.weight", &i.weight),
            ("inputs.bias", &i.bias),
            ("inputs.running_mean", &i.running_mean),
            ("inputs.running_var", &i.running_var),
        ] {
            exact(what, v.as_deref(), param)?;
        }
        if let Some(e) = &self.expected {
            for (name, v) in e.tensors() {
                exact(&format!("expected.{name}"), v, self.output_dtype(name))?;
            }
        }
        Ok(())
    }

    /// The dtype of `weight`, `bias`, the running statistics and their gradients.
    pub fn param_dtype(&self) -> DType {
        self.param_dtype.unwrap_or(self.dtype)
    }

    /// The dtype an output is stored and judged in: `dtype` for `y` and
    /// `grad_input`, `param_dtype` for the per-channel outputs.
    pub fn output_dtype(&self, name: &str) -> DType {
        if is_tensor_output(name) {
            self.dtype
        } else {
            self.param_dtype()
        }
    }

    /// Rank 2 to 5, at least one channel, at most 2^32 elements; returns the
    /// count. N and spatial sizes may be 0 (an empty batch, which PyTorch
    /// accepts); C may not, as PyTorch has no batch norm without channels.
    fn check_shape(&self) -> std::result::Result<usize, String> {
        let shape = &self.shape;
        if !(2..=5).contains(&shape.len()) {
            return Err(format!(
                "shape {shape:?} has {} dims; it must be (N, C, *spatial) with 2 to 5 dims",
                shape.len()
            ));
        }
        if shape[1] == 0 {
            return Err(format!(
                "shape {shape:?} has C = 0 channels; a batch norm needs at least one \
                 (N and spatial sizes may be 0)"
            ));
        }
        shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= 1 << 32)
            .ok_or_else(|| format!("shape {shape:?} is too large for a case file"))
    }

    /// `what` has `want` values, when it is given.
    fn check_len(
        &self,
        what: &str,
        v: Option<&[Num]>,
        want: usize,
    ) -> std::result::Result<(), String> {
        match v {
            Some(v) if v.len() != want => Err(format!(
                "{what} has {} values but shape {:?} needs {want}",
                v.len(),
                self.shape
            )),
            _ => Ok(()),
        }
    }

    /// `x` and `grad_output` have N·C·S values, the per-channel inputs C.
    fn check_input_lengths(&self, numel: usize) -> std::result::Result<(), String> {
        let (i, c) = (&self.inputs, self.shape[1]);
        self.check_len("inputs.x", Some(&i.x), numel)?;
        self.check_len("inputs.grad_output", i.grad_output.as_deref(), numel)?;
        self.check_len("inputs.residual", i.residual.as_deref(), numel)?;
        for (what, v) in [
            ("inputs.weight", &i.weight),
            ("inputs.bias", &i.bias),
            ("inputs.running_mean", &i.running_mean),
            ("inputs.running_var", &i.running_var),
        ] {
            self.check_len(what, v.as_deref(), c)?;
        }
        Ok(())
    }

    /// Parameters are given exactly when `affine`, buffers exactly when
    /// `track_running_stats`.
    fn check_presence(&self) -> std::result::Result<(), String> {
        let presence = |what: &str, present: bool, needed: bool, flag: &str| {
            if present == needed {
                Ok(())
            } else if needed {
                Err(format!("inputs.{what} is null but config.{flag} is true"))
            } else {
                Err(format!("inputs.{what} is given but config.{flag} is false"))
            }
        };
        let i = &self.inputs;
        let (affine, track) = (self.config.affine, self.config.track_running_stats);
        presence("weight", i.weight.is_some(), affine, "affine")?;
        presence("bias", i.bias.is_some(), affine, "affine")?;
        presence(
            "running_mean",
            i.running_mean.is_some(),
            track,
            "track_running_stats",
        )?;
        presence(
            "running_var",
            i.running_var.is_some(),
            track,
            "track_running_stats",
        )?;
        presence(
            "num_batches_tracked",
            i.num_batches_tracked.is_some(),
            track,
            "track_running_stats",
        )
    }

    /// Every output of `expected` and `reference` has the length its name implies.
    fn check_output_lengths(&self, numel: usize) -> std::result::Result<(), String> {
        for (part, outputs) in [("expected", &self.expected), ("reference", &self.reference)] {
            let Some(o) = outputs else { continue };
            for (name, v) in o.tensors() {
                let want = if is_tensor_output(name) {
                    numel
                } else {
                    self.shape[1]
                };
                self.check_len(&format!("{part}.{name}"), v, want)?;
            }
        }
        Ok(())
    }

    /// Number of channels C.
    pub fn channels(&self) -> usize {
        self.shape[1]
    }
}

/// Every `*.json` file under the given files or directories (recursively),
/// sorted per root, each file once (by canonical path). Symlink loops and
/// entries that are not regular files are skipped and named on stderr.
pub fn collect_case_files(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for root in roots {
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => files.extend(regular_files(
                root,
                |p| p.extension().is_some_and(|e| e == "json"),
                &mut seen,
            )),
            Ok(m) if m.is_file() => {
                let canonical = std::fs::canonicalize(root).unwrap_or(root.clone());
                if seen.insert(canonical) {
                    files.push(root.clone());
                }
            }
            Ok(_) => {
                return Err(crate::input::read::not_regular(
                    root,
                    "case file or a folder of *.json cases",
                ))
            }
            Err(_) => {
                return Err(Error::Usage(format!(
                    "{}: no such file or directory; give a case file or a folder of *.json cases",
                    escape_path(root)
                )))
            }
        }
    }
    Ok(files)
}
