//! Cross-implementation agreement: every registered implementation against
//! the oracle on seeded random inputs, over a grid of shapes (2-D to 5-D),
//! layouts, dtypes, modes and configurations, and on ill-conditioned data.
//!
//! Errors are measured in units of `eps_dtype · max(1, max|oracle|)` per
//! output (the unit of the bn-case/1 tolerance rule, which allows 16).

mod common;

use bn_harness::data::Rng;
use bn_harness::oracle::metrics::ErrorStats;
use bn_impls::{DType, Implementation, Layout};
use common::{
    batch, errors, grad_output, stable_bound, AnyBn, Params, Scenario, OUTPUTS, STABLE_UNITS_F32,
    UNSTABLE_UNITS,
};

/// The grid's shapes: 2-D to 5-D, moderate sizes (this suite must stay fast).
fn shapes() -> Vec<Vec<usize>> {
    vec![
        vec![12, 3],
        vec![4, 3, 5],
        vec![3, 2, 3, 4],
        vec![2, 3, 2, 3, 2],
    ]
}

/// The grid: shapes × layouts × dtypes × affine × tracking × momentum.
fn grid() -> Vec<Scenario> {
    let mut out = Vec::new();
    for shape in shapes() {
        for layout in Layout::ALL {
            for dtype in [DType::F32, DType::F64] {
                for affine in [true, false] {
                    for track in [true, false] {
                        for momentum in [Some(0.1), None] {
                            out.push(Scenario {
                                shape: shape.clone(),
                                layout,
                                dtype,
                                affine,
                                track,
                                momentum,
                                eps: 1e-5,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Worst error per output of `imp` over a sequence of steps (`true` =
/// training) on fresh batches from `data`, each step compared with the oracle
/// run from the same module state.
fn run_sequence(
    imp: &dyn Implementation,
    sc: &Scenario,
    seed: u64,
    modes: &[bool],
    offset: f64,
    shift: f64,
    spread: f64,
) -> [ErrorStats; 6] {
    let mut rng = Rng::new(seed);
    let params = Params::random(&mut rng, sc, offset);
    let mut bn = AnyBn::new(sc, &params);
    let mut worst = [ErrorStats::ZERO; 6];
    for &training in modes {
        bn.set_training(training);
        let x = batch(&mut rng, sc, offset, shift, spread);
        let dy = grad_output(&mut rng, sc);
        let (got, want) = bn.step(imp, sc, &x, &dy);
        for (w, e) in worst.iter_mut().zip(errors(&got, &want, sc.dtype)) {
            *w = w.max(e);
        }
    }
    worst
}

/// eval first (initial buffers), three training steps, then eval with the
/// buffers the training produced.
const SEQUENCE: [bool; 5] = [false, true, true, true, false];

fn describe(sc: &Scenario) -> String {
    format!(
        "shape {:?} {} {} affine={} track={} momentum={:?}",
        sc.shape, sc.layout, sc.dtype, sc.affine, sc.track, sc.momentum
    )
}

fn check_within(imp: &dyn Implementation, sc: &Scenario, errs: &[ErrorStats; 6], bound: f64) {
    for (name, e) in OUTPUTS.iter().zip(errs) {
        assert!(
            e.misplaced == 0 && e.scaled <= bound,
            "{} on {}: {name} error {:.3} units (abs {:.3e}, {} misplaced) > bound {bound}",
            imp.info().name,
            describe(sc),
            e.scaled,
            e.abs,
            e.misplaced
        );
    }
}

#[test]
fn every_implementation_agrees_with_the_oracle_over_the_grid() {
    let grid = grid();
    assert_eq!(grid.len(), 4 * 2 * 2 * 2 * 2 * 2);
    for imp in bn_impls::registry::all() {
        for (k, sc) in grid.iter().enumerate() {
            let bound = if imp.info().stable {
                stable_bound(sc.dtype)
            } else {
                UNSTABLE_UNITS
            };
            let errs = run_sequence(*imp, sc, 1000 + k as u64, &SEQUENCE, 0.0, 3.0, 1.0);
            check_within(*imp, sc, &errs, bound);
        }
    }
}

/// Ill-conditioned scenarios: offset 1e4 (f32) / 1e6 (f64), unit spread,
/// per-channel shifts of ±1, both layouts, 256 values per channel.
fn ill_conditioned() -> Vec<(Scenario, f64)> {
    let mut out = Vec::new();
    for (dtype, offset) in [(DType::F32, 1e4), (DType::F64, 1e6)] {
        for layout in Layout::ALL {
            for shape in [vec![256, 3], vec![16, 3, 4, 4]] {
                out.push((Scenario::default_module(&shape, layout, dtype), offset));
            }
        }
    }
    out
}

/// Training twice, then eval with the running statistics.
const ILL_SEQUENCE: [bool; 3] = [true, true, false];

fn ill_worst(imp: &dyn Implementation, dtype: DType) -> [ErrorStats; 6] {
    let mut worst = [ErrorStats::ZERO; 6];
    for (k, (sc, offset)) in ill_conditioned().iter().enumerate() {
        if sc.dtype != dtype {
            continue;
        }
        let errs = run_sequence(imp, sc, 77 + k as u64, &ILL_SEQUENCE, *offset, 1.0, 1.0);
        for (w, e) in worst.iter_mut().zip(errs) {
            *w = w.max(e);
        }
    }
    worst
}

#[test]
fn stable_implementations_stay_within_the_bound_on_ill_conditioned_data() {
    for imp in bn_impls::registry::all().iter().filter(|i| i.info().stable) {
        for (k, (sc, offset)) in ill_conditioned().iter().enumerate() {
            let errs = run_sequence(*imp, sc, 77 + k as u64, &ILL_SEQUENCE, *offset, 1.0, 1.0);
            check_within(*imp, sc, &errs, stable_bound(sc.dtype));
        }
    }
}

/// The bound is meaningful: the textbook formulas in f32 break it by far
/// on offset-1e4 data (if they did not, the ill-conditioned test would
/// prove nothing).
#[test]
fn naive_visibly_breaks_the_stable_bound_at_offset_1e4_in_f32() {
    let naive = bn_impls::registry::by_name("naive").unwrap();
    assert!(!naive.info().stable);
    let worst = ill_worst(naive, DType::F32);
    let y = worst[0].scaled;
    assert!(
        y > 100.0 * STABLE_UNITS_F32,
        "naive's f32 y error at offset 1e4 is only {y:.3} units; the ill-conditioned data is not ill-conditioned"
    );
}

/// Print each implementation's worst errors (scaled units and ULPs):
/// `cargo test -p bn-harness --test agreement -- --ignored --nocapture`.
#[test]
#[ignore]
fn report_errors_against_the_oracle() {
    println!("units = |err| / (eps_dtype * max(1, max|oracle|)) and ulps (element-wise, in the dtype) are");
    println!(
        "maxima over per-step comparisons; abs and max|ref| are separate maxima over all steps."
    );
    for imp in bn_impls::registry::all() {
        for dtype in [DType::F32, DType::F64] {
            let mut grid_worst = [ErrorStats::ZERO; 6];
            for (k, sc) in grid().iter().enumerate() {
                if sc.dtype != dtype {
                    continue;
                }
                let errs = run_sequence(*imp, sc, 1000 + k as u64, &SEQUENCE, 0.0, 3.0, 1.0);
                for (w, e) in grid_worst.iter_mut().zip(errs) {
                    *w = w.max(e);
                }
            }
            let ill = ill_worst(*imp, dtype);
            let offset = if dtype == DType::F32 { "1e4" } else { "1e6" };
            let ill_label = format!("ill-conditioned, offset {offset}");
            for (label, worst) in [("grid (well-conditioned)", grid_worst), (&ill_label, ill)] {
                println!("{} {dtype} {label}:", imp.info().name);
                for (name, e) in OUTPUTS.iter().zip(worst) {
                    println!(
                        "  {name:13} {:>10.3} units  {:>12.3e} ulps  abs {:.3e}  max|ref| {:.3e}",
                        e.scaled, e.ulps, e.abs, e.max_ref
                    );
                }
            }
        }
    }
}
