//! The agent's counters and gauges, rendered as Mesos's flat JSON snapshot and as Prometheus
//! text.
//!
//! Names are Mesos-style paths (`containerizer/docker/launches_succeeded`); the Prometheus form
//! replaces `/` and other non-identifier characters with `_` and prefixes `berth_`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Current value.
    Gauge,
}

/// One sampled metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Mesos-style name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Help text.
    pub help: &'static str,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// A counter sample.
    pub fn counter(name: impl Into<String>, help: &'static str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            kind: Kind::Counter,
            help,
            value,
        }
    }

    /// A gauge sample.
    pub fn gauge(name: impl Into<String>, help: &'static str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            kind: Kind::Gauge,
            help,
            value,
        }
    }
}

/// Counters the agent bumps as it works.
#[derive(Debug, Default)]
pub struct Counters {
    /// Launches that reached RUNNING.
    pub launches_succeeded: AtomicU64,
    /// Launches that failed (including destroyed while launching).
    pub launches_failed: AtomicU64,
    /// Launches of an id that already existed.
    pub launches_duplicate: AtomicU64,
    /// KILL_CONTAINER calls delivered.
    pub kills: AtomicU64,
    /// Containers removed.
    pub removes: AtomicU64,
    /// Live resource updates.
    pub updates: AtomicU64,
    /// HTTP requests answered, by status class.
    pub http_2xx: AtomicU64,
    /// 4xx answers.
    pub http_4xx: AtomicU64,
    /// 5xx answers.
    pub http_5xx: AtomicU64,
    /// Authentication failures.
    pub http_unauthorized: AtomicU64,
    /// Request bodies not received within `--http-body-timeout` (408).
    pub http_body_timeouts: AtomicU64,
    /// Connections refused at `--http-max-connections`.
    pub http_connections_refused: AtomicU64,
    /// Connections being served (a gauge).
    pub http_open_connections: AtomicU64,
    /// `SUBSCRIBE` streams open (a gauge).
    pub subscribers: AtomicU64,
    /// API calls by type.
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// Ended containers garbage collection removed (sandbox, termination and checkpoint).
    pub gc_containers_removed: AtomicU64,
    /// Sandboxes of containers no longer known that garbage collection removed.
    pub gc_sandboxes_removed: AtomicU64,
    /// Garbage collection removals that failed (retried on the next pass).
    pub gc_removals_failed: AtomicU64,
    /// The age at which ended containers are collected now, in seconds (a gauge).
    pub gc_max_allowed_age_secs: AtomicU64,
    /// The work directory's disk usage at the last pass, in millionths (a gauge).
    pub gc_disk_usage_ppm: AtomicU64,
    /// Orphan containers stopped and removed.
    pub orphans_removed: AtomicU64,
    /// Orphans a dry run would have removed (counted each pass that sees them).
    pub orphans_would_remove: AtomicU64,
    /// Orphan removals that failed.
    pub orphans_failed: AtomicU64,
}

impl Counters {
    /// Counts one call of `call_type`.
    pub fn call(&self, call_type: &'static str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(call_type)
            .or_default() += 1;
    }

    /// Counts an answered request by its status.
    pub fn response(&self, status: u16) {
        let c = match status {
            200..=399 => &self.http_2xx,
            400..=499 => &self.http_4xx,
            _ => &self.http_5xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
        if status == 401 {
            self.http_unauthorized.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as samples.
    pub fn samples(&self) -> Vec<Sample> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let mut out = vec![
            Sample::counter(
                "containerizer/docker/launches_succeeded",
                "Launches that reached RUNNING",
                g(&self.launches_succeeded),
            ),
            Sample::counter(
                "containerizer/docker/launches_failed",
                "Launches that failed or were destroyed before RUNNING",
                g(&self.launches_failed),
            ),
            Sample::counter(
                "containerizer/docker/launches_duplicate",
                "Launches of an existing container id (202)",
                g(&self.launches_duplicate),
            ),
            Sample::counter(
                "containerizer/docker/kills",
                "KILL_CONTAINER calls delivered",
                g(&self.kills),
            ),
            Sample::counter(
                "containerizer/docker/removes",
                "Containers removed",
                g(&self.removes),
            ),
            Sample::counter(
                "containerizer/docker/updates",
                "Live resource updates",
                g(&self.updates),
            ),
            Sample::counter(
                "agent/http/responses_2xx",
                "HTTP answers with a 2xx or 3xx status",
                g(&self.http_2xx),
            ),
            Sample::counter(
                "agent/http/responses_4xx",
                "HTTP answers with a 4xx status",
                g(&self.http_4xx),
            ),
            Sample::counter(
                "agent/http/responses_5xx",
                "HTTP answers with a 5xx status",
                g(&self.http_5xx),
            ),
            Sample::counter(
                "agent/http/unauthorized",
                "Requests refused for a missing or wrong token",
                g(&self.http_unauthorized),
            ),
            Sample::counter(
                "agent/http/body_timeouts",
                "Request bodies not received within --http-body-timeout (answered 408)",
                g(&self.http_body_timeouts),
            ),
            Sample::counter(
                "agent/http/connections_refused",
                "Connections answered 503 and closed at --http-max-connections",
                g(&self.http_connections_refused),
            ),
            Sample::gauge(
                "agent/http/open_connections",
                "Connections being served",
                g(&self.http_open_connections),
            ),
            Sample::gauge(
                "agent/event_subscribers",
                "SUBSCRIBE streams open",
                g(&self.subscribers),
            ),
        ];
        out.extend([
            Sample::counter(
                "gc/containers_removed",
                "Ended containers whose sandbox, termination and checkpoint garbage collection removed",
                g(&self.gc_containers_removed),
            ),
            Sample::counter(
                "gc/sandboxes_removed",
                "Sandboxes of containers no longer known that garbage collection removed",
                g(&self.gc_sandboxes_removed),
            ),
            Sample::counter(
                "gc/removals_failed",
                "Garbage collection removals that failed (retried on the next pass)",
                g(&self.gc_removals_failed),
            ),
            Sample::gauge(
                "gc/container_max_allowed_age_secs",
                "Age since its end at which a container is garbage collected, given the disk usage",
                g(&self.gc_max_allowed_age_secs),
            ),
            Sample::gauge(
                "gc/disk_usage",
                "Used fraction of the work directory's file system at the last garbage collection",
                g(&self.gc_disk_usage_ppm) / 1e6,
            ),
            Sample::counter(
                "containerizer/docker/orphans_removed",
                "Orphan containers (this agent's labels, no checkpoint) stopped and removed",
                g(&self.orphans_removed),
            ),
            Sample::counter(
                "containerizer/docker/orphans_would_remove",
                "Orphans a dry run would have removed, counted at each pass that finds them",
                g(&self.orphans_would_remove),
            ),
            Sample::counter(
                "containerizer/docker/orphans_failed",
                "Orphan removals that failed",
                g(&self.orphans_failed),
            ),
        ]);
        for (call, n) in self.calls.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.push(Sample::counter(
                format!("agent/api/calls/{call}"),
                "API calls by type",
                *n as f64,
            ));
        }
        out
    }
}

/// The agent process's own CPU time (seconds) and peak and current resident memory (bytes),
/// from `/proc/self`.
pub fn process_samples() -> Vec<Sample> {
    let mut out = Vec::new();
    if let Some((utime, stime)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_ticks(&s))
    {
        let hz = rustix::param::clock_ticks_per_second() as f64;
        out.push(Sample::counter(
            "agent/process/cpu_user_secs",
            "Agent CPU time in user mode",
            utime as f64 / hz,
        ));
        out.push(Sample::counter(
            "agent/process/cpu_system_secs",
            "Agent CPU time in kernel mode",
            stime as f64 / hz,
        ));
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for (key, name, help) in [
            (
                "VmRSS:",
                "agent/process/mem_rss_bytes",
                "Agent resident memory",
            ),
            (
                "VmHWM:",
                "agent/process/mem_peak_rss_bytes",
                "Agent peak resident memory",
            ),
        ] {
            if let Some(kb) = status_kb(&status, key) {
                out.push(Sample::gauge(name, help, (kb * 1024) as f64));
            }
        }
    }
    out
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name may
/// contain spaces, so fields are counted after its closing parenthesis.
pub fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) is index 11 and stime (15) index 12.
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// A `kB` value of `/proc/<pid>/status`.
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Mesos's `/metrics/snapshot`: a flat JSON object of name to number.
pub fn snapshot_json(samples: &[Sample]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = samples
        .iter()
        .map(|s| (s.name.clone(), serde_json::json!(s.value)))
        .collect();
    serde_json::Value::Object(map)
}

/// The Prometheus name of a Mesos-style name.
pub fn prometheus_name(name: &str) -> String {
    let mut out = String::from("berth_");
    for c in name.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c.to_ascii_lowercase()
        } else {
            '_'
        });
    }
    out
}

/// Prometheus text exposition format (version 0.0.4).
pub fn prometheus_text(samples: &[Sample]) -> String {
    let mut out = String::new();
    for s in samples {
        let name = prometheus_name(&s.name);
        let kind = match s.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {name} {}", s.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", s.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_both_formats() {
        let c = Counters::default();
        c.launches_succeeded.fetch_add(2, Ordering::Relaxed);
        c.call("LAUNCH_CONTAINER");
        c.call("LAUNCH_CONTAINER");
        c.response(200);
        c.response(401);
        let samples = c.samples();
        let snap = snapshot_json(&samples);
        assert_eq!(snap["containerizer/docker/launches_succeeded"], 2.0);
        assert_eq!(snap["agent/api/calls/LAUNCH_CONTAINER"], 2.0);
        assert_eq!(snap["agent/http/responses_4xx"], 1.0);
        assert_eq!(snap["agent/http/unauthorized"], 1.0);
        let text = prometheus_text(&samples);
        assert!(text.contains("# TYPE berth_containerizer_docker_launches_succeeded counter\n"));
        assert!(text.contains("\nberth_containerizer_docker_launches_succeeded 2\n"));
        assert!(text.contains("\nberth_agent_api_calls_launch_container 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.split_once(' ').unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            value.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn proc_parsing_handles_spaces_in_the_command() {
        let stat = "123 (my (odd) cmd) S 1 2 3 4 5 6 7 8 9 10 42 7 0 0";
        assert_eq!(cpu_ticks(stat), Some((42, 7)));
        assert_eq!(
            status_kb("Name:\tx\nVmHWM:\t  1024 kB\n", "VmHWM:"),
            Some(1024)
        );
        let own = process_samples();
        assert!(own
            .iter()
            .any(|s| s.name == "agent/process/mem_peak_rss_bytes" && s.value > 0.0));
    }
}
