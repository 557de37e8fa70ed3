//! Two instances of Debian's `docker-registry` on 127.0.0.1: one open, one behind htpasswd basic auth.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{self, Result};

/// One registry instance the test bed runs.
pub struct Registry {
    /// Short name, used for its folder (`registry-<name>`).
    pub name: &'static str,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Credentials, when the instance requires basic auth.
    pub auth: Option<(String, String)>,
}

impl Registry {
    fn dir(&self, state: &Path) -> PathBuf {
        state.join(format!("registry-{}", self.name))
    }

    fn pid_file(&self, state: &Path) -> PathBuf {
        self.dir(state).join("pid")
    }

    /// The HTTP status `/v2/` answers: 200 when open, 401 when auth is required, None when down.
    fn probe(&self) -> Option<u16> {
        util::http_status(&self.addr, "GET", "/v2/", &[])
    }

    fn answers(&self) -> bool {
        let want = if self.auth.is_some() { 401 } else { 200 };
        self.probe() == Some(want)
    }

    fn running_pid(&self, state: &Path) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file(state))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        util::process_alive(pid, "docker-registry").then_some(pid)
    }

    /// Starts the instance unless ours already runs; refuses a port held by something else.
    pub fn up(&self, state: &Path) -> Result<()> {
        if self.running_pid(state).is_some() && self.answers() {
            util::step(format!(
                "registry {} already up on {}",
                self.name, self.addr
            ));
            return Ok(());
        }
        if self.probe().is_some() && reap_stale_registries() > 0 {
            util::wait_until(Duration::from_secs(5), || self.probe().is_none());
        }
        if self.probe().is_some() {
            return Err(format!(
                "port {} is taken by another program (it answers HTTP but is not the test bed's \
                 registry); stop it or free the port",
                self.addr
            ));
        }
        let dir = self.dir(state);
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let config = dir.join("config.yml");
        std::fs::write(&config, self.config(&dir)?)
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let log_path = dir.join("registry.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        use std::os::unix::process::CommandExt;
        // A process group of its own: the registry must outlive this xtask run and the terminal it came from.
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start docker-registry: {e}"))?;
        std::fs::write(self.pid_file(state), child.id().to_string()).map_err(|e| e.to_string())?;
        if !util::wait_until(Duration::from_secs(20), || self.answers()) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "registry {} did not answer on {} within 20s; its log ({}):\n{}",
                self.name,
                self.addr,
                log_path.display(),
                log.lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        util::step(format!(
            "registry {} up on {} (pid {})",
            self.name,
            self.addr,
            child.id()
        ));
        Ok(())
    }

    fn config(&self, dir: &Path) -> Result<String> {
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {}\n",
            dir.join("data").display(),
            self.addr
        );
        if let Some((user, password)) = &self.auth {
            let htpasswd = dir.join("htpasswd");
            let hash = bcrypt::hash(password, 6).map_err(|e| format!("bcrypt: {e}"))?;
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).map_err(|e| e.to_string())?;
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-testbed\n    path: {}\n",
                htpasswd.display()
            ));
        }
        Ok(cfg)
    }

    /// Stops our instance (never another program's) and removes its folder.
    pub fn down(&self, state: &Path) {
        if let Some(pid) = self.running_pid(state) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            util::wait_until(Duration::from_secs(5), || {
                !util::process_alive(pid, "docker-registry")
            });
            util::step(format!("registry {} stopped", self.name));
        }
        let _ = std::fs::remove_dir_all(self.dir(state));
    }

    /// One line for `testbed status`.
    pub fn status(&self, state: &Path) -> String {
        match (self.running_pid(state), self.answers()) {
            (Some(pid), true) => {
                format!("registry {:5} up on {} (pid {pid})", self.name, self.addr)
            }
            (Some(pid), false) => format!(
                "registry {:5} runs (pid {pid}) but does not answer on {}",
                self.name, self.addr
            ),
            (None, _) => format!("registry {:5} down", self.name),
        }
    }

    /// True when `repository:tag` is in this registry (a manifest HEAD answers 200).
    pub fn has(&self, image: &str) -> bool {
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let mut headers = vec![(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )];
        let basic;
        if let Some((user, password)) = &self.auth {
            use base64::Engine;
            basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            headers.push(("Authorization", basic.as_str()));
        }
        util::http_status(
            &self.addr,
            "HEAD",
            &format!("/v2/{repo}/manifests/{tag}"),
            &headers,
        ) == Some(200)
    }
}

/// Stops test-bed registries whose folder was deleted under them (a removed checkout's test bed):
/// they hold the ports but no one can reach their data or stop them through a pid file.
/// Returns how many it stopped. Registries with a config file that still exists are left alone.
fn reap_stale_registries() -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_testbed_registry = args.first().is_some_and(|a| a.ends_with("docker-registry"))
            && args.get(1).is_some_and(|a| a == "serve")
            && args
                .get(2)
                .is_some_and(|c| c.contains("/.testbed/registry-"));
        if is_testbed_registry && !Path::new(&args[2]).exists() {
            util::step(format!(
                "stopping stale test-bed registry (pid {pid}): {} is gone",
                args[2]
            ));
            let _ = Command::new("kill").arg(pid.to_string()).status();
            reaped += 1;
        }
    }
    reaped
}
