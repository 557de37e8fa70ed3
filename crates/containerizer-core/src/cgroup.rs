//! Usage sampled from the host's cgroup files: one read of a few small files, at once.
//!
//! Docker 20.10 answers even a one-shot stats request (`stream=false&one-shot=true`) only at its
//! stats collector's next tick, up to a second later, so a `GET_CONTAINERS` over running
//! containers took that long. The same numbers are in the container's cgroup (cgroup v1 or v2),
//! which an agent on the Docker host can read directly, as Mesos's cgroups isolator does. The
//! container's cgroup is found through its process (`/proc/<pid>/cgroup`), and only used when
//! its path names the container's Docker id: a pid from a remote daemon, or one reused by
//! another process, is never mistaken for the container. Anything unexpected is an error, and
//! the caller falls back to Docker's stats.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::{Enforced, NetCounters, StatsSample};

/// Where the host's `/proc` and cgroup file system are (tests point these at a fake tree).
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    pub proc: PathBuf,
    pub cgroup: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: PathBuf::from("/proc"),
            cgroup: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// `key value` lines.
fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn number(path: &Path) -> io::Result<u64> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| {
        invalid(format!(
            "{}: not a number: {:?}",
            path.display(),
            text.trim()
        ))
    })
}

fn count_lines(path: &Path) -> io::Result<u64> {
    Ok(read(path)?.lines().filter(|l| !l.trim().is_empty()).count() as u64)
}

/// The container's cgroup: per controller (v1) or one unified path (v2).
#[derive(Debug, PartialEq, Eq)]
enum Cgroup {
    V1(BTreeMap<String, String>),
    V2(String),
}

/// Parses `/proc/<pid>/cgroup`; every path must name `docker_id`.
fn cgroup_of(text: &str, docker_id: &str, v2: bool) -> io::Result<Cgroup> {
    let mut v1 = BTreeMap::new();
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            unified = Some(path.to_owned());
        } else {
            for c in controllers.split(',') {
                v1.insert(c.to_owned(), path.to_owned());
            }
        }
    }
    let names_it = |p: &str| p.contains(docker_id);
    if v2 {
        match unified {
            Some(p) if names_it(&p) => Ok(Cgroup::V2(p)),
            _ => Err(invalid(format!(
                "the process is not in a cgroup of container {docker_id}"
            ))),
        }
    } else {
        let wanted = ["cpuacct", "cpu", "memory", "pids"];
        if wanted
            .iter()
            .all(|c| v1.get(*c).is_some_and(|p| names_it(p)))
        {
            Ok(Cgroup::V1(v1))
        } else {
            Err(invalid(format!(
                "the process is not in the cgroups of container {docker_id}"
            )))
        }
    }
}

/// Network counters of the process's network namespace, when it has its own (a container on
/// the host network reports none, as Docker does); loopback is left out.
fn network(roots: &Roots, pid: u32) -> io::Result<Option<NetCounters>> {
    let ns = |p: PathBuf| std::fs::read_link(p).ok();
    let own = ns(roots.proc.join(format!("{pid}/ns/net")));
    if own.is_none() || own == ns(roots.proc.join("self/ns/net")) {
        return Ok(None);
    }
    let text = read(&roots.proc.join(format!("{pid}/net/dev")))?;
    let mut acc = NetCounters {
        rx_dropped: Some(0),
        tx_dropped: Some(0),
        ..NetCounters::default()
    };
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 12 {
            return Err(invalid(format!(
                "unexpected /proc/{pid}/net/dev line: {line:?}"
            )));
        }
        acc.rx_bytes += f[0];
        acc.rx_packets += f[1];
        acc.rx_errors += f[2];
        acc.rx_dropped = acc.rx_dropped.map(|d| d + f[3]);
        acc.tx_bytes += f[8];
        acc.tx_packets += f[9];
        acc.tx_errors += f[10];
        acc.tx_dropped = acc.tx_dropped.map(|d| d + f[11]);
    }
    Ok(Some(acc))
}

/// A cgroup v1 limit file: -1 (a quota) or the kernel's "unlimited" (2^63 rounded down to a
/// page) is no limit.
fn v1_limit(path: &Path) -> io::Result<Option<u64>> {
    let text = read(path)?;
    let v: i64 = text.trim().parse().map_err(|_| {
        invalid(format!(
            "{}: not a number: {:?}",
            path.display(),
            text.trim()
        ))
    })?;
    Ok((v > 0 && v < (1 << 62)).then_some(v as u64))
}

/// A cgroup v2 value that may be `max`.
fn v2_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok().filter(|v| *v > 0)
}

/// One sample of container `docker_id` whose main process is `pid`, its process count, and the
/// CPU and memory limits in force.
pub(crate) fn sample(
    roots: &Roots,
    pid: u32,
    docker_id: &str,
) -> io::Result<(StatsSample, u64, Enforced)> {
    if docker_id.len() < 12 {
        return Err(invalid(format!("'{docker_id}' is not a full Docker id")));
    }
    let v2 = roots.cgroup.join("cgroup.controllers").exists();
    let cg = cgroup_of(
        &read(&roots.proc.join(format!("{pid}/cgroup")))?,
        docker_id,
        v2,
    )?;
    let dir = |controller: &str, path: &str| -> PathBuf {
        let rel = path.trim_start_matches('/');
        if controller.is_empty() {
            roots.cgroup.join(rel)
        } else {
            roots.cgroup.join(controller).join(rel)
        }
    };
    let mut s = StatsSample::default();
    let (processes, enforced);
    match &cg {
        Cgroup::V1(paths) => {
            let at = |c: &str| dir(c, &paths[c]);
            let ticks = rustix::param::clock_ticks_per_second() as u64;
            let cpuacct = key_values(&read(&at("cpuacct").join("cpuacct.stat"))?);
            let ns = |k: &str| cpuacct.get(k).map(|t| t * 1_000_000_000 / ticks.max(1));
            s.cpu_user_ns = ns("user");
            s.cpu_system_ns = ns("system");
            let cpu = key_values(&read(&at("cpu").join("cpu.stat"))?);
            s.cfs_periods = cpu.get("nr_periods").copied();
            s.cfs_throttled_periods = cpu.get("nr_throttled").copied();
            s.cfs_throttled_ns = cpu.get("throttled_time").copied();
            s.mem_usage = Some(number(&at("memory").join("memory.usage_in_bytes"))?);
            s.mem_stats = key_values(&read(&at("memory").join("memory.stat"))?);
            s.tasks = Some(number(&at("pids").join("pids.current"))?);
            processes = count_lines(&at("pids").join("cgroup.procs"))?;
            enforced = Enforced {
                cpu_shares: Some(number(&at("cpu").join("cpu.shares"))?),
                cpu_quota_us: v1_limit(&at("cpu").join("cpu.cfs_quota_us"))?,
                cpu_period_us: Some(number(&at("cpu").join("cpu.cfs_period_us"))?),
                memory: v1_limit(&at("memory").join("memory.limit_in_bytes"))?,
                memory_reservation: v1_limit(&at("memory").join("memory.soft_limit_in_bytes"))?,
            };
        }
        Cgroup::V2(path) => {
            let d = dir("", path);
            let cpu = key_values(&read(&d.join("cpu.stat"))?);
            let us = |k: &str| cpu.get(k).map(|v| v * 1000);
            s.cpu_user_ns = us("user_usec");
            s.cpu_system_ns = us("system_usec");
            s.cfs_periods = cpu.get("nr_periods").copied();
            s.cfs_throttled_periods = cpu.get("nr_throttled").copied();
            s.cfs_throttled_ns = us("throttled_usec");
            s.mem_usage = Some(number(&d.join("memory.current"))?);
            s.mem_stats = key_values(&read(&d.join("memory.stat"))?);
            s.tasks = Some(number(&d.join("pids.current"))?);
            processes = count_lines(&d.join("cgroup.procs"))?;
            // `cpu.max` is "QUOTA PERIOD" or "max PERIOD"; Docker puts the reservation in
            // `memory.low`. The weight is not converted back to shares.
            let cpu_max = read(&d.join("cpu.max"))?;
            let mut parts = cpu_max.split_whitespace();
            let (quota, period) = (
                parts.next().and_then(v2_limit),
                parts.next().and_then(v2_limit),
            );
            enforced = Enforced {
                cpu_shares: None,
                cpu_quota_us: quota,
                cpu_period_us: period,
                memory: v2_limit(&read(&d.join("memory.max"))?),
                memory_reservation: v2_limit(&read(&d.join("memory.low"))?),
            };
        }
    }
    s.net = network(roots, pid)?;
    Ok((s, processes, enforced))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "89fbee6fccf12d6988d854c7942ade44f993f0f3a78e7c8284c18967a65fe06e";

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn v1_tree(root: &Path, id: &str) -> Roots {
        let cg = format!("/docker/{id}");
        write(
            root,
            "proc/4242/cgroup",
            &format!(
                "9:name=systemd:{cg}\n8:pids:{cg}\n4:memory:{cg}\n2:cpuacct:{cg}\n1:cpu:{cg}\n0::{cg}\n"
            ),
        );
        write(
            root,
            &format!("cg/cpuacct{cg}/cpuacct.stat"),
            "user 250\nsystem 50\n",
        );
        write(
            root,
            &format!("cg/cpu{cg}/cpu.stat"),
            "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n",
        );
        write(
            root,
            &format!("cg/memory{cg}/memory.usage_in_bytes"),
            "2125824\n",
        );
        write(
            root,
            &format!("cg/memory{cg}/memory.stat"),
            "cache 1691648\nrss 53248\n",
        );
        write(root, &format!("cg/pids{cg}/pids.current"), "3\n");
        write(root, &format!("cg/pids{cg}/cgroup.procs"), "4242\n4250\n");
        write(root, &format!("cg/cpu{cg}/cpu.shares"), "512\n");
        write(root, &format!("cg/cpu{cg}/cpu.cfs_quota_us"), "-1\n");
        write(root, &format!("cg/cpu{cg}/cpu.cfs_period_us"), "100000\n");
        write(
            root,
            &format!("cg/memory{cg}/memory.limit_in_bytes"),
            "268435456\n",
        );
        write(
            root,
            &format!("cg/memory{cg}/memory.soft_limit_in_bytes"),
            "9223372036854771712\n",
        );
        Roots {
            proc: root.join("proc"),
            cgroup: root.join("cg"),
        }
    }

    #[test]
    fn cgroup_v1_files_make_a_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = v1_tree(tmp.path(), ID);
        let (s, processes, enforced) = sample(&roots, 4242, ID).unwrap();
        assert_eq!(
            enforced,
            Enforced {
                cpu_shares: Some(512),
                cpu_quota_us: None,
                cpu_period_us: Some(100_000),
                memory: Some(256 << 20),
                memory_reservation: None,
            }
        );
        let ticks = rustix::param::clock_ticks_per_second() as u64;
        assert_eq!(s.cpu_user_ns, Some(250 * 1_000_000_000 / ticks));
        assert_eq!(s.cpu_system_ns, Some(50 * 1_000_000_000 / ticks));
        assert_eq!(
            (s.cfs_periods, s.cfs_throttled_periods, s.cfs_throttled_ns),
            (Some(10), Some(2), Some(3000))
        );
        assert_eq!(s.mem_usage, Some(2125824));
        assert_eq!(s.mem_stats["rss"], 53248);
        assert_eq!((s.tasks, processes), (Some(3), 2));
        assert_eq!(
            s.net, None,
            "no namespace links in the fake tree: no network"
        );
    }

    #[test]
    fn cgroup_v2_files_make_a_sample_with_network() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let cg = format!("/system.slice/docker-{ID}.scope");
        write(root, "proc/7/cgroup", &format!("0::{cg}\n"));
        write(root, "cg/cgroup.controllers", "cpu memory pids\n");
        write(
            root,
            &format!("cg{cg}/cpu.stat"),
            "usage_usec 900\nuser_usec 700\nsystem_usec 200\nnr_periods 4\nnr_throttled 1\nthrottled_usec 5\n",
        );
        write(root, &format!("cg{cg}/memory.current"), "4096\n");
        write(
            root,
            &format!("cg{cg}/memory.stat"),
            "anon 1024\nfile 2048\n",
        );
        write(root, &format!("cg{cg}/pids.current"), "1\n");
        write(root, &format!("cg{cg}/cgroup.procs"), "7\n");
        write(root, &format!("cg{cg}/cpu.max"), "50000 100000\n");
        write(root, &format!("cg{cg}/memory.max"), "max\n");
        write(root, &format!("cg{cg}/memory.low"), "0\n");
        write(
            root,
            "proc/7/net/dev",
            "Inter-|   Receive\n face |bytes\n    lo: 99 9 0 0 0 0 0 0 99 9 0 0 0 0 0 0\n  eth0: 1000 10 1 2 0 0 0 0 500 5 3 4 0 0 0 0\n",
        );
        std::fs::create_dir_all(root.join("proc/self/ns")).unwrap();
        std::fs::create_dir_all(root.join("proc/7/ns")).unwrap();
        std::os::unix::fs::symlink("net:[1]", root.join("proc/self/ns/net")).unwrap();
        std::os::unix::fs::symlink("net:[2]", root.join("proc/7/ns/net")).unwrap();
        let roots = Roots {
            proc: root.join("proc"),
            cgroup: root.join("cg"),
        };
        let (s, processes, enforced) = sample(&roots, 7, ID).unwrap();
        assert_eq!(
            (enforced.cpu_quota_us, enforced.cpu_period_us),
            (Some(50_000), Some(100_000))
        );
        assert_eq!((enforced.memory, enforced.memory_reservation), (None, None));
        assert_eq!(
            (s.cpu_user_ns, s.cpu_system_ns),
            (Some(700_000), Some(200_000))
        );
        assert_eq!(s.cfs_throttled_ns, Some(5000));
        assert_eq!((s.mem_usage, s.mem_stats["anon"]), (Some(4096), 1024));
        assert_eq!((s.tasks, processes), (Some(1), 1));
        let net = s.net.expect("own namespace");
        assert_eq!((net.rx_bytes, net.tx_bytes, net.rx_errors), (1000, 500, 1));
        assert_eq!((net.rx_dropped, net.tx_dropped), (Some(2), Some(4)));
    }

    #[test]
    fn a_process_of_another_container_or_a_remote_pid_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = v1_tree(tmp.path(), ID);
        let other = "0123456789abcdef".repeat(4);
        let e = sample(&roots, 4242, &other).unwrap_err();
        assert!(
            e.to_string().contains("not in the cgroups of container"),
            "{e}"
        );
        let e = sample(&roots, 999, ID).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(sample(&roots, 4242, "short").is_err());
    }
}
