//! Garbage collection of ended containers, and periodic orphan reconciliation.
//!
//! The remove delay (`--docker-remove-delay`) removes only an ended container's Docker
//! container. Its termination, checkpoint and sandbox stay, so WAIT_CONTAINER, READ_FILE and
//! `/files` keep answering, until REMOVE_CONTAINER or this collection removes them, all
//! together, as REMOVE_CONTAINER does: afterwards every call about the container answers 404.
//!
//! The rule is Mesos's (`--gc_delay`, `--gc_disk_headroom`, `--disk_watch_interval`): every
//! `--disk-watch-interval` the used fraction `u` of the work directory's file system is read,
//! and each container that ended at least `gc-delay × max(0, 1 − headroom − u)` ago is removed.
//! Age counts from the termination (checkpointed, so a restart does not reset it).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use berth_containerizer::{OrphanAction, OrphanOutcome};

use super::{calls, workdir, Agent};

/// The age at which an ended container is collected at disk usage `usage` (a fraction): Mesos's
/// `gc_delay × max(0, 1 − gc_disk_headroom − usage)`. At zero every ended container goes.
pub fn max_allowed_age(gc_delay: Duration, headroom: f64, usage: f64) -> Duration {
    let factor = (1.0 - headroom - usage).clamp(0.0, 1.0);
    gc_delay.mul_f64(factor)
}

/// The used fraction of the file system holding `path` (used blocks over all blocks, as Mesos's
/// `fs::usage`). Blocking.
fn disk_usage(path: &std::path::Path) -> std::io::Result<f64> {
    let s = rustix::fs::statvfs(path)?;
    if s.f_blocks == 0 {
        return Ok(0.0);
    }
    Ok(s.f_blocks.saturating_sub(s.f_bfree) as f64 / s.f_blocks as f64)
}

/// What one collection pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GcReport {
    /// The disk usage read (`None` when it could not be read: then only the age rule applies).
    pub disk_usage: Option<f64>,
    /// The age at which ended containers were collected.
    pub max_allowed_age: Duration,
    /// Ended containers removed (sandbox, termination, checkpoint).
    pub containers_removed: usize,
    /// Sandboxes of containers no longer known, removed.
    pub sandboxes_removed: usize,
}

impl Agent {
    /// One garbage collection pass: ended containers old enough for the current disk usage are
    /// removed as REMOVE_CONTAINER removes them (the Docker container if still there, the
    /// checkpoint and termination, then the sandbox through safe-fs on a blocking thread), and
    /// sandboxes no container owns any more are deleted.
    pub async fn collect_garbage(&self) -> GcReport {
        let config = self.config();
        let dir = workdir::sandboxes_dir(&config.work_dir);
        let probe = if dir.exists() {
            dir.clone()
        } else {
            config.work_dir.clone()
        };
        let usage = tokio::task::spawn_blocking(move || disk_usage(&probe))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let usage = match usage {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the work directory's disk usage; collecting by age only");
                None
            }
        };
        let max_age = max_allowed_age(
            config.gc_delay,
            config.gc_disk_headroom,
            usage.unwrap_or(0.0),
        );
        let counters = self.counters();
        counters
            .gc_max_allowed_age_secs
            .store(max_age.as_secs(), Ordering::Relaxed);
        if let Some(u) = usage {
            counters
                .gc_disk_usage_ppm
                .store((u * 1e6) as u64, Ordering::Relaxed);
        }
        let mut report = GcReport {
            disk_usage: usage,
            max_allowed_age: max_age,
            ..GcReport::default()
        };
        let now = SystemTime::now();
        let cz = self.containerizer();
        let mut due: Vec<_> = cz
            .containers()
            .into_iter()
            .filter_map(|id| {
                let age = now
                    .duration_since(cz.terminated_at(&id)?)
                    .unwrap_or_default();
                (age >= max_age).then_some((age, id))
            })
            .collect();
        // Oldest first, as Mesos prunes.
        due.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (age, id) in due {
            match cz.remove(&id).await {
                Ok(()) => {}
                // Removed meanwhile by REMOVE_CONTAINER.
                Err(berth_containerizer::Error::UnknownContainer { .. }) => continue,
                Err(e) => {
                    counters.gc_removals_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(container = %id, error = %e, "garbage collection failed to remove an ended container; retrying at the next pass");
                    continue;
                }
            }
            let sandbox = self.sandbox_of(&id);
            let removed = tokio::task::spawn_blocking(move || calls::remove_tree(&sandbox))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // The sandbox of a container no longer known: the next pass retries it.
                    counters.gc_removals_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(container = %id, error = %e, "garbage collection failed to remove a sandbox");
                }
            }
            counters
                .gc_containers_removed
                .fetch_add(1, Ordering::Relaxed);
            report.containers_removed += 1;
            tracing::info!(container = %id, age = ?age, max_allowed_age = ?max_age, disk_usage = usage, "garbage collected an ended container: its sandbox, termination and checkpoint are removed");
        }
        report.sandboxes_removed = self.collect_sandboxes().await;
        counters
            .gc_sandboxes_removed
            .fetch_add(report.sandboxes_removed as u64, Ordering::Relaxed);
        report
    }

    /// Counts orphan outcomes (from recovery or a periodic pass) in the metrics.
    pub fn count_orphans(&self, outcomes: &[OrphanOutcome]) {
        let c = self.counters();
        for o in outcomes {
            let counter = match o.action {
                OrphanAction::Removed => &c.orphans_removed,
                OrphanAction::WouldRemove => &c.orphans_would_remove,
                OrphanAction::Failed(_) => &c.orphans_failed,
                OrphanAction::Deferred(_) | OrphanAction::Kept => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One periodic orphan pass: containers with this agent's labels that no checkpoint knows,
    /// handled by the orphan policy (grace, dry run).
    pub async fn reconcile_orphans(&self) {
        match self.containerizer().reap_orphans().await {
            Ok(outcomes) => {
                if !outcomes.is_empty() {
                    tracing::debug!(orphans = outcomes.len(), "orphan reconciliation pass");
                }
                self.count_orphans(&outcomes);
            }
            Err(e) => {
                tracing::warn!(error = %e, "orphan reconciliation failed; retrying at the next pass")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_age_shrinks_with_disk_usage_as_in_mesos() {
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(max_allowed_age(week, 0.1, 0.0), week.mul_f64(0.9));
        assert_eq!(max_allowed_age(week, 0.1, 0.5), week.mul_f64(0.4));
        assert_eq!(max_allowed_age(week, 0.1, 0.95), Duration::ZERO);
        assert_eq!(max_allowed_age(week, 1.0, 0.0), Duration::ZERO);
        assert_eq!(max_allowed_age(week, 0.0, 0.0), week);
    }
}
