//! Removing the containers a test made, even after the test panicked.

use berth_docker_api::{Docker, Filters, ListContainersOptions, RemoveContainerOptions};

/// The label every container made by a test carries, with the test's name as its value
/// (`io.berth.test=<test name>`), so that cleanup finds them by label, never by name.
pub const TEST_LABEL: &str = "io.berth.test";

/// Force-removes every container labelled `io.berth.test=<test>`, running or not, with its anonymous
/// volumes; returns how many it removed. Call it at a test's start (a crashed earlier run may have left
/// some) and at its end.
///
/// # Panics
/// When the daemon cannot be reached or listed: a test that cannot clean up must not pass.
pub async fn remove_test_containers(test: &str) -> usize {
    crate::testbed();
    let docker = Docker::from_env()
        .await
        .unwrap_or_else(|e| panic!("test cleanup: cannot reach the daemon: {e}"));
    let options = ListContainersOptions {
        all: true,
        filters: Filters::new().label(format!("{TEST_LABEL}={test}")),
        ..ListContainersOptions::default()
    };
    let found = docker
        .containers()
        .list(&options)
        .await
        .unwrap_or_else(|e| {
            panic!("test cleanup: cannot list containers labelled {TEST_LABEL}={test}: {e}")
        });
    let mut removed = 0;
    for c in found {
        match docker
            .containers()
            .remove(
                &c.id,
                RemoveContainerOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await
        {
            Ok(()) => removed += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => panic!("test cleanup: cannot remove container {}: {e}", c.id),
        }
    }
    removed
}
