//! The examples in `crates/hoist/examples/` run against a layout built here, and say what they did.
//! They are built by `.ci/run` (`cargo build -p hoist-oci --examples`); this test runs the binaries in
//! `target/debug/examples/` when they exist (a missing one fails under CI=true, else it is skipped).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::write_image;

/// `target/debug/examples/NAME`, or None (skipped, or a failure under CI=true) when not built.
fn example(name: &str) -> Option<PathBuf> {
    // The test binary is target/debug/deps/examples-HASH; the examples are in target/debug/examples.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is not built (CI runs `cargo build -p hoist-oci --examples` first)",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} is not built (cargo build -p hoist-oci --examples)",
        path.display()
    );
    None
}

fn run(exe: &Path, args: &[&str]) -> (Output, String) {
    let out = Command::new(exe).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

fn ok(exe: &Path, args: &[&str]) -> String {
    let (out, stdout) = run(exe, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{stdout}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Without arguments each example prints its usage and exits 2.
fn usage(exe: &Path) {
    let (out, _) = run(exe, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", exe.display());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "));
}

fn layout() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("layout");
    write_image(&path);
    let path = path.display().to_string();
    (tmp, path)
}

#[test]
fn pull_and_unpack() {
    let Some(exe) = example("pull_and_unpack") else {
        return;
    };
    usage(&exe);
    let (tmp, path) = layout();
    let local = tmp.path().join("local").display().to_string();
    let rootfs = tmp.path().join("rootfs");
    let out = ok(
        &exe,
        &[&format!("oci:{path}:v1"), &local, rootfs.to_str().unwrap()],
    );
    assert!(out.contains(&format!("into oci:{local}:pulled")), "{out}");
    assert!(out.contains("unpacked 1 layer(s)"), "{out}");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello\n"
    );
}

#[test]
fn inspect_layout() {
    let Some(exe) = example("inspect_layout") else {
        return;
    };
    usage(&exe);
    let (_tmp, path) = layout();
    let out = ok(&exe, &[&path]);
    assert!(
        out.starts_with("tag v1: application/vnd.oci.image.manifest.v1+json sha256:"),
        "{out}"
    );
    assert!(out.contains("Layers"), "{out}");
}

#[test]
fn copy_with_progress() {
    let Some(exe) = example("copy_with_progress") else {
        return;
    };
    usage(&exe);
    let (tmp, path) = layout();
    let archive = tmp.path().join("copy.tar").display().to_string();
    let out = ok(
        &exe,
        &[
            &format!("oci:{path}:v1"),
            &format!("oci-archive:{archive}:v1"),
        ],
    );
    assert!(out.starts_with("plan: 2 blob(s)"), "{out}");
    // A line per blob (streamed, or hard-linked when the archive is written on the same filesystem).
    let blob_lines = out
        .lines()
        .filter(|l| l.starts_with("Copied: sha256:") || l.starts_with("Linked: sha256:"))
        .count();
    assert_eq!(blob_lines, 2, "{out}");
    assert!(out.contains("\ncopied sha256:"), "{out}");
}

#[test]
fn verify_report() {
    let Some(exe) = example("verify_report") else {
        return;
    };
    usage(&exe);
    let (_tmp, path) = layout();
    let reference = format!("oci:{path}:v1");
    let out = ok(&exe, &[&reference]);
    assert!(out.contains("1 document(s), 2 blob(s)"), "{out}");
    assert!(out.ends_with("ok\n"), "{out}");
    // A damaged blob: reported, exit 1.
    let blobs = Path::new(&path).join("blobs/sha256");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut b = bytes.clone();
            let last = b.len() - 1;
            b[last] ^= 0xff;
            std::fs::write(&p, b).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1);
    let (status, out) = run(&exe, &[&reference]);
    assert_eq!(status.status.code(), Some(1), "{out}");
    assert!(out.contains("problem: layer"), "{out}");
}

#[test]
fn from_async() {
    let Some(exe) = example("from_async") else {
        return;
    };
    usage(&exe);
    let (tmp, path) = layout();
    let dest = format!("oci:{}:v1", tmp.path().join("async").display());
    let out = ok(&exe, &[&format!("oci:{path}:v1"), &dest]);
    assert!(out.starts_with("copied sha256:"), "{out}");
    assert!(out.ends_with(&format!(" to {dest}\n")), "{out}");
}

#[test]
fn image_from_dir() {
    let Some(exe) = example("image_from_dir") else {
        return;
    };
    usage(&exe);
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>hi</h1>\n").unwrap();
    std::fs::write(site.join("css/a.css"), "h1{}\n").unwrap();
    let built = |name: &str| {
        let dest = format!("oci:{}:v1", tmp.path().join(name).display());
        let out = ok(&exe, &[site.to_str().unwrap(), "/srv/www", &dest]);
        assert!(out.starts_with("layer sha256:"), "{out}");
        let digest = out
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        (dest, digest)
    };
    let (dest, first) = built("a");
    // The same tree gives the same image (fixed owners and times).
    let (_, second) = built("b");
    assert_eq!(first, second);
    // The image unpacks to the directory under its path, with the config edit.
    let src = hoist::open_source(&dest.parse().unwrap(), &hoist::OpenOptions::default()).unwrap();
    let rootfs = tmp.path().join("rootfs");
    let mut opts = hoist::UnpackOptions::default();
    opts.apply.rootless = true;
    hoist::unpack(src.as_ref(), &rootfs, &opts).unwrap();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/www/css/a.css")).unwrap(),
        "h1{}\n"
    );
    let image = hoist::image::resolve(src.as_ref(), None).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes).unwrap();
    assert_eq!(config["config"]["WorkingDir"], "/srv/www", "{config}");
}
