//! `parallel` and `fused` each give bitwise identical results in rayon pools
//! of 1, 2, 3 and 4 threads (their chunking never depends on the thread
//! count), and `fused` the same bits with and without its contiguous
//! channel tasks ([`TaskRule`]). The two are independent implementations
//! and are not compared with each other here (`agreement.rs` compares both
//! with `welford`).

mod common;

use bn_impls::fused::task_rule::{with_task_rule, TaskRule};
use bn_impls::{registry, Element, Layout};
use common::{bits, bits64, data, dims, run_all, Outputs, Rng};

/// Shapes: odd tails everywhere; few channels with several statistics groups
/// per channel; C = 10 (per-channel tasks at 1–2 threads, not at 3–4, under
/// [`TaskRule::Shape`]; the
/// second one and [6, 10, 24, 25] have runs long enough for `fused`'s,
/// the latter just above its 512-value minimum); 1-D; and a 1-D shape of
/// four channels-last reduction chunks (`fused` reduces them in waves of
/// two per thread: two waves at 1 thread, one at 2–4); and short runs of
/// a large batch, whose reduction items hold 6, 3, 2 and 2 channels at 1,
/// 2, 3 and 4 threads (`fused`'s `item_channels`).
const SHAPES: &[&[usize]] = &[
    &[3, 5, 7, 3],
    &[1100, 6, 8, 8],
    &[4, 10, 32, 33],
    &[50, 3, 37, 41],
    &[9, 10, 23, 19],
    &[6, 10, 24, 25],
    &[8, 24, 17, 5, 3],
    &[4099, 13],
    &[2048, 256],
];

fn same<T: Element>(a: &Outputs<T>, b: &Outputs<T>, what: &str) {
    assert_eq!(bits(&a.y), bits(&b.y), "{what}: y");
    assert_eq!(bits64(&a.mean), bits64(&b.mean), "{what}: mean");
    assert_eq!(bits64(&a.var), bits64(&b.var), "{what}: var");
    assert_eq!(bits(&a.y_eval), bits(&b.y_eval), "{what}: eval y");
    assert_eq!(bits(&a.dx), bits(&b.dx), "{what}: dx");
    assert_eq!(bits64(&a.gw), bits64(&b.gw), "{what}: grad_weight");
    assert_eq!(bits64(&a.gb), bits64(&b.gb), "{what}: grad_bias");
    assert_eq!(
        bits(&a.dx_fixed),
        bits(&b.dx_fixed),
        "{what}: fixed-mode dx"
    );
}

/// The pools (and, for `fused`, the channel-task rules) each shape runs
/// in. `fused` runs 1–4 threads with channel tasks wherever the shape allows
/// them, whatever this machine's rule ([`TaskRule::Machine`] takes them on
/// few machines for these small shapes), then without them and by this
/// machine's rule at 1 and 2 threads.
fn runs(name: &str) -> Vec<(usize, TaskRule)> {
    if name != "fused" {
        return (1..=4).map(|t| (t, TaskRule::Machine)).collect();
    }
    let shape_rule = (1..=4).map(|t| (t, TaskRule::Shape));
    let others = [TaskRule::Never, TaskRule::Machine]
        .into_iter()
        .flat_map(|r| [(1, r), (2, r)]);
    shape_rule.chain(others).collect()
}

fn check<T: Element>() {
    check_shapes::<T>(SHAPES);
}

fn check_shapes<T: Element>(shapes: &[&[usize]]) {
    for (si, shape) in shapes.iter().enumerate() {
        for layout in Layout::ALL {
            let d = dims(shape, layout);
            let mut rng = Rng::new(si as u64 + 11);
            let x: Vec<T> = data(&mut rng, d.len(), 3.0, 2.0);
            let dy: Vec<T> = data(&mut rng, d.len(), 0.1, 1.0);
            for name in ["parallel", "fused"] {
                let mut reference = None;
                let imp = registry::by_name(name).unwrap();
                for (threads, rule) in runs(name) {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let out =
                        pool.install(|| with_task_rule(rule, || run_all::<T>(imp, d, &x, &dy)));
                    let what = format!(
                        "{name} {shape:?} {layout} {} {threads} threads, {rule:?}",
                        T::DTYPE
                    );
                    match &reference {
                        None => reference = Some(out),
                        Some(r) => same(r, &out, &what),
                    }
                }
            }
        }
    }
}

#[test]
fn bitwise_identical_across_thread_counts_f32() {
    check::<f32>();
}

#[test]
fn bitwise_identical_across_thread_counts_f64() {
    check::<f64>();
}

#[test]
fn bitwise_identical_across_thread_counts_half_types() {
    check::<half::bf16>();
    check::<half::f16>();
}

/// `fused` gives tasks whole channels only while `C ≥ 4·threads` and a
/// channel's arrays fit 2 MiB: this `f32` shape (2 MiB of `x` and `dy` per
/// channel, C = 12) runs channel tasks at 1–3 threads and the
/// address-ordered schedule at 4 under [`TaskRule::Shape`], and neither
/// under [`TaskRule::Never`] — the same bits either way.
#[test]
fn channel_tasks_and_address_order_give_the_same_bits() {
    check_shapes::<f32>(&[&[16, 12, 16384]]);
}
