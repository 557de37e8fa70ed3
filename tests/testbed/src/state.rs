//! The record `cargo xtask testbed up` writes and tests read.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// File name of the record inside [`state_dir()`].
pub const STATE_FILE: &str = "state.json";

/// What the test bed made: where the daemon and the registries are, and which images exist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Testbed {
    /// The daemon's address, as `DOCKER_HOST` would spell it (`unix:///var/run/docker.sock`).
    pub docker_host: String,
    /// The open registry, `host:port` on 127.0.0.1.
    pub registry: String,
    /// The registry behind htpasswd basic auth, `host:port` on 127.0.0.1.
    pub auth_registry: String,
    /// User name accepted by [`Testbed::auth_registry`].
    pub auth_username: String,
    /// Password of [`Testbed::auth_username`].
    pub auth_password: String,
    /// The test images.
    pub images: TestImages,
}

/// Names (`repository:tag`, no registry) of the images the test bed provides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestImages {
    /// Debian's busybox-static with its applet links; `/bin/sh` works. In the daemon and both registries.
    pub busybox: String,
    /// The busybox image with `ENTRYPOINT ["echo"]` and `CMD ["inky"]`. In the daemon and both registries.
    pub echo: String,
    /// One layer of random data (hundreds of MiB). Only in the registries, never left in the daemon,
    /// so that pulling it shows real progress. Hold [`crate::exclusive`]`("large-image")` while using it.
    pub large: String,
}

impl Testbed {
    /// The name under which `image` (`repository:tag`) is pulled from `registry` (`host:port`).
    ///
    /// ```
    /// # let tb = berth_testbed::Testbed {
    /// #     docker_host: String::new(), registry: "127.0.0.1:5301".into(), auth_registry: String::new(),
    /// #     auth_username: String::new(), auth_password: String::new(),
    /// #     images: berth_testbed::TestImages { busybox: String::new(), echo: String::new(), large: String::new() },
    /// # };
    /// assert_eq!(tb.registry_image("127.0.0.1:5301", "berth-test/busybox:latest"),
    ///            "127.0.0.1:5301/berth-test/busybox:latest");
    /// ```
    pub fn registry_image(&self, registry: &str, image: &str) -> String {
        format!("{registry}/{image}")
    }
}

/// The folder holding the test bed's record, registries' data and logs:
/// `$BERTH_TESTBED_DIR`, else `.testbed` at the workspace root.
pub fn state_dir() -> PathBuf {
    match std::env::var_os("BERTH_TESTBED_DIR") {
        Some(dir) => PathBuf::from(dir),
        // tests/testbed -> the workspace root
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the testbed crate sits two folders below the workspace root")
            .join(".testbed"),
    }
}

/// The test bed's record, read once per process.
///
/// # Panics
/// When the test bed is not up: tests that need the daemon fail loudly instead of skipping.
pub fn testbed() -> &'static Testbed {
    static STATE: OnceLock<Testbed> = OnceLock::new();
    STATE.get_or_init(|| {
        let path = state_dir().join(STATE_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "test bed is not up: cannot read {}: {e}\n  run `cargo xtask testbed up` first",
                path.display()
            )
        });
        let tb: Testbed = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "test bed record {} is unreadable: {e}\n  run `cargo xtask testbed down && cargo xtask testbed up`",
                path.display()
            )
        });
        // Tests use berth-docker-api's `Docker::from_env()`; point it at the daemon the test bed checked.
        if std::env::var_os("DOCKER_HOST").is_none() {
            // Done once, before the test spawns daemon clients.
            std::env::set_var("DOCKER_HOST", &tb.docker_host);
        }
        tb
    })
}
