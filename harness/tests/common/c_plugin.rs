//! Building C plugins (examples/c-kernel, harness/tests/plugins) for the
//! tests that load them: `plugin.rs`, `matrix.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (parent of harness/).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ is inside the repo")
        .to_path_buf()
}

/// The C compiler, or `None` (with the reason printed) when there is none.
pub fn compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    match Command::new(&cc).arg("--version").output() {
        Ok(o) if o.status.success() => Some(cc),
        _ => {
            eprintln!(
                "skipped: no C compiler ({cc} --version failed); set CC to run the plugin tests"
            );
            None
        }
    }
}

/// Compile `src` (relative to the repo) into a shared library `out` with `defines`.
pub fn build(cc: &str, src: &str, defines: &[&str], out: &Path) {
    let o = Command::new(cc)
        .args(["-O2", "-shared", "-fPIC", "-I"])
        .arg(repo().join("include"))
        .args(defines)
        .arg(repo().join(src))
        .arg("-o")
        .arg(out)
        .arg("-lm")
        .output()
        .expect("run the C compiler");
    assert!(
        o.status.success(),
        "compiling {src} {defines:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The C example (or its buggy twin with `buggy`) built into `dir`.
pub fn example(cc: &str, dir: &Path, buggy: bool) -> PathBuf {
    let (file, defines): (_, &[&str]) = if buggy {
        ("libbnh_buggy.so", &["-DBNH_EXAMPLE_BUG"])
    } else {
        ("libbnh_example.so", &[])
    };
    let lib = dir.join(file);
    build(cc, "examples/c-kernel/bnh_example.c", defines, &lib);
    lib
}
