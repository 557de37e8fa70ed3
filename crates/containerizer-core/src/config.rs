//! The containerizer's configuration (Mesos's agent flags that concern it, and Berth's own).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::id::AgentId;
use crate::labels;
use crate::mapping::{Allowances, LogConfigSpec};
use crate::pull::PullConfig;

/// What to do with containers this agent labelled but no checkpoint knows.
#[derive(Debug, Clone)]
pub struct OrphanPolicy {
    /// Stop and remove them (Mesos's `--docker_kill_orphans`, default true).
    pub kill: bool,
    /// Containers younger than this are left alone until they are this old: a launch of
    /// another instance may be about to checkpoint them.
    pub grace: Duration,
    /// Only report what would be done.
    pub dry_run: bool,
    /// How often the agent looks for orphans again after recovery (Nomad's dangling-container
    /// reconciler `period`); zero looks only at start. With periodic passes, an orphan still in
    /// its grace period is left to the first pass after its grace ends (no timer per orphan).
    pub reconcile_interval: Duration,
}

impl Default for OrphanPolicy {
    fn default() -> OrphanPolicy {
        OrphanPolicy {
            kill: true,
            grace: Duration::from_secs(5 * 60),
            dry_run: false,
            reconcile_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// Containerizer configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This agent's id; containers are labelled with it and only its own are ever touched.
    pub agent_id: AgentId,
    /// Where checkpoints live (`<work_dir>/checkpoints.journal`).
    pub work_dir: PathBuf,
    /// Docker names are `<prefix>-<container id>`.
    pub name_prefix: String,
    /// Where the sandbox is mounted inside containers (Mesos `--sandbox_directory`).
    pub mapped_sandbox: String,
    /// Roots under which absolute host paths may be mounted.
    pub allowed_host_roots: Vec<PathBuf>,
    /// Whether `privileged` containers are allowed (and with them everything [`Allowances`]
    /// lists).
    pub allow_privileged: bool,
    /// What callers may ask for beyond Docker's default confinement (capabilities, devices,
    /// volume drivers and types, existing volumes).
    pub allowances: Allowances,
    /// Mesos `--cgroups_enable_cfs`: a CPU quota from the request when there is no limit.
    pub cfs: bool,
    /// Host CPUs (for infinite limits in usage); read from the system when `None`.
    pub host_cpus: Option<f64>,
    /// Host memory in bytes (OOM score, infinite limits); read from the system when `None`.
    pub host_memory: Option<u64>,
    /// Docker's own log driver settings for every container (capped `local`: byte-exact).
    pub docker_log: LogConfigSpec,
    /// Labels added to every container.
    pub extra_labels: BTreeMap<String, String>,
    /// Grace between the stop signal and SIGKILL when a container is destroyed.
    pub kill_grace: Duration,
    /// The launch deadline for everything but the pull (fetch, volumes, create, start).
    pub launch_timeout: Duration,
    /// A session with neither output nor input for this long is ended (its command killed);
    /// zero never ends one for idleness.
    pub session_idle_timeout: Duration,
    /// Image pull bounds.
    pub pull: PullConfig,
    /// Delay between a termination and the removal of its Docker container (Mesos
    /// `--docker_remove_delay`, 6 hours; zero removes right away). Only the Docker container
    /// goes: the termination, the checkpoint and the sandbox stay until
    /// [`Containerizer::remove`](crate::Containerizer::remove) (REMOVE_CONTAINER or the
    /// agent's sandbox garbage collection).
    pub remove_delay: Duration,
    /// How long the logger may take to drain after the container exits.
    pub log_drain_timeout: Duration,
    /// Orphan handling.
    pub orphans: OrphanPolicy,
    /// First delay between retries of a failed kill or stop (doubles up to 30 s).
    pub retry_backoff: Duration,
}

impl Config {
    /// Defaults for agent `agent_id` with checkpoints under `work_dir`.
    pub fn new(agent_id: AgentId, work_dir: impl Into<PathBuf>) -> Config {
        Config {
            agent_id,
            work_dir: work_dir.into(),
            name_prefix: "berth".to_owned(),
            mapped_sandbox: "/mnt/mesos/sandbox".to_owned(),
            allowed_host_roots: Vec::new(),
            allow_privileged: false,
            allowances: Allowances::default(),
            cfs: false,
            host_cpus: None,
            host_memory: None,
            docker_log: LogConfigSpec::default(),
            extra_labels: BTreeMap::new(),
            kill_grace: Duration::from_secs(5),
            launch_timeout: Duration::from_secs(60),
            session_idle_timeout: Duration::from_secs(3600),
            pull: PullConfig::default(),
            remove_delay: Duration::from_secs(6 * 3600),
            log_drain_timeout: Duration::from_secs(30),
            orphans: OrphanPolicy::default(),
            retry_backoff: Duration::from_secs(1),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.name_prefix.is_empty()
            || !self
                .name_prefix
                .starts_with(|c: char| c.is_ascii_alphanumeric())
            || !self
                .name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(Error::Config(format!(
                "name prefix '{}' is not a valid Docker name start (ASCII letters, digits, '_', '.', '-')",
                self.name_prefix
            )));
        }
        if !crate::mapping::is_absolute(&self.mapped_sandbox) {
            return Err(Error::Config(format!(
                "the mapped sandbox '{}' must be an absolute path",
                self.mapped_sandbox
            )));
        }
        if let Some(k) = self.extra_labels.keys().find(|k| labels::is_reserved(k)) {
            return Err(Error::Config(format!(
                "extra label '{k}' is reserved for Berth's own use"
            )));
        }
        if let Some(r) = self.allowed_host_roots.iter().find(|r| !r.is_absolute()) {
            return Err(Error::Config(format!(
                "allowed host root '{}' must be absolute",
                r.display()
            )));
        }
        Ok(())
    }
}

/// Host CPUs and memory from `/proc` (None when unreadable).
pub(crate) fn host_totals() -> (Option<f64>, Option<u64>) {
    let cpus = std::thread::available_parallelism()
        .ok()
        .map(|n| n.get() as f64);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
    (cpus, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_setting() {
        let ok = Config::new(AgentId::new("a").unwrap(), "/tmp/w");
        ok.validate().unwrap();
        let mut c = ok.clone();
        c.name_prefix = "bad/prefix".into();
        assert!(c.validate().unwrap_err().to_string().contains("bad/prefix"));
        let mut c = ok.clone();
        c.mapped_sandbox = "rel".into();
        assert!(c.validate().unwrap_err().to_string().contains("'rel'"));
        let mut c = ok.clone();
        c.extra_labels.insert(labels::AGENT_ID.into(), "x".into());
        assert!(c.validate().unwrap_err().to_string().contains("reserved"));
        let mut c = ok;
        c.allowed_host_roots.push("srv".into());
        assert!(c.validate().unwrap_err().to_string().contains("'srv'"));
    }

    #[test]
    fn host_totals_are_read() {
        let (cpus, mem) = host_totals();
        assert!(cpus.unwrap() >= 1.0);
        assert!(mem.unwrap() > 64 << 20);
    }
}
