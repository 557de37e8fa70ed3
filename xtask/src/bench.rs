//! `cargo xtask bench <name>`: each benchmark is a `harness = false` bench of its own crate that measures
//! Berth against its baseline in the same run and prints the ratio.

use std::path::Path;
use std::process::Command;

use crate::util::{self, Result};

struct Bench {
    name: &'static str,
    package: &'static str,
    dir: &'static str,
    target: &'static str,
    needs_testbed: bool,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "docker-api",
        package: "berth-docker-api",
        dir: "crates/docker-api",
        target: "lifecycle",
        needs_testbed: true,
    },
    Bench {
        name: "journal",
        package: "berth-journal",
        dir: "crates/journal",
        target: "journal",
        needs_testbed: false,
    },
    Bench {
        name: "fetcher",
        package: "berth-fetcher",
        dir: "crates/fetcher",
        target: "fetch",
        needs_testbed: false,
    },
    Bench {
        name: "logger",
        package: "berth-logger",
        dir: "crates/logger",
        target: "logger",
        needs_testbed: true,
    },
    Bench {
        name: "containerizer",
        package: "berth-containerizer",
        dir: "crates/containerizer-core",
        target: "containerizer",
        needs_testbed: true,
    },
    Bench {
        name: "agent",
        package: "berth",
        dir: "crates/agent-bin",
        target: "agent",
        needs_testbed: true,
    },
];

/// Runs the named benchmarks, in release mode (`cargo bench`).
pub fn run(names: &[&str]) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace");
    for name in names {
        let Some(bench) = BENCHES.iter().find(|b| b.name == *name) else {
            let known: Vec<_> = BENCHES.iter().map(|b| b.name).collect();
            return Err(format!(
                "unknown benchmark `{name}`; known: {}",
                known.join(", ")
            ));
        };
        let source = root
            .join(bench.dir)
            .join("benches")
            .join(format!("{}.rs", bench.target));
        if !source.exists() {
            return Err(format!(
                "benchmark `{name}` is not written yet: {} does not exist",
                source.display()
            ));
        }
        if bench.needs_testbed {
            crate::testbed::up()?;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        util::run(Command::new(cargo).args([
            "bench",
            "-p",
            bench.package,
            "--bench",
            bench.target,
        ]))?;
    }
    Ok(())
}
