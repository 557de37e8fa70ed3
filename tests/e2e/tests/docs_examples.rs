//! The docs' shell examples run as written: every fenced `sh` block of `README.md`, `docs/*.md`
//! and `crates/*/README.md`, in order, one shell per file, against the real `berth` binaries and
//! the Docker daemon — so an example that stops being true fails here, naming its file and line.
//!
//! How a file runs:
//! - its blocks go, in order, into one `bash -e` script (variables, functions and background jobs
//!   such as the `berth serve &` the docs start carry over from block to block), with `berth` and
//!   `berth-fetch` first on `PATH`, `HOME` a fresh directory and no `BERTH_*` settings;
//! - the host paths the docs use are moved under a fresh temporary root, so the test writes
//!   nothing outside it: `/var/lib/berth`, `/srv/artifacts` and `/tmp`; `cargo run --release -p
//!   berth --` becomes the `berth` under test. The agent the docs start keeps its documented
//!   address, 127.0.0.1:5051, so files run one at a time (a lock), and its agent id is seeded
//!   (`docs-test-<n>`) so that its containers are found and removed afterwards, even those of a run
//!   that died;
//! - `curl` fails on an HTTP error status (`--fail-with-body`, unless the example gives `-f`), so
//!   a call the docs show succeeding cannot answer 4xx unnoticed;
//! - a line `$ CMD` is a transcript: the lines after it, up to the next `$ ` line, are its
//!   documented output. Documented JSON must come back as JSON (exit 0) holding every key it
//!   shows and every string value without digits (states, messages, types; ids, times and
//!   versions vary); documented plain text (an error message, say) must be the whole output on
//!   stdout or stderr, `...` matching anything, whatever the exit status;
//! - a block preceded by `<!-- not run: REASON -->` is skipped (cargo builds, the test bed's own
//!   commands); everything else runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_e2e::{berth_bin, exclusive};
use tokio::process::Command;

/// How long one file's examples may take together.
const FILE_LIMIT: Duration = Duration::from_secs(300);

/// The address the docs' agent listens on (the default of `berth serve`).
const DOCS_AGENT: &str = "127.0.0.1:5051";

/// A `$ CMD` line of a transcript and the output documented under it.
#[derive(Debug)]
struct Transcript {
    line: usize,
    command: String,
    expected: String,
}

/// One fenced `sh` block.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence (1-based).
    line: usize,
    /// Lines before the first `$ ` line, run as they are.
    script: String,
    transcripts: Vec<Transcript>,
    not_run: Option<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// The Markdown files whose examples run, relative to the workspace root.
fn doc_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut md_in = |dir: &str, name: Option<&str>| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
            .filter_map(Result::ok)
            .filter_map(|e| {
                let p = e.path();
                let candidate = match name {
                    Some(n) => p.join(n),
                    None => p,
                };
                (candidate.extension().is_some_and(|x| x == "md") && candidate.is_file())
                    .then(|| candidate.strip_prefix(root).unwrap().to_path_buf())
            })
            .collect();
        found.sort();
        files.extend(found);
    };
    md_in("docs", None);
    md_in("crates", Some("README.md"));
    files
}

/// The fenced `sh` blocks of a Markdown text.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .unwrap_or_else(|| panic!("line {}: a fence that is never closed", start + 1));
        i = end + 1;
        if info.split_whitespace().next() != Some("sh") {
            continue;
        }
        let not_run = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!-- not run:"))
            .and_then(|l| l.strip_suffix("-->"))
            .map(|r| r.trim().to_owned());
        let mut block = Block {
            line: start + 1,
            script: String::new(),
            transcripts: Vec::new(),
            not_run,
        };
        for (n, l) in lines.iter().enumerate().take(end).skip(start + 1) {
            if let Some(cmd) = l.strip_prefix("$ ") {
                block.transcripts.push(Transcript {
                    line: n + 1,
                    command: cmd.to_owned(),
                    expected: String::new(),
                });
            } else if let Some(t) = block.transcripts.last_mut() {
                t.expected.push_str(l);
                t.expected.push('\n');
            } else {
                block.script.push_str(l);
                block.script.push('\n');
            }
        }
        out.push(block);
    }
    out
}

/// Replaces each path of `paths` by `to(path)` wherever it is a whole path prefix (not part of a
/// longer name: `/tmp` but not `/tmpfs` or `/var/tmp`), in one pass, so a replacement is never
/// replaced again.
fn replace_paths(text: &str, paths: &[&str], to: impl Fn(&str) -> String) -> String {
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        for p in paths {
            if text[i..].starts_with(p) {
                let before = text[..i].chars().next_back();
                let after = text[i + p.len()..].chars().next();
                if !before.is_some_and(name_char) && !after.is_some_and(name_char) {
                    out.push_str(&to(p));
                    i += p.len();
                    continue 'scan;
                }
            }
        }
        let c = text[i..].chars().next().expect("a char");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The docs' text with their host paths moved under `root`.
fn localize(text: &str, root: &Path) -> String {
    let t = text.replace("cargo run --release -p berth --", "berth");
    replace_paths(&t, &["/var/lib/berth", "/srv/artifacts", "/tmp"], |p| {
        format!("{}{p}", root.display())
    })
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The quoted strings of a JSON-like text (`...` may stand for anything), each with whether a
/// `:` follows it (it is a key).
fn quoted_strings(text: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '"' {
            i += 1;
            continue;
        }
        let mut s = String::new();
        i += 1;
        while i < chars.len() && chars[i] != '"' {
            if chars[i] == '\\' && i + 1 < chars.len() {
                s.push(chars[i]);
                i += 1;
            }
            s.push(chars[i]);
            i += 1;
        }
        i += 1;
        let key = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&':');
        out.push((s, key));
    }
    out
}

/// Whether `text` matches `pattern`, where `...` in the pattern matches anything.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// Checks a transcript's output against its documented output; the reason when it differs.
fn check(expected: &str, stdout: &str, stderr: &str, status: i32) -> Result<(), String> {
    let expected = expected.trim();
    if expected.starts_with('{') || expected.starts_with('[') {
        if status != 0 {
            return Err(format!("exit status {status}; the docs show an answer"));
        }
        if serde_json::from_str::<serde_json::Value>(stdout.trim()).is_err() {
            return Err("the docs show JSON; the output is not JSON".into());
        }
        let strings = quoted_strings(expected);
        for (n, (s, key)) in strings.iter().enumerate() {
            if *key {
                if !stdout.contains(&format!("\"{s}\":")) {
                    return Err(format!("key \"{s}\" is missing"));
                }
                if let Some((value, false)) = strings.get(n + 1) {
                    let pair = format!("\"{s}\":\"{value}\"");
                    let fixed =
                        !value.contains("...") && !value.chars().any(|c| c.is_ascii_digit());
                    if fixed && expected.contains(&pair) && !stdout.contains(&pair) {
                        return Err(format!("{pair} is missing"));
                    }
                }
            }
        }
        return Ok(());
    }
    if expected.is_empty() {
        return if status == 0 {
            Ok(())
        } else {
            Err(format!("exit status {status}"))
        };
    }
    if wildcard_match(expected, stdout.trim()) || wildcard_match(expected, stderr.trim()) {
        Ok(())
    } else {
        Err("the output differs from the documented output".into())
    }
}

/// The bash script running `blocks` of one file; `out` receives each block's log
/// (`<n>.log`), a `<n>.done` when it completed, and each transcript's `<n>.<k>.{out,err,rc}`.
fn script(blocks: &[&Block], root: &Path, out: &Path) -> String {
    let o = out.display();
    let mut s = String::from(
        "set -e\n\
         # curl fails on an HTTP error status, so no call can answer 4xx unnoticed.\n\
         curl() { case \" $* \" in *\" -f\"*|*\" -sf\"*|*\" --fail\"*) command curl \"$@\";; \
         *) command curl --fail-with-body \"$@\";; esac; }\n",
    );
    s.push_str(&format!(
        "cd {}\n",
        single_quoted(&root.join("cwd").display().to_string())
    ));
    for (n, b) in blocks.iter().enumerate() {
        s.push_str(&format!("exec >'{o}/{n}.log' 2>&1\n"));
        s.push_str(&localize(&b.script, root));
        for (k, t) in b.transcripts.iter().enumerate() {
            s.push_str(&format!(
                "if {{ {}\n}} >'{o}/{n}.{k}.out' 2>'{o}/{n}.{k}.err'; then echo 0 >'{o}/{n}.{k}.rc'; \
                 else echo $? >'{o}/{n}.{k}.rc'; fi\n",
                localize(&t.command, root)
            ));
        }
        s.push_str(&format!("echo done >'{o}/{n}.done'\n"));
    }
    s
}

/// Removes the Docker containers of the docs' agent `agent_id`; returns how many.
async fn remove_agent_containers(agent_id: &str) -> usize {
    let docker = berth_docker_api::Docker::from_env()
        .await
        .expect("the Docker daemon");
    let options = berth_docker_api::ListContainersOptions {
        all: true,
        filters: berth_docker_api::Filters::new().label(format!("io.berth.agent-id={agent_id}")),
        ..Default::default()
    };
    let found = docker
        .containers()
        .list(&options)
        .await
        .unwrap_or_else(|e| panic!("cannot list the containers of agent {agent_id}: {e}"));
    let n = found.len();
    for c in found {
        let _ = docker
            .containers()
            .remove(
                &c.id,
                berth_docker_api::RemoveContainerOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await;
    }
    n
}

fn kill_group(pgid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Waits until nothing listens on the docs' agent address (the previous file's agent is gone).
async fn port_free() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(DOCS_AGENT).await.is_ok() {
        if Instant::now() > deadline {
            return Err(format!(
                "something listens on {DOCS_AGENT}, where the docs start their agent; stop it"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Runs the runnable blocks of `file`; returns one message per failure.
async fn run_file(file: &Path, blocks: &[&Block], n: usize, bin_dir: &Path) -> Vec<String> {
    let tmp = tempfile::Builder::new()
        .prefix("berth-docs-")
        .tempdir()
        .expect("a temp dir");
    let root = tmp.path();
    for d in ["var/lib/berth", "tmp", "home", "cwd", "out"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // A known agent id, so this file's containers can be found (and a crashed run's removed).
    let agent_id = format!("docs-test-{n}");
    std::fs::write(root.join("var/lib/berth/agent-id"), format!("{agent_id}\n")).unwrap();
    remove_agent_containers(&agent_id).await;
    if let Err(e) = port_free().await {
        return vec![format!("{}: {e}", file.display())];
    }
    let out = root.join("out");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-c", &script(blocks, root, &out)])
        .env("PATH", path)
        .env("HOME", root.join("home"))
        .env_remove("XDG_STATE_HOME")
        .env_remove("BERTH_AGENT")
        .env_remove("BERTH_TOKEN")
        .env_remove("BERTH_TOKEN_FILE")
        .env_remove("BERTH_WORKER_THREADS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("bash runs");
    let pgid = child.id().expect("a pid") as i32;
    let status = tokio::time::timeout(FILE_LIMIT, child.wait()).await;
    // The shell is done; what it left in the background (the docs' agent, followers) goes too.
    kill_group(pgid, rustix::process::Signal::TERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill_group(pgid, rustix::process::Signal::KILL);
    let timed_out = status.is_err();
    let code = match status {
        Ok(Ok(s)) => s.code(),
        _ => None,
    };
    let mut failures = Vec::new();
    let read = |name: String| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    for (i, b) in blocks.iter().enumerate() {
        let where_ = format!("{}:{}", file.display(), b.line);
        for (k, t) in b.transcripts.iter().enumerate() {
            let rc = read(format!("{i}.{k}.rc"));
            let Ok(rc) = rc.trim().parse::<i32>() else {
                continue;
            };
            let (stdout, stderr) = (read(format!("{i}.{k}.out")), read(format!("{i}.{k}.err")));
            if let Err(why) = check(&localize(&t.expected, root), &stdout, &stderr, rc) {
                failures.push(format!(
                    "{}:{}: `$ {}`: {why}\n--- documented ---\n{}--- stdout (exit {rc}) ---\n{stdout}\n--- stderr ---\n{stderr}",
                    file.display(),
                    t.line,
                    t.command,
                    t.expected
                ));
            }
        }
        if !out.join(format!("{i}.done")).exists() {
            let why = if timed_out {
                format!("did not finish within {FILE_LIMIT:?}")
            } else {
                format!("failed (the shell exited with {code:?})")
            };
            failures.push(format!(
                "{where_}: the block {why}; its output:\n{}",
                read(format!("{i}.log"))
            ));
            break;
        }
    }
    let removed = remove_agent_containers(&agent_id).await;
    eprintln!(
        "{}: {} block(s) run, {removed} leftover container(s) of its agent removed",
        file.display(),
        blocks.len()
    );
    failures
}

#[tokio::test(flavor = "multi_thread")]
async fn the_docs_examples_run_as_written() {
    // The docs' agent has one documented address: one run of this test at a time.
    let _port = exclusive("docs-agent-5051");
    let bin_dir = berth_bin()
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    assert!(
        bin_dir.join("berth-fetch").is_file(),
        "the docs use berth-fetch, which is not next to {}; build it with `cargo build -p berth-fetcher`",
        berth_bin().display()
    );
    let root = workspace_root();
    let mut per_file: BTreeMap<PathBuf, Vec<Block>> = BTreeMap::new();
    for f in doc_files(&root) {
        let text = std::fs::read_to_string(root.join(&f)).unwrap();
        per_file.insert(f, blocks(&text));
    }
    let mut runnable = 0;
    let mut failures = Vec::new();
    for (n, (file, blocks)) in per_file.iter().enumerate() {
        for b in blocks.iter().filter(|b| b.not_run.is_some()) {
            let reason = b.not_run.as_deref().unwrap_or_default();
            assert!(
                !reason.is_empty(),
                "{}:{}: a `not run` marker must say why",
                file.display(),
                b.line
            );
            eprintln!("{}:{}: not run: {reason}", file.display(), b.line);
        }
        let run: Vec<&Block> = blocks.iter().filter(|b| b.not_run.is_none()).collect();
        if run.is_empty() {
            continue;
        }
        runnable += run.len();
        failures.extend(run_file(file, &run, n, &bin_dir).await);
    }
    assert!(
        runnable >= 15,
        "only {runnable} runnable blocks were found: the extraction is broken"
    );
    assert!(
        failures.is_empty(),
        "{} docs example(s) do not run as written:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn extraction_and_matching_rules() {
    let md = "text\n<!-- not run: slow -->\n```sh\ncargo x\n```\n\n```sh\nA=1\n$ call x\n{\"type\":\"T\",\"n\":3}\n$ call y\n```\n```text\n$ no\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].not_run.as_deref(), Some("slow"));
    assert_eq!((b[1].line, b[1].script.as_str()), (7, "A=1\n"));
    assert_eq!(b[1].transcripts.len(), 2);
    assert_eq!(b[1].transcripts[0].line, 9);

    let t = b[1].transcripts[0].expected.as_str();
    assert!(check(t, "{\"n\":4,\"type\":\"T\"}", "", 0).is_ok());
    assert!(
        check(t, "{\"n\":4,\"type\":\"U\"}", "", 0).is_err(),
        "a fixed value differs"
    );
    assert!(
        check(t, "{\"type\":\"T\"}", "", 0).is_err(),
        "a key is missing"
    );
    assert!(
        check(t, "{\"n\":4,\"type\":\"T\"}", "", 22).is_err(),
        "an error status"
    );
    let plain = "Container a cannot be found ...\n";
    assert!(check(plain, "", "Container a cannot be found (it is gone)", 22).is_ok());
    assert!(check(plain, "Container b cannot be found", "", 22).is_err());

    let root = Path::new("/tmp/r");
    assert_eq!(
        localize(
            "x /tmp/a file:///tmp/b /var/tmp /tmpfs /srv/artifacts",
            root
        ),
        "x /tmp/r/tmp/a file:///tmp/r/tmp/b /var/tmp /tmpfs /tmp/r/srv/artifacts"
    );
    assert_eq!(
        localize("cargo run --release -p berth -- run -- true", root),
        "berth run -- true"
    );
}
