//! Per-thread reuse of the `f64` scratch a call needs (partial sums,
//! per-lane coefficients), so a small operation repeated in a loop does not
//! hand its buffers back to the allocator each time.
//!
//! Why: glibc's `free` returns the top of the heap to the kernel once more
//! than its trim threshold (128 KiB by default) is free there, and the next
//! call's buffers then fault their pages in again. `fused`'s channels-last
//! backward of 256×1024 `f32` allocated a few hundred KiB per call and took
//! 225–236 µs, against 198 µs with trimming turned off
//! (`GLIBC_TUNABLES=glibc.malloc.trim_threshold=…`; 2-core Xeon VM, tight
//! loop of calls, median). A pooled buffer lives in its thread's pool
//! between calls; the pool holds at most 16 buffers of at most 2^17 values
//! (1 MiB) each, so it never hoards a large tensor's worth.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers a thread keeps between calls.
const MAX_BUFFERS: usize = 16;
/// Largest buffer (values) returned to the pool: 1 MiB of `f64`.
const MAX_POOLED: usize = 1 << 17;

thread_local! {
    static POOL: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// A zeroed `f64` buffer from this thread's pool (or freshly allocated),
/// returned to the pool of the thread that drops it.
pub struct Scratch(Vec<f64>);

impl Scratch {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Scratch {
        let reused = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let at = p.iter().position(|v| v.capacity() >= len)?;
            Some(p.swap_remove(at))
        });
        let mut v = reused.unwrap_or_else(|| Vec::with_capacity(len));
        v.clear();
        v.resize(len, 0.0);
        Scratch(v)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() == 0 || v.capacity() > MAX_POOLED {
            return;
        }
        // `try_with`: a buffer dropped while the thread's locals are torn
        // down is simply freed.
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < MAX_BUFFERS {
                    p.push(v);
                }
            }
        });
    }
}

impl Deref for Scratch {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    /// A reused buffer comes back zeroed and of the asked length, however
    /// it was left; buffers are reused (same allocation) on one thread.
    #[test]
    fn reused_buffers_are_zeroed_and_sized() {
        let mut a = Scratch::zeroed(100);
        a.iter_mut().for_each(|v| *v = 7.0);
        let ptr = a.as_ptr();
        drop(a);
        let b = Scratch::zeroed(60);
        assert_eq!(b.len(), 60);
        assert!(b.iter().all(|&v| v == 0.0));
        assert_eq!(b.as_ptr(), ptr, "the dropped buffer is reused");
        let c = Scratch::zeroed(1000);
        assert_eq!(c.len(), 1000);
        assert!(c.iter().all(|&v| v == 0.0));
    }
}
