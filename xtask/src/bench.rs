//! `cargo xtask bench <name>`: each benchmark is a `harness = false` bench of its own crate that measures
//! Berth against its baseline in the same run and prints the ratio.
//!
//! `cargo xtask bench --short <name>|all` (what CI runs) runs them with small sizes and few rounds
//! (`BERTH_BENCH_SHORT=1`): every output check of a benchmark (byte-exactness, counts, exit codes)
//! still fails it, its timing targets are only printed. Short runs use the test profile, so CI
//! reuses the build of its test step instead of building the workspace again with optimizations.

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
    Bench {
        name: "exec",
        package: "berth",
        dir: "crates/agent-bin",
        target: "exec",
        needs_testbed: true,
    },
];

/// The environment variable that tells a benchmark to run its short mode.
pub const SHORT_ENV: &str = "BERTH_BENCH_SHORT";

/// Runs the named benchmarks (`all` names every one): in release mode (`cargo bench`), or with
/// `short` in their short mode in the test profile (`cargo test --bench`).
pub fn run(names: &[&str], short: bool) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace");
    let selected: Vec<&Bench> = if names == ["all"] {
        BENCHES.iter().collect()
    } else {
        names
            .iter()
            .map(|name| {
                BENCHES.iter().find(|b| b.name == *name).ok_or_else(|| {
                    let known: Vec<_> = BENCHES.iter().map(|b| b.name).collect();
                    format!(
                        "unknown benchmark `{name}`; known: {}, or all",
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    if selected.iter().any(|b| b.needs_testbed) {
        crate::testbed::up()?;
    }
    // The docker-api and fetcher benchmarks measure `curl` as a baseline.
    if selected
        .iter()
        .any(|b| ["docker-api", "fetcher"].contains(&b.name))
        && !util::have("curl")
    {
        util::apt_install(&["curl"])?;
    }
    for bench in selected {
        let name = bench.name;
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
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        if short {
            util::step(format!("bench {name} (short)"));
            // `--workspace`, not `-p`: the features then unify as in CI's test step, whose
            // build is reused; `-p` alone would rebuild shared dependencies with other features.
            cmd.args(["test", "--workspace", "--bench", bench.target])
                .env(SHORT_ENV, "1");
        } else {
            cmd.args(["bench", "-p", bench.package, "--bench", bench.target]);
        }
        let started = std::time::Instant::now();
        util::run(&mut cmd).map_err(|e| format!("benchmark `{name}`: {e}"))?;
        if short {
            util::step(format!(
                "bench {name} (short): ok in {:.1?}",
                started.elapsed()
            ));
        }
    }
    Ok(())
}
