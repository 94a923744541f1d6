//! `fused`'s SIMD kernels equal their scalar twin bit for bit, at every
//! instruction-set level this CPU has (forced through [`Level::available`]),
//! over every tail length 0..=70 and larger sizes, for `f32` and `f64`, on
//! tiny, huge and offset data; and `fused` as a whole stays accurate where
//! its one-read statistics need their second pass.

mod common;

use bn_impls::fused::simd::{self, Lane, Level, Post, RowCoeffs, RowsDx, RunAcc, RunCoeffs};
use bn_impls::{registry, Backward, Element, GradMode, Layout};
use common::{bits, dims, run_all, Rng};

/// `(scale, offset)` of the test data: plain, tiny, huge, ill-conditioned.
const DATA: &[(f64, f64)] = &[
    (1.0, 0.5),
    (1e-30, 0.0),
    (1e30, 0.0),
    (1.0, 1e4),
    (1.0, 1e8),
];

fn lengths() -> impl Iterator<Item = usize> {
    // 255..=273: around the shortest run that half data reduce in `f32`
    // blocks (`runs::NARROW_MIN_RUN`), with every tail length; 4099 has
    // several blocks.
    (0..=70)
        .chain([127, 128, 129])
        .chain(255..=273)
        .chain([1000, 4099])
}

fn values<T: Element>(n: usize, seed: u64, (scale, offset): (f64, f64)) -> Vec<T> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| T::from_f64(offset + scale * rng.unit()))
        .collect()
}

fn b64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn acc<const K: usize>(seed: f64) -> RunAcc<K> {
    std::array::from_fn(|s| std::array::from_fn(|l| seed * (s * 16 + l) as f64))
}

fn runs_at<T: Lane>(lv: Level, x: &[T], dy: &[T], k: f64) -> (Vec<u64>, Vec<u64>) {
    let mut a2 = acc::<2>(0.25);
    simd::run_sums(lv, x, Some(x.len()), k, &mut a2);
    let mut a3 = acc::<3>(-0.5);
    simd::run_grad(lv, x, dy, None, k, &mut a3);
    let mut sums: Vec<f64> = a2.iter().flatten().copied().collect();
    sums.extend(a3.iter().flatten());
    let mut y = vec![T::zero(); x.len()];
    simd::run_affine(lv, x, &mut y, k, 0.75, -1.5);
    let mut out = bits(&y);
    simd::run_dx(lv, x, dy, &mut y, k, [0.5, -0.25, 2.0]);
    out.extend(bits(&y));
    (b64(&sums), out)
}

fn check_runs<T: Lane>(lv: Level) {
    for (di, &d) in DATA.iter().enumerate() {
        for n in lengths() {
            let x: Vec<T> = values(n, n as u64 + 1, d);
            let dy: Vec<T> = values(n, n as u64 + 99, (1.0, 0.0));
            let k = x.first().map_or(d.1, |v| v.as_f64());
            // A data value (the first pass's shifts), and one that is not
            // (a second pass's: half data then subtract its `f32` remainder).
            for k in [k, k + d.0 / 3.0] {
                assert_eq!(
                    runs_at(lv, &x, &dy, k),
                    runs_at(Level::scalar(), &x, &dy, k),
                    "run kernels, {} {} data {di} n = {n} k = {k}",
                    lv.name(),
                    T::DTYPE
                );
            }
        }
    }
}

/// `L` distinct per-lane coefficients scaled by `s`.
fn lane_coeffs(l: usize, s: f64) -> Vec<f64> {
    (0..l).map(|i| s * (1.0 + i as f64 / 7.0)).collect()
}

fn rows_at<T: Lane>(lv: Level, x: &[T], dy: &[T], k: &[f64]) -> (Vec<u64>, Vec<u64>) {
    let coef = |s: f64| lane_coeffs(k.len(), s);
    let (a, b, c) = (coef(0.5), coef(-1.25), coef(0.125));
    let [mut s1, mut s2, mut g1, mut g2, mut g3] = [0.25, -0.5, 1.0, 2.0, -3.0].map(coef);
    let [mut n1, mut n2] = [0.75, -1.5].map(coef);
    simd::rows_sums(lv, x, k, [&mut s1, &mut s2]);
    simd::rows_sums_narrow(lv, x, k, [&mut n1, &mut n2]);
    simd::rows_grad(lv, x, dy, k, [&mut g1, &mut g2, &mut g3]);
    let sums: Vec<f64> = [s1, s2, n1, n2, g1, g2, g3].concat();
    let mut y = vec![T::zero(); x.len()];
    simd::rows_affine(lv, x, &mut y, &RowCoeffs::affine::<T>([k, &a, &b]));
    let mut out = bits(&y);
    simd::rows_scale(lv, x, &mut y, &RowCoeffs::scale::<T>([&a, &b]));
    out.extend(bits(&y));
    simd::rows_dx(lv, x, dy, &mut y, &RowsDx::shifted::<T>([k, &a, &b, &c]));
    out.extend(bits(&y));
    // The folded `dx` is, by definition, the shifted one with a zero shift
    // (plain, and with the ReLU mask: `x` as the output).
    let (folded, zero) = (RowsDx::folded::<T>([&a, &b, &c]), vec![0.0; k.len()]);
    let dc0 = RowsDx::shifted::<T>([&zero, &a, &b, &c]);
    let mut shifted = vec![T::zero(); x.len()];
    simd::rows_dx(lv, x, dy, &mut y, &folded);
    simd::rows_dx(lv, x, dy, &mut shifted, &dc0);
    assert_eq!(bits(&y), bits(&shifted), "folded dx, {}", lv.name());
    out.extend(bits(&y));
    simd::rows_dx_relu(lv, [x, dy, x], &mut y, None, &folded, false);
    simd::rows_dx_relu(lv, [x, dy, x], &mut shifted, None, &dc0, false);
    assert_eq!(bits(&y), bits(&shifted), "folded ReLU dx, {}", lv.name());
    out.extend(bits(&y));
    (b64(&sums), out)
}

fn check_rows<T: Lane>(lv: Level) {
    // Lane counts below, at and above the register blocks (8–64 lanes), with
    // remainders; lengths give partial last rows and many register tiles.
    for l in [1, 3, 8, 13, 32, 64, 72, 100, 600] {
        for (di, &d) in DATA.iter().enumerate() {
            for n in lengths().chain([l * 70 + l / 2, l * 300]) {
                let x: Vec<T> = values(n, (n + l) as u64, d);
                let dy: Vec<T> = values(n, (n + l) as u64 + 99, (1.0, 0.0));
                let k: Vec<f64> = (0..l)
                    .map(|i| x.get(i).map_or(d.1, |v| v.as_f64()))
                    .collect();
                // Data values (the first pass's shifts), and values that are
                // not (a second pass's: half data's `f32` blocks then
                // subtract their `f32` remainders too).
                let k2: Vec<f64> = k.iter().map(|v| v + d.0 / 3.0).collect();
                for k in [k, k2] {
                    assert_eq!(
                        rows_at(lv, &x, &dy, &k),
                        rows_at(Level::scalar(), &x, &dy, &k),
                        "row kernels, {} {} L = {l} data {di} n = {n}",
                        lv.name(),
                        T::DTYPE
                    );
                }
            }
        }
    }
}

#[test]
fn run_kernels_equal_the_scalar_twin_at_every_level() {
    // Each level plain and streaming (non-temporal stores, prefetches).
    for lv in Level::available()
        .into_iter()
        .flat_map(|l| [l, l.streaming(true)])
    {
        check_runs::<f32>(lv);
        check_runs::<f64>(lv);
        check_runs::<half::bf16>(lv);
        check_runs::<half::f16>(lv);
    }
}

/// The lock-step pass of pipelined backward ([`simd::runs_grad_dx`]): the
/// sums of one stretch and the `dx` of another, as the separate scalar
/// kernels compute them ([`simd::runs_grad`], [`simd::runs_dx`]).
fn check_grad_dx<T: Lane>(lv: Level) {
    for (di, &d) in DATA.iter().enumerate() {
        for s in (1..=40).chain([127, 517]) {
            for runs in 1..=3 {
                let len = runs * s;
                let seed = (s * 10 + runs) as u64;
                let [x1, dy1, x0, dy0]: [Vec<T>; 4] =
                    std::array::from_fn(|i| values(len, seed + 1000 * i as u64, d));
                let k: Vec<f64> = (0..runs).map(|r| x1[r * s].as_f64()).collect();
                let raw: Vec<[f64; 4]> = (0..runs)
                    .map(|r| {
                        [
                            x0[r * s].as_f64(),
                            0.5 + r as f64,
                            -0.25 / d.0,
                            2.0 - r as f64,
                        ]
                    })
                    .collect();
                let c: Vec<RunCoeffs<4>> = raw.iter().map(|&c| RunCoeffs::dx::<T>(c)).collect();
                let c64: Vec<[f64; 4]> = c.iter().map(|c| c.lanes::<f64>()).collect();
                let mut acc_a: Vec<RunAcc<3>> = (0..runs).map(|r| acc(r as f64 - 0.5)).collect();
                let mut acc_b = acc_a.clone();
                let (mut out_a, mut out_b) = (vec![T::zero(); len], vec![T::zero(); len]);
                simd::runs_grad_dx(
                    lv,
                    [&x1, &dy1],
                    (&k, &mut acc_a),
                    [&x0, &dy0],
                    &mut out_a,
                    (&c64, s),
                );
                let sc = Level::scalar();
                simd::runs_grad(sc, (&x1, &dy1, None), s, None, &k, &mut acc_b);
                simd::runs_dx(sc, (&x0, &dy0, &mut out_b), s, (&c, 0));
                let what = format!("{} {} data {di} s = {s} runs = {runs}", lv.name(), T::DTYPE);
                assert_eq!(bits(&out_a), bits(&out_b), "dx, {what}");
                let flat = |a: &[RunAcc<3>]| {
                    b64(&a.iter().flatten().flatten().copied().collect::<Vec<_>>())
                };
                assert_eq!(flat(&acc_a), flat(&acc_b), "sums, {what}");
            }
        }
    }
}

/// The per-channel `√(var + ε)` and `1/√(var + ε)` of every level are the
/// scalar definition's bits ([`bn_impls::problem::inv_std`]), over every
/// tail length and variances from 0 and subnormal to huge, infinite and NaN,
/// with eps 0 and 1e-5.
#[test]
fn per_channel_inverse_std_equals_the_definition_at_every_level() {
    let special = [
        0.0,
        5e-324,
        1e-300,
        1.0,
        3.0,
        1e300,
        f64::INFINITY,
        f64::NAN,
    ];
    for lv in Level::available() {
        for n in lengths() {
            let var: Vec<f64> = (0..n)
                .map(|i| special[i % special.len()] * (1.0 + i as f64 / 9.0))
                .collect();
            for eps in [0.0, 1e-5] {
                let (sd, inv) = simd::std_inv(lv, &var, eps);
                let want_sd: Vec<f64> = var.iter().map(|v| (v + eps).sqrt()).collect();
                let want_inv: Vec<f64> = var
                    .iter()
                    .map(|&v| bn_impls::problem::inv_std(v, eps))
                    .collect();
                let what = format!("{} n = {n} eps = {eps}", lv.name());
                assert_eq!(b64(&sd), b64(&want_sd), "sd, {what}");
                assert_eq!(b64(&inv), b64(&want_inv), "inv, {what}");
            }
        }
    }
}

#[test]
fn lock_step_sums_and_dx_equal_the_separate_scalar_kernels_at_every_level() {
    for lv in Level::available() {
        check_grad_dx::<f32>(lv);
        check_grad_dx::<f64>(lv);
    }
}

#[test]
fn row_kernels_equal_the_scalar_twin_at_every_level() {
    // Each level plain and streaming (non-temporal stores, prefetches).
    for lv in Level::available()
        .into_iter()
        .flat_map(|l| [l, l.streaming(true)])
    {
        check_rows::<f32>(lv);
        check_rows::<f64>(lv);
        check_rows::<half::bf16>(lv);
        check_rows::<half::f16>(lv);
    }
}

/// Every element-wise kernel's output into `y` (one after the other), as bits.
fn elementwise_into<T: Lane>(lv: Level, x: &[T], dy: &[T], k: &[f64], y: &mut [T]) -> Vec<u64> {
    let coef = |s: f64| lane_coeffs(k.len(), s);
    let (a, b, c) = (coef(0.5), coef(-1.25), coef(0.125));
    let mut out = Vec::new();
    let mut take = |y: &[T]| out.extend(bits(y));
    simd::rows_affine(lv, x, y, &RowCoeffs::affine::<T>([k, &a, &b]));
    take(y);
    simd::rows_scale(lv, x, y, &RowCoeffs::scale::<T>([&a, &b]));
    take(y);
    let dc = RowsDx::shifted::<T>([k, &a, &b, &c]);
    simd::rows_dx(lv, x, dy, y, &dc);
    take(y);
    let df = RowsDx::folded::<T>([&a, &b, &c]);
    simd::rows_dx(lv, x, dy, y, &df);
    take(y);
    for fixed in [false, true] {
        simd::rows_dx_relu(lv, [x, dy, x], y, None, &dc, fixed);
        take(y);
        simd::rows_dx_relu(lv, [x, dy, x], y, None, &df, fixed);
        take(y);
        simd::run_dx_relu(lv, [x, dy, x], y, None, k[0], [0.5, -0.25, 2.0], fixed);
        take(y);
    }
    simd::run_affine_post(lv, x, dy, y, k[0], 0.75, -1.5, simd::Post::AddRelu);
    take(y);
    simd::run_dx(lv, x, dy, y, k[0], [0.5, -0.25, 2.0]);
    take(y);
    out
}

/// The streaming level ([`Level::streaming`]) writes the plain level's
/// bits at every alignment of the output within a cache line, and nothing
/// outside the output.
fn check_streaming<T: Lane>(lv: Level) {
    for l in [1, 3, 13, 64, 100] {
        for n in lengths().filter(|&n| n <= 200).chain([l * 9 + 5]) {
            let x: Vec<T> = values(n, (n + l) as u64, DATA[0]);
            let dy: Vec<T> = values(n, (n + l) as u64 + 99, (1.0, -0.25));
            let k: Vec<f64> = (0..l).map(|i| 0.5 + i as f64 / 3.0).collect();
            let want = elementwise_into(lv, &x, &dy, &k, &mut vec![T::zero(); n]);
            let what = format!("streaming stores, L = {l}");
            at_every_offset(&[lv.streaming(true)], (&x, &dy, &k), &want, &what);
        }
    }
}

/// Rows long enough that the row passes go by column blocks (their
/// coefficients past 32 KiB per row: 2304 lanes of `f64` coefficient
/// pairs, 4112 with a narrow last block), plain and streaming, write the
/// bits of the same kernels called one row at a time (a slice of one row
/// sweeps in address order), for slices of one to five whole rows and a
/// slice with a partial last row, at every alignment of the output within a
/// line (blocks need a line-aligned output; the other offsets sweep in
/// address order), and nothing outside the output.
fn check_long_rows<T: Lane>(lv: Level) {
    for l in [2304, 4112] {
        for n in [l, 2 * l, 3 * l, 5 * l, 3 * l + 40] {
            let x: Vec<T> = values(n, (n + l) as u64, DATA[0]);
            let dy: Vec<T> = values(n, (n + l) as u64 + 99, (1.0, -0.25));
            let k: Vec<f64> = (0..l).map(|i| 0.5 + i as f64 / 3.0).collect();
            let want = by_rows(lv, (&x, &dy, &k), l);
            let levels = [lv, lv.streaming(true)];
            let what = format!("blocks against rows one at a time, L = {l}");
            let aligned = at_every_offset(&levels, (&x, &dy, &k), &want, &what);
            assert!(aligned, "no offset put the output on a line");
        }
    }
}

/// [`elementwise_into`] at each of `levels` into an output at every offset
/// within a cache line of a buffer of sentinels: the bits equal `want`, and
/// nothing outside the output is written (its first and last lines are
/// shared with neighbours). Returns whether some offset put the output on
/// a line.
fn at_every_offset<T: Lane>(
    levels: &[Level],
    (x, dy, k): (&[T], &[T], &[f64]),
    want: &[u64],
    what: &str,
) -> bool {
    let (n, line) = (x.len(), 64 / std::mem::size_of::<T>());
    let sentinel = T::from_f64(7.0);
    let mut backing = vec![sentinel; n + 2 * line];
    let mut aligned = false;
    for off in 0..line {
        for &level in levels {
            backing.fill(sentinel);
            let y = &mut backing[off..off + n];
            aligned |= (y.as_ptr() as usize).is_multiple_of(64);
            let got = elementwise_into(level, x, dy, k, y);
            let what = format!("{what}, {} {} n = {n} offset {off}", level.name(), T::DTYPE);
            assert_eq!(got, want, "{what}");
            let outside = backing[..off].iter().chain(&backing[off + n..]);
            assert!(
                outside.clone().all(|v| v.as_f64() == 7.0),
                "wrote outside, {what}"
            );
        }
    }
    aligned
}

/// [`elementwise_into`]'s bits from one call per row of `l` lanes (the
/// last row may be short), in its order: kernel by kernel, each over the
/// whole tensor.
fn by_rows<T: Lane>(lv: Level, (x, dy, k): (&[T], &[T], &[f64]), l: usize) -> Vec<u64> {
    let rows: Vec<Vec<u64>> = x
        .chunks(l)
        .zip(dy.chunks(l))
        .map(|(xr, dr)| {
            elementwise_into(lv, xr, dr, &k[..xr.len()], &mut vec![T::zero(); xr.len()])
        })
        .collect();
    let kernels = rows[0].len() / x.len().min(l);
    let mut out = Vec::new();
    for q in 0..kernels {
        for r in &rows {
            let m = r.len() / kernels;
            out.extend_from_slice(&r[q * m..(q + 1) * m]);
        }
    }
    out
}

/// Many runs in one call ([`simd::runs_affine_post`]) write what one call
/// per run writes, with run `i` on channel `(c0 + i) mod C`, for run
/// lengths with and without a register tail, every epilogue, plain and
/// streaming — and the scalar twin agrees.
fn check_many_runs<T: Lane>(lv: Level) {
    let channels = 3;
    let kab: Vec<[f64; 3]> = (0..channels)
        .map(|c| [0.25 * c as f64, 1.5 - 0.5 * c as f64, -0.125 + c as f64])
        .collect();
    let coef: Vec<RunCoeffs<3>> = kab.iter().map(|&k| RunCoeffs::affine::<T>(k)).collect();
    for s in [1, 7, 16, 33, 49, 64, 100] {
        for (runs, c0) in [(1, 0), (5, 2), (7, 1)] {
            let x: Vec<T> = values(runs * s, s as u64, (2.0, -1.0));
            let r: Vec<T> = values(runs * s, 7 + s as u64, (1.0, -0.5));
            for post in [Post::Plain, Post::Relu, Post::AddRelu] {
                let mut one = vec![T::zero(); x.len()];
                for (i, ((xr, rr), yr)) in x
                    .chunks(s)
                    .zip(r.chunks(s))
                    .zip(one.chunks_mut(s))
                    .enumerate()
                {
                    let [k, a, b] = kab[(c0 + i) % channels];
                    simd::run_affine_post(lv, xr, rr, yr, k, a, b, post);
                }
                let mut many = vec![T::zero(); x.len()];
                simd::runs_affine_post(lv, (&x, &r, &mut many), s, (&coef, c0), post);
                let mut twin = vec![T::zero(); x.len()];
                let sc = Level::scalar();
                simd::runs_affine_post(sc, (&x, &r, &mut twin), s, (&coef, c0), post);
                let what = format!(
                    "{} {} s {s} runs {runs} c0 {c0} {post:?}",
                    lv.name(),
                    T::DTYPE
                );
                assert_eq!(bits(&many), bits(&one), "{what}: one call per run");
                assert_eq!(bits(&many), bits(&twin), "{what}: scalar twin");
            }
        }
    }
}

/// Every kernel over many runs ([`simd::runs_affine_post`] with each
/// epilogue, [`simd::runs_dx`], [`simd::runs_dx_relu`] with batch and fixed
/// statistics) into `y`, one after the other, as bits.
fn many_runs_into<T: Lane>(
    lv: Level,
    (x, r): (&[T], &[T]),
    y: &mut [T],
    s: usize,
    (kab, kc): (&[RunCoeffs<3>], &[RunCoeffs<4>]),
    c0: usize,
) -> Vec<u64> {
    let mut out = Vec::new();
    for post in [Post::Plain, Post::Relu, Post::AddRelu] {
        simd::runs_affine_post(lv, (x, r, &mut *y), s, (kab, c0), post);
        out.extend(bits(y));
    }
    simd::runs_dx(lv, (x, r, &mut *y), s, (kc, c0));
    out.extend(bits(y));
    for fixed in [false, true] {
        simd::runs_dx_relu(lv, [x, r, x], y, None, s, (kc, c0), fixed);
        out.extend(bits(y));
    }
    out
}

/// The streaming level's sweep over a task's runs (registers straddling run
/// ends, [`simd::Simd::blend`]) writes the scalar twin's bits at every
/// alignment of the output within a line, for runs of the widest
/// register's length and longer, and nothing outside the output; with one
/// channel's coefficients out of `f32`'s range (half data then mix `f32`
/// and `f64` lanes across runs) it falls back to a call per run and still
/// agrees, and with every channel's out of range half data sweep in `f64`
/// lanes.
fn check_run_sweep<T: Lane>(lv: Level) {
    let line = 64 / std::mem::size_of::<T>();
    let sentinel = T::from_f64(7.0);
    let mut kab: Vec<[f64; 3]> = (0..5)
        .map(|c| [0.25 * c as f64, 1.5 - 0.5 * c as f64, -0.125 + c as f64])
        .collect();
    let mut kc: Vec<[f64; 4]> = kab.iter().map(|&[k, a, b]| [k, a, -b, 0.5 * a]).collect();
    // Wide channels: none, one (half data mix lane types: a call per run),
    // all (half data sweep in `f64` lanes).
    for wide in 0..3 {
        match wide {
            1 => {
                kab[3] = [0.5, 1e200, 0.0];
                kc[2] = [0.5, 1e200, 1.0, 0.0];
            }
            2 => {
                kab.iter_mut().for_each(|k| k[1] *= 1e200);
                kc.iter_mut().for_each(|k| k[2] *= 1e200);
            }
            _ => {}
        }
        let ca: Vec<RunCoeffs<3>> = kab.iter().map(|&k| RunCoeffs::affine::<T>(k)).collect();
        let cd: Vec<RunCoeffs<4>> = kc.iter().map(|&k| RunCoeffs::dx::<T>(k)).collect();
        if wide == 2 {
            let f64_lanes = |c: &RunCoeffs<4>| matches!(c, RunCoeffs::F64(_));
            assert!(ca.iter().all(|c| matches!(c, RunCoeffs::F64(_))));
            assert!(cd.iter().all(f64_lanes), "every dx channel in f64 lanes");
        }
        for s in [16, 17, 31, 49, 64, 100] {
            for (runs, c0) in [(1, 0), (4, 3), (11, 1)] {
                let n = runs * s;
                let x: Vec<T> = values(n, s as u64, (2.0, -1.0));
                let r: Vec<T> = values(n, 7 + s as u64, (1.0, -0.5));
                let sc = Level::scalar();
                let twin = many_runs_into(sc, (&x, &r), &mut vec![T::zero(); n], s, (&ca, &cd), c0);
                let mut backing = vec![sentinel; n + 2 * line];
                for off in 0..line {
                    backing.fill(sentinel);
                    let y = &mut backing[off..off + n];
                    let got = many_runs_into(lv, (&x, &r), y, s, (&ca, &cd), c0);
                    let what = format!(
                        "{} {} s {s} runs {runs} c0 {c0} offset {off} wide {wide}",
                        lv.name(),
                        T::DTYPE
                    );
                    assert!(got == twin, "{what}: not the scalar twin's bits");
                    let outside = backing[..off].iter().chain(&backing[off + n..]);
                    assert!(
                        outside.clone().all(|v| v.as_f64() == 7.0),
                        "wrote outside, {what}"
                    );
                }
            }
        }
    }
}

/// Many runs in one call of the backward and statistics kernels
/// ([`simd::runs_sums`], [`simd::runs_grad`] with and without the ReLU
/// mask, [`simd::runs_dx`]) give what one call per run gives, and the
/// scalar twin agrees.
fn check_many_runs_backward<T: Lane>(lv: Level) {
    let channels = 3;
    let kc: Vec<[f64; 4]> = (0..channels)
        .map(|c| {
            [
                0.25 * c as f64 - 0.5,
                1.5 - 0.5 * c as f64,
                -0.75,
                0.125 + c as f64,
            ]
        })
        .collect();
    let coef: Vec<RunCoeffs<4>> = kc.iter().map(|&k| RunCoeffs::dx::<T>(k)).collect();
    for s in [1, 7, 16, 33, 49, 64, 100] {
        for (runs, c0) in [(1, 0), (5, 2), (7, 1)] {
            let what = format!("{} {} s {s} runs {runs} c0 {c0}", lv.name(), T::DTYPE);
            let x: Vec<T> = values(runs * s, s as u64, (2.0, -1.0));
            let dy: Vec<T> = values(runs * s, 3 + s as u64, (1.0, -0.5));
            let yo: Vec<T> = values(runs * s, 5 + s as u64, (1.0, -0.5));
            let k: Vec<f64> = (0..runs).map(|i| kc[(c0 + i) % channels][0]).collect();
            let sums = |lv: Level, many: bool, mask: bool| {
                let mut a2: Vec<RunAcc<2>> = (0..runs).map(|i| acc::<2>(0.25 + i as f64)).collect();
                let mut a3: Vec<RunAcc<3>> = (0..runs).map(|i| acc::<3>(-0.5 - i as f64)).collect();
                let yo = mask.then_some(&yo[..]);
                if many {
                    simd::runs_sums(lv, &x, s, Some(s), &k, &mut a2);
                    simd::runs_grad(lv, (&x, &dy, yo), s, None, &k, &mut a3);
                } else {
                    for i in 0..runs {
                        let r = i * s..(i + 1) * s;
                        simd::run_sums(lv, &x[r.clone()], None, k[i], &mut a2[i]);
                        let (xr, gr) = (&x[r.clone()], &dy[r.clone()]);
                        match yo {
                            Some(yo) => {
                                simd::run_grad_relu(lv, xr, gr, &yo[r], None, k[i], &mut a3[i])
                            }
                            None => simd::run_grad(lv, xr, gr, None, k[i], &mut a3[i]),
                        }
                    }
                }
                let all: Vec<f64> = a2.iter().flatten().flatten().copied().collect();
                [all, a3.iter().flatten().flatten().copied().collect()].concat()
            };
            for mask in [false, true] {
                let many = b64(&sums(lv, true, mask));
                assert_eq!(
                    many,
                    b64(&sums(lv, false, mask)),
                    "{what} mask {mask}: sums per run"
                );
                let twin = b64(&sums(Level::scalar(), true, mask));
                assert_eq!(many, twin, "{what} mask {mask}: sums, scalar twin");
            }
            let dx = |lv: Level, many: bool| {
                let mut out = vec![T::zero(); x.len()];
                if many {
                    simd::runs_dx(lv, (&x, &dy, &mut out), s, (&coef, c0));
                } else {
                    for (i, o) in out.chunks_mut(s).enumerate() {
                        let [k, kd, kx, c] = kc[(c0 + i) % channels];
                        let r = i * s..(i + 1) * s;
                        simd::run_dx(lv, &x[r.clone()], &dy[r], o, k, [kd, kx, c]);
                    }
                }
                bits(&out)
            };
            assert_eq!(dx(lv, true), dx(lv, false), "{what}: dx per run");
            assert_eq!(
                dx(lv, true),
                dx(Level::scalar(), true),
                "{what}: dx, scalar twin"
            );
            // The ReLU pass: `dx` and the residual's gradient, batch and fixed statistics.
            let dx_relu = |lv: Level, many: bool, fixed: bool, res: bool| {
                let (mut out, mut out2) = (vec![T::zero(); x.len()], vec![T::zero(); x.len()]);
                let v = [&x[..], &dy[..], &yo[..]];
                if many {
                    let d2 = res.then_some(&mut out2[..]);
                    simd::runs_dx_relu(lv, v, &mut out, d2, s, (&coef, c0), fixed);
                } else {
                    let runs = out.chunks_mut(s).zip(out2.chunks_mut(s));
                    for (i, (o, o2)) in runs.enumerate() {
                        let [k, kd, kx, c] = kc[(c0 + i) % channels];
                        let r = i * s..(i + 1) * s;
                        let v = v.map(|a| &a[r.clone()]);
                        let d2 = res.then_some(o2);
                        simd::run_dx_relu(lv, v, o, d2, k, [kd, kx, c], fixed);
                    }
                }
                [bits(&out), bits(&out2)]
            };
            for (fixed, res) in [(false, false), (false, true), (true, false), (true, true)] {
                let many = dx_relu(lv, true, fixed, res);
                let how = format!("{what} fixed {fixed} res {res}");
                assert_eq!(
                    many,
                    dx_relu(lv, false, fixed, res),
                    "{how}: relu dx per run"
                );
                let twin = dx_relu(Level::scalar(), true, fixed, res);
                assert_eq!(many, twin, "{how}: relu dx, scalar twin");
            }
        }
    }
}

/// Every level plain, streaming (non-temporal stores and prefetches), and
/// streaming over inputs in cache (stores only, as channel tasks' passes).
fn run_levels() -> Vec<Level> {
    Level::available()
        .into_iter()
        .flat_map(|l| [l, l.streaming(true), l.streaming(true).inputs_cached()])
        .collect()
}

#[test]
fn many_backward_runs_in_one_call_equal_one_call_per_run() {
    for lv in run_levels() {
        check_many_runs_backward::<f32>(lv);
        check_many_runs_backward::<f64>(lv);
        check_many_runs_backward::<half::bf16>(lv);
        check_many_runs_backward::<half::f16>(lv);
    }
}

#[test]
fn many_runs_in_one_call_equal_one_call_per_run() {
    for lv in run_levels() {
        check_many_runs::<f32>(lv);
        check_many_runs::<f64>(lv);
        check_many_runs::<half::bf16>(lv);
        check_many_runs::<half::f16>(lv);
    }
}

#[test]
fn streaming_sweeps_over_runs_write_the_twins_bits_at_every_alignment() {
    for lv in run_levels().into_iter().filter(|l| l.streams()) {
        check_run_sweep::<f32>(lv);
        check_run_sweep::<f64>(lv);
        check_run_sweep::<half::bf16>(lv);
        check_run_sweep::<half::f16>(lv);
    }
}

#[test]
fn streaming_stores_write_the_same_bits_at_every_alignment() {
    for lv in Level::available() {
        check_streaming::<f32>(lv);
        check_streaming::<f64>(lv);
        check_streaming::<half::bf16>(lv);
        check_streaming::<half::f16>(lv);
    }
}

#[test]
fn row_passes_by_column_blocks_write_the_bits_of_one_row_at_a_time() {
    for lv in Level::available() {
        check_long_rows::<f32>(lv);
        check_long_rows::<f64>(lv);
        check_long_rows::<half::bf16>(lv);
        check_long_rows::<half::f16>(lv);
    }
}

#[test]
fn levels_start_with_scalar_and_end_with_the_detected_one() {
    let all = Level::available();
    assert_eq!(all[0], Level::scalar());
    assert_eq!(*all.last().unwrap(), Level::detected());
    // Recorded in the log: which levels the comparisons above exercised.
    eprintln!(
        "levels: {:?}",
        all.iter().map(|l| l.name()).collect::<Vec<_>>()
    );
}

/// Data whose first values mislead the shift: every channel's first 64
/// values sit at `offset`, the rest near 0, so the one-read sums cancel and
/// the second pass must run; `fused` must still agree with `welford`.
fn misleading_prefix<T: Element>(shape: &[usize], layout: Layout, offset: f64) {
    // Half data's statistics may come from `f32` blocks (19 bits,
    // `runs::NARROW_SUM_BITS`); wider data's from `f64` sums.
    let stat_tol = if T::DTYPE.mantissa_bits() < 24 {
        2f64.powi(-16)
    } else {
        1e-10
    };
    let d = dims(shape, layout);
    let mut rng = Rng::new(3);
    let mut x: Vec<T> = common::data(&mut rng, d.len(), 0.0, 1.0);
    for c in 0..d.c {
        for i in 0..64.min(d.per_channel()) {
            x[d.offset(i / d.s, c, i % d.s)] = T::from_f64(offset + rng.unit());
        }
    }
    let dy: Vec<T> = common::data(&mut rng, d.len(), 0.0, 1.0);
    let want = run_all(registry::by_name("welford").unwrap(), d, &x, &dy);
    let got = run_all(registry::by_name("fused").unwrap(), d, &x, &dy);
    for (c, (g, w)) in got.var.iter().zip(&want.var).enumerate() {
        assert!((g - w).abs() <= stat_tol * w.abs(), "var[{c}]: {g} vs {w}");
    }
    for (c, (g, w)) in got.mean.iter().zip(&want.mean).enumerate() {
        // welford's running mean about a far shift is itself off by ~1e-12.
        assert!(
            (g - w).abs() <= stat_tol * w.abs().max(1.0),
            "mean[{c}]: {g} vs {w}"
        );
    }
    let tol = 4.0 * T::DTYPE.epsilon() + 1e-13;
    for (i, (g, w)) in got.y.iter().zip(&want.y).enumerate() {
        let (g, w) = (g.as_f64(), w.as_f64());
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "y[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn second_pass_when_the_prefix_misleads_the_shift() {
    for layout in Layout::ALL {
        misleading_prefix::<f32>(&[16, 3, 40, 40], layout, 1e3);
        misleading_prefix::<f64>(&[16, 3, 40, 40], layout, 1e6);
        misleading_prefix::<f64>(&[4096, 5], layout, 1e6);
        // f32 keeps one-read sums up to a growth of 2^13: a prefix of 64 in
        // 2^20 values exceeds it.
        misleading_prefix::<f32>(&[1024, 1, 32, 32], layout, 1e3);
        misleading_prefix::<half::bf16>(&[16, 3, 40, 40], layout, 1e3);
        misleading_prefix::<half::f16>(&[16, 3, 40, 40], layout, 1e3);
    }
}

/// Half data in long runs sum in `f32` blocks and keep one-read sums up to
/// a growth of 2 only (`coeffs::max_growth` of `NARROW_SUM_BITS`): a
/// channel of 2²⁰ values, its first 64 at 1000 (the shift) and the rest
/// two values 2⁻⁸ apart near 0.1, grows about 2²³, and every `d²` rounds
/// alike, so the one-read variance would be off by far more than 2⁻¹⁶.
#[test]
fn half_data_take_the_second_pass_where_f32_blocks_cancel() {
    fn check<T: Element>(layout: Layout) {
        let d = dims(&[1024, 1, 32, 32], layout);
        let x: Vec<T> = (0..d.len())
            .map(|i| match i {
                0..64 => 1000.0,
                _ => 0.1 + (i % 2) as f64 / 256.0,
            })
            .map(T::from_f64)
            .collect();
        let dy = x.clone();
        let want = run_all(registry::by_name("welford").unwrap(), d, &x, &dy);
        let got = run_all(registry::by_name("fused").unwrap(), d, &x, &dy);
        let (g, w) = (got.var[0], want.var[0]);
        assert!(
            (g - w).abs() <= 2f64.powi(-16) * w,
            "{} {layout}: var {g} vs {w}",
            T::DTYPE
        );
    }
    // Channels-last: rows of 64 lanes (a super-row of 64 one-channel
    // rows), summed in `f32` blocks of rows (`rows::sums_narrow`).
    for layout in Layout::ALL {
        check::<half::bf16>(layout);
        check::<half::f16>(layout);
    }
}

/// The same bound for channels-last rows (`rows::sums_narrow`, blocks of
/// 32 rows): 4000 rows of 72 lanes (a 64-lane column block and 8 left
/// over, which sum in blocks of their own), every value 1, about per-lane
/// shifts that are not data values. Summed in `f32` without the blocks,
/// lane 0 drifts by about `2⁻¹⁷`; without the remainders, by `2⁻¹³`.
#[test]
fn half_row_sums_stay_within_their_block_bound() {
    fn check<T: Lane>(lv: Level) {
        let (rows, l) = (4000, 72);
        let x = vec![T::from_f64(1.0); rows * l];
        for k0 in [1.0 / 3.0, -1e3 / 7.0, 1.0 + 1.0 / 3072.0] {
            let k: Vec<f64> = (0..l).map(|i| k0 * (1.0 + i as f64 / 4096.0)).collect();
            let [mut s1, mut s2] = [vec![0.0; l], vec![0.0; l]];
            simd::rows_sums_narrow(lv, &x, &k, [&mut s1, &mut s2]);
            for (i, &ki) in k.iter().enumerate() {
                let d = 1.0 - ki;
                let want = [rows as f64 * d, rows as f64 * d * d];
                let mag = [rows as f64 * d.abs(), want[1]];
                for (s, got) in [s1[i], s2[i]].into_iter().enumerate() {
                    let what = format!("{} {} k0 = {k0} lane {i}: sum {s}", lv.name(), T::DTYPE);
                    common::assert_within_blocks(got, want[s], mag[s], what);
                }
            }
        }
    }
    for lv in Level::available() {
        check::<half::bf16>(lv);
        check::<half::f16>(lv);
    }
}

/// The `f32` blocks of half data's run sums (`runs::sums_narrow`) lose at
/// most `2⁻¹⁹` of the sum of the terms' magnitudes (the 19 bits of
/// `NARROW_SUM_BITS`, which sets the growth limit; stated here, not read,
/// so a longer block fails),
/// however long the run: 60,000 equal values about a shift that is not a
/// data value, where every `f32` addition rounds the same way. Summed in
/// `f32` without the blocks' `f64` total, this drifts by about `2⁻¹³`.
/// Also a shift within `2⁻¹⁰` of the data, whose `f32` remainder must be
/// subtracted too.
#[test]
fn half_run_sums_stay_within_their_block_bound() {
    fn check<T: Lane>(lv: Level) {
        let n = 60_000;
        let x = vec![T::from_f64(1.0); n];
        // The last shift is within 2⁻¹⁰ of the data: its `f32` remainder
        // is about 10⁻⁴ of `d`, so it must be subtracted too.
        for k in [1.0 / 3.0, -1e3 / 7.0, 1.0 + 1.0 / 3072.0] {
            let mut a = [[0.0; 16]; 2];
            simd::runs_sums(lv, &x, n, None, &[k], std::slice::from_mut(&mut a));
            let got = a.map(|l| l.iter().sum::<f64>());
            let d = 1.0 - k;
            let want = [n as f64 * d, n as f64 * d * d];
            let mag = [n as f64 * d.abs(), want[1]];
            for s in 0..2 {
                let what = format!("{} {} k = {k}: sum {s}", lv.name(), T::DTYPE);
                common::assert_within_blocks(got[s], want[s], mag[s], what);
            }
        }
    }
    for lv in Level::available() {
        check::<half::bf16>(lv);
        check::<half::f16>(lv);
    }
}

/// A NaN in one channel's `x` stays in that channel (batch mode), and with
/// fixed statistics `x` is not read for `dx` at all.
#[test]
fn nan_stays_in_its_channel_and_out_of_fixed_mode_dx() {
    let fused = bn_impls::kernel::<f32>(registry::by_name("fused").unwrap()).unwrap();
    for layout in Layout::ALL {
        let d = dims(&[8, 4, 33, 33], layout);
        let mut rng = Rng::new(9);
        let mut x: Vec<f32> = common::data(&mut rng, d.len(), 0.0, 1.0);
        let dy: Vec<f32> = common::data(&mut rng, d.len(), 0.0, 1.0);
        x[d.offset(3, 1, 7)] = f32::NAN;
        let o = run_all(registry::by_name("fused").unwrap(), d, &x, &dy);
        for c in 0..d.c {
            let finite = d
                .channel_offsets(c)
                .all(|i| o.y[i].is_finite() && o.dx[i].is_finite());
            assert_eq!(finite, c != 1, "{layout}: channel {c}");
        }
        let (mean, var) = (vec![0.5; d.c], vec![2.0; d.c]);
        let (mut dx, mut gw, mut gb) = (vec![0.0f32; d.len()], vec![0.0; d.c], vec![0.0; d.c]);
        fused.backward(
            Backward::new(
                d.tensor(&x).unwrap(),
                d.tensor(&dy).unwrap(),
                d.tensor_mut(&mut dx).unwrap(),
                &mean,
                &var,
                None,
                1e-5,
                GradMode::Fixed,
                &mut gw,
                &mut gb,
            )
            .unwrap(),
        );
        assert!(dx.iter().all(|v| v.is_finite()), "{layout}: fixed dx");
    }
}

/// Every level's half-precision loads and stores are exact widening and one
/// correct rounding: half data compute in `f32` lanes
/// (`bn_impls::fused::simd::prec`), so `y = (x − 0)·a + b` through the run
/// kernel equals `Element::from_f64` (itself checked at every midpoint in
/// `element.rs`) of the `f32` fused multiply-add, on values that land on,
/// just above and just below rounding ties, on subnormals, near the largest
/// finite value (and past it: infinity), and on NaN and infinities.
fn check_half_rounding<T: Lane>(from_bits: fn(u16) -> T) {
    // Every bit pattern of the type as input (NaNs and infinities included).
    let x: Vec<T> = (0..=u16::MAX).map(from_bits).collect();
    // 1 + 2^-9 (bf16) / 2^-12 (f16) makes exact midpoints; the 2^-40 nudges
    // decide them; a large `a` overflows to infinity; a tiny one underflows.
    for &(a, b) in &[
        (1.0, 0.0),
        (1.0 + 2f64.powi(-9), 0.0),
        (1.0 + 2f64.powi(-12), 0.0),
        (1.0 + 2f64.powi(-9), 2f64.powi(-40)),
        (1.0 - 2f64.powi(-12), -(2f64.powi(-40))),
        (3.0, 0.5),
        (2f64.powi(-20), 0.0),
        (1e30, 0.0),
    ] {
        let want: Vec<u64> = x
            .iter()
            .map(|v| {
                let y = (v.as_f64() as f32).mul_add(a as f32, b as f32);
                T::from_f64(y as f64).as_f64().to_bits()
            })
            .collect();
        for lv in Level::available() {
            let mut y = vec![T::zero(); x.len()];
            simd::run_affine(lv, &x, &mut y, 0.0, a, b);
            let got = bits(&y);
            let bad = (0..x.len()).find(|&i| {
                got[i] != want[i] && !(y[i].is_nan() && f64::from_bits(want[i]).is_nan())
            });
            assert!(
                bad.is_none(),
                "{} {} a = {a} b = {b}: element {:?}",
                lv.name(),
                T::DTYPE,
                bad.map(|i| (x[i], y[i], f64::from_bits(want[i])))
            );
        }
    }
}

#[test]
fn half_conversions_round_once_at_every_level() {
    check_half_rounding(half::bf16::from_bits);
    check_half_rounding(half::f16::from_bits);
}

/// `bf16`/`f16` data compute their element-wise passes in `f32` lanes; at
/// the edges of `f32`'s range they must keep `f64` lanes (`dx`'s
/// `kx ~ w/σ³` underflows `f32` for data of magnitude 1e30, and flushing it
/// to 0 lost every digit of `grad_input`). `fused` stays within one ulp of
/// the half type of `welford`'s outputs, relative to the tensor's largest.
fn halves_at_magnitude<T: Element>(scale: f64) {
    let [welford, fused] = ["welford", "fused"].map(|n| registry::by_name(n).unwrap());
    // Runs of 100, and of 320 (half data's train statistics then sum in
    // `f32` blocks, `runs::sums_narrow`).
    for (shape, layout) in [[16, 3, 10, 10], [4, 3, 16, 20]]
        .into_iter()
        .flat_map(|s| Layout::ALL.map(|l| (s, l)))
    {
        let d = dims(&shape, layout);
        let mut rng = Rng::new(5);
        let x: Vec<T> = common::data(&mut rng, d.len(), 3.0 * scale, scale);
        let dy: Vec<T> = common::data(&mut rng, d.len(), 0.0, 1.0);
        let (want, got) = (run_all(welford, d, &x, &dy), run_all(fused, d, &x, &dy));
        let pairs = [
            ("y", &got.y, &want.y),
            ("eval y", &got.y_eval, &want.y_eval),
            ("dx", &got.dx, &want.dx),
            ("fixed dx", &got.dx_fixed, &want.dx_fixed),
        ];
        for (name, g, w) in pairs {
            let what = format!("{shape:?} {layout} magnitude {scale:e} {name}");
            assert_within_one_ulp(g, w, &what);
        }
    }
}

#[test]
fn half_types_keep_their_accuracy_at_extreme_magnitudes() {
    for scale in [1e-30, 1e-15, 1.0, 1e15, 1e30] {
        halves_at_magnitude::<half::bf16>(scale);
    }
    for scale in [1e-3, 1.0, 100.0] {
        halves_at_magnitude::<half::f16>(scale);
    }
}

/// Bits, with every NaN as one value: which NaN an operation returns
/// (sign, payload) follows its operand order, which the compiler may swap
/// in a commutative operation; IEEE 754 leaves it unspecified.
fn nan_as_one(v: &[f64]) -> Vec<u64> {
    v.iter()
        .map(|x| if x.is_nan() { f64::NAN } else { *x }.to_bits())
        .collect()
}

/// Per-channel sums for [`simd::train_stats`] and [`simd::grad_coeffs`]:
/// plain, zero, tiny, subnormal, huge, infinite and NaN, with either sign.
const SUMS: &[[f64; 3]] = &[
    [0.0, 0.0, 0.0],
    [1.5, 10.0, -0.25],
    [-3.0, 7.0, 2.0],
    [1e-300, 1e-290, 1e-301],
    [5e-324, 1e-310, -5e-324],
    [1e150, 1e300, 1e149],
    [0.0, f64::INFINITY, 1.0],
    [f64::INFINITY, f64::INFINITY, -1.0],
    [f64::NAN, 1.0, 0.5],
    [1.0, f64::NAN, f64::NAN],
    [-0.0, 3.0, -0.0],
];

/// Weights, biases and shifts for the same tests (zero, negative, huge, NaN).
const PARAMS: &[f64] = &[1.0, -2.0, 0.0, 0.75, 1e200, -0.0, f64::NAN, 3e-310];

/// `[Σd, Σd²]` of `c` channels of `n` values: [`SUMS`], then random sums
/// that do not cancel.
fn train_sums(c: usize, n: usize) -> [Vec<f64>; 2] {
    let mut rng = Rng::new(c as u64);
    let mut s = [Vec::new(), Vec::new()];
    for i in 0..c {
        let [s1, s2] = match SUMS.get(i) {
            Some(v) => [v[0], v[1]],
            None => {
                let s1 = 100.0 * (rng.unit() - 0.5);
                [s1, s1 * s1 / n as f64 + 1000.0 * rng.unit()]
            }
        };
        s[0].push(s1);
        s[1].push(s2);
    }
    s
}

/// Train's per-channel statistics and coefficients at every level are the
/// bits of the scalar definitions (`coeffs::channel`, `problem::inv_std`,
/// `coeffs::norm`), over every tail length; a channel whose one-read sums
/// cancel makes the call ask for the second pass.
#[test]
fn per_channel_train_statistics_equal_the_scalar_definition_at_every_level() {
    use bn_impls::fused::{coeffs, simd::per_channel::TrainSums};
    let (n, growth) = (1000, coeffs::max_growth::<f32>(f64::MANTISSA_DIGITS));
    let pick = |v: &[f64], i: usize, s: usize| v[(i * 7 + s) % v.len()];
    for lv in Level::available() {
        for c in lengths().filter(|&c| c > 0) {
            for (eps, cancel) in [(0.0, false), (1e-5, false), (1e-5, true)] {
                let mut s = train_sums(c, n);
                if cancel {
                    // Mean 1000, M2 1: Σd²/M2 far beyond the f32 threshold.
                    (s[0][c / 2], s[1][c / 2]) = (1000.0 * 1000.0, 1000.0 * 1e6 + 1.0);
                }
                let [k, w, b] =
                    [0, 1, 2].map(|j| (0..c).map(|i| pick(PARAMS, i, j)).collect::<Vec<_>>());
                let ts = TrainSums {
                    n,
                    growth,
                    eps,
                    shift: &k,
                    sums: [&s[0], &s[1]],
                    weight: &w,
                    bias: &b,
                };
                let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
                let got = simd::train_stats(lv, &ts, &mut mean, &mut var);
                let what = format!("{} c = {c} eps = {eps}", lv.name());
                let one_read =
                    (0..c).all(|i| coeffs::channel(n, k[i], [s[0][i], s[1][i]], growth).is_ok());
                assert_eq!(got.is_some(), one_read, "second pass asked, {what}");
                let Some([a, cc, sd]) = got else { continue };
                for i in 0..c {
                    let st = coeffs::accept(n, k[i], [s[0][i], s[1][i]]);
                    let v = st.m2 / n as f64;
                    let [wa, wc] =
                        coeffs::norm(st.mean, bn_impls::problem::inv_std(v, eps), w[i], b[i]);
                    let want = [wa, wc, (v + eps).sqrt(), st.shift + st.mean, v];
                    let have = [a[i], cc[i], sd[i], mean[i], var[i]];
                    assert_eq!(nan_as_one(&have), nan_as_one(&want), "channel {i}, {what}");
                }
            }
        }
    }
}

/// Backward's per-channel coefficients and parameter gradients at every
/// level are the bits of `coeffs::grad`, batch and fixed statistics.
#[test]
fn per_channel_grad_coefficients_equal_the_scalar_definition_at_every_level() {
    use bn_impls::fused::{coeffs, simd::per_channel::GradSums};
    let pick = |v: &[f64], i: usize, s: usize| v[(i * 5 + s) % v.len()];
    for lv in Level::available() {
        for c in lengths().filter(|&c| c > 0) {
            for mode in [GradMode::Batch, GradMode::Fixed] {
                let s: [Vec<f64>; 3] = std::array::from_fn(|j| {
                    (0..c).map(|i| SUMS[(i + j) % SUMS.len()][j]).collect()
                });
                let [inv, w] =
                    [0, 1].map(|j| (0..c).map(|i| pick(PARAMS, i, j)).collect::<Vec<_>>());
                let gs = GradSums {
                    mode,
                    m: 1000,
                    inv: &inv,
                    weight: &w,
                    sums: s.each_ref().map(|v| &v[..]),
                };
                let (mut gw, mut gb) = (vec![0.0; c], vec![0.0; c]);
                let [kd, kx, kc] = simd::grad_coeffs(lv, &gs, &mut gw, &mut gb);
                for i in 0..c {
                    let g = coeffs::grad(mode, 1000, inv[i], w[i], [s[0][i], s[1][i], s[2][i]]);
                    let want = [g.kd, g.kx, g.kc, g.weight, g.bias];
                    let have = [kd[i], kx[i], kc[i], gw[i], gb[i]];
                    let what = format!("{} c = {c} {mode:?} channel {i}", lv.name());
                    assert_eq!(nan_as_one(&have), nan_as_one(&want), "{what}");
                }
            }
        }
    }
}

/// Channels-last eval folds the shift into the bias while every channel's
/// `|K|/σ` is within `coeffs::fold_ratio` (half data in `f32` lanes: `2^10`
/// for `bf16`, `2^7` for `f16`), and backward into `dx`'s constant while it
/// is within 16 (`coeffs::folds_dx`; where `dx` cancels, the accuracy
/// sweep's tests hold it). Below, at and past those bounds, `fused`'s eval `y` and `dx`
/// stay within one ulp of the half type (at the tensor's largest `|y|`,
/// `|dx|`) of `welford`'s, on (N, C) and 4-D channels-last data.
fn eval_at_offset<T: Element>(offset: f64) {
    let [welford, fused] = ["welford", "fused"].map(|n| registry::by_name(n).unwrap());
    let shapes: [(&[usize], Layout); 2] = [
        (&[256, 64], Layout::Contiguous),
        (&[8, 16, 4, 4], Layout::ChannelsLast),
    ];
    for (shape, layout) in shapes {
        let d = dims(shape, layout);
        let mut rng = Rng::new(9);
        let spread: Vec<T> = common::data(&mut rng, d.len(), offset, 1.0);
        // Nearly constant channels: every 29th value two of `T`'s ulps
        // above the offset, so `|K|/σ ≈ 2.7/ε`: 2^11.5 for `f16` (past its
        // fold bound, 2^7), 2^8.5 for `bf16` (within its 2^10). With this
        // `dy`, uncorrelated with `x`, a fold past the bound would still
        // stay within the ulp (checked): the test bounds the error on both
        // sides of the bound, not the bound itself.
        let step = 2.0 * offset * T::DTYPE.epsilon();
        let outliers: Vec<T> = (0..d.len())
            .map(|i| T::from_f64(offset + if i % 29 == 0 { step } else { 0.0 }))
            .collect();
        let dy: Vec<T> = common::data(&mut rng, d.len(), 0.0, 1.0);
        for (name, x) in [("spread", &spread), ("outliers", &outliers)] {
            let (want, got) = (run_all(welford, d, x, &dy), run_all(fused, d, x, &dy));
            let what = format!("{shape:?} offset {offset} {name} eval y");
            assert_within_one_ulp(&got.y_eval, &want.y_eval, &what);
            let what = format!("{shape:?} offset {offset} {name} dx");
            assert_within_one_ulp(&got.dx, &want.dx, &what);
        }
    }
}

/// Every `got` within one ulp of `T` (at the largest `|want|`) of `want`.
fn assert_within_one_ulp<T: Element>(got: &[T], want: &[T], what: &str) {
    let max = want.iter().fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
    let worst =
        (got.iter().zip(want)).fold(0.0f64, |m, (a, b)| m.max((a.as_f64() - b.as_f64()).abs()));
    assert!(
        worst <= T::DTYPE.epsilon() * max,
        "{} {what}: {worst:e} > one ulp of {max:e}",
        T::DTYPE
    );
}

#[test]
fn half_eval_keeps_its_accuracy_where_the_shift_is_folded_and_past_it() {
    for offset in [0.0, 3.0, 50.0, 300.0, 2000.0, 30000.0] {
        eval_at_offset::<half::bf16>(offset);
    }
    for offset in [0.0, 3.0, 20.0, 60.0, 300.0, 2000.0] {
        eval_at_offset::<half::f16>(offset);
    }
}
