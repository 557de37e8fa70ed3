//! [`DockerEngine`]: the [`Engine`] seam over `berth-docker-api`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_docker_api as api;
use futures_util::StreamExt;

use crate::engine::*;
use crate::exec_process;
use crate::mapping::{CreateSpec, MountKind, MountSpec};
use crate::spec::WindowSize;

/// The Docker Engine API behind the [`Engine`] seam.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: api::Docker,
    credentials: Option<api::DockerConfig>,
}

impl DockerEngine {
    /// Uses `docker` for every call, with no registry credentials.
    pub fn new(docker: api::Docker) -> DockerEngine {
        DockerEngine {
            docker,
            credentials: None,
        }
    }

    /// Connects to the daemon `DOCKER_HOST` names (else the default socket).
    pub async fn from_env() -> Result<DockerEngine, EngineError> {
        let docker = api::Docker::from_env()
            .await
            .map_err(|e| convert("connecting to Docker", e))?;
        Ok(DockerEngine::new(docker))
    }

    /// Pulls with the credentials of a Docker `config.json` (its `auths` section).
    pub fn with_registry_config(mut self, path: &Path) -> Result<DockerEngine, EngineError> {
        let config = api::DockerConfig::load(path)
            .map_err(|e| convert("reading registry credentials", e))?;
        self.credentials = Some(config);
        Ok(self)
    }

    /// The client.
    pub fn docker(&self) -> &api::Docker {
        &self.docker
    }

    fn auth_for(&self, image: &str) -> Result<Option<api::RegistryAuth>, EngineError> {
        let Some(config) = &self.credentials else {
            return Ok(None);
        };
        let reference = api::ImageReference::parse(image).map_err(|e| convert("pulling", e))?;
        let registry = reference
            .registry
            .unwrap_or_else(|| "https://index.docker.io/v1/".to_owned());
        config
            .auth_for(&registry)
            .map_err(|e| convert("reading registry credentials", e))
    }
}

/// The Docker error as this crate's, keeping the daemon's message (which names the container,
/// image and registry).
/// Docker's output frames as chunks (a TTY's console counts as stdout; stdin frames dropped).
fn output_chunks(
    frames: api::LogFrames,
    what: &'static str,
) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
    Box::pin(frames.filter_map(move |item| async move {
        match item {
            Ok(frame) => {
                let kind = match frame.stream {
                    api::LogStream::Stdout | api::LogStream::Console => OutputKind::Stdout,
                    api::LogStream::Stderr => OutputKind::Stderr,
                    api::LogStream::Stdin => return None,
                };
                Some(Ok(OutputChunk {
                    kind,
                    timestamp: frame.timestamp,
                    data: frame.data,
                }))
            }
            Err(e) => Some(Err(convert(what, e))),
        }
    }))
}

fn convert(what: &str, e: api::Error) -> EngineError {
    let kind = if e.is_not_found() {
        EngineErrorKind::NotFound
    } else if e.is_conflict() {
        EngineErrorKind::Conflict
    } else if e.is_transient() {
        EngineErrorKind::Transient
    } else {
        EngineErrorKind::Permanent
    };
    EngineError::new(kind, format!("{what}: {e}"))
}

/// `VolumeOptions` of a named-volume mount: the driver (and its options) Docker creates the
/// volume with on first use, and the labels it gets then.
fn volume_options(m: &MountSpec) -> Option<api::VolumeOptions> {
    if m.kind != MountKind::Volume {
        return None;
    }
    let driver_config =
        (m.driver.is_some() || !m.driver_options.is_empty()).then(|| api::VolumeDriver {
            name: Some(m.driver.clone().unwrap_or_else(|| "local".to_owned())),
            options: m
                .driver_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    if driver_config.is_none() && m.volume_labels.is_empty() {
        return None;
    }
    Some(api::VolumeOptions {
        no_copy: None,
        labels: m
            .volume_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        driver_config,
    })
}

/// The create body in the client's types.
pub fn create_body(spec: &CreateSpec) -> Result<api::ContainerConfig, EngineError> {
    let h = &spec.host;
    let mut mounts = Vec::with_capacity(h.mounts.len());
    for m in &h.mounts {
        mounts.push(api::Mount {
            kind: Some(match m.kind {
                MountKind::Bind => "bind".to_owned(),
                MountKind::Volume => "volume".to_owned(),
            }),
            source: Some(m.source.clone()),
            target: Some(m.target.clone()),
            read_only: Some(m.read_only),
            volume_options: volume_options(m),
            ..Default::default()
        });
    }
    let port_bindings: HashMap<String, Vec<api::PortBinding>> = h
        .port_bindings
        .iter()
        .map(|(k, ports)| {
            let bindings = ports
                .iter()
                .map(|p| api::PortBinding {
                    host_ip: None,
                    host_port: Some(p.to_string()),
                })
                .collect();
            (k.clone(), bindings)
        })
        .collect();
    let host = api::HostConfig {
        mounts: Some(mounts),
        network_mode: Some(h.network_mode.clone()),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        privileged: Some(h.privileged),
        cap_add: non_empty(&h.cap_add),
        cap_drop: non_empty(&h.cap_drop),
        devices: (!h.devices.is_empty()).then(|| {
            h.devices
                .iter()
                .map(|d| api::DeviceMapping {
                    path_on_host: Some(d.path_on_host.clone()),
                    path_in_container: Some(d.path_in_container.clone()),
                    cgroup_permissions: Some(d.cgroup_permissions.clone()),
                })
                .collect()
        }),
        dns: non_empty(&h.dns),
        dns_search: non_empty(&h.dns_search),
        dns_options: non_empty(&h.dns_options),
        extra_hosts: non_empty(&h.extra_hosts),
        ulimits: (!h.ulimits.is_empty()).then(|| {
            h.ulimits
                .iter()
                .map(|u| api::Ulimit {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        security_opt: non_empty(&h.security_opt),
        tmpfs: (!h.tmpfs.is_empty()).then(|| {
            h.tmpfs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        shm_size: h.shm_size,
        pids_limit: h.pids_limit,
        init: h.init,
        readonly_rootfs: Some(h.read_only_rootfs),
        memory: h.memory,
        memory_reservation: h.memory_reservation,
        memory_swap: h.memory_swap,
        oom_score_adj: h.oom_score_adj,
        cpu_shares: h.cpu_shares,
        cpu_quota: h.cpu_quota,
        cpu_period: h.cpu_period,
        log_config: h.log_config.as_ref().map(|l| api::LogConfig {
            kind: Some(l.driver.clone()),
            config: Some(
                l.options
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }),
        // Never: the container must outlive its exit so it can be inspected.
        auto_remove: Some(false),
        ..Default::default()
    };
    Ok(api::ContainerConfig {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.clone()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        stop_signal: spec.stop_signal.clone(),
        tty: Some(spec.tty),
        // A TTY container's stdin is open for a client to attach to (as Mesos's I/O switchboard
        // gives a container with a TTY); nothing writes to it until one does.
        open_stdin: Some(spec.tty),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        exposed_ports: (!spec.exposed_ports.is_empty()).then(|| {
            spec.exposed_ports
                .iter()
                .map(|p| (p.clone(), api::Empty {}))
                .collect()
        }),
        host_config: Some(host),
        ..Default::default()
    })
}

impl DockerEngine {
    /// Creates an exec in container `id` and starts it attached; `what` names it in errors
    /// ("the session's exec").
    async fn create_and_start_exec(
        &self,
        id: &str,
        config: &api::ExecConfig,
        what: &str,
    ) -> Result<(String, api::Attached), EngineError> {
        let execs = self.docker.exec();
        let exec_id = execs
            .create(id, config)
            .await
            .map_err(|e| convert(&format!("creating {what}"), e))?;
        let attached = execs
            .start(&exec_id)
            .await
            .map_err(|e| convert(&format!("starting {what}"), e))?;
        Ok((exec_id, attached))
    }

    /// Kills exec `exec_id`'s process and its process group (through pidfds, never a pid that
    /// may have been reused); one that already ended is left alone.
    async fn kill_exec(&self, exec_id: &str) -> Result<(), EngineError> {
        let Some(process) = exec_process::find(self, exec_id).await else {
            return Ok(());
        };
        process.kill_group().map_err(|e| {
            EngineError::new(
                EngineErrorKind::Permanent,
                format!("killing the process of exec {exec_id}: {e}"),
            )
        })
    }
}

/// Docker's form of a terminal size.
fn tty_size(size: WindowSize) -> api::TtySize {
    api::TtySize {
        rows: size.rows,
        columns: size.columns,
    }
}

fn non_empty(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn inspected(i: api::ContainerInspect) -> Inspected {
    let tty = i.tty();
    let state = &i.state;
    let ever_started = state.started().is_some() || state.running;
    Inspected {
        name: i.short_name().to_owned(),
        labels: i
            .config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        status: format!("{:?}", state.status).to_ascii_lowercase(),
        running: state.running,
        pid: (state.pid > 0).then_some(state.pid as u32),
        exit_code: state.exit_code,
        oom_killed: state.oom_killed,
        ever_started,
        tty,
        ip_addresses: i
            .network_settings
            .ip_addresses()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        memory_limit: i.host_config.memory.filter(|m| *m > 0).map(|m| m as u64),
        enforced: Enforced::from_host_config(
            i.host_config.cpu_shares,
            i.host_config.cpu_quota,
            i.host_config.cpu_period,
            i.host_config.memory,
            i.host_config.memory_reservation,
        ),
        stop_signal: i.config.stop_signal.clone(),
        created: i.created.as_deref().and_then(api::time::parse_rfc3339),
        health: state.health.as_ref().map(|h| {
            // Docker keeps the last few runs, oldest first.
            let last = h.log.last();
            DockerHealth {
                status: h.status.clone(),
                failing_streak: h.failing_streak.max(0) as u64,
                last_output: last.map(|r| r.output.clone()),
                last_exit_code: last.map(|r| r.exit_code),
                last_end: last.and_then(|r| api::time::parse_rfc3339(&r.end)),
            }
        }),
        id: i.id,
    }
}

/// Keeps the last `limit` bytes of what is appended.
fn push_tail(buf: &mut Vec<u8>, data: &[u8], limit: usize) {
    buf.extend_from_slice(data);
    if buf.len() > limit {
        buf.drain(..buf.len() - limit);
    }
}

impl Engine for DockerEngine {
    fn image_present<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            match self.docker.images().inspect(image).await {
                Ok(_) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(convert(&format!("inspecting image '{image}'"), e)),
            }
        })
    }

    fn pull(&self, image: &str) -> BoxStream<'static, Result<PullProgress, EngineError>> {
        let auth = match self.auth_for(image) {
            Ok(a) => a,
            Err(e) => return Box::pin(futures_util::stream::once(async move { Err(e) })),
        };
        let options = api::PullOptions {
            auth,
            ..Default::default()
        };
        let stream = self.docker.images().pull(image, &options);
        let mut extracted: HashMap<String, u64> = HashMap::new();
        let image = image.to_owned();
        Box::pin(stream.map(move |item| {
            let p = item.map_err(|e| convert(&format!("pulling image '{image}'"), e))?;
            if let Some(layer) = &p.layer {
                extracted.insert(layer.id.clone(), layer.extracted);
            }
            Ok(PullProgress {
                layers: p.totals.layers,
                layers_done: p.totals.layers_finished,
                downloaded: p.totals.downloaded,
                download_total: p.totals.known_size,
                extracted: extracted.values().sum(),
                status: match (&p.message.status, &p.message.id) {
                    (Some(s), Some(id)) => format!("{s} {id}"),
                    (Some(s), None) => s.clone(),
                    _ => String::new(),
                },
            })
        }))
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let body = create_body(spec)?;
            let created = self
                .docker
                .containers()
                .create(Some(name), &body)
                .await
                .map_err(|e| convert("create", e))?;
            for w in &created.warnings {
                tracing::warn!(container = name, warning = %w, "Docker warned at create");
            }
            Ok(created.id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            match self.docker.containers().start(id).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_modified() => Ok(()),
                Err(e) => Err(convert("start", e)),
            }
        })
    }

    fn resize_tty<'a>(
        &'a self,
        id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.docker
                .containers()
                .resize(id, tty_size(size))
                .await
                .map_err(|e| convert("resizing the TTY", e))
        })
    }

    fn attach_input<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFut<'a, Result<crate::engine::InputBox, EngineError>> {
        Box::pin(async move {
            let options = api::AttachOptions {
                stdin: true,
                stdout: false,
                stderr: false,
                logs: false,
                tty: Some(true),
            };
            let attached = self
                .docker
                .containers()
                .attach(id, options)
                .await
                .map_err(|e| convert("attaching to the container's stdin", e))?;
            Ok(Box::pin(StdinOnly {
                input: attached.input,
                _output: attached.output,
            }) as crate::engine::InputBox)
        })
    }

    fn start_exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a SessionExec,
    ) -> BoxFut<'a, Result<StartedExec, EngineError>> {
        Box::pin(async move {
            let config = api::ExecConfig {
                cmd: exec.argv.clone(),
                env: non_empty(&exec.env),
                user: exec.user.clone(),
                tty: exec.tty,
                attach_stdin: exec.stdin,
                attach_stdout: true,
                attach_stderr: true,
                ..Default::default()
            };
            let (exec_id, attached) = self
                .create_and_start_exec(id, &config, "the session's exec")
                .await?;
            let input: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>> =
                exec.stdin.then(|| Box::pin(attached.input) as _);
            Ok(StartedExec {
                exec_id,
                output: output_chunks(attached.output, "reading the session's output"),
                input,
            })
        })
    }

    fn exec_state<'a>(&'a self, exec_id: &'a str) -> BoxFut<'a, Result<ExecState, EngineError>> {
        Box::pin(async move {
            let i = self
                .docker
                .exec()
                .inspect(exec_id)
                .await
                .map_err(|e| convert("inspecting the session's exec", e))?;
            Ok(ExecState {
                running: i.running,
                exit_code: if i.running { None } else { i.exit_code },
                pid: (i.pid > 0).then_some(i.pid as u32),
            })
        })
    }

    fn resize_exec<'a>(
        &'a self,
        exec_id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.docker
                .exec()
                .resize(exec_id, tty_size(size))
                .await
                .map_err(|e| convert("resizing the session's TTY", e))
        })
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<VolumeInfo>, EngineError>> {
        Box::pin(async move {
            match self.docker.volumes().inspect(name).await {
                Ok(v) => Ok(Some(VolumeInfo {
                    driver: v.driver,
                    options: v.options.into_iter().collect(),
                    labels: v.labels.into_iter().collect(),
                })),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(convert(&format!("inspecting volume '{name}'"), e)),
            }
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Inspected, EngineError>> {
        Box::pin(async move {
            let i = self
                .docker
                .containers()
                .inspect(id)
                .await
                .map_err(|e| convert("inspect", e))?;
            Ok(inspected(i))
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<i64, EngineError>> {
        Box::pin(async move {
            let r = self
                .docker
                .containers()
                .wait(id, api::WaitCondition::NotRunning)
                .await
                .map_err(|e| convert("wait", e))?;
            Ok(r.status_code)
        })
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let signal = signal.to_string();
            self.docker
                .containers()
                .kill(id, Some(&signal))
                .await
                .map_err(|e| convert("kill", e))
        })
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            match self.docker.containers().stop(id, Some(grace)).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_modified() => Ok(()),
                Err(e) => Err(convert("stop", e)),
            }
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let options = api::RemoveContainerOptions {
                force: true,
                volumes: true,
            };
            match self.docker.containers().remove(id, options).await {
                Ok(()) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                // Removal already in progress (another remove, or a daemon-side one).
                Err(e) if e.is_conflict() && e.to_string().contains("already in progress") => {
                    Ok(())
                }
                Err(e) => Err(convert("remove", e)),
            }
        })
    }

    fn list_labelled<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFut<'a, Result<Vec<ContainerSummary>, EngineError>> {
        Box::pin(async move {
            let options = api::ListContainersOptions {
                all: true,
                filters: api::Filters::new().label(key),
                ..Default::default()
            };
            let list = self
                .docker
                .containers()
                .list(&options)
                .await
                .map_err(|e| convert("list containers", e))?;
            Ok(list
                .into_iter()
                .map(|s| ContainerSummary {
                    names: s
                        .names
                        .iter()
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .collect(),
                    labels: s.labels.into_iter().collect::<BTreeMap<_, _>>(),
                    state: format!("{:?}", s.state).to_ascii_lowercase(),
                    created: u64::try_from(s.created)
                        .ok()
                        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
                    id: s.id,
                })
                .collect())
        })
    }

    fn logs(
        &self,
        id: &str,
        tty: bool,
        since: Option<SystemTime>,
        follow: bool,
    ) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
        let options = api::LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            since,
            timestamps: true,
            // Known from the spec it was created with: saves an inspect per log stream.
            tty: Some(tty),
            ..Default::default()
        };
        output_chunks(
            self.docker.containers().logs(id, &options),
            "reading the container's logs",
        )
    }

    fn attach_output<'a>(
        &'a self,
        id: &'a str,
        tty: bool,
    ) -> BoxFut<'a, Result<crate::engine::OutputStreamBox, EngineError>> {
        Box::pin(async move {
            let options = api::AttachOptions {
                stdin: false,
                stdout: true,
                stderr: true,
                logs: false,
                // Known from the spec it was created with: saves an inspect per launch.
                tty: Some(tty),
            };
            let attached = self
                .docker
                .containers()
                .attach(id, options)
                .await
                .map_err(|e| convert("attaching to the container's output", e))?;
            // No stdin is attached: the write half is not needed.
            drop(attached.input);
            Ok(output_chunks(
                attached.output,
                "reading the container's attached output",
            ))
        })
    }

    fn stats<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<StatsSample, EngineError>> {
        Box::pin(async move {
            let s = self
                .docker
                .containers()
                .stats_snapshot(id)
                .await
                .map_err(|e| convert("stats", e))?;
            let cpu = &s.cpu_stats;
            let net = (!s.networks.is_empty()).then(|| {
                s.networks
                    .values()
                    .fold(NetCounters::default(), |mut acc, n| {
                        acc.rx_bytes += n.rx_bytes;
                        acc.tx_bytes += n.tx_bytes;
                        acc.rx_packets += n.rx_packets;
                        acc.tx_packets += n.tx_packets;
                        acc.rx_errors += n.rx_errors;
                        acc.tx_errors += n.tx_errors;
                        acc
                    })
            });
            Ok(StatsSample {
                cpu_user_ns: Some(cpu.cpu_usage.usage_in_usermode),
                cpu_system_ns: Some(cpu.cpu_usage.usage_in_kernelmode),
                cfs_periods: Some(cpu.throttling_data.periods),
                cfs_throttled_periods: Some(cpu.throttling_data.throttled_periods),
                cfs_throttled_ns: Some(cpu.throttling_data.throttled_time),
                mem_usage: s.memory_stats.usage,
                mem_stats: s
                    .memory_stats
                    .stats
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                tasks: s.pids_stats.current,
                net,
            })
        })
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a ExecSpec,
    ) -> BoxFut<'a, Result<ExecResult, EngineError>> {
        Box::pin(async move {
            let config = api::ExecConfig {
                env: non_empty(&exec.env),
                user: exec.user.clone(),
                ..api::ExecConfig::command(exec.argv.iter().cloned())
            };
            let (exec_id, mut attached) = self
                .create_and_start_exec(id, &config, "the health check's exec")
                .await?;
            drop(attached.input);
            // Only the tail is kept, so a check printing without end costs a bounded buffer.
            let mut output = Vec::new();
            let read = async {
                while let Some(frame) = attached.output.next().await {
                    let frame =
                        frame.map_err(|e| convert("reading the health check's output", e))?;
                    if frame.stream != api::LogStream::Stdin {
                        push_tail(&mut output, &frame.data, EXEC_OUTPUT_LIMIT);
                    }
                }
                Ok::<_, EngineError>(())
            };
            let timed_out = match exec.timeout {
                None => read.await.map(|()| false)?,
                Some(limit) => match tokio::time::timeout(limit, read).await {
                    Ok(read) => read.map(|()| false)?,
                    Err(_) => {
                        self.kill_exec(&exec_id).await?;
                        true
                    }
                },
            };
            match exec_process::ended(self, &exec_id).await? {
                Some(ExecState {
                    exit_code: Some(exit_code),
                    ..
                }) => Ok(ExecResult {
                    exit_code,
                    timed_out,
                    output,
                }),
                _ => Err(EngineError::new(
                    EngineErrorKind::Transient,
                    format!(
                        "the health check's exec {exec_id} ended its output, \
                         but Docker reports no exit code for it"
                    ),
                )),
            }
        })
    }

    fn processes<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move {
            let top = self
                .docker
                .containers()
                .top(id, None)
                .await
                .map_err(|e| convert("top", e))?;
            Ok(top.processes.len() as u64)
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        update: &'a ResourceUpdate,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let r = api::UpdateResources {
                cpu_shares: update.cpu_shares,
                cpu_quota: update.cpu_quota,
                cpu_period: update.cpu_period,
                memory: update.memory,
                memory_reservation: update.memory_reservation,
                memory_swap: update.memory_swap,
                ..Default::default()
            };
            let result = self
                .docker
                .containers()
                .update(id, &r)
                .await
                .map_err(|e| convert("update", e))?;
            for w in &result.warnings {
                tracing::warn!(container = id, warning = %w, "Docker warned at update");
            }
            Ok(())
        })
    }
}

/// A container's stdin attachment; its output half (which carries nothing: no stream was asked
/// for) is kept only so the connection stays whole.
struct StdinOnly {
    input: api::AttachInput,
    _output: api::LogFrames,
}

impl tokio::io::AsyncWrite for StdinOnly {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.input).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.input).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.input).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::mapping::LogConfigSpec;

    fn spec() -> CreateSpec {
        let mut s = CreateSpec {
            image: "busybox:latest".into(),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec!["true".into()]),
            env: vec!["A=b".into()],
            labels: BTreeMap::from([("io.berth.agent-id".into(), "a".into())]),
            ..CreateSpec::default()
        };
        s.host.network_mode = "bridge".into();
        s.host.mounts.push(MountSpec {
            kind: MountKind::Bind,
            source: "/sb:with:colons".into(),
            target: "/mnt/mesos/sandbox".into(),
            read_only: false,
            driver: None,
            driver_options: BTreeMap::new(),
            volume_labels: BTreeMap::new(),
        });
        s.host.port_bindings.insert("80/tcp".into(), vec![31000]);
        s.exposed_ports.insert("80/tcp".into());
        s.host.memory = Some(64 << 20);
        s.host.log_config = Some(LogConfigSpec::json_file(1 << 20, 2));
        s
    }

    #[test]
    fn create_body_carries_the_mapping() {
        let body = create_body(&spec()).unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["Image"], "busybox:latest");
        assert_eq!(json["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
        assert_eq!(json["Labels"]["io.berth.agent-id"], "a");
        let host = &json["HostConfig"];
        assert_eq!(host["AutoRemove"], false, "never auto-removed");
        assert_eq!(host["Mounts"][0]["Type"], "bind");
        assert_eq!(host["Mounts"][0]["Source"], "/sb:with:colons");
        assert!(
            host.get("Binds").is_none_or(|b| b.is_null()),
            "no -v syntax"
        );
        assert_eq!(host["PortBindings"]["80/tcp"][0]["HostPort"], "31000");
        assert_eq!(json["ExposedPorts"]["80/tcp"], serde_json::json!({}));
        assert_eq!(host["Memory"], 64 << 20);
        assert_eq!(host["LogConfig"]["Type"], "json-file");
        assert_eq!(host["LogConfig"]["Config"]["max-file"], "2");
        assert_eq!(json["Tty"], false);
    }

    #[test]
    fn named_volumes_carry_driver_options_and_labels() {
        let mut s = spec();
        s.host.mounts.push(MountSpec {
            kind: MountKind::Volume,
            source: "scratch".into(),
            target: "/scratch".into(),
            read_only: true,
            driver: Some("local".into()),
            driver_options: BTreeMap::from([
                ("type".into(), "tmpfs".into()),
                ("device".into(), "tmpfs".into()),
            ]),
            volume_labels: BTreeMap::from([("io.berth.agent-id".into(), "a1".into())]),
        });
        s.host.mounts.push(MountSpec {
            kind: MountKind::Volume,
            source: "plain".into(),
            target: "/plain".into(),
            read_only: false,
            driver: None,
            driver_options: BTreeMap::new(),
            volume_labels: BTreeMap::new(),
        });
        let json = serde_json::to_value(create_body(&s).unwrap()).unwrap();
        let m = &json["HostConfig"]["Mounts"];
        let n = m.as_array().unwrap().len();
        let scratch = &m[n - 2];
        assert_eq!(scratch["Type"], "volume");
        assert_eq!(scratch["ReadOnly"], true);
        let v = &scratch["VolumeOptions"];
        assert_eq!(v["DriverConfig"]["Name"], "local");
        assert_eq!(v["DriverConfig"]["Options"]["type"], "tmpfs");
        assert_eq!(v["DriverConfig"]["Options"]["device"], "tmpfs");
        assert_eq!(v["Labels"]["io.berth.agent-id"], "a1");
        // No driver, options or labels: Docker's defaults, no VolumeOptions at all.
        assert!(m[n - 1].get("VolumeOptions").is_none(), "{}", m[n - 1]);
    }

    #[test]
    fn errors_keep_their_kind() {
        let nf = api::Error::NotFound {
            kind: api::ResourceKind::Container,
            name: "x".into(),
            registry: None,
            message: "No such container: x".into(),
        };
        let e = convert("inspect", nf);
        assert!(e.is_not_found());
        assert!(
            e.message.starts_with("inspect: ") && e.message.contains("No such container: x"),
            "{e}"
        );
        let c = api::Error::Conflict {
            request: "POST /containers/create".into(),
            message: "name in use".into(),
        };
        assert_eq!(convert("create", c).kind, EngineErrorKind::Conflict);
        let t = api::Error::Api {
            request: "GET /x".into(),
            status: 503,
            message: "busy".into(),
        };
        assert!(convert("x", t).is_transient());
        let p = api::Error::Api {
            request: "GET /x".into(),
            status: 500,
            message: "bad".into(),
        };
        assert_eq!(convert("x", p).kind, EngineErrorKind::Permanent);
    }
}
