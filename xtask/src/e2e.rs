//! `cargo xtask e2e`: builds the `berth` binary and runs the end-to-end suite (`tests/e2e`) against it.

use std::process::Command;

use crate::util::{self, Result};

/// Brings the test bed up, builds `berth`, and runs `berth-e2e`'s tests (optionally filtered).
pub fn run(filter: &[&str]) -> Result<()> {
    crate::testbed::up()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(Command::new(&cargo).args(["build", "-p", "berth", "--bin", "berth"]))?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        root.join("target").display().to_string()
    });
    let mut test = Command::new(&cargo);
    test.args(["test", "-p", "berth-e2e"])
        .env("BERTH_BIN", format!("{target}/debug/berth"));
    if !filter.is_empty() {
        test.arg("--").args(filter);
    }
    util::run(&mut test)
}

/// Where `cargo build -p berth` (dev profile) puts the binary.
pub fn berth_bin() -> String {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        root.join("target").display().to_string()
    });
    format!("{target}/debug/berth")
}
