//! Shared setup of the integration tests: a containerizer over the real daemon, the real
//! fetcher and logger, labelled for its test.
//!
//! Everything a run makes on the daemon is unique to the run, so two runs of the suite (two
//! processes) on one daemon never touch each other's containers: agent ids and Docker names
//! carry the run id ([`run_id`]: the test process's pid, passed on to helper processes), and the
//! test label is `<test>-<run id>` ([`run_label`]).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_containerizer::{
    log_config_spec, AgentId, CommandInfo, Config, Containerizer, DockerEngine, Engine,
    FetcherAdapter, LaunchSpec, LoggerAdapter,
};
use berth_docker_api as api;
use berth_logger::{ContainerLogger, LoggerConfig, SandboxLogger};

/// The daemon client of the test bed.
pub async fn docker() -> api::Docker {
    let tb = berth_testbed::testbed();
    let endpoint =
        api::Endpoint::parse(&tb.docker_host).expect("the test bed's docker host parses");
    api::Docker::connect(endpoint)
        .await
        .expect("the test bed's daemon answers")
}

/// The environment variable that hands the run id to helper processes.
pub const RUN_ENV: &str = "BERTH_TEST_RUN";

/// This run's id: `$BERTH_TEST_RUN` (a helper process of a run), else this process's pid.
pub fn run_id() -> String {
    std::env::var(RUN_ENV).unwrap_or_else(|_| std::process::id().to_string())
}

/// This run's value of the test label for `test`.
pub fn run_label(test: &str) -> String {
    format!("{test}-{}", run_id())
}

/// This run's id for the agent called `agent` in a test.
pub fn agent_id(agent: &str) -> String {
    format!("{agent}-{}", run_id())
}

/// Removes this run's containers of `test`, and those earlier runs of it left behind when they
/// died (their process is gone); a concurrent live run's are left alone. Returns how many of
/// this run's were removed.
pub async fn cleanup(test: &str) -> usize {
    let removed = berth_testbed::remove_test_containers(&run_label(test)).await;
    let docker = docker().await;
    let options = api::ListContainersOptions {
        all: true,
        filters: api::Filters::new().label(berth_testbed::TEST_LABEL),
        ..Default::default()
    };
    let listed = docker.containers().list(&options).await.unwrap();
    let mut dead: Vec<String> = listed
        .iter()
        .filter_map(|c| c.labels.get(berth_testbed::TEST_LABEL))
        .filter(|v| {
            v.strip_prefix(test)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|run| run.parse::<u32>().ok())
                .is_some_and(|pid| {
                    pid.to_string() != run_id() && !Path::new(&format!("/proc/{pid}")).exists()
                })
        })
        .cloned()
        .collect();
    dead.sort();
    dead.dedup();
    for value in dead {
        berth_testbed::remove_test_containers(&value).await;
    }
    removed
}

/// One test's agent: its containerizer, work directory and sandboxes.
pub struct Agent {
    pub cz: Containerizer,
    pub root: PathBuf,
    pub docker: api::Docker,
    /// The test label's value for this run.
    pub test: String,
    /// The agent id (unique to the run).
    pub agent_id: String,
    /// The Docker name prefix.
    pub prefix: String,
}

impl Agent {
    /// A containerizer for `test` with the agent called `agent` (its id is [`agent_id`]) under
    /// `root` (reused across "restarts").
    pub async fn new(
        test: &str,
        agent: &str,
        root: &Path,
        tweak: impl FnOnce(&mut Config),
    ) -> Agent {
        Agent::with_engine(test, agent, root, tweak, |engine| engine).await
    }

    /// [`Agent::new`] whose containerizer talks to the daemon through `wrap(the real engine)`:
    /// a test that must stop the agent inside one Docker call wraps the engine to stall it.
    pub async fn with_engine(
        test: &str,
        agent: &str,
        root: &Path,
        tweak: impl FnOnce(&mut Config),
        wrap: impl FnOnce(Arc<dyn Engine>) -> Arc<dyn Engine>,
    ) -> Agent {
        let docker = docker().await;
        let agent_id = agent_id(agent);
        let label = run_label(test);
        let mut config = Config::new(AgentId::new(&agent_id).unwrap(), root.join("work"));
        config.name_prefix = format!("berth-{agent_id}");
        config
            .extra_labels
            .insert(berth_testbed::TEST_LABEL.to_owned(), label.clone());
        config.remove_delay = Duration::from_secs(3600);
        config.kill_grace = Duration::from_secs(2);
        config.orphans.grace = Duration::ZERO;
        config.retry_backoff = Duration::from_millis(100);
        let logger = SandboxLogger::new(LoggerConfig::new(root.join("logger"))).unwrap();
        config.docker_log = log_config_spec(&logger.docker_log_config());
        tweak(&mut config);
        let fetcher = berth_fetcher::Fetcher::builder().build().unwrap();
        let cz = Containerizer::new(
            config,
            wrap(Arc::new(DockerEngine::new(docker.clone()))),
            Arc::new(FetcherAdapter::new(Arc::new(fetcher))),
            Arc::new(LoggerAdapter::new(Arc::new(logger))),
        )
        .unwrap();
        Agent {
            cz,
            root: root.to_owned(),
            docker,
            test: label,
            prefix: format!("berth-{agent_id}"),
            agent_id,
        }
    }

    /// The Docker name of container `id`.
    pub fn name(&self, id: &str) -> String {
        format!("{}-{id}", self.prefix)
    }

    /// The sandbox directory of container `name`.
    pub fn sandbox(&self, name: &str) -> PathBuf {
        self.root.join("sandboxes").join(name)
    }

    /// A busybox launch of `cmd` (a shell line).
    pub fn spec(&self, name: &str, cmd: &str) -> LaunchSpec {
        let tb = berth_testbed::testbed();
        LaunchSpec::docker(
            tb.images.busybox.clone(),
            CommandInfo::shell(cmd),
            self.sandbox(name),
        )
    }

    /// Docker containers carrying this test's label.
    pub async fn labelled(&self) -> Vec<api::ContainerSummary> {
        let options = api::ListContainersOptions {
            all: true,
            filters: api::Filters::new().label(format!(
                "{}={}",
                berth_testbed::TEST_LABEL,
                self.test
            )),
            ..Default::default()
        };
        self.docker.containers().list(&options).await.unwrap()
    }
}

/// Waits until `f` holds, polling every 20 ms, at most `limit`.
pub async fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
