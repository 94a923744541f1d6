//! Arbitrary bytes decoded into module and kernel calls with random shapes,
//! lengths, layouts and configs. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for msg in bn_harness::fuzzing::api_call(data) {
        assert!(!msg.is_empty(), "empty rejection message");
    }
});
