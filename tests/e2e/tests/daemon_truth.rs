//! Issue 13 item 7 on the real daemon and the real binary: behaviours the in-memory engine tests
//! cover, checked where they matter: on the wire to the registry, and in `docker inspect`.
//!
//! - Two launches of one image not in the daemon share one pull: the registry's proxy sees one
//!   daemon pull, not two.
//! - `--max-parallel-pulls N`: with N + 1 pulls stalled, only N reach the registry; the last one
//!   starts when a slot frees.
//! - Networks `NONE` and `USER`: what Docker and the container's own view say.
//!
//! A pull is caught in flight with the test bed's throttling proxy holding the registry's
//! answers: the daemon connects, sends its first request and waits. Each proxy counts the
//! connections it accepts, so which pulls reached the registry is read off the wire. (Docker
//! 20.10 tries TLS first on a 127.0.0.1 registry: a held pull keeps its one connection until the
//! TLS handshake times out after 10 s, then falls back to plain HTTP on a second one.)

use std::time::{Duration, Instant};

use berth_e2e::{
    docker_cli, eventually, remove_test_containers, test_label, testbed, Agent, ThrottledProxy,
};
use serde_json::{json, Value};

/// The Berth state (`PULLING`, `RUNNING`, ...) of container `id`, if the agent knows it.
async fn state(agent: &Agent, id: &str) -> Option<String> {
    let c = agent.container(id).await?;
    c["berth"]["state"].as_str().map(str::to_owned)
}

/// `docker inspect` of a container that must exist, as JSON.
async fn inspect(name: &str) -> Value {
    berth_e2e::docker_inspect("container", name)
        .await
        .unwrap_or_else(|| panic!("container {name} exists"))
}

/// Removes image `name` from the daemon if it is there (a tag a test pulled through a proxy).
async fn remove_image(name: &str) {
    let _ = tokio::process::Command::new("docker")
        .args(["image", "rm", "--force", name])
        .output()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_launches_of_one_uncached_image_share_one_daemon_pull() {
    const T: &str = "e2e-daemon-pull-dedupe";
    remove_test_containers(T).await;
    let tb = testbed();
    // A daemon pull connects, asks, and hangs on the answer.
    let proxy = ThrottledProxy::start(tb.registry.parse().expect("registry address"), 1);
    proxy.hold();
    // A name under the proxy's fresh port is not in the daemon: it must be pulled.
    let image = format!("{}/{}", proxy.addr(), tb.images.busybox);
    let agent = Agent::start(T, &["--image-pull-inactivity-timeout", "60s"]).await;
    let first = agent.spawn_launch("first", "echo first", &image);
    let second = agent.spawn_launch("second", "echo second", &image);
    let connected = eventually(
        Duration::from_secs(30),
        "a pull to reach the registry",
        || async { (proxy.connections() > 0).then(Instant::now) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "both launches in PULLING",
        || async {
            let a = state(&agent, "first").await?;
            let b = state(&agent, "second").await?;
            (a == "PULLING" && b == "PULLING").then_some(())
        },
    )
    .await;
    // Time for a second daemon pull, if one was asked for, to reach the registry; and before
    // the first one's TLS handshake times out (10 s) and it opens its own second connection.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connections = proxy.connections();
    assert!(
        connected.elapsed() < Duration::from_secs(8),
        "too slow to tell one pull from two: {:?} since the first connection",
        connected.elapsed()
    );
    assert_eq!(
        connections,
        1,
        "two launches of one image must share one daemon pull ({} bytes asked)\n{}",
        proxy.requested(),
        agent.logs()
    );
    // Let the one pull through: both launches get the image from it.
    proxy.set_rate(u64::MAX / 4);
    for (id, launch) in [("first", first), ("second", second)] {
        let (status, body) = tokio::time::timeout(Duration::from_secs(60), launch)
            .await
            .unwrap_or_else(|_| panic!("the launch of {id} did not answer\n{}", agent.logs()))
            .expect("the launch task");
        assert_eq!(status, 200, "{id}: {body}\n{}", agent.logs());
        let w = agent.wait(id).await;
        assert_eq!(w["state"], "TASK_FINISHED", "{id}: {w}");
        assert_eq!(
            agent.read_text(&format!("/containers/{id}/stdout")).await,
            format!("{id}\n")
        );
    }
    for id in ["first", "second"] {
        assert_eq!(agent.remove(id).await.status, 200);
    }
    remove_test_containers(T).await;
    remove_image(&image).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_beyond_the_parallel_limit_wait_for_a_slot() {
    const T: &str = "e2e-daemon-pull-limit";
    const LIMIT: usize = 2;
    remove_test_containers(T).await;
    let tb = testbed();
    let upstream = tb.registry.parse().expect("registry address");
    // One stalled registry proxy per image: which pulls reached the daemon's registry client is
    // which proxies were connected to.
    let proxies: Vec<ThrottledProxy> = (0..=LIMIT)
        .map(|_| ThrottledProxy::start(upstream, 1))
        .collect();
    for p in &proxies {
        p.hold();
    }
    let images: Vec<String> = proxies
        .iter()
        .map(|p| format!("{}/{}", p.addr(), tb.images.busybox))
        .collect();
    let agent = Agent::start(
        T,
        &[
            "--max-parallel-pulls",
            &LIMIT.to_string(),
            "--image-pull-inactivity-timeout",
            "60s",
        ],
    )
    .await;
    let ids: Vec<String> = (0..=LIMIT).map(|n| format!("p{n}")).collect();
    let launches: Vec<_> = ids
        .iter()
        .zip(&images)
        .map(|(id, image)| agent.spawn_launch(id, "true", image))
        .collect();
    eventually(
        Duration::from_secs(30),
        "every launch in PULLING",
        || async {
            for id in &ids {
                if state(&agent, id).await? != "PULLING" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    // Time for a pull over the limit, if one was let through, to reach its registry.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reached: Vec<bool> = proxies.iter().map(|p| p.connections() > 0).collect();
    assert_eq!(
        reached.iter().filter(|r| **r).count(),
        LIMIT,
        "with --max-parallel-pulls {LIMIT} only {LIMIT} of {} stalled pulls may be in flight: \
         {reached:?}\n{}",
        LIMIT + 1,
        agent.logs()
    );
    let waiting = reached.iter().position(|r| !r).expect("one pull waits");
    let running = reached.iter().position(|r| *r).expect("a pull runs");
    // Ending one pull in flight frees its slot: the waiting one starts.
    assert_eq!(agent.kill(&ids[running], None).await.status, 200);
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), async {
        // The killed launch answers once its pull is given up.
        let mut launches = launches;
        launches.remove(running).await.expect("the launch task")
    })
    .await
    .expect("the killed launch answers");
    assert!(status >= 400, "{body}");
    eventually(
        Duration::from_secs(20),
        "the waiting pull to reach its registry once a slot is free",
        || async { (proxies[waiting].connections() > 0).then_some(()) },
    )
    .await;
    for (n, id) in ids.iter().enumerate() {
        if n != running {
            assert_eq!(agent.kill(id, None).await.status, 200);
        }
        let w = agent.wait(id).await;
        assert!(w.get("exit_status").is_none(), "{id} never ran: {w}");
        assert_eq!(agent.remove(id).await.status, 200);
    }
    remove_test_containers(T).await;
    for image in &images {
        remove_image(image).await;
    }
}

/// Whether IPv4 address `ip` is in `subnet` (`a.b.c.d/n`).
fn in_subnet(ip: &str, subnet: &str) -> bool {
    let (net, bits) = subnet.split_once('/').expect("a CIDR subnet");
    let bits: u32 = bits.parse().expect("a prefix length");
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    let ip: std::net::Ipv4Addr = ip.parse().expect("an IPv4 address");
    let net: std::net::Ipv4Addr = net.parse().expect("an IPv4 network");
    u32::from(ip) & mask == u32::from(net) & mask
}

/// A launch of `line` with `docker` settings merged into the default ones; asserts 200.
async fn launch_with(agent: &Agent, id: &str, line: &str, container: Value) {
    let mut body = agent.launch_body(id, json!({"value": line}), None);
    for (k, v) in container.as_object().expect("an object") {
        if k == "docker" {
            for (dk, dv) in v.as_object().expect("docker settings") {
                body["container"]["docker"][dk] = dv.clone();
            }
        } else {
            body["container"][k] = v.clone();
        }
    }
    let r = agent
        .call(json!({"type": "LAUNCH_CONTAINER", "launch_container": body}))
        .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", agent.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn network_none_leaves_the_container_only_loopback() {
    const T: &str = "e2e-daemon-net-none";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    launch_with(
        &agent,
        "isolated",
        "ls /sys/class/net",
        json!({"docker": {"network": "NONE"}}),
    )
    .await;
    let w = agent.wait("isolated").await;
    assert_eq!(w["state"], "TASK_FINISHED", "{w}");
    assert_eq!(
        agent.read_text("/containers/isolated/stdout").await,
        "lo\n",
        "the container's own view: loopback only"
    );
    let i = inspect(&agent.docker_name("isolated")).await;
    assert_eq!(
        i["HostConfig"]["NetworkMode"], "none",
        "{}",
        i["HostConfig"]
    );
    let networks = i["NetworkSettings"]["Networks"]
        .as_object()
        .expect("networks");
    assert_eq!(
        networks.keys().collect::<Vec<_>>(),
        ["none"],
        "{networks:?}"
    );
    assert_eq!(agent.remove("isolated").await.status, 200);
    remove_test_containers(T).await;
}

/// Removes the networks that runs of test `test` left when they failed (their process is
/// gone); their containers went with [`remove_test_containers`].
async fn remove_dead_runs_networks(test: &str) {
    let listed = docker_cli(&[
        "network",
        "ls",
        "--filter",
        &format!("label={}", berth_e2e::TEST_LABEL),
        "--format",
        &format!("{{{{.Name}}}} {{{{.Label \"{}\"}}}}", berth_e2e::TEST_LABEL),
    ])
    .await;
    for line in listed.lines() {
        let Some((name, label)) = line.split_once(' ') else {
            continue;
        };
        let dead = label
            .strip_prefix(test)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if dead {
            docker_cli(&["network", "rm", name]).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_network_is_joined_and_its_address_reported() {
    const T: &str = "e2e-daemon-net-user";
    remove_test_containers(T).await;
    remove_dead_runs_networks(T).await;
    let network = format!("berth-test-net-{}", std::process::id());
    docker_cli(&["network", "create", "--label", &test_label(T), &network]).await;
    let agent = Agent::start(T, &[]).await;
    launch_with(
        &agent,
        "joined",
        "ls /sys/class/net; exec sleep 300",
        json!({"docker": {"network": "USER"}, "network_infos": [{"name": network}]}),
    )
    .await;
    let name = agent.docker_name("joined");
    let i = inspect(&name).await;
    assert_eq!(i["HostConfig"]["NetworkMode"], network.as_str());
    let networks = i["NetworkSettings"]["Networks"]
        .as_object()
        .expect("networks");
    assert_eq!(
        networks.keys().collect::<Vec<_>>(),
        [&network],
        "{networks:?}"
    );
    let ip = networks[&network]["IPAddress"]
        .as_str()
        .expect("an address")
        .to_owned();
    // The address is in the network's own subnet.
    let subnet = docker_cli(&[
        "network",
        "inspect",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}}",
        &network,
    ])
    .await;
    assert!(in_subnet(&ip, subnet.trim()), "{ip} is not in {subnet}");
    // What the agent reports is what Docker assigned.
    let c = agent.container("joined").await.expect("listed");
    assert_eq!(
        c["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"],
        ip.as_str(),
        "{c}"
    );
    let out = eventually(
        Duration::from_secs(10),
        "the container's interfaces",
        || async {
            let text = agent.read_text("/containers/joined/stdout").await;
            (!text.is_empty()).then_some(text)
        },
    )
    .await;
    let mut interfaces: Vec<&str> = out.lines().collect();
    interfaces.sort_unstable();
    assert_eq!(interfaces, ["eth0", "lo"], "{out}");
    assert_eq!(agent.kill("joined", None).await.status, 200);
    assert_eq!(agent.wait("joined").await["state"], "TASK_KILLED");
    assert_eq!(agent.remove("joined").await.status, 200);
    remove_test_containers(T).await;
    docker_cli(&["network", "rm", &network]).await;
}
