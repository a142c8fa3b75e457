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

/// Every blob file under `blobs/sha256` of the layout at `layout`, with its name.
fn blob_files(layout: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    v.sort();
    v
}

/// The digest of the single layer of the synthetic image at `layout:t`.
fn first_layer(layout: &Path) -> String {
    let m: serde_json::Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{}:t", layout.display()),
    ])))
    .unwrap();
    m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

#[test]
fn a_source_blob_swapped_during_copies_never_lands_unverified() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src, "t", 1, 256 << 10, 11);
    let hex = first_layer(&src);
    let blob = src.join("blobs/sha256").join(&hex);
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[1000] ^= 0xff;

    // A racer renames a good and a tampered file over the source blob, again and again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, blob, spare) = (stop.clone(), blob.clone(), src.join("spare"));
        let (good, bad) = (good.clone(), bad.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for bytes in [&good, &bad] {
                    std::fs::write(&spare, bytes).unwrap();
                    std::fs::rename(&spare, &blob).unwrap();
                }
            }
            std::fs::write(&spare, &good).unwrap();
            std::fs::rename(&spare, &blob).unwrap();
        })
    };
    let mut succeeded = 0;
    for i in 0..60 {
        let dst = dir.path().join(format!("dst{i}"));
        let mut args = vec!["copy", "-q"];
        if i % 2 == 1 {
            args.push("--link");
        }
        let (s, d) = (
            format!("oci:{}:t", src.display()),
            format!("oci:{}:t", dst.display()),
        );
        args.extend([s.as_str(), d.as_str()]);
        let out = hoist(&args).output().unwrap();
        if !out.status.success() {
            continue;
        }
        succeeded += 1;
        for (name, path) in blob_files(&dst) {
            assert_eq!(
                hoist::Digest::sha256(&std::fs::read(&path).unwrap())
                    .hex()
                    .to_string(),
                name,
                "copy {i} ({args:?}) exited 0 with a blob whose bytes do not match its digest"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    eprintln!("{succeeded} of 60 racing copies succeeded, every one intact");
}

#[test]
fn copies_share_no_inode_with_the_source_unless_link_is_asked_and_safe() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src, "t", 1, 64 << 10, 12);
    let hex = first_layer(&src);
    let src_blob = src.join("blobs/sha256").join(&hex);
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let copy = |name: &str, link: bool| -> (PathBuf, String) {
        let dst = dir.path().join(name);
        let (s, d) = (
            format!("oci:{}:t", src.display()),
            format!("oci:{}:t", dst.display()),
        );
        let mut args = vec!["copy", "--progress", "none", &s, &d];
        if link {
            args.insert(1, "--link");
        }
        let out = hoist(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        (dst.join("blobs/sha256").join(&hex), stderr)
    };

    // By default: a copy of every blob, never the source's inode.
    let (blob, said) = copy("plain", false);
    assert_ne!(
        ino(&blob),
        ino(&src_blob),
        "a default copy must not hard-link"
    );
    assert_eq!(std::fs::metadata(&src_blob).unwrap().nlink(), 1);
    assert!(said.contains("2 blobs copied, 0 linked"), "{said}");
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        std::fs::read(&src_blob).unwrap()
    );

    // --link shares a file only this user can change...
    let (blob, said) = copy("linked", true);
    assert_eq!(ino(&blob), ino(&src_blob), "--link shares a safe file");
    assert!(said.contains("0 blobs copied, 2 linked"), "{said}");

    // ...but copies one that group or others can write...
    std::fs::set_permissions(&src_blob, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (blob, _) = copy("group-writable", true);
    assert_ne!(
        ino(&blob),
        ino(&src_blob),
        "--link must copy a group/other-writable file"
    );
    std::fs::set_permissions(&src_blob, std::fs::Permissions::from_mode(0o644)).unwrap();

    // ...or one owned by another user (root only can give it away).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&src_blob, Some(65534), Some(65534)).unwrap();
        let (blob, _) = copy("foreign-owner", true);
        assert_ne!(
            ino(&blob),
            ino(&src_blob),
            "--link must copy another user's file"
        );
        std::os::unix::fs::chown(&src_blob, Some(0), Some(0)).unwrap();
    } else {
        eprintln!("SKIPPED (part): another user's file needs root to make");
    }
}

#[test]
fn a_blob_that_is_a_symlink_in_a_local_source_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src, "t", 1, 64 << 10, 13);
    let hex = first_layer(&src);
    let d = dir.path().join("d");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:t", src.display()),
        &format!("dir:{}", d.display()),
    ]));
    let outside = dir.path().join("outside");
    for (source, blob) in [
        (
            format!("oci:{}:t", src.display()),
            src.join("blobs/sha256").join(&hex),
        ),
        (format!("dir:{}", d.display()), d.join(&hex)),
    ] {
        std::fs::rename(&blob, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &blob).unwrap();
        for link in [false, true] {
            let dst = dir.path().join(format!("dst-{}", link));
            let _ = std::fs::remove_dir_all(&dst);
            let target = format!("oci:{}:t", dst.display());
            let mut args = vec!["copy", "-q", source.as_str(), target.as_str()];
            if link {
                args.insert(1, "--link");
            }
            let out = run_bounded(&mut hoist(&args), Duration::from_secs(60));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains("symlink") && stderr.contains(&blob.display().to_string()),
                "{args:?}: the error must name the symlinked blob: {stderr}"
            );
            assert!(
                !dst.join("blobs/sha256").join(&hex).exists(),
                "{args:?}: nothing may land for a refused blob"
            );
        }
        std::fs::remove_file(&blob).unwrap();
        std::fs::rename(&outside, &blob).unwrap();
    }
}

#[test]
fn recompression_counts_its_layers_as_copied_and_reports_bytes_as_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src, "t", 4, 10 << 20, 14);
    let out = hoist(&[
        "copy",
        "--progress",
        "json",
        "--dest-compress-format",
        "gzip",
        &format!("oci:{}:t", src.display()),
        &format!("oci:{}:t", dir.path().join("dst").display()),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Four recompressed layers and the config: five blobs written by this copy, none linked.
    assert!(
        stderr.contains("5 blobs copied, 0 linked, 0 already present"),
        "{stderr}"
    );
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let m: serde_json::Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{}:t", src.display()),
    ])))
    .unwrap();
    for layer in m["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let of = |kind: &str| {
            events
                .iter()
                .position(|e| e["event"] == kind && e["digest"] == digest)
                .unwrap_or_else(|| panic!("no {kind} event for {digest}: {stderr}"))
        };
        let done = of("blob_done");
        assert_eq!(events[done]["how"], "copied", "{stderr}");
        // Bytes are reported while the layer is read, all of them before it is done.
        let progress: Vec<&serde_json::Value> = events[of("blob_started")..done]
            .iter()
            .filter(|e| e["event"] == "blob_progress" && e["digest"] == digest)
            .collect();
        assert!(
            progress.len() >= 2,
            "{digest}: progress must come as the layer is read: {stderr}"
        );
        assert_eq!(
            progress.last().unwrap()["done"],
            layer["size"],
            "{digest}: {stderr}"
        );
    }
}

#[test]
fn refused_copies_leave_no_trace_and_a_missing_platform_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    // A single linux/amd64 image, and an index over it and a linux/arm64 image.
    let single = dir.path().join("single");
    write_image(&single, "t", 1, 1000, 21);
    let multi = dir.path().join("multi");
    let mut entries = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let d = write_image(&multi, arch, 1, 1000, 30 + i as u64);
        let layout = hoist::layout::Layout::open(&multi).unwrap();
        let size = std::fs::metadata(layout.blob_path(&d)).unwrap().len();
        entries.push(serde_json::json!({"mediaType": hoist::media_type::OCI_MANIFEST,
            "digest": d.to_string(), "size": size, "platform": {"architecture": arch, "os": "linux"}}));
    }
    let layout = hoist::layout::Layout::open(&multi).unwrap();
    {
        let _lock = layout.lock().unwrap();
        // Pretty-printed, so that a subset (re-serialised) is a new index even when it keeps every entry.
        let index = serde_json::to_vec_pretty(&serde_json::json!({"schemaVersion": 2,
            "mediaType": hoist::media_type::OCI_INDEX, "manifests": entries}))
        .unwrap();
        let doc = hoist::document::Document::new(hoist::media_type::OCI_INDEX, index).unwrap();
        layout.write_bytes(doc.bytes()).unwrap();
        layout.set_tag(Some("multi"), &doc.descriptor()).unwrap();
    }
    let s = format!("oci:{}:t", single.display());
    let m = format!("oci:{}:multi", multi.display());

    let refused = |args: &[&str], code: i32, says: &[&str]| {
        for (n, target) in ["oci:{}:x", "dir:{}"].iter().enumerate() {
            let new = dir.path().join(format!("new-{n}"));
            let target = target.replace("{}", &new.display().to_string());
            let mut all = vec!["copy"];
            all.extend_from_slice(args);
            all.push(&target);
            let out = hoist(&all).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{all:?}: {stderr}");
            for word in says {
                assert!(
                    stderr.contains(word),
                    "{all:?}: must say {word:?}: {stderr}"
                );
            }
            assert!(
                !new.exists(),
                "{all:?}: a refused copy left {} behind",
                new.display()
            );
        }
    };
    // A platform the single image does not have: not found (2), naming the image's own platform.
    refused(
        &["--platform", "linux/arm64", &s],
        2,
        &["linux/amd64", "linux/arm64"],
    );
    refused(
        &["--platform", "linux/amd64", "--platform", "linux/arm64", &s],
        2,
        &["linux/amd64"],
    );
    // ...and one the index does not have.
    refused(&["--platform", "linux/s390x", &m], 2, &["linux/s390x"]);
    // index-only: of a single manifest, and into a destination that lacks the images.
    refused(&["--multi-arch", "index-only", &s], 1, &["index-only"]);
    refused(&["--multi-arch", "index-only", &m], 1, &["lacks manifests"]);
    // --preserve-digests against a subset, a recompression and a format change.
    refused(
        &[
            "--preserve-digests",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            &m,
        ],
        1,
        &["preserve-digests"],
    );
    refused(
        &["--preserve-digests", "--dest-compress-format", "zstd", &s],
        1,
        &["preserve-digests"],
    );
    refused(
        &["--preserve-digests", "--format", "v2s2", &s],
        1,
        &["preserve-digests"],
    );

    // The platform the image has is copied.
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--platform",
        "linux/amd64",
        &s,
        &format!("oci:{}:t", dir.path().join("ok").display()),
    ]));
}

#[test]
fn sync_between_layouts_copies_by_default_and_links_only_with_link() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src, "t", 1, 64 << 10, 15);
    let hex = first_layer(&src);
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    for (name, link) in [("plain", false), ("linked", true)] {
        let dst = dir.path().join(name);
        let (s, d) = (src.display().to_string(), dst.display().to_string());
        let mut args = vec!["sync", "--src", "oci", "--dest", "oci", &s, &d];
        if link {
            args.insert(1, "--link");
        }
        let out = hoist(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shared =
            ino(&dst.join("blobs/sha256").join(&hex)) == ino(&src.join("blobs/sha256").join(&hex));
        assert_eq!(
            shared, link,
            "{args:?}: shares the source's inode: {shared}"
        );
    }
}

#[test]
fn a_symlink_where_a_dir_destination_keeps_a_blob_is_not_taken_for_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image(&src, "t", 1, 64 << 10, 16);
    let hex = first_layer(&src);
    let d = dir.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    // Pointing at a file with other bytes: taken as present, the copy would name a wrong blob.
    std::fs::write(dir.path().join("elsewhere"), b"not the layer").unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), d.join(&hex)).unwrap();
    let out = hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:t", src.display()),
        &format!("dir:{}", d.display()),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("symlink") && stderr.contains(&hex),
        "the error must name the symlinked blob: {stderr}"
    );
    assert!(!d.join("manifest.json").exists(), "no manifest may name it");
}
