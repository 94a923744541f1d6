//! `parallel` and `fused` agree with `welford` (the single-threaded, stable
//! reference implementation) on random and ill-conditioned inputs, on tiny
//! shapes (N·S = 2, C = 1), on many channels (C = 10 000) and on a constant
//! channel far from 0.

mod common;

use bn_impls::fused::task_rule::{with_task_rule, TaskRule};
use bn_impls::{registry, Element, Layout};
use common::{data, dims, run_all, Outputs, Rng};

/// `|a − b| ≤ tol·max(1, |b|)` element-wise.
fn close<T: Element>(a: &[T], b: &[T], tol: f64, what: &str) {
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        let (p, q) = (p.as_f64(), q.as_f64());
        assert!(
            (p - q).abs() <= tol * q.abs().max(1.0),
            "{what}[{i}]: {p} vs welford {q}"
        );
    }
}

fn agree<T: Element>(got: &Outputs<T>, want: &Outputs<T>, what: &str) {
    // Element outputs are computed in f64 and rounded once (a few ulps of T),
    // from statistics that differ from welford's by f64 rounding (~1e-15
    // relative, different summation order): a few ulps plus 1e-13.
    let t = 4.0 * T::DTYPE.epsilon() + 1e-13;
    close(&got.y, &want.y, t, &format!("{what} y"));
    close(&got.y_eval, &want.y_eval, t, &format!("{what} eval y"));
    close(&got.dx, &want.dx, t, &format!("{what} dx"));
    close(
        &got.dx_fixed,
        &want.dx_fixed,
        t,
        &format!("{what} fixed dx"),
    );
    // Statistics and parameter gradients are f64 sums in both, except
    // `fused`'s train statistics and backward sums of contiguous half data
    // in runs of 256 or more: `f32` blocks, within 2⁻¹⁹ of the terms'
    // magnitudes (`runs::sums_narrow`, `grad_narrow`; docs/ACCURACY.md),
    // some 2⁻¹⁷ of these data; `grad_weight` (about the saved mean)
    // inherits that, and `grad_bias` is `Σdy` from such blocks.
    let narrow = T::DTYPE.mantissa_bits() < 24;
    let (tm, tv, tw, tb) = if narrow {
        let t = 2f64.powi(-16);
        (t, t, t, t)
    } else {
        (1e-12, 1e-10, 1e-9, 1e-9)
    };
    close(&got.mean, &want.mean, tm, &format!("{what} mean"));
    close(&got.var, &want.var, tv, &format!("{what} var"));
    close(&got.gw, &want.gw, tw, &format!("{what} grad_weight"));
    close(&got.gb, &want.gb, tb, &format!("{what} grad_bias"));
}

fn check<T: Element>(shape: &[usize], offset: f64, spread: f64, seed: u64) {
    let welford = registry::by_name("welford").unwrap();
    for layout in Layout::ALL {
        let d = dims(shape, layout);
        let mut rng = Rng::new(seed);
        let x: Vec<T> = data(&mut rng, d.len(), offset, spread);
        let dy: Vec<T> = data(&mut rng, d.len(), 0.0, 1.0);
        let want = run_all::<T>(welford, d, &x, &dy);
        let parallel = registry::by_name("parallel").unwrap();
        let got = run_all::<T>(parallel, d, &x, &dy);
        agree(
            &got,
            &want,
            &format!("parallel {shape:?} {layout} {}", T::DTYPE),
        );
        let fused = registry::by_name("fused").unwrap();
        for rule in BOTH_SCHEDULES {
            let got = with_task_rule(rule, || run_all::<T>(fused, d, &x, &dy));
            let what = format!("fused {shape:?} {layout} {} {rule:?}", T::DTYPE);
            agree(&got, &want, &what);
        }
    }
}

#[test]
fn random_inputs_every_dtype() {
    for (i, shape) in [
        &[7, 5, 9, 11][..],
        &[33, 3, 45, 47],
        &[16, 70, 13],
        &[1000, 17],
    ]
    .iter()
    .enumerate()
    {
        check::<f32>(shape, 0.5, 2.0, i as u64);
        check::<f64>(shape, 0.5, 2.0, i as u64);
        check::<half::bf16>(shape, 0.5, 2.0, i as u64);
        check::<half::f16>(shape, 0.5, 2.0, i as u64);
    }
}

#[test]
fn ill_conditioned_offsets() {
    // Unit spread on a large common offset: what the shifted accumulation is for.
    check::<f32>(&[20, 4, 31, 29], 1e4, 1.0, 7);
    check::<f64>(&[20, 4, 31, 29], 1e8, 1.0, 8);
    check::<f64>(&[600, 5], 1e6, 1.0, 9);
}

#[test]
fn tiny_shapes() {
    for shape in [&[2, 1][..], &[1, 1, 2], &[2, 1, 1, 1], &[2, 3], &[1, 2, 2]] {
        check::<f32>(shape, 1.0, 1.0, 3);
        check::<f64>(shape, 1.0, 1.0, 3);
        check::<half::bf16>(shape, 1.0, 1.0, 3);
        check::<half::f16>(shape, 1.0, 1.0, 3);
    }
}

/// Outputs of 24 MiB and more are written with non-temporal stores by
/// `fused` (`fused::plan::STREAM_MIN_BYTES`; contiguous runs of at least
/// `STREAM_MIN_RUN`): the same values as below the threshold, in both
/// layouts, with channel counts whose rows do not fill whole registers.
#[test]
fn outputs_past_the_streaming_threshold() {
    use bn_impls::fused::plan::{STREAM_MIN_BYTES, STREAM_MIN_RUN};
    let shape = [8, 49, 128, 128];
    assert!(shape.iter().product::<usize>() * 4 >= STREAM_MIN_BYTES);
    const { assert!(128 * 128 >= STREAM_MIN_RUN) };
    for layout in Layout::ALL {
        fused_agrees_with_welford(&shape, layout, 17, 0.0);
    }
}

/// `fused` against `welford` on one `f32` shape: `x` about 3 (scale 2),
/// `dy` about `dy_mean` (scale 1), drawn from `seed`.
fn fused_agrees_with_welford(shape: &[usize], layout: Layout, seed: u64, dy_mean: f64) {
    let [welford, fused] = ["welford", "fused"].map(|n| registry::by_name(n).unwrap());
    let d = dims(shape, layout);
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = data(&mut rng, d.len(), 3.0, 2.0);
    let dy: Vec<f32> = data(&mut rng, d.len(), dy_mean, 1.0);
    let want = run_all::<f32>(welford, d, &x, &dy);
    for rule in BOTH_SCHEDULES {
        let got = with_task_rule(rule, || run_all::<f32>(fused, d, &x, &dy));
        agree(
            &got,
            &want,
            &format!("fused {shape:?} {layout} f32 {rule:?}"),
        );
    }
}

/// `fused` with channel tasks wherever the shape allows them, and without:
/// this machine's rule ([`TaskRule::Machine`]) takes one of the two.
const BOTH_SCHEDULES: [TaskRule; 2] = [TaskRule::Shape, TaskRule::Never];

/// Channels-last reductions over rows of more than 64 channels (read in
/// column blocks) prefetch from 2 MiB of input
/// (`fused::plan::prefetch_rows`), below the 12 MiB of address-ordered
/// reads: the same values as `welford`, with a row length that leaves
/// columns to the blocks' remainder.
#[test]
fn strided_rows_past_the_prefetch_threshold() {
    use bn_impls::fused::plan::{prefetch_reads, prefetch_rows};
    let shape = [17, 520, 8, 8];
    let len = shape.iter().product::<usize>();
    assert!(prefetch_rows::<f32>(len, 520) && !prefetch_reads::<f32>(len));
    assert!(
        !prefetch_rows::<f32>(len, 64),
        "64-lane rows are read in address order"
    );
    fused_agrees_with_welford(&shape, Layout::ChannelsLast, 29, 0.5);
}

#[test]
fn ten_thousand_channels() {
    check::<f32>(&[4, 10_000], 0.0, 1.0, 5);
    check::<f64>(&[3, 10_000, 3], 0.0, 1.0, 6);
}

/// A constant channel far from 0 (`x = 1e8`, zero variance) normalizes to
/// its bias exactly, in both layouts, also for a bias off the grid of
/// `1e8·a`: `parallel` and `fused` fold the shift into the bias for
/// channels-last `f32` only where that fold is exact enough (both gave
/// 0.29999924 for 0.3, 25 ulps off, before).
#[test]
fn constant_channel_far_from_zero_gives_its_bias() {
    for (name, layout) in ["welford", "parallel", "fused"]
        .into_iter()
        .flat_map(|n| Layout::ALL.map(|l| (n, l)))
    {
        let k = bn_impls::kernel::<f32>(registry::by_name(name).unwrap()).unwrap();
        let d = dims(&[4, 2, 3, 3], layout);
        let x = vec![1e8f32; d.len()];
        let mut y = vec![0f32; d.len()];
        let (w, b) = ([0.5, 1.5], [0.3, -0.7]);
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        k.forward_train(
            bn_impls::TrainForward::new(
                d.tensor(&x).unwrap(),
                d.tensor_mut(&mut y).unwrap(),
                bn_impls::Affine {
                    weight: Some(&w),
                    bias: Some(&b),
                },
                1e-5,
                &mut m,
                &mut v,
            )
            .unwrap(),
        );
        for (c, &bc) in b.iter().enumerate() {
            let want = bc as f32;
            for i in d.channel_offsets(c) {
                assert_eq!(y[i], want, "{name} {layout} channel {c}");
            }
        }
    }
}
