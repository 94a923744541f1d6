//! State dicts as safetensors with PyTorch's key names: files PyTorch wrote
//! read back exactly, files bnh writes load in PyTorch (when a Python with
//! torch and safetensors is found; skipped with a printed reason otherwise),
//! every malformed file is refused naming the key or the problem, and
//! `bnh run-case --state-in/--save-state` uses them.

mod common;
use common::{bnh, scratch};

use bn_harness::conformance::shipped_fixtures;
use bn_harness::state_dict::{self, Expect, ModuleState};
use bn_impls::DType;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/state_dicts")
}

/// Every fixture's name and its description (`NAME.json`).
fn fixtures() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| {
                let meta: Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                (p.file_stem().unwrap().to_string_lossy().into_owned(), meta)
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 7, "found {} state-dict fixtures", out.len());
    out
}

fn expect_of(meta: &Value) -> Expect {
    Expect {
        num_features: meta["num_features"].as_u64().unwrap() as usize,
        affine: meta["affine"].as_bool().unwrap(),
        track_running_stats: meta["track_running_stats"].as_bool().unwrap(),
        dtype: meta["dtype"].as_str().unwrap().parse().unwrap(),
    }
}

/// The state `meta` describes (values exactly as PyTorch held them).
fn state_of(meta: &Value) -> ModuleState {
    let s = &meta["state"];
    let v = |k: &str| {
        s.get(k).map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
    };
    ModuleState {
        dtype: expect_of(meta).dtype,
        weight: v("weight"),
        bias: v("bias"),
        running_mean: v("running_mean"),
        running_var: v("running_var"),
        num_batches_tracked: s.get("num_batches_tracked").map(|n| n.as_i64().unwrap()),
    }
}

fn prefix(meta: &Value) -> &str {
    meta["prefix"].as_str().unwrap()
}

/// Bitwise equality (so -0.0 and 0.0 differ and NaN equals itself).
fn same(a: &ModuleState, b: &ModuleState) -> bool {
    let bits = |v: &Option<Vec<f64>>| {
        v.as_ref()
            .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
    };
    a.dtype == b.dtype
        && a.num_batches_tracked == b.num_batches_tracked
        && bits(&a.weight) == bits(&b.weight)
        && bits(&a.bias) == bits(&b.bias)
        && bits(&a.running_mean) == bits(&b.running_mean)
        && bits(&a.running_var) == bits(&b.running_var)
}

#[test]
fn files_pytorch_wrote_read_back_exactly() {
    let mut seen = (false, false, false, false);
    for (name, meta) in fixtures() {
        let path = dir().join(format!("{name}.safetensors"));
        let got = state_dict::read(&path, prefix(&meta), expect_of(&meta))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = state_of(&meta);
        assert!(same(&got, &want), "{name}: {got:?} != {want:?}");
        let e = expect_of(&meta);
        seen.0 |= !prefix(&meta).is_empty();
        seen.1 |= !e.affine;
        seen.2 |= !e.track_running_stats;
        seen.3 |= got.num_batches_tracked.unwrap_or(0) >= 3;
    }
    assert_eq!(
        seen,
        (true, true, true, true),
        "prefix / affine off / tracking off / several steps"
    );
}

#[test]
fn written_files_read_back_and_keep_the_prefix() {
    for (name, meta) in fixtures() {
        let want = state_of(&meta);
        for p in ["", "bn1.", "features.3."] {
            let bytes = state_dict::to_bytes(&want, p);
            let got = state_dict::parse(&bytes, p, expect_of(&meta))
                .unwrap_or_else(|e| panic!("{name} with prefix '{p}': {e}"));
            assert!(same(&got, &want), "{name} / '{p}'");
        }
    }
}

fn read_err(bytes: &[u8], prefix: &str, expect: Expect) -> String {
    state_dict::parse(bytes, prefix, expect).expect_err("must be refused")
}

fn f32_fixture() -> (Vec<u8>, Expect, ModuleState) {
    let meta = fixtures()
        .into_iter()
        .find(|(n, _)| n == "f32-3steps")
        .unwrap()
        .1;
    let bytes = std::fs::read(dir().join("f32-3steps.safetensors")).unwrap();
    (bytes, expect_of(&meta), state_of(&meta))
}

/// A file holding `tensors` (name, dtype, shape, raw bytes).
fn file_with(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn wrong_keys_shapes_and_dtypes_are_named() {
    let (bytes, expect, state) = f32_fixture();
    // Missing key: a module without bias in the file, read as affine.
    let mut no_bias = state.clone();
    no_bias.bias = None;
    let msg = read_err(&state_dict::to_bytes(&no_bias, ""), "", expect);
    assert!(msg.contains("missing key 'bias'"), "{msg}");
    // The wrong prefix: missing with a hint, or unexpected keys.
    let msg = read_err(&bytes, "bn1.", expect);
    assert!(msg.contains("missing key 'bn1.weight'"), "{msg}");
    let prefixed = state_dict::to_bytes(&state, "bn1.");
    let msg = read_err(&prefixed, "", expect);
    assert!(msg.contains("unexpected key 'bn1."), "{msg}");
    // Wrong channel count.
    let msg = read_err(
        &bytes,
        "",
        Expect {
            num_features: 4,
            ..expect
        },
    );
    assert!(msg.contains("shape [3], expected [4]"), "{msg}");
    // Wrong dtype (f32 file, f64 module).
    let msg = read_err(
        &bytes,
        "",
        Expect {
            dtype: DType::F64,
            ..expect
        },
    );
    assert!(msg.contains("dtype F32, expected F64"), "{msg}");
    // Keys the config does not have: running stats for a module without tracking.
    let msg = read_err(
        &bytes,
        "",
        Expect {
            track_running_stats: false,
            ..expect
        },
    );
    assert!(
        msg.contains("unexpected key 'num_batches_tracked'")
            || msg.contains("unexpected key 'running_"),
        "{msg}"
    );
    // Extra key under the prefix; keys outside the prefix are ignored.
    let mut tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("bn1.weight", Dtype::F32, vec![3], vec![0; 12]),
        ("bn1.bias", Dtype::F32, vec![3], vec![0; 12]),
        ("bn1.running_mean", Dtype::F32, vec![3], vec![0; 12]),
        ("bn1.running_var", Dtype::F32, vec![3], vec![0; 12]),
        ("bn1.num_batches_tracked", Dtype::I64, vec![], vec![0; 8]),
        ("conv.weight", Dtype::F64, vec![2, 2], vec![0; 32]),
    ];
    assert!(state_dict::parse(&file_with(&tensors), "bn1.", expect).is_ok());
    tensors.push(("bn1.momentum", Dtype::F32, vec![], vec![0; 4]));
    let msg = read_err(&file_with(&tensors), "bn1.", expect);
    assert!(msg.contains("unexpected key 'bn1.momentum'"), "{msg}");
    tensors.pop();
    // num_batches_tracked must be an int64 scalar, and not negative.
    tensors[4] = ("bn1.num_batches_tracked", Dtype::I64, vec![1], vec![0; 8]);
    let msg = read_err(&file_with(&tensors), "bn1.", expect);
    assert!(
        msg.contains("'bn1.num_batches_tracked'") && msg.contains("int64 scalar"),
        "{msg}"
    );
    tensors[4] = ("bn1.num_batches_tracked", Dtype::F32, vec![], vec![0; 4]);
    let msg = read_err(&file_with(&tensors), "bn1.", expect);
    assert!(msg.contains("int64 scalar"), "{msg}");
    tensors[4] = (
        "bn1.num_batches_tracked",
        Dtype::I64,
        vec![],
        (-1i64).to_le_bytes().to_vec(),
    );
    let msg = read_err(&file_with(&tensors), "bn1.", expect);
    assert!(msg.contains("negative"), "{msg}");
}

#[test]
fn truncated_corrupt_and_huge_header_files_are_refused() {
    let (bytes, expect, _) = f32_fixture();
    for cut in [0, 5, 8, 20, bytes.len() - 1] {
        let msg = read_err(&bytes[..cut], "", expect);
        assert!(
            msg.contains("truncated")
                || msg.contains("shorter than")
                || msg.contains("not a valid"),
            "cut at {cut}: {msg}"
        );
    }
    // A header length of 2^40 bytes: refused before anything is allocated.
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let msg = read_err(&huge, "", expect);
    assert!(
        msg.contains("header length") && msg.contains("over the limit"),
        "{msg}"
    );
    // Header length longer than the file.
    let mut long = bytes.clone();
    long[..8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
    assert!(read_err(&long, "", expect).contains("truncated"));
    // Garbage in the header JSON.
    let mut garbage = bytes.clone();
    garbage[9] = b'#';
    assert!(read_err(&garbage, "", expect).contains("not a valid safetensors file"));
    // Bytes beyond the last tensor.
    let mut extra = bytes.clone();
    extra.extend([0; 4]);
    assert!(read_err(&extra, "", expect).contains("not a valid safetensors file"));
}

/// A Python that has torch and safetensors (and what the generator script
/// imports): `BNH_PYTHON`, the project's /work/torchenv, or `python3`.
/// Looked up once: importing torch takes seconds.
fn python() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let candidates = [
                std::env::var_os("BNH_PYTHON").map(PathBuf::from),
                Some(PathBuf::from("/work/torchenv/bin/python")),
                Some(PathBuf::from("python3")),
            ];
            candidates.into_iter().flatten().find(|p| {
                Command::new(p)
                    .args(["-c", "import torch, safetensors, numpy, mpmath"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
        })
        .clone()
}

/// Load each `(file, meta)` into a PyTorch module described by `meta`
/// (strict `load_state_dict`), in one Python run, and return the states as
/// PyTorch sees them.
fn torch_reads(py: &Path, files: &[(PathBuf, Value)], scratch_dir: &Path) -> Vec<ModuleState> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gen_fixtures.py");
    let mut cmd = Command::new(py);
    cmd.arg(script).arg("--check-bnh-state");
    for (k, (file, meta)) in files.iter().enumerate() {
        let meta_path = scratch_dir.join(format!("meta{k}.json"));
        std::fs::write(&meta_path, meta.to_string()).unwrap();
        cmd.arg(file).arg(meta_path);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "PyTorch refused a file bnh wrote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), files.len(), "{text}");
    lines
        .iter()
        .zip(files)
        .map(|(line, (_, meta))| {
            let mut m = meta.clone();
            m["state"] = serde_json::from_str(line).unwrap();
            state_of(&m)
        })
        .collect()
}

#[test]
fn pytorch_loads_what_bnh_writes() {
    let Some(py) = python() else {
        eprintln!(
            "SKIPPED pytorch_loads_what_bnh_writes: no Python with torch, safetensors, numpy \
             and mpmath (set BNH_PYTHON, or install them for python3)"
        );
        return;
    };
    let tmp = scratch("state_dict", "torch");
    let mut files = Vec::new();
    for (name, meta) in fixtures() {
        let file = tmp.join(format!("{name}.safetensors"));
        state_dict::write(&file, &state_of(&meta), prefix(&meta)).unwrap();
        files.push((file, meta));
    }
    for (got, (file, meta)) in torch_reads(&py, &files, &tmp).iter().zip(&files) {
        let want = state_of(meta);
        assert!(
            same(got, &want),
            "{}: PyTorch read {got:?}, bnh wrote {want:?}",
            file.display()
        );
    }
}

fn steps_case(name: &str) -> PathBuf {
    shipped_fixtures()
        .join("steps")
        .join(format!("{name}.json"))
}

fn run_case(args: &[&str]) -> std::process::Output {
    let mut all = vec!["run-case"];
    all.extend(args);
    bnh(&all)
}

/// `--state-in` starts the module from the file, `--save-state` writes the
/// state after the last step; the saved file reads back (and loads in
/// PyTorch when available) with the counts the steps imply.
#[test]
fn run_case_reads_and_saves_state() {
    let tmp = scratch("state_dict", "cli");
    let case = steps_case("steps_train3-momentum0.1-f32");
    let state_in = dir().join("f32-3steps.safetensors");
    let (out, saved) = (tmp.join("out.json"), tmp.join("saved.safetensors"));
    let o = run_case(&[
        case.to_str().unwrap(),
        "--impl",
        "welford",
        "--out",
        out.to_str().unwrap(),
        "--state-in",
        state_in.to_str().unwrap(),
        "--save-state",
        saved.to_str().unwrap(),
        "--state-prefix",
        "",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reply: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // The fixture module had seen 3 batches; the case adds 3 more.
    let nbt: Vec<_> = reply["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outputs"]["num_batches_tracked"].as_i64().unwrap())
        .collect();
    assert_eq!(nbt, [4, 5, 6]);
    let (_, expect, initial) = f32_fixture();
    let got = state_dict::read(&saved, "", expect).unwrap();
    assert_eq!(got.num_batches_tracked, Some(6));
    assert_eq!(got.weight, initial.weight, "weight does not change");
    let last = &reply["outputs"]["running_mean"];
    let last: Vec<f64> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.running_mean.as_ref(), Some(&last));
    // With a prefix, into PyTorch.
    let prefixed = tmp.join("prefixed.safetensors");
    let o = run_case(&[
        case.to_str().unwrap(),
        "--impl",
        "fused",
        "--out",
        out.to_str().unwrap(),
        "--save-state",
        prefixed.to_str().unwrap(),
        "--state-prefix",
        "bn1.",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = state_dict::read(&prefixed, "bn1.", expect).unwrap();
    assert_eq!(got.num_batches_tracked, Some(3));
    match python() {
        Some(py) => {
            let meta = serde_json::json!({"dtype": "f32", "num_features": 3, "affine": true,
                "track_running_stats": true, "prefix": "bn1."});
            assert!(same(
                &torch_reads(&py, &[(prefixed.clone(), meta)], &tmp)[0],
                &got
            ));
        }
        None => {
            eprintln!("SKIPPED the PyTorch load of run-case --save-state: no Python with torch")
        }
    }
}

#[test]
fn run_case_refuses_a_bad_state_with_exit_2_and_writes_nothing() {
    let tmp = scratch("state_dict", "cli-bad");
    let case = steps_case("steps_train3-momentum0.1-f32");
    let truncated = tmp.join("truncated.safetensors");
    let bytes = std::fs::read(dir().join("f32-3steps.safetensors")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let f64_state = dir().join("f64-momentum-none-4steps-prefix-bn1.safetensors");
    let (out, saved) = (tmp.join("out.json"), tmp.join("saved.safetensors"));
    let bad: [(&Path, &str, &str); 3] = [
        (&truncated, "", "truncated"),
        (&f64_state, "bn1.", "expected [3]"),
        (&tmp.join("absent.safetensors"), "", "absent.safetensors"),
    ];
    for (state, prefix, hint) in bad {
        let o = run_case(&[
            case.to_str().unwrap(),
            "--impl",
            "welford",
            "--out",
            out.to_str().unwrap(),
            "--state-in",
            state.to_str().unwrap(),
            "--state-prefix",
            prefix,
            "--save-state",
            saved.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", state.display());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(hint), "{}: {err}", state.display());
        assert!(!out.exists() && !saved.exists());
    }
    let o = run_case(&[
        case.to_str().unwrap(),
        "--impl",
        "welford",
        "--out",
        out.to_str().unwrap(),
        "--state-prefix",
        "bn1.",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--state-prefix without"));
    // The state output may not be the case or the state input.
    let o = run_case(&[
        case.to_str().unwrap(),
        "--impl",
        "welford",
        "--out",
        out.to_str().unwrap(),
        "--state-in",
        truncated.to_str().unwrap(),
        "--save-state",
        truncated.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        std::fs::read(&truncated).unwrap(),
        &bytes[..bytes.len() / 2]
    );
}
