//! The command line: `berth serve` and the client commands.

mod cmds;
pub mod logs;
pub mod progress;
pub mod run;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::{AgentClient, DEFAULT_AGENT};
use crate::config::ServeArgs;
use crate::error::Error;
use crate::logging::LogFormat;
use crate::units::parse_duration;

/// Berth: a Mesos-compatible agent for Docker containers.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr [default: text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `berth=debug` [default: info for serve, warn otherwise; RUST_LOG wins].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Threads running the agent's async work. 0 (the default): one thread, which costs the
    /// least CPU per container (no hand-offs between threads for every Docker request; file
    /// work still runs on blocking threads). N: a work-stealing runtime with N threads, for
    /// hosts where the agent's own CPU use is the bottleneck.
    /// [default: 0]
    #[arg(long, global = true, value_name = "N", env = "BERTH_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: the Mesos v1 agent operator API over HTTP.
    Serve(Box<ServeArgs>),
    /// Run one container through the whole pipeline and exit with its exit code.
    Run(Box<run::RunArgs>),
    /// List the agent's containers.
    Ps {
        /// Print the raw GET_CONTAINERS JSON.
        #[arg(long)]
        json: bool,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Follow every container's changes live (the agent's SUBSCRIBE stream): a line per
    /// change, until interrupted or the agent stops.
    Events {
        /// Print each event as one line of JSON (protobuf-JSON, as the API sends it).
        #[arg(long)]
        json: bool,
        /// Also print the heartbeats (every 15 s while nothing changes).
        #[arg(long)]
        heartbeats: bool,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Wait for a container to end; prints how it ended and exits with its exit code.
    Wait {
        /// The container id.
        id: String,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Send a signal to a container (default SIGKILL); with --grace, SIGTERM then SIGKILL.
    Kill {
        /// The container id.
        id: String,
        /// Signal name or number (KILL, TERM, INT, HUP, 9, ...).
        #[arg(long, short, value_parser = parse_signal)]
        signal: Option<i32>,
        /// Stop gracefully: SIGTERM (or --signal), then SIGKILL after this long (e.g. 10s).
        #[arg(long, value_parser = parse_duration)]
        grace: Option<Duration>,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Remove a terminated container (its Docker container, checkpoint and sandbox).
    Rm {
        /// The container id.
        id: String,
        /// Kill it first if it is still running.
        #[arg(long, short)]
        force: bool,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Run a command inside a running container (a session, Docker's exec): its output as it
    /// comes, then its exit code. Interrupting it ends the command.
    Exec {
        /// Feed our stdin to the command (else it reads end-of-file at once).
        #[arg(short, long)]
        interactive: bool,
        /// Run it on a terminal the size of ours, resized with ours; with -i our terminal is
        /// in raw mode meanwhile (Ctrl-C and Ctrl-D go to the command).
        #[arg(short, long)]
        tty: bool,
        /// The container id.
        id: String,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<String>,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Follow a running container's output live (stdout and stderr apart) until it ends;
    /// exits with its exit code.
    Attach {
        /// Send our keyboard to its stdin (a container launched with a TTY has one); our
        /// terminal is in raw mode meanwhile.
        #[arg(short, long)]
        interactive: bool,
        /// The container id.
        id: String,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Print a container's stdout (or stderr).
    Logs {
        /// The container id.
        id: String,
        /// Print stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Keep printing new output until the container ends.
        #[arg(long, short)]
        follow: bool,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Print a running container's resource usage.
    Stats {
        /// The container id.
        id: String,
        /// Print the raw ResourceStatistics JSON.
        #[arg(long)]
        json: bool,
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Print the versions of this binary and (if reachable) of the agent and its Docker daemon.
    Version {
        /// The agent to talk to.
        #[command(flatten)]
        agent: AgentArgs,
    },
}

/// Where the agent is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The agent's URL.
    #[arg(long, env = "BERTH_AGENT", default_value = DEFAULT_AGENT, value_name = "URL")]
    pub agent: String,
    /// File holding the agent's bearer token (or set BERTH_TOKEN).
    #[arg(long, env = "BERTH_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl AgentArgs {
    /// A client for these settings.
    pub fn client(&self) -> Result<AgentClient, Error> {
        AgentClient::new(&self.agent, token(self.token_file.as_deref())?)
    }
}

/// The token from `--token-file`, else `BERTH_TOKEN`.
pub fn token(file: Option<&std::path::Path>) -> Result<Option<String>, Error> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(f).map_err(|e| Error::io("read token file", f, e))?;
        return Ok(Some(t.trim().to_owned()));
    }
    Ok(std::env::var("BERTH_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty()))
}

/// A signal by name (`TERM`, `SIGTERM`, case-insensitive) or number (1..=64).
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(format!("signal {n} is out of range (1..=64)"))
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ABRT" => 6,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => {
            return Err(format!(
                "unknown signal `{s}` (use a number or a name like TERM, KILL, INT, HUP, USR1)"
            ))
        }
    };
    Ok(n)
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.merge_config_file()?.resolve()?;
            crate::runtime::serve(config).await?;
            Ok(0)
        }
        Command::Run(args) => run::run(*args).await,
        Command::Ps { json, agent } => cmds::ps(&agent.client()?, json).await,
        Command::Wait { id, agent } => cmds::wait(&agent.client()?, &id).await,
        Command::Events {
            json,
            heartbeats,
            agent,
        } => cmds::events(&agent.client()?, json, heartbeats).await,
        Command::Kill {
            id,
            signal,
            grace,
            agent,
        } => cmds::kill(&agent.client()?, &id, signal, grace).await,
        Command::Rm { id, force, agent } => cmds::rm(&agent.client()?, &id, force).await,
        Command::Attach {
            interactive,
            id,
            agent,
        } => cmds::attach(&agent.client()?, &id, interactive).await,
        Command::Exec {
            interactive,
            tty,
            id,
            command,
            agent,
        } => cmds::exec(&agent.client()?, &id, &command, interactive, tty).await,
        Command::Logs {
            id,
            stderr,
            follow,
            agent,
        } => {
            logs::print(
                &agent.client()?,
                &id,
                if stderr { "stderr" } else { "stdout" },
                follow,
            )
            .await
        }
        Command::Stats { id, json, agent } => cmds::stats(&agent.client()?, &id, json).await,
        Command::Version { agent } => cmds::version(&agent).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("sigint"), Ok(2));
        assert!(parse_signal("0").unwrap_err().contains("out of range"));
        assert!(parse_signal("BOGUS")
            .unwrap_err()
            .contains("unknown signal"));
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from(["berth", "kill", "c1", "--signal", "TERM", "--grace", "5s"])
            .unwrap();
        match cli.command {
            Command::Kill {
                id, signal, grace, ..
            } => {
                assert_eq!(
                    (id.as_str(), signal, grace),
                    ("c1", Some(15), Some(Duration::from_secs(5)))
                );
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "berth",
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(cli.log_format, Some(LogFormat::Json));
        let e = Cli::try_parse_from(["berth", "serve", "--launch-timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--launch-timeout"), "{e}");
        let e = Cli::try_parse_from(["berth", "serve", "--bogus"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--bogus"), "{e}");
        Cli::try_parse_from(["berth", "run", "--", "sh", "-c", "echo hi"]).unwrap();
    }
}
