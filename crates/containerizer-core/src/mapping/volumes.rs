//! Volumes to mounts, with Mesos's path rules and Berth's host-path allow list.
//!
//! - the sandbox is always bind-mounted read-write at the mapped sandbox directory;
//! - a relative host path lives inside the sandbox (never escaping it) and is created during
//!   MOUNTING if missing;
//! - a relative container path lives under the mapped sandbox directory;
//! - both relative is an error (Mesos's rule);
//! - an absolute host path must be under one of the roots the agent allows; here only its text is
//!   checked, MOUNTING resolves it beneath the root and pins it (see `crate::hostpath`);
//! - a DOCKER_VOLUME source becomes a named volume mount with its driver, if the caller policy
//!   allows the driver and its options (`super::policy::check_volume`); a `local` volume that
//!   binds a host path (`type=none`, `o=bind`, `device=PATH`) is a host path in disguise and is
//!   planned as one, under the same allow-list and the same pinning.
//!
//! Everything goes through the API's `Mounts`, so ':' in a path needs no workaround (Mesos had
//! to symlink sandboxes with ':' because the CLI's `-v a:b:mode` syntax splits on it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use super::create::{MountKind, MountSpec};
use super::policy::{self, Allowances, VolumeKind};
use super::SpecError;
use crate::spec::{Volume, VolumeMode, VolumeSource};

/// The mounts of a container and the host directories MOUNTING must create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumePlan {
    /// Mounts, the sandbox first.
    pub mounts: Vec<MountSpec>,
    /// Directories inside the sandbox to create before the container starts.
    pub sandbox_dirs: Vec<PathBuf>,
    /// Mounts of absolute host paths: MOUNTING resolves and pins each one and replaces the
    /// mount's source with the pin.
    pub host_binds: Vec<HostBind>,
    /// Named volumes the launch attaches (MOUNTING checks the ones that already exist).
    pub named_volumes: Vec<String>,
}

/// A mount of an absolute host path under an allowed root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBind {
    /// Its index in [`VolumePlan::mounts`].
    pub mount: usize,
    /// The host path asked for (absolute, without `..`).
    pub path: PathBuf,
}

/// Plans the mounts for `volumes`; `privileged` and `allow` are the operator's allowances for
/// volume drivers and types.
pub fn plan(
    volumes: &[Volume],
    sandbox: &Path,
    mapped: &str,
    allowed_roots: &[PathBuf],
    privileged: bool,
    allow: &Allowances,
) -> Result<VolumePlan, SpecError> {
    let mut plan = VolumePlan::default();
    plan.mounts.push(MountSpec {
        kind: MountKind::Bind,
        source: sandbox.to_string_lossy().into_owned(),
        target: mapped.to_owned(),
        read_only: false,
        driver: None,
        driver_options: BTreeMap::new(),
        volume_labels: BTreeMap::new(),
    });
    // One Docker volume is created once: two mounts of it must agree on how.
    type Driver<'a> = (&'a Option<String>, &'a BTreeMap<String, String>);
    let mut drivers: BTreeMap<&str, Driver<'_>> = BTreeMap::new();
    for v in volumes {
        let container_rel = !v.container_path.starts_with('/');
        let target = if container_rel {
            let rel =
                relative_inside(&v.container_path).map_err(|reason| SpecError::BadVolume {
                    path: v.container_path.clone(),
                    reason,
                })?;
            format!("{}/{}", mapped.trim_end_matches('/'), rel.display())
        } else {
            if has_parent(Path::new(&v.container_path)) {
                return Err(SpecError::BadVolume {
                    path: v.container_path.clone(),
                    reason: "'..' is not allowed".into(),
                });
            }
            v.container_path.clone()
        };
        let read_only = v.mode == VolumeMode::Ro;
        let mount = match (&v.source, &v.host_path) {
            (
                Some(VolumeSource::DockerVolume {
                    name,
                    driver,
                    driver_options,
                }),
                _,
            ) => {
                if name.is_empty() {
                    return Err(SpecError::BadVolume {
                        path: v.container_path.clone(),
                        reason: "the Docker volume name is empty".into(),
                    });
                }
                let kind = policy::check_volume(
                    name,
                    driver.as_deref(),
                    driver_options,
                    privileged,
                    allow,
                )?;
                if let VolumeKind::HostBind {
                    device,
                    read_only: ro,
                } = kind
                {
                    let source = allowed_host_path(&device, allowed_roots).map_err(|e| {
                        SpecError::BadVolume {
                            path: name.clone(),
                            reason: format!(
                                "its driver options bind host path '{device}', which is \
                                 treated as a host_path volume: {e}"
                            ),
                        }
                    })?;
                    plan.host_binds.push(HostBind {
                        mount: plan.mounts.len(),
                        path: source.clone(),
                    });
                    plan.mounts.push(bind(source, target, read_only || ro));
                    continue;
                }
                match drivers.get(name.as_str()) {
                    Some((first, _)) if *first != driver => {
                        return Err(SpecError::ConflictingVolumeDrivers {
                            name: name.clone(),
                            first: (*first).clone().unwrap_or_else(|| "local".into()),
                            second: driver.clone().unwrap_or_else(|| "local".into()),
                        })
                    }
                    Some((_, first)) if *first != driver_options => {
                        return Err(SpecError::ConflictingVolumeOptions {
                            name: name.clone(),
                            first: options_text(first),
                            second: options_text(driver_options),
                        })
                    }
                    Some(_) => {}
                    None => {
                        drivers.insert(name, (driver, driver_options));
                        plan.named_volumes.push(name.clone());
                    }
                };
                MountSpec {
                    kind: MountKind::Volume,
                    source: name.clone(),
                    target,
                    read_only,
                    driver: driver.clone(),
                    driver_options: driver_options.clone(),
                    volume_labels: BTreeMap::new(),
                }
            }
            (None, None) => {
                return Err(SpecError::NoVolumeSource {
                    container_path: v.container_path.clone(),
                })
            }
            (None, Some(host)) => {
                let source = if host.starts_with('/') {
                    let source = allowed_host_path(host, allowed_roots)?;
                    plan.host_binds.push(HostBind {
                        mount: plan.mounts.len(),
                        path: source.clone(),
                    });
                    source
                } else {
                    if container_rel {
                        return Err(SpecError::BothPathsRelative {
                            host: host.clone(),
                            container: v.container_path.clone(),
                        });
                    }
                    let rel = relative_inside(host).map_err(|reason| SpecError::BadVolume {
                        path: host.clone(),
                        reason,
                    })?;
                    let dir = sandbox.join(rel);
                    plan.sandbox_dirs.push(dir.clone());
                    dir
                };
                bind(source, target, read_only)
            }
        };
        plan.mounts.push(mount);
    }
    let mut seen = BTreeSet::new();
    for m in &plan.mounts {
        if !seen.insert(m.target.trim_end_matches('/').to_owned()) {
            return Err(SpecError::BadVolume {
                path: m.target.clone(),
                reason: "two volumes are mounted at this path".into(),
            });
        }
    }
    Ok(plan)
}

fn bind(source: PathBuf, target: String, read_only: bool) -> MountSpec {
    MountSpec {
        kind: MountKind::Bind,
        source: source.to_string_lossy().into_owned(),
        target,
        read_only,
        driver: None,
        driver_options: BTreeMap::new(),
        volume_labels: BTreeMap::new(),
    }
}

/// The text check of an absolute host path: no `..`, under an allowed root. (Links are dealt
/// with at MOUNTING, beneath the root's open directory.)
fn allowed_host_path(host: &str, allowed_roots: &[PathBuf]) -> Result<PathBuf, SpecError> {
    let p = Path::new(host);
    if has_parent(p) {
        return Err(SpecError::BadVolume {
            path: host.to_owned(),
            reason: "'..' is not allowed".into(),
        });
    }
    if !allowed_roots.iter().any(|root| p.starts_with(root)) {
        return Err(SpecError::HostPathNotAllowed {
            path: host.to_owned(),
            allowed: if allowed_roots.is_empty() {
                "none (absolute host paths are disabled; the operator allows a root with \
                 --allowed-host-path DIR)"
                    .into()
            } else {
                allowed_roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    Ok(p.to_path_buf())
}

/// Driver options as `k=v,k=v` for messages.
fn options_text(options: &BTreeMap<String, String>) -> String {
    if options.is_empty() {
        return "none".to_owned();
    }
    options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn has_parent(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

/// A relative path that stays inside its base: no `..`, no root, not empty.
fn relative_inside(path: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("'..' would leave the sandbox".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("expected a relative path".into())
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err("the path is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPPED: &str = "/mnt/mesos/sandbox";

    /// What a caller may plan without any operator allowance.
    fn plan(
        volumes: &[Volume],
        sandbox: &Path,
        mapped: &str,
        roots: &[PathBuf],
    ) -> Result<VolumePlan, SpecError> {
        super::plan(
            volumes,
            sandbox,
            mapped,
            roots,
            false,
            &Allowances::default(),
        )
    }

    fn dvol(target: &str, name: &str, driver: Option<&str>, opts: &[(&str, &str)]) -> Volume {
        Volume {
            container_path: target.into(),
            host_path: None,
            mode: VolumeMode::Rw,
            source: Some(VolumeSource::DockerVolume {
                name: name.into(),
                driver: driver.map(Into::into),
                driver_options: opts
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
        }
    }

    /// Issue 11 item 5: a `local` volume binding a host directory is a host path: refused
    /// outside the allowed roots, planned (and later pinned) as a bind inside them.
    #[test]
    fn bind_volumes_are_host_paths() {
        let bind = |device: &str, o: &str| {
            dvol(
                "/h",
                "v",
                Some("local"),
                &[("type", "none"), ("o", o), ("device", device)],
            )
        };
        let err = plan(&[bind("/etc", "bind")], Path::new("/sb"), MAPPED, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'/etc'") && err.contains("--allowed-host-path"),
            "{err}"
        );
        let roots = [PathBuf::from("/srv")];
        for bad in ["/srv/../etc", "/srvx"] {
            assert!(plan(&[bind(bad, "bind")], Path::new("/sb"), MAPPED, &roots).is_err());
        }
        let p = plan(
            &[bind("/srv/data", "rbind,ro")],
            Path::new("/sb"),
            MAPPED,
            &roots,
        )
        .unwrap();
        assert_eq!(p.mounts[1].kind, MountKind::Bind);
        assert_eq!(p.mounts[1].source, "/srv/data");
        assert!(p.mounts[1].read_only);
        assert_eq!(
            p.host_binds,
            [HostBind {
                mount: 1,
                path: "/srv/data".into()
            }]
        );
        assert!(p.named_volumes.is_empty(), "no Docker volume is made");
        // Even with every other allowance.
        let all = Allowances {
            volume_types: ["none".to_owned()].into(),
            ..Allowances::default()
        };
        assert!(super::plan(
            &[bind("/etc", "bind")],
            Path::new("/sb"),
            MAPPED,
            &[],
            true,
            &all
        )
        .is_err());
    }

    #[test]
    fn host_reaching_volume_options_need_the_operator() {
        for (driver, opts, flag) in [
            (
                Some("local"),
                vec![
                    ("type", "nfs"),
                    ("o", "addr=127.0.0.1,rw"),
                    ("device", ":/export"),
                ],
                "--allowed-volume-type nfs",
            ),
            (
                Some("local"),
                vec![("type", "ext4"), ("device", "/dev/vda1")],
                "--allowed-volume-type ext4",
            ),
            (Some("convoy"), vec![], "--allowed-volume-driver convoy"),
        ] {
            let v = dvol("/v", "v", driver, &opts);
            let err = plan(std::slice::from_ref(&v), Path::new("/sb"), MAPPED, &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag) && err.contains("'v'"), "{err}");
        }
        let p = plan(
            &[dvol("/v", "v", None, &[]), dvol("/w", "v", None, &[])],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap();
        assert_eq!(p.named_volumes, ["v"], "checked once at MOUNTING");
    }

    fn vol(container: &str, host: Option<&str>, mode: VolumeMode) -> Volume {
        Volume {
            container_path: container.into(),
            host_path: host.map(Into::into),
            mode,
            source: None,
        }
    }

    #[test]
    fn sandbox_always_mounted_first_even_with_colon() {
        let p = plan(&[], Path::new("/work/sb:colon"), MAPPED, &[]).unwrap();
        assert_eq!(p.mounts.len(), 1);
        assert_eq!(p.mounts[0].source, "/work/sb:colon");
        assert_eq!(p.mounts[0].target, MAPPED);
        assert!(!p.mounts[0].read_only);
    }

    #[test]
    fn relative_host_path_is_in_the_sandbox_and_prepared() {
        let p = plan(
            &[vol("/data", Some("cache/dir"), VolumeMode::Ro)],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap();
        assert_eq!(p.mounts[1].source, "/sb/cache/dir");
        assert_eq!(p.mounts[1].target, "/data");
        assert!(p.mounts[1].read_only);
        assert_eq!(p.sandbox_dirs, [PathBuf::from("/sb/cache/dir")]);
    }

    #[test]
    fn relative_container_path_is_under_the_mapped_sandbox() {
        let roots = [PathBuf::from("/srv")];
        let p = plan(
            &[vol("inner", Some("/srv/data"), VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &roots,
        )
        .unwrap();
        assert_eq!(p.mounts[1].target, "/mnt/mesos/sandbox/inner");
        assert_eq!(p.mounts[1].source, "/srv/data");
        assert!(p.sandbox_dirs.is_empty());
    }

    #[test]
    fn both_relative_is_refused() {
        let err = plan(
            &[vol("a", Some("b"), VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Both host_path 'b' and container_path 'a'"),
            "{err}"
        );
    }

    #[test]
    fn absolute_host_path_needs_an_allowed_root() {
        let err = plan(
            &[vol("/x", Some("/etc"), VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("'/etc'") && err.to_string().contains("disabled"),
            "{err}"
        );
        let roots = [PathBuf::from("/srv"), PathBuf::from("/data")];
        let err = plan(
            &[vol("/x", Some("/srvx/a"), VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &roots,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/srv, /data"), "{err}");
        let err = plan(
            &[vol("/x", Some("/srv/../etc"), VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &roots,
        )
        .unwrap_err();
        assert!(err.to_string().contains(".."), "{err}");
    }

    #[test]
    fn escapes_and_duplicates_are_refused() {
        let err = plan(
            &[vol("/x", Some("../up"), VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("leave the sandbox"), "{err}");
        let err = plan(
            &[vol("/x", None, VolumeMode::Rw)],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Host path or volume source is required"),
            "{err}"
        );
        let dup = [
            vol("/x", Some("a"), VolumeMode::Rw),
            vol("/x/", Some("b"), VolumeMode::Rw),
        ];
        let err = plan(&dup, Path::new("/sb"), MAPPED, &[]).unwrap_err();
        assert!(err.to_string().contains("two volumes"), "{err}");
    }

    #[test]
    fn docker_volumes_with_drivers() {
        let dv = |name: &str, driver: Option<&str>| {
            dvol(
                &format!("/v/{name}{}", driver.unwrap_or("")),
                name,
                driver,
                &[],
            )
        };
        let allow = Allowances {
            volume_drivers: ["nfs".to_owned()].into(),
            ..Allowances::default()
        };
        let plan = |v: &[Volume]| super::plan(v, Path::new("/sb"), MAPPED, &[], false, &allow);
        let p = plan(&[dv("a", None), dv("b", Some("nfs"))]).unwrap();
        assert_eq!(p.mounts[1].kind, MountKind::Volume);
        assert_eq!(p.mounts[2].driver.as_deref(), Some("nfs"));
        let err = plan(&[dv("a", None), dv("a", Some("nfs"))]).unwrap_err();
        assert!(
            err.to_string().contains("'a'") && err.to_string().contains("nfs"),
            "{err}"
        );
    }

    #[test]
    fn docker_volume_driver_options_are_kept_and_must_agree() {
        let dv = |target: &str, opts: &[(&str, &str)]| Volume {
            container_path: target.into(),
            host_path: None,
            mode: VolumeMode::Rw,
            source: Some(VolumeSource::DockerVolume {
                name: "scratch".into(),
                driver: Some("local".into()),
                driver_options: opts
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
        };
        let tmpfs = [("type", "tmpfs"), ("device", "tmpfs")];
        let p = plan(
            &[dv("/a", &tmpfs), dv("/b", &tmpfs)],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap();
        assert_eq!(p.mounts[1].driver_options["type"], "tmpfs");
        assert_eq!(p.mounts[2].driver_options["device"], "tmpfs");
        let err = plan(
            &[
                dv("/a", &tmpfs),
                dv("/b", &[("type", "tmpfs"), ("o", "size=1m")]),
            ],
            Path::new("/sb"),
            MAPPED,
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("'scratch'")
                && err.contains("device=tmpfs,type=tmpfs")
                && err.contains("o=size=1m,type=tmpfs"),
            "{err}"
        );
    }
}
