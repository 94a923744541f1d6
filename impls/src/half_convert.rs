//! Branch-free scalar conversions between `f32` and the half types, written
//! so LLVM can vectorize the loops that call them (`half`'s own conversions
//! call a runtime-dispatched function per value, which keeps loops scalar).
//!
//! Widening is exact. Narrowing rounds to nearest, ties to even, with
//! IEEE 754 behaviour for subnormals, overflow (to infinity) and NaN (a
//! quiet NaN keeping the top payload bits, as `vcvtps2ph` and
//! `half::bf16::from_f32` do). The `f16` routines follow F. Giesen's
//! public-domain `half_to_float` / `float_to_half_fast3_rtne`
//! (<https://gist.github.com/rygorous/2156668>).

/// The exact `f32` value of a `bf16` bit pattern (bf16 is the top half of an `f32`).
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `f` rounded to nearest-even `bf16` bits.
#[inline(always)]
pub fn f32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    if f.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    // Adding 0x7fff plus the kept lowest bit rounds the dropped 16 bits to
    // nearest, ties to even; a carry into the exponent is the correct
    // rounding up (to infinity past the largest finite value). No overflow:
    // the largest non-NaN pattern is 0xff80_0000.
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// The exact `f32` value of an `f16` bit pattern.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let em = h & 0x7fff;
    // Exponent and mantissa moved into f32's fields, then scaled by 2^112
    // (the exponent bias difference 127 − 15): exact for normals and, as f32
    // subnormal × 2^112, for f16 subnormals too.
    let finite = f32::from_bits(em << 13) * f32::from_bits((127 + 112) << 23);
    let magnitude = if em >= 0x7c00 {
        f32::from_bits((em << 13) | 0x7f80_0000)
    } else {
        finite
    };
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}

/// `f` rounded to nearest-even `f16` bits.
#[inline(always)]
pub fn f32_to_f16(f: f32) -> u16 {
    const F16_OVERFLOW: u32 = (127 + 16) << 23; // 65536: rounds to infinity
    const F16_MIN_NORMAL: u32 = (127 - 14) << 23;
    const DENORM_MAGIC: u32 = ((127 - 15) + (23 - 10) + 1) << 23; // 0.5
    let u = f.to_bits();
    let sign = ((u >> 16) & 0x8000) as u16;
    let a = u & 0x7fff_ffff;
    let bits = if a >= F16_OVERFLOW {
        if a > 0x7f80_0000 {
            // NaN: quiet, top payload bits kept.
            0x7e00 | ((a >> 13) & 0x3ff) as u16
        } else {
            0x7c00
        }
    } else if a < F16_MIN_NORMAL {
        // Subnormal or zero: adding 0.5 aligns the f16 subnormal grid with
        // f32's last mantissa bits, and the FPU rounds to nearest even.
        let sum = f32::from_bits(a) + f32::from_bits(DENORM_MAGIC);
        (sum.to_bits() - DENORM_MAGIC) as u16
    } else {
        // Normal: rebias the exponent and round the 13 dropped bits to
        // nearest even; a carry into the exponent (to infinity) is correct.
        let odd = (a >> 13) & 1;
        let rebias = ((15u32.wrapping_sub(127)) << 23).wrapping_add(0xfff);
        (a.wrapping_add(rebias).wrapping_add(odd) >> 13) as u16
    };
    bits | sign
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bit pattern widens like `half`'s reference conversion, and
    /// every `f32` of a dense sample (all exponents, mantissa ends and
    /// middles, NaNs) narrows like it.
    #[test]
    fn agree_with_the_half_crate() {
        for h in 0..=u16::MAX {
            let (b, f) = (
                half::bf16::from_bits(h).to_f32(),
                half::f16::from_bits(h).to_f32(),
            );
            // NaN payloads may differ (`half` quiets signalling NaNs).
            assert!(
                bf16_to_f32(h).to_bits() == b.to_bits() || b.is_nan(),
                "bf16 {h:#x}"
            );
            assert!(bf16_to_f32(h).is_nan() == b.is_nan());
            assert!(
                f16_to_f32(h).to_bits() == f.to_bits() || f.is_nan(),
                "f16 {h:#x}"
            );
            assert!(f16_to_f32(h).is_nan() == f.is_nan());
        }
        let mut samples: Vec<u32> = Vec::new();
        for e in 0..=255u32 {
            for m in [
                0, 1, 0xfff, 0x1000, 0x1001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x10000, 0x3f_ffff,
                0x7f_ffff,
            ] {
                samples.push((e << 23) | m);
                samples.push((e << 23) | (m ^ 0x2000));
            }
        }
        for &s in &samples {
            for u in [s, s | 0x8000_0000] {
                let f = f32::from_bits(u);
                let (b, h) = (half::bf16::from_f32(f), half::f16::from_f32(f));
                if f.is_nan() {
                    assert!(half::bf16::from_bits(f32_to_bf16(f)).is_nan());
                    assert!(half::f16::from_bits(f32_to_f16(f)).is_nan());
                } else {
                    assert_eq!(f32_to_bf16(f), b.to_bits(), "bf16 of {f:e} ({u:#x})");
                    assert_eq!(f32_to_f16(f), h.to_bits(), "f16 of {f:e} ({u:#x})");
                }
            }
        }
    }
}
