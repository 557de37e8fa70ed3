//! The shared test bed of Berth's integration and end-to-end tests.
//!
//! `cargo xtask testbed up` prepares a machine (Docker daemon, test images, two local registries) and
//! records what it made in `.testbed/state.json` at the workspace root. Tests read that record through
//! [`testbed()`]; they never set anything up themselves, so a test run cannot half-install a machine.
//!
//! ```no_run
//! let tb = berth_testbed::testbed();
//! let image = tb.registry_image(&tb.registry, &tb.images.busybox);
//! assert!(image.starts_with("127.0.0.1:"));
//! ```

mod cleanup;
mod lock;
mod proxy;
mod rootfs;
mod state;

pub use cleanup::{remove_pulled_copies, remove_test_containers, TEST_LABEL};
pub use lock::{exclusive, ExclusiveGuard};
pub use proxy::ThrottledProxy;
pub use rootfs::{busybox_rootfs, BUSYBOX};
pub use state::{state_dir, testbed, TestImages, Testbed, STATE_FILE};
