//! A private Docker daemon for the `docker-daemon:` tests: `dockerd` on a socket in a temp directory
//! (vfs storage, no network set-up), stopped by its PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private `dockerd`.
pub struct Dockerd {
    child: Child,
    /// `unix://DIR/docker.sock`, for `DOCKER_HOST` and `docker -H`.
    pub host: String,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts one, or says why it skipped and returns `None` when this machine cannot run it. A missing
    /// `dockerd` fails under `CI=true` (CI installs docker.io); a daemon that cannot start only skips.
    pub fn start() -> Option<Dockerd> {
        if !super::require_tool("dockerd") || !super::require_tool("docker") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("hd")
            .tempdir_in("/tmp")
            .ok()?;
        let d = dir.path().display().to_string();
        let log = std::fs::File::create(dir.path().join("log")).ok()?;
        let child = Command::new("dockerd")
            .args([
                "--host",
                &format!("unix://{d}/docker.sock"),
                "--data-root",
                &format!("{d}/root"),
                "--exec-root",
                &format!("{d}/exec"),
                "--pidfile",
                &format!("{d}/docker.pid"),
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--bridge=none",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().ok()?)
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED: dockerd cannot start here: {e}");
                return None;
            }
        };
        let daemon = Dockerd {
            child,
            host: format!("unix://{d}/docker.sock"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ok = daemon
                .docker(&["version", "--format", "{{.Server.APIVersion}}"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Some(daemon);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(daemon.dir.path().join("log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        eprintln!("SKIPPED: dockerd did not start here: {tail:?}");
        None
    }

    /// A `docker` command talking to this daemon.
    pub fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(["-H", &self.host]).args(args);
        c
    }

    /// A private scratch directory beside the daemon's.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Stopped by its PID (SIGTERM, then wait; SIGKILL if it hangs).
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
