//! End-to-end tests of `hoist export`: the tar stream extracts (GNU `tar -x`) to the very tree that
//! `hoist unpack` and `umoci unpack` make of the same image (whiteouts, opaque directories,
//! hardlinks across layers, symlinks, xattrs, fifos and devices, as root), written to stdout, a file
//! or through a symlink, and a failure leaves no file behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::unpack::{assert_same, assert_same_as, build_complex, describe};
use common::{hoist, require_tool, run_fail, run_ok, sh};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Extracts `tar` into the new directory `dir` as GNU tar does, keeping owners, modes and xattrs.
fn extract(tar: &Path, dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    run_ok(
        Command::new("tar")
            .args([
                "-x",
                "--numeric-owner",
                "--same-permissions",
                "--xattrs",
                "--xattrs-include=*",
                "-f",
            ])
            .arg(tar)
            .arg("-C")
            .arg(dir),
    );
}

/// The entry names of a tar, in order.
fn names(tar: &Path) -> Vec<String> {
    let out = run_ok(Command::new("tar").arg("-tf").arg(tar));
    out.lines().map(str::to_string).collect()
}

/// The complex umoci image plus a layer with devices and a hardlink whose first name sorts after
/// the link (crane's top-down export writes such a link before its target).
fn build_with_devices(layout: &Path, tag: &str) {
    build_complex(layout, tag);
    let l = layout.display().to_string();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    run_ok(&mut sh(&format!(
        r#"
        umoci unpack --image "{l}:{tag}" "{w}/b"
        R="{w}/b/rootfs"
        mkdir -p "$R/dev"
        mknod "$R/dev/null" c 1 3; chmod 666 "$R/dev/null"
        mknod "$R/dev/loop9" b 7 9; chown 0:6 "$R/dev/loop9"
        echo zz > "$R/srv/zz-target"; ln "$R/srv/zz-target" "$R/srv/aa-link"
        umoci repack --image "{l}:{tag}" "{w}/b"
        "#
    )));
}

#[test]
fn the_export_extracts_to_the_tree_unpack_and_umoci_make() {
    if !require_tool("umoci") || !require_tool("tar") {
        return;
    }
    if !is_root() {
        // Devices and owners need root on both sides (as for umoci's own comparison).
        println!("SKIPPED: not root");
        assert!(
            std::env::var("CI").is_err(),
            "the export comparison needs root under CI"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_with_devices(&layout, "t");
    let image = format!("oci:{}:t", layout.display());
    let out = t.path().join("rootfs.tar");
    run_ok(&mut hoist(&["export", &image, out.to_str().unwrap()]));
    let x = t.path().join("x");
    extract(&out, &x);
    let h = t.path().join("h");
    run_ok(&mut hoist(&["unpack", &image, h.to_str().unwrap()]));
    let u = t.path().join("u");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", layout.display()))
            .arg(&u),
    );
    let exported = describe(&x);
    assert_same_as(("export", &exported), ("unpack", &describe(&h)), true);
    assert_same(&exported, &describe(&u.join("rootfs")), true);
    // The cases this image is for really are in the tree.
    let n = &exported.nodes;
    assert_eq!(n[Path::new("dev/null")].kind, "char");
    assert_eq!(n[Path::new("dev/loop9")].kind, "block");
    assert_eq!(n[Path::new("srv/fifo")].kind, "fifo");
    assert_eq!(n[Path::new("srv/abs-link")].kind, "symlink");
    assert!(!n.contains_key(Path::new("var/gone")));
    assert!(!n.contains_key(Path::new("srv/opq/lower")));
    assert!(n.contains_key(Path::new("srv/opq/new")));
    assert_eq!(n[Path::new("etc/xattr")].xattrs["user.foo"], "626172");
    assert!(
        exported
            .links
            .iter()
            .any(|g| g.contains(Path::new("srv/motd-hard"))),
        "{:?}",
        exported.links
    );
    // Every hardlink comes after the name it links to; the root's own entry (umoci writes one in
    // each layer) comes first.
    let list = names(&out);
    let pos = |name: &str| list.iter().position(|n| n == name).unwrap();
    assert!(pos("srv/aa-link") < pos("srv/zz-target"), "{list:?}");
    assert_eq!(list[0], "./", "{list:?}");
}

/// A tar of `(path, type, mode, content or link target)` entries, in the order given.
fn layer_tar(entries: &[(&str, tar::EntryType, u32, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        if matches!(*kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_size(0);
            b.append_link(&mut h, path, data).unwrap();
        } else {
            let bytes = if *kind == tar::EntryType::Regular {
                data.as_bytes()
            } else {
                b""
            };
            h.set_size(bytes.len() as u64);
            b.append_data(&mut h, path, bytes).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// A layout at `layout` whose image `t` has the given uncompressed layers.
fn layered_image(layout: &Path, layers: &[Vec<u8>]) {
    use hoist::media_type;
    use serde_json::json;
    let l = hoist::layout::Layout::create(layout).unwrap();
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for tar in layers {
        let d = l.write_bytes(tar).unwrap();
        diff_ids.push(d.to_string());
        descs.push(json!({"mediaType": media_type::OCI_LAYER_TAR, "digest": d.to_string(), "size": tar.len()}));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let cd = l.write_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": descs
    }))
    .unwrap();
    let doc = hoist::document::Document::new(media_type::OCI_MANIFEST, manifest).unwrap();
    l.write_bytes(doc.bytes()).unwrap();
    l.set_tag(Some("t"), &doc.descriptor()).unwrap();
}

/// Symlinked parents are followed inside the root (an absolute target restarts at the root), a
/// file replaced by a directory and the reverse, a hardlink whose first name a later layer removes:
/// the export decides as unpack does, since it is unpack's applier deciding.
#[test]
fn confinement_and_replacements_match_unpack() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    layered_image(
        &layout,
        &[
            layer_tar(&[
                ("real/", Directory, 0o755, ""),
                ("esc", Symlink, 0o777, "/real"),
                ("up", Symlink, 0o777, "../../.."),
                ("f2d", Regular, 0o644, "file"),
                ("d2f/", Directory, 0o700, ""),
                ("d2f/child", Regular, 0o644, "child"),
                ("orig", Regular, 0o640, "linked content"),
            ]),
            layer_tar(&[
                ("esc/through", Regular, 0o600, "via the symlink"),
                ("up/top", Regular, 0o644, "clamped at the root"),
                ("f2d/", Directory, 0o711, ""),
                ("f2d/in", Regular, 0o644, "in"),
                ("d2f", Regular, 0o444, "now a file"),
                ("second", Link, 0o640, "orig"),
                (".wh.orig", Regular, 0o644, ""),
            ]),
        ],
    );
    let image = format!("oci:{}:t", layout.display());
    let out = t.path().join("x.tar");
    run_ok(&mut hoist(&["export", &image, out.to_str().unwrap()]));
    let x = t.path().join("x");
    extract(&out, &x);
    let h = t.path().join("h");
    run_ok(&mut hoist(&[
        "unpack",
        "--rootless",
        &image,
        h.to_str().unwrap(),
    ]));
    let exported = describe(&x);
    assert_same_as(("export", &exported), ("unpack", &describe(&h)), false);
    assert_eq!(
        std::fs::read_to_string(x.join("real/through")).unwrap(),
        "via the symlink"
    );
    assert_eq!(
        std::fs::read_to_string(x.join("top")).unwrap(),
        "clamped at the root"
    );
    assert_eq!(
        std::fs::read_to_string(x.join("second")).unwrap(),
        "linked content"
    );
    assert!(!x.join("orig").exists());
}

#[test]
fn stdout_a_file_and_a_symlink_get_the_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "t");
    let image = format!("oci:{}:t", layout.display());
    let out = hoist(&["export", "-q", &image, "-"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = t.path().join("a.tar");
    run_ok(&mut hoist(&["export", &image, file.to_str().unwrap()]));
    assert_eq!(std::fs::read(&file).unwrap(), out.stdout);
    // A symlink is written through and stays a symlink.
    let real = t.path().join("real.tar");
    std::fs::write(&real, b"old").unwrap();
    let link = t.path().join("link.tar");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    run_ok(&mut hoist(&["export", &image, link.to_str().unwrap()]));
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), out.stdout);
    // Without FILE, stdout.
    let default = hoist(&["export", "-q", &image]).output().unwrap();
    assert_eq!(default.stdout, out.stdout);
}

#[test]
fn a_corrupt_layer_or_a_limit_fails_and_leaves_no_file() {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "t");
    let image = format!("oci:{}:t", layout.display());
    let file = t.path().join("out.tar");
    let out = run_fail(&mut hoist(&[
        "export",
        "--max-size",
        "1",
        &image,
        file.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-size"), "{err}");
    assert!(!file.exists());
    // Damage the largest layer blob: the digest check fails, nothing is left at FILE.
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();
    let out = run_fail(&mut hoist(&["export", &image, file.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(!file.exists());
    assert!(
        std::fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains("tmp")),
        "a temp file was left"
    );
}
