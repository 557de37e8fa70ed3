//! Shared setup of the integration tests: a containerizer over the real daemon, the real
//! fetcher and logger, labelled for its test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_containerizer::{
    log_config_spec, AgentId, CommandInfo, Config, Containerizer, DockerEngine, FetcherAdapter,
    LaunchSpec, LoggerAdapter,
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

/// One test's agent: its containerizer, work directory and sandboxes.
pub struct Agent {
    pub cz: Containerizer,
    pub root: PathBuf,
    pub docker: api::Docker,
    pub test: String,
}

impl Agent {
    /// A containerizer for `test` with agent id `agent` under `root` (reused across "restarts").
    pub async fn new(
        test: &str,
        agent: &str,
        root: &Path,
        tweak: impl FnOnce(&mut Config),
    ) -> Agent {
        let docker = docker().await;
        let mut config = Config::new(AgentId::new(agent).unwrap(), root.join("work"));
        config.name_prefix = format!("berth-{agent}");
        config
            .extra_labels
            .insert(berth_testbed::TEST_LABEL.to_owned(), test.to_owned());
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
            Arc::new(DockerEngine::new(docker.clone())),
            Arc::new(FetcherAdapter::new(Arc::new(fetcher))),
            Arc::new(LoggerAdapter::new(Arc::new(logger))),
        )
        .unwrap();
        Agent {
            cz,
            root: root.to_owned(),
            docker,
            test: test.to_owned(),
        }
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
