//! The AVX-512 lane reductions must give exactly the portable code's bits:
//! the determinism and "fused equals parallel" guarantees rest on it, and on
//! a machine with AVX-512 (like CI's) the portable fallback would otherwise
//! never run in a test.

use bn_impls::parallel::avx512::X86Sums;
use bn_impls::parallel::lanes::{LaneSums, PortableSums};
use bn_impls::Element;

/// Deterministic values with an offset, so shifts and cancellations matter.
fn values<T: Element>(n: usize, seed: u64) -> Vec<T> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            T::from_f64(1e4 + 3.0 * (u - 0.5))
        })
        .collect()
}

fn bits<const L: usize>(v: &[[f64; L]]) -> Vec<u64> {
    v.iter().flatten().map(|x| x.to_bits()).collect()
}

fn same_bits_for<T: Element>() {
    // Lengths around the 16-lane block and the 8-wide registers, with tails.
    for n in [0, 1, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 1023] {
        let x = values::<T>(n, 1 + n as u64);
        let dy = values::<T>(n, 99 + n as u64);
        let (k, m, mean) = (1e4, 0.25, 1e4 + 0.125);
        assert_eq!(
            bits(&[X86Sums::shifted(&x, k)]),
            bits(&[PortableSums::shifted(&x, k)]),
            "shifted, n = {n}"
        );
        assert_eq!(
            bits(&X86Sums::deviations(&x, k, m)),
            bits(&PortableSums::deviations(&x, k, m)),
            "deviations, n = {n}"
        );
        assert_eq!(
            bits(&X86Sums::grad(&x, &dy, mean)),
            bits(&PortableSums::grad(&x, &dy, mean)),
            "grad, n = {n}"
        );
    }
}

#[test]
fn avx512_lane_sums_equal_the_portable_ones_f32() {
    same_bits_for::<f32>();
}

#[test]
fn avx512_lane_sums_equal_the_portable_ones_f64() {
    same_bits_for::<f64>();
}

#[test]
fn this_machine_reports_which_path_ran() {
    // Not an assertion on the machine: it records in the test log whether
    // the comparison above exercised the intrinsics or only the fallback.
    #[cfg(target_arch = "x86_64")]
    eprintln!(
        "avx512f detected: {}",
        std::arch::is_x86_feature_detected!("avx512f")
    );
}
