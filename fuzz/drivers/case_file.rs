//! Fuzz driver: arbitrary bytes as a bn-case/1 file. Included by path (no
//! copy) by the `case_file` cargo-fuzz target (`fuzz/fuzz_targets/`) and by
//! the no-panic property tests (`harness/tests/no_panic.rs`).
//!
//! Contract under test: bad input never panics; every rejection is a typed
//! error ([`bn_harness::Error`] / [`bn_impls::Error`]) whose message names the
//! problem. The driver returns the rejection messages it saw so tests can
//! inspect them; a panic anywhere below is a bug.

use bn_harness::case::Case;
use bn_harness::{oracle, run};
use std::path::Path;

/// Parse `data` as a bn-case/1 file; if it parses, run it through every
/// registered implementation and the oracle. Returns every rejection message.
pub fn case_file(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    match Case::parse(&text, Path::new("fuzz.json")) {
        Err(e) => vec![e.to_string()],
        Ok(case) => {
            let mut out = Vec::new();
            for imp in bn_impls::registry::all() {
                if let run::Outcome::Rejected(m) = run::run_case(&case, *imp) {
                    out.push(m);
                }
            }
            if let run::Outcome::Rejected(m) = oracle::run_case(&case) {
                out.push(m);
            }
            out
        }
    }
}
