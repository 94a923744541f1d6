//! Kernels over one contiguous run of one channel (contiguous layout):
//! scalar coefficients, 16 logical lanes for the reductions.
//!
//! Reductions keep their 16 lanes in `16 / W` registers across the run
//! (element `i` of the body goes to lane `i mod 16`) and add the tail
//! (`len mod 16` elements, element `body + l` into lane `l`) in scalar code
//! shared by every level. Each lane is a plain left-to-right sum of `f64`
//! terms, so every level gives the same bits.

use super::{Lane, RunAcc, Simd, RUN_LANES};

/// `acc[s]` lanes into registers.
///
/// # Safety
/// The CPU has `S`'s features (`acc` rows have `RUN_LANES` elements).
#[inline(always)]
unsafe fn load_acc<S: Simd, const K: usize>(acc: &RunAcc<K>) -> [[S::V; RUN_LANES]; K] {
    // SAFETY: lane `j·W + w` < RUN_LANES for j < RUN_LANES / W; features by contract.
    unsafe {
        let mut r = [[S::splat(0.0); RUN_LANES]; K];
        for (rs, a) in r.iter_mut().zip(acc) {
            for (j, v) in rs.iter_mut().take(RUN_LANES / S::W).enumerate() {
                *v = S::load(a.as_ptr().add(j * S::W));
            }
        }
        r
    }
}

/// Registers back into `acc` (inverse of [`load_acc`]).
///
/// # Safety
/// The CPU has `S`'s features.
#[inline(always)]
unsafe fn store_acc<S: Simd, const K: usize>(r: &[[S::V; RUN_LANES]; K], acc: &mut RunAcc<K>) {
    // SAFETY: as in `load_acc`, every store stays inside the 16-lane row.
    unsafe {
        for (rs, a) in r.iter().zip(acc.iter_mut()) {
            for (j, v) in rs.iter().take(RUN_LANES / S::W).enumerate() {
                S::store(a.as_mut_ptr().add(j * S::W), *v);
            }
        }
    }
}

/// `Σd` and `Σd²` per lane, `d = x − k` (the one-read statistics of
/// Chan, Golub & LeVeque's shifted data algorithm).
///
/// # Safety
/// The CPU has `S`'s features.
#[inline(always)]
pub unsafe fn sums<S: Simd, T: Lane>(x: &[T], k: f64, acc: &mut RunAcc<2>) {
    let body = x.len() / RUN_LANES * RUN_LANES;
    // SAFETY: every load reads `x[i + j·W .. i + (j+1)·W]` with
    // `i + RUN_LANES <= body <= x.len()`; features by contract.
    unsafe {
        let [mut a, mut q] = load_acc::<S, 2>(acc);
        let (kv, p) = (S::splat(k), x.as_ptr());
        let mut i = 0;
        while i < body {
            for j in 0..RUN_LANES / S::W {
                let d = S::sub(T::load::<S>(p.add(i + j * S::W)), kv);
                a[j] = S::add(a[j], d);
                q[j] = S::add(q[j], S::mul(d, d));
            }
            i += RUN_LANES;
        }
        store_acc::<S, 2>(&[a, q], acc);
    }
    for (l, v) in x[body..].iter().enumerate() {
        let d = v.as_f64() - k;
        acc[0][l] += d;
        acc[1][l] += d * d;
    }
}

/// `Σdy`, `Σdy·(x − k)` and `Σ(x − k)` per lane (the backward sums).
///
/// # Safety
/// The CPU has `S`'s features; `dy.len() == x.len()`.
#[inline(always)]
pub unsafe fn grad<S: Simd, T: Lane>(x: &[T], dy: &[T], k: f64, acc: &mut RunAcc<3>) {
    let body = x.len() / RUN_LANES * RUN_LANES;
    // SAFETY: loads stay below `body <= x.len() == dy.len()`; features by contract.
    unsafe {
        let [mut s, mut t, mut u] = load_acc::<S, 3>(acc);
        let (kv, px, pg) = (S::splat(k), x.as_ptr(), dy.as_ptr());
        let mut i = 0;
        while i < body {
            for j in 0..RUN_LANES / S::W {
                let g = T::load::<S>(pg.add(i + j * S::W));
                let d = S::sub(T::load::<S>(px.add(i + j * S::W)), kv);
                s[j] = S::add(s[j], g);
                t[j] = S::add(t[j], S::mul(g, d));
                u[j] = S::add(u[j], d);
            }
            i += RUN_LANES;
        }
        store_acc::<S, 3>(&[s, t, u], acc);
    }
    for (l, (v, g)) in x[body..].iter().zip(&dy[body..]).enumerate() {
        let (g, d) = (g.as_f64(), v.as_f64() - k);
        acc[0][l] += g;
        acc[1][l] += g * d;
        acc[2][l] += d;
    }
}

/// `y = (x − k)·a + b`.
///
/// # Safety
/// The CPU has `S`'s features; `y.len() == x.len()`.
#[inline(always)]
pub unsafe fn affine<S: Simd, T: Lane>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
    let body = x.len() / S::W * S::W;
    // SAFETY: `i + W <= body <= x.len() == y.len()`; features by contract.
    unsafe {
        let (kv, av, bv) = (S::splat(k), S::splat(a), S::splat(b));
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        // Four registers per loop turn (more loads in flight per
        // instruction in a streaming pass), then one at a time.
        let mut i = 0;
        while i + 4 * S::W <= body {
            for u in 0..4 {
                let p = i + u * S::W;
                let v = S::sub(T::load::<S>(px.add(p)), kv);
                T::store::<S>(py.add(p), S::add(S::mul(v, av), bv));
            }
            i += 4 * S::W;
        }
        while i < body {
            let v = S::sub(T::load::<S>(px.add(i)), kv);
            T::store::<S>(py.add(i), S::add(S::mul(v, av), bv));
            i += S::W;
        }
    }
    for (o, v) in y[body..].iter_mut().zip(&x[body..]) {
        *o = T::from_f64((v.as_f64() - k) * a + b);
    }
}

/// `dx = c₀·dy + c₁·(x − k) + c₂`.
///
/// # Safety
/// The CPU has `S`'s features; `dy`, `dx` as long as `x`.
#[inline(always)]
pub unsafe fn dx<S: Simd, T: Lane>(x: &[T], dy: &[T], dx: &mut [T], k: f64, c: [f64; 3]) {
    let body = x.len() / S::W * S::W;
    // SAFETY: `i + W <= body <= x.len()`, and `dy`, `dx` are as long; features by contract.
    unsafe {
        let kv = S::splat(k);
        let [c0, c1, c2] = c.map(|v| S::splat(v));
        let (px, pg, po) = (x.as_ptr(), dy.as_ptr(), dx.as_mut_ptr());
        let mut i = 0;
        while i < body {
            let g = S::mul(c0, T::load::<S>(pg.add(i)));
            let d = S::mul(c1, S::sub(T::load::<S>(px.add(i)), kv));
            T::store::<S>(po.add(i), S::add(S::add(g, d), c2));
            i += S::W;
        }
    }
    let rest = dx[body..].iter_mut().zip(&x[body..]).zip(&dy[body..]);
    for ((o, v), g) in rest {
        *o = T::from_f64(c[0] * g.as_f64() + c[1] * (v.as_f64() - k) + c[2]);
    }
}
