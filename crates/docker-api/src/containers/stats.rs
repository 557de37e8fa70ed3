//! Resource usage samples (`GET /containers/{id}/stats`).

use std::collections::HashMap;

use serde::Deserialize;

use crate::serde_util::null_default;

/// One resource usage sample. Field names follow the daemon's (snake_case) JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Sample time (RFC 3339).
    #[serde(default)]
    pub read: String,
    /// Previous sample time (Go's zero time on a one-shot sample).
    #[serde(default)]
    pub preread: String,
    /// Process count.
    #[serde(default)]
    pub pids_stats: PidsStats,
    /// CPU usage now.
    #[serde(default)]
    pub cpu_stats: CpuStats,
    /// CPU usage at the previous sample.
    #[serde(default)]
    pub precpu_stats: CpuStats,
    /// Memory usage.
    #[serde(default)]
    pub memory_stats: MemoryStats,
    /// Per network interface (absent with `network_mode=none`/`host`).
    #[serde(default, deserialize_with = "null_default")]
    pub networks: HashMap<String, NetworkStats>,
}

impl Stats {
    /// CPU use between this sample and the previous one, in percent of one CPU times the
    /// number of CPUs (the `docker stats` figure). `None` without a previous sample.
    pub fn cpu_percent(&self) -> Option<f64> {
        let cpu = self
            .cpu_stats
            .cpu_usage
            .total_usage
            .checked_sub(self.precpu_stats.cpu_usage.total_usage)?;
        let system = self
            .cpu_stats
            .system_cpu_usage?
            .checked_sub(self.precpu_stats.system_cpu_usage?)?;
        if system == 0 {
            return None;
        }
        let cpus = self.cpu_stats.online_cpus.filter(|n| *n > 0).unwrap_or(1);
        Some(cpu as f64 / system as f64 * cpus as f64 * 100.0)
    }
}

/// Process count.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct PidsStats {
    /// Processes now.
    #[serde(default)]
    pub current: Option<u64>,
    /// Limit.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// CPU usage.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct CpuStats {
    /// The container's usage.
    #[serde(default)]
    pub cpu_usage: CpuUsage,
    /// The host's total CPU time (ns).
    #[serde(default)]
    pub system_cpu_usage: Option<u64>,
    /// CPUs online.
    #[serde(default)]
    pub online_cpus: Option<u64>,
    /// CFS throttling.
    #[serde(default)]
    pub throttling_data: ThrottlingData,
}

/// The container's CPU time.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct CpuUsage {
    /// Total CPU time (ns).
    #[serde(default)]
    pub total_usage: u64,
    /// In kernel mode (ns).
    #[serde(default)]
    pub usage_in_kernelmode: u64,
    /// In user mode (ns).
    #[serde(default)]
    pub usage_in_usermode: u64,
    /// Per CPU (ns; cgroup v1 only).
    #[serde(default, deserialize_with = "null_default")]
    pub percpu_usage: Vec<u64>,
}

/// CFS throttling.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct ThrottlingData {
    /// Periods with throttling active.
    #[serde(default)]
    pub periods: u64,
    /// Periods throttled.
    #[serde(default)]
    pub throttled_periods: u64,
    /// Time throttled (ns).
    #[serde(default)]
    pub throttled_time: u64,
}

/// Memory usage.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Usage in bytes (includes page cache on cgroup v1).
    #[serde(default)]
    pub usage: Option<u64>,
    /// Peak usage (cgroup v1 only).
    #[serde(default)]
    pub max_usage: Option<u64>,
    /// Limit in bytes.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Times the limit was hit (cgroup v1 only).
    #[serde(default)]
    pub failcnt: Option<u64>,
    /// The cgroup's detailed counters (`rss`, `cache`, `total_rss`, `inactive_file`, ...).
    #[serde(default, deserialize_with = "null_default")]
    pub stats: HashMap<String, u64>,
}

/// Counters of one network interface.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct NetworkStats {
    /// Bytes received.
    #[serde(default)]
    pub rx_bytes: u64,
    /// Packets received.
    #[serde(default)]
    pub rx_packets: u64,
    /// Receive errors.
    #[serde(default)]
    pub rx_errors: u64,
    /// Bytes sent.
    #[serde(default)]
    pub tx_bytes: u64,
    /// Packets sent.
    #[serde(default)]
    pub tx_packets: u64,
    /// Send errors.
    #[serde(default)]
    pub tx_errors: u64,
}
