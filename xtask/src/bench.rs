//! `cargo xtask bench <name>`: each benchmark is a `harness = false` bench of its own crate that measures
//! Berth against its baseline in the same run and prints the ratio.

use std::process::Command;

use crate::util::{self, Result};

/// (name on the command line, package, bench target, needs the test bed)
const BENCHES: &[(&str, &str, &str, bool)] = &[
    ("docker-api", "berth-docker-api", "lifecycle", true),
    ("fetcher", "berth-fetcher", "fetch", false),
    ("logger", "berth-logger", "logger", true),
];

/// Runs the named benchmarks, in release mode.
pub fn run(names: &[&str]) -> Result<()> {
    for name in names {
        let Some(&(_, package, target, needs_testbed)) = BENCHES.iter().find(|b| b.0 == *name)
        else {
            let known: Vec<_> = BENCHES.iter().map(|b| b.0).collect();
            return Err(format!(
                "unknown benchmark `{name}`; known: {}",
                known.join(", ")
            ));
        };
        if needs_testbed {
            crate::testbed::up()?;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        util::run(Command::new(cargo).args(["bench", "-p", package, "--bench", target]))?;
    }
    Ok(())
}
