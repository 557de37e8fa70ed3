//! Small helpers shared by the xtask commands.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Errors of xtask are reported to a person, so a message is all they carry.
pub type Result<T, E = String> = std::result::Result<T, E>;

/// True when running under CI (`CI=true`), where the test bed may install what is missing.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// True when this process runs as root (apt-get and dockerd need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Prints a progress line of the test bed.
pub fn step(msg: impl AsRef<str>) {
    eprintln!("xtask: {}", msg.as_ref());
}

/// Runs a command to completion, inheriting stdout/stderr; an error names the command and its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

/// True when `program` is found on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs Debian packages, running `apt-get update` first (a fresh machine has no package lists).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        return Err(format!(
            "missing Debian package(s) {}: install them with `sudo apt-get update && sudo apt-get install -y {}`",
            packages.join(" "),
            packages.join(" ")
        ));
    }
    step(format!("installing {} with apt-get", packages.join(" ")));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Polls `ready` every 100 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}

/// True when a process with this pid exists and its command line contains `needle`.
pub fn process_alive(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

/// A plain HTTP/1.0 GET (or HEAD) to 127.0.0.1, returning the status code; enough to probe a registry
/// without pulling an HTTP client into xtask.
pub fn http_status(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
