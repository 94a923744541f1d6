//! The I/O guarantees of docs/RELIABILITY.md, each tested by the reproduction
//! from the issue that broke it, on the built binary.
//!
//! Linux-only pieces (FIFOs via `mkfifo`, `/dev/full`, SIGINT via `kill`)
//! are skipped with a printed reason where the tool or device is absent.

#![cfg(unix)]

mod common;
use common::scratch;

use bn_harness::conformance::shipped_fixtures;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BNH: &str = env!("CARGO_BIN_EXE_bnh");

/// A tiny, fast bench: 2 measurements of 1 ms.
const TINY_BENCH: [&str; 11] = [
    "bench",
    "--impls",
    "welford,naive",
    "--ops",
    "train",
    "--dtypes",
    "f32",
    "--shapes",
    "4x3",
    "--min-time",
    "0.001",
];

fn fixture() -> PathBuf {
    shipped_fixtures().join("torch").join("bn2d-small.json")
}

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BNH);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    c
}

/// Run to the end, killing the process (and failing) after `secs`: a hang is a failure.
fn run_for(mut c: Command, secs: u64) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bnh");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            panic!("bnh hung for more than {secs} s: {c:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    run_for(cmd(dir, args), 120)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_no_panic(out: &Output) {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_ne!(out.status.code(), Some(101), "exit 101: {err}");
}

/// Every name in `dir` (sorted), to show nothing else was created.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: `{tool}` is not installed");
    }
    found
}

fn mkfifo(path: &Path) -> bool {
    have("mkfifo") && Command::new("mkfifo").arg(path).status().unwrap().success()
}

/// `bnh ARGS | true` with the reader gone before bnh writes: status and stderr.
fn into_closed_pipe(dir: &Path, args: &[&str]) -> (i32, String) {
    let script = "{ sleep 0.3; \"$0\" \"$@\"; echo \"rc=$?\" >&3; } 3>&2 | true";
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(BNH)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    let rc = err
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .and_then(|c| c.parse().ok())
        .unwrap_or(-1);
    (rc, err)
}

// ---- 1. stdout: a closed pipe or a full disk never panics ----

#[test]
fn closed_stdout_ends_quietly_with_exit_0() {
    let dir = scratch("rel-io", "pipe");
    for args in [&["list"][..], &["check"], &["list", "--json"]] {
        let (rc, err) = into_closed_pipe(&dir, args);
        assert_eq!(rc, 0, "bnh {args:?} | true: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
}

#[test]
fn bench_into_closed_pipe_still_writes_its_csv() {
    let dir = scratch("rel-io", "pipe-bench");
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", "b.csv"]);
    let (rc, err) = into_closed_pipe(&dir, &args);
    assert_eq!(rc, 0, "{err}");
    let csv = fs::read_to_string(dir.join("b.csv")).expect("b.csv written");
    assert_eq!(csv.lines().count(), 3, "header + 2 rows: {csv}");
    assert!(dir.join("b.machine.json").is_file());
}

#[test]
fn accuracy_into_closed_pipe_still_writes_its_csv() {
    let dir = scratch("rel-io", "pipe-acc");
    let args = [
        "accuracy", "--quick", "--impls", "welford", "--dtypes", "f64", "--max-n", "8", "--csv",
        "a.csv", "--chart", "none",
    ];
    let (rc, err) = into_closed_pipe(&dir, &args);
    assert_eq!(rc, 0, "{err}");
    assert!(dir.join("a.csv").is_file(), "{err}");
}

#[test]
fn full_stdout_is_one_message_and_exit_1() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let dir = scratch("rel-io", "full");
    let mut c = cmd(&dir, &["check"]);
    c.stdout(fs::File::create("/dev/full").unwrap());
    let out = c.stderr(Stdio::piped()).output().unwrap();
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("standard output").count(), 1, "{err}");
}

// ---- 2. folder walks: symlink loops, FIFOs, each case once ----

#[test]
fn case_folder_with_symlink_loops_and_a_fifo_counts_each_case_once() {
    let dir = scratch("rel-io", "loops");
    let d = dir.join("d");
    fs::create_dir(&d).unwrap();
    fs::copy(fixture(), d.join("case.json")).unwrap();
    symlink(".", d.join("a")).unwrap();
    let one_loop = run(&dir, &["check", "d", "--impl", "welford"]);
    assert!(
        text(&one_loop.stdout).contains("1/1 cases pass"),
        "{one_loop:?}"
    );
    symlink(".", d.join("b")).unwrap();
    let fifo = mkfifo(&d.join("f.json"));
    let out = run_for(cmd(&dir, &["check", "d", "--impl", "welford"]), 60);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("1/1 cases pass"), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("d/a") && err.contains("symlink loop"), "{err}");
    if fifo {
        assert!(err.contains("f.json: not a regular file"), "{err}");
    }
}

#[test]
fn fifo_case_file_is_refused_not_waited_for() {
    let dir = scratch("rel-io", "fifo-case");
    let fifo = dir.join("c.json");
    if !mkfifo(&fifo) {
        return;
    }
    let out = run_for(
        cmd(
            &dir,
            &["run-case", "c.json", "--impl", "welford", "--out", "o.json"],
        ),
        60,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a regular file"), "{out:?}");
}

#[test]
fn check_dev_null_says_not_a_regular_file() {
    let out = run(&std::env::temp_dir(), &["check", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("not a regular file") && !err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn import_criterion_over_a_symlink_loop_ends() {
    let dir = scratch("rel-io", "crit-loop");
    fs::create_dir(dir.join("crit")).unwrap();
    symlink(".", dir.join("crit/loop")).unwrap();
    let out = run_for(
        cmd(&dir, &["import-criterion", "crit", "--csv", "x.csv"]),
        60,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("symlink loop"), "{out:?}");
    assert!(!dir.join("x.csv").exists());
}

// ---- case-file size limit ----

#[test]
fn oversized_case_file_is_refused_naming_size_and_limit() {
    let dir = scratch("rel-io", "big");
    let big = fs::File::create(dir.join("big.json")).unwrap();
    big.set_len(300 << 20).unwrap(); // sparse: no disk used
    let out = run(
        &dir,
        &[
            "run-case", "big.json", "--impl", "welford", "--out", "o.json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("314572800 bytes") && err.contains("268435456"),
        "{err}"
    );
    assert!(!dir.join("o.json").exists());
}

// ---- 1. clobbering and unsafe writes ----

#[test]
fn run_case_refuses_to_write_over_its_case() {
    let dir = scratch("rel-io", "clobber-case");
    fs::copy(fixture(), dir.join("c.json")).unwrap();
    symlink("c.json", dir.join("link.json")).unwrap();
    let before = fs::read(dir.join("c.json")).unwrap();
    for out_path in ["c.json", "./c.json", "link.json"] {
        let out = run(
            &dir,
            &["run-case", "c.json", "--impl", "welford", "--out", out_path],
        );
        assert_eq!(out.status.code(), Some(2), "{out_path}: {out:?}");
        assert!(
            text(&out.stderr).contains("same file as the input"),
            "{out:?}"
        );
    }
    assert_eq!(fs::read(dir.join("c.json")).unwrap(), before);
}

#[test]
fn out_to_device_fifo_or_symlink_writes_through_it() {
    let dir = scratch("rel-io", "special-out");
    fs::copy(fixture(), dir.join("c.json")).unwrap();
    let out = run(
        &dir,
        &[
            "run-case",
            "c.json",
            "--impl",
            "welford",
            "--out",
            "/dev/null",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A symlink stays a symlink; its target gets the result.
    fs::write(dir.join("target.json"), b"old").unwrap();
    symlink("target.json", dir.join("link.json")).unwrap();
    let out = run(
        &dir,
        &[
            "run-case",
            "c.json",
            "--impl",
            "welford",
            "--out",
            "link.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(fs::symlink_metadata(dir.join("link.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(dir.join("target.json"))
        .unwrap()
        .contains("outputs"));
    // A FIFO is written into, not replaced.
    let fifo = dir.join("pipe.json");
    if mkfifo(&fifo) {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read_to_string(fifo).unwrap())
        };
        let out = run_for(
            cmd(
                &dir,
                &[
                    "run-case",
                    "c.json",
                    "--impl",
                    "welford",
                    "--out",
                    "pipe.json",
                ],
            ),
            60,
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(reader.join().unwrap().contains("outputs"));
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }
}

#[test]
fn bench_csv_to_dev_null_creates_no_machine_file_in_dev() {
    let dir = scratch("rel-io", "dev-null-csv");
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", "/dev/null"]);
    let out = run(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!Path::new("/dev/null.machine.json").exists());
    assert!(!Path::new("/dev/null.partial.csv").exists());
}

/// The old temp name was `.NAME.tmp-PID`: plant symlinks under the next
/// PIDs pointing at a victim file; none may be followed.
#[test]
fn temp_files_are_unpredictable_and_never_follow_a_planted_symlink() {
    let dir = scratch("rel-io", "planted");
    fs::copy(fixture(), dir.join("c.json")).unwrap();
    let victim = dir.join("victim.txt");
    fs::write(&victim, b"precious").unwrap();
    let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    for pid in last + 1..last + 300 {
        symlink(&victim, dir.join(format!(".o.json.tmp-{pid}"))).unwrap();
    }
    let out = run(
        &dir,
        &["run-case", "c.json", "--impl", "welford", "--out", "o.json"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::read_to_string(dir.join("o.json"))
        .unwrap()
        .contains("outputs"));
    let stray: Vec<String> = names(&dir)
        .into_iter()
        .filter(|n| n.starts_with(".bnh-"))
        .collect();
    assert!(stray.is_empty(), "temp files left: {stray:?}");
}

#[test]
fn accuracy_refuses_one_path_for_two_outputs_or_for_input_and_output() {
    let dir = scratch("rel-io", "acc-clobber");
    let out = run(&dir, &["accuracy", "--quick", "--csv", "x", "--chart", "x"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("--chart x: is the same file as --csv x"));
    assert!(!dir.join("x").exists());
    let header =
        "impl,dtype,op,n_per_channel,offset_ratio,scale,max_rel_err,max_ulp_err,nan_count\n";
    fs::write(dir.join("a.csv"), header).unwrap();
    let out = run(
        &dir,
        &["accuracy", "--from-csv", "a.csv", "--chart", "a.csv"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(fs::read_to_string(dir.join("a.csv")).unwrap(), header);
}

#[test]
fn overwriting_a_mode_600_csv_keeps_mode_600() {
    let dir = scratch("rel-io", "mode");
    let csv = dir.join("b.csv");
    fs::write(&csv, b"old").unwrap();
    fs::set_permissions(&csv, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", "b.csv"]);
    let out = run(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        fs::metadata(&csv).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&csv).unwrap().starts_with("impl,"));
}

#[test]
fn a_too_long_name_is_refused_before_the_sweep() {
    let dir = scratch("rel-io", "long");
    // 250 bytes: the OS accepts it, its `.machine.json` and `.partial.csv` are too long.
    let name = format!("{}.csv", "x".repeat(246));
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", &name]);
    let out = run(&dir, &args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("bytes, more than the 255"), "{err}");
    assert!(
        !err.contains("measurements"),
        "refused before the sweep: {err}"
    );
    assert!(names(&dir).is_empty());
}

#[test]
fn all_with_a_bad_option_creates_no_folder() {
    let dir = scratch("rel-io", "all-bogus");
    let out = run(&dir, &["all", "--out", "newdir/sub", "--impls", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

// ---- 6. concurrency and interruption ----

fn spawn_bench(dir: &Path, min_time: &str, csv: &str) -> Child {
    let args = [
        "bench",
        "--impls",
        "welford,naive",
        "--ops",
        "train",
        "--dtypes",
        "f32",
        "--shapes",
        "4x3,8x3",
        "--min-time",
        min_time,
        "--csv",
        csv,
    ];
    cmd(dir, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `path` has at least `lines` lines.
fn wait_for_lines(path: &Path, lines: usize) {
    let start = Instant::now();
    while fs::read_to_string(path).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{path:?} never filled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_bench_on_the_same_csv_refuses_and_the_pair_stays_consistent() {
    let dir = scratch("rel-io", "concurrent");
    let first = spawn_bench(&dir, "0.5", "same.csv");
    wait_for_lines(&dir.join("same.partial.csv"), 1);
    let second = spawn_bench(&dir, "0.001", "same.csv")
        .wait_with_output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    assert!(
        text(&second.stderr).contains("another bnh run is writing"),
        "{second:?}"
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let machine = fs::read_to_string(dir.join("same.machine.json")).unwrap();
    assert!(machine.contains("--min-time 0.5"), "{machine}");
    assert_eq!(
        fs::read_to_string(dir.join("same.csv"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    assert!(!dir.join("same.partial.csv").exists());
}

#[test]
fn a_partial_csv_with_only_a_header_is_reused() {
    // What a run killed (SIGKILL) before its first measurement leaves.
    let dir = scratch("rel-io", "header-only");
    fs::write(dir.join("b.partial.csv"), "impl,op\n").unwrap();
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", "b.csv"]);
    let out = run(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let csv = fs::read_to_string(dir.join("b.csv")).unwrap();
    assert!(
        csv.starts_with("impl,op,dtype") && csv.lines().count() == 3,
        "{csv}"
    );
    assert!(!dir.join("b.partial.csv").exists());
}

/// Send SIGINT (Ctrl-C) with `kill`; callers check `have("kill")` first.
fn sigint(child: &Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn ctrl_c_keeps_what_a_sweep_measured() {
    if !have("kill") {
        return;
    }
    let dir = scratch("rel-io", "sigint-bench");
    let child = spawn_bench(&dir, "0.4", "b.csv");
    let partial = dir.join("b.partial.csv");
    wait_for_lines(&partial, 2);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("kept in") && err.contains("b.partial.csv"),
        "{err}"
    );
    let kept = fs::read_to_string(&partial).unwrap();
    assert!(
        kept.starts_with("impl,") && kept.lines().count() >= 2,
        "{kept}"
    );
    assert!(!dir.join("b.csv").exists());
    // The next run does not destroy them.
    let again = spawn_bench(&dir, "0.001", "b.csv")
        .wait_with_output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("interrupted run"), "{again:?}");
    assert_eq!(fs::read_to_string(&partial).unwrap(), kept);
}

#[test]
fn ctrl_c_during_all_leaves_its_folder_as_it_was() {
    if !have("kill") {
        return;
    }
    let dir = scratch("rel-io", "sigint-all");
    let out_dir = dir.join("out");
    fs::create_dir(&out_dir).unwrap();
    fs::write(out_dir.join("bench.csv"), b"old csv").unwrap();
    fs::write(out_dir.join("REPORT.md"), b"old report").unwrap();
    let child = cmd(
        &dir,
        &[
            "all",
            "--out",
            "out",
            "--impls",
            "welford",
            "--min-time",
            "0.2",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(names(&out_dir), ["REPORT.md", "bench.csv"]);
    assert_eq!(fs::read(out_dir.join("bench.csv")).unwrap(), b"old csv");
    assert_eq!(names(&dir), ["out"]);
}

#[test]
fn a_failing_report_writes_nothing() {
    let dir = scratch("rel-io", "report-fail");
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", "b.csv"]);
    assert!(run(&dir, &args).status.success());
    let out_dir = dir.join("r");
    fs::create_dir_all(out_dir.join("gbps_train.svg")).unwrap(); // a folder where a chart goes
    fs::write(out_dir.join("REPORT.md"), b"old").unwrap();
    let out = run(&dir, &["report", "b.csv", "--out", "r"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(names(&out_dir), ["REPORT.md", "gbps_train.svg"]);
    assert_eq!(fs::read(out_dir.join("REPORT.md")).unwrap(), b"old");
}

// ---- 7. names from files are escaped ----

#[test]
fn a_case_name_cannot_forge_a_verdict_line() {
    let dir = scratch("rel-io", "spoof");
    let mut case: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixture()).unwrap()).unwrap();
    case["name"] = "x\ncheck: PASS\u{1b}[2J".into();
    fs::write(dir.join("c.json"), case.to_string()).unwrap();
    let out = run(&dir, &["check", "c.json"]);
    let stdout = text(&out.stdout);
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("check:")).count(),
        1,
        "{stdout}"
    );
}

#[test]
fn an_implementation_name_cannot_inject_markdown() {
    let dir = scratch("rel-io", "spoof-md");
    let mut args = TINY_BENCH.to_vec();
    args.extend(["--csv", "b.csv"]);
    assert!(run(&dir, &args).status.success());
    let csv = fs::read_to_string(dir.join("b.csv")).unwrap();
    let evil = csv.replacen("\nwelford,", "\n\"evil\n# injected\u{1b}[31m\",", 1);
    fs::write(dir.join("b.csv"), evil).unwrap();
    let out = run(&dir, &["report", "b.csv", "--out", "r"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let md = fs::read_to_string(dir.join("r/REPORT.md")).unwrap();
    assert!(!md.contains('\u{1b}'));
    assert!(!md.lines().any(|l| l.starts_with("# injected")), "{md}");
}
