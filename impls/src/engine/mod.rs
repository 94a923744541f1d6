//! The shared layer under the implementations: everything every kernel
//! needs that is *not* arithmetic, written once.
//!
//! - [`tensor`]: the validated `(N, C, S)` tensor the problem types carry
//!   (shape, memory format and length checked once at the API boundary);
//! - [`plan`]: work planning — fixed chunks whose boundaries never depend on
//!   the thread count, results collected in chunk order, the element-wise
//!   passes over runs or rows, the channels-last "super-row" geometry;
//! - [`pow2`]: exact power-of-two rescaling (exponent, `ldexp`) for the
//!   implementations' redo of channels whose statistics overflow;
//! - [`scratch`]: per-thread reuse of `f64` scratch buffers between calls;
//! - [`caches`]: this CPU's level-2 and level-3 cache sizes (CPUID), for
//!   the schedule rules measured to depend on them;
//! - [`awake`]: the pool's other workers kept awake through one operation
//!   (its serial steps are shorter than the wake-up of a sleeping worker).
//!
//! Above it sit the validated problem types ([`crate::problem`]), the
//! kernel trait ([`mod@crate::kernel`]) and the dtype dispatch
//! ([`crate::dispatch`]: one match over the element type picks an
//! implementation's kernel; an unsupported dtype is a typed error). The
//! layering has no cycle: `element`/`layout` → `engine` → `problem` →
//! `kernel` → `dispatch` → `module`.
//!
//! Implementations (`naive`, `welford`, `parallel`, `fused`) sit on top of
//! this layer as peers: each owns its arithmetic and none imports another.

pub mod awake;
pub mod caches;
pub mod plan;
pub mod pow2;
pub mod scratch;
pub mod tensor;
