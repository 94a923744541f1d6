//! Runtime CPU-feature dispatch of the inner loops (the `multiversion` crate).
//!
//! The statistics' lane reductions (shared with `parallel`) are explicit
//! AVX-512 ([`crate::parallel::avx512`]); the other inner loops are here.
//! Each function here is cloned for AVX-512 (F/VL/DQ) and AVX2+FMA, plus the
//! portable baseline; the first call detects the CPU and later calls are an
//! atomic load and a direct call. The bodies are the `#[inline(always)]`
//! loops of [`crate::parallel::lanes`], so every clone computes the same
//! bits (no FMA contraction, same lane order) — only faster.

use crate::element::Element;
use crate::moments::Moments;
use crate::parallel::engine::Backend;
use crate::parallel::lanes::{self, RowScratch};
use crate::parallel::plan::RowPlan;
use multiversion::multiversion;

/// The dispatched inner loops (what `fused` uses).
pub struct Simd;

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn rows_moments<T: Element>(
    x: &[T],
    c: usize,
    k: &[f64],
    tile_rows: usize,
    w: &mut RowScratch,
    out: &mut [Moments],
) {
    lanes::rows_moments(x, c, k, tile_rows, w, out)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn run_affine<T: Element>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
    lanes::run_affine(x, y, k, a, b)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn rows_affine<T: Element>(x: &[T], y: &mut [T], c: usize, k: &[f64], a: &[f64], b: &[f64]) {
    lanes::rows_affine(x, y, c, k, a, b)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn rows_scale<T: Element>(x: &[T], y: &mut [T], c: usize, a: &[f64], b: &[f64]) {
    lanes::rows_scale(x, y, c, a, b)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn rows_grad_sums<T: Element>(x: &[T], dy: &[T], c: usize, mean: &[f64], st: [&mut [f64]; 3]) {
    lanes::rows_grad_sums(x, dy, c, mean, st)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn run_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], mean: f64, k: [f64; 3]) {
    lanes::run_dx(x, dy, dx, mean, k)
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
fn rows_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], c: usize, k: [&[f64]; 4]) {
    lanes::rows_dx(x, dy, dx, c, k)
}

impl Backend for Simd {
    fn rows_moments<T: Element>(
        x: &[T],
        plan: &RowPlan,
        k: &[f64],
        w: &mut RowScratch,
        out: &mut [Moments],
    ) {
        rows_moments(x, plan.c, k, plan.tile_rows, w, out)
    }
    fn run_affine<T: Element>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
        run_affine(x, y, k, a, b)
    }
    fn rows_affine<T: Element>(x: &[T], y: &mut [T], c: usize, k: [&[f64]; 3]) {
        rows_affine(x, y, c, k[0], k[1], k[2])
    }
    fn rows_scale<T: Element>(x: &[T], y: &mut [T], c: usize, k: [&[f64]; 2]) {
        rows_scale(x, y, c, k[0], k[1])
    }
    fn rows_grad_sums<T: Element>(x: &[T], dy: &[T], c: usize, mean: &[f64], st: [&mut [f64]; 3]) {
        rows_grad_sums(x, dy, c, mean, st)
    }
    fn run_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], mean: f64, k: [f64; 3]) {
        run_dx(x, dy, dx, mean, k)
    }
    fn rows_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], c: usize, k: [&[f64]; 4]) {
        rows_dx(x, dy, dx, c, k)
    }
}
