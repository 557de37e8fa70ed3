//! `berth run`: one container through the whole pipeline (fetch, pull, run), its output streamed,
//! the process exiting with the container's exit code. Without `--agent` it starts an agent
//! in-process, in a per-user work directory, so no daemon of Berth's is needed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::cmds::{describe, exit_code};
use super::logs::{Tail, POLL};
use super::progress::{Bars, Display, Lines};
use crate::agent::workdir;
use crate::client::AgentClient;
use crate::config::ServeArgs;
use crate::error::Error;
use crate::http::auth::Auth;
use crate::units::parse_size;

/// Grace given to the container on the first stop signal (Ctrl-C, SIGTERM, SIGHUP); a second one
/// kills it.
const INTERRUPT_GRACE: Duration = Duration::from_secs(10);

/// `berth run` options.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// The image [default: berth-local/base:<version>, built from this host's busybox or shell].
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// A URI to fetch into the sandbox first; `#sha256=HEX` checks its digest (repeatable).
    #[arg(long = "uri", value_name = "URL[#sha256=HEX]")]
    pub uris: Vec<String>,
    /// CPUs.
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Memory, e.g. 256MiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub mem: Option<u64>,
    /// An environment variable (repeatable).
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// A bind mount HOST:CONTAINER[:ro] (repeatable).
    #[arg(long = "volume", short = 'v', value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<String>,
    /// Network: host (default), bridge, none, or a user-defined network's name.
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a port HOST:CONTAINER[/udp] (repeatable; implies bridge networking).
    #[arg(long = "publish", short = 'p', value_name = "HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// A label on the Docker container, KEY=VALUE (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Pull the image even if it is present.
    #[arg(long)]
    pub force_pull: bool,
    /// The user to run as.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// The container id [default: run-<random>].
    #[arg(long, value_name = "ID")]
    pub name: Option<String>,
    /// With --agent: remove the container when it has ended (the embedded agent always does).
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open and send it our keyboard (with -t), as `docker run -i`.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Give the container a terminal the size of ours, as `docker run -t`.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// An agent to run on (e.g. http://127.0.0.1:5051) instead of an embedded one.
    #[arg(long, env = "BERTH_AGENT", value_name = "URL")]
    pub agent: Option<String>,
    /// With --agent: the file holding its bearer token (or set BERTH_TOKEN).
    #[arg(long, env = "BERTH_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The embedded agent's work directory [default: $XDG_STATE_HOME/berth, else ~/.local/state/berth].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The Docker daemon of the embedded agent (and of the default image's build): a socket
    /// path, `unix:///path` or `tcp://host:port` [default: $DOCKER_HOST, else /var/run/docker.sock].
    #[arg(long, value_name = "ENDPOINT")]
    pub docker_socket: Option<String>,
    /// The command and its arguments [default: the image's].
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn bad(flag: &str, reason: impl Into<String>) -> Error {
    Error::Config(crate::ConfigError::new(flag, reason))
}

/// `URL[#sha256=HEX]` into a URI object.
fn uri(spec: &str) -> Result<Value, Error> {
    match spec.rsplit_once("#sha256=") {
        Some((url, hex)) => {
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    "--uri",
                    format!("`{spec}`: the sha256 must be 64 hex digits"),
                ));
            }
            Ok(json!({"value": url, "checksum": format!("sha256:{}", hex.to_ascii_lowercase())}))
        }
        None => Ok(json!({"value": spec})),
    }
}

/// Builds the `launch_container` payload for `args` running `image` as container `id`.
pub fn launch_payload(args: &RunArgs, id: &str, image: &str) -> Result<Value, Error> {
    let mut env = Vec::new();
    for e in &args.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| bad("--env", format!("`{e}` is not K=V")))?;
        if k.is_empty() {
            return Err(bad("--env", format!("`{e}` has an empty name")));
        }
        env.push(json!({"name": k, "value": v}));
    }
    let mut command = match args.command.split_first() {
        None => json!({"shell": false}),
        Some((first, rest)) => json!({"shell": false, "value": first, "arguments": rest}),
    };
    if !env.is_empty() {
        command["environment"] = json!({"variables": env});
    }
    if !args.uris.is_empty() {
        command["uris"] = Value::Array(args.uris.iter().map(|u| uri(u)).collect::<Result<_, _>>()?);
    }
    if let Some(u) = &args.user {
        command["user"] = json!(u);
    }
    let mut volumes = Vec::new();
    for v in &args.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, container, mode) = match parts.as_slice() {
            [h, c] => (*h, *c, "RW"),
            [h, c, "ro"] => (*h, *c, "RO"),
            [h, c, "rw"] => (*h, *c, "RW"),
            _ => {
                return Err(bad(
                    "--volume",
                    format!("`{v}` is not HOST:CONTAINER[:ro|rw]"),
                ))
            }
        };
        if host.is_empty() || container.is_empty() {
            return Err(bad("--volume", format!("`{v}` has an empty path")));
        }
        volumes.push(json!({"host_path": host, "container_path": container, "mode": mode}));
    }
    let mut port_mappings = Vec::new();
    let mut ranges = Vec::new();
    for p in &args.publish {
        let (ports, proto) = match p.split_once('/') {
            Some((ports, proto @ ("tcp" | "udp"))) => (ports, proto),
            Some(_) => {
                return Err(bad(
                    "--publish",
                    format!("`{p}`: the protocol must be tcp or udp"),
                ))
            }
            None => (p.as_str(), "tcp"),
        };
        let parse = |s: &str| s.parse::<u16>().ok().filter(|n| *n > 0);
        let (h, c) = ports
            .split_once(':')
            .and_then(|(h, c)| Some((parse(h)?, parse(c)?)))
            .ok_or_else(|| {
                bad(
                    "--publish",
                    format!("`{p}` is not HOST:CONTAINER with ports 1..=65535"),
                )
            })?;
        port_mappings.push(json!({"host_port": h, "container_port": c, "protocol": proto}));
        ranges.push(json!({"begin": h, "end": h}));
    }
    let network = match args.network.as_deref() {
        None if !port_mappings.is_empty() => "BRIDGE".to_owned(),
        None | Some("host") => "HOST".to_owned(),
        Some("bridge") => "BRIDGE".to_owned(),
        Some("none") => "NONE".to_owned(),
        Some(_) => "USER".to_owned(),
    };
    let mut docker =
        json!({"image": image, "network": network, "force_pull_image": args.force_pull});
    if !port_mappings.is_empty() {
        docker["port_mappings"] = Value::Array(port_mappings);
    }
    if !args.labels.is_empty() {
        let mut params = Vec::new();
        for l in &args.labels {
            if !l.contains('=') || l.starts_with('=') {
                return Err(bad("--label", format!("`{l}` is not KEY=VALUE")));
            }
            params.push(json!({"key": "label", "value": l}));
        }
        docker["parameters"] = Value::Array(params);
    }
    let mut container = json!({"type": "DOCKER", "docker": docker});
    if args.interactive && !args.tty {
        return Err(bad(
            "--interactive",
            "needs --tty: a container's stdin is open only with a terminal (use -it)",
        ));
    }
    if args.tty {
        let (rows, columns) = super::cmds::terminal_size().unwrap_or((24, 80));
        container["tty_info"] = json!({"window_size": {"rows": rows, "columns": columns}});
    }
    if network == "USER" {
        container["network_infos"] = json!([{"name": args.network}]);
    }
    if !volumes.is_empty() {
        container["volumes"] = Value::Array(volumes);
    }
    let mut resources = Vec::new();
    if let Some(c) = args.cpus {
        if !(c.is_finite() && c > 0.0) {
            return Err(bad("--cpus", format!("{c} must be a number > 0")));
        }
        resources.push(json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": c}}));
    }
    if let Some(m) = args.mem {
        resources.push(json!({"name": "mem", "type": "SCALAR", "scalar": {"value": m as f64 / (1u64 << 20) as f64}}));
    }
    if !ranges.is_empty() {
        resources.push(json!({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}}));
    }
    Ok(json!({
        "container_id": {"value": id},
        "command": command,
        "resources": resources,
        "container": container,
    }))
}

/// The per-user base directory of embedded agents.
pub fn default_work_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/berth"),
        None => std::env::temp_dir().join(format!("berth-{}", rustix::process::getuid().as_raw())),
    }
}

/// The directories of the local files among `--uri` values (absolute paths and `file://`).
fn local_uri_dirs(uris: &[String]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = uris
        .iter()
        .filter_map(|u| {
            let v = u
                .rsplit_once("#sha256=")
                .map_or(u.as_str(), |(v, _)| v)
                .trim_start();
            let path = match v.strip_prefix("file://") {
                Some(rest) => rest.strip_prefix("localhost").unwrap_or(rest),
                None if v.contains("://") => return None,
                None => v,
            };
            let path = std::path::Path::new(path);
            path.is_absolute()
                .then(|| path.parent().map(std::path::Path::to_path_buf))
                .flatten()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// An agent running inside this process for one `berth run`.
struct Embedded {
    client: AgentClient,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

/// Starts an embedded agent in the first free slot (`<base>/slot-N`) of the per-user work
/// directory, so concurrent `berth run`s never share (and never reap) each other's containers.
async fn start_embedded(args: &RunArgs) -> Result<Embedded, Error> {
    let base = args.work_dir.clone().unwrap_or_else(default_work_dir);
    let mut slot = 0;
    let (work_dir, lock) = loop {
        let dir = base.join(format!("slot-{slot}"));
        if let Some(lock) = workdir::try_prepare(&dir)? {
            break (dir, lock);
        }
        slot += 1;
    };
    let allowed: Vec<PathBuf> = args
        .volumes
        .iter()
        .filter_map(|v| v.split(':').next())
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    let serve = ServeArgs {
        listen: Some("127.0.0.1:0".parse().expect("a valid address")),
        work_dir: Some(work_dir),
        // The embedded agent fetches only what this command line names: the local files given
        // with --uri, from their directories.
        allowed_fetch_paths: local_uri_dirs(&args.uris),
        // ... and any address it names, this host's included: the user's own services.
        fetcher_allowed_networks: vec![
            "0.0.0.0/0".parse().expect("a valid network"),
            "::/0".parse().expect("a valid network"),
        ],
        // Containers of this slot's agent that no checkpoint knows can only be leftovers of a
        // `berth run` that died; nobody else uses the slot.
        docker_orphan_grace: Some(Duration::ZERO),
        docker_socket: args.docker_socket.clone(),
        allowed_host_paths: allowed,
        ..ServeArgs::default()
    };
    let config = serve.resolve()?;
    let mut started = crate::runtime::start_locked(config, lock).await?;
    let token: String = (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
        .collect();
    started.auth = Arc::new(Auth::token(token.clone()));
    let addr = started
        .listener
        .local_addr()
        .map_err(|e| Error::io("read listen address", "(socket)", e))?;
    let cz = started.agent.containerizer().clone();
    // Leftovers of an earlier run in this slot that died before cleaning up.
    for id in cz.containers() {
        tracing::info!(container_id = %id, "removing a leftover container of an earlier berth run");
        cz.destroy(&id).await;
        let _ = cz.remove(&id).await;
        let _ = tokio::fs::remove_dir_all(started.agent.sandbox_of(&id)).await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::server::serve(
        started.listener,
        started.agent,
        started.auth,
        async {
            let _ = stopped.await;
        },
    ));
    let client = AgentClient::new(&format!("http://{addr}"), Some(token))?;
    Ok(Embedded {
        client,
        stop,
        server,
    })
}

/// Shows fetch and pull progress while a launch is in flight: bars on a terminal, plain lines
/// otherwise. Polls the container's `GET_CONTAINERS` entry until the launch leaves the launch
/// states or `done` fires (the launch answered); then shows the state once more and finishes.
async fn show_progress(
    client: AgentClient,
    id: String,
    mut display: Box<dyn Display>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let mut last = false;
    loop {
        if let Ok(c) = client.container(&id).await {
            let b = &c["berth"];
            display.show(b, std::time::Instant::now());
            let launching = matches!(
                b["state"].as_str(),
                Some("FETCHING" | "PULLING" | "MOUNTING")
            );
            if !launching {
                break;
            }
        }
        if last {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut done => last = true,
        }
    }
    display.finish();
}

/// The signals that stop a `berth run` as Ctrl-C does: SIGINT (Ctrl-C), SIGTERM (a supervisor,
/// `kill`) and SIGHUP (the terminal went away). Registered when created — before the image
/// build, the agent's start and the launch — so a signal at any later moment stops the
/// container instead of ending this process by the default action and leaving it running.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> Result<StopSignals, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind| {
            signal(kind).map_err(|e| Error::io("install a signal handler", "(signals)", e))
        };
        Ok(StopSignals {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    /// The next stop signal: its name and number.
    async fn recv(&mut self) -> (&'static str, i32) {
        tokio::select! {
            _ = self.int.recv() => ("SIGINT", 2),
            _ = self.term.recv() => ("SIGTERM", 15),
            _ = self.hup.recv() => ("SIGHUP", 1),
        }
    }
}

/// What `run` needs before it can launch: the agent to launch on and the launch.
struct Prepared {
    client: AgentClient,
    embedded: Option<Embedded>,
    payload: Value,
}

/// Everything before the launch: the image (the default one built if Docker lacks it), the
/// launch request, and the agent (the given one, or an embedded one started here).
async fn prepare(args: &RunArgs, id: &str) -> Result<Prepared, Error> {
    berth_containerizer::ContainerId::new(id).map_err(|e| bad("--name", e.to_string()))?;
    let image = match &args.image {
        Some(i) => i.clone(),
        None => {
            let endpoint = args.docker_socket.clone().or_else(|| {
                std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|v| !v.trim().is_empty())
            });
            let docker = crate::runtime::connect_docker(
                endpoint
                    .as_deref()
                    .unwrap_or(berth_docker_api::DEFAULT_SOCKET),
            )
            .await?;
            crate::image::ensure_default_image(&docker).await?
        }
    };
    let payload = launch_payload(args, id, &image)?;
    Ok(match &args.agent {
        Some(url) => Prepared {
            client: AgentClient::new(url, super::token(args.token_file.as_deref())?)?
                .with_connect_hint("or omit --agent to run an embedded agent"),
            embedded: None,
            payload,
        },
        None => {
            let e = start_embedded(args).await?;
            Prepared {
                client: e.client.clone(),
                embedded: Some(e),
                payload,
            }
        }
    })
}

/// Runs the container; returns the exit code for the process: the container's, or 125 when it
/// could not be launched (as `docker run`: a bad flag, no Docker daemon, a failed launch).
pub async fn run(args: RunArgs) -> Result<i32, Error> {
    let id = args
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{:08x}", rand::random::<u32>()));
    let mut signals = match StopSignals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: error: {e}");
            return Ok(125);
        }
    };
    let prepared = tokio::select! {
        p = prepare(&args, &id) => p,
        (name, n) = signals.recv() => {
            // Nothing was launched yet: there is no container to stop.
            eprintln!("berth: {name} received before container {id} was launched; nothing runs");
            return Ok(128 + n);
        }
    };
    let Prepared {
        client,
        embedded,
        payload,
    } = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth: error: {e}");
            return Ok(125);
        }
    };
    let code = run_on(
        &client,
        &id,
        payload,
        embedded.is_some() || args.rm,
        args.interactive,
        &mut signals,
    )
    .await;
    if code.is_err() && embedded.is_some() {
        // E.g. stdout closed under us: the embedded agent goes away with this process, so its
        // container must not outlive it.
        let _ = client.kill(&id, Some(9), None).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), client.wait(&id)).await;
        let _ = client.remove(&id).await;
    } else if code.is_err() {
        // A hangup also closes the terminal, so writing the output can fail before the loop
        // sees the SIGHUP: honour a stop signal that is already pending.
        if let Ok((name, _)) =
            tokio::time::timeout(Duration::from_millis(100), signals.recv()).await
        {
            request_stop(&client, &id, 1, name).await;
        }
    }
    if let Some(e) = embedded {
        let _ = e.stop.send(());
        let _ = e.server.await;
    }
    code
}

/// Asks the agent to stop container `id` after the `nth` stop signal: the first stops it
/// gracefully (SIGTERM, then SIGKILL after [`INTERRUPT_GRACE`]), a later one kills it. A
/// container still launching is destroyed by the agent either way.
async fn request_stop(client: &AgentClient, id: &str, nth: u32, signal: &str) {
    let (kill_signal, grace) = if nth == 1 {
        (None, Some(INTERRUPT_GRACE))
    } else {
        (Some(9), None)
    };
    eprintln!(
        "berth: {signal}: stopping container {id}{}",
        if nth == 1 { " (again to kill)" } else { "" }
    );
    if let Err(e) = client.kill(id, kill_signal, grace).await {
        tracing::debug!(container_id = %id, error = %e, "stop request not taken (yet)");
    }
}

async fn run_on(
    client: &AgentClient,
    id: &str,
    payload: Value,
    remove: bool,
    interactive: bool,
    signals: &mut StopSignals,
) -> Result<i32, Error> {
    let display: Box<dyn Display> = if std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::new(std::io::stderr()))
    };
    let (done, launch_answered) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(show_progress(
        client.clone(),
        id.to_owned(),
        display,
        launch_answered,
    ));
    let mut interrupts = 0;
    let launched = {
        let launch = client.launch(payload);
        tokio::pin!(launch);
        loop {
            tokio::select! {
                r = &mut launch => break r,
                (name, _) = signals.recv() => {
                    interrupts += 1;
                    request_stop(client, id, interrupts, name).await;
                }
            }
        }
    };
    let _ = done.send(());
    // One last look (it finishes the fetch lines), bounded so a stuck agent cannot hold us.
    let _ = tokio::time::timeout(Duration::from_secs(2), progress).await;
    if let Err(e) = launched {
        // The launch destroyed itself; its record stays until removed.
        if remove {
            let _ = client.remove(id).await;
        }
        eprintln!("berth: {e}");
        return Ok(125);
    }
    if interrupts > 0 {
        // A stop that reached the agent before it knew the container found nothing to stop
        // (404): ask again now that it runs.
        request_stop(client, id, interrupts, "stop requested during the launch").await;
    }
    if interactive {
        // What the container wrote before we attach (a shell's first prompt) is in its log,
        // once the logger has it: wait for it a moment (a second at most: a program may well
        // write nothing), then follow live. A byte written between the two is missed, not
        // doubled.
        let path = format!("/containers/{id}/stdout");
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            match client.read_file(&path, 0, None).await {
                Ok((_, data)) if !data.is_empty() => {
                    use std::io::Write as _;
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&data).and_then(|()| o.flush());
                    break;
                }
                _ if tokio::time::Instant::now() >= until => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let code = super::cmds::attach(client, id, true).await;
        if remove {
            let _ = client.wait(id).await;
            if let Err(e) = client.remove(id).await {
                eprintln!("berth: could not remove container {id}: {e}");
            }
        }
        return code;
    }
    let mut out = Tail::new(id, "stdout");
    let mut err = Tail::new(id, "stderr");
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let waiter = {
        let client = client.clone();
        let id = id.to_owned();
        tokio::spawn(async move { client.wait(&id).await })
    };
    tokio::pin!(waiter);
    let wait = loop {
        out.poll(client, &mut stdout).await?;
        err.poll(client, &mut stderr).await?;
        tokio::select! {
            ended = &mut waiter => {
                out.poll(client, &mut stdout).await?;
                err.poll(client, &mut stderr).await?;
                break ended.map_err(|e| Error::Containerizer(format!("wait task failed: {e}")))??;
            }
            (name, _) = signals.recv() => {
                interrupts += 1;
                request_stop(client, id, interrupts, name).await;
            }
            () = tokio::time::sleep(POLL) => {}
        }
    };
    let code = exit_code(&wait);
    let state = wait["state"].as_str().unwrap_or("");
    if code == 125
        || (state != "TASK_FINISHED" && wait["exit_status"].as_i64().is_none())
        || state == "TASK_KILLED"
    {
        eprintln!("berth: container {id}: {}", describe(&wait));
    }
    if remove {
        if let Err(e) = client.remove(id).await {
            eprintln!("berth: could not remove container {id}: {e}");
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_embedded_agent_allows_only_the_directories_of_local_uris() {
        let dirs = local_uri_dirs(&[
            "/opt/app/run.sh".into(),
            "file:///srv/pkg/a.tgz#sha256=00".into(),
            "file://localhost/srv/pkg/b.tgz".into(),
            "http://host/x.tgz".into(),
            "relative/y".into(),
        ]);
        assert_eq!(
            dirs,
            vec![PathBuf::from("/opt/app"), PathBuf::from("/srv/pkg")]
        );
    }

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(a: &[&str]) -> RunArgs {
        P::try_parse_from(std::iter::once("run").chain(a.iter().copied()))
            .unwrap()
            .run
    }

    fn roundtrip(a: &[&str]) -> crate::api::LaunchRequest {
        let payload = launch_payload(&args(a), "c1", "img").unwrap();
        match crate::api::parse_call(
            json!({"type": "LAUNCH_CONTAINER", "launch_container": payload})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
        {
            crate::api::Call::LaunchContainer(l) => *l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_flags_become_a_valid_launch() {
        let l = roundtrip(&[
            "--cpus",
            "0.5",
            "--mem",
            "64MiB",
            "--label",
            "team=a",
            "-e",
            "A=b=c",
            "-v",
            "/data:/d:ro",
            "-p",
            "8080:80",
            "--uri",
            &format!("http://h/x.tgz#sha256={}", "AB".repeat(32)),
            "--force-pull",
            "--",
            "sh",
            "-c",
            "echo hi",
        ]);
        let cmd = l.command.unwrap();
        assert_eq!((cmd.value.as_deref(), cmd.shell), (Some("sh"), false));
        assert_eq!(cmd.arguments, ["-c", "echo hi"]);
        assert_eq!(cmd.environment, [("A".to_owned(), "b=c".to_owned())]);
        assert_eq!(
            cmd.uris[0].checksum.as_deref(),
            Some(format!("sha256:{}", "ab".repeat(32)).as_str())
        );
        assert_eq!(l.resources.cpus, Some(0.5));
        assert_eq!(l.resources.mem_mb, Some(64.0));
        assert_eq!(l.resources.ports, [(8080, 8080)]);
        let c = l.container.unwrap();
        let d = c.docker.unwrap();
        assert_eq!(
            d.network,
            crate::api::NetworkMode::Bridge,
            "publishing implies bridge"
        );
        assert!(d.force_pull_image);
        assert_eq!(d.parameters, [("label".to_owned(), "team=a".to_owned())]);
        assert!(c.volumes[0].read_only);
    }

    #[test]
    fn no_command_runs_the_image_default_and_user_networks_carry_their_name() {
        let l = roundtrip(&["--network", "mynet"]);
        assert!(l.command.unwrap().value.is_none());
        assert_eq!(
            l.container.unwrap().docker.unwrap().network,
            crate::api::NetworkMode::User("mynet".into())
        );
    }

    #[test]
    fn bad_run_flags_name_the_flag() {
        for (a, flag) in [
            (vec!["-e", "NOVALUE"], "--env"),
            (vec!["-v", "/only"], "--volume"),
            (vec!["-p", "80"], "--publish"),
            (vec!["-p", "80:90/sctp"], "--publish"),
            (vec!["--uri", "http://x#sha256=12"], "--uri"),
            (vec!["--cpus=-1"], "--cpus"),
            (vec!["--label", "nokey"], "--label"),
        ] {
            let e = launch_payload(&args(&a), "c", "i").unwrap_err().to_string();
            assert!(e.starts_with(flag), "{a:?}: {e}");
        }
    }
}
