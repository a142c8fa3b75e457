//! Scratch space for fuzz targets that touch the filesystem: a per-process directory in `/dev/shm` when
//! there is one (creating and deleting small trees there costs no disk), else in the temp dir.
//! libFuzzer leaves through `exit`, which skips Rust destructors, so each process names its directory
//! after its pid and clears the directories of processes that are gone when it starts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// This process's scratch directory for `target` (created on first use).
pub fn dir(target: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = base();
        let prefix = format!("hoist-fuzz-{target}-");
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(&prefix) else {
                    continue;
                };
                if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        dir
    })
}
