//! `usage()` and `status()` results: Mesos's `ResourceStatistics` and `ContainerStatus`.
//!
//! Usage comes from one-shot Docker stats on demand (no per-container streaming, which is known
//! to load the daemon). The memory breakdown is read from the cgroup's `memory.stat` keys, which
//! differ between cgroup v1 (`rss`, `cache`) and v2 (`anon`, `file`); both are handled.

use serde::{Deserialize, Serialize};

use crate::engine::{Enforced, PullProgress, StatsSample};
use crate::id::ContainerId;
use crate::mapping::resources::CPU_SHARES_PER_CPU;
use crate::seams::FetchProgress;
use crate::state::Phase;
use crate::termination::Termination;

/// Mesos `ResourceStatistics` (the fields a Docker container can report).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResourceStatistics {
    /// Seconds since the epoch when sampled.
    pub timestamp: f64,
    /// Processes in the container.
    pub processes: Option<u64>,
    /// Threads (tasks) in the container.
    pub threads: Option<u64>,
    /// CPU time in user mode.
    pub cpus_user_time_secs: Option<f64>,
    /// CPU time in kernel mode.
    pub cpus_system_time_secs: Option<f64>,
    /// The CPU limit (hard).
    pub cpus_limit: Option<f64>,
    /// The CPU request, when a limit above it exists.
    pub cpus_soft_limit: Option<f64>,
    /// CFS periods elapsed.
    pub cpus_nr_periods: Option<u64>,
    /// CFS periods throttled.
    pub cpus_nr_throttled: Option<u64>,
    /// Time throttled.
    pub cpus_throttled_time_secs: Option<f64>,
    /// Memory used, as Docker counts it.
    pub mem_total_bytes: Option<u64>,
    /// Anonymous (RSS) memory.
    pub mem_rss_bytes: Option<u64>,
    /// Page cache.
    pub mem_cache_bytes: Option<u64>,
    /// The memory limit (hard).
    pub mem_limit_bytes: Option<u64>,
    /// The memory request, when a limit above it exists.
    pub mem_soft_limit_bytes: Option<u64>,
    /// Bytes received.
    pub net_rx_bytes: Option<u64>,
    /// Bytes sent.
    pub net_tx_bytes: Option<u64>,
    /// Packets received.
    pub net_rx_packets: Option<u64>,
    /// Packets sent.
    pub net_tx_packets: Option<u64>,
    /// Receive errors.
    pub net_rx_errors: Option<u64>,
    /// Send errors.
    pub net_tx_errors: Option<u64>,
    /// Received packets dropped.
    pub net_rx_dropped: Option<u64>,
    /// Sent packets dropped.
    pub net_tx_dropped: Option<u64>,
}

/// Host totals used for infinite limits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HostTotals {
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
}

/// The limits part of the statistics, from what is in force (the cgroup files, or Docker's
/// `HostConfig`), never from what was asked for: a request Docker or the kernel adjusted, or an
/// update that could not clear a setting, shows as it is enforced. As Mesos reports them: the
/// hard limit is the CFS quota or the memory limit, the host's total when there is none; the soft
/// limit (the cpu shares as CPUs, the memory reservation) is reported when it is below the hard
/// limit.
pub(crate) fn limits(enforced: &Enforced, host: HostTotals, stats: &mut ResourceStatistics) {
    stats.cpus_limit = match (enforced.cpu_quota_us, enforced.cpu_period_us) {
        (Some(q), Some(p)) if p > 0 => Some(q as f64 / p as f64),
        _ => host.cpus,
    };
    stats.cpus_soft_limit = enforced
        .cpu_shares
        .map(|s| s as f64 / CPU_SHARES_PER_CPU)
        .filter(|soft| stats.cpus_limit.is_none_or(|hard| *soft < hard));
    stats.mem_limit_bytes = enforced.memory.or(host.memory);
    stats.mem_soft_limit_bytes = enforced
        .memory_reservation
        .filter(|soft| stats.mem_limit_bytes.is_none_or(|hard| *soft < hard));
}

/// Fills the measured part from a stats sample.
pub(crate) fn measured(
    sample: &StatsSample,
    processes: Option<u64>,
    stats: &mut ResourceStatistics,
) {
    let secs = |ns: Option<u64>| ns.map(|n| n as f64 / 1e9);
    stats.cpus_user_time_secs = secs(sample.cpu_user_ns);
    stats.cpus_system_time_secs = secs(sample.cpu_system_ns);
    stats.cpus_nr_periods = sample.cfs_periods;
    stats.cpus_nr_throttled = sample.cfs_throttled_periods;
    stats.cpus_throttled_time_secs = secs(sample.cfs_throttled_ns);
    stats.mem_total_bytes = sample.mem_usage;
    let key = |names: &[&str]| names.iter().find_map(|n| sample.mem_stats.get(*n).copied());
    // cgroup v1 names first, then v2's.
    stats.mem_rss_bytes = key(&["rss", "total_rss", "anon"]);
    stats.mem_cache_bytes = key(&["cache", "total_cache", "file"]);
    stats.threads = sample.tasks;
    stats.processes = processes;
    if let Some(n) = sample.net {
        stats.net_rx_bytes = Some(n.rx_bytes);
        stats.net_tx_bytes = Some(n.tx_bytes);
        stats.net_rx_packets = Some(n.rx_packets);
        stats.net_tx_packets = Some(n.tx_packets);
        stats.net_rx_errors = Some(n.rx_errors);
        stats.net_tx_errors = Some(n.tx_errors);
        stats.net_rx_dropped = n.rx_dropped;
        stats.net_tx_dropped = n.tx_dropped;
    }
}

/// Mesos `ContainerStatus`, with what Berth knows besides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// The container.
    pub container_id: ContainerId,
    /// Its phase.
    pub phase: Phase,
    /// The Docker container name.
    pub name: String,
    /// The image it runs (as launched).
    pub image: Option<String>,
    /// Docker's id, once created.
    pub docker_id: Option<String>,
    /// The main process's pid on the host, while running.
    pub pid: Option<u32>,
    /// IP addresses of its networks (empty with host networking).
    pub ip_addresses: Vec<String>,
    /// Its health, when it has a health check (Berth's or its image's Docker `HEALTHCHECK`).
    pub health: Option<crate::health::Health>,
    /// The image pull's progress, while pulling.
    pub pull: Option<PullProgress>,
    /// While fetching: the latest progress of each URI (by index; at most a few, finished ones
    /// make room first).
    pub fetch: Vec<FetchProgress>,
    /// The termination, once decided.
    pub termination: Option<Termination>,
    /// The launch's resources as requested ([`LaunchSpec::reported_resources`](crate::LaunchSpec)).
    pub requested_resources: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NetCounters;
    use std::collections::BTreeMap;

    #[test]
    fn limits_are_what_is_enforced() {
        let host = HostTotals {
            cpus: Some(8.0),
            memory: Some(16 << 30),
        };
        // Request 1 CPU / 1 GiB under limits 2 / 2 GiB.
        let mut s = ResourceStatistics::default();
        let e = Enforced {
            cpu_shares: Some(1024),
            cpu_quota_us: Some(200_000),
            cpu_period_us: Some(100_000),
            memory: Some(2 << 30),
            memory_reservation: Some(1 << 30),
        };
        limits(&e, host, &mut s);
        assert_eq!((s.cpus_soft_limit, s.cpus_limit), (Some(1.0), Some(2.0)));
        assert_eq!(
            (s.mem_soft_limit_bytes, s.mem_limit_bytes),
            (Some(1 << 30), Some(2 << 30))
        );

        // Nothing limited: the host's totals, the shares as the soft limit.
        let mut s = ResourceStatistics::default();
        let e = Enforced {
            cpu_shares: Some(512),
            ..Enforced::default()
        };
        limits(&e, host, &mut s);
        assert_eq!((s.cpus_soft_limit, s.cpus_limit), (Some(0.5), Some(8.0)));
        assert_eq!(
            (s.mem_soft_limit_bytes, s.mem_limit_bytes),
            (None, Some(16 << 30))
        );

        // A request that is also the limit (CFS on, no limits): no soft limit.
        let mut s = ResourceStatistics::default();
        let e = Enforced {
            cpu_shares: Some(1024),
            cpu_quota_us: Some(100_000),
            cpu_period_us: Some(100_000),
            memory: Some(1 << 30),
            memory_reservation: Some(1 << 30),
        };
        limits(&e, host, &mut s);
        assert_eq!((s.cpus_soft_limit, s.cpus_limit), (None, Some(1.0)));
        assert_eq!(
            (s.mem_soft_limit_bytes, s.mem_limit_bytes),
            (None, Some(1 << 30))
        );
    }

    #[test]
    fn memory_breakdown_on_cgroup_v1_and_v2() {
        let v1 = StatsSample {
            mem_stats: BTreeMap::from([
                ("rss".into(), 100),
                ("cache".into(), 50),
                ("anon".into(), 1),
            ]),
            cpu_user_ns: Some(2_500_000_000),
            tasks: Some(3),
            net: Some(NetCounters {
                rx_bytes: 7,
                ..NetCounters::default()
            }),
            ..StatsSample::default()
        };
        let mut s = ResourceStatistics::default();
        measured(&v1, Some(2), &mut s);
        assert_eq!((s.mem_rss_bytes, s.mem_cache_bytes), (Some(100), Some(50)));
        assert_eq!(s.cpus_user_time_secs, Some(2.5));
        assert_eq!(
            (s.processes, s.threads, s.net_rx_bytes),
            (Some(2), Some(3), Some(7))
        );

        let v2 = StatsSample {
            mem_stats: BTreeMap::from([
                ("anon".into(), 200),
                ("file".into(), 80),
                ("shmem".into(), 0),
            ]),
            ..StatsSample::default()
        };
        let mut s = ResourceStatistics::default();
        measured(&v2, None, &mut s);
        assert_eq!((s.mem_rss_bytes, s.mem_cache_bytes), (Some(200), Some(80)));
        assert_eq!(s.net_rx_bytes, None);
    }
}
