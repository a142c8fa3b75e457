//! The copy engine's safety: a full disk ends every pipeline of threads with its first error (never a
//! hang), local blobs land exactly as verified and never share an inode with the source by default,
//! refusals leave nothing behind, and recompression reports honest counts and progress.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::synth::{noise, write_image, write_tar_image};
use common::{hoist, run_ok};

/// A small tmpfs mounted for the life of the value (unmounted on drop), for disk-full faults.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs at `dir`; `None` (with a SKIPPED message) when not root or the mount
    /// fails, except under `CI=true`, where CI runs as root and a failure fails the test.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let ok = // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !ci,
                "mounting a tmpfs at {} failed under CI=true",
                dir.display()
            );
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs `cmd`, killing it and failing the test when it takes longer than `limit` (a hang).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// Asserts that `cmd` fails (exit 1) within a bounded time with a disk-full error naming a path
/// inside `full`.
fn assert_disk_full(cmd: &mut Command, full: &Path) {
    let out = run_bounded(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{cmd:?}: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{cmd:?}: {stderr}");
    let cause = stderr
        .lines()
        .find(|l| l.contains("No space left on device"))
        .unwrap_or_else(|| panic!("{cmd:?}: the error must be the disk-full one: {stderr}"));
    assert!(
        cause.contains(&full.display().to_string()),
        "{cmd:?}: the disk-full error must name the path written: {stderr}"
    );
}

#[test]
fn a_full_disk_ends_every_encoding_pipeline_with_its_error_and_the_layout_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let Some(_mount) = Tmpfs::mount(&full, "2m") else {
        return;
    };
    let p = |n: &str| dir.path().join(n).display().to_string();
    // A small real image, and one whose two noise layers are far bigger than the tmpfs.
    write_tar_image(&dir.path().join("small"), "t", &[("etc/motd", b"hello\n")]);
    write_image(&dir.path().join("big"), "t", 2, 12 << 20, 7);
    let layout = full.join("layout");
    let l = layout.display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:t", p("small")),
        &format!("oci:{l}:t"),
    ]));
    let verify = || run_ok(&mut hoist(&["verify", "--all", &format!("oci:{l}")]));

    // Recompression into the layout, gzip (the block-parallel encoder) and zstd.
    for format in ["gzip", "zstd"] {
        assert_disk_full(
            &mut hoist(&[
                "copy",
                "-q",
                "--dest-compress-format",
                format,
                &format!("oci:{}:t", p("big")),
                &format!("oci:{l}:{format}"),
            ]),
            &full,
        );
        verify();
    }

    // A docker-archive (plain layers) into the layout: gzip-compressed on the way, as skopeo does.
    let archive = p("big.tar");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:t", p("big")),
        &format!("docker-archive:{archive}:big:t"),
    ]));
    assert_disk_full(
        &mut hoist(&[
            "copy",
            "-q",
            &format!("docker-archive:{archive}"),
            &format!("oci:{l}:docker"),
        ]),
        &full,
    );
    verify();

    // repack of a tree with a big new file, into the layout on the full disk.
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{}:t", p("small")),
        bundle.to_str().unwrap(),
    ]));
    std::fs::write(bundle.join("rootfs/big"), noise(24 << 20, 3)).unwrap();
    assert_disk_full(
        &mut hoist(&[
            "repack",
            "--progress",
            "none",
            bundle.to_str().unwrap(),
            "--tag",
            "repacked",
            "--dest",
            &format!("oci:{l}"),
        ]),
        &full,
    );
    verify();

    // diff -o onto the full disk.
    let (before, after) = (dir.path().join("before"), dir.path().join("after"));
    std::fs::create_dir_all(&before).unwrap();
    std::fs::create_dir_all(&after).unwrap();
    std::fs::write(after.join("big"), noise(24 << 20, 4)).unwrap();
    assert_disk_full(
        &mut hoist(&[
            "diff",
            before.to_str().unwrap(),
            after.to_str().unwrap(),
            "-o",
            full.join("layer.tar.gz").to_str().unwrap(),
        ]),
        &full,
    );
    verify();
}
