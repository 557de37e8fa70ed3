//! What an API caller may ask for without the operator's say-so.
//!
//! The caller is authenticated but is not the operator: it may run containers confined as Docker
//! confines them by default, and nothing more. Anything that adds a capability beyond Docker's
//! default set, passes a host device, weakens seccomp/AppArmor/SELinux, joins another
//! container's namespaces, raises real-time scheduling limits, or mounts something from the host
//! (a path, a block device, a network share, a volume plugin) needs an operator flag. The flags
//! are gathered in [`Allowances`] (plus `allow_privileged`, which allows all of them, and the
//! allowed host roots, which govern host paths).

use std::collections::{BTreeMap, BTreeSet};

use super::SpecError;

/// The operator's allow-lists beyond privileged mode and the host roots. Empty by default:
/// callers get Docker's default confinement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowances {
    /// Capabilities beyond Docker's default set that `cap-add` may add, as `SYS_ADMIN` (no
    /// `CAP_` prefix, upper case; see [`normalize_capability`]).
    pub capabilities: BTreeSet<String>,
    /// Host device paths the `device` parameter may pass, exactly as written.
    pub devices: BTreeSet<String>,
    /// Volume drivers other than `local` that `DOCKER_VOLUME`s may use.
    pub volume_drivers: BTreeSet<String>,
    /// Mount types (`nfs`, `cifs`, `ext4`, ...) the `local` driver may mount for a volume, besides
    /// `tmpfs` and host-path binds (those are always governed by the host roots).
    pub volume_types: BTreeSet<String>,
    /// Existing Docker volumes callers may attach although this agent did not create them.
    pub volumes: BTreeSet<String>,
}

/// The flag allowing everything.
pub const PRIVILEGED_FLAG: &str = "--allow-privileged";

/// Docker's default capability set (moby `oci/caps/defaults.go`): adding one of these is a no-op
/// (or undoes a `cap-drop`), so any caller may.
pub const DOCKER_DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Every Linux capability name (without `CAP_`), for telling a typo from a real capability.
pub const LINUX_CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Ulimits that need the operator: real-time scheduling lets a process starve the host's CPUs
/// (the agent's included). Every other ulimit only bounds the container's own use.
pub const PRIVILEGED_ULIMITS: &[&str] = &["rtprio", "rttime"];

/// `local` driver mount options a `tmpfs` volume may use (none reaches the host).
const TMPFS_OPTIONS: &[&str] = &[
    "size",
    "nr_blocks",
    "nr_inodes",
    "mode",
    "uid",
    "gid",
    "huge",
    "mpol",
    "noexec",
    "exec",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "ro",
    "rw",
    "noatime",
    "atime",
    "relatime",
    "nodiratime",
    "strictatime",
];

/// `SYS_ADMIN` for `sys_admin`, `CAP_SYS_ADMIN`, ` Cap_Sys_Admin `; `ALL` stays `ALL`.
pub fn normalize_capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_owned(),
        None => upper,
    }
}

fn not_allowed(what: String, why: &str, flag: String) -> SpecError {
    SpecError::NotAllowed {
        what,
        why: why.to_owned(),
        flag,
    }
}

/// Checks one `cap-add` value.
pub(crate) fn check_cap_add(
    value: &str,
    cap: &str,
    privileged: bool,
    allow: &Allowances,
) -> Result<(), SpecError> {
    let name = normalize_capability(cap);
    let what = || format!("Docker parameter 'cap-add={value}'");
    if name == "ALL" {
        if privileged {
            return Ok(());
        }
        return Err(not_allowed(
            what(),
            "adding every capability is as good as a privileged container",
            PRIVILEGED_FLAG.to_owned(),
        ));
    }
    if !LINUX_CAPABILITIES.contains(&name.as_str()) {
        return Err(SpecError::BadParameter {
            key: "cap-add".to_owned(),
            value: value.to_owned(),
            reason: format!("'{cap}' is not a Linux capability (e.g. NET_ADMIN or CAP_NET_ADMIN)"),
        });
    }
    if privileged
        || DOCKER_DEFAULT_CAPABILITIES.contains(&name.as_str())
        || allow.capabilities.contains(&name)
    {
        return Ok(());
    }
    Err(not_allowed(
        what(),
        &format!("CAP_{name} is beyond Docker's default capability set"),
        format!("--allowed-capability {name} (or {PRIVILEGED_FLAG})"),
    ))
}

/// Checks one `device` value (its host path).
pub(crate) fn check_device(
    value: &str,
    host_path: &str,
    privileged: bool,
    allow: &Allowances,
) -> Result<(), SpecError> {
    if privileged || allow.devices.contains(host_path) {
        return Ok(());
    }
    Err(not_allowed(
        format!("Docker parameter 'device={value}'"),
        &format!("host device '{host_path}' would be given to the container"),
        format!("--allowed-device {host_path} (or {PRIVILEGED_FLAG})"),
    ))
}

/// Checks one `security-opt` value: only `no-new-privileges` (which can only tighten) is free.
pub(crate) fn check_security_opt(value: &str, privileged: bool) -> Result<(), SpecError> {
    let v = value.trim();
    let (key, setting) = match v.split_once(['=', ':']) {
        Some((k, s)) => (k, Some(s)),
        None => (v, None),
    };
    if key == "no-new-privileges" {
        return match setting {
            None | Some("true" | "false") => Ok(()),
            Some(_) => Err(SpecError::BadParameter {
                key: "security-opt".to_owned(),
                value: value.to_owned(),
                reason: "expected no-new-privileges, no-new-privileges=true or =false".to_owned(),
            }),
        };
    }
    if privileged {
        return Ok(());
    }
    Err(not_allowed(
        format!("Docker parameter 'security-opt={value}'"),
        "security options other than no-new-privileges can weaken seccomp, AppArmor, SELinux \
         or the masked /proc paths",
        PRIVILEGED_FLAG.to_owned(),
    ))
}

/// Checks one `ulimit` name.
pub(crate) fn check_ulimit(value: &str, name: &str, privileged: bool) -> Result<(), SpecError> {
    if privileged || !PRIVILEGED_ULIMITS.contains(&name) {
        return Ok(());
    }
    Err(not_allowed(
        format!("Docker parameter 'ulimit={value}'"),
        "real-time scheduling limits let the container starve the host's CPUs",
        PRIVILEGED_FLAG.to_owned(),
    ))
}

/// Checks the network mode: joining another container's network namespace needs the operator.
pub(crate) fn check_network(mode: &str, privileged: bool) -> Result<(), SpecError> {
    if privileged || !mode.starts_with("container:") {
        return Ok(());
    }
    Err(not_allowed(
        format!("network mode '{mode}'"),
        "it joins another container's network namespace",
        PRIVILEGED_FLAG.to_owned(),
    ))
}

/// What a `DOCKER_VOLUME`'s driver and options amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VolumeKind {
    /// A volume Docker manages itself (no options, or `tmpfs`, or an allowed driver or type).
    Managed,
    /// `local` with `type=none`, `o=bind`, `device=<host path>`: a host-path bind in disguise.
    HostBind {
        /// The `device` option.
        device: String,
        /// `o` contains `ro`.
        read_only: bool,
    },
}

/// Classifies (and checks) a `DOCKER_VOLUME`'s driver and options.
pub(crate) fn check_volume(
    name: &str,
    driver: Option<&str>,
    options: &BTreeMap<String, String>,
    privileged: bool,
    allow: &Allowances,
) -> Result<VolumeKind, SpecError> {
    let what = || format!("Docker volume '{name}'");
    let driver = driver.unwrap_or("local");
    if driver != "local" {
        if privileged || allow.volume_drivers.contains(driver) {
            return Ok(VolumeKind::Managed);
        }
        return Err(not_allowed(
            format!("{} with driver '{driver}'", what()),
            "a volume plugin can mount anything it is able to reach on the host or the network",
            format!("--allowed-volume-driver {driver} (or {PRIVILEGED_FLAG})"),
        ));
    }
    if let Some(key) = options
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "o" | "device"))
    {
        return Err(SpecError::BadVolume {
            path: name.to_owned(),
            reason: format!(
                "driver option '{key}' is not one of the local driver's: type, o, device"
            ),
        });
    }
    let kind = options.get("type").map(|t| t.trim().to_owned());
    let opts: Vec<&str> = options
        .get("o")
        .map(|o| {
            o.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match kind.as_deref() {
        None if options.is_empty() => Ok(VolumeKind::Managed),
        None => Err(SpecError::BadVolume {
            path: name.to_owned(),
            reason: "driver options 'o' and 'device' need a 'type' (e.g. type=tmpfs)".to_owned(),
        }),
        Some("tmpfs") => {
            if let Some(bad) = opts.iter().find(|o| {
                let key = o.split_once('=').map_or(**o, |(k, _)| k);
                !TMPFS_OPTIONS.contains(&key)
            }) {
                return Err(SpecError::BadVolume {
                    path: name.to_owned(),
                    reason: format!(
                        "tmpfs option '{bad}' is not one of: {}",
                        TMPFS_OPTIONS.join(", ")
                    ),
                });
            }
            Ok(VolumeKind::Managed)
        }
        // Whatever the type: with `bind` the kernel ignores it and binds `device` (so an
        // operator's `--allowed-volume-type nfs` must not let `type=nfs,o=bind,device=/etc` in).
        Some(_) if opts.iter().any(|o| matches!(*o, "bind" | "rbind")) => {
            if let Some(bad) = opts
                .iter()
                .find(|o| !matches!(**o, "bind" | "rbind" | "ro" | "rw"))
            {
                return Err(SpecError::BadVolume {
                    path: name.to_owned(),
                    reason: format!(
                        "bind option '{bad}' is not supported (supported: bind, rbind, ro, rw)"
                    ),
                });
            }
            let device = options.get("device").map(|d| d.trim()).unwrap_or("");
            if !device.starts_with('/') {
                return Err(SpecError::BadVolume {
                    path: name.to_owned(),
                    reason: format!(
                        "a bind volume needs an absolute host path in 'device' (got '{device}')"
                    ),
                });
            }
            Ok(VolumeKind::HostBind {
                device: device.to_owned(),
                read_only: opts.contains(&"ro"),
            })
        }
        Some(t) => {
            if privileged || allow.volume_types.contains(t) {
                return Ok(VolumeKind::Managed);
            }
            Err(not_allowed(
                format!("{} with driver option 'type={t}'", what()),
                "the local driver would mount a host device, a network share or another \
                 file system on the host",
                format!("--allowed-volume-type {t} (or {PRIVILEGED_FLAG})"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn capabilities_beyond_dockers_default_need_the_operator() {
        let none = Allowances::default();
        for cap in ["CHOWN", "cap_net_raw", "Kill", "CAP_AUDIT_WRITE"] {
            check_cap_add(cap, cap, false, &none).unwrap();
        }
        for cap in [
            "SYS_ADMIN",
            "CAP_SYS_MODULE",
            "sys_ptrace",
            "NET_ADMIN",
            "BPF",
        ] {
            let err = check_cap_add(cap, cap, false, &none)
                .unwrap_err()
                .to_string();
            let norm = normalize_capability(cap);
            assert!(
                err.contains(&format!("'cap-add={cap}'"))
                    && err.contains(&format!("--allowed-capability {norm}")),
                "{err}"
            );
            check_cap_add(cap, cap, true, &none).unwrap();
        }
        let err = check_cap_add("ALL", "ALL", false, &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--allow-privileged"), "{err}");
        let mut allow = Allowances::default();
        allow.capabilities.insert("NET_ADMIN".into());
        check_cap_add("cap_net_admin", "cap_net_admin", false, &allow).unwrap();
        assert!(check_cap_add("SYS_ADMIN", "SYS_ADMIN", false, &allow).is_err());
        let err = check_cap_add("SYS_ADMINN", "SYS_ADMINN", true, &allow)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Linux capability"), "{err}");
    }

    #[test]
    fn security_options_other_than_no_new_privileges_need_the_operator() {
        for ok in [
            "no-new-privileges",
            "no-new-privileges=true",
            "no-new-privileges:true",
            "no-new-privileges=false",
        ] {
            check_security_opt(ok, false).unwrap();
        }
        for bad in [
            "seccomp=unconfined",
            "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}",
            "apparmor=unconfined",
            "label=disable",
            "label=type:spc_t",
            "systempaths=unconfined",
            "writable-cgroups=true",
        ] {
            let err = check_security_opt(bad, false).unwrap_err().to_string();
            assert!(
                err.contains(&format!("'security-opt={bad}'"))
                    && err.contains("--allow-privileged"),
                "{err}"
            );
            check_security_opt(bad, true).unwrap();
        }
        assert!(check_security_opt("no-new-privileges=maybe", true).is_err());
    }

    #[test]
    fn volumes_that_reach_the_host_need_the_operator() {
        let none = Allowances::default();
        let check = |driver: Option<&str>, o: &[(&str, &str)], allow: &Allowances| {
            check_volume("v", driver, &opts(o), false, allow)
        };
        assert_eq!(check(None, &[], &none).unwrap(), VolumeKind::Managed);
        assert_eq!(
            check(
                Some("local"),
                &[
                    ("type", "tmpfs"),
                    ("device", "tmpfs"),
                    ("o", "size=1m,uid=1000")
                ],
                &none
            )
            .unwrap(),
            VolumeKind::Managed
        );
        assert_eq!(
            check(
                Some("local"),
                &[("type", "none"), ("o", "bind,ro"), ("device", "/srv/x")],
                &none
            )
            .unwrap(),
            VolumeKind::HostBind {
                device: "/srv/x".into(),
                read_only: true
            }
        );
        for (o, want) in [
            (
                vec![
                    ("type", "nfs"),
                    ("o", "addr=10.0.0.1"),
                    ("device", ":/export"),
                ],
                "--allowed-volume-type nfs",
            ),
            (
                vec![("type", "ext4"), ("device", "/dev/vda1")],
                "--allowed-volume-type ext4",
            ),
            (
                vec![("type", "none"), ("o", "bind"), ("device", "rel")],
                "absolute",
            ),
            (
                vec![("type", "none"), ("o", "bind,suid"), ("device", "/srv")],
                "'suid'",
            ),
            (
                vec![("type", "tmpfs"), ("o", "size=1m,context=x")],
                "'context=x'",
            ),
            (vec![("device", "/dev/vda")], "need a 'type'"),
            (vec![("Type", "tmpfs")], "'Type'"),
        ] {
            let err = check(Some("local"), &o, &none).unwrap_err().to_string();
            assert!(err.contains(want), "{o:?}: {err}");
        }
        let err = check(Some("rexray"), &[], &none).unwrap_err().to_string();
        assert!(err.contains("--allowed-volume-driver rexray"), "{err}");
        let mut allow = Allowances::default();
        allow.volume_drivers.insert("rexray".into());
        allow.volume_types.insert("nfs".into());
        check(Some("rexray"), &[("anything", "goes")], &allow).unwrap();
        check(
            Some("local"),
            &[("type", "nfs"), ("o", "addr=1.2.3.4")],
            &allow,
        )
        .unwrap();
        // An allowed type does not make a bind safe: with `bind` the kernel ignores the type.
        for t in ["nfs", "ext4", "bind"] {
            assert_eq!(
                check(
                    Some("local"),
                    &[("type", t), ("o", "rbind"), ("device", "/etc")],
                    &allow
                )
                .unwrap(),
                VolumeKind::HostBind {
                    device: "/etc".into(),
                    read_only: false
                },
                "type={t}"
            );
        }
    }

    #[test]
    fn other_checks() {
        let none = Allowances::default();
        let err = check_device("/dev/vda:/dev/xvda", "/dev/vda", false, &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'device=/dev/vda:/dev/xvda'")
                && err.contains("--allowed-device /dev/vda"),
            "{err}"
        );
        let mut allow = Allowances::default();
        allow.devices.insert("/dev/fuse".into());
        check_device("/dev/fuse", "/dev/fuse", false, &allow).unwrap();
        check_ulimit("nofile=10:20", "nofile", false).unwrap();
        let err = check_ulimit("rtprio=99", "rtprio", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'ulimit=rtprio=99'"), "{err}");
        check_network("bridge", false).unwrap();
        let err = check_network("container:other", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'container:other'") && err.contains("--allow-privileged"),
            "{err}"
        );
    }
}
