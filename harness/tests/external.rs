//! `--external NAME=COMMAND` and `bnh check --csv`, through the built `bnh`
//! binary: another bnh as an external passes, a wrong one fails, a hanging
//! one times out, a crashing one is `crashed` with its stderr, a missing
//! program stops the check before work; and `scripts/torch_kernel.py` passes
//! every shipped case when PyTorch is there (`BNH_PYTHON`, else `python3`;
//! without it that test prints why it skips).

mod common;
use common::{bnh, scratch, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ is inside the repo")
        .to_path_buf()
}

fn fixtures() -> PathBuf {
    repo().join("harness/tests/fixtures/torch")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A folder with a few shipped cases: training with backward, eval,
/// channels_last, a case PyTorch rejects and a bf16 one. Returns the scratch
/// guard (keep it for the whole test: dropping it removes the folder) and
/// `cases/` inside it.
fn few_cases(name: &str) -> (Scratch, PathBuf) {
    let scratch = scratch("external", name);
    let dir = scratch.join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "bn2d-small.json",
        "bn2d-cl-f32-eval.json",
        "error-one-value-per-channel.json",
        "bf16_bn2d-cl-train.json",
    ] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    (scratch, dir)
}

/// `bnh run-case` of this build with `imp`, as an external command.
fn bnh_external(name: &str, imp: &str) -> String {
    format!(
        "{name}={} run-case {{case}} --impl {imp} --out {{out}}",
        shell_quote(env!("CARGO_BIN_EXE_bnh"))
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The CSV rows (without the header) of `impl_name`, as `(case, verdict, detail)`.
fn csv_rows(csv: &Path, impl_name: &str) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["case", "impl", "verdict", "worst_ratio", "output", "detail"]
    );
    r.records()
        .map(|rec| rec.unwrap())
        .filter(|rec| &rec[1] == impl_name)
        .map(|rec| (rec[0].to_string(), rec[2].to_string(), rec[5].to_string()))
        .collect()
}

#[test]
fn another_bnh_build_passes_as_an_external() {
    let (_scratch, cases) = few_cases("bnh-ok");
    let csv = cases.parent().unwrap().join("verdicts.csv");
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--impl",
        "naive",
        "--external",
        &bnh_external("old", "welford"),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("check: PASS"), "{out}");
    let header = out.lines().next().unwrap();
    assert!(header.contains("naive") && header.contains("old"), "{out}");
    let rows = csv_rows(&csv, "old");
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|(_, v, _)| v == "pass"), "{rows:?}");
    // Every (case, implementation) pair has a row.
    assert_eq!(csv_rows(&csv, "naive").len(), 4);
}

#[test]
fn an_external_with_wrong_outputs_fails_the_check() {
    let (_scratch, cases) = few_cases("wrong");
    let csv = cases.parent().unwrap().join("verdicts.csv");
    // Writes a well-formed output file with a wrong `y` and nothing else.
    let script = cases.parent().unwrap().join("wrong.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '{\"outputs\":{\"y\":[1e9],\"running_mean\":null,\"running_var\":null,\"num_batches_tracked\":null,\"grad_input\":null,\"grad_weight\":null,\"grad_bias\":null}}' > \"$2\"\n",
    )
    .unwrap();
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--impl",
        "welford",
        "--external",
        &format!("wrong=sh {}", shell_quote(script.to_str().unwrap())),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("check: FAIL"), "{out}");
    assert!(out.contains("/ wrong:"), "failures listed:\n{out}");
    let rows = csv_rows(&csv, "wrong");
    assert_eq!(rows.len(), 4);
    for (case, verdict, detail) in &rows {
        assert_eq!(verdict, "fail", "{case}: {detail}");
        assert!(!detail.is_empty(), "{case}: a failure says why");
    }
    // The built-in beside it is unaffected.
    assert!(csv_rows(&csv, "welford").iter().all(|r| r.1 == "pass"));
}

#[test]
fn a_hanging_external_times_out_and_the_check_completes() {
    let (_scratch, cases) = few_cases("hang");
    let csv = cases.parent().unwrap().join("verdicts.csv");
    let start = Instant::now();
    // The background sleep (its pid noted in `pids`) would outlive `sh`:
    // only killing the whole process group ends it.
    let pids = cases.parent().unwrap().join("pids");
    let hang = format!(
        "hang=sh -c 'sleep 1000 & echo $! >> \"$0\"; sleep 1000' {} {{case}} {{out}}",
        shell_quote(pids.to_str().unwrap())
    );
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--impl",
        "welford",
        "--timeout",
        "1",
        "--external",
        &hang,
        "--external",
        &bnh_external("good", "fused"),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let took = start.elapsed();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("TIMEOUT"), "{out}");
    assert!(
        took < Duration::from_secs(60),
        "4 cases at --timeout 1 took {took:?}"
    );
    let rows = csv_rows(&csv, "hang");
    assert_eq!(rows.len(), 4);
    for (case, verdict, detail) in &rows {
        assert_eq!(verdict, "timeout", "{case}: {detail}");
        assert!(detail.contains("--timeout"), "{detail}");
    }
    assert!(csv_rows(&csv, "good").iter().all(|r| r.1 == "pass"));
    let pids = std::fs::read_to_string(&pids).unwrap();
    assert_eq!(pids.lines().count(), 4, "{pids}");
    for pid in pids.lines() {
        assert!(!alive(pid), "background process {pid} outlived the timeout");
    }
}

/// Whether process `pid` still runs (a zombie awaiting its reaper does not).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

#[test]
fn a_crashing_external_is_crashed_with_its_stderr_tail() {
    let (_scratch, cases) = few_cases("crash");
    let csv = cases.parent().unwrap().join("verdicts.csv");
    // Floods stderr first (far more than a pipe holds), then says why and exits 3.
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--impl",
        "welford",
        "--external",
        "boom=sh -c 'head -c 3000000 /dev/zero | tr \"\\0\" x >&2; echo; echo kernel exploded >&2; exit 3'",
        "--external",
        "silent=sh -c 'exit 0'",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("CRASHED"), "{out}");
    for (case, verdict, detail) in csv_rows(&csv, "boom") {
        assert_eq!(verdict, "crashed", "{case}: {detail}");
        assert!(detail.contains("status 3"), "{detail}");
        assert!(detail.ends_with("kernel exploded"), "{detail}");
        assert!(detail.len() < 4000, "only a tail is kept: {}", detail.len());
    }
    for (case, verdict, detail) in csv_rows(&csv, "silent") {
        assert_eq!(verdict, "crashed", "{case}: {detail}");
        assert!(detail.contains("no output file"), "{detail}");
    }
}

#[test]
fn a_missing_program_or_bad_flags_stop_before_any_work() {
    let (_scratch, cases) = few_cases("missing");
    let csv = cases.parent().unwrap().join("verdicts.csv");
    let bad: [&[&str]; 5] = [
        &["--external", "x=no-such-program-bnh {case} {out}"],
        &["--external", "x=/no/such/dir/kernel"],
        &["--external", "Bad Name=sh"],
        &["--external", "welford=sh"],
        &["--external", "x=sh", "--timeout", "0"],
    ];
    for extra in bad {
        let mut args = vec![
            "check",
            cases.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = bnh(&args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}\n{out}\n{err}");
        assert!(out.is_empty(), "no table: {out}");
        assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
        assert!(!csv.exists(), "{extra:?}: nothing written");
    }
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--external",
        "x=no-such-program-bnh",
    ]);
    let (_, err) = text(&o);
    assert!(err.contains("not found on PATH"), "{err}");
}

#[test]
fn csv_lists_every_verdict_and_never_overwrites_an_input() {
    let (_scratch, cases) = few_cases("csv");
    let csv = cases.parent().unwrap().join("all.csv");
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let mut r = csv::Reader::from_path(&csv).unwrap();
    let records: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let impls = bn_impls::registry::names().len();
    assert_eq!(
        records.len(),
        4 * impls,
        "one row per (case, implementation)"
    );
    for rec in &records {
        assert!(
            ["pass", "fail", "unsupported", "timeout", "crashed"].contains(&&rec[2]),
            "{rec:?}"
        );
    }
    let rejected: Vec<_> = records
        .iter()
        .filter(|r| &r[0] == "error-one-value-per-channel")
        .collect();
    assert!(!rejected.is_empty());
    for rec in rejected {
        assert_eq!(&rec[2], "pass", "a correct rejection is a pass: {rec:?}");
    }
    let trained = records
        .iter()
        .find(|r| &r[0] == "bn2d-small" && &r[1] == "welford")
        .unwrap();
    let ratio: f64 = trained[3].parse().unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{trained:?}");
    assert!(
        !trained[4].is_empty(),
        "names its worst output: {trained:?}"
    );

    // --csv naming a case file (an input) is refused, the case untouched.
    let case = cases.join("bn2d-small.json");
    let before = std::fs::read(&case).unwrap();
    let o = bnh(&[
        "check",
        cases.to_str().unwrap(),
        "--csv",
        case.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("same file as the input"), "{err}");
    assert_eq!(std::fs::read(&case).unwrap(), before);
}

/// The Python with PyTorch: `$BNH_PYTHON`, else `python3`; `None` (with the
/// reason printed) when `import torch` fails.
fn torch_python() -> Option<String> {
    let python = std::env::var("BNH_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python).args(["-c", "import torch"]).output() {
        Ok(o) if o.status.success() => Some(python),
        Ok(o) => {
            eprintln!(
                "skipped: `{python} -c 'import torch'` failed ({}); set BNH_PYTHON to a python with torch to run this test",
                String::from_utf8_lossy(&o.stderr).trim().lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("skipped: cannot run {python} ({e}); set BNH_PYTHON to a python with torch");
            None
        }
    }
}

/// `scripts/torch_kernel.py` passes every shipped case (all dtypes, layouts,
/// momentum None, no tracking, backward, and PyTorch's own rejections).
#[test]
fn torch_kernel_passes_every_shipped_case() {
    let Some(python) = torch_python() else { return };
    let dir = scratch("external", "torch");
    let csv = dir.join("torch.csv");
    let script = repo().join("scripts/torch_kernel.py");
    let o = bnh(&[
        "check",
        fixtures().to_str().unwrap(),
        "--impl",
        "torch",
        "--external",
        &format!(
            "torch={} {} {{case}} {{out}}",
            shell_quote(&python),
            shell_quote(script.to_str().unwrap())
        ),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let rows = csv_rows(&csv, "torch");
    let shipped = std::fs::read_dir(fixtures()).unwrap().count();
    assert_eq!(rows.len(), shipped);
    let bad: Vec<_> = rows.iter().filter(|r| r.1 != "pass").collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn list_names_the_externals_and_refuses_a_missing_program() {
    let o = bnh(&["list", "--json", "--external", "mine=sh kernel.sh"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "mine")
        .expect("the external is listed");
    assert_eq!(mine["stable"], true);
    assert!(mine["description"]
        .as_str()
        .unwrap()
        .contains("sh kernel.sh"));
    let o = bnh(&["list", "--external", "mine=no-such-program-bnh"]);
    assert_eq!(o.status.code(), Some(2));
}
