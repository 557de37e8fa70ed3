//! The `berth` binary: the agent (`berth serve`) and its command-line client.

use clap::Parser;

use berth::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    if let Err(e) = berth::logging::init(
        cli.log_format,
        cli.log_level.as_deref().unwrap_or(default_level),
    ) {
        eprintln!("berth: error: {e}");
        std::process::exit(2);
    }
    let mut builder = match cli.worker_threads {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(berth::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: error: {e}");
            1
        }
    };
    // `serve` has already stopped its background work and flushed its checkpoints; this only
    // bounds what is left (an embedded agent's log followers) instead of waiting for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
