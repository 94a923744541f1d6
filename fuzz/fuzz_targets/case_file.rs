//! Arbitrary bytes as a bn-case/1 file: parse, and run whatever parses
//! through every implementation and the oracle. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for msg in bn_harness::fuzzing::case_file(data) {
        assert!(!msg.is_empty(), "empty rejection message");
    }
});
