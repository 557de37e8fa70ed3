//! `berth ps | wait | kill | rm | stats | version`.

use std::time::Duration;

use serde_json::Value;

use super::AgentArgs;
use crate::client::{AgentClient, SessionInput};
use crate::error::Error;

/// The exit code a shell would report for a `WAIT_CONTAINER` answer: the exit code, 128 + the
/// signal, or 125 when the container never ran (as `docker run` does for daemon-side failures).
pub fn exit_code(wait: &Value) -> i32 {
    match wait["exit_status"].as_i64() {
        Some(s) if s & 0x7f == 0 => ((s >> 8) & 0xff) as i32,
        Some(s) => 128 + (s & 0x7f) as i32,
        None => 125,
    }
}

/// One line describing how a container ended.
pub fn describe(wait: &Value) -> String {
    let state = wait["state"].as_str().unwrap_or("?");
    let mut out = state.to_owned();
    if let Some(s) = wait["exit_status"].as_i64() {
        if s & 0x7f == 0 {
            out.push_str(&format!(", exit code {}", (s >> 8) & 0xff));
        } else {
            out.push_str(&format!(", signal {}", s & 0x7f));
        }
    }
    if let Some(r) = wait["reason"].as_str() {
        out.push_str(&format!(", {r}"));
    }
    if let Some(m) = wait["message"].as_str() {
        out.push_str(&format!(": {m}"));
    }
    out
}

/// `berth ps`'s HEALTH cell: the status, the failures in a row when there are any, and
/// `(docker)` for Docker's own check (`healthy`, `unhealthy (2 failures)`); empty without one.
fn health_cell(h: &Value) -> String {
    let Some(status) = h["status"].as_str() else {
        return String::new();
    };
    let mut cell = status.to_owned();
    match h["consecutive_failures"].as_u64() {
        Some(1) => cell.push_str(" (1 failure)"),
        Some(n) if n > 1 => cell.push_str(&format!(" ({n} failures)")),
        _ => {}
    }
    if h["source"] == "docker" {
        cell.push_str(" (docker)");
    }
    cell
}

fn short(docker_id: &str) -> &str {
    &docker_id[..docker_id.len().min(12)]
}

/// `berth exec [-i] [-t] ID -- CMD...`: the command's stdout and stderr to ours, byte for byte
/// (one stream on a TTY); exits with its exit code (128 + N when signal N ended it, as a shell
/// reports it).
pub(super) async fn exec(
    client: &AgentClient,
    id: &str,
    argv: &[String],
    interactive: bool,
    tty: bool,
) -> Result<i32, Error> {
    let session = format!("exec-{:08x}", rand::random::<u32>());
    let window = tty.then(|| terminal_size().unwrap_or((24, 80)));
    let stream = client.launch_session(id, &session, argv, window).await?;
    futures_util::pin_mut!(stream);
    // Raw mode while the command has our keyboard: restored when this guard goes.
    let _raw = (tty && interactive).then(RawTerminal::enter).flatten();
    // The command's stdin: ours with -i (and our terminal's resizes with -t), else closed at
    // once (end-of-file), as `docker exec`.
    let input = {
        let client = client.clone();
        let (id, session) = (id.to_owned(), session.clone());
        tokio::spawn(async move {
            let data = keyboard(interactive, tty);
            client.attach_input(Some(&id), &session, data).await
        })
    };
    // The input request ends with ours; the command may end first (it closes its stdin).
    let _input = AbortOnDrop(input);
    // Dropping the stream (an interrupt) closes the connection: the agent kills the command.
    if let Some(code) = print_process_io(stream).await? {
        return Ok(code);
    }
    let ended = client
        .call_json(
            &serde_json::json!({"type": "WAIT_CONTAINER", "wait_container": {
            "container_id": {"value": session, "parent": {"value": id}}}}),
        )
        .await?;
    Ok(exit_code(&ended["wait_container"]))
}

/// Writes a stream of `ProcessIO` records to our stdout and stderr, byte for byte, until it
/// ends (`None`) or we must stop early: an interrupt (130; dropping the stream closes the
/// connection) or a closed stdout (141, as a shell reports SIGPIPE).
async fn print_process_io(
    stream: impl futures_util::Stream<Item = Result<Value, Error>>,
) -> Result<Option<i32>, Error> {
    use base64::Engine as _;
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    futures_util::pin_mut!(stream);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let record = tokio::select! {
            r = stream.next() => r,
            // (In raw mode Ctrl-C is a byte for the command, not this signal.)
            _ = &mut interrupted => return Ok(Some(130)),
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let record = record?;
        let data = &record["data"];
        let Some(bytes) = data["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        else {
            continue;
        };
        let written = if data["type"] == "STDERR" {
            let mut e = std::io::stderr().lock();
            e.write_all(&bytes).and_then(|()| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(&bytes).and_then(|()| o.flush())
        };
        if written.is_err() {
            return Ok(Some(141));
        }
    }
}

/// `berth attach [-i] ID`: the container's output from now on, until it ends (its exit code
/// then) or we are interrupted; with `-i` our keyboard goes to its stdin (a container launched
/// with a TTY has one), our terminal in raw mode meanwhile and its resizes followed.
pub(super) async fn attach(
    client: &AgentClient,
    id: &str,
    interactive: bool,
) -> Result<i32, Error> {
    let stream = client.attach_output(id).await?;
    let _raw = interactive.then(RawTerminal::enter).flatten();
    let input = interactive.then(|| {
        let client = client.clone();
        let id = id.to_owned();
        AbortOnDrop(tokio::spawn(async move {
            use futures_util::StreamExt as _;
            // Our size first, then our keys and resizes.
            let size = futures_util::stream::iter(
                terminal_size().map(|(rows, columns)| Ok(SessionInput::Resize { rows, columns })),
            );
            client
                .attach_input(None, &id, size.chain(keyboard(true, true)))
                .await
        }))
    });
    let output = print_process_io(stream);
    tokio::pin!(output);
    let printed = match input {
        None => output.await?,
        Some(mut input) => tokio::select! {
            printed = &mut output => printed?,
            // A refused input (no TTY, another client) ends the attachment with its error;
            // an input that ended (our stdin closed) leaves the output to run its course.
            done = &mut input.0 => match done {
                Ok(Err(e)) => return Err(e),
                _ => output.await?,
            },
        },
    };
    if let Some(code) = printed {
        return Ok(code);
    }
    let ended = client.wait(id).await?;
    Ok(exit_code(&ended))
}

/// Our terminal in raw mode (no echo, no line editing, Ctrl-C a byte), restored on drop.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    /// Raw mode on stdin, when it is a terminal.
    fn enter() -> Option<RawTerminal> {
        let stdin = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// The size of our terminal (stdout's, else stdin's), when there is one.
pub(super) fn terminal_size() -> Option<(u16, u16)> {
    [rustix::stdio::stdout(), rustix::stdio::stdin()]
        .into_iter()
        .find_map(|fd| rustix::termios::tcgetwinsize(fd).ok())
        .filter(|w| w.ws_row > 0 && w.ws_col > 0)
        .map(|w| (w.ws_row, w.ws_col))
}

/// What we send to a stdin: our stdin's bytes with `interactive` (ending with it), and with
/// `tty` our terminal's resizes (SIGWINCH) meanwhile; nothing at all without `interactive`.
fn keyboard(
    interactive: bool,
    tty: bool,
) -> futures_util::stream::BoxStream<'static, std::io::Result<SessionInput>> {
    use futures_util::StreamExt as _;
    if !interactive {
        return futures_util::stream::empty().boxed();
    }
    let mut events: Vec<futures_util::stream::BoxStream<'static, std::io::Result<SessionInput>>> =
        vec![tokio_util::io::ReaderStream::new(tokio::io::stdin())
            .map(|r| r.map(SessionInput::Data))
            // Marks the end of our stdin for the take_while below.
            .chain(futures_util::stream::once(async {
                Ok(SessionInput::Data(bytes::Bytes::new()))
            }))
            .boxed()];
    if tty {
        if let Ok(sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            let resizes = futures_util::stream::unfold(sig, |mut sig| async move {
                sig.recv().await?;
                Some((terminal_size(), sig))
            })
            .filter_map(|s| async move {
                s.map(|(rows, columns)| Ok(SessionInput::Resize { rows, columns }))
            });
            events.push(resizes.boxed());
        }
    }
    // Input ends with our stdin; the resizes would go on forever, so they end with it.
    let mut all = futures_util::stream::select_all(events);
    futures_util::stream::poll_fn(move |cx| all.poll_next_unpin(cx))
        .take_while(|e| {
            let end = matches!(e, Ok(SessionInput::Data(b)) if b.is_empty());
            async move { !end }
        })
        .boxed()
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `berth events`: one line per event. The text form: the time, the event, the container, its
/// state and what is worth knowing of it now (pull or fetch progress, how it ended).
pub(super) async fn events(
    client: &AgentClient,
    json: bool,
    heartbeats: bool,
) -> Result<i32, Error> {
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    let stream = client.subscribe(None).await?;
    futures_util::pin_mut!(stream);
    let mut out = std::io::stdout().lock();
    while let Some(event) = stream.next().await {
        let event = event?;
        let kind = event["type"].as_str().unwrap_or("?");
        if kind == "HEARTBEAT" && !heartbeats {
            continue;
        }
        let line = if json {
            event.to_string()
        } else {
            event_line(&event)
        };
        // A closed stdout (`berth events | head`) ends the command quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(0);
        }
    }
    Ok(0)
}

/// The time of day in UTC, `HH:MM:SS.mmm` (events are live: the date adds nothing).
fn clock(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

fn event_line(event: &Value) -> String {
    let now = clock(std::time::SystemTime::now());
    let entry_line = |c: &Value| {
        let b = &c["berth"];
        let id = c["container_id"]["value"].as_str().unwrap_or("?");
        let state = b["state"].as_str().unwrap_or("?");
        let detail = if let Some(t) = b["termination"].as_object() {
            describe(&Value::Object(t.clone()))
        } else if let Some(p) = b["pull"].as_object() {
            format!(
                "pulling {}: {}/{} bytes",
                b["image"].as_str().unwrap_or("?"),
                p.get("downloaded_bytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                p.get("download_total_bytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            )
        } else if let Some(f) = b["fetch"].as_array().filter(|f| !f.is_empty()) {
            let done: u64 = f.iter().filter_map(|u| u["done_bytes"].as_u64()).sum();
            format!("fetching {} URI(s): {done} bytes", f.len())
        } else {
            b["image"].as_str().unwrap_or("").to_owned()
        };
        format!("{id} {state} {detail}").trim_end().to_owned()
    };
    match event["type"].as_str().unwrap_or("?") {
        "SUBSCRIBED" => {
            let list = event["subscribed"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut lines = vec![format!("{now} SUBSCRIBED {} container(s)", list.len())];
            lines.extend(list.iter().map(|c| format!("{now}   {}", entry_line(c))));
            lines.join("\n")
        }
        "CONTAINER_UPDATED" => format!(
            "{now} UPDATED {}",
            entry_line(&event["container_updated"]["container"])
        ),
        "CONTAINER_REMOVED" => format!(
            "{now} REMOVED {}",
            event["container_removed"]["container_id"]["value"]
                .as_str()
                .unwrap_or("?")
        ),
        other => format!("{now} {other}"),
    }
}

pub(super) async fn ps(client: &AgentClient, json: bool) -> Result<i32, Error> {
    let containers = client.containers().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(containers)).unwrap_or_default()
        );
        return Ok(0);
    }
    let rows: Vec<[String; 6]> = containers
        .iter()
        .map(|c| {
            let b = &c["berth"];
            let status = match b["termination"].as_object() {
                Some(_) => describe(&b["termination"]),
                None => match b["pull"].as_object() {
                    Some(p) => format!(
                        "pulling {}/{} bytes",
                        p.get("downloaded_bytes")
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                        p.get("download_total_bytes")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    ),
                    None => String::new(),
                },
            };
            [
                c["container_id"]["value"].as_str().unwrap_or("").to_owned(),
                b["state"].as_str().unwrap_or("").to_owned(),
                b["image"].as_str().unwrap_or("").to_owned(),
                short(b["docker_id"].as_str().unwrap_or("")).to_owned(),
                health_cell(&b["health"]),
                status,
            ]
        })
        .collect();
    let header = [
        "CONTAINER ID",
        "STATE",
        "IMAGE",
        "DOCKER ID",
        "HEALTH",
        "STATUS",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(0)
}

pub(super) async fn wait(client: &AgentClient, id: &str) -> Result<i32, Error> {
    let w = client.wait(id).await?;
    println!("{}", describe(&w));
    Ok(exit_code(&w))
}

pub(super) async fn kill(
    client: &AgentClient,
    id: &str,
    signal: Option<i32>,
    grace: Option<Duration>,
) -> Result<i32, Error> {
    client.kill(id, signal, grace).await?;
    Ok(0)
}

pub(super) async fn rm(client: &AgentClient, id: &str, force: bool) -> Result<i32, Error> {
    if force {
        match client.kill(id, Some(9), None).await {
            Ok(()) => {}
            // Already ended (or never known: the remove below says which).
            Err(Error::Api(e)) if e.status == 404 => {}
            Err(e) => return Err(e),
        }
        client.wait(id).await?;
    }
    client.remove(id).await?;
    Ok(0)
}

pub(super) async fn stats(client: &AgentClient, id: &str, json: bool) -> Result<i32, Error> {
    let c = client.container_with_usage(id).await?;
    let Some(stats) = c.get("resource_statistics").and_then(Value::as_object) else {
        let state = c["berth"]["state"].as_str().unwrap_or("unknown");
        return Err(Error::Api(crate::ApiError::conflict(format!(
            "container {id} has no resource statistics: it is {state}, not running"
        ))));
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(stats).unwrap_or_default()
        );
        return Ok(0);
    }
    for (k, v) in stats {
        println!("{k:<28} {v}");
    }
    Ok(0)
}

pub(super) async fn version(agent: &AgentArgs) -> Result<i32, Error> {
    println!("berth {}", env!("CARGO_PKG_VERSION"));
    let client = agent.client()?;
    match client.get_json("/version").await {
        Ok(v) => println!(
            "agent at {}: berth {}, Docker {} (API {})",
            client.base(),
            v["version"].as_str().unwrap_or("?"),
            v["berth"]["docker_version"].as_str().unwrap_or("?"),
            v["berth"]["docker_api_version"].as_str().unwrap_or("?")
        ),
        Err(e) => println!("agent at {}: not reachable ({e})", client.base()),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(&json!({"exit_status": 0})), 0);
        assert_eq!(exit_code(&json!({"exit_status": 3 << 8})), 3);
        assert_eq!(exit_code(&json!({"exit_status": 9})), 137);
        assert_eq!(exit_code(&json!({"state": "TASK_FAILED"})), 125);
        assert_eq!(
            describe(
                &json!({"exit_status": 256, "state": "TASK_FAILED", "message": "Container terminated"})
            ),
            "TASK_FAILED, exit code 1: Container terminated"
        );
    }

    #[test]
    fn the_health_cell_says_the_status_and_the_failures() {
        assert_eq!(health_cell(&Value::Null), "");
        assert_eq!(
            health_cell(
                &json!({"source": "berth", "status": "healthy", "consecutive_failures": 0})
            ),
            "healthy"
        );
        assert_eq!(
            health_cell(
                &json!({"source": "berth", "status": "unhealthy", "consecutive_failures": 2})
            ),
            "unhealthy (2 failures)"
        );
        assert_eq!(
            health_cell(
                &json!({"source": "docker", "status": "starting", "consecutive_failures": 1})
            ),
            "starting (1 failure) (docker)"
        );
    }
}
