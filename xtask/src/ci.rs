//! `cargo xtask ci`: what CI runs on a clean clone of main (`.ci/run` calls exactly this).

use std::process::Command;
use std::time::Instant;

use crate::util::{self, Result};

/// Runs every check in order and stops at the first failure, naming it.
pub fn run() -> Result<()> {
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    timed("cargo fmt --check", || {
        util::run(Command::new(&cargo).args(["fmt", "--all", "--", "--check"]))
    })?;
    timed("cargo clippy", || {
        util::run(Command::new(&cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    timed("test bed up", || crate::testbed::up().map(|_| ()))?;
    // The e2e suite runs the real `berth` binary, which `cargo test` alone does not build.
    timed("cargo build (binaries)", || {
        util::run(Command::new(&cargo).args(["build", "--workspace", "--bins"]))
    })?;
    timed("cargo test", || {
        util::run(
            Command::new(&cargo)
                .args(["test", "--workspace", "--no-fail-fast"])
                .env("BERTH_BIN", crate::e2e::berth_bin()),
        )
    })?;
    // After the tests: a benchmark that no longer runs, or whose output is wrong, fails CI;
    // its timing targets do not (CI machines are too noisy to judge them).
    timed("benchmarks (short)", || crate::bench::run(&["all"], true))?;
    util::step(format!("ci passed in {:.0?}", started.elapsed()));
    Ok(())
}

fn timed(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    util::step(format!("== {name}"));
    let t = Instant::now();
    let r = f().map_err(|e| format!("{name}: {e}"));
    util::step(format!(
        "== {name}: {} in {:.1?}",
        if r.is_ok() { "ok" } else { "FAILED" },
        t.elapsed()
    ));
    r
}
