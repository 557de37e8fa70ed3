//! The `berth` binary: the agent (`berth serve`) and its command-line client.

use clap::Parser;

use berth::cli::{Cli, Command};
use berth::config::ProcessSettings;

fn main() {
    let cli = Cli::parse();
    // `serve --config` may set the process's own settings (logging, threads); they take effect
    // before anything else, the command line (or its environment variable) winning.
    let file = match &cli.command {
        Command::Serve(args) => match args.config.as_deref().map(ProcessSettings::read) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                eprintln!("berth: error: {e}");
                std::process::exit(1);
            }
            None => ProcessSettings::default(),
        },
        _ => ProcessSettings::default(),
    };
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let log_format = cli.log_format.or(file.log_format).unwrap_or_default();
    let log_level = cli
        .log_level
        .clone()
        .or(file.log_level)
        .unwrap_or_else(|| default_level.to_owned());
    if let Err(e) = berth::logging::init(log_format, &log_level) {
        eprintln!("berth: error: {e}");
        std::process::exit(2);
    }
    let mut builder = match cli.worker_threads.or(file.worker_threads).unwrap_or(0) {
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
