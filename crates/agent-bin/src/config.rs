//! `berth serve`'s flags, the TOML config file, and the resolved [`Config`].
//!
//! Flags and config keys share one definition ([`ServeArgs`]): a config file's `key = value`
//! lines are turned into `--key=value` arguments and parsed by the same clap parser, so a bad
//! value in the file gets the same message as on the command line (plus the file's name). Values
//! given on the command line win over the file; the file wins over the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser};

use crate::error::ConfigError;
use crate::units::{format_duration, format_size, parse_duration, parse_size};

/// The address the agent listens on by default (Mesos's agent port, loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5051";

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

fn cidr_arg(s: &str) -> Result<berth_fetcher::Cidr, String> {
    s.parse()
}

fn listen_arg(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("`{s}` is not an address: expected IP:PORT, e.g. 127.0.0.1:5051 or 0.0.0.0:5051")
    })
}

/// Which container logger writes containers' stdout/stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoggerKind {
    /// `<sandbox>/stdout` and `<sandbox>/stderr`, unbounded (Mesos's default).
    Sandbox,
    /// The same files, rotated by size (`stdout`, `stdout.1` .. `stdout.N`).
    Logrotate,
}

impl LoggerKind {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoggerKind::Sandbox => "sandbox",
            LoggerKind::Logrotate => "logrotate",
        }
    }
}

/// `berth serve` flags. Every field is optional so the config file and the defaults can fill in
/// what the command line leaves out.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys are the flag names without `--`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API [default: 127.0.0.1:5051]. A non-loopback address needs
    /// --auth-token-file or --http-credentials (or --insecure-no-auth).
    #[arg(long, value_name = "IP:PORT", value_parser = listen_arg)]
    pub listen: Option<SocketAddr>,
    /// Directory for checkpoints, sandboxes and the fetch cache [default: /var/lib/berth].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// This agent's id, used to label its containers [default: generated once, kept in the work dir].
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// Docker endpoint: a socket path, unix:///path or tcp://host:port [default: $DOCKER_HOST, else /var/run/docker.sock].
    #[arg(long, value_name = "ENDPOINT")]
    pub docker_socket: Option<String>,
    /// Docker `config.json` with registry credentials, as a path or inline JSON.
    #[arg(long, value_name = "PATH|JSON")]
    pub docker_config: Option<String>,
    /// Where the sandbox is mounted inside containers [default: /mnt/mesos/sandbox].
    #[arg(long, value_name = "PATH")]
    pub sandbox_directory: Option<String>,
    /// Docker containers are named `<prefix>-<container id>`; agents sharing a daemon whose
    /// container ids may repeat need different prefixes [default: berth].
    #[arg(long, value_name = "PREFIX")]
    pub docker_name_prefix: Option<String>,
    /// Grace between the stop signal and SIGKILL when a container is destroyed [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub docker_stop_timeout: Option<Duration>,
    /// Delay before an exited container's Docker container is removed; 0 removes at once [default: 6h].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub docker_remove_delay: Option<Duration>,
    /// Stop and remove this agent's containers the checkpoint does not know [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub docker_kill_orphans: Option<bool>,
    /// Orphans younger than this are left alone [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub docker_orphan_grace: Option<Duration>,
    /// How often orphans are looked for after the start (Nomad's dangling-container
    /// reconciler); 0 looks only at start [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub docker_orphan_reconcile_interval: Option<Duration>,
    /// Only log and count the orphans that would be removed [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub docker_orphan_dry_run: Option<bool>,
    /// A session (exec) with neither output nor input for this long is ended; 0 never
    /// [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub session_idle_timeout: Option<Duration>,
    /// How long an ended container's sandbox, termination and checkpoint are kept before
    /// garbage collection removes them, less under disk pressure (Mesos `--gc_delay`) [default: 1w].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub gc_delay: Option<Duration>,
    /// Fraction of the work directory's file system to keep free: at disk usage u the kept age is
    /// gc-delay × max(0, 1 − headroom − u) (Mesos `--gc_disk_headroom`) [default: 0.1].
    #[arg(long, value_name = "FRACTION")]
    pub gc_disk_headroom: Option<f64>,
    /// How often disk usage is checked and garbage collected (Mesos `--disk_watch_interval`) [default: 1m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub disk_watch_interval: Option<Duration>,
    /// Deadline for a launch, excluding the image pull [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub launch_timeout: Option<Duration>,
    /// Deadline for an image pull [default: 30m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub image_pull_timeout: Option<Duration>,
    /// A pull that shows no progress for this long fails [default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub image_pull_inactivity_timeout: Option<Duration>,
    /// At most this many image pulls at once [default: 4].
    #[arg(long, value_name = "N")]
    pub max_parallel_pulls: Option<usize>,
    /// Fetcher cache directory [default: <work-dir>/fetch-cache].
    #[arg(long, value_name = "DIR")]
    pub fetcher_cache_dir: Option<PathBuf>,
    /// Fetcher cache size [default: 2GiB].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub fetcher_cache_size: Option<u64>,
    /// A download below 1 byte/s for this long fails [default: 1m].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub fetcher_stall_timeout: Option<Duration>,
    /// A host directory whose regular files URIs may name as local sources (paths, file://),
    /// reached without following a link below it (repeatable) [default: none, so local
    /// sources are refused].
    #[arg(long = "allowed-fetch-path", value_name = "DIR")]
    pub allowed_fetch_paths: Vec<PathBuf>,
    /// The most bytes one URI may have, downloaded or read [default: 4GiB].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub fetcher_max_size: Option<u64>,
    /// A network http(s) URIs may reach even though a denied network holds it, e.g.
    /// 127.0.0.1/32 for an artifact server on this host (repeatable).
    #[arg(long = "fetcher-allowed-network", value_name = "CIDR", value_parser = cidr_arg)]
    pub fetcher_allowed_networks: Vec<berth_fetcher::Cidr>,
    /// A network http(s) URIs may not reach, besides this host's own and link-local ones,
    /// which are always denied unless allowed (repeatable).
    #[arg(long = "fetcher-denied-network", value_name = "CIDR", value_parser = cidr_arg)]
    pub fetcher_denied_networks: Vec<berth_fetcher::Cidr>,
    /// Container logger [default: sandbox].
    #[arg(long, value_name = "KIND", value_enum)]
    pub container_logger: Option<LoggerKind>,
    /// With `logrotate`: the size at which each stream's file is rotated [default: 10MiB].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub logrotate_max_size: Option<u64>,
    /// With `logrotate`: rotated files kept besides the current one (`stdout.1`..`stdout.N`) [default: 5].
    #[arg(long, value_name = "N")]
    pub logrotate_max_files: Option<u32>,
    /// The size of one file of Docker's own copy of a container's output (`local` driver) [default: 32MiB].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub docker_log_max_size: Option<u64>,
    /// Files of Docker's own copy of a container's output [default: 3].
    #[arg(long, value_name = "N")]
    pub docker_log_max_files: Option<u32>,
    /// Allow containers to run privileged [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_privileged: Option<bool>,
    /// An absolute host directory containers may bind-mount (repeatable).
    #[arg(long = "allowed-host-path", value_name = "DIR")]
    pub allowed_host_paths: Vec<PathBuf>,
    /// A capability beyond Docker's default set callers may add with `cap-add` (repeatable).
    #[arg(long = "allowed-capability", value_name = "CAP")]
    pub allowed_capabilities: Vec<String>,
    /// A host device callers may pass with the `device` parameter, exactly as written (repeatable).
    #[arg(long = "allowed-device", value_name = "PATH")]
    pub allowed_devices: Vec<String>,
    /// A volume driver other than `local` callers' DOCKER_VOLUMEs may use (repeatable).
    #[arg(long = "allowed-volume-driver", value_name = "NAME")]
    pub allowed_volume_drivers: Vec<String>,
    /// A mount type (nfs, cifs, ext4, ...) the `local` volume driver may mount for callers (repeatable).
    #[arg(long = "allowed-volume-type", value_name = "TYPE")]
    pub allowed_volume_types: Vec<String>,
    /// An existing Docker volume callers may attach although this agent did not create it (repeatable).
    #[arg(long = "allowed-volume", value_name = "NAME")]
    pub allowed_volumes: Vec<String>,
    /// Cap containers' CPU at their request with a CFS quota [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cgroups_enable_cfs: Option<bool>,
    /// File holding the bearer token every request except /health must carry.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Mesos credentials file (JSON `{"credentials":[{"principal":..,"secret":..}]}`): HTTP Basic
    /// with one of its principals passes where the bearer token does (either one, if both).
    /// `--credentials` is the same flag (the issue's and Mesos master's name).
    #[arg(long, alias = "credentials", value_name = "FILE")]
    pub http_credentials: Option<PathBuf>,
    /// Whether /api/v1 (Mesos's read-write realm) needs authentication (Mesos
    /// `--authenticate_http_readwrite`) [default: true when a token or credentials are given].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub authenticate_http_readwrite: Option<bool>,
    /// Whether the read-only endpoints (/state, /flags, /containers, /monitor/statistics,
    /// /files/*, /metrics, /metrics/snapshot, /version) need authentication (Mesos
    /// `--authenticate_http_readonly`) [default: true when a token or credentials are given].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub authenticate_http_readonly: Option<bool>,
    /// Serve a non-loopback address without authentication.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub insecure_no_auth: Option<bool>,
    /// The HTTP server's limits.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// The parser used for the config file's synthesized arguments.
#[derive(Debug, Parser)]
#[command(name = "berth-config", no_binary_name = true, disable_help_flag = true)]
struct FileArgs {
    #[command(flatten)]
    args: ServeArgs,
}

/// The agent's settings, defaults applied and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// HTTP API address.
    pub listen: SocketAddr,
    /// Work directory (absolute).
    pub work_dir: PathBuf,
    /// The agent id, when given; otherwise read from or generated into the work dir.
    pub agent_id: Option<String>,
    /// Docker endpoint text (`unix:///...`, a path, or `tcp://...`).
    pub docker_socket: String,
    /// Registry credentials: a path or inline JSON.
    pub docker_config: Option<String>,
    /// Sandbox path inside containers.
    pub sandbox_directory: String,
    /// Docker names are `<prefix>-<container id>`.
    pub docker_name_prefix: String,
    /// Destroy grace.
    pub docker_stop_timeout: Duration,
    /// Delay before removal of exited containers.
    pub docker_remove_delay: Duration,
    /// Whether orphans are reaped.
    pub docker_kill_orphans: bool,
    /// Orphans younger than this are not reaped.
    pub docker_orphan_grace: Duration,
    /// Periodic orphan reconciliation; zero only at start.
    pub docker_orphan_reconcile_interval: Duration,
    /// Orphans are only logged and counted.
    pub docker_orphan_dry_run: bool,
    /// Sessions idle this long are ended; zero never.
    pub session_idle_timeout: Duration,
    /// Age at which an ended container is garbage collected (without disk pressure).
    pub gc_delay: Duration,
    /// Free fraction garbage collection keeps.
    pub gc_disk_headroom: f64,
    /// Garbage collection period.
    pub disk_watch_interval: Duration,
    /// Launch deadline (excluding the pull).
    pub launch_timeout: Duration,
    /// Pull deadline.
    pub image_pull_timeout: Duration,
    /// Pull no-progress deadline.
    pub image_pull_inactivity_timeout: Duration,
    /// Pull concurrency.
    pub max_parallel_pulls: usize,
    /// Fetcher cache directory.
    pub fetcher_cache_dir: PathBuf,
    /// Fetcher cache size in bytes.
    pub fetcher_cache_size: u64,
    /// Fetcher stall timeout.
    pub fetcher_stall_timeout: Duration,
    /// Host directories local fetch sources may come from (none: local sources refused).
    pub allowed_fetch_paths: Vec<PathBuf>,
    /// Most bytes per fetched URI.
    pub fetcher_max_size: u64,
    /// Networks fetched URIs may reach although denied.
    pub fetcher_allowed_networks: Vec<berth_fetcher::Cidr>,
    /// Networks fetched URIs may not reach: this host's own and link-local ones, and these.
    pub fetcher_denied_networks: Vec<berth_fetcher::Cidr>,
    /// The container logger.
    pub container_logger: LoggerKind,
    /// Rotation size per stream.
    pub logrotate_max_size: u64,
    /// Rotated files kept.
    pub logrotate_max_files: u32,
    /// One file of Docker's copy of a container's output, bytes.
    pub docker_log_max_size: u64,
    /// Files of Docker's copy of a container's output.
    pub docker_log_max_files: u32,
    /// Whether privileged containers are allowed.
    pub allow_privileged: bool,
    /// Host directories containers may bind-mount.
    pub allowed_host_paths: Vec<PathBuf>,
    /// What callers may ask for beyond Docker's default confinement (--allowed-capability,
    /// --allowed-device, --allowed-volume-driver, --allowed-volume-type, --allowed-volume).
    pub allowances: berth_containerizer::mapping::Allowances,
    /// CFS quota from the request.
    pub cgroups_enable_cfs: bool,
    /// Bearer token file.
    pub auth_token_file: Option<PathBuf>,
    /// Mesos credentials file for HTTP Basic.
    pub http_credentials: Option<PathBuf>,
    /// Whether /api/v1 needs authentication.
    pub authenticate_http_readwrite: bool,
    /// Whether the read-only endpoints need authentication.
    pub authenticate_http_readonly: bool,
    /// Serve without authentication even on a non-loopback address.
    pub insecure_no_auth: bool,
    /// The HTTP server's limits.
    pub http: HttpConfig,
}

impl ServeArgs {
    /// Reads the `--config` file (if any) and fills in what the command line left out.
    pub fn merge_config_file(self) -> Result<ServeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read '{}': {e}", path.display()))
        })?;
        let file = parse_config_text(&path, &text)?;
        Ok(self.or(file))
    }

    /// `self`'s values, with `other`'s where `self` has none.
    fn or(self, other: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            listen: self.listen.or(other.listen),
            work_dir: self.work_dir.or(other.work_dir),
            agent_id: self.agent_id.or(other.agent_id),
            docker_socket: self.docker_socket.or(other.docker_socket),
            docker_config: self.docker_config.or(other.docker_config),
            sandbox_directory: self.sandbox_directory.or(other.sandbox_directory),
            docker_name_prefix: self.docker_name_prefix.or(other.docker_name_prefix),
            docker_stop_timeout: self.docker_stop_timeout.or(other.docker_stop_timeout),
            docker_remove_delay: self.docker_remove_delay.or(other.docker_remove_delay),
            docker_kill_orphans: self.docker_kill_orphans.or(other.docker_kill_orphans),
            docker_orphan_grace: self.docker_orphan_grace.or(other.docker_orphan_grace),
            docker_orphan_reconcile_interval: self
                .docker_orphan_reconcile_interval
                .or(other.docker_orphan_reconcile_interval),
            session_idle_timeout: self.session_idle_timeout.or(other.session_idle_timeout),
            docker_orphan_dry_run: self.docker_orphan_dry_run.or(other.docker_orphan_dry_run),
            gc_delay: self.gc_delay.or(other.gc_delay),
            gc_disk_headroom: self.gc_disk_headroom.or(other.gc_disk_headroom),
            disk_watch_interval: self.disk_watch_interval.or(other.disk_watch_interval),
            launch_timeout: self.launch_timeout.or(other.launch_timeout),
            image_pull_timeout: self.image_pull_timeout.or(other.image_pull_timeout),
            image_pull_inactivity_timeout: self
                .image_pull_inactivity_timeout
                .or(other.image_pull_inactivity_timeout),
            max_parallel_pulls: self.max_parallel_pulls.or(other.max_parallel_pulls),
            fetcher_cache_dir: self.fetcher_cache_dir.or(other.fetcher_cache_dir),
            fetcher_cache_size: self.fetcher_cache_size.or(other.fetcher_cache_size),
            fetcher_stall_timeout: self.fetcher_stall_timeout.or(other.fetcher_stall_timeout),
            allowed_fetch_paths: if self.allowed_fetch_paths.is_empty() {
                other.allowed_fetch_paths
            } else {
                self.allowed_fetch_paths
            },
            fetcher_max_size: self.fetcher_max_size.or(other.fetcher_max_size),
            fetcher_allowed_networks: if self.fetcher_allowed_networks.is_empty() {
                other.fetcher_allowed_networks
            } else {
                self.fetcher_allowed_networks
            },
            fetcher_denied_networks: if self.fetcher_denied_networks.is_empty() {
                other.fetcher_denied_networks
            } else {
                self.fetcher_denied_networks
            },
            container_logger: self.container_logger.or(other.container_logger),
            logrotate_max_size: self.logrotate_max_size.or(other.logrotate_max_size),
            logrotate_max_files: self.logrotate_max_files.or(other.logrotate_max_files),
            docker_log_max_size: self.docker_log_max_size.or(other.docker_log_max_size),
            docker_log_max_files: self.docker_log_max_files.or(other.docker_log_max_files),
            allow_privileged: self.allow_privileged.or(other.allow_privileged),
            allowed_host_paths: if self.allowed_host_paths.is_empty() {
                other.allowed_host_paths
            } else {
                self.allowed_host_paths
            },
            allowed_capabilities: or_list(self.allowed_capabilities, other.allowed_capabilities),
            allowed_devices: or_list(self.allowed_devices, other.allowed_devices),
            allowed_volume_drivers: or_list(
                self.allowed_volume_drivers,
                other.allowed_volume_drivers,
            ),
            allowed_volume_types: or_list(self.allowed_volume_types, other.allowed_volume_types),
            allowed_volumes: or_list(self.allowed_volumes, other.allowed_volumes),
            cgroups_enable_cfs: self.cgroups_enable_cfs.or(other.cgroups_enable_cfs),
            auth_token_file: self.auth_token_file.or(other.auth_token_file),
            http_credentials: self.http_credentials.or(other.http_credentials),
            authenticate_http_readwrite: self
                .authenticate_http_readwrite
                .or(other.authenticate_http_readwrite),
            authenticate_http_readonly: self
                .authenticate_http_readonly
                .or(other.authenticate_http_readonly),
            insecure_no_auth: self.insecure_no_auth.or(other.insecure_no_auth),
            http: self.http.or(other.http),
        }
    }

    /// Applies the defaults and checks the values against each other.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let absolute = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
        let work_dir = absolute(
            self.work_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/berth")),
        );
        let docker_socket = match self.docker_socket {
            Some(s) => s,
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| berth_docker_api::DEFAULT_SOCKET.to_owned()),
        };
        berth_docker_api::Endpoint::parse(&docker_socket)
            .map_err(|e| ConfigError::new("--docker-socket", e.to_string()))?;
        let sandbox_directory = self
            .sandbox_directory
            .unwrap_or_else(|| "/mnt/mesos/sandbox".into());
        if !sandbox_directory.starts_with('/') {
            return Err(ConfigError::new(
                "--sandbox-directory",
                format!("`{sandbox_directory}` must be an absolute path inside the container, e.g. /mnt/mesos/sandbox"),
            ));
        }
        let docker_name_prefix = self.docker_name_prefix.unwrap_or_else(|| "berth".into());
        let name_ok = docker_name_prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
            && docker_name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && docker_name_prefix.len() <= 64;
        if !name_ok {
            return Err(ConfigError::new(
                "--docker-name-prefix",
                format!("`{docker_name_prefix}` must start with a letter or digit and have at most 64 of A-Z a-z 0-9 _ . - (it starts Docker container names)"),
            ));
        }
        for p in &self.allowed_host_paths {
            if !p.is_absolute() {
                return Err(ConfigError::new(
                    "--allowed-host-path",
                    format!("`{}` must be an absolute host directory", p.display()),
                ));
            }
        }
        let allowances = allowances(
            &self.allowed_capabilities,
            &self.allowed_devices,
            &self.allowed_volume_drivers,
            &self.allowed_volume_types,
            &self.allowed_volumes,
        )?;
        if let Some(id) = &self.agent_id {
            berth_containerizer::AgentId::new(id.as_str())
                .map_err(|e| ConfigError::new("--agent-id", e.to_string()))?;
        }
        let max_parallel_pulls = self.max_parallel_pulls.unwrap_or(4);
        if max_parallel_pulls == 0 {
            return Err(ConfigError::new(
                "--max-parallel-pulls",
                "must be at least 1",
            ));
        }
        let logrotate_max_size = self.logrotate_max_size.unwrap_or(10 << 20);
        if logrotate_max_size < 4096 {
            return Err(ConfigError::new(
                "--logrotate-max-size",
                format!(
                    "{} is below the minimum of 4KiB",
                    format_size(logrotate_max_size)
                ),
            ));
        }
        let docker_log_max_size = self
            .docker_log_max_size
            .unwrap_or(berth_logger::DEFAULT_DOCKER_MAX_SIZE);
        if docker_log_max_size < 4096 {
            return Err(ConfigError::new(
                "--docker-log-max-size",
                format!(
                    "{} is below the minimum of 4KiB",
                    format_size(docker_log_max_size)
                ),
            ));
        }
        let docker_log_max_files = self
            .docker_log_max_files
            .unwrap_or(berth_logger::DEFAULT_DOCKER_MAX_FILE);
        if docker_log_max_files == 0 {
            return Err(ConfigError::new(
                "--docker-log-max-files",
                "must be at least 1",
            ));
        }
        let launch_timeout = self.launch_timeout.unwrap_or(Duration::from_secs(300));
        let image_pull_timeout = self.image_pull_timeout.unwrap_or(Duration::from_secs(1800));
        let image_pull_inactivity_timeout = self
            .image_pull_inactivity_timeout
            .unwrap_or(Duration::from_secs(120));
        let fetcher_stall_timeout = self
            .fetcher_stall_timeout
            .unwrap_or(Duration::from_secs(60));
        for p in &self.allowed_fetch_paths {
            if !p.is_absolute() {
                return Err(ConfigError::new(
                    "--allowed-fetch-path",
                    format!("`{}` must be an absolute host directory", p.display()),
                ));
            }
        }
        // Cache entries are copied into sandboxes and trusted on a hit (size and mtime, not the
        // digest): never inside the sandboxes, which containers write. (Inside an
        // --allowed-host-path is warned about at start: `berth run -v $HOME:...` does that.)
        let cache_dir = absolute(
            self.fetcher_cache_dir
                .clone()
                .unwrap_or_else(|| work_dir.join("fetch-cache")),
        );
        let sandboxes = work_dir.join("sandboxes");
        if cache_dir.starts_with(&sandboxes) {
            return Err(ConfigError::new(
                "--fetcher-cache-dir",
                format!(
                    "`{}` is inside `{}`, which containers write; put the cache where only the \
                     agent writes (the default is <work-dir>/fetch-cache)",
                    cache_dir.display(),
                    sandboxes.display()
                ),
            ));
        }
        let fetcher_max_size = self.fetcher_max_size.unwrap_or(4 << 30);
        if fetcher_max_size == 0 {
            return Err(ConfigError::new(
                "--fetcher-max-size",
                "must be greater than 0",
            ));
        }
        let gc_delay = self.gc_delay.unwrap_or(Duration::from_secs(7 * 86_400));
        let gc_disk_headroom = self.gc_disk_headroom.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&gc_disk_headroom) {
            return Err(ConfigError::new(
                "--gc-disk-headroom",
                format!("{gc_disk_headroom} is not a fraction between 0 and 1 (e.g. 0.1 keeps 10% of the disk free)"),
            ));
        }
        let disk_watch_interval = self.disk_watch_interval.unwrap_or(Duration::from_secs(60));
        for (flag, value) in [
            ("--gc-delay", gc_delay),
            ("--disk-watch-interval", disk_watch_interval),
            ("--launch-timeout", launch_timeout),
            ("--image-pull-timeout", image_pull_timeout),
            (
                "--image-pull-inactivity-timeout",
                image_pull_inactivity_timeout,
            ),
            ("--fetcher-stall-timeout", fetcher_stall_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(flag, "must be greater than 0"));
            }
        }
        let insecure_no_auth = self.insecure_no_auth.unwrap_or(false);
        let auth_token_file = self.auth_token_file.map(absolute);
        let http_credentials = self.http_credentials.map(absolute);
        let listen = match self.listen {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .expect("the default listen address parses"),
        };
        let (authenticate_http_readwrite, authenticate_http_readonly) = auth_realms(
            listen,
            auth_token_file.is_some(),
            http_credentials.is_some(),
            self.authenticate_http_readwrite,
            self.authenticate_http_readonly,
            insecure_no_auth,
        )?;
        Ok(Config {
            listen,
            fetcher_cache_dir: absolute(
                self.fetcher_cache_dir
                    .unwrap_or_else(|| work_dir.join("fetch-cache")),
            ),
            work_dir,
            agent_id: self.agent_id,
            docker_socket,
            docker_config: self.docker_config,
            sandbox_directory,
            docker_name_prefix,
            docker_stop_timeout: self.docker_stop_timeout.unwrap_or(Duration::from_secs(10)),
            docker_remove_delay: self
                .docker_remove_delay
                .unwrap_or(Duration::from_secs(6 * 3600)),
            docker_kill_orphans: self.docker_kill_orphans.unwrap_or(true),
            docker_orphan_grace: self.docker_orphan_grace.unwrap_or(Duration::from_secs(300)),
            docker_orphan_reconcile_interval: self
                .docker_orphan_reconcile_interval
                .unwrap_or(Duration::from_secs(300)),
            docker_orphan_dry_run: self.docker_orphan_dry_run.unwrap_or(false),
            session_idle_timeout: self
                .session_idle_timeout
                .unwrap_or(Duration::from_secs(3600)),
            gc_delay,
            gc_disk_headroom,
            disk_watch_interval,
            launch_timeout,
            image_pull_timeout,
            image_pull_inactivity_timeout,
            max_parallel_pulls,
            fetcher_cache_size: self.fetcher_cache_size.unwrap_or(2 << 30),
            fetcher_stall_timeout,
            allowed_fetch_paths: self.allowed_fetch_paths,
            fetcher_max_size,
            fetcher_allowed_networks: self.fetcher_allowed_networks,
            fetcher_denied_networks: {
                let mut d = berth_fetcher::Cidr::host_local();
                d.extend(self.fetcher_denied_networks);
                d
            },
            container_logger: self.container_logger.unwrap_or(LoggerKind::Sandbox),
            logrotate_max_size,
            logrotate_max_files: self.logrotate_max_files.unwrap_or(5),
            docker_log_max_size,
            docker_log_max_files,
            allow_privileged: self.allow_privileged.unwrap_or(false),
            allowed_host_paths: self.allowed_host_paths.into_iter().map(absolute).collect(),
            allowances,
            cgroups_enable_cfs: self.cgroups_enable_cfs.unwrap_or(false),
            auth_token_file,
            http_credentials,
            authenticate_http_readwrite,
            authenticate_http_readonly,
            insecure_no_auth,
            http: self.http.resolve()?,
        })
    }
}

/// Decides which realms need authentication and checks the auth flags against each other and
/// the listen address. Mesos defaults both `--authenticate_http_*` flags to false; Berth defaults
/// each to whether a token or credentials were given, so configuring a secret protects every
/// endpoint but /health unless a realm is opened on purpose. Answers (readwrite, readonly).
fn auth_realms(
    listen: SocketAddr,
    token: bool,
    credentials: bool,
    readwrite: Option<bool>,
    readonly: Option<bool>,
    insecure_no_auth: bool,
) -> Result<(bool, bool), ConfigError> {
    let configured = token || credentials;
    for (flag, asked) in [
        ("--authenticate-http-readwrite", readwrite),
        ("--authenticate-http-readonly", readonly),
    ] {
        if asked == Some(true) && !configured {
            // Mesos refuses this too: its `basic` authenticator has no credentials to check.
            return Err(ConfigError::new(
                flag,
                "is true but nothing to authenticate against was given: pass --auth-token-file \
                 FILE or --http-credentials FILE",
            ));
        }
    }
    let readwrite = readwrite.unwrap_or(configured);
    let readonly = readonly.unwrap_or(configured);
    if insecure_no_auth && readwrite {
        // --insecure-no-auth acknowledges an open /api/v1; with /api/v1 protected it would
        // say something untrue.
        let flag = if token {
            "--auth-token-file"
        } else {
            "--http-credentials"
        };
        return Err(ConfigError::new(
            "--insecure-no-auth",
            format!("conflicts with {flag}; give one or the other"),
        ));
    }
    if !listen.ip().is_loopback() && !readwrite && !insecure_no_auth {
        let message = if configured {
            format!(
                "{listen} is not a loopback address and --authenticate-http-readwrite=false \
                 leaves /api/v1 (launch, kill and remove containers) open to anyone who can \
                 reach it: drop --authenticate-http-readwrite=false, listen on a loopback \
                 address, or pass --insecure-no-auth to serve it so on purpose"
            )
        } else {
            format!(
                "{listen} is not a loopback address, so the API needs authentication: pass \
                 --auth-token-file FILE (a file holding a secret token), --http-credentials \
                 FILE (Mesos credentials for HTTP Basic), or --insecure-no-auth to serve it \
                 without authentication"
            )
        };
        return Err(ConfigError::new("--listen", message));
    }
    Ok((readwrite, readonly))
}

// --- Caller allowances (issue 11): the flags letting callers past Docker's default confinement.

/// A repeatable flag: the command line's values if any, else the file's.
fn or_list<T>(mine: Vec<T>, other: Vec<T>) -> Vec<T> {
    if mine.is_empty() {
        other
    } else {
        mine
    }
}

fn join(set: &std::collections::BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(",")
}

/// Checks and collects the allowance flags.
fn allowances(
    capabilities: &[String],
    devices: &[String],
    volume_drivers: &[String],
    volume_types: &[String],
    volumes: &[String],
) -> Result<berth_containerizer::mapping::Allowances, ConfigError> {
    use berth_containerizer::mapping::policy;
    let mut out = berth_containerizer::mapping::Allowances::default();
    for cap in capabilities {
        let name = policy::normalize_capability(cap);
        if name == "ALL" {
            return Err(ConfigError::new(
                "--allowed-capability",
                "`ALL` is not a capability: to allow every capability use --allow-privileged",
            ));
        }
        if !policy::LINUX_CAPABILITIES.contains(&name.as_str()) {
            return Err(ConfigError::new(
                "--allowed-capability",
                format!("`{cap}` is not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN)"),
            ));
        }
        out.capabilities.insert(name);
    }
    for d in devices {
        if !d.starts_with('/') || d.split('/').any(|c| c == "..") {
            return Err(ConfigError::new(
                "--allowed-device",
                format!("`{d}` must be an absolute host device path without '..', e.g. /dev/fuse"),
            ));
        }
        out.devices.insert(d.clone());
    }
    for (flag, list, set) in [
        (
            "--allowed-volume-driver",
            volume_drivers,
            &mut out.volume_drivers,
        ),
        ("--allowed-volume-type", volume_types, &mut out.volume_types),
        ("--allowed-volume", volumes, &mut out.volumes),
    ] {
        for v in list {
            if v.trim().is_empty() || v.trim() != v {
                return Err(ConfigError::new(
                    flag,
                    format!("`{v}` must be a non-empty name"),
                ));
            }
            set.insert(v.clone());
        }
    }
    if out.volume_types.contains("none") {
        return Err(ConfigError::new(
            "--allowed-volume-type",
            "`none` (binds) is governed by --allowed-host-path: host paths under an allowed root \
             are always allowed, others never",
        ));
    }
    Ok(out)
}

/// Keys of a config file that set the process rather than `serve` (the global flags): read by
/// [`ProcessSettings::read`] before logging and the runtime start.
const PROCESS_KEYS: [&str; 3] = ["log-level", "log-format", "worker-threads"];

/// The global flags a config file may set: `log-level`, `log-format`, `worker-threads`. The
/// command line (and `BERTH_WORKER_THREADS`) wins over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `log-level`: a log filter.
    pub log_level: Option<String>,
    /// `log-format`: `text` or `json`.
    pub log_format: Option<crate::logging::LogFormat>,
    /// `worker-threads`: threads of the async runtime (0: one).
    pub worker_threads: Option<usize>,
}

impl ProcessSettings {
    /// Reads the process settings of the config file at `path` (its other keys are
    /// [`parse_config_text`]'s).
    pub fn read(path: &Path) -> Result<ProcessSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read '{}': {e}", path.display()))
        })?;
        ProcessSettings::parse(path, &text)
    }

    /// The process settings of config text `text` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ProcessSettings, ConfigError> {
        let in_file =
            |reason: String| ConfigError::new("--config", format!("{}: {reason}", path.display()));
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| in_file(e.message().to_owned()))?;
        let mut settings = ProcessSettings::default();
        if let Some(v) = table.get("log-level") {
            let level = v
                .as_str()
                .ok_or_else(|| in_file(format!("key `log-level`: expected a string like \"info\" or \"info,berth=debug\", found {}", v.type_str())))?;
            settings.log_level = Some(level.to_owned());
        }
        if let Some(v) = table.get("log-format") {
            let format = match v.as_str() {
                Some("text") => crate::logging::LogFormat::Text,
                Some("json") => crate::logging::LogFormat::Json,
                _ => {
                    return Err(in_file(format!(
                        "key `log-format`: expected \"text\" or \"json\", found {v}"
                    )))
                }
            };
            settings.log_format = Some(format);
        }
        if let Some(v) = table.get("worker-threads") {
            let n = v
                .as_integer()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    in_file(format!(
                        "key `worker-threads`: expected a number of threads (0 or more), found {v}"
                    ))
                })?;
            settings.worker_threads = Some(n);
        }
        Ok(settings)
    }
}

/// Parses config file text (read from `path`, named in errors) into `serve` settings; the
/// process settings ([`PROCESS_KEYS`]) are skipped here, [`ProcessSettings`] reads them.
pub fn parse_config_text(path: &Path, text: &str) -> Result<ServeArgs, ConfigError> {
    let in_file =
        |reason: String| ConfigError::new("--config", format!("{}: {reason}", path.display()));
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| in_file(e.message().to_owned()))?;
    let mut argv = Vec::new();
    for (key, value) in &table {
        if PROCESS_KEYS.contains(&key.as_str()) {
            continue;
        }
        if matches!(key.as_str(), "config") {
            return Err(in_file(
                "`config` cannot be set inside a config file".into(),
            ));
        }
        let flag = format!("--{key}");
        let scalar = |v: &toml::Value| -> Result<String, ConfigError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                other => Err(in_file(format!(
                    "key `{key}`: expected a string, number or boolean, found {}",
                    other.type_str()
                ))),
            }
        };
        match value {
            toml::Value::Array(items) => {
                for item in items {
                    argv.push(format!("{flag}={}", scalar(item)?));
                }
            }
            v => argv.push(format!("{flag}={}", scalar(v)?)),
        }
    }
    let parsed = FileArgs::try_parse_from(&argv).map_err(|e| {
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_owned();
        in_file(
            first
                .replace("unexpected argument '--", "unknown key '")
                .replace("' found", "'"),
        )
    })?;
    Ok(parsed.args)
}

impl Config {
    /// The settings as `(flag name, value)` pairs, for `GET_FLAGS` and `/state`. The token file's
    /// path is shown, never the token.
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let d = |d: Duration| format_duration(d);
        let mut flags = vec![
            ("listen", self.listen.to_string()),
            ("work_dir", self.work_dir.display().to_string()),
            ("agent_id", self.agent_id.clone().unwrap_or_default()),
            ("docker_socket", self.docker_socket.clone()),
            (
                "docker_config",
                if self.docker_config.is_some() {
                    "(set)".into()
                } else {
                    String::new()
                },
            ),
            ("sandbox_directory", self.sandbox_directory.clone()),
            ("docker_name_prefix", self.docker_name_prefix.clone()),
            ("docker_stop_timeout", d(self.docker_stop_timeout)),
            ("docker_remove_delay", d(self.docker_remove_delay)),
            ("docker_kill_orphans", self.docker_kill_orphans.to_string()),
            ("docker_orphan_grace", d(self.docker_orphan_grace)),
            (
                "docker_orphan_reconcile_interval",
                d(self.docker_orphan_reconcile_interval),
            ),
            ("session_idle_timeout", d(self.session_idle_timeout)),
            (
                "docker_orphan_dry_run",
                self.docker_orphan_dry_run.to_string(),
            ),
            ("gc_delay", d(self.gc_delay)),
            ("gc_disk_headroom", self.gc_disk_headroom.to_string()),
            ("disk_watch_interval", d(self.disk_watch_interval)),
            ("launch_timeout", d(self.launch_timeout)),
            ("image_pull_timeout", d(self.image_pull_timeout)),
            (
                "image_pull_inactivity_timeout",
                d(self.image_pull_inactivity_timeout),
            ),
            ("max_parallel_pulls", self.max_parallel_pulls.to_string()),
            (
                "fetcher_cache_dir",
                self.fetcher_cache_dir.display().to_string(),
            ),
            ("fetcher_cache_size", format_size(self.fetcher_cache_size)),
            ("fetcher_stall_timeout", d(self.fetcher_stall_timeout)),
            (
                "allowed_fetch_path",
                self.allowed_fetch_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("fetcher_max_size", format_size(self.fetcher_max_size)),
            (
                "fetcher_allowed_network",
                self.fetcher_allowed_networks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "fetcher_denied_network",
                self.fetcher_denied_networks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("container_logger", self.container_logger.as_str().into()),
            ("logrotate_max_size", format_size(self.logrotate_max_size)),
            ("logrotate_max_files", self.logrotate_max_files.to_string()),
            ("docker_log_max_size", format_size(self.docker_log_max_size)),
            (
                "docker_log_max_files",
                self.docker_log_max_files.to_string(),
            ),
            ("allow_privileged", self.allow_privileged.to_string()),
            (
                "allowed_host_path",
                self.allowed_host_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("allowed_capability", join(&self.allowances.capabilities)),
            ("allowed_device", join(&self.allowances.devices)),
            (
                "allowed_volume_driver",
                join(&self.allowances.volume_drivers),
            ),
            ("allowed_volume_type", join(&self.allowances.volume_types)),
            ("allowed_volume", join(&self.allowances.volumes)),
            ("cgroups_enable_cfs", self.cgroups_enable_cfs.to_string()),
            (
                "auth_token_file",
                self.auth_token_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "http_credentials",
                self.http_credentials
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "authenticate_http_readwrite",
                self.authenticate_http_readwrite.to_string(),
            ),
            (
                "authenticate_http_readonly",
                self.authenticate_http_readonly.to_string(),
            ),
            ("insecure_no_auth", self.insecure_no_auth.to_string()),
        ];
        flags.extend(self.http.flags());
        flags
    }
}

// The HTTP server's limits (issue 11: slow and large requests must not pin the agent's memory,
// connections or threads). Kept together so the flags above stay easy to merge.

/// `--http-*` and `--files-max-downloads` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpArgs {
    /// Time a client gets to send a request's head; also how long an idle keep-alive
    /// connection stays open [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub http_header_timeout: Option<Duration>,
    /// Time a client gets to send a request's body once its head arrived; slower bodies get 408
    /// and the connection is closed [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub http_body_timeout: Option<Duration>,
    /// A response the client does not read for this long is cut off and its connection closed
    /// [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub http_send_timeout: Option<Duration>,
    /// Connections served at once; more are answered 503 and closed [default: 1024].
    #[arg(long, value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// Memory all request bodies may hold at once (at least 1MiB, the largest body); a body
    /// that cannot get its share within 1 s is answered 503 [default: 64MiB].
    #[arg(long, value_name = "SIZE", value_parser = size_arg)]
    pub http_body_memory: Option<u64>,
    /// `/files/download` transfers at once; more are answered 503 [default: 4].
    #[arg(long, value_name = "N")]
    pub files_max_downloads: Option<usize>,
}

/// The HTTP server's limits, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `--http-header-timeout`.
    pub header_timeout: Duration,
    /// `--http-body-timeout`.
    pub body_timeout: Duration,
    /// `--http-send-timeout`.
    pub send_timeout: Duration,
    /// `--http-max-connections`.
    pub max_connections: usize,
    /// `--http-body-memory`, bytes.
    pub body_memory: u64,
    /// `--files-max-downloads`.
    pub max_downloads: usize,
}

impl HttpArgs {
    fn or(self, other: HttpArgs) -> HttpArgs {
        HttpArgs {
            http_header_timeout: self.http_header_timeout.or(other.http_header_timeout),
            http_body_timeout: self.http_body_timeout.or(other.http_body_timeout),
            http_send_timeout: self.http_send_timeout.or(other.http_send_timeout),
            http_max_connections: self.http_max_connections.or(other.http_max_connections),
            http_body_memory: self.http_body_memory.or(other.http_body_memory),
            files_max_downloads: self.files_max_downloads.or(other.files_max_downloads),
        }
    }

    fn resolve(self) -> Result<HttpConfig, ConfigError> {
        let c = HttpConfig {
            header_timeout: self.http_header_timeout.unwrap_or(Duration::from_secs(30)),
            body_timeout: self.http_body_timeout.unwrap_or(Duration::from_secs(30)),
            send_timeout: self.http_send_timeout.unwrap_or(Duration::from_secs(60)),
            max_connections: self.http_max_connections.unwrap_or(1024),
            body_memory: self.http_body_memory.unwrap_or(64 << 20),
            max_downloads: self.files_max_downloads.unwrap_or(4),
        };
        for (flag, value) in [
            ("--http-header-timeout", c.header_timeout),
            ("--http-body-timeout", c.body_timeout),
            ("--http-send-timeout", c.send_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(flag, "must be greater than 0"));
            }
        }
        for (flag, value) in [
            ("--http-max-connections", c.max_connections),
            ("--files-max-downloads", c.max_downloads),
        ] {
            if value == 0 {
                return Err(ConfigError::new(flag, "must be at least 1"));
            }
        }
        let max_body = crate::http::route::MAX_BODY as u64;
        if c.body_memory < max_body {
            return Err(ConfigError::new(
                "--http-body-memory",
                format!(
                    "{} is below 1MiB, the largest request body, so such a request could never be served",
                    format_size(c.body_memory)
                ),
            ));
        }
        Ok(c)
    }
}

impl HttpConfig {
    fn flags(&self) -> Vec<(&'static str, String)> {
        vec![
            ("http_header_timeout", format_duration(self.header_timeout)),
            ("http_body_timeout", format_duration(self.body_timeout)),
            ("http_send_timeout", format_duration(self.send_timeout)),
            ("http_max_connections", self.max_connections.to_string()),
            ("http_body_memory", format_size(self.body_memory)),
            ("files_max_downloads", self.max_downloads.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    #[command(no_binary_name = true)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn cli(args: &[&str]) -> Result<ServeArgs, String> {
        Cli::try_parse_from(args)
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_issue() {
        let c = cli(&["--work-dir", "/w"]).unwrap().resolve().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:5051");
        assert_eq!(c.sandbox_directory, "/mnt/mesos/sandbox");
        assert_eq!(c.docker_name_prefix, "berth");
        assert_eq!(c.docker_remove_delay, Duration::from_secs(6 * 3600));
        assert!(c.docker_kill_orphans);
        assert_eq!(c.docker_orphan_grace, Duration::from_secs(300));
        assert_eq!(c.fetcher_cache_dir, PathBuf::from("/w/fetch-cache"));
        assert_eq!(c.fetcher_cache_size, 2 << 30);
        assert_eq!(c.container_logger, LoggerKind::Sandbox);
        assert!(!c.allow_privileged && !c.cgroups_enable_cfs && !c.insecure_no_auth);
        assert!(
            c.allowed_fetch_paths.is_empty(),
            "local fetch sources are refused by default"
        );
        assert_eq!(c.fetcher_max_size, 4 << 30);
        assert_eq!(c.fetcher_denied_networks, berth_fetcher::Cidr::host_local());
        assert!(c.fetcher_allowed_networks.is_empty());
    }

    #[test]
    fn fetch_flags_parse_and_check() {
        let c = cli(&[
            "--work-dir=/w",
            "--allowed-fetch-path=/srv/artifacts",
            "--allowed-fetch-path=/opt/pkgs",
            "--fetcher-max-size=1GiB",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(
            c.allowed_fetch_paths,
            vec![PathBuf::from("/srv/artifacts"), PathBuf::from("/opt/pkgs")]
        );
        assert_eq!(c.fetcher_max_size, 1 << 30);

        assert!(c
            .flags()
            .contains(&("allowed_fetch_path", "/srv/artifacts,/opt/pkgs".to_owned())));
        let c = cli(&[
            "--fetcher-allowed-network=127.0.0.1/32",
            "--fetcher-denied-network=10.0.0.0/8",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(c.fetcher_allowed_networks.len(), 1);
        assert!(c
            .flags()
            .iter()
            .any(|(k, v)| *k == "fetcher_denied_network" && v.ends_with(",10.0.0.0/8")));
        let e = cli(&["--fetcher-allowed-network=localhost"]).unwrap_err();
        assert!(
            e.contains("--fetcher-allowed-network") && e.contains("ADDRESS/PREFIX"),
            "{e}"
        );
        let e = cli(&["--allowed-fetch-path=rel"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--allowed-fetch-path") && e.contains("absolute"),
            "{e}"
        );
        let e = cli(&["--work-dir=/w", "--fetcher-cache-dir=/w/sandboxes/x/cache"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--fetcher-cache-dir") && e.contains("containers write"),
            "{e}"
        );
        let e = cli(&["--fetcher-max-size=0"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--fetcher-max-size"), "{e}");
        let file = parse_config_text(
            Path::new("/etc/berth.toml"),
            "allowed-fetch-path = [\"/a\"]\nfetcher-max-size = \"2MiB\"\n",
        )
        .unwrap();
        let c = cli(&[]).unwrap().or(file).resolve().unwrap();
        assert_eq!(c.allowed_fetch_paths, vec![PathBuf::from("/a")]);
        assert_eq!(c.fetcher_max_size, 2 << 20);
    }

    #[test]
    fn flags_parse_durations_sizes_bools_and_repeats() {
        let c = cli(&[
            "--work-dir=/w",
            "--docker-remove-delay=0",
            "--docker-stop-timeout",
            "2s",
            "--fetcher-cache-size=512MiB",
            "--docker-kill-orphans=false",
            "--allow-privileged",
            "--allowed-host-path=/data",
            "--allowed-host-path=/srv",
            "--container-logger=logrotate",
            "--logrotate-max-files=3",
            "--docker-log-max-size=1MiB",
            "--docker-log-max-files=2",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(c.docker_remove_delay, Duration::ZERO);
        assert_eq!(c.docker_stop_timeout, Duration::from_secs(2));
        assert_eq!(c.fetcher_cache_size, 512 << 20);
        assert!(!c.docker_kill_orphans);
        assert!(c.allow_privileged);
        assert_eq!(
            c.allowed_host_paths,
            vec![PathBuf::from("/data"), PathBuf::from("/srv")]
        );
        assert_eq!(c.container_logger, LoggerKind::Logrotate);
        assert_eq!(c.logrotate_max_files, 3);
        assert_eq!(
            (c.docker_log_max_size, c.docker_log_max_files),
            (1 << 20, 2)
        );
    }

    #[test]
    fn allowance_flags_are_normalized_and_checked() {
        let c = cli(&[
            "--work-dir=/w",
            "--allowed-capability=cap_net_admin",
            "--allowed-capability=SYS_PTRACE",
            "--allowed-device=/dev/fuse",
            "--allowed-volume-driver=rexray",
            "--allowed-volume-type=nfs",
            "--allowed-volume=shared",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        let a = &c.allowances;
        assert_eq!(
            a.capabilities.iter().collect::<Vec<_>>(),
            ["NET_ADMIN", "SYS_PTRACE"]
        );
        assert!(a.devices.contains("/dev/fuse"));
        assert!(a.volume_drivers.contains("rexray") && a.volume_types.contains("nfs"));
        assert!(a.volumes.contains("shared"));
        for (args, flag, why) in [
            (
                ["--allowed-capability=ALL"],
                "--allowed-capability",
                "--allow-privileged",
            ),
            (
                ["--allowed-capability=SYS_ADMN"],
                "--allowed-capability",
                "not a Linux capability",
            ),
            (
                ["--allowed-device=dev/fuse"],
                "--allowed-device",
                "absolute",
            ),
            (
                ["--allowed-volume-type=none"],
                "--allowed-volume-type",
                "--allowed-host-path",
            ),
            (["--allowed-volume= "], "--allowed-volume", "non-empty"),
        ] {
            let e = cli(&args).unwrap().resolve().unwrap_err().to_string();
            assert!(e.contains(flag) && e.contains(why), "{args:?}: {e}");
        }
    }

    #[test]
    fn bad_flag_values_name_the_flag() {
        let e = cli(&["--docker-remove-delay=6x"]).unwrap_err();
        assert!(
            e.contains("--docker-remove-delay") && e.contains("unknown unit `x`"),
            "{e}"
        );
        let e = cli(&["--fetcher-cache-size=lots"]).unwrap_err();
        assert!(
            e.contains("--fetcher-cache-size") && e.contains("expected a number"),
            "{e}"
        );
        let e = cli(&["--listen=localhost"]).unwrap_err();
        assert!(
            e.contains("--listen") && e.contains("expected IP:PORT"),
            "{e}"
        );
        let e = cli(&["--container-logger=syslog"]).unwrap_err();
        assert!(
            e.contains("--container-logger") && e.contains("logrotate"),
            "{e}"
        );
        let e = cli(&["--sandbox-directory=rel"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--sandbox-directory") && e.contains("absolute"),
            "{e}"
        );
        for bad in ["-x", "a/b", ""] {
            let e = cli(&[&format!("--docker-name-prefix={bad}")])
                .unwrap()
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(e.contains("--docker-name-prefix"), "{bad:?}: {e}");
        }
        let c = cli(&["--docker-name-prefix=berth-e2e-42"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.docker_name_prefix, "berth-e2e-42");
        assert!(c
            .flags()
            .contains(&("docker_name_prefix", "berth-e2e-42".to_owned())));
        let e = cli(&["--allowed-host-path=data"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--allowed-host-path"), "{e}");
        let e = cli(&["--max-parallel-pulls=0"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--max-parallel-pulls") && e.contains("at least 1"),
            "{e}"
        );
        let e = cli(&["--docker-socket=ssh://host"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--docker-socket"), "{e}");
        let e = cli(&["--agent-id=a/b"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--agent-id") && e.contains("'/'"), "{e}");
    }

    #[test]
    fn non_loopback_listen_requires_auth_or_explicit_opt_out() {
        let e = cli(&["--listen=0.0.0.0:5051"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--auth-token-file") && e.contains("--insecure-no-auth"),
            "{e}"
        );
        cli(&["--listen=0.0.0.0:5051", "--auth-token-file=/t"])
            .unwrap()
            .resolve()
            .unwrap();
        cli(&["--listen=0.0.0.0:5051", "--insecure-no-auth"])
            .unwrap()
            .resolve()
            .unwrap();
        cli(&["--listen=[::1]:5051"]).unwrap().resolve().unwrap();
        let e = cli(&["--auth-token-file=/t", "--insecure-no-auth"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicts"), "{e}");
        // Mesos credentials alone are authentication enough for a non-loopback address.
        let c = cli(&["--listen=0.0.0.0:5051", "--http-credentials=/c"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.http_credentials, Some(PathBuf::from("/c")));
        let e = cli(&["--http-credentials=/c", "--insecure-no-auth"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicts with --http-credentials"), "{e}");
        let e = cli(&["--listen=0.0.0.0:5051"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--http-credentials FILE"), "{e}");
    }

    #[test]
    fn authenticate_http_flags_default_to_protecting_both_realms_when_a_secret_is_given() {
        let realms = |args: &[&str]| {
            let c = cli(args).unwrap().resolve().unwrap();
            (c.authenticate_http_readwrite, c.authenticate_http_readonly)
        };
        // Nothing configured: nothing to authenticate against, both realms open (loopback).
        assert_eq!(realms(&[]), (false, false));
        // A token or credentials: both realms protected (Mesos would default both to false).
        assert_eq!(realms(&["--auth-token-file=/t"]), (true, true));
        assert_eq!(realms(&["--http-credentials=/c"]), (true, true));
        assert_eq!(
            realms(&[
                "--http-credentials=/c",
                "--authenticate-http-readonly=false"
            ]),
            (true, false)
        );
        assert_eq!(
            realms(&[
                "--auth-token-file=/t",
                "--authenticate-http-readwrite=false"
            ]),
            (false, true)
        );
        assert_eq!(
            realms(&["--auth-token-file=/t", "--authenticate-http-readonly"]),
            (true, true)
        );
        // Monitoring on another host may read without credentials: allowed off loopback.
        assert_eq!(
            realms(&[
                "--listen=0.0.0.0:5051",
                "--http-credentials=/c",
                "--authenticate-http-readonly=false"
            ]),
            (true, false)
        );
        // /api/v1 open off loopback: refused unless acknowledged with --insecure-no-auth.
        let e = cli(&[
            "--listen=0.0.0.0:5051",
            "--http-credentials=/c",
            "--authenticate-http-readwrite=false",
        ])
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--listen")
                && e.contains("--authenticate-http-readwrite=false leaves /api/v1")
                && e.contains("--insecure-no-auth"),
            "{e}"
        );
        assert_eq!(
            realms(&[
                "--listen=0.0.0.0:5051",
                "--http-credentials=/c",
                "--authenticate-http-readwrite=false",
                "--insecure-no-auth"
            ]),
            (false, true)
        );
        // On loopback an open /api/v1 needs no acknowledgement (as without any secret).
        assert_eq!(
            realms(&[
                "--http-credentials=/c",
                "--authenticate-http-readwrite=false"
            ]),
            (false, true)
        );
        // Asking for authentication with nothing to check it against: refused, as Mesos does.
        for flag in [
            "--authenticate-http-readwrite",
            "--authenticate-http-readonly=true",
        ] {
            let e = cli(&[flag]).unwrap().resolve().unwrap_err().to_string();
            assert!(
                e.starts_with(flag.split('=').next().unwrap())
                    && e.contains("--auth-token-file FILE or --http-credentials FILE"),
                "{flag}: {e}"
            );
        }
        let e = cli(&["--authenticate-http-readwrite=maybe"]).unwrap_err();
        assert!(e.contains("--authenticate-http-readwrite"), "{e}");
        // The flags show in /flags; the config file takes them too.
        let c = cli(&["--auth-token-file=/t", "--authenticate-http-readonly=false"])
            .unwrap()
            .resolve()
            .unwrap();
        let flags = c.flags();
        assert!(flags.contains(&("authenticate_http_readwrite", "true".to_owned())));
        assert!(flags.contains(&("authenticate_http_readonly", "false".to_owned())));
        let file = parse_config_text(
            Path::new("/etc/berth.toml"),
            "http-credentials = \"/c\"\nauthenticate-http-readonly = false\n",
        )
        .unwrap();
        let c = cli(&[]).unwrap().or(file).resolve().unwrap();
        assert!(c.authenticate_http_readwrite && !c.authenticate_http_readonly);
    }

    #[test]
    fn credentials_is_another_name_for_http_credentials() {
        let c = cli(&["--credentials=/etc/berth/credentials.json"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            c.http_credentials,
            Some(PathBuf::from("/etc/berth/credentials.json"))
        );
        let file =
            parse_config_text(Path::new("/etc/berth.toml"), "credentials = \"/c\"\n").unwrap();
        let c = cli(&[]).unwrap().or(file).resolve().unwrap();
        assert_eq!(c.http_credentials, Some(PathBuf::from("/c")));
    }

    #[test]
    fn config_file_fills_in_and_the_command_line_wins() {
        let path = Path::new("/etc/berth.toml");
        let file = parse_config_text(
            path,
            "listen = \"127.0.0.1:6000\"\nwork-dir = \"/from-file\"\ndocker-remove-delay = \"1h\"\n\
             allowed-host-path = [\"/a\", \"/b\"]\nallow-privileged = true\nmax-parallel-pulls = 2\n",
        )
        .unwrap();
        let merged = cli(&["--work-dir=/from-cli"])
            .unwrap()
            .or(file)
            .resolve()
            .unwrap();
        assert_eq!(merged.work_dir, PathBuf::from("/from-cli"));
        assert_eq!(merged.listen.port(), 6000);
        assert_eq!(merged.docker_remove_delay, Duration::from_secs(3600));
        assert_eq!(merged.allowed_host_paths.len(), 2);
        assert!(merged.allow_privileged);
        assert_eq!(merged.max_parallel_pulls, 2);
    }

    #[test]
    fn config_file_takes_the_global_settings_too() {
        let path = Path::new("/etc/berth.toml");
        let text = "log-level = \"info,berth=debug\"\nlog-format = \"json\"\nworker-threads = 2\nmax-parallel-pulls = 3\n";
        assert_eq!(
            ProcessSettings::parse(path, text).unwrap(),
            ProcessSettings {
                log_level: Some("info,berth=debug".into()),
                log_format: Some(crate::logging::LogFormat::Json),
                worker_threads: Some(2),
            }
        );
        // `serve`'s own reading of the same file skips them instead of refusing them.
        assert_eq!(
            parse_config_text(path, text).unwrap().max_parallel_pulls,
            Some(3)
        );
        for (bad, key) in [
            ("log-format = \"xml\"", "log-format"),
            ("worker-threads = -1", "worker-threads"),
            ("log-level = 3", "log-level"),
        ] {
            let e = ProcessSettings::parse(path, bad).unwrap_err().to_string();
            assert!(
                e.contains("/etc/berth.toml") && e.contains(key),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn config_file_errors_name_the_file_and_key() {
        let path = Path::new("/etc/berth.toml");
        let e = parse_config_text(path, "no-such-flag = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/berth.toml") && e.contains("no-such-flag"),
            "{e}"
        );
        let e = parse_config_text(path, "docker-remove-delay = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--docker-remove-delay") && e.contains("soon"),
            "{e}"
        );
        let e = parse_config_text(path, "listen = [\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/berth.toml"), "{e}");
        let e = parse_config_text(path, "[section]\nx = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("section"), "{e}");
    }

    #[test]
    fn http_limits_have_safe_defaults_and_are_checked() {
        let c = cli(&["--work-dir=/w"]).unwrap().resolve().unwrap();
        assert_eq!(
            c.http,
            HttpConfig {
                header_timeout: Duration::from_secs(30),
                body_timeout: Duration::from_secs(30),
                send_timeout: Duration::from_secs(60),
                max_connections: 1024,
                body_memory: 64 << 20,
                max_downloads: 4,
            }
        );
        let c = cli(&[
            "--http-body-timeout=5s",
            "--http-max-connections=10",
            "--http-body-memory=2MiB",
            "--files-max-downloads=1",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(c.http.body_timeout, Duration::from_secs(5));
        assert_eq!(c.http.max_connections, 10);
        assert_eq!(c.http.body_memory, 2 << 20);
        assert!(c.flags().contains(&("http_body_memory", "2MiB".to_owned())));
        for (bad, flag) in [
            ("--http-body-timeout=0", "--http-body-timeout"),
            ("--http-max-connections=0", "--http-max-connections"),
            ("--files-max-downloads=0", "--files-max-downloads"),
            ("--http-body-memory=512KiB", "--http-body-memory"),
        ] {
            let e = cli(&[bad]).unwrap().resolve().unwrap_err().to_string();
            assert!(e.starts_with(flag), "{bad}: {e}");
        }
        let file = parse_config_text(Path::new("/b.toml"), "http-send-timeout = \"9s\"\n").unwrap();
        let c = cli(&[]).unwrap().or(file).resolve().unwrap();
        assert_eq!(c.http.send_timeout, Duration::from_secs(9));
    }

    #[test]
    fn flags_never_reveal_secrets() {
        let mut c = cli(&["--work-dir=/w", "--auth-token-file=/secret/token"])
            .unwrap()
            .resolve()
            .unwrap();
        c.docker_config = Some("{\"auths\":{\"r\":{\"auth\":\"c2VjcmV0\"}}}".into());
        let flags = c.flags();
        assert!(flags.iter().all(|(_, v)| !v.contains("c2VjcmV0")));
        assert!(flags
            .iter()
            .any(|(k, v)| *k == "auth_token_file" && v == "/secret/token"));
    }
}
