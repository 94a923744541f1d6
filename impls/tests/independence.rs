//! The implementations are independent: `parallel` and `fused` share no
//! arithmetic code, so when they agree it is evidence, not an identity.
//! Each may use the shared non-arithmetic layer (`engine`, `layout`,
//! `problem`, `kernel`, `element`, `error`), never another implementation
//! or the other's formulas.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Module paths `crate::NAME` (and `bn_impls::NAME`) used outside comments.
fn uses(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("readable source");
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for prefix in ["crate::", "bn_impls::"] {
            for (i, _) in line.match_indices(prefix) {
                let rest = &line[i + prefix.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
    }
    found
}

fn assert_no_use(implementation: &str, forbidden: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(implementation);
    let files = sources(&dir);
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    for file in files {
        for name in uses(&file) {
            assert!(
                !forbidden.contains(&name.as_str()),
                "{} uses crate::{name}; `{implementation}` must not share arithmetic with {forbidden:?}",
                file.display()
            );
        }
    }
}

#[test]
fn fused_uses_no_arithmetic_of_parallel_or_welford() {
    assert_no_use(
        "fused",
        &["parallel", "welford", "naive", "formulas", "moments"],
    );
}

#[test]
fn parallel_uses_nothing_of_fused() {
    assert_no_use("parallel", &["fused", "welford", "naive"]);
}
