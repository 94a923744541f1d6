//! A batch-norm module's state as a safetensors file with PyTorch's key
//! names, so state moves between PyTorch and `bnh` both ways.
//!
//! `safetensors.torch.save_file(bn.state_dict(), path)` writes `weight`,
//! `bias` (when `affine`), `running_mean`, `running_var` (shape `[C]`, the
//! module's parameter dtype) and `num_batches_tracked` (int64, shape `[]`,
//! when `track_running_stats`), each name optionally behind a prefix such as
//! `bn1.` (the module's path in a model). Format: a little-endian u64 header
//! length, a JSON header (dtype, shape, byte offsets per tensor), then the raw
//! little-endian data; parsed by the `safetensors` crate, which checks the
//! offsets against the buffer. Reading is strict about the keys under the
//! prefix (each one expected, none missing, shape and dtype exact) and
//! ignores keys outside it (the rest of a model's state dict).

use crate::error::{Error, Result};
use crate::input::read::read_limited_bytes;
use crate::output::{escape, escape_path, write_atomic};
use bn_impls::DType;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::Path;

/// Largest state file read (64 MiB: four f64 vectors of two million channels).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// Largest header accepted, far above what a module's five tensors need
/// (a few hundred bytes); a larger one is refused before it is parsed.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// What the module expects of a state file: its configuration and dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub num_features: usize,
    pub affine: bool,
    pub track_running_stats: bool,
    /// The dtype of `weight`, `bias` and the running statistics.
    pub dtype: DType,
}

impl Expect {
    /// The module a case describes.
    pub fn of(case: &crate::case::Case) -> Expect {
        Expect {
            num_features: case.channels(),
            affine: case.config.affine,
            track_running_stats: case.config.track_running_stats,
            dtype: case.param_dtype(),
        }
    }
}

/// A module's parameters and buffers, values as `f64` (each exactly a value
/// of `dtype`); `None` where the configuration has no such tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleState {
    pub dtype: DType,
    pub weight: Option<Vec<f64>>,
    pub bias: Option<Vec<f64>>,
    pub running_mean: Option<Vec<f64>>,
    pub running_var: Option<Vec<f64>>,
    pub num_batches_tracked: Option<i64>,
}

impl ModuleState {
    /// The per-channel tensors with PyTorch's names, in state-dict order.
    fn vectors(&self) -> [(&'static str, Option<&Vec<f64>>); 4] {
        [
            ("weight", self.weight.as_ref()),
            ("bias", self.bias.as_ref()),
            ("running_mean", self.running_mean.as_ref()),
            ("running_var", self.running_var.as_ref()),
        ]
    }
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
    }
}

/// Read the state of a module configured as `expect` from the safetensors
/// file at `path`, its keys behind `prefix` (`""` for none).
pub fn read(path: &Path, prefix: &str, expect: Expect) -> Result<ModuleState> {
    let bytes = read_limited_bytes(path, MAX_STATE_BYTES, "safetensors state file")?;
    parse(&bytes, prefix, expect).map_err(|detail| {
        Error::Usage(format!(
            "{}: not a usable batch-norm state: {detail}",
            escape_path(path)
        ))
    })
}

/// [`read`] from bytes; the error names the key or the problem.
pub fn parse(
    bytes: &[u8],
    prefix: &str,
    expect: Expect,
) -> std::result::Result<ModuleState, String> {
    check_header_length(bytes)?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file ({e}); truncated or corrupt?"))?;
    let wanted = wanted_keys(expect);
    // Every key under the prefix must be one the module has.
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    for name in &names {
        if let Some(key) = name.strip_prefix(prefix) {
            if !wanted.contains(&key) {
                return Err(format!(
                    "unexpected key '{}' for a module with affine={} and \
                     track_running_stats={} (expected {}); remove it, change the config, or \
                     give the right --state-prefix",
                    escape(name),
                    expect.affine,
                    expect.track_running_stats,
                    list(prefix, &wanted)
                ));
            }
        }
    }
    let get = |key: &str| {
        let full = format!("{prefix}{key}");
        file.tensor(&full).map_err(|_| {
            let near = names.iter().filter(|n| n.ends_with(key)).count();
            let hint = if near > 0 && !names.contains(&full.as_str()) {
                "; a key with another prefix exists: check --state-prefix"
            } else {
                ""
            };
            format!(
                "missing key '{}' (the module needs {}){hint}",
                escape(&full),
                list(prefix, &wanted)
            )
        })
    };
    let vector = |key: &str, on: bool| -> std::result::Result<Option<Vec<f64>>, String> {
        if !on {
            return Ok(None);
        }
        let t = get(key)?;
        let full = format!("{prefix}{key}");
        if t.shape() != [expect.num_features] {
            return Err(format!(
                "key '{}' has shape {:?}, expected [{}] (num_features)",
                escape(&full),
                t.shape(),
                expect.num_features
            ));
        }
        if t.dtype() != st_dtype(expect.dtype) {
            return Err(format!(
                "key '{}' has dtype {}, expected {} (the module's parameter dtype)",
                escape(&full),
                t.dtype(),
                st_dtype(expect.dtype)
            ));
        }
        Ok(Some(decode(&t, expect.dtype)))
    };
    // In state-dict order, so the first problem reported is the first key's.
    let weight = vector("weight", expect.affine)?;
    let bias = vector("bias", expect.affine)?;
    let track = expect.track_running_stats;
    let running_mean = vector("running_mean", track)?;
    let running_var = vector("running_var", track)?;
    let num_batches_tracked = if track {
        let t = get("num_batches_tracked")?;
        let full = format!("{prefix}num_batches_tracked");
        if t.dtype() != Dtype::I64 || !t.shape().is_empty() {
            return Err(format!(
                "key '{}' is {} of shape {:?}; PyTorch stores it as an int64 scalar (I64, shape [])",
                escape(&full),
                t.dtype(),
                t.shape()
            ));
        }
        let n = i64::from_le_bytes(t.data().try_into().expect("8 bytes: checked by shape"));
        if n < 0 {
            return Err(format!("key '{}' = {n} is negative", escape(&full)));
        }
        Some(n)
    } else {
        None
    };
    Ok(ModuleState {
        dtype: expect.dtype,
        weight,
        bias,
        running_mean,
        running_var,
        num_batches_tracked,
    })
}

/// Refuse a header length that cannot be right before the crate reads it:
/// longer than the file (truncated) or than any module state needs.
fn check_header_length(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(head) = bytes.get(..8) else {
        return Err(format!(
            "{} bytes, shorter than the 8-byte header length of a safetensors file",
            bytes.len()
        ));
    };
    let n = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    if n > MAX_HEADER_BYTES {
        return Err(format!(
            "header length {n} bytes is over the limit of {MAX_HEADER_BYTES} (a module's \
             state needs a few hundred); corrupt, or not a safetensors file"
        ));
    }
    if n > bytes.len() as u64 - 8 {
        return Err(format!(
            "header length {n} bytes but only {} bytes follow; the file is truncated",
            bytes.len() - 8
        ));
    }
    Ok(())
}

/// The keys a module configured as `expect` has, without prefix.
fn wanted_keys(expect: Expect) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if expect.affine {
        keys.extend(["weight", "bias"]);
    }
    if expect.track_running_stats {
        keys.extend(["running_mean", "running_var", "num_batches_tracked"]);
    }
    keys
}

fn list(prefix: &str, keys: &[&str]) -> String {
    if keys.is_empty() {
        return "no keys".into();
    }
    keys.iter()
        .map(|k| format!("'{}{k}'", escape(prefix)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values of a `[C]` tensor of `dtype` (little-endian), exactly.
fn decode(t: &TensorView<'_>, dtype: DType) -> Vec<f64> {
    let data = t.data();
    match dtype {
        DType::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        DType::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        DType::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64())
            .collect(),
        DType::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f64())
            .collect(),
    }
}

/// `values` as little-endian bytes of `dtype` (each value is one of the
/// dtype, so the conversion is exact).
fn encode(values: &[f64], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        DType::F64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f64(v).to_bits().to_le_bytes())
            .collect(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f64(v).to_bits().to_le_bytes())
            .collect(),
    }
}

/// The safetensors bytes of `state`, keys behind `prefix`, as
/// `safetensors.torch.save_file(bn.state_dict())` would hold them.
pub fn to_bytes(state: &ModuleState, prefix: &str) -> Vec<u8> {
    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = state
        .vectors()
        .into_iter()
        .filter_map(|(key, v)| {
            let v = v?;
            Some((
                format!("{prefix}{key}"),
                st_dtype(state.dtype),
                vec![v.len()],
                encode(v, state.dtype),
            ))
        })
        .collect();
    if let Some(n) = state.num_batches_tracked {
        data.push((
            format!("{prefix}num_batches_tracked"),
            Dtype::I64,
            vec![],
            n.to_le_bytes().to_vec(),
        ));
    }
    let views = data.iter().map(|(name, dtype, shape, bytes)| {
        let view = TensorView::new(*dtype, shape.clone(), bytes).expect("length matches shape");
        (name.clone(), view)
    });
    safetensors::serialize(views, None).expect("a few small tensors always serialize")
}

/// Write `state` to `path` atomically (see [`to_bytes`]).
pub fn write(path: &Path, state: &ModuleState, prefix: &str) -> Result<()> {
    write_atomic(path, &to_bytes(state, prefix))
}
