//! The offline default image of `berth run`: built from the host's own binaries and imported
//! into Docker, so a fresh machine with Docker and no registry can run containers.
//!
//! With a busybox on the host (`/bin/busybox`, Debian's busybox-static), the image is that
//! binary plus a link per applet. Without one, it is the host's `/bin/sh` and a set of common
//! tools. Either way, every dynamically linked binary brings the shared libraries and loader
//! `ldd` names, at the paths it names, so the result runs anywhere the host's kernel does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_docker_api::{Docker, ImportOptions};

use crate::error::Error;

/// The repository of the default image.
pub const DEFAULT_REPO: &str = "berth-local/base";

/// The default image's reference: `berth-local/base:<berth version>`.
pub fn default_image() -> String {
    format!("{DEFAULT_REPO}:{}", env!("CARGO_PKG_VERSION"))
}

/// Busybox locations tried in order.
const BUSYBOX: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Tools copied when there is no busybox (those missing on the host are skipped).
const TOOLS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "true", "false", "env", "id", "mkdir", "rm", "cp", "mv",
    "head", "tail", "wc", "grep", "sed", "date", "uname", "printf", "test", "touch", "chmod", "ln",
    "pwd", "dd", "seq", "yes", "kill", "sort", "tr", "cut", "basename", "dirname", "stat", "tee",
    "hostname",
];

/// What goes into the image: files by their path in the image, and symlinks.
#[derive(Debug, Default)]
pub struct RootFs {
    /// Image path -> host file whose bytes it gets.
    pub files: BTreeMap<String, PathBuf>,
    /// Image path -> link target.
    pub links: BTreeMap<String, String>,
    /// Where the content came from (for logs).
    pub source: String,
}

/// Whether an ELF file asks for a program interpreter (is dynamically linked). Reads the program
/// headers for `PT_INTERP`; a file that is not 64-bit little-endian ELF counts as static.
pub fn is_dynamic(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap_or([0; 8])) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or([0; 4])) == PT_INTERP)
    })
}

/// The libraries (and loader) `ldd` output names, as absolute paths.
pub fn parse_ldd(output: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let candidate = match line.split_once("=>") {
            Some((_, rhs)) => rhs.trim(),
            None => line,
        };
        let path = candidate.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            out.push(path.to_owned());
        }
    }
    out
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/bin", "/usr/bin", "/sbin", "/usr/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn add_libraries(root: &mut RootFs, binary: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(binary).map_err(|e| Error::io("read", binary, e))?;
    if !is_dynamic(&bytes) {
        return Ok(());
    }
    let out = Command::new("ldd").arg(binary).output().map_err(|e| {
        Error::startup(
            format!(
                "'{}' is dynamically linked and `ldd` cannot run: {e}",
                binary.display()
            ),
            "install busybox-static (`apt-get install busybox-static`), or pass --image",
        )
    })?;
    for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
        let real =
            std::fs::canonicalize(&lib).map_err(|e| Error::io("resolve library", &lib, e))?;
        root.files.insert(lib, real);
    }
    Ok(())
}

/// Gathers the image's content from this host.
pub fn collect_rootfs() -> Result<RootFs, Error> {
    let mut root = RootFs::default();
    if let Some(busybox) = BUSYBOX.iter().map(Path::new).find(|p| p.is_file()) {
        let real = std::fs::canonicalize(busybox).map_err(|e| Error::io("resolve", busybox, e))?;
        root.files.insert("/bin/busybox".into(), real.clone());
        add_libraries(&mut root, &real)?;
        let list = Command::new(&real)
            .arg("--list")
            .output()
            .map_err(|e| Error::io("run", &real, e))?;
        for applet in String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            if applet != "busybox" && !applet.contains('/') {
                root.links
                    .insert(format!("/bin/{applet}"), "busybox".into());
            }
        }
        if !root.links.contains_key("/bin/sh") {
            root.links.insert("/bin/sh".into(), "busybox".into());
        }
        root.source = format!("{} ({} applets)", busybox.display(), root.links.len());
        return Ok(root);
    }
    let mut found = Vec::new();
    for tool in TOOLS {
        if let Some(path) = which(tool) {
            let real = std::fs::canonicalize(&path).map_err(|e| Error::io("resolve", &path, e))?;
            root.files.insert(format!("/bin/{tool}"), real.clone());
            add_libraries(&mut root, &real)?;
            found.push(*tool);
        }
    }
    if !root.files.contains_key("/bin/sh") {
        return Err(Error::startup(
            "cannot build the default image: this host has neither busybox nor /bin/sh",
            "install busybox-static (`apt-get install busybox-static`), or pass --image",
        ));
    }
    root.source = format!("host tools ({})", found.join(" "));
    Ok(root)
}

/// The rootfs as an uncompressed tarball, with `/etc/passwd`, `/etc/group` and the usual
/// directories.
pub fn rootfs_tar(root: &RootFs) -> Result<Vec<u8>, Error> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |path: &str, kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let _ = h.set_path(path.trim_start_matches('/'));
        h
    };
    let io = |e: std::io::Error| Error::io("build image tarball", "(memory)", e);
    let mut dirs: Vec<String> = [
        "/bin", "/etc", "/tmp", "/root", "/proc", "/sys", "/dev", "/mnt", "/var", "/usr",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for path in root.files.keys().chain(root.links.keys()) {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| d != &Path::new("/")) {
            dirs.push(d.display().to_string());
            p = d.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        let mode = if d == "/tmp" { 0o1777 } else { 0o755 };
        let mut h = header(d, tar::EntryType::Directory, mode, 0);
        h.set_cksum();
        b.append(&h, std::io::empty()).map_err(io)?;
    }
    for (path, host) in &root.files {
        let bytes = std::fs::read(host).map_err(|e| Error::io("read", host, e))?;
        let mut h = header(path, tar::EntryType::Regular, 0o755, bytes.len() as u64);
        h.set_cksum();
        b.append(&h, bytes.as_slice()).map_err(io)?;
    }
    for (path, target) in &root.links {
        let mut h = header(path, tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name(target).map_err(io)?;
        h.set_cksum();
        b.append(&h, std::io::empty()).map_err(io)?;
    }
    let etc: [(&str, &str); 2] = [
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ];
    for (path, text) in etc {
        let mut h = header(path, tar::EntryType::Regular, 0o644, text.len() as u64);
        h.set_cksum();
        b.append(&h, text.as_bytes()).map_err(io)?;
    }
    b.into_inner().map_err(io)
}

/// Makes sure `berth-local/base:<version>` exists in the daemon, building and importing it if
/// not; returns its reference.
pub async fn ensure_default_image(docker: &Docker) -> Result<String, Error> {
    let reference = default_image();
    if docker.images().inspect(&reference).await.is_ok() {
        return Ok(reference);
    }
    let (root, tarball) = tokio::task::spawn_blocking(|| -> Result<(RootFs, Vec<u8>), Error> {
        let root = collect_rootfs()?;
        let tar = rootfs_tar(&root)?;
        Ok((root, tar))
    })
    .await
    .map_err(|e| Error::Containerizer(format!("image build task failed: {e}")))??;
    tracing::info!(image = %reference, source = %root.source, bytes = tarball.len(), "building the default image");
    let options = ImportOptions {
        repo: Some(DEFAULT_REPO.to_owned()),
        tag: Some(env!("CARGO_PKG_VERSION").to_owned()),
        changes: vec![
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            "CMD [\"/bin/sh\"]".to_owned(),
            "LABEL io.berth.image=base".to_owned(),
        ],
        message: Some(format!("berth default image from {}", root.source)),
        platform: None,
    };
    docker.images().import(tarball, &options).await?;
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibgone.so => not found\n";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn elf_linkage_is_detected() {
        let sh = std::fs::read(std::fs::canonicalize("/bin/sh").unwrap()).unwrap();
        assert!(is_dynamic(&sh), "Debian's /bin/sh is dynamically linked");
        assert!(!is_dynamic(b"#!/bin/sh\necho hi\n"));
        if let Ok(bb) = std::fs::read("/bin/busybox") {
            assert!(!is_dynamic(&bb), "busybox-static is static");
        }
    }

    #[test]
    fn the_rootfs_has_a_shell_and_its_libraries() {
        let root = collect_rootfs().unwrap();
        assert!(
            root.files.contains_key("/bin/sh") || root.links.contains_key("/bin/sh"),
            "{root:?}"
        );
        let tar = rootfs_tar(&root).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"bin/sh".to_owned()), "{names:?}");
        assert!(names.contains(&"etc/passwd".to_owned()));
        assert!(names.contains(&"tmp".to_owned()));
    }

    #[test]
    fn without_busybox_host_tools_bring_their_libraries() {
        let mut root = RootFs::default();
        add_libraries(&mut root, &std::fs::canonicalize("/bin/sh").unwrap()).unwrap();
        assert!(
            root.files.keys().any(|k| k.contains("libc.so")),
            "{:?}",
            root.files
        );
        assert!(
            root.files.keys().any(|k| k.contains("ld-linux")),
            "{:?}",
            root.files
        );
    }
}
