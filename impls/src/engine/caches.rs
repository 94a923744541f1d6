//! The data caches of the CPU this process runs on, read once from CPUID's
//! deterministic cache parameters, for the schedule rules that were
//! measured to depend on them (`fused::plan::channel_tasks`). Only speed
//! may depend on what is found here, never a result's bits.

use std::sync::OnceLock;

/// Sizes in bytes of one core's level-2 cache and of the level-3 cache it
/// shares (as the CPU, or the hypervisor in a VM, reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caches {
    /// Level-2 cache of one core.
    pub l2: usize,
    /// Level-3 cache (0 when the CPU reports none).
    pub l3: usize,
}

/// This machine's caches, detected on the first call; `None` where CPUID
/// does not describe them (another architecture, an old or masked CPUID).
pub fn caches() -> Option<Caches> {
    static CACHES: OnceLock<Option<Caches>> = OnceLock::new();
    *CACHES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Option<Caches> {
    leaves().into_iter().find_map(from_leaf)
}

/// The cache-parameter leaves this CPU's CPUID answers. Intel describes its
/// caches in leaf 4, AMD (and Hygon) in leaf 0x8000001D with the same
/// register layout; the other vendor's leaf reports no cache (type 0), so
/// the first leaf that lists one wins.
#[cfg(target_arch = "x86_64")]
fn leaves() -> Vec<u32> {
    use std::arch::x86_64::__cpuid;
    let max_basic = __cpuid(0).eax;
    let max_ext = __cpuid(0x8000_0000).eax;
    [(4, max_basic >= 4), (0x8000_001D, max_ext >= 0x8000_001D)]
        .into_iter()
        .filter_map(|(leaf, present)| present.then_some(leaf))
        .collect()
}

/// One subleaf's registers and its type field (EAX bits 0–4): 0 none (the
/// list ends), 1 data, 2 instructions, 3 unified.
#[cfg(target_arch = "x86_64")]
fn subleaf(leaf: u32, sub: u32) -> (u32, std::arch::x86_64::CpuidResult) {
    let r = std::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax & 0x1f, r)
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Option<Caches> {
    None
}

/// The level-2 and level-3 data (or unified) caches listed by a CPUID
/// cache-parameters leaf: subleaf `i` describes one cache until the type
/// field (EAX bits 0–4) is 0; its size is ways × partitions × line size ×
/// sets (EBX bits 22–31, 12–21, 0–11 and ECX, each stored minus one).
#[cfg(target_arch = "x86_64")]
fn from_leaf(leaf: u32) -> Option<Caches> {
    let (mut l2, mut l3) = (None, 0);
    // Real CPUs list at most a handful; the bound keeps a bogus CPUID
    // (a hypervisor that never reports type 0) from looping for ever.
    for sub in 0..16 {
        let (kind, r) = subleaf(leaf, sub);
        if kind == 0 {
            break;
        }
        // Instruction caches do not hold data.
        if kind == 2 {
            continue;
        }
        let field = |v: u32, shift: u32, bits: u32| ((v >> shift) & ((1 << bits) - 1)) as usize + 1;
        let size = field(r.ebx, 22, 10)
            * field(r.ebx, 12, 10)
            * field(r.ebx, 0, 12)
            * (r.ecx as usize + 1);
        match (r.eax >> 5) & 0x7 {
            2 => l2 = Some(size),
            3 => l3 = size,
            _ => {}
        }
    }
    l2.map(|l2| Caches { l2, l3 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where CPUID lists any cache in either leaf (every x86-64 CPU since
    /// about 2010, and the VMs this project runs CI on), a level-2 cache is
    /// found, and its size is plausible: less than 64 KiB or more than 64
    /// MiB would be a misread field, not a CPU. A hypervisor that masks
    /// both leaves leaves nothing to check (said, not silently passed).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_caches_of_this_x86_cpu_are_plausible() {
        if leaves().into_iter().all(|leaf| subleaf(leaf, 0).0 == 0) {
            eprintln!("skipped: CPUID lists no caches on this machine (masked by a hypervisor?)");
            return;
        }
        let c = caches().expect("CPUID lists caches, so a level-2 cache is found");
        assert!((64 << 10..=64 << 20).contains(&c.l2), "{c:?}");
        assert!(c.l3 == 0 || c.l3 >= c.l2, "{c:?}");
    }
}
