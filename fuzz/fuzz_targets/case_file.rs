//! Arbitrary bytes as a bn-case/1 file: parse, and run whatever parses
//! through every implementation and the oracle. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The driver, shared with `harness/tests/no_panic.rs`.
#[path = "../drivers/case_file.rs"]
mod driver;

fuzz_target!(|data: &[u8]| {
    for msg in driver::case_file(data) {
        assert!(!msg.is_empty(), "empty rejection message");
    }
});
