//! What SIGINT and SIGTERM do to a running verb: the first cancels the verb through its
//! `CancelToken`, so it stops at its next check, removes its temp files, leaves its destination
//! valid (a layout keeps what it held; an unpack keeps its incomplete marker), says
//! `hoist: cancelled by SIGINT` and ends by the signal (a shell shows 130 / 143). A second signal,
//! or a verb that cannot see the token (a read blocked on a stalled connection), ends hoist at once
//! as before: temp files removed, death by the signal.
//!
//! The cancelled verbs read from the scripted fake registry, which trickles one blob (a byte every
//! 20 ms) so the transfer is visibly under way; the verb that cannot stop is a copy into an
//! `oci-archive:` FIFO nobody reads, blocked in opening it.

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fake_registry::{FakeServer, LayoutImage, Reply, serve_layout, small_image};
use common::{hoist, require_tool, run_ok};

/// hoist's temp files and directories anywhere below `dir`.
fn temp_entries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".hoist-tmp-") {
                found.push(e.path());
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    found
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` at most 60 s (killing it and failing past that): a hang is the bug. Returns
/// its status and what it wrote on stderr.
fn finish(mut child: Child, what: &str) -> (ExitStatus, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// The status a shell shows for `status`: the exit code, or 128 + the signal that ended it.
fn shell_status(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The layer digests of the image `img` serves (`sha256:...`), in order.
fn layer_digests(img: &LayoutImage) -> Vec<String> {
    let hex = img.digest.strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(img.layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Serves `img`, trickling the GET of blob `slow` after its first `first` bytes while `trickle` is
/// set (and serving it whole once it is cleared, for the re-run).
fn trickling_registry(
    img: LayoutImage,
    slow: String,
    first: usize,
    trickle: Arc<AtomicBool>,
) -> FakeServer {
    FakeServer::start(move |req| {
        if trickle.load(Ordering::SeqCst)
            && req.method == "GET"
            && req.path.ends_with(&format!("/blobs/{slow}"))
        {
            let hex = slow.strip_prefix("sha256:").unwrap();
            let body = fs::read(img.layout.join("blobs/sha256").join(hex)).unwrap();
            return Reply::Trickle(body, first, Duration::from_millis(20));
        }
        serve_layout(&img, req).unwrap_or(Reply::status(404))
    })
}

fn from_registry(verb: &str, reg: &FakeServer, repo_tag: &str, dest: &str) -> Child {
    let tls = if verb == "copy" {
        "--src-tls-verify=false"
    } else {
        "--tls-verify=false"
    };
    hoist(&[
        verb,
        "-q",
        tls,
        "--retry-times",
        "0",
        &format!("docker://{}/{repo_tag}", reg.host),
        dest,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

#[test]
fn the_first_sigint_or_sigterm_cancels_a_copy_which_leaves_the_layout_valid_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let img = small_image(&dir.path().join("img"), "app", "v1");
    let layers = layer_digests(&img);
    let trickle = Arc::new(AtomicBool::new(true));
    let reg = trickling_registry(img.clone(), layers[1].clone(), 100, trickle.clone());
    let validate = require_tool("oci-image-tool");

    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        trickle.store(true, Ordering::SeqCst);
        // The destination already holds an image, which the interrupted copy must leave intact.
        let layout = dir.path().join(format!("layout-{name}"));
        common::synth::write_tar_image(&layout, "old", &[("etc/hello", b"hello\n")]);
        let index_before = fs::read(layout.join("index.json")).unwrap();

        let child = from_registry(
            "copy",
            &reg,
            "app:v1",
            &format!("oci:{}:v1", layout.display()),
        );
        wait_until("the first layer, and the second's temp file", || {
            blob_path(&layout, &layers[0]).is_file() && !temp_entries(&layout).is_empty()
        });
        signal(&child, sig);
        let (status, err) = finish(child, "the cancelled copy");

        assert_eq!(status.signal(), Some(sig), "{name}: {status}; {err}");
        assert_eq!(shell_status(status), 128 + sig, "{name}");
        assert!(
            err.contains(&format!("hoist: cancelled by {name}")),
            "{name}: {err}"
        );
        assert!(!err.contains("ending at once"), "{name}: {err}");
        assert_eq!(temp_entries(&layout), Vec::<PathBuf>::new(), "{name}");
        assert!(!blob_path(&layout, &layers[1]).exists(), "{name}");
        assert_eq!(
            fs::read(layout.join("index.json")).unwrap(),
            index_before,
            "{name}: the layout's index changed"
        );
        run_ok(&mut hoist(&[
            "verify",
            "--all",
            &format!("oci:{}", layout.display()),
        ]));
        if validate {
            common::docker::validate(&layout, "old");
        }

        // Run again, nothing trickling: it completes.
        trickle.store(false, Ordering::SeqCst);
        let (status, err) = finish(
            from_registry(
                "copy",
                &reg,
                "app:v1",
                &format!("oci:{}:v1", layout.display()),
            ),
            "the re-run copy",
        );
        assert!(status.success(), "{name}: re-run: {status}; {err}");
        run_ok(&mut hoist(&[
            "verify",
            &format!("oci:{}:v1", layout.display()),
        ]));
        assert_eq!(temp_entries(&layout), Vec::<PathBuf>::new(), "{name}");
    }
}

#[test]
fn sigint_cancels_an_unpack_which_keeps_its_incomplete_marker() {
    let dir = tempfile::tempdir().unwrap();
    let big = common::synth::noise(100_000, 7);
    let src = dir.path().join("img");
    let digest =
        common::synth::write_tar_image(&src, "v1", &[("etc/hello", b"hello\n"), ("opt/big", &big)]);
    let img = LayoutImage {
        layout: src,
        repo: "app".into(),
        tag: "v1".into(),
        digest: digest.to_string(),
    };
    let layer = layer_digests(&img).remove(0);
    let trickle = Arc::new(AtomicBool::new(true));
    // Two directory headers, etc/hello (header and data), opt/big's header and 512 bytes of it:
    // etc/hello is on disk, opt/big is being written.
    let reg = trickling_registry(img, layer, 5 * 512, trickle.clone());

    let target = dir.path().join("rootfs");
    let child = from_registry("unpack", &reg, "app:v1", &target.display().to_string());
    wait_until("etc/hello", || target.join("etc/hello").is_file());
    signal(&child, libc::SIGINT);
    let (status, err) = finish(child, "the cancelled unpack");

    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}; {err}");
    assert_eq!(shell_status(status), 130);
    assert!(err.contains("hoist: cancelled by SIGINT"), "{err}");
    assert_eq!(temp_entries(dir.path()), Vec::<PathBuf>::new());
    // The partial tree is never taken for a finished one.
    assert!(target.join(".hoist-unpack-incomplete").is_file());

    // Into a fresh directory, nothing trickling: it completes.
    fs::remove_dir_all(&target).unwrap();
    trickle.store(false, Ordering::SeqCst);
    let (status, err) = finish(
        from_registry("unpack", &reg, "app:v1", &target.display().to_string()),
        "the re-run unpack",
    );
    assert!(status.success(), "re-run: {status}; {err}");
    assert_eq!(fs::read(target.join("opt/big")).unwrap(), big);
    assert!(!target.join(".hoist-unpack-incomplete").exists());
}

/// True once a thread of `child` waits in the kernel for a FIFO's other end (Linux's `wchan`).
fn waits_on_fifo(child: &Child) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", child.id())) else {
        return false;
    };
    tasks.flatten().any(|t| {
        fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.trim() == "wait_for_partner")
    })
}

/// `hoist copy SRC oci-archive:FIFO` with no reader on the FIFO, staging in `tmpdir`: once staged, the
/// copy blocks in opening the FIFO, where it cannot see its token.
fn blocked_copy(src: &str, fifo: &Path, tmpdir: &Path) -> Child {
    hoist(&[
        "copy",
        "-q",
        src,
        &format!("oci-archive:{}", fifo.display()),
    ])
    .env("TMPDIR", tmpdir)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

#[test]
fn a_second_signal_or_a_verb_that_cannot_stop_ends_hoist_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    common::synth::write_tar_image(&layout, "t", &[("etc/hello", b"hello\n")]);
    let src = format!("oci:{}:t", layout.display());
    let fifo = dir.path().join("out.fifo");
    run_ok(std::process::Command::new("mkfifo").arg(&fifo));

    // One SIGTERM: after the grace period, hoist removes its temp files and dies of it.
    let tmpdir = dir.path().join("tmp-grace");
    fs::create_dir(&tmpdir).unwrap();
    let child = blocked_copy(&src, &fifo, &tmpdir);
    wait_until("the copy to block on the FIFO", || waits_on_fifo(&child));
    assert!(!temp_entries(&tmpdir).is_empty(), "the staging directory");
    signal(&child, libc::SIGTERM);
    let (status, err) = finish(child, "the blocked copy");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}; {err}");
    assert!(
        err.contains("after SIGTERM: ending at once (temp files removed)"),
        "{err}"
    );
    assert!(!err.contains("cancelled by"), "{err}");
    assert_eq!(temp_entries(&tmpdir), Vec::<PathBuf>::new());

    // SIGINT, and SIGINT again (repeated until hoist ends): the second ends it at once.
    let tmpdir = dir.path().join("tmp-twice");
    fs::create_dir(&tmpdir).unwrap();
    let mut child = blocked_copy(&src, &fifo, &tmpdir);
    wait_until("the copy to block on the FIFO", || waits_on_fifo(&child));
    assert!(!temp_entries(&tmpdir).is_empty(), "the staging directory");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(60) {
        signal(&child, libc::SIGINT);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, err) = finish(child, "the twice-interrupted copy");
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}; {err}");
    assert!(
        err.contains("second signal (SIGINT): ending at once"),
        "{err}"
    );
    assert!(!err.contains("cancelled by"), "{err}");
    assert_eq!(temp_entries(&tmpdir), Vec::<PathBuf>::new());
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}
