//! Issue 12: every byte a container writes is in its sandbox `stdout`/`stderr`, exactly, before
//! WAIT_CONTAINER answers, promptly, across rotation and an agent SIGKILL.
//!
//! The oracle is outside Berth: each container first writes what it is about to emit into files
//! in its own sandbox (`expected`, `expected_err`), then emits them; the test compares the
//! sandbox's `stdout`/`stderr` with those files byte for byte. Every case runs 20 containers at
//! once (a loss in 1 of 20 is a loss); the failures of each case are counted and printed before
//! the assertion, so a run against an older binary gives the loss rate.

use std::time::{Duration, Instant};

use base64::Engine as _;
use berth_e2e::{remove_test_containers, Agent};
use futures_util::stream::{self, StreamExt};
use serde_json::json;

/// Containers per case.
const RUNS: usize = 20;

/// Bytes of a sandbox file through READ_FILE (`None` if it does not exist).
async fn read_bytes(agent: &Agent, path: &str) -> Option<Vec<u8>> {
    let r = agent.read_file(path).await;
    if r.status == 404 {
        return None;
    }
    assert_eq!(r.status, 200, "READ_FILE {path}: {r:?}");
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(r.json()["read_file"]["data"].as_str().expect("data"))
            .expect("base64 data"),
    )
}

/// Bytes of a sandbox file through `/files/download`, raw.
async fn download(agent: &Agent, path: &str) -> Vec<u8> {
    let r = reqwest::get(format!("{}/files/download?path={path}", agent.url))
        .await
        .expect("GET /files/download");
    assert_eq!(r.status(), 200, "/files/download {path}");
    r.bytes().await.expect("a body").to_vec()
}

/// A rotated stream read back whole: `name.N` .. `name.1`, then `name`.
async fn read_rotated(agent: &Agent, dir: &str, name: &str) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut n = 1;
    while let Some(b) = read_bytes(agent, &format!("{dir}/{name}.{n}")).await {
        parts.push(b);
        n += 1;
    }
    let mut all: Vec<u8> = parts.into_iter().rev().flatten().collect();
    all.extend(
        read_bytes(agent, &format!("{dir}/{name}"))
            .await
            .unwrap_or_default(),
    );
    all
}

/// Where two byte strings first differ, for failure messages.
fn diff(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "got {} bytes, want {}; first difference at byte {at}",
        got.len(),
        want.len()
    )
}

/// Compares the sandbox streams of container `id` with its oracle files; `None` when exact.
async fn check(agent: &Agent, id: &str, rotated: bool) -> Option<String> {
    let dir = format!("/containers/{id}");
    let mut problems = Vec::new();
    for (file, oracle) in [("stdout", "expected"), ("stderr", "expected_err")] {
        let want = read_bytes(agent, &format!("{dir}/{oracle}"))
            .await
            .unwrap_or_else(|| panic!("{id}: the container wrote no {oracle}"));
        let got = if rotated {
            read_rotated(agent, &dir, file).await
        } else {
            read_bytes(agent, &format!("{dir}/{file}"))
                .await
                .unwrap_or_default()
        };
        if got != want {
            problems.push(format!("{file}: {}", diff(&got, &want)));
        }
    }
    (!problems.is_empty()).then(|| format!("{id}: {}", problems.join("; ")))
}

/// What each case's containers run (`S` is the sandbox). Each writes its oracle first.
fn cases() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "unterminated-both",
            "head -c 300000 /dev/zero | tr '\\0' a | fold -w 100 > $S/expected; printf TAIL-NO-NL >> $S/expected; \
             printf ERR-TAIL > $S/expected_err; cat $S/expected; cat $S/expected_err >&2",
        ),
        (
            "random-binary",
            "head -c 300000 /dev/urandom > $S/expected; head -c 30000 /dev/urandom > $S/expected_err; \
             cat $S/expected; cat $S/expected_err >&2",
        ),
        (
            "1mib-before-exit",
            "head -c 1048576 /dev/urandom > $S/expected; printf 'E\\0\\r' > $S/expected_err; \
             cat $S/expected_err >&2; cat $S/expected",
        ),
        (
            "100kib-line",
            "head -c 102400 /dev/urandom | tr -d '\\n' > $S/expected; printf 'x%.0s' $(seq 1 20000) > $S/expected_err; \
             cat $S/expected; cat $S/expected_err >&2",
        ),
        (
            "interleaved",
            ": > $S/expected; : > $S/expected_err; i=0; while [ $i -lt 400 ]; do \
             printf \"o$i \" >> $S/expected; printf \"o$i \"; printf \"e$i\\n\" >> $S/expected_err; printf \"e$i\\n\" >&2; \
             i=$((i+1)); done; printf 'o-end' >> $S/expected; printf 'o-end'; printf 'e-end' >> $S/expected_err; printf 'e-end' >&2",
        ),
    ]
}

fn script(body: &str) -> String {
    format!("S=$MESOS_SANDBOX; {body}")
}

/// Launches `RUNS` containers of `body` at once, waits for each, checks it; returns the failures.
async fn run_case(agent: &Agent, case: &str, body: &str, rotated: bool) -> Vec<String> {
    let ids: Vec<String> = (0..RUNS).map(|i| format!("{case}-{i}")).collect();
    stream::iter(ids)
        .map(|id| async move {
            let r = agent.launch_shell(&id, &script(body)).await;
            assert_eq!(r.status, 200, "launch {id}: {r:?}\n{}", agent.logs());
            let w = agent.wait(&id).await;
            assert_eq!(w["exit_status"], 0, "{id}: {w}\n{}", agent.logs());
            // Right after WAIT_CONTAINER answered: the files must be complete now.
            let result = check(agent, &id, rotated).await;
            agent.remove(&id).await;
            result
        })
        .buffer_unordered(RUNS)
        .filter_map(|r| async move { r })
        .collect()
        .await
}

/// Prints each case's loss rate.
fn print_report(results: &[(&str, Vec<String>)]) {
    for (case, failures) in results {
        eprintln!("logs_exact: {case}: {}/{RUNS} not exact", failures.len());
        for f in failures.iter().take(3) {
            eprintln!("    {f}");
        }
    }
}

/// Prints each case's loss rate, then fails on any loss.
fn report(results: &[(&str, Vec<String>)]) {
    print_report(results);
    assert_no_loss(results);
}

fn assert_no_loss(results: &[(&str, Vec<String>)]) {
    let lost: Vec<_> = results.iter().filter(|(_, f)| !f.is_empty()).collect();
    assert!(lost.is_empty(), "cases with losses: {lost:#?}");
}

/// Unterminated last lines on both streams, random binary (NUL, `\r`, invalid UTF-8), 1 MiB
/// right before exit, one 100 KiB line (Docker splits at 16 KiB), interleaved streams: exact
/// in the files as soon as WAIT_CONTAINER answers. The bytes are the same through READ_FILE,
/// `/files/download` and `berth logs` (checked on random binary).
#[tokio::test(flavor = "multi_thread")]
async fn every_byte_is_in_the_sandbox_when_wait_answers() {
    const T: &str = "e2e-logs-exact";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let mut results = Vec::new();
    for (case, body) in cases() {
        results.push((case, run_case(&agent, case, body, false).await));
    }
    print_report(&results);

    // The same bytes through every way out: READ_FILE, /files/download, `berth logs`.
    let id = "same-bytes";
    let r = agent.launch_shell(id, &script(cases()[1].1)).await;
    assert_eq!(r.status, 200, "{r:?}");
    agent.wait(id).await;
    let dir = format!("/containers/{id}");
    for (file, flag) in [("stdout", None), ("stderr", Some("--stderr"))] {
        let via_read = read_bytes(&agent, &format!("{dir}/{file}")).await.unwrap();
        let oracle = if file == "stdout" {
            "expected"
        } else {
            "expected_err"
        };
        let want = read_bytes(&agent, &format!("{dir}/{oracle}"))
            .await
            .unwrap();
        assert!(
            via_read == want,
            "READ_FILE {file}: {}",
            diff(&via_read, &want)
        );
        let via_download = download(&agent, &format!("{dir}/{file}")).await;
        assert!(
            via_download == want,
            "/files/download {file}: {}",
            diff(&via_download, &want)
        );
        let mut args = vec!["logs", id];
        args.extend(flag);
        let out = agent.cli(&args).await;
        assert!(
            out.status.success(),
            "berth logs: {}",
            berth_e2e::describe_output(&out)
        );
        assert!(
            out.stdout == want,
            "berth logs {file}: {}",
            diff(&out.stdout, &want)
        );
    }
    // An operator's `docker logs` shows Docker's (capped) copy, byte for byte too.
    let docker_logs = tokio::process::Command::new("docker")
        .args(["logs", &agent.docker_name(id)])
        .output()
        .await
        .expect("run docker logs");
    assert!(
        docker_logs.status.success(),
        "{}",
        berth_e2e::describe_output(&docker_logs)
    );
    let want_out = read_bytes(&agent, &format!("{dir}/expected"))
        .await
        .unwrap();
    let want_err = read_bytes(&agent, &format!("{dir}/expected_err"))
        .await
        .unwrap();
    assert!(
        docker_logs.stdout == want_out,
        "docker logs stdout: {}",
        diff(&docker_logs.stdout, &want_out)
    );
    assert!(
        docker_logs.stderr == want_err,
        "docker logs stderr: {}",
        diff(&docker_logs.stderr, &want_err)
    );
    assert_no_loss(&results);
}

/// `berth run` (embedded agent) writes the container's stdout to its own, byte for byte: every
/// byte value and an unterminated end, before it exits.
#[tokio::test(flavor = "multi_thread")]
async fn berth_run_prints_the_exact_bytes() {
    const T: &str = "e2e-logs-exact-run";
    remove_test_containers(T).await;
    let dir = tempfile::tempdir().unwrap();
    let label = berth_e2e::test_label(T);
    let line = r#"i=0; while [ $i -lt 256 ]; do printf "\\$(printf %o $i)"; i=$((i+1)); done; printf 'TAIL\r'"#;
    let mut want: Vec<u8> = (0..=255u8).collect();
    want.extend(b"TAIL\r");
    for _ in 0..3 {
        let o = tokio::process::Command::new(berth_e2e::berth_bin())
            .args(["run", "--work-dir"])
            .arg(dir.path())
            .args(["--label", &label, "--", "sh", "-c", line])
            .env_remove("BERTH_AGENT")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("run berth");
        assert!(o.status.success(), "{}", berth_e2e::describe_output(&o));
        assert!(
            o.stdout == want,
            "berth run stdout: {}",
            diff(&o.stdout, &want)
        );
    }
    remove_test_containers(T).await;
}

/// Rotation with the logrotate logger: the rotated files, oldest first, then the current one,
/// are exactly the stream (enough files are kept that none is deleted).
#[tokio::test(flavor = "multi_thread")]
async fn rotated_files_together_are_the_exact_stream() {
    const T: &str = "e2e-logs-exact-rotate";
    remove_test_containers(T).await;
    let agent = Agent::start(
        T,
        &[
            "--container-logger",
            "logrotate",
            "--logrotate-max-size",
            "64KiB",
            "--logrotate-max-files",
            "100",
        ],
    )
    .await;
    let mut results = Vec::new();
    for (case, body) in [&cases()[1], &cases()[2]] {
        results.push((*case, run_case(&agent, case, body, true).await));
    }
    report(&results);
}

/// A partial line is in the sandbox file within a second of being written, while the
/// container runs (bound checked: 1 s from the moment the container's marker file is seen).
#[tokio::test(flavor = "multi_thread")]
async fn a_partial_line_is_visible_within_a_second() {
    const T: &str = "e2e-logs-exact-prompt";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let body = "printf 'prompt> ' > $S/expected; printf 'err-partial' > $S/expected_err; : > $S/written; \
                printf 'prompt> '; printf 'err-partial' >&2; sleep 8; printf 'done' >> $S/expected; printf done";
    let ids: Vec<String> = (0..RUNS).map(|i| format!("prompt-{i}")).collect();
    let delays: Vec<Result<Duration, String>> = stream::iter(ids)
        .map(|id| {
            let agent = &agent;
            async move {
                let r = agent.launch_shell(&id, &script(body)).await;
                assert_eq!(r.status, 200, "launch {id}: {r:?}");
                let dir = format!("/containers/{id}");
                let start = Instant::now();
                let mut written_at = None;
                let result = loop {
                    let seen_out = read_bytes(agent, &format!("{dir}/stdout")).await;
                    let seen_err = read_bytes(agent, &format!("{dir}/stderr")).await;
                    if written_at.is_none()
                        && read_bytes(agent, &format!("{dir}/written")).await.is_some()
                    {
                        written_at = Some(Instant::now());
                    }
                    let visible = seen_out.as_deref() == Some(b"prompt> ")
                        && seen_err.as_deref() == Some(b"err-partial");
                    if visible {
                        break Ok(written_at.map_or(Duration::ZERO, |t| t.elapsed()));
                    }
                    if let Some(t) = written_at {
                        if t.elapsed() > Duration::from_secs(5) {
                            break Err(format!("{id}: not visible 5 s after it was written: {seen_out:?} {seen_err:?}"));
                        }
                    }
                    if start.elapsed() > Duration::from_secs(60) {
                        break Err(format!("{id}: the container never ran"));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                agent.wait(&id).await;
                let end = read_bytes(agent, &format!("{dir}/stdout")).await;
                agent.remove(&id).await;
                match end.as_deref() {
                    Some(b"prompt> done") => result,
                    other => Err(format!("{id}: at the end stdout is {other:?}, not \"prompt> done\"")),
                }
            }
        })
        .buffer_unordered(RUNS)
        .collect()
        .await;
    let worst = delays.iter().filter_map(|d| d.as_ref().ok()).max();
    let late: Vec<String> = delays
        .iter()
        .filter_map(|d| match d {
            Ok(d) if *d > Duration::from_secs(1) => Some(format!("{d:?}")),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        })
        .collect();
    eprintln!(
        "logs_exact: partial line: {}/{RUNS} late, worst {worst:?}",
        late.len()
    );
    assert!(late.is_empty(), "partial lines later than 1 s: {late:?}");
}

/// The agent is SIGKILLed while 20 containers write binary output in bursts, and restarted
/// while they still write: every byte in the files exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_sigkill_mid_stream_loses_and_repeats_nothing() {
    const T: &str = "e2e-logs-exact-sigkill";
    remove_test_containers(T).await;
    let mut agent = Agent::start(T, &[]).await;
    let body = ": > $S/expected; : > $S/expected_err; i=0; while [ $i -lt 80 ]; do \
                head -c 7000 /dev/urandom > $S/c; cat $S/c >> $S/expected; cat $S/c; \
                printf \"err $i \" >> $S/expected_err; printf \"err $i \" >&2; sleep 0.1; i=$((i+1)); done; \
                printf LAST >> $S/expected; printf LAST; printf ERR-LAST >> $S/expected_err; printf ERR-LAST >&2";
    let ids: Vec<String> = (0..RUNS).map(|i| format!("kill-{i}")).collect();
    let launches = ids.iter().map(|id| {
        let agent = &agent;
        async move {
            let r = agent.launch_shell(id, &script(body)).await;
            assert_eq!(r.status, 200, "launch {id}: {r:?}");
        }
    });
    futures_util::future::join_all(launches).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Mid-stream: output written, not all of it.
    let mut mid = 0;
    for id in &ids {
        let out = read_bytes(&agent, &format!("/containers/{id}/stdout")).await;
        if out.is_some_and(|o| !o.is_empty() && !o.ends_with(b"LAST")) {
            mid += 1;
        }
    }
    assert!(
        mid >= RUNS / 2,
        "only {mid} of {RUNS} containers were mid-stream at the kill"
    );
    agent.sigkill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent.restart().await;
    let failures: Vec<String> = stream::iter(ids)
        .map(|id| {
            let agent = &agent;
            async move {
                let w = agent.wait(&id).await;
                assert_eq!(w["exit_status"], 0, "{id}: {w}\n{}", agent.logs());
                let r = check(agent, &id, false).await;
                agent.remove(&id).await;
                r
            }
        })
        .buffer_unordered(RUNS)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    report(&[("sigkill-restart", failures)]);
}

/// A TTY container (`tty` parameter, as `docker run --tty`): its console, stdout and stderr in
/// one, is the sandbox `stdout`, exactly. The container puts its terminal in raw mode first, so
/// the console carries its bytes unchanged (by default the kernel's tty turns `\n` into `\r\n`,
/// which the file would then show, as a terminal would).
#[tokio::test(flavor = "multi_thread")]
async fn a_tty_console_is_logged_exactly() {
    const T: &str = "e2e-logs-exact-tty";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let body = "stty raw; head -c 200000 /dev/urandom > $S/expected; printf 'ERR-NO-NL' > $S/expected_err; \
                cat $S/expected; cat $S/expected_err >&2";
    let ids: Vec<String> = (0..RUNS).map(|i| format!("tty-{i}")).collect();
    let failures: Vec<String> = stream::iter(ids)
        .map(|id| {
            let agent = &agent;
            async move {
                let mut launch = agent.launch_body(&id, json!({"value": script(body)}), None);
                launch["container"]["docker"]["parameters"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"key": "tty", "value": "true"}));
                let r = agent
                    .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": launch}))
                    .await;
                assert_eq!(r.status, 200, "launch {id}: {r:?}");
                let w = agent.wait(&id).await;
                assert_eq!(w["exit_status"], 0, "{id}: {w}\n{}", agent.logs());
                let dir = format!("/containers/{id}");
                let mut want = read_bytes(agent, &format!("{dir}/expected")).await.unwrap();
                want.extend(
                    read_bytes(agent, &format!("{dir}/expected_err"))
                        .await
                        .unwrap(),
                );
                let got = read_bytes(agent, &format!("{dir}/stdout"))
                    .await
                    .unwrap_or_default();
                let err = read_bytes(agent, &format!("{dir}/stderr"))
                    .await
                    .unwrap_or_default();
                agent.remove(&id).await;
                if got == want && err.is_empty() {
                    None
                } else {
                    Some(format!(
                        "{id}: console {}; stderr {} bytes",
                        diff(&got, &want),
                        err.len()
                    ))
                }
            }
        })
        .buffer_unordered(RUNS)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    report(&[("tty", failures)]);
}

/// Docker's copy is capped small (`--docker-log-max-size 16KiB --docker-log-max-files 2`). The
/// containers write numbered lines, the agent checkpoints them and is SIGKILLed; while it is
/// away they write far more than the cap and exit, so the copy no longer starts at the output's
/// first byte. The recovery must notice (a skip by count from the copy's new start would lose
/// the end) and go on after what the files hold: lines in between are gone (Docker discarded
/// them), but none is repeated or reordered, and the end is there.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_rotated_past_its_cap_while_the_agent_is_away_repeats_nothing() {
    const T: &str = "e2e-logs-exact-capped";
    const N: usize = 10;
    remove_test_containers(T).await;
    let mut agent = Agent::start(
        T,
        &[
            "--docker-log-max-size",
            "16KiB",
            "--docker-log-max-files",
            "2",
        ],
    )
    .await;
    let body = "i=0; while [ $i -lt 100 ]; do printf 'line %06d %050d\\n' $i 0; i=$((i+1)); done; \
                : > $S/phase1; sleep 4; \
                while [ $i -lt 3000 ]; do printf 'line %06d %050d\\n' $i 0; i=$((i+1)); done; printf END";
    let ids: Vec<String> = (0..N).map(|i| format!("capped-{i}")).collect();
    let launches = ids.iter().map(|id| {
        let agent = &agent;
        async move {
            let r = agent.launch_shell(id, &script(body)).await;
            assert_eq!(r.status, 200, "launch {id}: {r:?}");
        }
    });
    futures_util::future::join_all(launches).await;
    for id in &ids {
        berth_e2e::eventually(Duration::from_secs(30), "the first phase", || async {
            read_bytes(&agent, &format!("/containers/{id}/phase1")).await
        })
        .await;
    }
    // A checkpoint (every second while output flows, and on the idle tick) holds the lines.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.sigkill().await;
    // The containers write 3000 more lines (190 KB, the copy keeps 32 KiB) and exit.
    tokio::time::sleep(Duration::from_secs(5)).await;
    agent.restart().await;
    let mut problems = Vec::new();
    for id in &ids {
        agent.wait(id).await;
        let out = read_bytes(&agent, &format!("/containers/{id}/stdout"))
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        let mut last: Option<u32> = None;
        let mut numbers = Vec::new();
        let mut malformed = 0;
        for line in text.split('\n') {
            if line == "END" || line.is_empty() {
                continue;
            }
            let n = line
                .strip_prefix("line ")
                .filter(|rest| rest.len() == 57)
                .and_then(|rest| rest[..6].parse::<u32>().ok());
            match n {
                Some(n) => {
                    if last.is_some_and(|l| n <= l) {
                        problems.push(format!("{id}: line {n} after line {last:?} (repeated)"));
                    }
                    last = Some(n);
                    numbers.push(n);
                }
                None => malformed += 1,
            }
        }
        if !text.ends_with("END") {
            problems.push(format!("{id}: the end is missing"));
        }
        if malformed > 0 {
            problems.push(format!("{id}: {malformed} cut lines"));
        }
        if numbers.first() != Some(&0) || numbers.len() < 100 {
            problems.push(format!("{id}: the checkpointed lines are missing"));
        }
        // Every line Docker's copy still holds (it starts well after the restart point) is in
        // the file: a skip by count from the copy's new start would have lost the first ones.
        let copy = tokio::process::Command::new("docker")
            .args(["logs", &agent.docker_name(id)])
            .output()
            .await
            .expect("run docker logs");
        let held: Vec<u32> = String::from_utf8_lossy(&copy.stdout)
            .split('\n')
            .filter_map(|l| l.strip_prefix("line ").filter(|r| r.len() == 57))
            .filter_map(|r| r[..6].parse().ok())
            .collect();
        let missing = held.iter().filter(|n| !numbers.contains(n)).count();
        if held.len() < 100 || missing > 0 {
            problems.push(format!(
                "{id}: {missing} of the {} lines Docker's copy still holds are missing",
                held.len()
            ));
        }
        agent.remove(id).await;
    }
    let snap = agent.get("/metrics/snapshot").await.json();
    let fallbacks = snap["containerizer/logger/resume_fallbacks"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!(
        "logs_exact: capped copy: {} problems, {fallbacks} resume fallbacks",
        problems.len()
    );
    assert!(problems.is_empty(), "{problems:#?}\n{}", agent.logs());
    assert_eq!(
        fallbacks, N as f64,
        "each log must notice that Docker's copy lost its start: {snap}"
    );
}
