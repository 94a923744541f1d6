//! Keeping a pool's workers awake through one operation ([`Awake`]).
//!
//! An operation alternates parallel passes with short serial steps (the
//! shifts, the per-channel coefficients). A rayon worker that finds no work
//! yields 33 times and then sleeps on a futex (`rayon-core`'s
//! `ROUNDS_UNTIL_SLEEPING`); on a VM that is a few microseconds of idling,
//! and waking it for the next pass costs far more than the pass. PyTorch's
//! OpenMP threads spin instead (`OMP_WAIT_POLICY=ACTIVE`, which our
//! comparisons set). [`Awake`] gives the other workers of the pool a job
//! that keeps running the pool's pending work ([`rayon::yield_now`]) and
//! spins between jobs, until the operation ends or no work has come for
//! [`IDLE_LIMIT`] — never longer, so a worker is never held.
//!
//! Measured on the 2-core Xeon VM (2026-12-03, `bnh bench --impls fused`,
//! 2 threads, medians of 2–3 alternated runs, without → with): (N, C)
//! 256×1024 `f32` train 149 → 59 µs, backward 199 → 93 µs, `f16` train
//! 92 → 52 µs, eval 29 → 21 µs; 1024×1024 `bf16` backward 469 → 295 µs;
//! 64×512×7×7 channels-last `f32` train 556 → 446 µs; 64×64×56×56
//! 0.96–0.98×. The values computed are unchanged: only who runs a task.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a kept-awake worker spins without finding a job before it
/// returns to rayon's own idling (and so to sleep). Longer than any serial
/// step between two passes of one operation (the coefficients of 4096
/// channels take tens of microseconds); short enough that a long serial
/// step does not keep a core busy for nothing.
pub const IDLE_LIMIT: Duration = Duration::from_micros(200);

/// While alive, the pool's other workers stay awake (see the module docs);
/// dropping it (the end of the operation) lets them go.
#[must_use = "the workers stay awake only while the guard lives"]
pub struct Awake(Option<Arc<State>>);

/// Shared between the guard and the kept-awake workers.
struct State {
    /// The operation has ended.
    done: AtomicBool,
    /// Workers that entered the keep-awake job, and those still in it
    /// (for the tests).
    started: AtomicUsize,
    spinning: AtomicUsize,
}

impl Awake {
    /// Keep the other workers of the current pool (the global pool outside
    /// any) awake, if `parallel` and the pool has more than one thread.
    pub fn new(parallel: bool) -> Awake {
        Self::with_idle_limit(parallel, IDLE_LIMIT)
    }

    /// [`Awake::new`] with another idle limit (the tests' long one).
    fn with_idle_limit(parallel: bool, limit: Duration) -> Awake {
        if !parallel || rayon::current_num_threads() < 2 {
            return Awake(None);
        }
        let state = Arc::new(State {
            done: AtomicBool::new(false),
            started: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
        });
        let (s, me) = (state.clone(), rayon::current_thread_index());
        // One job per worker; the caller's own returns at once (it runs the
        // operation itself, and would otherwise spin inside its own join).
        rayon::spawn_broadcast(move |ctx| {
            if Some(ctx.index()) != me {
                s.started.fetch_add(1, Ordering::AcqRel);
                s.spinning.fetch_add(1, Ordering::AcqRel);
                keep_awake(&s.done, limit);
                s.spinning.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Awake(Some(state))
    }

    /// Workers that entered the keep-awake job, and those still in it.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        self.0.as_ref().map_or((0, 0), |s| {
            let started = s.started.load(Ordering::Acquire);
            (started, s.spinning.load(Ordering::Acquire))
        })
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.done.store(true, Ordering::Release);
        }
    }
}

/// Run the pool's pending jobs, spinning between them, until `done` or
/// `limit` without one.
fn keep_awake(done: &AtomicBool, limit: Duration) {
    let mut idle_since = Instant::now();
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = Instant::now();
        } else if idle_since.elapsed() >= limit {
            return;
        } else {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("pool")
    }

    /// How long the tests wait for a worker (other tests share the cores).
    const PATIENCE: Duration = Duration::from_secs(5);

    /// Polls `f` for up to [`PATIENCE`].
    fn eventually(f: impl Fn() -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < PATIENCE {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// A guard whose worker never lets go by itself within a test.
    fn patient() -> Awake {
        Awake::with_idle_limit(true, Duration::from_secs(30))
    }

    #[test]
    fn the_other_worker_spins_until_the_guard_drops() {
        pool(2).install(|| {
            let g = patient();
            assert!(eventually(|| g.counts() == (1, 1)), "no worker kept awake");
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(
                g.counts(),
                (1, 1),
                "the worker left before the guard dropped"
            );
            let state = g.0.clone().expect("a state with two threads");
            drop(g);
            assert!(eventually(|| state.spinning.load(Ordering::Acquire) == 0));
        });
    }

    #[test]
    fn an_idle_worker_lets_go_after_the_idle_limit() {
        pool(2).install(|| {
            let g = Awake::new(true);
            assert!(eventually(|| g.counts().0 == 1), "no worker kept awake");
            // No work at all: the guard is alive, yet the worker returns.
            assert!(
                eventually(|| g.counts().1 == 0),
                "worker held past the idle limit"
            );
        });
    }

    #[test]
    fn a_kept_awake_worker_runs_the_operations_tasks() {
        pool(2).install(|| {
            let g = patient();
            assert!(eventually(|| g.counts() == (1, 1)), "no worker kept awake");
            let me = rayon::current_thread_index();
            // Batches of tasks of a few microseconds each, until the other
            // worker, inside its keep-awake job, has taken some (a job that
            // only spun would hold it until the guard dropped). Batches, not
            // one: under `cargo test` other tests share the cores, and the
            // worker may not be scheduled during a single short batch.
            let (mut others, t) = (0, Instant::now());
            while others == 0 && t.elapsed() < PATIENCE {
                others = (0..2_000)
                    .into_par_iter()
                    .with_max_len(1)
                    .filter(|_| {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(2) {}
                        rayon::current_thread_index() != me
                    })
                    .count();
            }
            assert!(others > 0, "the other worker ran none of the tasks");
            assert_eq!(g.counts(), (1, 1), "the worker left while tasks came");
        });
    }

    #[test]
    fn nothing_is_kept_awake_serially_or_alone() {
        pool(2).install(|| assert!(Awake::new(false).0.is_none()));
        pool(1).install(|| assert!(Awake::new(true).0.is_none()));
    }
}
