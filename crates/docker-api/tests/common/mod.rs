//! Helpers shared by the integration tests (which all need the test bed: `cargo xtask testbed up`).
#![allow(dead_code)]

use std::collections::HashMap;

use berth_docker_api::{ContainerConfig, Docker, RemoveImageOptions};
use berth_testbed::Testbed;

pub use berth_testbed::TEST_LABEL;

/// The test bed record; panics with instructions when it is not up.
pub fn testbed() -> &'static Testbed {
    berth_testbed::testbed()
}

/// A client for the test bed's daemon; fails the test loudly when there is none.
pub async fn docker() -> Docker {
    testbed();
    Docker::from_env()
        .await
        .unwrap_or_else(|e| panic!("the test bed's Docker daemon is not usable: {e}"))
}

/// A tarball of a root filesystem holding Debian's static busybox with its applet links.
pub fn busybox_tar() -> Vec<u8> {
    berth_testbed::busybox_rootfs(None).unwrap_or_else(|e| panic!("{e}"))
}

/// Labels marking a container as made by `test`.
pub fn labels(test: &str) -> HashMap<String, String> {
    HashMap::from([(TEST_LABEL.to_owned(), test.to_owned())])
}

/// A config for the test bed's busybox image running `cmd`, labelled for `test`.
pub fn busybox(test: &str, cmd: &[&str]) -> ContainerConfig {
    ContainerConfig {
        image: Some(testbed().images.busybox.clone()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        labels: Some(labels(test)),
        ..ContainerConfig::default()
    }
}

/// Removes every container labelled for `test` (call at start and end).
pub async fn cleanup(test: &str) {
    berth_testbed::remove_test_containers(test).await;
}

/// Removes an image if present.
pub async fn remove_image(docker: &Docker, name: &str) {
    match docker
        .images()
        .remove(
            name,
            RemoveImageOptions {
                force: true,
                no_prune: false,
            },
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("cannot remove test image {name}: {e}"),
    }
}
