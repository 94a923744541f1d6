//! `--plugin`: C kernels built from `examples/c-kernel/` and
//! `harness/tests/plugins/`, run through the built `bnh` binary.
//!
//! Needs a C compiler (`$CC`, else `cc`); without one each test prints why it
//! is skipped and passes.

mod common;
use common::c_plugin::{build, compiler, example, repo};
use common::{bnh, scratch};
use std::process::{Command, Output};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fixtures() -> String {
    repo()
        .join("harness/tests/fixtures/torch")
        .display()
        .to_string()
}

/// The C example passes every f32/f64 case; bf16/f16 cases are `unsupported`, not failures.
#[test]
fn check_passes_the_c_example_with_half_cases_unsupported() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "check-ok");
    let lib = example(&cc, &dir, false);
    let o = bnh(&[
        "check",
        &fixtures(),
        "--plugin",
        lib.to_str().unwrap(),
        "--impl",
        "c-example",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("check: PASS"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    let mut unsupported = 0;
    for line in out.lines() {
        let case = line.split_whitespace().next().unwrap_or("");
        let half = case.starts_with("bf16") || case.starts_with("f16");
        if line.trim_end().ends_with("unsupported") {
            unsupported += 1;
            assert!(half, "a non-half case is unsupported: {line}");
        } else if half && !line.contains("rejected ok") {
            panic!("a half case was not declined: {line}");
        }
    }
    assert!(unsupported > 0, "no case shown unsupported:\n{out}");
    let summary = out
        .lines()
        .find(|l| l.starts_with("c-example "))
        .expect("a summary line");
    let counts = summary.split_whitespace().nth(1).unwrap();
    let (pass, total) = counts.split_once('/').unwrap();
    assert_eq!(pass, total, "{summary}");
    assert!(pass.parse::<usize>().unwrap() > 20, "{summary}");
    assert!(
        summary.contains(&format!("{unsupported} unsupported")),
        "{summary}"
    );
}

/// The twin with unbiased variance (declared stable) fails the check: exit 1.
#[test]
fn check_catches_the_buggy_twin() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "check-bug");
    let lib = example(&cc, &dir, true);
    let o = bnh(&[
        "check",
        &fixtures(),
        "--plugin",
        lib.to_str().unwrap(),
        "--impl",
        "c-example-buggy",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("check: FAIL"), "{out}");
    assert!(out.contains("FAIL "), "{out}");
    assert!(out.contains("/ c-example-buggy: running_var"), "{out}");
}

/// `bnh list --plugin` shows the plugin with its declared guarantees.
#[test]
fn list_json_includes_the_plugin() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "list");
    let lib = example(&cc, &dir, false);
    let o = bnh(&["list", "--json", "--plugin", lib.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entries = v.as_array().unwrap();
    let me = entries
        .iter()
        .find(|e| e["name"] == "c-example")
        .expect("the plugin is listed");
    assert_eq!(me["stable"], true);
    assert!(me["description"].as_str().unwrap().contains("plain C"));
    assert!(entries.iter().any(|e| e["name"] == "fused"));
}

/// `bnh bench` times the plugin next to a built-in and writes its rows.
#[test]
fn bench_writes_rows_for_the_plugin() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "bench");
    let lib = example(&cc, &dir, false);
    let csv = dir.join("bench.csv");
    let o = bnh(&[
        "bench",
        "--plugin",
        lib.to_str().unwrap(),
        "--impls",
        "c-example,fused",
        "--grid",
        "quick",
        "--min-time",
        "0.01",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let body = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = body.lines().skip(1).collect();
    let plugin = rows.iter().filter(|r| r.starts_with("c-example,")).count();
    let fused = rows.iter().filter(|r| r.starts_with("fused,")).count();
    assert!(plugin > 0, "{body}");
    assert_eq!(plugin, fused, "every cell timed for both:\n{body}");
}

/// A bench cell the plugin declines (bf16) is skipped with a note, not a crash.
#[test]
fn bench_skips_a_declined_cell() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "bench-skip");
    let lib = example(&cc, &dir, false);
    let csv = dir.join("bench.csv");
    let o = bnh(&[
        "bench",
        "--plugin",
        lib.to_str().unwrap(),
        "--impls",
        "c-example,fused",
        "--dtypes",
        "bf16",
        "--ops",
        "train",
        "--shapes",
        "8x4",
        "--threads",
        "1",
        "--min-time",
        "0.01",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("skipped c-example train bf16"), "{err}");
    assert!(err.contains("unsupported"), "{err}");
    let body = std::fs::read_to_string(&csv).unwrap();
    assert!(!body.contains("c-example,"), "{body}");
    assert!(body.contains("fused,train,bf16"), "{body}");
}

/// `bnh run-case`: outputs for an f64 case, `{"error"}` (exit 0) for a declined bf16 one.
#[test]
fn run_case_with_the_plugin() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "run-case");
    let lib = example(&cc, &dir, false);
    let torch = repo().join("harness/tests/fixtures/torch");
    let pick = |prefix: &str| {
        let mut names: Vec<_> = std::fs::read_dir(&torch)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(prefix) && n.ends_with(".json")
            })
            .collect();
        names.sort();
        names.into_iter().next().expect("a fixture")
    };
    for (prefix, key) in [("illcond-f64", "outputs"), ("bf16", "error")] {
        let out = dir.join(format!("{prefix}.json"));
        let case = pick(prefix);
        let o = bnh(&[
            "run-case",
            case.to_str().unwrap(),
            "--plugin",
            lib.to_str().unwrap(),
            "--impl",
            "c-example",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(v.get(key).is_some(), "{prefix}: {v}");
    }
}

/// The `#[repr(C)]` mirror has the C compiler's sizes and offsets for the header.
#[test]
fn ffi_mirror_matches_the_header() {
    use bn_harness::plugin::ffi::{Desc, KernelV1};
    use std::mem::{offset_of, size_of};
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "layout");
    let exe = dir.join("layout");
    let o = Command::new(&cc)
        .arg("-I")
        .arg(repo().join("include"))
        .arg(repo().join("harness/tests/plugins/layout.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(&exe).output().unwrap();
    let printed = String::from_utf8(o.stdout).unwrap();
    let rust = [
        ("bnh_desc", size_of::<Desc>()),
        ("bnh_desc.dtype", offset_of!(Desc, dtype)),
        ("bnh_desc.layout", offset_of!(Desc, layout)),
        ("bnh_desc.n", offset_of!(Desc, n)),
        ("bnh_desc.c", offset_of!(Desc, c)),
        ("bnh_desc.s", offset_of!(Desc, s)),
        ("bnh_desc.eps", offset_of!(Desc, eps)),
        ("bnh_desc.threads", offset_of!(Desc, threads)),
        ("bnh_kernel_v1", size_of::<KernelV1>()),
        (
            "bnh_kernel_v1.abi_version",
            offset_of!(KernelV1, abi_version),
        ),
        ("bnh_kernel_v1.name", offset_of!(KernelV1, name)),
        (
            "bnh_kernel_v1.description",
            offset_of!(KernelV1, description),
        ),
        ("bnh_kernel_v1.stable", offset_of!(KernelV1, stable)),
        (
            "bnh_kernel_v1.deterministic",
            offset_of!(KernelV1, deterministic),
        ),
        (
            "bnh_kernel_v1.forward_train",
            offset_of!(KernelV1, forward_train),
        ),
        (
            "bnh_kernel_v1.forward_eval",
            offset_of!(KernelV1, forward_eval),
        ),
        ("bnh_kernel_v1.backward", offset_of!(KernelV1, backward)),
    ];
    let c: Vec<(String, usize)> = printed
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(c.len(), rust.len(), "{printed}");
    for ((ck, cv), (rk, rv)) in c.iter().zip(rust) {
        assert_eq!(
            (ck.as_str(), *cv),
            (rk, rv),
            "C says {ck} = {cv}, Rust {rk} = {rv}"
        );
    }
}

/// Each broken plugin is refused before any work: exit 2, the file's name
/// and the problem in the message.
#[test]
fn broken_plugins_are_refused_with_the_fix() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "bad");
    let long = format!("-DNAME=\"{}\"", "a".repeat(65));
    let cases: &[(&str, &[&str], &str)] = &[
        ("abi", &["-DABI=2"], "abi_version is 2"),
        ("nullfn", &["-DBACKWARD=NULL"], "`backward` is NULL"),
        (
            "badname",
            &["-DNAME=\"Bad Name\""],
            "\"Bad Name\" is not valid",
        ),
        ("nullname", &["-DNAME=NULL"], "`name` is NULL"),
        ("longname", &[long.as_str()], "longer than 64"),
        ("dupname", &["-DNAME=\"fused\""], "'fused' is a built-in"),
        ("nullentry", &["-DNULL_ENTRY"], "returned NULL"),
        (
            "nosymbol",
            &["-DNO_SYMBOL"],
            "does not export `bnh_kernel_entry_v1`",
        ),
        (
            "desc",
            &["-DDESC=\"caf\\xe9\""],
            "`description` is not UTF-8",
        ),
    ];
    for (file, defines, expect) in cases {
        let lib = dir.join(format!("lib{file}.so"));
        build(&cc, "harness/tests/plugins/bad.c", defines, &lib);
        for cmd in [&["list"][..], &["check", "--impl", "fused"][..]] {
            let mut args = cmd.to_vec();
            args.extend(["--plugin", lib.to_str().unwrap()]);
            let o = bnh(&args);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(2), "{file} {cmd:?}: {out}{err}");
            assert!(err.contains(&format!("lib{file}.so")), "{file}: {err}");
            assert!(
                err.contains(expect),
                "{file}: expected '{expect}' in: {err}"
            );
            assert!(out.is_empty(), "{file}: printed before refusing: {out}");
        }
    }
}

/// Missing and non-library files, and one plugin name given twice.
#[test]
fn unusable_files_and_duplicate_plugins_are_refused() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "files");
    let missing = dir.join("libmissing.so");
    let text_file = dir.join("libtext.so");
    std::fs::write(&text_file, "not a library").unwrap();
    let lib = example(&cc, &dir, false);
    let (m, t, l) = (
        missing.to_str().unwrap(),
        text_file.to_str().unwrap(),
        lib.to_str().unwrap(),
    );
    for (args, expect) in [
        (vec!["list", "--plugin", m], "cannot open it"),
        (vec!["list", "--plugin", t], "not a loadable shared library"),
        (
            vec!["list", "--plugin", l, "--plugin", l],
            "already taken by another --plugin",
        ),
    ] {
        let o = bnh(&args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

/// `bnh accuracy` skips what a plugin declines (bf16) with a printed reason,
/// keeps what it supports (f32) and the built-ins' bf16 rows: exit 0.
#[test]
fn accuracy_skips_a_declined_dtype() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "accuracy-skip");
    let lib = example(&cc, &dir, false);
    let csv = dir.join("accuracy.csv");
    let o = bnh(&[
        "accuracy",
        "--quick",
        "--max-n",
        "2",
        "--plugin",
        lib.to_str().unwrap(),
        "--impls",
        "c-example,welford",
        "--dtypes",
        "f32,bf16",
        "--csv",
        csv.to_str().unwrap(),
        "--chart",
        "none",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("skipped c-example on bf16") && err.contains("unsupported"),
        "{err}"
    );
    let body = std::fs::read_to_string(&csv).unwrap();
    let rows = |imp: &str, dtype: &str| {
        body.lines()
            .filter(|l| l.starts_with(&format!("{imp},{dtype},")))
            .count()
    };
    assert_eq!(rows("c-example", "bf16"), 0, "{body}");
    assert!(rows("c-example", "f32") > 0, "{body}");
    assert!(rows("welford", "bf16") > 0, "{body}");
}

/// A plugin that declines bf16/f16 (the ABI's BNH_BF16/BNH_F16 codes; the
/// example returns nonzero for them) gets `unsupported` on every bf16/f16
/// case PyTorch accepts, and `pass` where PyTorch rejects the input (the
/// module rules reject it before the kernel is asked): `bnh check --csv`.
#[test]
fn half_cases_are_unsupported_for_a_plugin_declining_bf16_and_f16() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("plugin", "half-unsupported");
    let lib = example(&cc, &dir, false);
    let csv = dir.join("verdicts.csv");
    let o = bnh(&[
        "check",
        &fixtures(),
        "--plugin",
        lib.to_str().unwrap(),
        "--impl",
        "c-example",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let body = std::fs::read_to_string(&csv).unwrap();
    let (mut half, mut rejected) = (0, 0);
    for line in body.lines().skip(1) {
        let f: Vec<&str> = line.splitn(4, ',').collect();
        let (case, verdict) = (f[0], f[2]);
        if !(case.starts_with("bf16_") || case.starts_with("f16_")) {
            assert_eq!(verdict, "pass", "{line}");
        } else if case.contains("_error-") {
            assert_eq!(verdict, "pass", "{line}");
            rejected += 1;
        } else {
            assert_eq!(verdict, "unsupported", "{line}");
            half += 1;
        }
    }
    assert!(half >= 60, "bf16/f16 cases found: {half}\n{body}");
    assert!(rejected > 0, "no bf16/f16 error case found\n{body}");
}
