//! docker-run style `parameters` to typed create fields.
//!
//! Mesos passes `DockerInfo.parameters` to the CLI as `--key=value`, so anything the CLI accepts
//! works, and typos surface as CLI errors mixed into the task's stderr. Berth maps a fixed list
//! of keys onto API fields and refuses anything else with an error that names the key and lists
//! the supported ones.

use super::create::{CreateSpec, DeviceSpec, UlimitSpec};
use super::policy::{self, Allowances};
use super::SpecError;
use crate::labels;
use crate::spec::Parameter;

/// Every parameter key Berth understands (`net` is an alias of `network`).
pub const SUPPORTED_PARAMETERS: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "device",
    "dns",
    "dns-opt",
    "dns-search",
    "entrypoint",
    "env",
    "hostname",
    "init",
    "label",
    "memory-swap",
    "net",
    "network",
    "pids-limit",
    "read-only",
    "security-opt",
    "shm-size",
    "stop-signal",
    "tmpfs",
    "tty",
    "ulimit",
    "user",
    "workdir",
];

/// What the parameters set besides fields applied directly to the spec.
#[derive(Debug, Default)]
pub(crate) struct ParamEffects {
    /// The first `network`/`net` parameter: overrides `DockerInfo.network`.
    pub network: Option<String>,
}

/// Applies `params` to `spec`, in order (a later value wins for single-valued fields). Values that
/// need the operator (see [`policy`]) are refused unless `privileged` or `allow` allows them.
pub(crate) fn apply(
    params: &[Parameter],
    spec: &mut CreateSpec,
    privileged: bool,
    allow: &Allowances,
) -> Result<ParamEffects, SpecError> {
    let mut effects = ParamEffects::default();
    for p in params {
        let key = p.key.trim_start_matches('-');
        let v = p.value.as_str();
        let bad = |reason: &str| SpecError::BadParameter {
            key: key.to_owned(),
            value: v.to_owned(),
            reason: reason.to_owned(),
        };
        match key {
            "label" => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                if k.is_empty() {
                    return Err(bad("expected KEY=VALUE"));
                }
                if labels::is_reserved(k) {
                    return Err(SpecError::ReservedLabel { key: k.to_owned() });
                }
                spec.labels.insert(k.to_owned(), val.to_owned());
            }
            "env" => {
                let Some((k, _)) = v.split_once('=') else {
                    return Err(bad(
                        "expected NAME=VALUE (a name alone would copy the agent's environment)",
                    ));
                };
                if k.is_empty() {
                    return Err(bad("the variable name is empty"));
                }
                spec.env.push(v.to_owned());
            }
            "cap-add" => {
                let caps = list(v).ok_or_else(|| bad("expected a capability"))?;
                for cap in &caps {
                    policy::check_cap_add(v, cap, privileged, allow)?;
                }
                spec.host.cap_add.extend(caps);
            }
            "cap-drop" => spec
                .host
                .cap_drop
                .extend(list(v).ok_or_else(|| bad("expected a capability"))?),
            "ulimit" => {
                let u = ulimit(v).map_err(|r| bad(&r))?;
                policy::check_ulimit(v, &u.name, privileged)?;
                spec.host.ulimits.push(u);
            }
            "shm-size" => spec.host.shm_size = Some(size(v).map_err(|r| bad(&r))?),
            "memory-swap" => {
                spec.host.memory_swap = Some(if v.trim() == "-1" {
                    -1
                } else {
                    size(v).map_err(|r| bad(&r))?
                })
            }
            "security-opt" => {
                let opt = non_empty(v).ok_or_else(|| bad("empty value"))?;
                policy::check_security_opt(&opt, privileged)?;
                spec.host.security_opt.push(opt);
            }
            "device" => {
                let d = device(v).map_err(|r| bad(&r))?;
                policy::check_device(v, &d.path_on_host, privileged, allow)?;
                spec.host.devices.push(d);
            }
            "dns" => spec
                .host
                .dns
                .push(non_empty(v).ok_or_else(|| bad("empty value"))?),
            "dns-search" => spec
                .host
                .dns_search
                .push(non_empty(v).ok_or_else(|| bad("empty value"))?),
            "dns-opt" => spec
                .host
                .dns_options
                .push(non_empty(v).ok_or_else(|| bad("empty value"))?),
            "hostname" => spec.hostname = Some(non_empty(v).ok_or_else(|| bad("empty value"))?),
            "add-host" => {
                let (host, ip) = v.split_once(':').ok_or_else(|| bad("expected HOST:IP"))?;
                if host.is_empty() || ip.is_empty() {
                    return Err(bad("expected HOST:IP"));
                }
                spec.host.extra_hosts.push(v.to_owned());
            }
            "workdir" => {
                if !v.starts_with('/') {
                    return Err(bad("the working directory must be an absolute path"));
                }
                spec.working_dir = Some(v.to_owned());
            }
            "user" => spec.user = Some(non_empty(v).ok_or_else(|| bad("empty value"))?),
            "entrypoint" => {
                spec.entrypoint = Some(vec![non_empty(v).ok_or_else(|| bad("empty value"))?])
            }
            "init" => spec.host.init = Some(boolean(v).map_err(|r| bad(&r))?),
            "read-only" => spec.host.read_only_rootfs = boolean(v).map_err(|r| bad(&r))?,
            "pids-limit" => {
                spec.host.pids_limit =
                    Some(v.trim().parse().map_err(|_| bad("expected an integer"))?)
            }
            "tmpfs" => {
                let (path, opts) = v.split_once(':').unwrap_or((v, ""));
                if !path.starts_with('/') {
                    return Err(bad("expected an absolute PATH[:OPTIONS]"));
                }
                spec.host.tmpfs.insert(path.to_owned(), opts.to_owned());
            }
            "stop-signal" => {
                spec.stop_signal = Some(non_empty(v).ok_or_else(|| bad("empty value"))?)
            }
            // `docker run --tty`: one console for stdout and stderr, logged as stdout.
            "tty" => spec.tty = boolean(v).map_err(|r| bad(&r))?,
            "network" | "net" => {
                let mode = non_empty(v).ok_or_else(|| bad("empty value"))?;
                effects.network.get_or_insert(mode);
            }
            _ => {
                return Err(SpecError::UnknownParameter {
                    key: p.key.clone(),
                    supported: SUPPORTED_PARAMETERS.join(", "),
                })
            }
        }
    }
    Ok(effects)
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

fn list(v: &str) -> Option<Vec<String>> {
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Docker's size notation: a number with an optional `b`, `k`, `m`, `g` suffix (powers of 1024).
pub(crate) fn size(v: &str) -> Result<i64, String> {
    let t = v.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|s| s.ends_with(['k', 'm', 'g']))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| "expected a size such as 64m".to_owned())?;
    if n.is_nan() || n < 0.0 {
        return Err("a size cannot be negative".to_owned());
    }
    Ok((n * mult as f64) as i64)
}

/// The ulimit names Docker knows (`RLIMIT_*` in lower case; Mesos's `RLMT_*` types name the same
/// limits).
pub const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn ulimit(v: &str) -> Result<UlimitSpec, String> {
    let (name, limits) = v.split_once('=').ok_or("expected NAME=SOFT[:HARD]")?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let parse = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("'{s}' is not an integer"))
    };
    let (soft, hard) = (parse(soft)?, parse(hard)?);
    if !ULIMITS.contains(&name) {
        return Err(format!(
            "'{name}' is not a ulimit; expected one of: {}",
            ULIMITS.join(", ")
        ));
    }
    if soft > hard {
        return Err(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        ));
    }
    Ok(UlimitSpec {
        name: name.to_owned(),
        soft,
        hard,
    })
}

fn device(v: &str) -> Result<DeviceSpec, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|ch| matches!(ch, 'r' | 'w' | 'm')) && !c.is_empty() => {
            (*h, *h, *c)
        }
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err("expected HOST[:CONTAINER[:PERMISSIONS]]".to_owned()),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err("device paths must be absolute".to_owned());
    }
    if perms.is_empty() || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!("permissions '{perms}' must be made of r, w and m"));
    }
    Ok(DeviceSpec {
        path_on_host: host.to_owned(),
        path_in_container: container.to_owned(),
        cgroup_permissions: perms.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> Parameter {
        Parameter {
            key: k.into(),
            value: v.into(),
        }
    }

    fn run(params: &[Parameter]) -> Result<(CreateSpec, ParamEffects), SpecError> {
        let mut allow = Allowances::default();
        allow.capabilities.insert("NET_ADMIN".into());
        allow.devices.insert("/dev/fuse".into());
        let mut spec = CreateSpec::default();
        let fx = apply(params, &mut spec, false, &allow)?;
        Ok((spec, fx))
    }

    /// The attack of issue 11 item 6 and its relatives: each refused without the operator's
    /// flag, with a message naming the parameter, the value and the flag.
    #[test]
    fn near_privileged_parameters_need_the_operator() {
        let none = Allowances::default();
        for (k, v, flag) in [
            ("cap-add", "SYS_ADMIN", "--allowed-capability SYS_ADMIN"),
            (
                "cap-add",
                "CHOWN,SYS_MODULE",
                "--allowed-capability SYS_MODULE",
            ),
            ("cap-add", "ALL", "--allow-privileged"),
            (
                "--cap-add",
                "cap_sys_ptrace",
                "--allowed-capability SYS_PTRACE",
            ),
            ("security-opt", "seccomp=unconfined", "--allow-privileged"),
            ("security-opt", "apparmor=unconfined", "--allow-privileged"),
            ("security-opt", "label=disable", "--allow-privileged"),
            (
                "security-opt",
                "systempaths=unconfined",
                "--allow-privileged",
            ),
            (
                "device",
                "/dev/vda:/dev/xvda:rwm",
                "--allowed-device /dev/vda",
            ),
            ("device", "/dev/mem", "--allowed-device /dev/mem"),
            ("ulimit", "rtprio=99", "--allow-privileged"),
        ] {
            let mut spec = CreateSpec::default();
            let err = apply(&[p(k, v)], &mut spec, false, &none)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("'{}={v}'", k.trim_start_matches('-'))) && err.contains(flag),
                "{k}={v}: {err}"
            );
            assert!(
                spec.host.cap_add.iter().all(|c| c == "CHOWN")
                    && spec.host.devices.is_empty()
                    && spec.host.security_opt.is_empty(),
                "nothing dangerous was applied: {spec:?}"
            );
            let mut spec = CreateSpec::default();
            apply(&[p(k, v)], &mut spec, true, &none).unwrap();
        }
        // Host namespaces, sysctls, cgroup parents, runtimes and the like are not supported at
        // all: refused whoever asks.
        for k in [
            "pid",
            "ipc",
            "uts",
            "userns",
            "cgroupns",
            "sysctl",
            "cgroup-parent",
            "privileged",
            "volume",
            "volumes-from",
            "mount",
            "runtime",
            "device-cgroup-rule",
            "group-add",
            "oom-kill-disable",
            "cpu-rt-runtime",
        ] {
            let mut spec = CreateSpec::default();
            let err = apply(&[p(k, "host")], &mut spec, true, &none).unwrap_err();
            assert!(
                matches!(err, SpecError::UnknownParameter { .. }),
                "{k}: {err}"
            );
        }
        // Safe for any caller: Docker's default capabilities, dropping, no-new-privileges,
        // ordinary ulimits, tmpfs with exec.
        let mut spec = CreateSpec::default();
        apply(
            &[
                p("cap-add", "NET_BIND_SERVICE,cap_kill"),
                p("cap-drop", "ALL"),
                p("security-opt", "no-new-privileges=false"),
                p("ulimit", "nofile=65536:65536"),
                p("tmpfs", "/scratch:exec,size=1m"),
            ],
            &mut spec,
            false,
            &none,
        )
        .unwrap();
        assert_eq!(spec.host.cap_add, ["NET_BIND_SERVICE", "cap_kill"]);
    }

    #[test]
    fn every_supported_key_maps_to_a_typed_field() {
        let (s, fx) = run(&[
            p("label", "team=infra"),
            p("env", "A=b=c"),
            p("cap-add", "NET_ADMIN"),
            p("cap-drop", "MKNOD,CHOWN"),
            p("ulimit", "nofile=1024:2048"),
            p("shm-size", "64m"),
            p("memory-swap", "-1"),
            p("security-opt", "no-new-privileges"),
            p("device", "/dev/fuse"),
            p("dns", "10.0.0.2"),
            p("dns-search", "example.internal"),
            p("dns-opt", "ndots:2"),
            p("hostname", "box"),
            p("add-host", "db:10.0.0.3"),
            p("workdir", "/work"),
            p("user", "nobody"),
            p("entrypoint", "/bin/true"),
            p("init", "true"),
            p("read-only", "true"),
            p("pids-limit", "100"),
            p("tmpfs", "/run:size=1m"),
            p("stop-signal", "SIGUSR1"),
            p("network", "bridge"),
            p("net", "none"),
        ])
        .unwrap();
        assert_eq!(s.labels["team"], "infra");
        assert_eq!(s.env, ["A=b=c"]);
        assert_eq!(s.host.cap_add, ["NET_ADMIN"]);
        assert_eq!(s.host.cap_drop, ["MKNOD", "CHOWN"]);
        assert_eq!(
            s.host.ulimits,
            [UlimitSpec {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }]
        );
        assert_eq!(s.host.shm_size, Some(64 << 20));
        assert_eq!(s.host.memory_swap, Some(-1));
        assert_eq!(s.host.security_opt, ["no-new-privileges"]);
        assert_eq!(s.host.devices[0].path_in_container, "/dev/fuse");
        assert_eq!(s.host.devices[0].cgroup_permissions, "rwm");
        assert_eq!(
            (
                s.host.dns.len(),
                s.host.dns_search.len(),
                s.host.dns_options.len()
            ),
            (1, 1, 1)
        );
        assert_eq!(s.hostname.as_deref(), Some("box"));
        assert_eq!(s.host.extra_hosts, ["db:10.0.0.3"]);
        assert_eq!(s.working_dir.as_deref(), Some("/work"));
        assert_eq!(s.user.as_deref(), Some("nobody"));
        assert_eq!(s.entrypoint, Some(vec!["/bin/true".to_owned()]));
        assert_eq!(s.host.init, Some(true));
        assert!(s.host.read_only_rootfs);
        assert_eq!(s.host.pids_limit, Some(100));
        assert_eq!(s.host.tmpfs["/run"], "size=1m");
        assert_eq!(s.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(
            fx.network.as_deref(),
            Some("bridge"),
            "the first network parameter wins, as in Mesos"
        );
        let all: std::collections::BTreeSet<&str> = SUPPORTED_PARAMETERS.iter().copied().collect();
        assert_eq!(all.len(), SUPPORTED_PARAMETERS.len());
    }

    #[test]
    fn unknown_key_names_it_and_lists_supported() {
        let err = run(&[p("volumes-from", "x")]).unwrap_err().to_string();
        assert!(err.contains("'volumes-from'"), "{err}");
        assert!(err.contains("cap-add") && err.contains("workdir"), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (k, v, want) in [
            ("ulimit", "nofile", "NAME=SOFT"),
            ("ulimit", "nofile=10:5", "above the hard limit"),
            ("shm-size", "lots", "size"),
            ("env", "PATH", "NAME=VALUE"),
            ("workdir", "rel", "absolute"),
            ("pids-limit", "x", "integer"),
            ("device", "/dev/x:/dev/y:q", "r, w and m"),
            ("add-host", "nohost", "HOST:IP"),
            ("init", "maybe", "true or false"),
            ("ulimit", "nofiles=1", "not a ulimit"),
        ] {
            let err = run(&[p(k, v)]).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn reserved_labels_are_refused() {
        let err = run(&[p("label", "io.berth.agent-id=someone-else")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("io.berth.agent-id"), "{err}");
        run(&[p("label", "io.berth.test=ok")]).unwrap();
    }

    #[test]
    fn sizes() {
        assert_eq!(size("1024").unwrap(), 1024);
        assert_eq!(size("1k").unwrap(), 1024);
        assert_eq!(size("2MB").unwrap(), 2 << 20);
        assert_eq!(size("1.5g").unwrap(), 3 << 29);
        assert!(size("-1").is_err());
    }
}
