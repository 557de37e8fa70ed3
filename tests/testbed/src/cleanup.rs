//! Removing the containers a test made, even after the test panicked.

use berth_docker_api::{
    Docker, Filters, ListContainersOptions, ListImagesOptions, RemoveContainerOptions,
    RemoveImageOptions,
};

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

/// Force-removes every copy of test image `image` (`repository:tag`) that a pull through some
/// 127.0.0.1 registry or proxy left in the daemon (`127.0.0.1:<port>/<image>`); returns how many
/// tags it removed. A pull that must move real bytes (one whose bytes a proxy counts) needs
/// this first: a copy under another port makes its layers "Already exists".
///
/// # Panics
/// When the daemon cannot be reached or a copy cannot be removed.
pub async fn remove_pulled_copies(image: &str) -> usize {
    crate::testbed();
    let docker = Docker::from_env()
        .await
        .unwrap_or_else(|e| panic!("test cleanup: cannot reach the daemon: {e}"));
    let listed = docker
        .images()
        .list(&ListImagesOptions::default())
        .await
        .unwrap_or_else(|e| panic!("test cleanup: cannot list images: {e}"));
    let suffix = format!("/{image}");
    let mut removed = 0;
    for tag in listed
        .iter()
        .flat_map(|i| i.repo_tags.iter())
        .filter(|t| t.starts_with("127.0.0.1:") && t.ends_with(&suffix))
    {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match docker.images().remove(tag, options).await {
            Ok(_) => removed += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => panic!("test cleanup: cannot remove image {tag}: {e}"),
        }
    }
    removed
}
