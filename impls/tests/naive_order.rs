//! `naive` sums each channel in `(n, s)` order whatever the layout: it walks
//! channels-last and `(N, C)` tensors in blocks of channels along rows, and
//! contiguous ones channel by channel. Both layouts of the same logical
//! tensor must therefore give bitwise the same results; a blocking bug
//! (a channel of the block skipped, summed twice or out of order, a tail
//! block past C) shows up here as a bit difference.

mod common;

use bn_impls::{registry, Element, Layout};
use common::{bits, bits64, data, dims, run_all, Outputs, Rng};

/// Channel counts below, at and around the block width (16), with spatial
/// extent (channels-last) and without (`(N, C)`, where both layouts are the
/// same memory, so the permutation is the identity).
const SHAPES: &[&[usize]] = &[
    &[3, 1, 5, 7],
    &[4, 13, 6, 5],
    &[2, 16, 3, 3],
    &[3, 17, 4, 2],
    &[2, 40, 2, 3, 2],
    &[37, 33],
];

/// `v` in `(n, c, s)` order, re-ordered to `(n, s, c)`.
fn to_channels_last<T: Copy>(v: &[T], n: usize, c: usize, s: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for ni in 0..n {
        for si in 0..s {
            for ci in 0..c {
                out.push(v[(ni * c + ci) * s + si]);
            }
        }
    }
    out
}

fn check<T: Element>() {
    let imp = registry::by_name("naive").unwrap();
    for (i, shape) in SHAPES.iter().enumerate() {
        let (n, c) = (shape[0], shape[1]);
        let s: usize = shape[2..].iter().product();
        let mut rng = Rng::new(i as u64 + 101);
        let len = n * c * s;
        let x: Vec<T> = data(&mut rng, len, 5.0, 3.0);
        let dy: Vec<T> = data(&mut rng, len, 0.2, 1.0);
        let contiguous = run_all::<T>(imp, dims(shape, Layout::Contiguous), &x, &dy);
        let last = run_all::<T>(
            imp,
            dims(shape, Layout::ChannelsLast),
            &to_channels_last(&x, n, c, s),
            &to_channels_last(&dy, n, c, s),
        );
        let permuted = |v: &[T]| bits(&to_channels_last(v, n, c, s));
        let what = format!("naive {shape:?} {}", T::DTYPE);
        let Outputs {
            y,
            mean,
            var,
            y_eval,
            dx,
            gw,
            gb,
            dx_fixed,
        } = &contiguous;
        assert_eq!(permuted(y), bits(&last.y), "{what}: y");
        assert_eq!(permuted(y_eval), bits(&last.y_eval), "{what}: eval y");
        assert_eq!(permuted(dx), bits(&last.dx), "{what}: dx");
        assert_eq!(permuted(dx_fixed), bits(&last.dx_fixed), "{what}: fixed dx");
        assert_eq!(bits64(mean), bits64(&last.mean), "{what}: mean");
        assert_eq!(bits64(var), bits64(&last.var), "{what}: var");
        assert_eq!(bits64(gw), bits64(&last.gw), "{what}: grad_weight");
        assert_eq!(bits64(gb), bits64(&last.gb), "{what}: grad_bias");
    }
}

#[test]
fn layouts_agree_bitwise_f32() {
    check::<f32>();
}

#[test]
fn layouts_agree_bitwise_f64() {
    check::<f64>();
}

#[test]
fn layouts_agree_bitwise_half_types() {
    check::<half::bf16>();
    check::<half::f16>();
}
