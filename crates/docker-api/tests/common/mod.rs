//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;

use berth_docker_api::{ContainerConfig, Docker, Filters, ListContainersOptions, RemoveContainerOptions};

/// The label every test container carries (`io.berth.test=<test name>`).
pub const TEST_LABEL: &str = "io.berth.test";

/// A client for the test daemon; fails the test loudly when there is none.
pub async fn docker() -> Docker {
    Docker::from_env()
        .await
        .unwrap_or_else(|e| panic!("the Docker daemon is required for this test and is not usable: {e}"))
}

/// A tarball of a root filesystem holding Debian's static busybox with its applet links.
pub fn busybox_tar() -> Vec<u8> {
    let busybox = std::fs::read("/usr/bin/busybox").expect("Debian's busybox-static at /usr/bin/busybox (apt-get install busybox-static)");
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        builder.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    for d in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
        dir(d);
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    builder.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    let list = std::process::Command::new("/usr/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet == "busybox" {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        builder.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    builder.into_inner().unwrap()
}

/// Labels marking a container as made by `test`.
pub fn labels(test: &str) -> HashMap<String, String> {
    HashMap::from([(TEST_LABEL.to_owned(), test.to_owned())])
}

/// A container config for `image` running `cmd`, labelled for `test`.
pub fn config(test: &str, image: &str, cmd: &[&str]) -> ContainerConfig {
    ContainerConfig {
        image: Some(image.to_owned()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        labels: Some(labels(test)),
        ..ContainerConfig::default()
    }
}

/// Removes every container labelled for `test` (call at start and end).
pub async fn cleanup(docker: &Docker, test: &str) {
    let options = ListContainersOptions {
        all: true,
        filters: Filters::new().label(format!("{TEST_LABEL}={test}")),
        ..Default::default()
    };
    for c in docker.containers().list(&options).await.expect("list test containers") {
        let _ = docker
            .containers()
            .remove(&c.id, RemoveContainerOptions { force: true, volumes: true })
            .await;
    }
}
