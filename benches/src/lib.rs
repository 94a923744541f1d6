//! Criterion benchmarks live in `benches/benches/`; this library holds what
//! the plain probes there (`floor`, `traffic`) share.

use std::time::Instant;

/// Median of 7 timed calls of `f`, in milliseconds: one probe measurement,
/// short enough that a round of every variant stays within one phase of a
/// noisy VM.
pub fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[3]
}

/// The round count in the environment variable `var` (`default` when it is
/// unset); anything but a count of at least 1 is refused with one message
/// and exit status 2, as the project's CLI refuses bad input.
pub fn rounds_from_env(var: &str, default: usize, probe: &str) -> usize {
    match std::env::var(var) {
        Ok(r) => match r.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("{probe}: {var}={r}: give a round count of at least 1");
                std::process::exit(2);
            }
        },
        Err(_) => default,
    }
}

/// Whether the probe was asked only to list its benchmarks (`cargo bench --
/// --list` and friends): it has nothing to enumerate and should return.
pub fn listing_only() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// A rayon pool of one thread: the probes compare one core's kernels with
/// one core's copy, so `fused`'s calls must not spread to a second.
pub fn one_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("rayon pool of one thread")
}
