//! Which machines `fused`'s contiguous channel tasks run on
//! ([`super::plan::channel_tasks`]), and the override that tests and A/B
//! measurements use to take either schedule on any machine.
//!
//! A channel task reads a block of whole channels for their statistics
//! (or gradient sums), then runs their element-wise pass while the block is
//! still in L2; the address-ordered schedule sweeps the whole tensor twice.
//! Both compute the same bits (`tests/determinism.rs`); only speed differs,
//! and it differs by machine:
//! - 2-core Xeon VM (2 MiB L2 per core, 300 MB L3), `f32`, 1 thread: tasks
//!   took 0.75–0.88× the time of the sweeps on 28×28 and 56×56 shapes
//!   (the A/B quoted at `CHANNEL_MIN_RUN` and `pipelined_tasks`);
//! - 2-core EPYC VM (Zen 4, 1 MiB L2 per core, 32 MiB L3), 1 thread,
//!   2026-12-03, builds with and without tasks alternated over 3 rounds
//!   (`bnh bench --impls fused --min-time 0.4`), time without ÷ with:
//!   train 0.43–0.76 (`f32` 32×64×28×28), 0.50–0.74 (`f32` 64×512×7×7),
//!   0.53–0.64 (`bf16` 64×64×56×56), 0.40–0.52 (`f64` 32×64×28×28);
//!   backward 0.59–0.92 on 32×64×28×28; but where the arrays read far
//!   exceed the L3 the tasks still pay: `f32` 64×64×56×56 backward (103 MB
//!   of `x` and `dy`) 1.02–1.37, `f64` 8×32×16×32×32 backward (67 MB)
//!   1.09–1.55, `f64` 64×64×56×56 train (103 MB) 1.03–1.51;
//! - the same VM at 2 threads (`bnh bench --channel-tasks shape` against
//!   `never`, 3 alternated rounds): train
//!   still faster without the tasks where its input sits in L3 (`f32`
//!   32×64×28×28 0.59–0.72, `bf16` 64×64×56×56 0.61–0.76, `f64`
//!   32×64×28×28 0.58–0.87), but backward level or faster with them
//!   (`f32` 64×512×7×7 0.96–1.33, 64×64×56×56 1.04–1.54, `f64`
//!   8×32×16×32×32 1.00–1.44 without them): with two cores sharing the L3,
//!   backward's second read of two arrays is what the tasks save.
//!
//! Hence [`TaskRule::Machine`]: where one core's L2 is smaller than a
//! channel task's largest footprint ([`CHANNEL_CACHE`], 2 MiB), train at
//! any thread count and backward on one thread take tasks only for arrays
//! of at least twice the L3 (the sweeps' second pass then comes from
//! memory); everywhere else, and where the caches are unknown, the shape
//! rule alone, as tuned on the Xeon VM. Two machines measured; others take
//! the rule of the nearer one.

use super::plan::CHANNEL_CACHE;
use crate::engine::caches::{caches, Caches};
use std::cell::Cell;

/// Which schedule rule decides whether `fused` runs contiguous channel tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskRule {
    /// Channel tasks where the shape allows them and this machine's caches
    /// favour them (the module docs): the default.
    #[default]
    Machine,
    /// Channel tasks wherever the shape allows them, on any machine: for
    /// tests that must cover both schedules, and A/B measurements.
    Shape,
    /// Never channel tasks: the address-ordered schedule everywhere.
    Never,
}

thread_local! {
    static RULE: Cell<TaskRule> = const { Cell::new(TaskRule::Machine) };
}

/// Runs `f` with `rule` deciding the channel tasks of the `fused`
/// operations it calls on this thread, then restores the previous rule
/// (also when `f` panics). The rule is read where an operation starts, on
/// the calling thread: inside `ThreadPool::install`, call this inside the
/// closure. Results are the same bits under every rule.
pub fn with_task_rule<R>(rule: TaskRule, f: impl FnOnce() -> R) -> R {
    struct Restore(TaskRule);
    impl Drop for Restore {
        fn drop(&mut self) {
            RULE.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RULE.with(|r| r.replace(rule)));
    f()
}

/// The rule in force on this thread.
pub fn current() -> TaskRule {
    RULE.with(Cell::get)
}

/// The operations that run channel tasks: the machine rule differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOp {
    /// Training forward: statistics, then the normalize pass.
    Train,
    /// Backward: gradient sums, then the `dx` pass.
    Backward,
}

/// Whether the rule in force lets `op` run channel tasks over arrays of
/// `total` bytes read in a pool of `threads` (the shape's own conditions
/// aside).
pub fn allows(op: TaskOp, total: usize, threads: usize) -> bool {
    match current() {
        TaskRule::Shape => true,
        TaskRule::Never => false,
        TaskRule::Machine => machine_allows(caches(), op, total, threads),
    }
}

/// [`TaskRule::Machine`] on a machine with caches `c`.
fn machine_allows(c: Option<Caches>, op: TaskOp, total: usize, threads: usize) -> bool {
    let restricted = op == TaskOp::Train || threads == 1;
    match c {
        Some(c) if small_l2(c) && restricted => total >= c.l3.saturating_mul(2),
        _ => true,
    }
}

/// Whether one core's L2 is smaller than a channel task's largest footprint
/// ([`CHANNEL_CACHE`]): the machines (the EPYC VMs, 1 MiB) whose channel
/// tasks follow other rules than on the 2 MiB-L2 Xeon VM they were first
/// tuned on, here and in `plan::task_pass_level`.
pub fn small_l2(c: Caches) -> bool {
    c.l2 < CHANNEL_CACHE
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN4: Caches = Caches {
        l2: 1 << 20,
        l3: 32 << 20,
    };
    const XEON: Caches = Caches {
        l2: 2 << 20,
        l3: 300 << 20,
    };

    #[test]
    fn small_l2_takes_tasks_only_past_twice_the_l3_but_in_parallel_backward() {
        use TaskOp::{Backward, Train};
        for op in [Train, Backward] {
            assert!(!machine_allows(Some(ZEN4), op, 51 << 20, 1));
            assert!(!machine_allows(Some(ZEN4), op, (64 << 20) - 1, 1));
            assert!(machine_allows(Some(ZEN4), op, 64 << 20, 1));
            assert!(machine_allows(Some(XEON), op, 6 << 20, 1));
            assert!(machine_allows(None, op, 6 << 20, 1));
        }
        assert!(machine_allows(Some(ZEN4), Backward, 6 << 20, 2));
        assert!(!machine_allows(Some(ZEN4), Train, 6 << 20, 2));
        assert!(machine_allows(Some(ZEN4), Train, 64 << 20, 2));
    }

    #[test]
    fn the_override_is_scoped_and_restored_after_a_panic() {
        assert_eq!(current(), TaskRule::Machine);
        with_task_rule(TaskRule::Never, || {
            assert!(!allows(TaskOp::Backward, usize::MAX, 1));
            with_task_rule(TaskRule::Shape, || assert!(allows(TaskOp::Train, 0, 1)));
            assert_eq!(current(), TaskRule::Never);
        });
        let caught = std::panic::catch_unwind(|| with_task_rule(TaskRule::Shape, || panic!("x")));
        assert!(caught.is_err());
        assert_eq!(current(), TaskRule::Machine);
    }
}
