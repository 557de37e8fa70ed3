//! Root file systems for test images, built offline from Debian's `busybox-static`.
//!
//! `cargo xtask testbed up` imports them as the test images; tests that exercise image import
//! itself build one here instead of keeping a copy of this code.

use std::process::Command;

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Fixed modification time, so that the same inputs give the same tarball.
const MTIME: u64 = 1_700_000_000;

/// A rootfs tarball: busybox with every applet linked, `/etc/passwd` with `root` and `nobody`, the
/// usual empty folders, and optionally `extra` = (path, size) of random bytes.
pub fn busybox_rootfs(extra: Option<(&str, usize)>) -> Result<Vec<u8>, String> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| format!("cannot read {BUSYBOX}: {e}"))?;
    let list = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("cannot run {BUSYBOX} --list-full: {e}"))?;
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();

    let mut tar = tar::Builder::new(Vec::with_capacity(
        busybox.len() + extra.map_or(0, |e| e.1) + (1 << 20),
    ));
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("home", 0o755),
        ("tmp", 0o1777),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
        ("mnt", 0o755),
        ("run", 0o755),
        ("data", 0o755),
    ] {
        append(&mut tar, tar::EntryType::Directory, dir, mode, &[], None)?;
    }
    append(
        &mut tar,
        tar::EntryType::Regular,
        "bin/busybox",
        0o755,
        &busybox,
        None,
    )?;
    append(
        &mut tar,
        tar::EntryType::Regular,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        None,
    )?;
    append(
        &mut tar,
        tar::EntryType::Regular,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
        None,
    )?;
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "bin/busybox")
    {
        append(
            &mut tar,
            tar::EntryType::Symlink,
            applet,
            0o777,
            &[],
            Some("/bin/busybox"),
        )?;
    }
    if let Some((path, size)) = extra {
        use rand::RngCore;
        let mut data = vec![0u8; size];
        rand::thread_rng().fill_bytes(&mut data);
        append(&mut tar, tar::EntryType::Regular, path, 0o644, &data, None)?;
    }
    tar.into_inner()
        .map_err(|e| format!("cannot finish the rootfs tarball: {e}"))
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    mode: u32,
    data: &[u8],
    link: Option<&str>,
) -> Result<(), String> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(data.len() as u64);
    if let Some(target) = link {
        header
            .set_link_name(target)
            .map_err(|e| format!("link {path}: {e}"))?;
    }
    tar.append_data(&mut header, path, data)
        .map_err(|e| format!("cannot add {path} to the rootfs: {e}"))
}
