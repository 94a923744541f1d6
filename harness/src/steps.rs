//! Multi-step cases: several calls on one module (bn-case/1 extension
//! "Multi-step cases" in `docs/BN-CASE-FORMAT.md`).
//!
//! A file with a `steps` array describes one module (top-level `config`,
//! `dtype`, `param_dtype`, `memory_format`, `shape`, and its initial
//! parameters and buffers in `inputs`) and the calls made on it in order;
//! each step carries the per-call fields of a single case: `training`,
//! optionally its own `shape`, `inputs.x`, `inputs.grad_output`, and
//! `expected` (the outputs and the module's buffers after the step),
//! `reference` or `expected_error`. The running statistics and
//! `num_batches_tracked` carry over from one step to the next; `weight` and
//! `bias` do not change (no optimizer), and each step's gradients are those
//! of that step alone (as after `zero_grad()`).
//!
//! In memory such a file is a [`Case`] whose single-call fields are those of
//! step 0 (so code that knows one call still reads a valid first call) plus
//! [`Case::steps`], every step including step 0.

use crate::case::{Case, Inputs, Outputs};
use crate::num::Num;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One call of a multi-step case: the per-call fields of a single case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Module mode for this call (`module.train()` / `module.eval()`).
    pub training: bool,
    /// This call's `(N, C, *spatial)`; absent = the file's `shape`. C must
    /// be the module's channel count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<usize>>,
    pub inputs: StepInputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_error: Option<String>,
}

/// The inputs of one step: the batch and, for a backward, its output gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInputs {
    pub x: Vec<Num>,
    #[serde(default)]
    pub grad_output: Option<Vec<Num>>,
}

/// The top-level keys that belong to a call, not to the module: a steps
/// file puts them in each step instead.
const PER_CALL_KEYS: [&str; 4] = ["training", "expected", "reference", "expected_error"];
/// The keys of top-level `inputs` that belong to a call.
const PER_CALL_INPUTS: [&str; 2] = ["x", "grad_output"];

/// Turn the JSON of a steps file into a single-case JSON (step 0's call
/// fields at the top level) plus the parsed steps. `Ok(None)` when the file
/// has no `steps` key (a single case, read as before).
pub fn split(value: &mut Value) -> Result<Option<Vec<Step>>, String> {
    let Some(obj) = value.as_object_mut() else {
        return Ok(None);
    };
    let Some(raw) = obj.remove("steps") else {
        return Ok(None);
    };
    let Value::Array(raw) = raw else {
        return Err("steps must be an array of steps (objects)".into());
    };
    if raw.is_empty() {
        return Err(
            "steps is empty; give at least one step, or drop steps for a single call".into(),
        );
    }
    for key in PER_CALL_KEYS {
        if obj.contains_key(key) {
            return Err(format!(
                "top-level {key} in a file with steps; in a steps file each step carries its own \
                 {key} (move it into the steps)"
            ));
        }
    }
    let mut steps = raw
        .into_iter()
        .enumerate()
        .map(|(k, v)| serde_json::from_value::<Step>(v).map_err(|e| format!("steps[{k}]: {e}")))
        .collect::<Result<Vec<Step>, String>>()?;
    resolve_shapes(obj.get("shape"), &mut steps)?;
    let inputs = obj
        .entry("inputs")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(inputs) = inputs.as_object_mut() else {
        return Err(
            "inputs must be an object (the module's initial parameters and buffers)".into(),
        );
    };
    for key in PER_CALL_INPUTS {
        if inputs.get(key).is_some_and(|v| !v.is_null()) {
            return Err(format!(
                "top-level inputs.{key} in a file with steps; each step gives its own \
                 inputs.{key} (move it into the steps)"
            ));
        }
    }
    // Step 0's call fields at the top level: the single-call view of the file.
    let first = &steps[0];
    inputs.insert("x".into(), to_value(&first.inputs.x));
    inputs.insert("grad_output".into(), to_value(&first.inputs.grad_output));
    obj.insert("training".into(), Value::Bool(first.training));
    obj.insert("shape".into(), to_value(&first.shape));
    for (key, part) in [
        ("expected", &first.expected),
        ("reference", &first.reference),
    ] {
        if let Some(p) = part {
            obj.insert(key.into(), to_value(p));
        }
    }
    if let Some(e) = &first.expected_error {
        obj.insert("expected_error".into(), Value::String(e.clone()));
    }
    Ok(Some(steps))
}

/// Give every step its shape (its own, or the file's `shape`), and check
/// that every step has the channel count of step 0 (a module's C is fixed).
fn resolve_shapes(top: Option<&Value>, steps: &mut [Step]) -> Result<(), String> {
    let top: Option<Vec<usize>> = match top {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("shape: {e}; write [N, C, *spatial]"))?,
        ),
    };
    let mut channels = None;
    for (k, step) in steps.iter_mut().enumerate() {
        let shape = match (&step.shape, &top) {
            (Some(s), _) | (None, Some(s)) => s.clone(),
            (None, None) => {
                return Err(format!(
                    "steps[{k}] has no shape and the file has no top-level shape; give one"
                ))
            }
        };
        let c = shape.get(1).copied();
        match channels {
            None => channels = Some(c),
            Some(c0) if c0 != c => {
                return Err(format!(
                    "steps[{k}].shape {shape:?} has C = {} but steps[0] has C = {}; a module's \
                     channel count is fixed",
                    c.map_or("none".into(), |c| c.to_string()),
                    c0.map_or("none".into(), |c| c.to_string()),
                ))
            }
            Some(_) => {}
        }
        step.shape = Some(shape);
    }
    Ok(())
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain data")
}

impl Case {
    /// The number of calls: the length of `steps`, 1 for a single case.
    pub fn step_count(&self) -> usize {
        self.steps.as_ref().map_or(1, Vec::len)
    }

    /// Step `k` as a single case: the parameters, the buffers the module
    /// held before the step in PyTorch (the file's `inputs` for step 0, the
    /// buffers of step `k − 1`'s `expected` after), step `k`'s mode, shape,
    /// batch and expected outputs. Its `reference` is computed from those
    /// exact values, so each step is an ordinary single case. For a single
    /// case, `k = 0` is the case itself.
    pub fn step_case(&self, k: usize) -> Case {
        let Some(steps) = &self.steps else {
            return self.clone();
        };
        let step = &steps[k];
        let mut state = self.inputs.clone();
        if let Some(before) = k.checked_sub(1).and_then(|j| steps[j].expected.as_ref()) {
            state.running_mean = before.running_mean.clone();
            state.running_var = before.running_var.clone();
            state.num_batches_tracked = before.num_batches_tracked;
        }
        Case {
            training: step.training,
            shape: step.shape.clone().unwrap_or_else(|| self.shape.clone()),
            inputs: Inputs {
                x: step.inputs.x.clone(),
                grad_output: step.inputs.grad_output.clone(),
                ..state
            },
            expected: step.expected.clone(),
            reference: step.reference.clone(),
            expected_error: step.expected_error.clone(),
            steps: None,
            ..self.clone()
        }
    }

    /// Structural checks of every step, each message naming the step; only
    /// the last step may expect an error (a rejected call ends the sequence).
    pub(crate) fn validate_steps(&self) -> Result<(), String> {
        let Some(steps) = &self.steps else {
            return Ok(());
        };
        for (k, step) in steps.iter().enumerate() {
            if let (Some(e), true) = (&step.expected, self.config.track_running_stats) {
                for (name, present) in [
                    ("running_mean", e.running_mean.is_some()),
                    ("running_var", e.running_var.is_some()),
                    ("num_batches_tracked", e.num_batches_tracked.is_some()),
                ] {
                    if !present {
                        return Err(format!(
                            "steps[{k}].expected.{name} is null but config.track_running_stats \
                             is true; each step's expected holds the buffers after the step"
                        ));
                    }
                }
            }
            self.step_case(k)
                .validate()
                .map_err(|e| format!("steps[{k}]: {e}"))?;
            if step.expected_error.is_some() && k + 1 != steps.len() {
                return Err(format!(
                    "steps[{k}] has expected_error but is not the last step; a call PyTorch \
                     rejects ends the sequence (drop the steps after it)"
                ));
            }
        }
        Ok(())
    }
}
