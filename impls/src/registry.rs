//! The list of implementations the harness, tests, benches and reports use.
//!
//! Adding an implementation: write `impls/src/NAME.rs` implementing
//! [`Kernel`](crate::Kernel) for `f32` and `f64` plus
//! [`Implementation`], declare the module in `lib.rs`, and add one line here.

use crate::error::{Error, Result};
use crate::kernel::Implementation;

static REGISTRY: &[&dyn Implementation] = &[
    &crate::naive::Naive,
    &crate::welford::Welford,
    &crate::parallel::Parallel,
    &crate::fused::Fused,
];

/// Every registered implementation, in a stable order.
pub fn all() -> &'static [&'static dyn Implementation] {
    REGISTRY
}

/// The names of all registered implementations.
pub fn names() -> Vec<String> {
    REGISTRY.iter().map(|i| i.info().name.to_string()).collect()
}

/// Look an implementation up by name.
pub fn by_name(name: &str) -> Result<&'static dyn Implementation> {
    REGISTRY
        .iter()
        .copied()
        .find(|i| i.info().name == name)
        .ok_or_else(|| Error::UnknownImplementation {
            name: name.to_string(),
            available: names(),
        })
}
