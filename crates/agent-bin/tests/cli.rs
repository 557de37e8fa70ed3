//! The `berth` binary's command line, where no agent or daemon is involved: help, flag errors
//! that name the flag, and exit codes. (Having an integration test also makes `cargo test` build
//! the binary, which the end-to-end suite in `tests/e2e` runs.)

use std::process::{Command, Output};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_AGENT")
        .env_remove("RUST_LOG")
        .output()
        .expect("run berth")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_command() {
    let o = berth(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "serve", "run", "ps", "wait", "kill", "rm", "logs", "stats", "version",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
    let o = berth(&["serve", "--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--docker-remove-delay",
        "--docker-orphan-grace",
        "--logrotate-max-files",
        "--auth-token-file",
        "--config",
    ] {
        assert!(text.contains(flag), "{flag} missing from serve --help");
    }
}

#[test]
fn bad_values_name_the_flag_and_exit_non_zero() {
    let o = berth(&["serve", "--image-pull-timeout", "forever"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--image-pull-timeout"),
        "{}",
        stderr(&o)
    );
    let o = berth(&[
        "serve",
        "--listen",
        "10.1.2.3:5051",
        "--work-dir",
        "/nonexistent/never-created",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--listen") && stderr(&o).contains("--auth-token-file"),
        "{}",
        stderr(&o)
    );
    let o = berth(&["kill", "c1", "--signal", "NOPE"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown signal `NOPE`"),
        "{}",
        stderr(&o)
    );
    // `run` could not launch: 125, as `docker run` answers a bad value.
    let o = berth(&["run", "--name", "bad name", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("--name") && stderr(&o).contains("' '"),
        "{}",
        stderr(&o)
    );
    let o = berth(&[
        "run",
        "--image",
        "x",
        "-e",
        "NOEQUALS",
        "--agent",
        "http://127.0.0.1:9",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--env"), "{}", stderr(&o));
    let o = berth(&["--log-level", "info,[", "version"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--log-level"), "{}", stderr(&o));
}

#[test]
fn client_commands_say_when_no_agent_answers() {
    let o = berth(&["ps", "--agent", "http://127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("http://127.0.0.1:9") && stderr(&o).contains("cannot connect"),
        "{}",
        stderr(&o)
    );
    let o = berth(&["wait", "c1", "--agent", "ftp://x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("only http://"), "{}", stderr(&o));
    let o = berth(&["version", "--agent", "http://127.0.0.1:9"]);
    assert!(o.status.success(), "version works without an agent");
    assert!(String::from_utf8_lossy(&o.stdout)
        .starts_with(&format!("berth {}\n", env!("CARGO_PKG_VERSION"))));
}
