//! Memory budgets: refuse work whose buffers will not fit before allocating.
//!
//! Allocating more than the machine has ends in `memory allocation of … bytes
//! failed` (an abort, exit 134) or in the OOM killer, after part of a sweep
//! has run. So `bnh bench` and `bnh accuracy` compute the bytes every cell or
//! point needs up front and compare them with a budget: `--max-memory`, or
//! the memory the OS reports available (`MemAvailable` in `/proc/meminfo` on
//! Linux). Where the OS reports nothing the check is skipped and buffers are
//! still allocated fallibly ([`PageAligned::try_new`]), so a failure is an error too.

use crate::error::{Error, Result};

/// Where a memory budget came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--max-memory` on the command line.
    Flag,
    /// `MemAvailable` in `/proc/meminfo`.
    MemAvailable,
}

/// The bytes work may use, and where that number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes available.
    pub bytes: u64,
    /// Where `bytes` came from.
    pub source: Source,
}

impl Budget {
    /// `--max-memory` when given, else what the OS reports available, else
    /// `None` (no check possible).
    pub fn new(max_memory: Option<&str>) -> Result<Option<Budget>> {
        if let Some(text) = max_memory {
            return Ok(Some(Budget {
                bytes: parse_bytes(text)?,
                source: Source::Flag,
            }));
        }
        Ok(available().map(|bytes| Budget {
            bytes,
            source: Source::MemAvailable,
        }))
    }

    /// `Ok` when `need` bytes fit; otherwise a usage error naming `what`,
    /// both sizes and the fix.
    pub fn check(&self, need: u64, what: &str, fix: &str) -> Result<()> {
        if need <= self.bytes {
            return Ok(());
        }
        let from = match self.source {
            Source::Flag => "the --max-memory limit",
            Source::MemAvailable => "the memory available (MemAvailable in /proc/meminfo)",
        };
        Err(Error::Usage(format!(
            "{what} needs {} but {from} is {}; {fix}, or raise --max-memory if more memory is free",
            human(need),
            human(self.bytes)
        )))
    }
}

/// Bytes available to a new allocation: `MemAvailable` from `/proc/meminfo`
/// (Linux); `None` where it cannot be read.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

/// `MemAvailable:  123456 kB` → bytes.
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        _ => None,
    }
}

/// A byte count as given to `--max-memory`: a number with an optional unit
/// `K`, `M`, `G`, `T` (powers of 1024; `KiB`, `MB`, ... accepted alike).
pub fn parse_bytes(text: &str) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "--max-memory {text:?}: give a size such as 512M, 8G or 1.5T (powers of 1024) or a byte count"
        ))
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `1536` → `1.5 KiB`, for messages.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Alignment of [`PageAligned`] buffers: one page.
pub const PAGE: usize = 4096;

/// `len` copies of a plain value in a page-aligned allocation.
///
/// Why: a benchmark's buffers should sit where a framework's tensors sit,
/// and in the same place on every run. From `Vec`, where they land depends
/// on the allocator's history: glibc serves a block of more than 128 KiB
/// from its own mapping (at offset 16 of a page) until the first such block
/// is freed, and from the heap after that (raising its threshold, up to 32
/// MiB), where two blocks of whole pages sit 16 bytes apart in page offset.
/// A streaming pass whose output is 16 bytes past its input in page offset
/// stalls on 4K aliasing (`bn_impls::fused::simd::nt::aliased`), so the
/// same cell measured differently as a process's first and second. PyTorch
/// aligns tensors to 64 bytes, and its large ones are mappings of their
/// own; page-aligned buffers put every input and output at the same page
/// offset, as there, whatever ran before.
pub struct PageAligned<T> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
}

// SAFETY: a `PageAligned<T>` owns its elements exclusively, as a `Vec<T>`
// does: sending or sharing it is sending or sharing `T`s.
unsafe impl<T: Send> Send for PageAligned<T> {}
// SAFETY: as above; `&PageAligned<T>` only hands out `&[T]`.
unsafe impl<T: Sync> Sync for PageAligned<T> {}

impl<T> PageAligned<T> {
    /// A page, or `T`'s own alignment if that is larger.
    const ALIGN: usize = if PAGE > std::mem::align_of::<T>() {
        PAGE
    } else {
        std::mem::align_of::<T>()
    };
}

impl<T: Copy> PageAligned<T> {
    /// `len` copies of `value`, every page written (so none faults in a timed
    /// call), or an error instead of an abort when the allocation fails.
    pub fn try_new(value: T, len: usize, what: &str) -> Result<Self> {
        let oom = || {
            Error::Usage(format!(
                "cannot allocate {what} ({len} values): not enough memory; use a smaller size"
            ))
        };
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(oom)?;
        if bytes == 0 {
            return Ok(PageAligned {
                ptr: std::ptr::NonNull::dangling(),
                len,
            });
        }
        let layout = std::alloc::Layout::from_size_align(bytes, Self::ALIGN).map_err(|_| oom())?;
        // SAFETY: `layout` has a nonzero size.
        let raw = unsafe { std::alloc::alloc(layout) }.cast::<T>();
        let ptr = std::ptr::NonNull::new(raw).ok_or_else(oom)?;
        for i in 0..len {
            // SAFETY: the allocation holds `len` values of `T`, aligned to a
            // page (a multiple of `T`'s alignment); `i < len`.
            unsafe { ptr.as_ptr().add(i).write(value) };
        }
        Ok(PageAligned { ptr, len })
    }
}

impl<T> std::ops::Deref for PageAligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialized values (`try_new`), or is
        // dangling and aligned with zero bytes to read.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for PageAligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as `deref`, and `&mut self` borrows the values exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for PageAligned<T> {
    fn drop(&mut self) {
        let bytes = self.len * std::mem::size_of::<T>();
        if bytes == 0 {
            return;
        }
        // SAFETY: nonzero `bytes` means `try_new` allocated with exactly this
        // layout (it was valid then); `T: Copy` in `try_new`, so there is
        // nothing to drop in place.
        unsafe {
            let layout = std::alloc::Layout::from_size_align_unchecked(bytes, Self::ALIGN);
            std::alloc::dealloc(self.ptr.as_ptr().cast(), layout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_meminfo() {
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("8GiB").unwrap(), 8 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        for bad in ["", "G", "-1G", "1X", "0", "nan", "1e400"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        let text = "MemTotal:  24000000 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text), Some(2048 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn check_names_sizes_and_fix() {
        let b = Budget {
            bytes: 1 << 30,
            source: Source::Flag,
        };
        assert!(b.check(1 << 30, "x", "y").is_ok());
        let e = b
            .check(3 << 30, "cell 8x8 f32", "use smaller --shapes")
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("3.0 GiB") && m.contains("1.0 GiB") && m.contains("smaller --shapes"),
            "{m}"
        );
    }

    /// Page-aligned buffers start on a page, hold their values, take writes,
    /// and refuse sizes no allocation can hold with an error.
    #[test]
    fn page_aligned_buffers_start_on_a_page() {
        for len in [1, 3, 1000, 300_000] {
            let mut v = PageAligned::try_new(1.5f32, len, "x").unwrap();
            assert_eq!(v.as_ptr() as usize % PAGE, 0, "len {len}");
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&e| e == 1.5));
            v[len - 1] = 2.0;
            assert_eq!(v[len - 1], 2.0);
        }
        let empty = PageAligned::try_new(0f64, 0, "x").unwrap();
        assert!(empty.is_empty());
        for len in [
            usize::MAX / 2,
            usize::MAX / 8 + 1,
            isize::MAX as usize / 8,
            1 << 40,
        ] {
            let e = PageAligned::try_new(0f64, len, "the y buffer")
                .err()
                .unwrap();
            assert!(
                e.to_string().contains("cannot allocate the y buffer"),
                "{e}"
            );
        }
    }
}
