//! Sessions: commands run inside a running container for a client, on Docker's exec (Mesos's
//! nested container sessions, `LAUNCH_NESTED_CONTAINER_SESSION`).
//!
//! A session belongs to its parent container: it can only start while the parent runs, it ends
//! when its command ends (or the parent does: Docker kills a container's execs with it), and it
//! is forgotten when the parent is removed. Its output is the stream the caller reads; when the
//! caller stops reading before the end (the client went away), the session's process is killed,
//! as Mesos destroys a session whose connection closed. Signals reach the process through a
//! pidfd, opened once Docker reports its pid (the output does not wait for that), so a signal
//! can never hit a later process that reused its pid.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::watch;

use super::Inner;
use crate::engine::{OutputChunk, OutputStreamBox, SessionExec};
use crate::error::{Error, Result};
use crate::exec_process::{self, ExecProcess};
use crate::id::ContainerId;
use crate::spec::WindowSize;
use crate::state::Phase;

/// Most sessions one container may have open at once.
pub const MAX_SESSIONS_PER_CONTAINER: usize = 16;
/// Most sessions open on the agent at once.
pub const MAX_SESSIONS: usize = 256;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// The command's exit code (128 + the signal when a signal ended it, as Docker reports
    /// it); `None` when Docker could not say.
    pub exit_code: Option<i64>,
    /// How it ended, in words.
    pub message: String,
}

/// A session, as [`Containerizer::sessions`](crate::Containerizer::sessions) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// The session's id (its parent is the container it was listed for).
    pub id: ContainerId,
    /// Docker's exec id.
    pub exec_id: String,
    /// Its end, once it ended.
    pub end: Option<SessionEnd>,
}

pub(crate) struct Session {
    pub parent: ContainerId,
    pub id: ContainerId,
    pub exec_id: String,
    /// Where signals go.
    process: watch::Sender<Process>,
    /// The command's stdin, until a client attaches to it (`ATTACH_CONTAINER_INPUT`).
    input: Mutex<Option<SessionInput>>,
    /// When a byte last went either way, in milliseconds since [`epoch`]: the idle timeout's
    /// clock.
    last_activity: Arc<std::sync::atomic::AtomicU64>,
    ended: watch::Sender<Option<SessionEnd>>,
}

/// The idle clock's origin.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// A session's stdin that marks the session active on every write.
struct ActiveInput {
    inner: SessionInput,
    last_activity: Arc<std::sync::atomic::AtomicU64>,
}

impl tokio::io::AsyncWrite for ActiveInput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.last_activity
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        self.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

/// A session's process, for signals.
#[derive(Debug, Clone)]
enum Process {
    /// Its pidfd is being looked up: Docker knows an exec's pid only some time after its
    /// start (tens of milliseconds), and the output does not wait for it.
    Looking,
    /// Signals go to this process (through its pidfd: a reused pid cannot be hit).
    Found(Arc<ExecProcess>),
    /// It ended, or was never seen running: signals have nowhere to go.
    Gone,
}

impl Session {
    fn end(&self) -> Option<SessionEnd> {
        self.ended.borrow().clone()
    }

    /// The command's process once its lookup is over; `None` once it is gone.
    async fn process(&self) -> Option<Arc<ExecProcess>> {
        let process = self
            .process
            .subscribe()
            .wait_for(|p| !matches!(p, Process::Looking))
            .await
            .map_or(Process::Gone, |p| p.clone());
        match process {
            Process::Found(p) => Some(p),
            Process::Looking | Process::Gone => None,
        }
    }

    /// Sends `signal` to the command's process (a client's kill), once it is known; nothing
    /// once it is gone.
    async fn signal(&self, signal: i32) -> Result<()> {
        let sig = rustix::process::Signal::from_named_raw(signal)
            .ok_or_else(|| Error::Config(format!("signal {signal} is not a signal Berth sends")))?;
        match self.process().await {
            Some(p) => p.signal(sig).map_err(|e| self.io_error(e)),
            None => Ok(()),
        }
    }

    /// Kills the command and every process of its group: the session ends as Mesos destroys
    /// a nested container, all of it (its client went away, or it sat idle too long).
    async fn kill_all(&self) -> Result<()> {
        match self.process().await {
            Some(p) => p.kill_group().map_err(|e| self.io_error(e)),
            None => Ok(()),
        }
    }

    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io {
            action: "signalling the session's process",
            path: format!("exec {}", self.exec_id).into(),
            source,
        }
    }
}

/// A session's stdin: shutting it down sends end-of-file.
pub type SessionInput = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// A started session: its output, ending when the command ends. Dropping it before its end
/// kills the command. Its stdin waits for a client in
/// [`Containerizer::attach_session_input`](crate::Containerizer::attach_session_input).
pub struct SessionIo {
    /// Every byte the command writes, as it writes it.
    pub output: SessionOutput,
}

impl std::fmt::Debug for SessionIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionIo")
    }
}

/// A session's output stream (see [`SessionIo`]).
pub struct SessionOutput {
    inner: OutputStreamBox,
    finisher: Option<Finisher>,
}

impl Stream for SessionOutput {
    type Item = std::result::Result<OutputChunk, crate::engine::EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let (Poll::Ready(Some(Ok(_))), Some(f)) = (&next, &self.finisher) {
            f.session
                .last_activity
                .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        if let Poll::Ready(None) = next {
            if let Some(f) = self.finisher.take() {
                f.finish(false);
            }
        }
        next
    }
}

impl Drop for SessionOutput {
    fn drop(&mut self) {
        // Not read to its end: the client went away, and the command goes with it.
        if let Some(f) = self.finisher.take() {
            f.finish(true);
        }
    }
}

struct Finisher {
    inner: Arc<Inner>,
    session: Arc<Session>,
}

impl Finisher {
    fn finish(self, kill: bool) {
        let Finisher { inner, session } = self;
        if kill {
            tracing::info!(container_id = %session.parent, session = %session.id, "session's client went away; killing its command");
        }
        // Killed here when its process is known: the runtime may be going (the stream was
        // dropped with its task) and the task below never run.
        let kill_later = kill
            && {
                let process = session.process.borrow().clone();
                match process {
                    Process::Found(p) => {
                        if let Err(e) = p.kill_group() {
                            tracing::warn!(container_id = %session.parent, session = %session.id, error = %e, "could not kill the session's command");
                        }
                        false
                    }
                    Process::Looking => true,
                    Process::Gone => false,
                }
            };
        let task = async move {
            if kill_later {
                if let Err(e) = session.kill_all().await {
                    tracing::warn!(container_id = %session.parent, session = %session.id, error = %e, "could not kill the session's command");
                }
            }
            let end = settle(&inner, &session).await;
            tracing::info!(container_id = %session.parent, session = %session.id, exit_code = ?end.exit_code, "session ended");
            session.process.send_replace(Process::Gone);
            session.ended.send_replace(Some(end));
        };
        // The runtime may be shutting down (a dropped stream in a dropped task).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(task);
        }
    }
}

/// Ends `session` once it has been idle (no byte either way) for `idle`.
async fn watch_idle(session: Arc<Session>, idle: Duration) {
    let mut ended = session.ended.subscribe();
    let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = ended.wait_for(Option::is_some) => return,
            () = tokio::time::sleep(tick) => {}
        }
        let last = session
            .last_activity
            .load(std::sync::atomic::Ordering::Relaxed);
        if now_ms().saturating_sub(last) >= idle.as_millis() as u64 {
            tracing::info!(container_id = %session.parent, session = %session.id, idle = ?idle, "session idle for its timeout; killing its command");
            if let Err(e) = session.kill_all().await {
                tracing::warn!(container_id = %session.parent, session = %session.id, error = %e, "could not kill the idle session's command");
            }
            return;
        }
    }
}

/// Asks Docker how the exec ended: its output ended, but Docker may not have reaped it yet.
async fn settle(inner: &Inner, session: &Session) -> SessionEnd {
    match exec_process::ended(&*inner.engine, &session.exec_id).await {
        Ok(Some(s)) => SessionEnd {
            exit_code: s.exit_code,
            message: match s.exit_code {
                Some(0) => "Command exited with status 0".to_owned(),
                Some(c) if c > 128 => format!(
                    "Command exited with status {c} (killed by signal {})",
                    c - 128
                ),
                Some(c) => format!("Command exited with status {c}"),
                None => "Command ended".to_owned(),
            },
        },
        Ok(None) => SessionEnd {
            exit_code: None,
            message: "Command's output ended but Docker still reports it running".to_owned(),
        },
        Err(e) => SessionEnd {
            exit_code: None,
            message: format!("Command ended; Docker could not say how: {e}"),
        },
    }
}

impl Inner {
    fn sessions_map(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<(ContainerId, ContainerId), Arc<Session>>,
    > {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self, parent: &ContainerId, id: &ContainerId) -> Result<Arc<Session>> {
        self.sessions_map()
            .get(&(parent.clone(), id.clone()))
            .cloned()
            .ok_or_else(|| Error::UnknownContainer {
                id: nested(parent, id),
            })
    }

    /// Running container `id` and Docker's id of it; refused while it does not run.
    fn running_in_docker(
        &self,
        id: &ContainerId,
    ) -> Result<(Arc<super::container::Container>, String)> {
        let c = self.running(id)?;
        let docker_id = c.docker_id().ok_or_else(|| Error::NotRunning {
            id: id.clone(),
            phase: c.phase(),
        })?;
        Ok((c, docker_id))
    }

    /// Whether running container `id` (Docker's `docker_id`) has a TTY, as Docker says.
    async fn has_tty(&self, id: &ContainerId, docker_id: &str) -> Result<bool> {
        Ok(self
            .engine
            .inspect(docker_id)
            .await
            .map_err(|e| Error::engine(format!("failed to inspect container '{id}'"), e))?
            .tty)
    }

    /// Forgets a removed container's sessions.
    pub(crate) fn forget_sessions(&self, parent: &ContainerId) {
        self.sessions_map().retain(|(p, _), _| p != parent);
    }
}

/// The id Berth names a session by in messages: `parent.session`, as Mesos prints nested ids.
fn nested(parent: &ContainerId, id: &ContainerId) -> ContainerId {
    ContainerId::new(format!("{parent}.{id}")).unwrap_or_else(|_| id.clone())
}

impl super::Containerizer {
    /// Starts `exec` in the running container `parent` as session `id`, with its TTY at
    /// `window` when it has one. Refused when the parent does not run, when `id` is taken, and
    /// beyond [`MAX_SESSIONS_PER_CONTAINER`] / [`MAX_SESSIONS`] open sessions.
    pub async fn launch_session(
        &self,
        parent: &ContainerId,
        id: &ContainerId,
        mut exec: SessionExec,
        window: Option<WindowSize>,
    ) -> Result<SessionIo> {
        let inner = &self.inner;
        let (c, docker_id) = inner.running_in_docker(parent)?;
        let user = c.rt().spec.effective_user().map(str::to_owned);
        // The container's user unless the session names one: the launch's user rules hold.
        if exec.user.is_none() {
            exec.user = user;
        }
        {
            let map = inner.sessions_map();
            let key = (parent.clone(), id.clone());
            if map.contains_key(&key) {
                return Err(Error::SessionExists {
                    id: nested(parent, id),
                });
            }
            let open = |s: &&Arc<Session>| s.end().is_none();
            let here = map
                .values()
                .filter(|s| &s.parent == parent)
                .filter(open)
                .count();
            let all = map.values().filter(open).count();
            if here >= MAX_SESSIONS_PER_CONTAINER || all >= MAX_SESSIONS {
                return Err(Error::TooManySessions {
                    id: parent.clone(),
                    per_container: MAX_SESSIONS_PER_CONTAINER,
                    total: MAX_SESSIONS,
                });
            }
        }
        let started = inner
            .engine
            .start_exec(&docker_id, &exec)
            .await
            .map_err(|e| {
                Error::engine(
                    format!("failed to start a session in container '{parent}'"),
                    e,
                )
            })?;
        if let (Some(size), true) = (window, exec.tty) {
            if let Err(e) = inner.engine.resize_exec(&started.exec_id, size).await {
                tracing::warn!(container_id = %parent, session = %id, error = %e, "could not set the session's window size");
            }
        }
        let last_activity = Arc::new(std::sync::atomic::AtomicU64::new(now_ms()));
        let input = started.input.map(|inner| {
            Box::pin(ActiveInput {
                inner,
                last_activity: last_activity.clone(),
            }) as SessionInput
        });
        let session = Arc::new(Session {
            parent: parent.clone(),
            id: id.clone(),
            exec_id: started.exec_id.clone(),
            process: watch::channel(Process::Looking).0,
            input: Mutex::new(input),
            last_activity,
            ended: watch::channel(None).0,
        });
        {
            let (inner, session) = (inner.clone(), session.clone());
            inner.clone().spawn(async move {
                let found = exec_process::find(&*inner.engine, &session.exec_id).await;
                if found.is_none() {
                    tracing::debug!(container_id = %session.parent, session = %session.id, "the session's process was not seen running; it cannot be signalled");
                }
                // Unless it has ended meanwhile.
                session.process.send_if_modified(|p| {
                    let looking = matches!(p, Process::Looking);
                    if looking {
                        *p = found.map_or(Process::Gone, |f| Process::Found(Arc::new(f)));
                    }
                    looking
                });
            });
        }
        let idle = inner.config.session_idle_timeout;
        if !idle.is_zero() {
            inner.spawn(watch_idle(session.clone(), idle));
        }
        {
            let mut map = inner.sessions_map();
            // Ended sessions make room: their ends were there for WAIT to read.
            if map.len() >= MAX_SESSIONS * 4 {
                map.retain(|_, s| s.end().is_none());
            }
            map.insert((parent.clone(), id.clone()), session.clone());
        }
        tracing::info!(container_id = %parent, session = %id, exec_id = %started.exec_id, tty = exec.tty, "session started");
        Ok(SessionIo {
            output: SessionOutput {
                inner: started.output,
                finisher: Some(Finisher {
                    inner: inner.clone(),
                    session,
                }),
            },
        })
    }

    /// Takes session `id`'s stdin, for one client to feed. Refused when the session has none
    /// (it did not ask for stdin, or a client already took it: one writer at a time, as Mesos
    /// allows one input attachment).
    pub fn attach_session_input(
        &self,
        parent: &ContainerId,
        id: &ContainerId,
    ) -> Result<SessionInput> {
        let session = self.inner.session(parent, id)?;
        if session.end().is_some() {
            return Err(Error::NotRunning {
                id: nested(parent, id),
                phase: Phase::Terminated,
            });
        }
        let taken = session
            .input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        taken.ok_or_else(|| Error::InputTaken {
            id: nested(parent, id),
        })
    }

    /// Waits for session `id` of `parent` to end.
    pub async fn wait_session(&self, parent: &ContainerId, id: &ContainerId) -> Result<SessionEnd> {
        let session = self.inner.session(parent, id)?;
        let mut rx = session.ended.subscribe();
        let end = rx
            .wait_for(Option::is_some)
            .await
            .map(|e| e.clone())
            .ok()
            .flatten();
        end.ok_or_else(|| Error::UnknownContainer {
            id: nested(parent, id),
        })
    }

    /// Sends `signal` to session `id`'s command (nothing once it has ended).
    pub async fn kill_session(
        &self,
        parent: &ContainerId,
        id: &ContainerId,
        signal: i32,
    ) -> Result<()> {
        let session = self.inner.session(parent, id)?;
        tracing::info!(container_id = %parent, session = %id, signal, "signalling the session's command");
        session.signal(signal).await
    }

    /// Resizes session `id`'s TTY.
    pub async fn resize_session(
        &self,
        parent: &ContainerId,
        id: &ContainerId,
        size: WindowSize,
    ) -> Result<()> {
        let session = self.inner.session(parent, id)?;
        self.inner
            .engine
            .resize_exec(&session.exec_id, size)
            .await
            .map_err(|e| Error::engine("failed to resize the session's TTY", e))
    }

    /// The sessions of `parent`, by id.
    pub fn sessions(&self, parent: &ContainerId) -> Vec<SessionStatus> {
        let mut out: Vec<SessionStatus> = self
            .inner
            .sessions_map()
            .values()
            .filter(|s| &s.parent == parent)
            .map(|s| SessionStatus {
                id: s.id.clone(),
                exec_id: s.exec_id.clone(),
                end: s.end(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// How many chunks of live output wait for a slow attached client before more are dropped.
pub const LIVE_OUTPUT_BUFFER: usize = 64;

/// A running container's live output for an attached client
/// ([`Containerizer::attach_output`](crate::Containerizer::attach_output)).
pub struct AttachedOutput {
    rx: tokio::sync::mpsc::Receiver<std::result::Result<OutputChunk, crate::engine::EngineError>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    _reader: super::container::AbortOnDrop,
}

impl AttachedOutput {
    /// Bytes this client missed because it read slower than the container wrote.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Stream for AttachedOutput {
    type Item = std::result::Result<OutputChunk, crate::engine::EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl super::Containerizer {
    /// Follows running container `id`'s output from now on, as Docker hands it to the logger:
    /// raw, stdout and stderr apart (one console stream with a TTY), ending when the container
    /// ends. A reader runs on Docker's side at Docker's pace, so a slow client never slows the
    /// container or the logger (Docker waits for every attached reader): what the client cannot
    /// take within [`LIVE_OUTPUT_BUFFER`] chunks is dropped and counted
    /// ([`AttachedOutput::dropped_bytes`]); the sandbox files keep every byte.
    pub async fn attach_output(&self, id: &ContainerId) -> Result<AttachedOutput> {
        use futures_util::StreamExt as _;
        let inner = &self.inner;
        let (_, docker_id) = inner.running_in_docker(id)?;
        let tty = inner.has_tty(id, &docker_id).await?;
        let mut output = inner
            .engine
            .attach_output(&docker_id, tty)
            .await
            .map_err(|e| Error::engine(format!("failed to attach to container '{id}'"), e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(LIVE_OUTPUT_BUFFER);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader = {
            let dropped = dropped.clone();
            let id = id.clone();
            tokio::spawn(async move {
                while let Some(item) = output.next().await {
                    let len = item.as_ref().map_or(0, |c| c.data.len() as u64);
                    match tx.try_send(item) {
                        Ok(()) => {}
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            dropped.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
                let lost = dropped.load(std::sync::atomic::Ordering::Relaxed);
                if lost > 0 {
                    tracing::info!(container_id = %id, dropped_bytes = lost, "an attached client read slower than the container wrote; its share was dropped");
                }
            })
        };
        Ok(AttachedOutput {
            rx,
            dropped,
            _reader: super::container::AbortOnDrop(reader),
        })
    }
}

/// A container's stdin held by one client; the container is free for the next when it drops.
struct HeldStdin {
    inner: crate::engine::InputBox,
    held: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HeldStdin {
    fn drop(&mut self) {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl tokio::io::AsyncWrite for HeldStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

impl super::Containerizer {
    /// The stdin of running container `id`, for one client at a time. Only a container with a
    /// TTY has it open (a launch with `tty_info`); others are refused.
    pub async fn attach_container_input(&self, id: &ContainerId) -> Result<SessionInput> {
        let inner = &self.inner;
        let (c, docker_id) = inner.running_in_docker(id)?;
        let held = c.rt().stdin_attached.clone();
        let tty = inner.has_tty(id, &docker_id).await?;
        if !tty {
            return Err(Error::NoStdin { id: id.clone() });
        }
        if held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::InputTaken { id: id.clone() });
        }
        match inner.engine.attach_input(&docker_id).await {
            Ok(input) => Ok(Box::pin(HeldStdin { inner: input, held })),
            Err(e) => {
                held.store(false, std::sync::atomic::Ordering::SeqCst);
                Err(Error::engine(
                    format!("failed to attach to the stdin of container '{id}'"),
                    e,
                ))
            }
        }
    }

    /// Resizes running container `id`'s TTY.
    pub async fn resize_container(&self, id: &ContainerId, size: WindowSize) -> Result<()> {
        let (_, docker_id) = self.inner.running_in_docker(id)?;
        self.inner
            .engine
            .resize_tty(&docker_id, size)
            .await
            .map_err(|e| Error::engine(format!("failed to resize the TTY of container '{id}'"), e))
    }
}
