//! UPDATE_CONTAINER and the statistics against what the host enforces (issue 13 item 1), with
//! `docker inspect` and the container's cgroup v1 files as the oracle.

use std::time::Duration;

use berth_e2e::{remove_test_containers, Agent};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// The kernel's "no limit" in a cgroup v1 file is 2^63 rounded down to a page.
fn unlimited(v: i64) -> bool {
    !(0..1 << 62).contains(&v)
}

/// What the cgroup v1 files of container `docker_id` say is in force.
#[derive(Debug, PartialEq)]
struct Cgroup {
    shares: i64,
    quota: i64,
    period: i64,
    memory: i64,
    soft: i64,
}

fn cgroup(docker_id: &str) -> Cgroup {
    let read = |controller: &str, file: &str| -> i64 {
        let p = format!("/sys/fs/cgroup/{controller}/docker/{docker_id}/{file}");
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e} (this test needs cgroup v1 and cgroupfs)"))
            .trim()
            .parse()
            .unwrap()
    };
    Cgroup {
        shares: read("cpu", "cpu.shares"),
        quota: read("cpu", "cpu.cfs_quota_us"),
        period: read("cpu", "cpu.cfs_period_us"),
        memory: read("memory", "memory.limit_in_bytes"),
        soft: read("memory", "memory.soft_limit_in_bytes"),
    }
}

fn scalar(name: &str, v: f64) -> Value {
    json!({"name": name, "type": "SCALAR", "scalar": {"value": v}})
}

async fn update(
    agent: &Agent,
    id: &str,
    resources: Value,
    limits: Option<Value>,
) -> berth_e2e::Resp {
    let mut u = json!({"container_id": {"value": id}, "resources": resources});
    if let Some(l) = limits {
        u["limits"] = l;
    }
    agent
        .call(json!({"type": "UPDATE_CONTAINER", "update_container": u}))
        .await
}

async fn stats(agent: &Agent, id: &str) -> Value {
    agent.container(id).await.expect("listed")["resource_statistics"].clone()
}

/// The statistics agree with the cgroup files: the hard limits exactly, the soft ones when set.
fn assert_stats_are_enforced(s: &Value, cg: &Cgroup, host_cpus: f64, host_mem: u64, when: &str) {
    let cpus_limit = if cg.quota > 0 {
        cg.quota as f64 / cg.period as f64
    } else {
        host_cpus
    };
    assert_eq!(
        s["cpus_limit"].as_f64(),
        Some(cpus_limit),
        "{when}: {s} vs {cg:?}"
    );
    let mem_limit = if unlimited(cg.memory) {
        host_mem
    } else {
        cg.memory as u64
    };
    assert_eq!(
        s["mem_limit_bytes"].as_u64(),
        Some(mem_limit),
        "{when}: {s} vs {cg:?}"
    );
    let soft = (!unlimited(cg.soft) && (cg.soft as u64) < mem_limit).then_some(cg.soft as u64);
    assert_eq!(
        s["mem_soft_limit_bytes"].as_u64(),
        soft,
        "{when}: {s} vs {cg:?}"
    );
}

fn host_mem() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

async fn healthy(agent: &Agent) {
    let r = tokio::time::timeout(Duration::from_secs(1), agent.get("/health"))
        .await
        .expect("/health answers within a second");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_puts_exactly_the_new_request_in_force_and_statistics_say_so() {
    const T: &str = "e2e-update-truth";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let docker = berth_docker_api::Docker::from_env().await.unwrap();
    let host_cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let host_mem = host_mem();

    // Launch: limits 1 CPU / 256 MiB over a request of 0.5 / 128.
    let mut body = agent.launch_body("upd", json!({"value": "sleep 600"}), None);
    body["resources"] = json!([scalar("cpus", 0.5), scalar("mem", 128.0)]);
    body["limits"] = json!({"cpus": {"value": 1}, "mem": {"value": 256}});
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
    let docker_id = agent.container("upd").await.unwrap()["berth"]["docker_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cg = cgroup(&docker_id);
    assert_eq!(
        cg,
        Cgroup {
            shares: 512,
            quota: 100_000,
            period: 100_000,
            memory: (256 * MIB) as i64,
            soft: (128 * MIB) as i64
        }
    );
    let s = stats(&agent, "upd").await;
    assert_stats_are_enforced(&s, &cg, host_cpus, host_mem, "after launch");
    assert_eq!(s["cpus_soft_limit"].as_f64(), Some(0.5), "{s}");

    // The update: 2 CPUs / 64 MiB and no limits. The CPU limit and the reservation of
    // the launch must go; the statistics must not say 2 CPUs while 1 is enforced.
    let r = update(
        &agent,
        "upd",
        json!([scalar("cpus", 2.0), scalar("mem", 64.0)]),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let hc = docker
        .containers()
        .inspect(&docker_id)
        .await
        .unwrap()
        .host_config;
    assert_eq!(hc.cpu_shares, Some(2048));
    assert!(
        hc.cpu_quota.unwrap_or(0) <= 0,
        "CpuQuota {:?} still in force",
        hc.cpu_quota
    );
    assert_eq!(hc.memory, Some((64 * MIB) as i64));
    assert!(
        hc.memory_reservation.unwrap_or(0) <= 0,
        "MemoryReservation {:?}",
        hc.memory_reservation
    );
    let cg = cgroup(&docker_id);
    assert_eq!(
        (cg.shares, cg.quota, cg.memory),
        (2048, -1, (64 * MIB) as i64),
        "{cg:?}"
    );
    assert!(
        unlimited(cg.soft),
        "the 128 MiB reservation is gone: {cg:?}"
    );
    let s = stats(&agent, "upd").await;
    assert_stats_are_enforced(&s, &cg, host_cpus, host_mem, "after 2 CPUs / 64 MiB");
    assert_ne!(s["cpus_limit"].as_f64(), Some(1.0), "{s}");

    // Only limits: the request goes (default shares), the limit is what Docker enforces.
    let r = update(
        &agent,
        "upd",
        json!([]),
        Some(json!({"mem": {"value": 512}})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let cg = cgroup(&docker_id);
    assert_eq!((cg.shares, cg.memory), (1024, (512 * MIB) as i64), "{cg:?}");
    let s = stats(&agent, "upd").await;
    assert_stats_are_enforced(&s, &cg, host_cpus, host_mem, "after limits only");
    assert_eq!(s["mem_limit_bytes"].as_u64(), Some(512 * MIB), "{s}");

    // Below Docker's minimum: refused, nothing changes.
    let r = update(&agent, "upd", json!([scalar("mem", 2.0)]), None).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("'mem'") && r.body.contains("32 MiB"),
        "{r:?}"
    );
    assert_eq!(cgroup(&docker_id), cg, "a refused update changes nothing");
    let s = stats(&agent, "upd").await;
    assert_eq!(s["mem_limit_bytes"].as_u64(), Some(512 * MIB), "{s}");

    // CPUs only, CFS off (the default): no quota, and the memory limit of before is lifted as far
    // as Docker can (to the host's memory); the statistics say what the kernel holds.
    let r = update(&agent, "upd", json!([scalar("cpus", 1.0)]), None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let cg = cgroup(&docker_id);
    assert_eq!((cg.shares, cg.quota), (1024, -1), "{cg:?}");
    assert!(
        cg.memory as u64 >= host_mem & !4095,
        "the 512 MiB limit is lifted: {cg:?}"
    );
    assert_stats_are_enforced(
        &stats(&agent, "upd").await,
        &cg,
        host_cpus,
        host_mem,
        "cpus only",
    );

    // An infinite CPU limit with a finite memory limit.
    let r = update(
        &agent,
        "upd",
        json!([scalar("cpus", 0.25), scalar("mem", 64.0)]),
        Some(json!({"cpus": {"value": "Infinity"}, "mem": {"value": 96}})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let cg = cgroup(&docker_id);
    assert_eq!(
        (cg.shares, cg.quota, cg.memory, cg.soft),
        (256, -1, (96 * MIB) as i64, (64 * MIB) as i64)
    );
    assert_stats_are_enforced(
        &stats(&agent, "upd").await,
        &cg,
        host_cpus,
        host_mem,
        "infinite cpus",
    );
    healthy(&agent).await;

    // A terminated container: a clear answer, not "being removed".
    agent.kill("upd", None).await;
    agent.wait("upd").await;
    let r = update(&agent, "upd", json!([scalar("cpus", 1.0)]), None).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body.contains("has terminated"), "{r:?}");
    assert!(!r.body.contains("being removed"), "{r:?}");
    healthy(&agent).await;
    remove_test_containers(T).await;
}

/// The host file's owner.
fn owner(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_root_task_owns_and_writes_its_sandbox_and_an_unknown_user_is_refused() {
    const T: &str = "e2e-update-user";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &["--docker-remove-delay", "1h"]).await;
    let line = "set -e; echo x > $MESOS_SANDBOX/out; id -u > $MESOS_SANDBOX/uid; pwd > $MESOS_SANDBOX/pwd; echo out-line; echo err-line >&2";
    // By uid and by a name the host (and the image) know: 65534 is `nobody` on both.
    for (id, user) in [("by-uid", "65534"), ("by-name", "nobody")] {
        let body = agent.launch_body(id, json!({"value": line, "user": user}), None);
        let r = agent
            .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
            .await;
        assert_eq!(r.status, 200, "{user}: {r:?}\n{}", agent.logs());
        let w = agent.wait(id).await;
        assert_eq!(
            w["state"],
            "TASK_FINISHED",
            "{user}: the task could write its sandbox: {w}\n{}",
            agent.logs()
        );
        let sandbox = agent.work_dir.join("sandboxes").join(id);
        assert_eq!(
            owner(&sandbox),
            (65534, 65534),
            "{user}: the sandbox belongs to the task's user"
        );
        assert_eq!(std::fs::read_to_string(sandbox.join("out")).unwrap(), "x\n");
        assert_eq!(owner(&sandbox.join("out")), (65534, 65534));
        assert_eq!(
            std::fs::read_to_string(sandbox.join("uid")).unwrap(),
            "65534\n"
        );
        for log in ["stdout", "stderr"] {
            assert_eq!(owner(&sandbox.join(log)), (65534, 65534), "{user}: {log}");
        }
        assert_eq!(
            agent.read_text(&format!("/containers/{id}/stdout")).await,
            "out-line\n"
        );
        // No -w is given, as Mesos gives none: the image's working directory (busybox: /).
        assert_eq!(std::fs::read_to_string(sandbox.join("pwd")).unwrap(), "/\n");
    }
    // A name the host does not know: refused before anything exists, naming the field.
    let body = agent.launch_body(
        "ghost-user",
        json!({"value": "true", "user": "no-such-user-i13"}),
        None,
    );
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("command.user") && r.body.contains("no-such-user-i13"),
        "{r:?}"
    );
    assert!(
        agent.container("ghost-user").await.is_none(),
        "nothing was made"
    );
    assert!(!agent.work_dir.join("sandboxes/ghost-user").exists());
    healthy(&agent).await;
    remove_test_containers(T).await;
}
