//! Resources and limits to cgroup settings, as Mesos's `RunOptions` computes them.
//!
//! - cpu shares = max(1024 x cpus, 2);
//! - CPU quota: from a finite CPU limit (max(limit x 100 ms, 1 ms)); none for an infinite limit;
//!   otherwise from the request when CFS is enabled;
//! - memory: a finite limit gives the hard limit (at least 32 MiB) and the request becomes the
//!   reservation; an infinite limit gives no hard limit; with no limit the request is the hard
//!   limit (at least 32 MiB);
//! - an OOM score adjustment when the request is below the limit, so containers that use more
//!   than they asked for are killed first.

use serde::{Deserialize, Serialize};

use super::SpecError;
use crate::engine::ResourceUpdate;
use crate::spec::{mb_to_bytes, Limit, Limits, Resources};

/// Mesos's smallest memory limit: 32 MiB.
pub const MIN_MEMORY: u64 = 32 << 20;
/// The CFS period: 100 ms.
pub const CFS_PERIOD_US: i64 = 100_000;
/// The smallest CFS quota: 1 ms.
pub const MIN_CFS_QUOTA_US: i64 = 1_000;
/// The smallest cpu shares value the kernel accepts.
pub const MIN_CPU_SHARES: i64 = 2;
/// Shares per CPU.
pub const CPU_SHARES_PER_CPU: f64 = 1024.0;
/// The kernel's cpu shares when none are set (what a container launched without `cpus` has).
pub const DEFAULT_CPU_SHARES: i64 = 1024;

/// The cgroup settings for one container, in Docker's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CgroupSettings {
    /// `CpuShares`.
    pub cpu_shares: Option<i64>,
    /// `CpuQuota` (µs per period); `Some(-1)` removes a quota.
    pub cpu_quota: Option<i64>,
    /// `CpuPeriod` (µs).
    pub cpu_period: Option<i64>,
    /// `Memory` hard limit in bytes; `Some(0)` is unlimited.
    pub memory: Option<i64>,
    /// `MemoryReservation` in bytes.
    pub memory_reservation: Option<i64>,
    /// `OomScoreAdj` (only at create; Docker cannot update it).
    pub oom_score_adj: Option<i64>,
}

/// Refuses a memory request or finite limit below [`MIN_MEMORY`]. Mesos raises such values to
/// 32 MiB silently; Berth refuses them (400) at launch and update alike, so the limit in force is
/// always the one asked for.
pub fn check_memory(resources: &Resources, limits: &Limits) -> Result<(), SpecError> {
    let min_mb = MIN_MEMORY >> 20;
    let below = |mb: f64| mb_to_bytes(mb) < MIN_MEMORY;
    if let Some(mb) = resources.mem_mb.filter(|mb| below(*mb)) {
        return Err(SpecError::MemoryBelowMinimum {
            field: "resources",
            mb: mb.to_string(),
            min: min_mb,
        });
    }
    if let Some(Limit::Finite(mb)) = limits.mem_mb {
        if below(mb) {
            return Err(SpecError::MemoryBelowMinimum {
                field: "limits",
                mb: mb.to_string(),
                min: min_mb,
            });
        }
    }
    Ok(())
}

/// Computes the settings. `host_mem` is the host's memory in bytes (for the OOM score).
pub fn cgroup_settings(
    resources: &Resources,
    limits: &Limits,
    cfs: bool,
    host_mem: Option<u64>,
) -> CgroupSettings {
    let mut s = CgroupSettings::default();
    if let Some(cpus) = resources.cpus {
        s.cpu_shares = Some(((CPU_SHARES_PER_CPU * cpus) as i64).max(MIN_CPU_SHARES));
    }
    match limits.cpus {
        Some(Limit::Finite(limit)) => {
            s.cpu_period = Some(CFS_PERIOD_US);
            s.cpu_quota = Some(((CFS_PERIOD_US as f64 * limit) as i64).max(MIN_CFS_QUOTA_US));
        }
        Some(Limit::Infinite) => {
            // An explicit "no limit": remove any quota.
            s.cpu_period = Some(CFS_PERIOD_US);
            s.cpu_quota = Some(-1);
        }
        None => {
            if let (true, Some(cpus)) = (cfs, resources.cpus) {
                s.cpu_period = Some(CFS_PERIOD_US);
                s.cpu_quota = Some(((CFS_PERIOD_US as f64 * cpus) as i64).max(MIN_CFS_QUOTA_US));
            }
        }
    }
    let request = resources.mem_mb.map(mb_to_bytes);
    match limits.mem_mb {
        Some(Limit::Finite(limit)) => {
            s.memory = Some(mb_to_bytes(limit).max(MIN_MEMORY) as i64);
            s.memory_reservation = request.map(|r| r.max(MIN_MEMORY) as i64);
        }
        Some(Limit::Infinite) => {
            s.memory = Some(0);
            s.memory_reservation = request.map(|r| r.max(MIN_MEMORY) as i64);
        }
        None => {
            s.memory = request.map(|r| r.max(MIN_MEMORY) as i64);
        }
    }
    s.oom_score_adj = oom_score_adj(request, limits.mem_mb, host_mem);
    s
}

/// The `docker update` that puts `new` in force on a container whose settings were `old` (what
/// its launch or its last update set, from [`cgroup_settings`]).
///
/// Docker's update leaves every field it is not given, or given 0, as it was, so each setting is
/// sent, and one that no longer applies is cleared explicitly: the default shares, no CFS quota
/// (-1), no reservation (-1). Docker cannot remove a memory limit from a container (it refuses
/// -1 and 0 is "unchanged"), so a limit that goes away becomes the host's memory (`host_mem`),
/// which is what an unlimited container can use; a container that never had a limit is left
/// without one. The swap limit follows the memory limit, as at launch. The OOM score adjustment
/// cannot be changed on a live container (Docker has no such update) and stays as launched.
pub fn resource_update(
    new: &CgroupSettings,
    old: &CgroupSettings,
    host_mem: Option<u64>,
) -> ResourceUpdate {
    let limited = |s: &CgroupSettings| s.memory.filter(|m| *m > 0);
    let memory = limited(new).or_else(|| {
        limited(old).and(host_mem.map(|h| {
            // Whole pages, as the kernel keeps it.
            (h & !4095) as i64
        }))
    });
    let (cpu_quota, cpu_period) = match new.cpu_quota {
        Some(q) => (q, new.cpu_period.unwrap_or(CFS_PERIOD_US)),
        None => (-1, CFS_PERIOD_US),
    };
    ResourceUpdate {
        cpu_shares: Some(new.cpu_shares.unwrap_or(DEFAULT_CPU_SHARES)),
        cpu_quota: Some(cpu_quota),
        cpu_period: Some(cpu_period),
        memory,
        memory_reservation: Some(new.memory_reservation.unwrap_or(-1)),
        // Sent with the memory so a lower limit is not refused for being above the old swap.
        memory_swap: memory,
    }
}

/// Mesos's `calculateOOMScoreAdj`: `1000 - 1000 x request / host memory` when the request is
/// below the limit (or the limit is infinite), so a container over its request is killed first.
fn oom_score_adj(request: Option<u64>, limit: Option<Limit>, host_mem: Option<u64>) -> Option<i64> {
    let (request, host) = (request?, host_mem.filter(|h| *h > 0)?);
    let above = match limit? {
        Limit::Infinite => true,
        Limit::Finite(l) => request < mb_to_bytes(l),
    };
    above.then(|| (1000 - (1000.0 * request as f64 / host as f64) as i64).clamp(-1000, 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpus: Option<f64>, mem_mb: Option<f64>) -> Resources {
        Resources {
            cpus,
            mem_mb,
            ports: vec![],
        }
    }

    #[test]
    fn shares_have_a_floor_and_scale() {
        assert_eq!(
            cgroup_settings(&res(Some(1.0), None), &Limits::default(), false, None).cpu_shares,
            Some(1024)
        );
        assert_eq!(
            cgroup_settings(&res(Some(0.5), None), &Limits::default(), false, None).cpu_shares,
            Some(512)
        );
        assert_eq!(
            cgroup_settings(&res(Some(0.001), None), &Limits::default(), false, None).cpu_shares,
            Some(2)
        );
    }

    #[test]
    fn cfs_quota_from_request_only_when_enabled() {
        let off = cgroup_settings(&res(Some(1.5), None), &Limits::default(), false, None);
        assert_eq!(off.cpu_quota, None);
        let on = cgroup_settings(&res(Some(1.5), None), &Limits::default(), true, None);
        assert_eq!(
            (on.cpu_quota, on.cpu_period),
            (Some(150_000), Some(100_000))
        );
        let tiny = cgroup_settings(&res(Some(0.001), None), &Limits::default(), true, None);
        assert_eq!(tiny.cpu_quota, Some(1_000));
    }

    #[test]
    fn limits_above_requests() {
        let limits = Limits {
            cpus: Some(Limit::Finite(2.0)),
            mem_mb: Some(Limit::Finite(2048.0)),
        };
        let s = cgroup_settings(&res(Some(1.0), Some(1024.0)), &limits, false, Some(4 << 30));
        assert_eq!(s.cpu_shares, Some(1024));
        assert_eq!(s.cpu_quota, Some(200_000));
        assert_eq!(s.memory, Some(2 << 30));
        assert_eq!(s.memory_reservation, Some(1 << 30));
        // 1000 - 1000 * 1 GiB / 4 GiB
        assert_eq!(s.oom_score_adj, Some(750));
    }

    #[test]
    fn infinite_limits() {
        let limits = Limits {
            cpus: Some(Limit::Infinite),
            mem_mb: Some(Limit::Infinite),
        };
        let s = cgroup_settings(&res(Some(1.0), Some(64.0)), &limits, true, Some(1 << 30));
        assert_eq!(s.cpu_quota, Some(-1));
        assert_eq!(s.memory, Some(0));
        assert_eq!(s.memory_reservation, Some(64 << 20));
        assert!(s.oom_score_adj.unwrap() > 900);
    }

    #[test]
    fn memory_below_the_minimum_is_refused_naming_the_field() {
        let none = Limits::default();
        check_memory(&res(None, Some(32.0)), &none).unwrap();
        check_memory(&res(None, None), &none).unwrap();
        let err = check_memory(&res(None, Some(4.0)), &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("resources 'mem' is 4 MiB, below the minimum of 32 MiB"),
            "{err}"
        );
        let low_limit = Limits {
            cpus: None,
            mem_mb: Some(Limit::Finite(16.0)),
        };
        let err = check_memory(&res(None, Some(64.0)), &low_limit)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("limits 'mem' is 16 MiB"), "{err}");
        let infinite = Limits {
            cpus: None,
            mem_mb: Some(Limit::Infinite),
        };
        check_memory(&res(None, Some(32.0)), &infinite).unwrap();
    }

    #[test]
    fn an_update_sends_every_setting_and_clears_the_ones_gone() {
        // The sequence: limits 1 CPU / 256 MiB over 0.5 / 128, then 2 / 64 and no limits.
        let limits = Limits {
            cpus: Some(Limit::Finite(1.0)),
            mem_mb: Some(Limit::Finite(256.0)),
        };
        let old = cgroup_settings(&res(Some(0.5), Some(128.0)), &limits, false, Some(1 << 30));
        let new = cgroup_settings(&res(Some(2.0), Some(64.0)), &Limits::default(), false, None);
        let u = resource_update(&new, &old, Some(1 << 30));
        assert_eq!(u.cpu_shares, Some(2048));
        assert_eq!((u.cpu_quota, u.cpu_period), (Some(-1), Some(100_000)));
        assert_eq!((u.memory, u.memory_swap), (Some(64 << 20), Some(64 << 20)));
        assert_eq!(u.memory_reservation, Some(-1));

        // Only limits: the request's shares go back to the default, the limit is kept in force.
        let only_limits = Limits {
            cpus: None,
            mem_mb: Some(Limit::Finite(512.0)),
        };
        let new = cgroup_settings(&Resources::default(), &only_limits, false, None);
        let u = resource_update(&new, &old, Some(1 << 30));
        assert_eq!(u.cpu_shares, Some(DEFAULT_CPU_SHARES));
        assert_eq!(u.memory, Some(512 << 20));
        assert_eq!(u.memory_reservation, Some(-1));

        // A limit that goes away becomes the host's memory; none before, none after.
        let cpus_only = cgroup_settings(&res(Some(1.0), None), &Limits::default(), true, None);
        let u = resource_update(&cpus_only, &old, Some((1 << 30) + 100));
        assert_eq!(u.memory, Some(1 << 30));
        assert_eq!((u.cpu_quota, u.cpu_period), (Some(100_000), Some(100_000)));
        assert_eq!(
            resource_update(&cpus_only, &cpus_only, Some(1 << 30)).memory,
            None
        );
    }

    #[test]
    fn memory_floor_and_no_limit() {
        let s = cgroup_settings(
            &res(None, Some(8.0)),
            &Limits::default(),
            false,
            Some(1 << 30),
        );
        assert_eq!(s.memory, Some(MIN_MEMORY as i64));
        assert_eq!(s.memory_reservation, None);
        assert_eq!(s.oom_score_adj, None, "no limit above the request");
        let equal = Limits {
            cpus: None,
            mem_mb: Some(Limit::Finite(64.0)),
        };
        assert_eq!(
            cgroup_settings(&res(None, Some(64.0)), &equal, false, Some(1 << 30)).oom_score_adj,
            None
        );
    }
}
