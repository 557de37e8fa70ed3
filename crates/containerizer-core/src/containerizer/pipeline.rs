//! The per-container task: launch (fetch, pull, mount, create, start), watch the process until
//! it exits, roll back a launch that was destroyed or failed, and finally resolve the
//! termination. One task per container, so `Finished` is applied exactly once.
//!
//! Before each side effect the task asks the state machine; once DESTROYING, the answer is
//! `Abort`, so a destroyed container is never started, whatever finished in the same instant.
//! Fetch, pull and mount are cancelled by dropping them when destroy fires the cancel token.
//! Create and start are not cancelled mid-request (the daemon might complete them anyway); they
//! are bounded by the launch deadline, and their result is rolled back.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use super::container::Container;
use super::Inner;
use crate::checkpoint::Durability;
use crate::engine::{EngineError, EngineErrorKind};
use crate::labels::{ownership, Ownership};
use crate::mapping::{map_launch, Mapped, MappingContext};
use crate::retry::Backoff;
use crate::seams::{FetchProgressFn, LiveOutput, LogTarget, OpenOutput};
use crate::state::{Action, Event, ExitInfo, Phase};

/// The most the retry loops wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Spawns the launch task of a new container, supervised.
pub(super) fn spawn_launch(inner: Arc<Inner>, c: Arc<Container>) {
    spawn_supervised(inner.clone(), c.clone(), async move {
        let exit = launch(&inner, &c).await;
        finish(&inner, &c, exit).await;
    });
}

/// Spawns `task` for `c`; if it panics (a bug), the container is ended instead of leaving its
/// waiters hanging.
pub(super) fn spawn_supervised(
    inner: Arc<Inner>,
    c: Arc<Container>,
    task: impl Future<Output = ()> + Send + 'static,
) {
    inner.clone().spawn(async move {
        if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(container_id = %c.id, panic = %what, "container task panicked");
            if let Action::Resolved(_) =
                inner.apply(&c, Event::Abandoned(format!("internal error: {what}")))
            {
                inner.persist(&c, Durability::Durable).await;
                schedule_removal(inner.clone(), c.clone());
            }
        }
    });
}

/// Applies `Finished`, checkpoints the termination and schedules the removal.
pub(super) async fn finish(inner: &Arc<Inner>, c: &Arc<Container>, exit: Option<ExitInfo>) {
    let action = inner.apply(c, Event::Finished(exit));
    inner.persist(c, Durability::Durable).await;
    if let Action::Resolved(_) = action {
        schedule_removal(inner.clone(), c.clone());
    }
}

/// Removes the container's Docker container `remove_delay` after its termination (Mesos's
/// `--docker_remove_delay`: only `docker rm` waits for it). The termination, the checkpoint and
/// the sandbox stay, so WAIT and the files API keep answering, until REMOVE_CONTAINER or the
/// agent's sandbox garbage collection removes them together.
pub(super) fn schedule_removal(inner: Arc<Inner>, c: Arc<Container>) {
    let since = c
        .rt()
        .terminated_at
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    let delay = inner.config.remove_delay.saturating_sub(since);
    inner.clone().spawn(async move {
        tokio::time::sleep(delay).await;
        let still_ours = inner.get(&c.id).is_some_and(|cur| Arc::ptr_eq(&cur, &c));
        if still_ours {
            match remove_docker_container(&inner, &c).await {
                Ok(()) => {
                    tracing::info!(container_id = %c.id, "Docker container removed after the remove delay; the termination and the sandbox are kept until REMOVE_CONTAINER or garbage collection")
                }
                Err(e) => {
                    tracing::warn!(container_id = %c.id, error = %e, "failed to remove terminated container")
                }
            }
        }
    });
}

/// Removes the container's own Docker container (by its id, or by name after checking its
/// labels); one already gone is not an error.
pub(super) async fn remove_docker_container(
    inner: &Inner,
    c: &Container,
) -> crate::error::Result<()> {
    use crate::error::Error;
    if let Some(target) = c.docker_id() {
        inner.engine.remove(&target).await.map_err(|e| {
            Error::engine(
                format!("failed to remove Docker container of '{}'", c.id),
                e,
            )
        })
    } else {
        remove_owned_by_name(inner, c).await.map_err(|e| {
            Error::engine(
                format!(
                    "failed to remove Docker container '{}' of '{}'",
                    c.name, c.id
                ),
                e,
            )
        })
    }
}

/// The launch deadline, shared by every stage but the pull (which has its own clocks).
struct Budget {
    total: Duration,
    left: Duration,
}

impl Budget {
    async fn bound<T>(
        &mut self,
        what: &str,
        fut: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let start = Instant::now();
        let result = tokio::time::timeout(self.left, fut).await;
        self.left = self.left.saturating_sub(start.elapsed());
        result.unwrap_or_else(|_| {
            Err(format!(
                "the launch did not finish within {}s (timed out while {what})",
                self.total.as_secs_f64()
            ))
        })
    }
}

/// Runs a cancellable stage and applies its outcome; true to go on.
async fn stage(
    inner: &Inner,
    c: &Container,
    fut: impl Future<Output = Result<(), String>>,
) -> bool {
    let result = tokio::select! {
        biased;
        _ = c.cancel.cancelled() => None,
        r = fut => Some(r),
    };
    match result {
        // Destroyed: the state is already DESTROYING.
        None => false,
        Some(Ok(())) => inner.apply(c, Event::StageDone) == Action::Proceed,
        Some(Err(cause)) => {
            inner.apply(c, Event::StageFailed(cause));
            false
        }
    }
}

fn prepare(inner: &Inner, c: &Container) -> Result<(Mapped, LogTarget), String> {
    let rt = c.rt();
    let spec = &rt.spec;
    let cfg = &inner.config;
    let ctx = MappingContext {
        agent_id: &cfg.agent_id,
        container_id: &c.id,
        name: &c.name,
        mapped_sandbox: &cfg.mapped_sandbox,
        allowed_host_roots: &cfg.allowed_host_roots,
        allow_privileged: cfg.allow_privileged,
        allowances: &cfg.allowances,
        cfs: cfg.cfs,
        host_memory: inner.host.memory,
        log_config: &cfg.docker_log,
        extra_labels: &cfg.extra_labels,
    };
    let mut mapped = map_launch(spec, &ctx).map_err(|e| e.to_string())?;
    // No swap beyond the memory limit unless asked for: OOM behaves the same with or without
    // host swap, and a later `update` can lower the limit.
    if mapped.create.host.memory_swap.is_none() {
        mapped.create.host.memory_swap = mapped
            .create
            .host
            .memory
            .map(|m| if m == 0 { -1 } else { m });
    }
    let target = log_target(c, spec);
    inner.logs.prepare(&target)?;
    Ok((mapped, target))
}

/// Who the sandbox belongs to: the container's user resolved on the agent host, as Mesos gives
/// the sandbox to the task's user, with the same resolution the logger uses for the log files
/// (a name from `/etc/passwd`, or a numeric `uid[:gid]`). `None` when no user is given.
pub(super) fn sandbox_owner(
    spec: &crate::spec::LaunchSpec,
) -> Result<Option<berth_logger::Owner>, crate::mapping::SpecError> {
    spec.effective_user()
        .map(|user| {
            berth_logger::resolve_user(user).map_err(|e| crate::mapping::SpecError::UnknownUser {
                user: user.to_owned(),
                reason: match e {
                    berth_logger::LoggerError::UnknownUser { reason, .. } => reason,
                    other => other.to_string(),
                },
            })
        })
        .transpose()
}

/// Gives the sandbox directory (itself; what the fetcher and logger put in it they give away
/// themselves) to `owner`, through a handle opened without following a link. Only root can;
/// an agent run as another user leaves it as it is.
fn give_sandbox(sandbox: &Path, owner: berth_logger::Owner) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        tracing::debug!(sandbox = %sandbox.display(), "not root: the sandbox keeps the agent's user");
        return Ok(());
    }
    berth_safe_fs::Dir::open(sandbox)
        .and_then(|d| d.set_owner(owner.uid, owner.gid))
        .map_err(|e| {
            format!(
                "failed to give sandbox '{}' to uid {} gid {}: {e}",
                sandbox.display(),
                owner.uid,
                owner.gid
            )
        })
}

pub(super) fn log_target(c: &Container, spec: &crate::spec::LaunchSpec) -> LogTarget {
    LogTarget {
        container: c.id.clone(),
        sandbox: spec.sandbox.clone(),
        user: spec.effective_user().map(str::to_owned),
        env: spec
            .command
            .environment
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The launch, then the life of the process. Returns how it exited, or `None` when the launch
/// was rolled back.
async fn launch(inner: &Arc<Inner>, c: &Arc<Container>) -> Option<ExitInfo> {
    let mut budget = Budget {
        total: inner.config.launch_timeout,
        left: inner.config.launch_timeout,
    };
    // Launch accepted: durable, so even a host crash cannot forget the container. Written in
    // the background (coalesced with the next stages' changes when they come fast); the later
    // stages only need to survive the agent (see `persist`).
    inner.persist_soon(c, Durability::Durable);

    // FETCHING (the spec is checked first, so a bad spec fails before anything is done).
    let (mut mapped, target) = match prepare(inner, c) {
        Ok(p) => p,
        Err(cause) => {
            inner.apply(c, Event::StageFailed(cause));
            return rollback(inner, c, false).await;
        }
    };
    let (uris, sandbox, user, owner) = {
        let rt = c.rt();
        (
            rt.spec.command.uris.clone(),
            rt.spec.sandbox.clone(),
            rt.spec.effective_user().map(str::to_owned),
            sandbox_owner(&rt.spec),
        )
    };
    let fetch = async {
        // A few mkdirs: cheaper inline than a hop to a blocking thread and back.
        std::fs::create_dir_all(&sandbox)
            .map_err(|e| format!("failed to create sandbox '{}': {e}", sandbox.display()))?;
        // Checked by `launch`; read again here, as the host's accounts are the operator's.
        if let Some(owner) = owner.map_err(|e| e.to_string())? {
            give_sandbox(&sandbox, owner)?;
        }
        if uris.is_empty() {
            return Ok(());
        }
        let progress: FetchProgressFn = {
            let c = c.clone();
            let changes = inner.changes.clone();
            Arc::new(move |p| {
                c.rt().fetch.update(p);
                let _no_subscribers = changes.send(crate::changes::Change {
                    container_id: c.id.clone(),
                    kind: crate::changes::ChangeKind::Progress,
                });
            })
        };
        inner
            .fetcher
            .fetch(&c.id, &uris, &sandbox, user.as_deref(), progress)
            .await
    };
    if !stage(inner, c, budget.bound("fetching", fetch)).await {
        return rollback(inner, c, false).await;
    }

    // PULLING
    inner.persist_soon(c, Durability::Lazy);
    let (image, force) = {
        let rt = c.rt();
        let docker = rt.spec.docker_info().expect("checked by launch");
        (docker.image.clone(), docker.force_pull_image)
    };
    let pull = inner.puller.ensure(&image, force, |p| {
        c.rt().pull = Some(p.clone());
        inner.announce(&c.id, crate::changes::ChangeKind::Progress);
    });
    if !stage(inner, c, pull).await {
        return rollback(inner, c, false).await;
    }

    // MOUNTING
    inner.persist_soon(c, Durability::Lazy);
    let mount = async {
        #[cfg(test)]
        if let Some(gate) = inner.mount_gate.get() {
            gate.pass(crate::testing::Op::Mount).await;
        }
        for dir in &mapped.volumes.sandbox_dirs {
            create_dirs(c, &sandbox, dir)?;
        }
        if !mapped.volumes.sandbox_dirs.is_empty() {
            // The directories made are in the checkpoint, so a roll-back after a restart removes
            // them too (not only the one that happened to be written after them).
            inner.persist_soon(c, Durability::Lazy);
        }
        check_named_volumes(inner, &mapped.volumes.named_volumes).await?;
        pin_host_paths(inner, c, &mut mapped).await
    };
    if !stage(inner, c, budget.bound("mounting volumes", mount)).await {
        return rollback(inner, c, false).await;
    }

    // RUNNING: create. The machine is asked right before the request: nothing may be created or
    // started after a destroy.
    inner.persist_soon(c, Durability::Lazy);
    if !c.rt().state.may_create() {
        return rollback(inner, c, false).await;
    }
    let created = budget
        .bound("creating the container", async {
            inner
                .engine
                .create(&c.name, &mapped.create)
                .await
                .map_err(|e| create_error(&c.name, &e))
        })
        .await;
    let docker_id = match created {
        Ok(id) => {
            if inner.apply(
                c,
                Event::Created {
                    docker_id: id.clone(),
                },
            ) != Action::Proceed
            {
                return rollback(inner, c, true).await;
            }
            id
        }
        Err(cause) => {
            inner.apply(c, Event::StageFailed(cause));
            return rollback(inner, c, true).await;
        }
    };

    // Attach to the output before the start, so the logger gets every byte, raw and as it is
    // written (Docker's copy holds a partial line back until its newline).
    let attached = budget
        .bound("attaching to the container's output", async {
            inner
                .engine
                .attach_output(&docker_id, mapped.create.tty)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    let live = match attached {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(container_id = %c.id, error = %e, "attaching to the container's output failed; its log is read from Docker's copy instead (a partial line appears at its newline)");
            None
        }
    };

    // Start.
    inner.persist_soon(c, Durability::Lazy);
    if !c.rt().state.may_start() {
        return rollback(inner, c, true).await;
    }
    let started = budget
        .bound("starting the container", async {
            inner
                .engine
                .start(&docker_id)
                .await
                .map_err(|e| format!("failed to start container '{}': {e}", c.name))
        })
        .await;
    if !mapped.volumes.host_binds.is_empty() {
        // runc has its own (privately propagated) copy now, or never will.
        inner.pins.release(&c.id);
    }
    // Mesos's health checker counts its delay and grace period from here.
    let started_at = std::time::SystemTime::now();
    let proceed = match started {
        Ok(()) => inner.apply(c, Event::Started) == Action::Proceed,
        Err(cause) => {
            inner.apply(c, Event::StageFailed(cause));
            false
        }
    };
    if !proceed {
        return rollback(inner, c, true).await;
    }
    if let Some(size) = mapped.tty_window_size {
        // Docker takes no size at create, so the TTY starts at its default for the moment
        // between start and here. A failed resize leaves that default: not worth failing a
        // launch whose process already runs.
        if let Err(e) = inner.engine.resize_tty(&docker_id, size).await {
            tracing::warn!(container_id = %c.id, rows = size.rows, columns = size.columns, error = %e, "failed to set the container's TTY window size; it keeps Docker's default");
        }
    }

    let (tty, docker_health) = match inner.engine.inspect(&docker_id).await {
        Ok(info) => {
            let mut rt = c.rt();
            rt.pid = info.pid;
            rt.ips = info.ip_addresses;
            (info.tty, info.health)
        }
        Err(e) => {
            tracing::warn!(container_id = %c.id, error = %e, "failed to inspect the started container");
            (false, None)
        }
    };
    attach_logger(inner, c, &docker_id, tty, target, false, live);
    // The one write the launch waits for, durable: `launch` never reports a container that a
    // restarted agent would not know (it would be reaped as an orphan).
    inner.persist(c, Durability::Durable).await;
    c.set_running();
    tracing::info!(container_id = %c.id, docker_id = %docker_id, "container running");
    super::health::spawn(inner, c, &docker_id, started_at, docker_health.as_ref());
    watch_exit(inner, c, &docker_id).await
}

fn create_error(name: &str, e: &EngineError) -> String {
    match e.kind {
        EngineErrorKind::Conflict => {
            format!("failed to create container '{name}': the name is taken by another Docker container: {e}")
        }
        _ => format!("failed to create container '{name}': {e}"),
    }
}

/// Creates `dir` (inside `sandbox`) and any missing parents, recording each one made so a
/// roll-back removes them. The sandbox may hold what the fetcher put there (an archive's
/// symbolic links): every step is taken beneath the sandbox opened once, following no link, and
/// the directory must in the end be reached without one, since Docker follows links when it
/// binds it (a link to `/` would give the container the host's root).
fn create_dirs(c: &Container, sandbox: &Path, dir: &Path) -> Result<(), String> {
    let failed = |e: std::io::Error| {
        if berth_safe_fs::is_refused(&e) {
            format!(
                "failed to create volume directory '{}': the sandbox has a symbolic link or special file on its path ({e}); links are not followed there, as Docker would follow them out of the sandbox",
                dir.display()
            )
        } else {
            format!("failed to create volume directory '{}': {e}", dir.display())
        }
    };
    let rel = dir.strip_prefix(sandbox).map_err(|_| {
        format!(
            "volume directory '{}' is not inside the sandbox '{}'",
            dir.display(),
            sandbox.display()
        )
    })?;
    // Inline, like the sandbox: a few syscalls per level, none of which can block.
    let root = berth_safe_fs::Dir::open(sandbox).map_err(failed)?;
    let mut cur = std::path::PathBuf::new();
    for part in rel.components() {
        cur.push(part);
        match root.create_dir(&cur, 0o777) {
            Ok(()) => c.rt().created_dirs.push(sandbox.join(&cur)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(e)),
        }
    }
    root.open_dir(rel).map(drop).map_err(failed)
}

/// Refuses existing named volumes a caller may not attach: ones this agent's launches did not
/// create (the operator's, another agent's: they may bind anything on the host), unless the
/// operator listed them with `--allowed-volume`, and ones whose driver options the caller policy
/// would refuse today. A volume that does not exist yet is created by Docker with the options
/// the mapping has checked.
async fn check_named_volumes(inner: &Inner, names: &[String]) -> Result<(), String> {
    use crate::mapping::policy::{check_volume, VolumeKind};
    let cfg = &inner.config;
    for name in names {
        let info = inner
            .engine
            .volume(name)
            .await
            .map_err(|e| format!("failed to inspect Docker volume '{name}': {e}"))?;
        let Some(info) = info else { continue };
        if cfg.allowances.volumes.contains(name) {
            continue;
        }
        let ours = info.labels.get(crate::labels::AGENT_ID).map(String::as_str)
            == Some(cfg.agent_id.as_str());
        let managed = matches!(
            check_volume(
                name,
                Some(&info.driver),
                &info.options,
                cfg.allow_privileged,
                &cfg.allowances
            ),
            Ok(VolumeKind::Managed)
        );
        if ours && managed {
            continue;
        }
        let why = if ours {
            "its driver or driver options reach the host"
        } else {
            "it exists and was not created by this agent's launches, so it may hold or bind \
             anything on the host"
        };
        return Err(crate::mapping::SpecError::NotAllowed {
            what: format!("Docker volume '{name}'"),
            why: why.to_owned(),
            flag: format!("--allowed-volume {name}"),
        }
        .to_string());
    }
    Ok(())
}

/// Resolves each absolute host path beneath its allowed root and pins it (see
/// `crate::hostpath`); the mounts then name the pins.
async fn pin_host_paths(
    inner: &Arc<Inner>,
    c: &Container,
    mapped: &mut Mapped,
) -> Result<(), String> {
    let binds = mapped.volumes.host_binds.clone();
    if binds.is_empty() {
        return Ok(());
    }
    let (inner2, id) = (inner.clone(), c.id.clone());
    let pinned = tokio::task::spawn_blocking(move || {
        // Pins of an earlier launch of this id that an abandoned launch left behind.
        inner2.pins.release(&id);
        let pinned = binds
            .iter()
            .enumerate()
            .map(|(n, b)| {
                let fd = inner2.roots.resolve(&b.path)?;
                Ok((b.mount, inner2.pins.pin(&id, n, &fd)?))
            })
            .collect::<Result<Vec<_>, String>>();
        if pinned.is_err() {
            inner2.pins.release(&id);
        }
        pinned
    })
    .await
    .map_err(|e| format!("pinning host paths failed: {e}"))??;
    for (i, pin) in pinned {
        mapped.create.host.mounts[i].source = pin.to_string_lossy().into_owned();
    }
    Ok(())
}

/// Starts the logger on the container's output (`resume` after an agent restart; `live`: the
/// output attached before the start).
pub(super) fn attach_logger(
    inner: &Arc<Inner>,
    c: &Container,
    docker_id: &str,
    tty: bool,
    target: LogTarget,
    resume: bool,
    live: Option<LiveOutput>,
) {
    let engine = inner.engine.clone();
    let docker_id = docker_id.to_owned();
    let open: OpenOutput =
        Arc::new(move |since, follow| engine.logs(&docker_id, tty, since, follow));
    // Not cancelled with the other tasks: on shutdown the logger gets `stopping` and flushes.
    let task =
        inner.tasks.spawn(
            inner
                .logs
                .run(target, resume, live, open, inner.stopping.clone()),
        );
    c.rt().log_task = Some(task);
}

/// Waits for the process to exit, then collects how (inspect) and drains the logger.
pub(super) async fn watch_exit(
    inner: &Arc<Inner>,
    c: &Arc<Container>,
    docker_id: &str,
) -> Option<ExitInfo> {
    let mut backoff = Backoff::new(inner.config.retry_backoff, MAX_BACKOFF);
    let code = loop {
        match inner.engine.wait(docker_id).await {
            Ok(code) => break Some(code),
            Err(e) if e.is_not_found() => break None,
            Err(e) => {
                tracing::warn!(container_id = %c.id, error = %e, "waiting for the container failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                // The wait may have failed because the container is already down.
                match inner.engine.inspect(docker_id).await {
                    Ok(info) if !info.running => break Some(info.exit_code),
                    Err(e) if e.is_not_found() => break None,
                    _ => {}
                }
            }
        }
    };
    inner.apply(c, Event::ExitObserved);
    let exit = match code {
        None => None,
        Some(code) => Some(match inspect_exit(inner, docker_id).await {
            Ok(info) => ExitInfo {
                exit_code: info.exit_code,
                oom_killed: info.oom_killed,
                memory_limit: info.memory_limit,
            },
            Err(e) => {
                tracing::warn!(container_id = %c.id, error = %e, "inspect after exit failed; OOM state unknown");
                ExitInfo {
                    exit_code: code,
                    oom_killed: false,
                    memory_limit: None,
                }
            }
        }),
    };
    drain_logger(inner, c).await;
    exit
}

/// How long a SIGKILL exit of a memory-limited container waits for Docker's OOM flag.
const OOM_FLAG_GRACE: Duration = Duration::from_millis(500);

/// Inspects an exited container for its exit code and `OOMKilled`.
///
/// Docker sets `OOMKilled` from an OOM event of its own, which can be handled just after the exit
/// (seen on 20.10 with cgroup v1 under load). So an exit by SIGKILL (137) of a container with a
/// memory limit, not (yet) flagged, is looked at again for a short while before it is taken for a
/// plain kill. The flag is still the only evidence: 137 alone never means OOM.
async fn inspect_exit(
    inner: &Inner,
    docker_id: &str,
) -> Result<crate::engine::Inspected, EngineError> {
    let deadline = Instant::now() + OOM_FLAG_GRACE;
    loop {
        let info = inner.engine.inspect(docker_id).await?;
        let maybe_late_flag =
            info.exit_code == 137 && !info.oom_killed && info.memory_limit.is_some();
        if !maybe_late_flag || Instant::now() >= deadline {
            return Ok(info);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn drain_logger(inner: &Inner, c: &Container) {
    let task = c.rt().log_task.take();
    if let Some(task) = task {
        match tokio::time::timeout(inner.config.log_drain_timeout, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(container_id = %c.id, error = %e, "logger failed"),
            Ok(Err(e)) => tracing::warn!(container_id = %c.id, error = %e, "logger task failed"),
            Err(_) => {
                tracing::warn!(container_id = %c.id, "logger did not drain in time; reporting the termination anyway")
            }
        }
    }
}

/// Undoes a launch: removes the Docker container if one may exist, and the directories MOUNTING
/// created. Returns no exit: the process never ran to its end.
pub(super) async fn rollback(
    inner: &Arc<Inner>,
    c: &Arc<Container>,
    maybe_created: bool,
) -> Option<ExitInfo> {
    debug_assert_eq!(c.phase(), Phase::Destroying);
    let mut backoff = Backoff::new(inner.config.retry_backoff, MAX_BACKOFF);
    for attempt in 0..5 {
        let result = match c.docker_id() {
            Some(id) => inner.engine.remove(&id).await,
            None if maybe_created => remove_owned_by_name(inner, c).await,
            None => Ok(()),
        };
        match result {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(container_id = %c.id, attempt, error = %e, "failed to remove the half-launched container");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    let (from_fetching, sandbox) = {
        let rt = c.rt();
        let from = match &rt.state {
            crate::state::State::Destroying(t) => Some(t.from),
            _ => None,
        };
        (from == Some(Phase::Fetching), rt.spec.sandbox.clone())
    };
    if from_fetching {
        inner.fetcher.discard_partials(&sandbox);
    }
    inner.pins.release(&c.id);
    let dirs = std::mem::take(&mut c.rt().created_dirs);
    if !dirs.is_empty() {
        // Only empty directories, reached without a link (the container may have run and put
        // one on the way): nothing the container wrote is deleted, nothing outside is touched.
        let id = c.id.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let root = berth_safe_fs::Dir::open(&sandbox)?;
            for dir in dirs.iter().rev() {
                let removed = dir
                    .strip_prefix(&sandbox)
                    .map_err(std::io::Error::other)
                    .and_then(|rel| root.remove_dir(rel));
                if let Err(e) = removed {
                    tracing::debug!(container_id = %id, dir = %dir.display(), error = %e, "volume directory left in place");
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        if let Ok(Err(e)) = removed {
            tracing::debug!(container_id = %c.id, error = %e, "volume directories left in place");
        }
    }
    None
}

/// Removes the Docker container with this container's name, if its labels say it is ours.
pub(super) async fn remove_owned_by_name(inner: &Inner, c: &Container) -> Result<(), EngineError> {
    match inner.engine.inspect(&c.name).await {
        Ok(info) => match ownership(&info.labels, &inner.config.agent_id) {
            Ownership::Ours(id) if id == c.id => inner.engine.remove(&info.id).await,
            _ => {
                tracing::warn!(container_id = %c.id, name = %c.name, "a Docker container with this name is not ours; leaving it");
                Ok(())
            }
        },
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Stops a running container (its stop signal, SIGKILL after `grace`), retrying until it is
/// down: a failed kill is never abandoned.
pub(super) async fn stop_until_down(
    inner: Arc<Inner>,
    c: Arc<Container>,
    docker_id: String,
    grace: Duration,
) {
    let mut backoff = Backoff::new(inner.config.retry_backoff, MAX_BACKOFF);
    loop {
        if c.phase() == Phase::Terminated {
            return;
        }
        match inner.engine.stop(&docker_id, grace).await {
            Ok(()) => return,
            Err(e) if e.is_not_found() => return,
            Err(e) => {
                let retry_in = backoff.next_delay();
                tracing::warn!(container_id = %c.id, error = %e, ?retry_in, "failed to stop container; retrying");
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Sends `signal`, retrying until delivered or the process is gone.
pub(super) async fn signal_until_delivered(
    inner: Arc<Inner>,
    c: Arc<Container>,
    docker_id: String,
    signal: i32,
) {
    let mut backoff = Backoff::new(inner.config.retry_backoff, MAX_BACKOFF);
    loop {
        if c.phase() == Phase::Terminated {
            return;
        }
        match inner.engine.kill(&docker_id, signal).await {
            Ok(()) => return,
            // Not found, or not running any more: nothing left to signal.
            Err(e)
                if matches!(
                    e.kind,
                    EngineErrorKind::NotFound | EngineErrorKind::Conflict
                ) =>
            {
                return
            }
            Err(e) => {
                let retry_in = backoff.next_delay();
                tracing::warn!(container_id = %c.id, signal, error = %e, ?retry_in, "failed to signal container; retrying");
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}
