//! Powers of two for rescaling huge data (no statistics arithmetic).
//!
//! Multiplying by `2^k` only changes an `f64`'s exponent, so it is exact
//! unless the result leaves the normal range. `welford`, `parallel` and
//! `fused` use these two helpers to redo a channel whose statistics
//! overflowed on finite data with values scaled into `[0.5, 1)` (each with
//! its own algorithm; see their `huge` modules and docs/ACCURACY.md).

/// The binary exponent `e` of a finite, non-zero `v` with `|v|·2^−e` in
/// `[0.5, 1)` (C's `frexp`); 0 for 0 and non-finite values.
pub fn exponent(v: f64) -> i32 {
    if v == 0.0 || !v.is_finite() {
        return 0;
    }
    let (m, k) = if v.abs() < f64::MIN_POSITIVE {
        // Subnormal: normalize first (2^64 is exact).
        (v * 2f64.powi(64), -64)
    } else {
        (v, 0)
    };
    ((m.to_bits() >> 52) & 0x7ff) as i32 - 1022 + k
}

/// `v·2^e`, in steps that each stay in range, so the result is exact unless
/// it overflows (±inf) or is subnormal.
pub fn ldexp(mut v: f64, mut e: i32) -> f64 {
    while e != 0 && v != 0.0 && v.is_finite() {
        let step = e.clamp(-1000, 1000);
        v *= f64::from_bits(((1023 + step) as u64) << 52);
        e -= step;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_is_frexp() {
        assert_eq!(exponent(1.0), 1);
        assert_eq!(exponent(0.75), 0);
        assert_eq!(exponent(-3.0), 2);
        assert_eq!(exponent(f64::MAX), 1024);
        assert_eq!(exponent(f64::MIN_POSITIVE), -1021);
        assert_eq!(exponent(5e-324), -1073);
        assert_eq!(exponent(0.0), 0);
        for v in [1e308, 3e38, 1e-300, 7.0, 5e-324] {
            let s = ldexp(v, -exponent(v));
            assert!((0.5..1.0).contains(&s), "{v}: {s}");
        }
    }

    #[test]
    fn ldexp_is_exact_and_saturates() {
        assert_eq!(ldexp(0.75, 1024), 0.75 * 2f64.powi(1000) * 2f64.powi(24));
        assert_eq!(ldexp(ldexp(1e308, -2000), 2000), 1e308);
        assert_eq!(ldexp(1.0, 2048), f64::INFINITY);
        assert_eq!(ldexp(-1.5, -3), -0.1875);
        assert!(ldexp(f64::NAN, 3).is_nan());
    }
}
