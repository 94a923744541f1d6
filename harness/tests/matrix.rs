//! `bnh matrix`: the conformance matrix computed from the shipped fixtures,
//! in-process (built-in implementations) and through the binary (with the
//! C example plugin and its buggy twin, when a C compiler is present).

mod common;
use bn_harness::conformance::shipped_fixtures;
use bn_harness::matrix::{compute, render, Status};
use common::c_plugin::{compiler, example};
use common::{bnh, scratch};
use std::collections::HashMap;
use std::path::Path;

/// The built-in implementations, by name.
fn builtins() -> Vec<&'static dyn bn_impls::Implementation> {
    bn_impls::registry::all().to_vec()
}

/// naive (one-pass, unstable) fails the ill-conditioned f32 column; fused
/// has no failing cell; every column selects some shipped fixture; the
/// thread column runs for implementations that claim determinism.
#[test]
fn builtins_on_the_shipped_fixtures() {
    let m = compute(&[shipped_fixtures()], &builtins()).unwrap();
    assert!(m.cases > 100, "{} cases", m.cases);
    let naive = m.cell("naive", "ill-conditioned f32").unwrap();
    assert_eq!(naive.status(), Status::Fail, "{naive:?}");
    assert!(
        naive.failures.iter().all(|f| f.contains("illcond")),
        "{naive:?}"
    );
    for (col, cell) in m
        .columns
        .iter()
        .zip(&m.cells[m.impls.iter().position(|i| i.name == "fused").unwrap()])
    {
        assert_eq!(
            cell.status(),
            Status::Pass,
            "fused / {}: {cell:?}",
            col.name
        );
    }
    for (k, col) in m.columns.iter().enumerate() {
        assert!(
            m.cells[0][k].total() > 0,
            "column {} selects no fixture",
            col.name
        );
    }
    let threads = m.cell("welford", "threads 1 = 2").unwrap();
    assert_eq!(threads.unsupported, 0, "{threads:?}");
    assert!(threads.pass > 100, "{threads:?}");
}

/// Each column counts exactly the cases its predicate selects, and a cell's
/// counts add up to that.
#[test]
fn cells_count_the_cases_of_their_column() {
    let m = compute(&[shipped_fixtures()], &builtins()).unwrap();
    let files = bn_harness::case::collect_case_files(&[shipped_fixtures()]).unwrap();
    let cases: Vec<_> = files
        .iter()
        .map(|p| bn_harness::case::Case::load(p).unwrap())
        .collect();
    for (k, col) in m.columns.iter().enumerate() {
        let want = cases.iter().filter(|c| (col.applies)(c)).count();
        for row in &m.cells {
            assert_eq!(row[k].total(), want, "column {}", col.name);
        }
    }
    // Capability columns count only cases with outputs, not rejections.
    let f64_cases = cases
        .iter()
        .filter(|c| c.dtype == bn_impls::DType::F64 && c.expected.is_some())
        .count();
    assert_eq!(m.cell("fused", "f64").unwrap().total(), f64_cases);
}

/// The Markdown section has the given heading, a row per implementation
/// and the reasons of failing cells; the CSV a row per cell.
#[test]
fn markdown_and_csv_render_every_cell() {
    let m = compute(&[shipped_fixtures()], &builtins()).unwrap();
    let md = render::markdown_section(&m, "## Conformance");
    assert!(md.starts_with("## Conformance\n"), "{md}");
    for imp in &m.impls {
        assert!(md.contains(&format!("| {} |", imp.name)), "{md}");
    }
    assert!(md.contains("- naive / ill-conditioned f32: fail "), "{md}");
    let csv = render::csv(&m).unwrap();
    assert_eq!(csv.lines().count(), 1 + m.impls.len() * m.columns.len());
    assert!(csv.starts_with("implementation,column,status,pass,fail,unsupported,cases,details\n"));
}

/// `matrix.csv` as (implementation, column) → status.
fn statuses(dir: &Path) -> HashMap<(String, String), String> {
    let text = std::fs::read_to_string(dir.join("matrix.csv")).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            ((rec[0].to_string(), rec[1].to_string()), rec[2].to_string())
        })
        .collect()
}

/// Through the binary: the buggy twin (unbiased training variance) fails
/// the train column but passes backward with fixed statistics, which its
/// bug does not touch; the correct example passes train; both are
/// unsupported on bf16. The output folder is created and holds only the
/// two files.
#[test]
fn plugins_buggy_twin_fails_the_column_its_bug_affects() {
    let Some(cc) = compiler() else { return };
    let dir = scratch("matrix", "plugins");
    let (good, bad) = (example(&cc, &dir, false), example(&cc, &dir, true));
    let out = dir.join("reports/new");
    let o = bnh(&[
        "matrix",
        "--out",
        out.to_str().unwrap(),
        "--plugin",
        good.to_str().unwrap(),
        "--plugin",
        bad.to_str().unwrap(),
        "--impl",
        "c-example,c-example-buggy,naive",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let s = statuses(&out);
    let at = |i: &str, c: &str| s[&(i.to_string(), c.to_string())].clone();
    assert_eq!(at("c-example-buggy", "train"), "fail");
    assert_eq!(at("c-example-buggy", "backward fixed"), "pass");
    assert_eq!(at("c-example", "train"), "pass");
    assert_eq!(at("c-example", "bf16"), "unsupported");
    assert_eq!(at("c-example-buggy", "bf16"), "unsupported");
    assert_eq!(at("naive", "ill-conditioned f32"), "fail");
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["matrix.csv", "matrix.md"]);
    let md = std::fs::read_to_string(out.join("matrix.md")).unwrap();
    assert!(
        md.contains("running_var"),
        "the bug's output is named:\n{md}"
    );
}

/// `--out` naming a file is refused with exit 2 and one message; nothing is written.
#[test]
fn out_that_is_a_file_is_refused() {
    let dir = scratch("matrix", "out-file");
    let file = dir.join("taken");
    std::fs::write(&file, "x").unwrap();
    let o = bnh(&["matrix", "--out", file.to_str().unwrap(), "--impl", "fused"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a folder"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

/// A case file that does not load stops the matrix (exit 2, naming it)
/// instead of a matrix over fewer cases.
#[test]
fn an_invalid_case_stops_the_matrix() {
    let dir = scratch("matrix", "bad-case");
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    let out = dir.join("out");
    let o = bnh(&[
        "matrix",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--impl",
        "fused",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.json"), "{err}");
    assert!(!out.join("matrix.md").exists());
}

/// `bnh report` given the matrix CSV adds the "Conformance matrix" section
/// with the cells `bnh matrix` computed; a damaged matrix CSV is exit 2
/// naming the file and row, and writes no report.
#[test]
fn report_embeds_the_matrix_csv() {
    let dir = scratch("matrix", "report");
    let (m, r) = (dir.join("m"), dir.join("r"));
    let o = bnh(&[
        "matrix",
        "--out",
        m.to_str().unwrap(),
        "--impl",
        "fused,naive",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let csv = m.join("matrix.csv");
    let o = bnh(&[
        "report",
        csv.to_str().unwrap(),
        "--out",
        r.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = std::fs::read_to_string(r.join("REPORT.md")).unwrap();
    assert!(md.contains("## Conformance matrix"), "{md}");
    assert!(md.contains("| fused | pass "), "{md}");
    assert!(md.contains("| naive | fail "), "{md}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, format!("{header}\nfused,train,pass,many,0,0,1,\n")).unwrap();
    let r2 = dir.join("r2");
    let o = bnh(&[
        "report",
        bad.to_str().unwrap(),
        "--out",
        r2.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.csv row 2"), "{err}");
    assert!(!r2.join("REPORT.md").exists());
}
