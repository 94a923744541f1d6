//! Arbitrary bytes decoded into module and kernel calls with random shapes,
//! lengths, layouts and configs. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The driver, shared with `harness/tests/no_panic.rs`.
#[path = "../drivers/api_call.rs"]
mod driver;

fuzz_target!(|data: &[u8]| {
    for msg in driver::api_call(data) {
        assert!(!msg.is_empty(), "empty rejection message");
    }
});
