//! The machine a benchmark ran on, written as a JSON sidecar beside each CSV
//! (`bench.csv` → `bench.machine.json`) so numbers are never quoted without
//! their context.

use bn_impls::engine::caches::caches;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the report prints about where the numbers come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `rustc --version` of the compiler that built `bnh`.
    pub rustc: String,
    /// `git rev-parse --short HEAD` (+ `-dirty`), or `unknown`.
    pub git_commit: String,
    /// UTC time of the run, ISO 8601.
    pub date: String,
    /// The command line that produced the CSV.
    pub command: String,
    /// One core's level-2 cache in bytes (CPUID), where known: `fused`'s
    /// schedule depends on it (`bn_impls::fused::task_rule`). Absent in
    /// sidecars written before it was recorded.
    #[serde(default)]
    pub l2_bytes: Option<usize>,
    /// The level-3 cache in bytes (CPUID), where known.
    #[serde(default)]
    pub l3_bytes: Option<usize>,
}

impl Machine {
    /// Describe this machine now.
    pub fn detect() -> Machine {
        let cache = caches();
        Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rustc: env!("BNH_RUSTC_VERSION").to_string(),
            git_commit: git_commit(),
            date: utc_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            l2_bytes: cache.map(|c| c.l2),
            l3_bytes: cache.map(|c| c.l3),
        }
    }

    /// One line for terminals and reports.
    pub fn summary(&self) -> String {
        let caches = match (self.l2_bytes, self.l3_bytes) {
            (Some(l2), Some(l3)) => format!(", L2 {} per core, L3 {}", mib(l2), mib(l3)),
            _ => String::new(),
        };
        format!(
            "{} ({} logical cores{caches}), {}, commit {}, {}",
            self.cpu, self.cores, self.rustc, self.git_commit, self.date
        )
    }
}

/// Bytes as MiB (KiB below 1 MiB), for the summary line.
fn mib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// The sidecar path of a CSV: `dir/name.csv` → `dir/name.machine.json`.
pub fn sidecar_path(csv: &Path) -> PathBuf {
    csv.with_extension("machine.json")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        _ => "unknown".into(),
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Format seconds since the Unix epoch as ISO 8601 UTC, using the
/// days-to-civil algorithm of H. Hinnant ("chrono-compatible low-level date
/// algorithms"), so no date crate is needed.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC (a leap day).
        assert_eq!(format_utc(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(format_utc(1_790_000_000), "2026-09-21T14:13:20Z");
    }

    /// Sidecars written before the caches were recorded still load, and the
    /// summary names the caches only when both are known.
    #[test]
    fn caches_are_optional_in_sidecars_and_summaries() {
        let old =
            r#"{"cpu":"X","cores":2,"rustc":"r","git_commit":"c","date":"d","command":"bnh"}"#;
        let m: Machine = serde_json::from_str(old).unwrap();
        assert_eq!((m.l2_bytes, m.l3_bytes), (None, None));
        assert_eq!(m.summary(), "X (2 logical cores), r, commit c, d");
        let m = Machine {
            l2_bytes: Some(1 << 20),
            l3_bytes: Some(32 << 20),
            ..m
        };
        let s = m.summary();
        assert_eq!(
            s,
            "X (2 logical cores, L2 1 MiB per core, L3 32 MiB), r, commit c, d"
        );
        assert_eq!(mib(1280 << 10), "1.25 MiB");
        assert_eq!(mib(512 << 10), "512 KiB");
    }

    #[test]
    fn sidecar_sits_beside_the_csv() {
        assert_eq!(
            sidecar_path(Path::new("r/bench.csv")),
            PathBuf::from("r/bench.machine.json")
        );
    }
}
