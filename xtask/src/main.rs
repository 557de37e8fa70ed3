//! Project automation for Berth (`cargo xtask <command>`), in Rust instead of scattered shell scripts.
//!
//! ```text
//! cargo xtask testbed up|down|status   prepare / remove / show the test bed (daemon, images, registries)
//! cargo xtask ci                       everything CI checks: fmt, clippy, test bed, all tests
//! cargo xtask e2e [filter]             the real `berth` binary against the test bed
//! cargo xtask bench <name>             a benchmark against its baseline: docker-api, journal, fetcher, logger, ...
//! cargo xtask bench --short all        every benchmark, small and quick, checking its outputs (CI)
//! ```

mod bench;
mod ci;
mod e2e;
mod testbed;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  testbed up       make this machine ready for the integration tests (idempotent)
  testbed down     remove what the test bed made (registries, test images, test containers)
  testbed status   show what is up
  ci               fmt check, clippy, test bed up, every test of the workspace (e2e included),
                   every benchmark in its short mode
  e2e [filter]     the end-to-end suite: the real `berth` binary against the test bed
  bench <name>     run a benchmark against its baseline;
                   names: docker-api, journal, fetcher, logger, containerizer, agent, exec,
                   or all
  bench --short <name>
                   the same with small sizes and few rounds, in the test profile: checks that
                   it still works and its outputs are right, not its timing targets (CI runs all)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["testbed", "up"] => testbed::up().map(|_| ()),
        ["testbed", "down"] => testbed::down(),
        ["testbed", "status"] => testbed::status(),
        ["ci"] => ci::run(),
        ["e2e", filter @ ..] => e2e::run(filter),
        ["bench", "--short", names @ ..] if !names.is_empty() => bench::run(names, true),
        ["bench", names @ ..] if !names.is_empty() => bench::run(names, false),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command `{}`\n\n{USAGE}", args.join(" "))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
