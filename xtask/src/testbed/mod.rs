//! `cargo xtask testbed up|down|status`: the machine state every integration and e2e test relies on.
//!
//! `up` is idempotent and makes a fresh machine ready by itself: a daemon that answers, the test
//! images imported through berth-docker-api, two registries on 127.0.0.1 holding them, and the record
//! (`.testbed/state.json`) that tests read through `berth_testbed::testbed()`.

mod daemon;
mod images;
mod registry;
mod rootfs;

use std::path::{Path, PathBuf};

use berth_testbed::{TestImages, Testbed, STATE_FILE};

use crate::util::{self, Result};
use registry::Registry;

/// First of the two registry ports; `BERTH_TESTBED_PORT` moves both (e.g. to run a second test bed
/// from another checkout beside this one).
const DEFAULT_PORT: u16 = 5301;
const AUTH_USER: &str = "berth";

fn state_dir() -> PathBuf {
    berth_testbed::state_dir()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// The password of the auth registry: made once per machine and kept, so `up` twice agrees with itself.
fn auth_password(state: &Path) -> Result<String> {
    let path = state.join("auth-password");
    if let Ok(p) = std::fs::read_to_string(&path) {
        if !p.trim().is_empty() {
            return Ok(p.trim().to_string());
        }
    }
    use rand::Rng;
    let password: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    std::fs::write(&path, &password)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(password)
}

fn registry_addrs() -> Result<(String, String)> {
    let port = match std::env::var("BERTH_TESTBED_PORT") {
        Ok(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p < u16::MAX)
            .ok_or_else(|| format!("BERTH_TESTBED_PORT={v:?} is not a port number below 65535"))?,
        Err(_) => DEFAULT_PORT,
    };
    Ok((
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{}", port + 1),
    ))
}

fn registries(state: &Path) -> Result<[Registry; 2]> {
    let (open, auth) = registry_addrs()?;
    Ok([
        Registry {
            name: "open",
            addr: open,
            auth: None,
        },
        Registry {
            name: "auth",
            addr: auth,
            auth: Some((AUTH_USER.to_string(), auth_password(state)?)),
        },
    ])
}

/// Brings the test bed up and returns its record.
pub fn up() -> Result<Testbed> {
    let state = state_dir();
    std::fs::create_dir_all(&state)
        .map_err(|e| format!("cannot create {}: {e}", state.display()))?;
    let rt = runtime()?;
    let docker = rt.block_on(daemon::ensure(&state))?;
    if !util::have("docker-registry") {
        util::apt_install(&["docker-registry"])?;
    }
    rootfs::ensure_busybox_static()?;
    let registries = registries(&state)?;
    for r in &registries {
        r.up(&state)?;
    }
    let testbed = Testbed {
        docker_host: daemon::docker_host(),
        registry: registries[0].addr.clone(),
        auth_registry: registries[1].addr.clone(),
        auth_username: AUTH_USER.into(),
        auth_password: auth_password(&state)?,
        images: TestImages {
            busybox: "berth-test/busybox:latest".into(),
            echo: "berth-test/echo:latest".into(),
            large: "berth-test/large:latest".into(),
        },
    };
    rt.block_on(images::ensure(&docker, &testbed, &registries))?;
    let record = state.join(STATE_FILE);
    let json = serde_json::to_string_pretty(&testbed).expect("the record serialises");
    let tmp = state.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&tmp, json)
        .and_then(|_| std::fs::rename(&tmp, &record))
        .map_err(|e| format!("cannot write {}: {e}", record.display()))?;
    util::step(format!("test bed up; record in {}", record.display()));
    Ok(testbed)
}

/// Removes what the test bed made: test containers, test images, its registries (and a dockerd it started).
pub fn down() -> Result<()> {
    let state = state_dir();
    let rt = runtime()?;
    if let Ok(docker) = rt.block_on(berth_docker_api::Docker::from_env()) {
        rt.block_on(images::remove_all(&docker))?;
    }
    for r in registries(&state)? {
        r.down(&state);
    }
    daemon::stop_ours(&state);
    let _ = std::fs::remove_dir_all(&state);
    util::step("test bed down");
    Ok(())
}

/// Prints what is up.
pub fn status() -> Result<()> {
    let state = state_dir();
    let rt = runtime()?;
    let host = daemon::docker_host();
    let daemon_ok = rt.block_on(async {
        match berth_docker_api::Docker::from_env().await {
            Ok(d) => d.ping().await.map(|_| d).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    match &daemon_ok {
        Ok(_) => println!("daemon         answers at {host}"),
        Err(e) => println!("daemon         DOWN at {host}: {e}"),
    }
    let registries = registries(&state)?;
    for r in &registries {
        println!("{}", r.status(&state));
    }
    match std::fs::read_to_string(state.join(STATE_FILE)) {
        Ok(_) => println!("record         {}", state.join(STATE_FILE).display()),
        Err(_) => println!("record         missing: run `cargo xtask testbed up`"),
    }
    if let Ok(docker) = daemon_ok {
        for line in rt.block_on(images::status(&docker, &registries)) {
            println!("{line}");
        }
    }
    Ok(())
}
