//! Debian's `busybox-static`, from which the test images are built (`berth_testbed::busybox_rootfs`).

use std::process::Command;

use crate::util::{self, Result};

/// Makes sure the static busybox is installed (the dynamic `busybox` package would not run in a bare
/// image), installing it on CI or as root.
pub fn ensure_busybox_static() -> Result<()> {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    util::apt_install(&["busybox-static"])
}
