//! Starting an agent: the startup checks (listen address, work directory, Docker daemon and
//! its API version), the containerizer wired to Docker, the fetcher and the logger, recovery,
//! and serving until a signal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_containerizer::pull::PullConfig;
use berth_containerizer::{
    Containerizer, DockerEngine, FetcherAdapter, LoggerAdapter, OrphanPolicy, RecoveryReport,
};
use berth_docker_api::{ClientOptions, Docker, Endpoint};
use berth_logger::{
    ContainerLogger, DockerLogConfig, LoggerConfig, RotatingLogger, Rotation, SandboxLogger,
    StreamRotations,
};
use tokio::net::TcpListener;

use crate::agent::workdir::{self, WorkDirLock};
use crate::agent::{Agent, AgentParts, Observed};
use crate::config::{Config, LoggerKind};
use crate::error::Error;
use crate::http::auth::Auth;
use crate::http::server;

/// How long the daemon gets to answer at startup.
const DOCKER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A started agent, its listener and its auth, ready to serve.
pub struct Started {
    /// The agent.
    pub agent: Arc<Agent>,
    /// The bound listener.
    pub listener: TcpListener,
    /// Who may call it.
    pub auth: Arc<Auth>,
    /// What recovery found.
    pub recovery: RecoveryReport,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("agent", &self.agent)
            .finish()
    }
}

/// Connects to the Docker daemon at `endpoint`, failing with the fix.
pub async fn connect_docker(endpoint: &str) -> Result<Docker, Error> {
    let parsed = Endpoint::parse(endpoint)
        .map_err(|e| Error::Config(crate::ConfigError::new("--docker-socket", e.to_string())))?;
    let fix = "start Docker (e.g. `systemctl start docker`), or point --docker-socket / DOCKER_HOST at a running daemon";
    match tokio::time::timeout(
        DOCKER_CONNECT_TIMEOUT,
        Docker::connect_with(parsed, ClientOptions::default()),
    )
    .await
    {
        Err(_) => Err(Error::startup(
            format!(
                "the Docker daemon at {endpoint} did not answer within {DOCKER_CONNECT_TIMEOUT:?}"
            ),
            fix,
        )),
        Ok(Err(e)) => {
            let text = e.to_string();
            let fix = if matches!(e, berth_docker_api::Error::UnsupportedApiVersion { .. }) {
                "upgrade Docker to 19.03 or newer (Engine API 1.40+)"
            } else if text.to_ascii_lowercase().contains("permission denied") {
                "run as root or as a member of the `docker` group"
            } else {
                fix
            };
            Err(Error::startup(
                format!("cannot use the Docker daemon at {endpoint}: {text}"),
                fix,
            ))
        }
        Ok(Ok(d)) => Ok(d),
    }
}

/// `--docker-config` as a file path: a path is used as it is; inline JSON is written to
/// `<work_dir>/docker-config.json` (mode 0600).
fn docker_config_path(config: &Config) -> Result<Option<PathBuf>, Error> {
    let Some(value) = config.docker_config.as_deref() else {
        return Ok(None);
    };
    if value.trim_start().starts_with('{') {
        serde_json::from_str::<serde_json::Value>(value).map_err(|e| {
            Error::Config(crate::ConfigError::new(
                "--docker-config",
                format!("inline JSON does not parse: {e}"),
            ))
        })?;
        let path = config.work_dir.join("docker-config.json");
        // Unchanged since the last start: not rewritten, so a full work directory does not
        // stop the start (the agent then starts degraded).
        if std::fs::read(&path).is_ok_and(|old| old == value.as_bytes()) {
            return Ok(Some(path));
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("write", &path, e))?;
        std::io::Write::write_all(&mut f, value.as_bytes())
            .map_err(|e| Error::io("write", &path, e))?;
        return Ok(Some(path));
    }
    let path = PathBuf::from(value);
    if !path.is_file() {
        return Err(Error::Config(crate::ConfigError::new(
            "--docker-config",
            format!("'{value}' is neither a readable file nor inline JSON"),
        )));
    }
    Ok(Some(path))
}

/// Builds the containerizer (not yet recovered) and what the agent observes of its parts.
pub fn build_containerizer(
    config: &Config,
    agent_id: &berth_containerizer::AgentId,
    docker: Docker,
) -> Result<(Containerizer, Observed), Error> {
    let mut engine = DockerEngine::new(docker);
    if let Some(path) = docker_config_path(config)? {
        engine = engine.with_registry_config(&path).map_err(|e| {
            Error::Config(crate::ConfigError::new("--docker-config", e.to_string()))
        })?;
    }
    if let Some(root) = config
        .allowed_host_paths
        .iter()
        .find(|root| config.fetcher_cache_dir.starts_with(root))
    {
        tracing::warn!(cache = %config.fetcher_cache_dir.display(), allowed_host_path = %root.display(),
            "the fetcher cache is inside an --allowed-host-path: a container that mounts it can change cached files other containers are given; move --fetcher-cache-dir");
    }
    // The agent fetches as root for callers who are not its operator: local sources only from
    // the directories the operator named, and never more than the size limit per URI.
    let local_sources = if config.allowed_fetch_paths.is_empty() {
        berth_fetcher::LocalSources::Refused
    } else {
        berth_fetcher::LocalSources::Within(config.allowed_fetch_paths.clone())
    };
    let fetcher = Arc::new(
        berth_fetcher::Fetcher::builder()
            .cache_dir(&config.fetcher_cache_dir)
            .cache_size(config.fetcher_cache_size)
            .stall_timeout(config.fetcher_stall_timeout)
            .local_sources(local_sources)
            .local_sources_hint(
                "the agent's operator can allow regular files beneath a host directory with \
                 --allowed-fetch-path DIR",
            )
            .max_size(config.fetcher_max_size)
            .max_size_hint("the agent's operator can raise it with --fetcher-max-size SIZE")
            // Nor may a caller read this host's own services or the cloud's metadata through it.
            .denied_networks(config.fetcher_denied_networks.clone())
            .allowed_networks(config.fetcher_allowed_networks.clone())
            .network_hint(
                "the agent's operator can allow a network with --fetcher-allowed-network CIDR",
            )
            .build()
            .map_err(|e| {
                Error::startup(
                    format!("cannot set up the fetcher: {e}"),
                    "check --fetcher-cache-dir and --allowed-fetch-path",
                )
            })?,
    );
    let mut logger_config = LoggerConfig::new(config.work_dir.join("logger"));
    logger_config.docker_log =
        DockerLogConfig::local(config.docker_log_max_size, config.docker_log_max_files);
    let logger_error = |e: berth_logger::LoggerError| {
        Error::startup(
            format!("cannot set up the container logger: {e}"),
            "check --work-dir and the --logrotate-* flags",
        )
    };
    let (logs, docker_log, logger_metrics, log_resume): (
        Arc<dyn berth_containerizer::Logs>,
        _,
        _,
        _,
    ) = match config.container_logger {
        LoggerKind::Sandbox => {
            let logger = Arc::new(SandboxLogger::new(logger_config).map_err(logger_error)?);
            let metrics = logger.metrics();
            let adapter = LoggerAdapter::new(logger);
            let docker_log = adapter.docker_log_config();
            let resume = adapter.resume_metrics();
            (Arc::new(adapter), docker_log, metrics, resume)
        }
        LoggerKind::Logrotate => {
            let rotation = Rotation::by_size(config.logrotate_max_size, config.logrotate_max_files)
                .map_err(|e| {
                    Error::Config(crate::ConfigError::new(
                        "--logrotate-max-size",
                        e.to_string(),
                    ))
                })?;
            let logger = Arc::new(
                RotatingLogger::new(logger_config, StreamRotations::both(rotation))
                    .map_err(logger_error)?,
            );
            let metrics = logger.metrics();
            let adapter = LoggerAdapter::new(logger);
            let docker_log = adapter.docker_log_config();
            let resume = adapter.resume_metrics();
            (Arc::new(adapter), docker_log, metrics, resume)
        }
    };
    let mut cz = berth_containerizer::Config::new(agent_id.clone(), &config.work_dir);
    cz.mapped_sandbox = config.sandbox_directory.clone();
    cz.name_prefix = config.docker_name_prefix.clone();
    cz.allowed_host_roots = config.allowed_host_paths.clone();
    cz.allow_privileged = config.allow_privileged;
    cz.allowances = config.allowances.clone();
    cz.cfs = config.cgroups_enable_cfs;
    cz.docker_log = docker_log;
    cz.kill_grace = config.docker_stop_timeout;
    cz.launch_timeout = config.launch_timeout;
    cz.session_idle_timeout = config.session_idle_timeout;
    cz.pull = PullConfig {
        total_deadline: config.image_pull_timeout,
        inactivity_deadline: config.image_pull_inactivity_timeout,
        max_parallel: config.max_parallel_pulls,
        ..PullConfig::default()
    };
    cz.remove_delay = config.docker_remove_delay;
    cz.orphans = OrphanPolicy {
        kill: config.docker_kill_orphans,
        grace: config.docker_orphan_grace,
        dry_run: config.docker_orphan_dry_run,
        reconcile_interval: config.docker_orphan_reconcile_interval,
    };
    let containerizer = Containerizer::new(
        cz,
        Arc::new(engine),
        Arc::new(FetcherAdapter::new(fetcher.clone())),
        logs,
    )
    .map_err(|e| {
        Error::startup(
            format!("cannot set up the containerizer: {e}"),
            "check the flags named above",
        )
    })?;
    Ok((
        containerizer,
        Observed {
            fetcher: Some(fetcher),
            logger: Some(logger_metrics),
            log_resume: Some(log_resume),
        },
    ))
}

/// Runs the startup checks, builds and recovers the containerizer, and binds the listener.
pub async fn start(config: Config) -> Result<Started, Error> {
    let lock = workdir::prepare(&config.work_dir)?;
    start_locked(config, lock).await
}

/// [`start`] with the work directory already locked.
pub async fn start_locked(config: Config, lock: WorkDirLock) -> Result<Started, Error> {
    let auth = Auth::from_files(
        config.auth_token_file.as_deref(),
        config.http_credentials.as_deref(),
    )?
    .with_realms(
        config.authenticate_http_readwrite,
        config.authenticate_http_readonly,
    );
    // Bind before the slow parts, so a taken port fails at once.
    let listener = server::bind(config.listen).await?;
    let agent_id = workdir::agent_id(&config.work_dir, config.agent_id.as_deref())?;
    let docker = connect_docker(&config.docker_socket).await?;
    let version = docker.version().await.map_err(|e| {
        Error::startup(
            format!(
                "the Docker daemon at {} failed `GET /version`: {e}",
                config.docker_socket
            ),
            "check the daemon's health (`docker version`)",
        )
    })?;
    let api_version = docker.api_version().to_string();
    tracing::info!(agent_id = %agent_id, docker = %version.version, api = %api_version, work_dir = %config.work_dir.display(), "connected to Docker");
    let (containerizer, observed) = build_containerizer(&config, &agent_id, docker)?;
    let recovery = containerizer.recover().await.map_err(|e| {
        Error::startup(
            format!("recovery failed: {e}"),
            "check the work directory's checkpoints (containers/) and the Docker daemon",
        )
    })?;
    tracing::info!(
        reattached = recovery.reattached.len(),
        exited_while_down = recovery.exited_while_down.len(),
        rolled_back = recovery.rolled_back.len(),
        terminated = recovery.terminated.len(),
        lost = recovery.lost.len(),
        orphans = recovery.orphans.len(),
        "recovered"
    );
    for e in &recovery.checkpoint_errors {
        tracing::warn!(error = %e, "unreadable checkpoint skipped");
    }
    // The address really bound (`--listen` may name port 0), for `/state`'s `pid`.
    let bound = listener.local_addr().unwrap_or(config.listen);
    let agent = Agent::new(AgentParts {
        bound,
        config,
        agent_id,
        containerizer,
        docker_version: version.version,
        docker_api_version: api_version,
        observed,
        lock,
    });
    Ok(Started {
        agent,
        listener,
        auth: Arc::new(auth),
        recovery,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still serves; it then ends only by being killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// `berth serve`: starts, serves until SIGTERM/SIGINT, and exits leaving containers running.
pub async fn serve(config: Config) -> Result<(), Error> {
    let started = start(config).await?;
    let addr = started
        .listener
        .local_addr()
        .map_err(|e| Error::io("read listen address", "(socket)", e))?;
    tracing::info!(listen = %addr, auth = started.auth.required(), "berth agent serving the v1 API at http://{addr}/api/v1");
    if !started.auth.required() {
        // Host networking is the default network (as in Mesos), and a host-network container
        // shares this loopback: without a token it can call the API like any local process.
        tracing::warn!(listen = %addr, "serving without --auth-token-file or --http-credentials: any process that can reach {addr}, including a container on the host network (the default network), can launch, kill and remove containers and read their sandboxes; give --auth-token-file or --http-credentials when containers are not trusted (docs/security.md)");
    }
    let (readwrite, readonly) = {
        let c = started.agent.config();
        (c.authenticate_http_readwrite, c.authenticate_http_readonly)
    };
    if started.auth.required() && !readwrite {
        tracing::warn!(listen = %addr, "--authenticate-http-readwrite=false: /api/v1 needs no authentication, so any process that can reach {addr} can launch, kill and remove containers");
    }
    if started.auth.required() && !readonly {
        // The read-only realm holds /files/*: container output and sandbox files, which may
        // hold secrets.
        tracing::warn!(listen = %addr, "--authenticate-http-readonly=false: /state, /flags, /containers, /monitor/statistics, /metrics, /version and /files/* (containers' sandboxes and output) need no authentication");
    }
    started.agent.count_orphans(&started.recovery.orphans);
    let gc = {
        let agent = started.agent.clone();
        tokio::spawn(async move {
            loop {
                agent.collect_garbage().await;
                tokio::time::sleep(agent.config().disk_watch_interval).await;
            }
        })
    };
    let orphans = {
        let agent = started.agent.clone();
        let every = agent.config().docker_orphan_reconcile_interval;
        tokio::spawn(async move {
            if every.is_zero() {
                return;
            }
            loop {
                tokio::time::sleep(every).await;
                agent.reconcile_orphans().await;
            }
        })
    };
    let disk_watch = {
        let agent = started.agent.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(crate::agent::disk::DISK_CHECK_INTERVAL).await;
                let agent = agent.clone();
                let _ = tokio::task::spawn_blocking(move || agent.disk().check()).await;
            }
        })
    };
    let stopping = {
        let agent = started.agent.clone();
        async move {
            termination_signal().await;
            agent.end_streams();
        }
    };
    server::serve(
        started.listener,
        started.agent.clone(),
        started.auth,
        stopping,
    )
    .await;
    gc.abort();
    orphans.abort();
    disk_watch.abort();
    started.agent.shutdown().await;
    Ok(())
}
