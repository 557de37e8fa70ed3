//! Parsing of real responses recorded from Docker 20.10 (API 1.41) and of responses crafted in
//! Docker 28.x's shape (API 1.47+, `fixtures/v1.47/README.md`). Unknown fields must be ignored.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use berth_docker_api::decode::frames::{FrameDecoder, FrameMode};
use berth_docker_api::decode::json_lines::JsonLinesDecoder;
use berth_docker_api::*;
use serde::de::DeserializeOwned;

fn read(version: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn parse<T: DeserializeOwned>(version: &str, name: &str) -> T {
    serde_json::from_slice(&read(version, name))
        .unwrap_or_else(|e| panic!("{version}/{name} does not parse: {e}"))
}

fn lines<T: DeserializeOwned>(version: &str, name: &str) -> Vec<T> {
    let mut decoder = JsonLinesDecoder::new();
    decoder.push(&read(version, name));
    let mut out = Vec::new();
    while let Some(line) = decoder.next_line() {
        out.push(
            serde_json::from_slice(&line)
                .unwrap_or_else(|e| panic!("{version}/{name}: {e}: {line:?}")),
        );
    }
    out.extend(
        decoder
            .finish()
            .map(|line| serde_json::from_slice(&line).unwrap()),
    );
    out
}

#[test]
fn version_and_info() {
    let v: Version = parse("v1.41", "version.json");
    assert_eq!(
        (v.version.as_str(), v.api_version.as_str()),
        ("20.10.24+dfsg1", "1.41")
    );
    assert_eq!(v.components.unwrap().len(), 4);
    let v: Version = parse("v1.47", "version.json");
    assert_eq!(
        v.api_version.parse::<ApiVersion>().unwrap(),
        ApiVersion::new(1, 50)
    );
    assert_eq!(
        ApiVersion::negotiate(v.api_version.parse().unwrap()).unwrap(),
        ApiVersion::CLIENT
    );

    let info: Info = parse("v1.41", "info.json");
    assert_eq!(info.cgroup_version.as_deref(), Some("1"));
    assert_eq!(info.ncpu, 2);
    assert_eq!(
        info.registry_config
            .unwrap()
            .insecure_registry_cidrs
            .unwrap(),
        vec!["127.0.0.0/8"]
    );
    let info: Info = parse("v1.47", "info.json");
    assert_eq!(
        (
            info.cgroup_version.as_deref(),
            info.containers_running,
            info.ncpu
        ),
        (Some("2"), 1, 8)
    );
    assert!(info.registry_config.unwrap().mirrors.is_none());
}

#[test]
fn ping_headers_recorded() {
    let text = String::from_utf8(read("v1.41", "ping.headers")).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Api-Version: "))
        .unwrap();
    assert_eq!(
        version.trim().parse::<ApiVersion>().unwrap(),
        ApiVersion::new(1, 41)
    );
}

#[test]
fn container_inspect_running_and_exited_1_41() {
    let c: ContainerInspect = parse("v1.41", "container_inspect_running.json");
    assert_eq!(c.short_name(), "berth-fixture");
    assert_eq!(c.state.status, ContainerStatus::Running);
    assert!(c.state.pid > 0 && c.state.started().is_some() && c.state.finished().is_none());
    assert!(!c.tty());
    let h = &c.host_config;
    assert_eq!(
        h.binds.as_deref(),
        Some(&["/tmp:/hosttmp:ro".to_owned()][..])
    );
    assert_eq!(
        h.mounts.as_ref().unwrap()[0]
            .tmpfs_options
            .as_ref()
            .unwrap()
            .size_bytes,
        Some(1_048_576)
    );
    assert_eq!(
        h.port_bindings.as_ref().unwrap()["8080/tcp"][0]
            .host_port
            .as_deref(),
        Some("18080")
    );
    assert_eq!(h.cap_add.as_deref(), Some(&["NET_ADMIN".to_owned()][..]));
    assert_eq!(
        h.devices.as_ref().unwrap()[0].path_in_container.as_deref(),
        Some("/dev/mynull")
    );
    assert_eq!(h.ulimits.as_ref().unwrap()[0].hard, Some(2048));
    assert_eq!(
        (h.memory, h.memory_reservation, h.memory_swap),
        (Some(67_108_864), Some(33_554_432), Some(134_217_728))
    );
    assert_eq!(
        (h.cpu_shares, h.cpu_quota, h.cpu_period, h.pids_limit),
        (Some(512), Some(50_000), Some(100_000), Some(64))
    );
    assert_eq!(
        (h.init, h.readonly_rootfs, h.oom_score_adj),
        (Some(true), Some(true), Some(100))
    );
    assert_eq!(
        h.log_config.as_ref().unwrap().config.as_ref().unwrap()["max-file"],
        "2"
    );
    assert_eq!(h.tmpfs.as_ref().unwrap()["/run"], "size=1m");
    assert_eq!(c.config.stop_timeout, Some(3));
    assert_eq!(c.network_settings.ip_addresses().len(), 1);
    assert!(c.network_settings.ports["8080/tcp"].is_some());

    let c: ContainerInspect = parse("v1.41", "container_inspect_exited.json");
    assert_eq!(c.state.status, ContainerStatus::Exited);
    assert_eq!(
        (c.state.exit_code, c.state.pid, c.state.oom_killed),
        (137, 0, false)
    );
    assert!(c.state.finished().unwrap() >= c.state.started().unwrap());
    assert!(c.network_settings.ip_addresses().is_empty());
}

#[test]
fn container_inspect_1_47_ignores_new_fields() {
    let c: ContainerInspect = parse("v1.47", "container_inspect.json");
    assert_eq!(c.short_name(), "web");
    assert_eq!(c.state.health.as_ref().unwrap().status, "healthy");
    assert_eq!(c.state.health.as_ref().unwrap().log[0].output, "ok\n");
    assert!(
        c.state.finished().is_none(),
        "Go's zero time means not finished"
    );
    assert_eq!(c.host_config.pids_limit, None);
    assert_eq!(c.network_settings.ip_addresses(), vec!["172.17.0.2"]);
    assert_eq!(
        c.network_settings.ports["80/tcp"].as_ref().unwrap().len(),
        2
    );
    assert_eq!(c.mounts[0].destination, "/data");
    assert_eq!(c.config.healthcheck.unwrap().interval, Some(30_000_000_000));
}

#[test]
fn container_lists_waits_tops_stats_execs() {
    for version in ["v1.41", "v1.47"] {
        let list: Vec<ContainerSummary> = parse(version, "container_list.json");
        assert_eq!(list.len(), 1, "{version}");
        assert_eq!(list[0].labels["io.berth.test"], "fixture");
        assert_eq!(list[0].state, ContainerStatus::Running);
        let stats: Stats = parse(version, "container_stats.json");
        assert!(stats.memory_stats.usage.unwrap() > 0, "{version}");
        assert!(stats.cpu_percent().is_some(), "{version}");
    }
    let wait: WaitResponse = parse("v1.41", "container_wait.json");
    assert_eq!((wait.status_code, wait.error), (137, None));
    let wait: WaitResponse = parse("v1.47", "container_wait.json");
    assert_eq!(wait.status_code, 0);
    let top: Top = parse("v1.41", "container_top.json");
    assert!(top
        .column("CMD")
        .unwrap()
        .iter()
        .any(|c| c.contains("sleep 30")));
    let stats: Stats = parse("v1.47", "container_stats.json");
    // (2.0 - 1.9) s of 101 - 100 s of host time on 8 CPUs = 80 %.
    assert!((stats.cpu_percent().unwrap() - 80.0).abs() < 1e-6);
    assert_eq!(stats.pids_stats.limit, Some(u64::MAX));
    let exec: ExecInspect = parse("v1.41", "exec_inspect_created.json");
    assert_eq!((exec.running, exec.exit_code), (false, None));
    assert_eq!(exec.process_config.arguments, vec!["true"]);
    let exec: ExecInspect = parse("v1.47", "exec_inspect.json");
    assert_eq!(exec.exit_code, Some(0));
    let created: CreatedContainer = parse("v1.41", "container_create.json");
    assert_eq!(created.id.len(), 64);
}

#[test]
fn images() {
    for version in ["v1.41", "v1.47"] {
        let image: ImageInspect = parse(version, "image_inspect.json");
        assert!(image.id.starts_with("sha256:"), "{version}");
        assert_eq!(image.root_fs.unwrap().layers.len(), 1);
        let list: Vec<ImageSummary> = parse(version, "image_list.json");
        assert!(!list.is_empty());
    }
    let image: ImageInspect = parse("v1.47", "image_inspect.json");
    let config = image.config.unwrap();
    assert_eq!(
        (config.entrypoint.unwrap(), config.cmd.unwrap()),
        (vec!["echo".to_owned()], vec!["inky".to_owned()])
    );
    let removed: Vec<ImageDeleteItem> = parse("v1.41", "image_remove.json");
    assert_eq!(removed.len(), 2);
    assert!(removed
        .iter()
        .all(|r| r.untagged.is_some() && r.deleted.is_none()));
}

#[test]
fn pull_push_import_streams() {
    for version in ["v1.41", "v1.47"] {
        let messages: Vec<ProgressMessage> = lines(version, "pull.jsonl");
        let mut tracker = PullTracker::new();
        for m in &messages {
            assert!(m.failure().is_none());
            tracker.apply(m);
        }
        let totals = tracker.totals();
        assert_eq!((totals.layers, totals.layers_finished), (1, 1), "{version}");
        assert!(
            totals.size_complete
                && totals.downloaded == totals.known_size
                && totals.known_size > 1_000_000,
            "{version}: {totals:?}"
        );
    }
    let push: Vec<ProgressMessage> = lines("v1.41", "push.jsonl");
    let digest = push
        .iter()
        .find_map(|m| m.aux.as_ref()?.get("Digest")?.as_str().map(str::to_owned))
        .unwrap();
    assert!(digest.starts_with("sha256:"));
    let import: Vec<ProgressMessage> = lines("v1.41", "import.jsonl");
    assert!(import
        .last()
        .unwrap()
        .status
        .as_deref()
        .unwrap()
        .starts_with("sha256:"));
}

#[test]
fn events() {
    let events: Vec<Event> = lines("v1.41", "events.jsonl");
    assert!(events
        .iter()
        .any(|e| e.kind == "container" && e.action == "start"));
    let die = events.iter().find(|e| e.action == "die").unwrap();
    assert_eq!(die.actor.attributes["exitCode"], "137");
    let events: Vec<Event> = lines("v1.47", "events.jsonl");
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[0].timestamp(),
        UNIX_EPOCH + Duration::new(1_749_546_601, 123_456_789)
    );
}

#[test]
fn error_bodies() {
    for (name, needle) in [
        ("container_inspect_missing.json", "No such container"),
        ("image_inspect_missing.json", "No such image"),
        ("container_create_missing_image.json", "No such image"),
        ("pull_missing.json", "manifest unknown"),
    ] {
        #[derive(serde::Deserialize)]
        struct Message {
            message: String,
        }
        let m: Message = parse("v1.41", name);
        assert!(m.message.contains(needle), "{name}: {}", m.message);
    }
}

#[test]
fn recorded_log_bodies() {
    let body = read("v1.41", "logs_multiplexed_timestamps.bin");
    let mut d = FrameDecoder::new(FrameMode::Multiplexed, true);
    d.push(&body);
    let out = d.next_frame().unwrap().unwrap();
    let err = d.next_frame().unwrap().unwrap();
    assert!(d.finish().unwrap().is_none());
    assert_eq!(
        (out.stream, &out.data[..]),
        (LogStream::Stdout, &b"out\n"[..])
    );
    assert_eq!(
        (err.stream, &err.data[..]),
        (LogStream::Stderr, &b"err\n"[..])
    );
    assert!(out.timestamp.unwrap() <= err.timestamp.unwrap());

    let body = read("v1.41", "logs_tty_timestamps.bin");
    let mut d = FrameDecoder::new(FrameMode::Raw, true);
    d.push(&body);
    let line = d.next_frame().unwrap().unwrap();
    assert_eq!(
        (line.stream, &line.data[..]),
        (LogStream::Console, &b"tty-line\r\n"[..])
    );
    assert!(
        d.next_frame().unwrap().is_none(),
        "the unterminated entry waits for the end"
    );
    let partial = d.finish().unwrap().unwrap();
    assert_eq!(&partial.data[..], b"partial");
    assert!(partial.timestamp.is_some());
}
