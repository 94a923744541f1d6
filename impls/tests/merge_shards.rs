//! `parallel::merge_shards` (Chan, Golub & LeVeque's pairwise merge): the
//! statistics of arbitrary, unequal shards merged equal the statistics of
//! the whole batch — what a synchronized (multi-device) batch norm needs.

mod common;

use bn_impls::parallel::merge_shards;
use bn_impls::Moments;
use common::Rng;

fn exact(v: &[f64]) -> (f64, f64) {
    // Two-pass in f64 over values of modest size: accurate to ~1e-15 here.
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>())
}

#[test]
fn unequal_shards_merge_to_the_whole() {
    let mut rng = Rng::new(42);
    for trial in 0..50 {
        let len = 1 + (rng.next_u64() % 5000) as usize;
        let offset = [0.0, 1e3, 1e6][trial % 3];
        let v: Vec<f64> = (0..len).map(|_| offset + 3.0 * rng.unit()).collect();
        // Random cut points, including empty shards and single-value shards.
        let mut cuts: Vec<usize> = (0..(rng.next_u64() % 9) as usize)
            .map(|_| (rng.next_u64() % (len as u64 + 1)) as usize)
            .collect();
        cuts.extend([0, len]);
        cuts.sort_unstable();
        let shards: Vec<Moments> = cuts
            .windows(2)
            .map(|w| Moments::of(v[w[0]..w[1]].iter().copied()))
            .collect();
        let merged = merge_shards(&shards);
        let (mean, m2) = exact(&v);
        assert_eq!(merged.count, len as u64, "trial {trial}");
        assert!(
            (merged.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0),
            "trial {trial}"
        );
        assert!(
            (merged.m2 - m2).abs() <= 1e-9 * m2.max(1e-300),
            "trial {trial}: {} vs {m2}",
            merged.m2
        );
    }
}

#[test]
fn empty_and_single_shards() {
    assert_eq!(merge_shards(&[]), Moments::default());
    let one = Moments::of([2.5]);
    assert_eq!(
        merge_shards(&[Moments::default(), one, Moments::default()]),
        one
    );
    let two = merge_shards(&[Moments::of([1.0]), Moments::of([3.0])]);
    assert_eq!((two.count, two.mean, two.m2), (2, 2.0, 2.0));
}
