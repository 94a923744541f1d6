//! Memory budgets: refuse work whose buffers will not fit before allocating.
//!
//! Allocating more than the machine has ends in `memory allocation of … bytes
//! failed` (an abort, exit 134) or in the OOM killer, after part of a sweep
//! has run. So `bnh bench` and `bnh accuracy` compute the bytes every cell or
//! point needs up front and compare them with a budget: `--max-memory`, or
//! the memory the OS reports available (`MemAvailable` in `/proc/meminfo` on
//! Linux). Where the OS reports nothing the check is skipped and buffers are
//! still allocated fallibly ([`try_zeroed`]), so a failure is an error too.

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

/// A vector of `len` copies of `value`, or an error instead of the abort
/// `vec![value; len]` gives when the allocation fails.
pub fn try_zeroed<T: Clone>(value: T, len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::Usage(format!(
            "cannot allocate {what} ({len} values): not enough memory; use a smaller size"
        ))
    })?;
    v.resize(len, value);
    Ok(v)
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
        assert!(try_zeroed(0u8, usize::MAX / 2, "x").is_err());
    }
}
