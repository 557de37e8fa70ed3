//! In-memory Docker, fetcher and logger for the unit tests of the state machine and pipeline.
//!
//! The fake engine keeps containers in a map, lets a test hold any operation at its entry
//! (`hold`/`entered`/`release`) to catch the pipeline in a given stage, injects errors, and
//! records every call in one log so tests can check orderings such as "no start after destroy".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::engine::*;
use crate::id::ContainerId;
use crate::mapping::CreateSpec;
use crate::seams::{Fetch, LogTarget, Logs, OpenOutput};
use crate::spec::{Uri, WindowSize};

/// An operation a test can hold or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Fetch,
    Mount,
    Persist,
    ImagePresent,
    Pull,
    Create,
    Start,
    Stop,
    Kill,
    Remove,
    Wait,
    Inspect,
    Update,
    Stats,
    Resize,
    Exec,
    /// A test's own marker: a destroy or kill was applied.
    Destroy,
}

#[derive(Default)]
struct Gate {
    held: bool,
    waiting: usize,
}

/// Holds operations at their entry.
#[derive(Default)]
pub struct Gates {
    state: Mutex<HashMap<Op, Gate>>,
    changed: watch::Sender<u64>,
}

impl Gates {
    pub fn hold(&self, op: Op) {
        self.state.lock().unwrap().entry(op).or_default().held = true;
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn release(&self, op: Op) {
        self.state.lock().unwrap().entry(op).or_default().held = false;
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn release_all(&self) {
        for g in self.state.lock().unwrap().values_mut() {
            g.held = false;
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Waits until at least `n` calls are blocked at `op`.
    pub async fn entered(&self, op: Op, n: usize) {
        let mut rx = self.changed.subscribe();
        loop {
            if self.state.lock().unwrap().get(&op).map_or(0, |g| g.waiting) >= n {
                return;
            }
            rx.changed().await.unwrap();
        }
    }

    pub async fn pass(&self, op: Op) {
        let mut rx = self.changed.subscribe();
        let mut counted = false;
        loop {
            {
                let mut st = self.state.lock().unwrap();
                let g = st.entry(op).or_default();
                if !g.held {
                    if counted {
                        g.waiting -= 1;
                        drop(st);
                        self.changed.send_modify(|v| *v += 1);
                    }
                    return;
                }
                if !counted {
                    g.waiting += 1;
                    counted = true;
                    drop(st);
                    self.changed.send_modify(|v| *v += 1);
                    continue;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A fake container's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Created,
    Running,
    Exited(i64),
}

pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub spec: CreateSpec,
    pub life: watch::Sender<Life>,
    pub oom: bool,
    pub created: SystemTime,
}

/// A step of a scripted pull.
#[derive(Debug, Clone)]
pub enum PullStep {
    Progress(u64),
    Sleep(Duration),
    Fail(EngineError),
}

#[derive(Default)]
pub struct FakeState {
    pub containers: BTreeMap<String, FakeContainer>,
    pub images: HashSet<String>,
    pub pull_scripts: HashMap<String, Vec<PullStep>>,
    pub failures: HashMap<Op, Vec<EngineError>>,
    pub ignores_sigterm: HashSet<String>,
    pub updates: Vec<(String, ResourceUpdate)>,
    /// TTY resizes, by the id they were asked for.
    pub resizes: Vec<(String, WindowSize)>,
    /// Named volumes that exist, by name.
    pub volumes: BTreeMap<String, VolumeInfo>,
    /// Exit codes the next execs give, in order; 0 once it is empty.
    pub exec_codes: std::collections::VecDeque<i64>,
    /// Docker's own health state, by container name (none: no Docker HEALTHCHECK).
    pub docker_health: HashMap<String, DockerHealth>,
}

/// The in-memory engine (state shared with its `'static` streams).
#[derive(Default)]
pub struct FakeEngine(Arc<FakeInner>);

impl std::ops::Deref for FakeEngine {
    type Target = FakeInner;
    fn deref(&self) -> &FakeInner {
        &self.0
    }
}

#[derive(Default)]
pub struct FakeInner {
    pub state: Mutex<FakeState>,
    pub gates: Gates,
    pub log: Mutex<Vec<(Op, String)>>,
    pub pulls_started: AtomicU64,
    pub pulls_aborted: Arc<AtomicU64>,
    next_id: AtomicU64,
}

impl FakeEngine {
    /// The fake output of container `id`: a line on each stream, then (with `follow`) nothing
    /// until it exits. `copy`: Docker's copy read from `since` (entries stamped at a fixed time
    /// per container, so a replay repeats the same entries), else the attached, untimed output.
    fn output(
        &self,
        id: &str,
        copy: Option<Option<SystemTime>>,
        follow: bool,
    ) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
        let found = self.find(id);
        let name = id.to_owned();
        let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Box::pin(async_stream(move |tx| async move {
            let Ok((_, mut life)) = found else { return };
            for (kind, text) in [
                (OutputKind::Stdout, format!("out-{name}\n")),
                (OutputKind::Stderr, format!("err-{name}\n")),
            ] {
                let timestamp = match copy {
                    Some(since) if since.is_some_and(|s| s > stamp) => continue,
                    Some(_) => Some(stamp),
                    None => None,
                };
                let chunk = OutputChunk {
                    kind,
                    timestamp,
                    data: Bytes::from(text),
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
            // Follow until the container stops.
            while follow && !matches!(*life.borrow_and_update(), Life::Exited(_)) {
                if life.changed().await.is_err() {
                    return;
                }
            }
        }))
    }
    pub fn new() -> Arc<FakeEngine> {
        let e = FakeEngine::default();
        e.state
            .lock()
            .unwrap()
            .images
            .insert("busybox:latest".into());
        Arc::new(e)
    }

    pub fn fail_next(&self, op: Op, err: EngineError) {
        self.state
            .lock()
            .unwrap()
            .failures
            .entry(op)
            .or_default()
            .push(err);
    }

    fn take_failure(&self, op: Op) -> Option<EngineError> {
        let mut st = self.state.lock().unwrap();
        let list = st.failures.get_mut(&op)?;
        (!list.is_empty()).then(|| list.remove(0))
    }

    fn record(&self, op: Op, what: &str) {
        self.log.lock().unwrap().push((op, what.to_owned()));
    }

    pub fn calls(&self, op: Op) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// Makes a running container exit with `code`.
    pub fn exit(&self, name: &str, code: i64, oom: bool) {
        let mut st = self.state.lock().unwrap();
        if let Some(c) = st
            .containers
            .values_mut()
            .find(|c| c.name == name || c.id == name)
        {
            c.oom = oom;
            if *c.life.borrow() == Life::Running {
                c.life.send_replace(Life::Exited(code));
            }
        }
    }

    pub fn life(&self, name: &str) -> Option<Life> {
        let st = self.state.lock().unwrap();
        st.containers
            .values()
            .find(|c| c.name == name || c.id == name)
            .map(|c| *c.life.borrow())
    }

    pub fn container_count(&self) -> usize {
        self.state.lock().unwrap().containers.len()
    }

    /// Adds a container directly (as if made by an earlier agent or by hand).
    pub fn add_container(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        life: Life,
        age: Duration,
    ) -> String {
        let id = format!("d{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let spec = CreateSpec {
            labels,
            ..CreateSpec::default()
        };
        let c = FakeContainer {
            id: id.clone(),
            name: name.to_owned(),
            spec,
            life: watch::channel(life).0,
            oom: false,
            created: SystemTime::now() - age,
        };
        self.state.lock().unwrap().containers.insert(id.clone(), c);
        id
    }

    fn find(&self, key: &str) -> Result<(String, watch::Receiver<Life>), EngineError> {
        let st = self.state.lock().unwrap();
        st.containers
            .values()
            .find(|c| c.id == key || c.name == key)
            .map(|c| (c.id.clone(), c.life.subscribe()))
            .ok_or_else(|| {
                EngineError::new(
                    EngineErrorKind::NotFound,
                    format!("No such container: {key}"),
                )
            })
    }

    fn set_life(&self, id: &str, life: Life) {
        if let Some(c) = self.state.lock().unwrap().containers.get(id) {
            c.life.send_replace(life);
        }
    }
}

struct AbortCounter {
    done: bool,
    aborted: Arc<AtomicU64>,
}

impl Drop for AbortCounter {
    fn drop(&mut self) {
        if !self.done {
            self.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Engine for FakeEngine {
    fn image_present<'a>(&'a self, image: &'a str) -> BoxFut<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::ImagePresent).await;
            self.record(Op::ImagePresent, image);
            if let Some(e) = self.take_failure(Op::ImagePresent) {
                return Err(e);
            }
            Ok(self.state.lock().unwrap().images.contains(image))
        })
    }

    fn pull(&self, image: &str) -> BoxStream<'static, Result<PullProgress, EngineError>> {
        self.record(Op::Pull, image);
        self.pulls_started.fetch_add(1, Ordering::SeqCst);
        let failure = self.take_failure(Op::Pull);
        let script = self
            .state
            .lock()
            .unwrap()
            .pull_scripts
            .get(image)
            .cloned()
            .unwrap_or_else(|| vec![PullStep::Progress(10), PullStep::Progress(20)]);
        let image = image.to_owned();
        let me = self.0.clone();
        let aborted = self.pulls_aborted.clone();
        Box::pin(async_stream(move |tx| async move {
            let mut guard = AbortCounter {
                done: false,
                aborted,
            };
            me.gates.pass(Op::Pull).await;
            if let Some(e) = failure {
                let _ = tx.send(Err(e)).await;
                guard.done = true;
                return;
            }
            let mut p = PullProgress {
                layers: 1,
                download_total: 20,
                status: "Downloading".into(),
                ..Default::default()
            };
            for step in script {
                match step {
                    PullStep::Progress(n) => {
                        p.downloaded = n;
                        if tx.send(Ok(p.clone())).await.is_err() {
                            return;
                        }
                    }
                    PullStep::Sleep(d) => tokio::time::sleep(d).await,
                    PullStep::Fail(e) => {
                        let _ = tx.send(Err(e)).await;
                        guard.done = true;
                        return;
                    }
                }
            }
            me.state.lock().unwrap().images.insert(image);
            guard.done = true;
        }))
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFut<'a, Result<String, EngineError>> {
        Box::pin(async move {
            self.record(Op::Create, name);
            self.gates.pass(Op::Create).await;
            if let Some(e) = self.take_failure(Op::Create) {
                return Err(e);
            }
            let mut st = self.state.lock().unwrap();
            if st.containers.values().any(|c| c.name == name) {
                return Err(EngineError::new(
                    EngineErrorKind::Conflict,
                    format!("name {name} in use"),
                ));
            }
            if !st
                .images
                .contains(&crate::pull::normalize_image(&spec.image))
            {
                return Err(EngineError::new(
                    EngineErrorKind::NotFound,
                    format!("No such image: {}", spec.image),
                ));
            }
            let id = format!("d{}", self.next_id.fetch_add(1, Ordering::SeqCst));
            st.containers.insert(
                id.clone(),
                FakeContainer {
                    id: id.clone(),
                    name: name.to_owned(),
                    spec: spec.clone(),
                    life: watch::channel(Life::Created).0,
                    oom: false,
                    created: SystemTime::now(),
                },
            );
            Ok(id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            // Recorded when requested, before any hold: what counts is when it was sent.
            let (id, life) = self.find(id)?;
            let name = self.state.lock().unwrap().containers[&id].name.clone();
            self.record(Op::Start, &name);
            self.gates.pass(Op::Start).await;
            if let Some(e) = self.take_failure(Op::Start) {
                return Err(e);
            }
            if *life.borrow() == Life::Created {
                self.set_life(&id, Life::Running);
            }
            Ok(())
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<Inspected, EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Inspect).await;
            if let Some(e) = self.take_failure(Op::Inspect) {
                return Err(e);
            }
            let st = self.state.lock().unwrap();
            let c = st
                .containers
                .values()
                .find(|c| c.id == id || c.name == id)
                .ok_or_else(|| {
                    EngineError::new(
                        EngineErrorKind::NotFound,
                        format!("No such container: {id}"),
                    )
                })?;
            let life = *c.life.borrow();
            Ok(Inspected {
                id: c.id.clone(),
                name: c.name.clone(),
                labels: c.spec.labels.clone(),
                status: match life {
                    Life::Created => "created",
                    Life::Running => "running",
                    Life::Exited(_) => "exited",
                }
                .into(),
                running: life == Life::Running,
                pid: (life == Life::Running).then_some(4242),
                exit_code: match life {
                    Life::Exited(c) => c,
                    _ => 0,
                },
                oom_killed: c.oom,
                ever_started: life != Life::Created,
                tty: false,
                ip_addresses: vec!["172.17.0.2".into()],
                memory_limit: c.spec.host.memory.map(|m| m as u64),
                enforced: Enforced::from_host_config(
                    c.spec.host.cpu_shares,
                    c.spec.host.cpu_quota,
                    c.spec.host.cpu_period,
                    c.spec.host.memory,
                    c.spec.host.memory_reservation,
                ),
                stop_signal: None,
                created: Some(c.created),
                health: st.docker_health.get(&c.name).cloned(),
            })
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<i64, EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Wait).await;
            if let Some(e) = self.take_failure(Op::Wait) {
                return Err(e);
            }
            let (_, mut life) = self.find(id)?;
            loop {
                if let Life::Exited(code) = *life.borrow_and_update() {
                    return Ok(code);
                }
                if life.changed().await.is_err() {
                    return Err(EngineError::new(
                        EngineErrorKind::NotFound,
                        format!("No such container: {id}"),
                    ));
                }
            }
        })
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Kill).await;
            self.record(Op::Kill, &format!("{id}:{signal}"));
            if let Some(e) = self.take_failure(Op::Kill) {
                return Err(e);
            }
            let (id, life) = self.find(id)?;
            if *life.borrow() != Life::Running {
                return Err(EngineError::new(
                    EngineErrorKind::Conflict,
                    "container is not running",
                ));
            }
            let ignores = self.state.lock().unwrap().ignores_sigterm.contains(&id);
            if !(signal == 15 && ignores) {
                self.set_life(&id, Life::Exited(128 + signal as i64));
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Stop).await;
            self.record(Op::Stop, id);
            if let Some(e) = self.take_failure(Op::Stop) {
                return Err(e);
            }
            let (id, life) = self.find(id)?;
            if *life.borrow() != Life::Running {
                return Ok(());
            }
            let ignores = self.state.lock().unwrap().ignores_sigterm.contains(&id);
            if ignores {
                tokio::time::sleep(grace).await;
                self.set_life(&id, Life::Exited(137));
            } else {
                self.set_life(&id, Life::Exited(143));
            }
            Ok(())
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Remove).await;
            self.record(Op::Remove, id);
            if let Some(e) = self.take_failure(Op::Remove) {
                return Err(e);
            }
            let mut st = self.state.lock().unwrap();
            let key = st
                .containers
                .values()
                .find(|c| c.id == id || c.name == id)
                .map(|c| c.id.clone());
            if let Some(key) = key {
                let c = st.containers.remove(&key).unwrap();
                if *c.life.borrow() == Life::Running {
                    c.life.send_replace(Life::Exited(137));
                }
            }
            Ok(())
        })
    }

    fn list_labelled<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFut<'a, Result<Vec<ContainerSummary>, EngineError>> {
        Box::pin(async move {
            let st = self.state.lock().unwrap();
            Ok(st
                .containers
                .values()
                .filter(|c| c.spec.labels.contains_key(key))
                .map(|c| ContainerSummary {
                    id: c.id.clone(),
                    names: vec![c.name.clone()],
                    labels: c.spec.labels.clone(),
                    state: format!("{:?}", *c.life.borrow()),
                    created: Some(c.created),
                })
                .collect())
        })
    }

    fn logs(
        &self,
        id: &str,
        _tty: bool,
        since: Option<SystemTime>,
        follow: bool,
    ) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
        self.output(id, Some(since), follow)
    }

    fn attach_output<'a>(
        &'a self,
        id: &'a str,
        _tty: bool,
    ) -> BoxFut<'a, Result<crate::engine::OutputStreamBox, EngineError>> {
        Box::pin(async move {
            self.find(id)?;
            Ok(self.output(id, None, true))
        })
    }

    fn stats<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<StatsSample, EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Stats).await;
            if let Some(e) = self.take_failure(Op::Stats) {
                return Err(e);
            }
            self.find(id)?;
            Ok(StatsSample {
                cpu_user_ns: Some(1_000_000_000),
                cpu_system_ns: Some(500_000_000),
                mem_usage: Some(10 << 20),
                mem_stats: BTreeMap::from([("rss".into(), 5 << 20), ("cache".into(), 1 << 20)]),
                tasks: Some(2),
                ..StatsSample::default()
            })
        })
    }

    fn processes<'a>(&'a self, _id: &'a str) -> BoxFut<'a, Result<u64, EngineError>> {
        Box::pin(async move { Ok(1) })
    }

    // Sessions run commands in real containers: they are tested against the daemon
    // (tests/e2e/tests/sessions.rs); the in-memory engine has no processes to run them in.
    fn attach_input<'a>(
        &'a self,
        _id: &'a str,
    ) -> BoxFut<'a, Result<crate::engine::InputBox, EngineError>> {
        Box::pin(async {
            Err(EngineError::new(
                EngineErrorKind::Permanent,
                "the in-memory engine runs no processes to write to",
            ))
        })
    }

    fn start_exec<'a>(
        &'a self,
        _id: &'a str,
        _exec: &'a crate::engine::SessionExec,
    ) -> BoxFut<'a, Result<crate::engine::StartedExec, EngineError>> {
        Box::pin(async {
            Err(EngineError::new(
                EngineErrorKind::Permanent,
                "the in-memory engine runs no commands",
            ))
        })
    }

    fn exec_state<'a>(
        &'a self,
        _exec_id: &'a str,
    ) -> BoxFut<'a, Result<crate::engine::ExecState, EngineError>> {
        Box::pin(async {
            Err(EngineError::new(
                EngineErrorKind::NotFound,
                "the in-memory engine runs no commands",
            ))
        })
    }

    fn resize_exec<'a>(
        &'a self,
        _exec_id: &'a str,
        _size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async { Ok(()) })
    }

    fn resize_tty<'a>(
        &'a self,
        id: &'a str,
        size: WindowSize,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Resize).await;
            if let Some(e) = self.take_failure(Op::Resize) {
                return Err(e);
            }
            let (_, life) = self.find(id)?;
            // Docker's rule: only a running container has a TTY to size.
            if *life.borrow() != Life::Running {
                return Err(EngineError::new(
                    EngineErrorKind::Conflict,
                    format!("Container {id} is not running"),
                ));
            }
            self.state
                .lock()
                .unwrap()
                .resizes
                .push((id.to_owned(), size));
            Ok(())
        })
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        update: &'a ResourceUpdate,
    ) -> BoxFut<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.gates.pass(Op::Update).await;
            if let Some(e) = self.take_failure(Op::Update) {
                return Err(e);
            }
            let (docker_id, _) = self.find(id)?;
            let mut st = self.state.lock().unwrap();
            st.updates.push((id.to_owned(), *update));
            // Docker's update semantics: a field not given (or 0) is left as it was.
            if let Some(c) = st.containers.get_mut(&docker_id) {
                let h = &mut c.spec.host;
                let set = |field: &mut Option<i64>, v: Option<i64>| {
                    if let Some(v) = v.filter(|v| *v != 0) {
                        *field = Some(v);
                    }
                };
                set(&mut h.cpu_shares, update.cpu_shares);
                set(&mut h.cpu_quota, update.cpu_quota);
                set(&mut h.cpu_period, update.cpu_period);
                set(&mut h.memory, update.memory);
                set(&mut h.memory_reservation, update.memory_reservation);
                set(&mut h.memory_swap, update.memory_swap);
            }
            Ok(())
        })
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec: &'a ExecSpec,
    ) -> BoxFut<'a, Result<ExecResult, EngineError>> {
        Box::pin(async move {
            // A held gate is a hung command: killed at its timeout, as the daemon's is.
            let passed = match exec.timeout {
                Some(limit) => tokio::time::timeout(limit, self.gates.pass(Op::Exec))
                    .await
                    .is_ok(),
                None => {
                    self.gates.pass(Op::Exec).await;
                    true
                }
            };
            self.record(Op::Exec, &format!("{id}:{}", exec.argv.join(" ")));
            if !passed {
                return Ok(ExecResult {
                    exit_code: 137,
                    timed_out: true,
                    output: Vec::new(),
                });
            }
            if let Some(e) = self.take_failure(Op::Exec) {
                return Err(e);
            }
            let (_, life) = self.find(id)?;
            if *life.borrow() != Life::Running {
                return Err(EngineError::new(
                    EngineErrorKind::Conflict,
                    format!("container {id} is not running"),
                ));
            }
            let exit_code = self
                .state
                .lock()
                .unwrap()
                .exec_codes
                .pop_front()
                .unwrap_or(0);
            Ok(ExecResult {
                exit_code,
                timed_out: false,
                output: format!("exit {exit_code}\n").into_bytes(),
            })
        })
    }

    fn volume<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<VolumeInfo>, EngineError>> {
        Box::pin(async move { Ok(self.state.lock().unwrap().volumes.get(name).cloned()) })
    }
}

/// A small channel-backed stream: `body` sends items through the sender; the stream ends when it
/// returns. Dropping the stream drops `body` (cancelling it).
pub fn async_stream<T, F, Fut>(body: F) -> impl futures_core::Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let fut = body(tx);
    let driver = futures_util::stream::once(fut).filter_map(|()| async { None });
    futures_util::stream::select(driver, tokio_stream_from(rx))
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// A fetcher that can be held and failed, and reports the progress it is given.
#[derive(Default)]
pub struct FakeFetch {
    pub gates: Gates,
    pub failure: Mutex<Option<String>>,
    pub calls: Mutex<Vec<ContainerId>>,
    /// Events reported before the fetch waits at its gate.
    pub progress: Mutex<Vec<crate::seams::FetchProgress>>,
}

impl Fetch for FakeFetch {
    fn fetch<'a>(
        &'a self,
        container: &'a ContainerId,
        uris: &'a [Uri],
        sandbox: &'a Path,
        _user: Option<&'a str>,
        progress: crate::seams::FetchProgressFn,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(container.clone());
            let events = self.progress.lock().unwrap().clone();
            for e in events {
                progress(e);
            }
            // A partial file exists while the fetch runs and is removed if it is cancelled.
            let partial = sandbox.join(".fetch.partial");
            std::fs::write(&partial, b"partial").map_err(|e| e.to_string())?;
            struct Cleanup(std::path::PathBuf);
            impl Drop for Cleanup {
                fn drop(&mut self) {
                    let _ = std::fs::remove_file(&self.0);
                }
            }
            let _cleanup = Cleanup(partial);
            self.gates.pass(Op::Fetch).await;
            if let Some(f) = self.failure.lock().unwrap().clone() {
                return Err(f);
            }
            for u in uris {
                let name = u
                    .output_file
                    .clone()
                    .unwrap_or_else(|| u.value.rsplit('/').next().unwrap_or("file").to_owned());
                std::fs::write(sandbox.join(name), b"fetched").map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}

/// A logger that keeps output in memory and notes when each container's stream was drained.
#[derive(Default)]
pub struct FakeLogs {
    pub output: Arc<Mutex<HashMap<ContainerId, Vec<OutputChunk>>>>,
    pub drained: Arc<Mutex<HashSet<ContainerId>>>,
    pub resumed: Arc<Mutex<Vec<ContainerId>>>,
    pub forgotten: Mutex<Vec<ContainerId>>,
    /// Containers whose logging was stopped by a shutdown (not drained).
    pub stopped: Arc<Mutex<HashSet<ContainerId>>>,
}

impl Logs for FakeLogs {
    fn prepare(&self, target: &LogTarget) -> Result<(), String> {
        match target.env.keys().find(|k| {
            k.starts_with("CONTAINER_LOGGER_") && k.as_str() != "CONTAINER_LOGGER_MAX_STDOUT_SIZE"
        }) {
            Some(k) => Err(format!("unknown container logger variable '{k}'")),
            None => Ok(()),
        }
    }

    fn run(
        &self,
        target: LogTarget,
        resume: bool,
        live: Option<crate::seams::LiveOutput>,
        open: OpenOutput,
        stop: tokio_util::sync::CancellationToken,
    ) -> BoxFut<'static, Result<(), String>> {
        let (out, drained, resumed, stopped) = (
            self.output.clone(),
            self.drained.clone(),
            self.resumed.clone(),
            self.stopped.clone(),
        );
        Box::pin(async move {
            if resume {
                resumed.lock().unwrap().push(target.container.clone());
            }
            let mut output = live.unwrap_or_else(|| open(None, true));
            loop {
                let chunk = tokio::select! {
                    c = output.next() => c,
                    () = stop.cancelled() => {
                        stopped.lock().unwrap().insert(target.container);
                        return Ok(());
                    }
                };
                let Some(chunk) = chunk else { break };
                let chunk = chunk.map_err(|e| e.to_string())?;
                out.lock()
                    .unwrap()
                    .entry(target.container.clone())
                    .or_default()
                    .push(chunk);
            }
            drained.lock().unwrap().insert(target.container);
            Ok(())
        })
    }

    fn forget(&self, container: &ContainerId) {
        self.forgotten.lock().unwrap().push(container.clone());
    }
}
