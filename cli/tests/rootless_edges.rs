//! Rootless unpack edge cases against umoci: device nodes (an empty regular file in their place) and
//! directories their owner cannot read or enter (mode 0000, 0300, ...), which an unprivileged unpack
//! must still fill and then leave with their mode. Permission effects need an unprivileged process:
//! hoist runs as `nobody` through `setpriv` (skipped with a message when that is unavailable).

mod common;

use std::path::Path;
use std::process::Command;

use common::unpack::{assert_same, describe};
use common::{hoist_bin, require_tool, run_ok};
use hoist::layout::Layout;
use hoist::media_type;
use serde_json::json;

/// A tar of directories (path, mode), files (path, mode, content) and devices (path, kind, major,
/// minor), in the order given.
enum Ent {
    Dir(&'static str, u32),
    File(&'static str, u32, &'static [u8]),
    Dev(&'static str, tar::EntryType, u32, u32),
}

fn tar_of(entries: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        match e {
            Ent::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Ent::File(p, mode, data) => {
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            Ent::Dev(p, kind, major, minor) => {
                h.set_entry_type(*kind);
                h.set_mode(0o660);
                h.set_size(0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A one-layer image of `tar` (uncompressed) at `layout`, tag `t`.
fn image(layout: &Path, tar: &[u8]) {
    let l = Layout::create(layout).unwrap();
    let ld = l.write_bytes(tar).unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ld.to_string()]}
    }))
    .unwrap();
    let cd = l.write_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": media_type::OCI_LAYER_TAR, "digest": ld.to_string(), "size": tar.len()}]
    }))
    .unwrap();
    let doc = hoist::document::Document::new(media_type::OCI_MANIFEST, manifest).unwrap();
    l.write_bytes(doc.bytes()).unwrap();
    l.set_tag(Some("t"), &doc.descriptor()).unwrap();
}

fn umoci_rootless(layout: &Path, bundle: &Path) {
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:t", layout.display()))
            .arg(bundle),
    );
}

#[test]
fn rootless_devices_are_empty_files_as_umoci_leaves_them() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    image(
        &layout,
        &tar_of(&[
            Ent::Dir("dev", 0o755),
            Ent::Dev("dev/null", tar::EntryType::Char, 1, 3),
            Ent::Dev("dev/loop0", tar::EntryType::Block, 7, 0),
        ]),
    );
    let u = t.path().join("umoci");
    umoci_rootless(&layout, &u);
    let h = t.path().join("hoist");
    run_ok(
        Command::new(hoist_bin())
            .args(["unpack", "--rootless", "--bundle"])
            .arg(format!("oci:{}:t", layout.display()))
            .arg(&h),
    );
    let tree = describe(&h.join("rootfs"));
    assert_eq!(tree.nodes[Path::new("dev/null")].kind, "file");
    assert_same(&tree, &describe(&u.join("rootfs")), false);
}

/// True when `setpriv` can run a command as `nobody` here.
fn can_drop_privileges() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let ok = root
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: needs root and setpriv to run hoist as an unprivileged user");
    }
    ok
}

#[test]
fn unprivileged_unpack_fills_directories_it_cannot_enter() {
    if !require_tool("umoci") || !can_drop_privileges() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    image(
        &layout,
        &tar_of(&[
            Ent::Dir("locked", 0o000),
            Ent::File("locked/secret", 0o600, b"inside 0000"),
            Ent::Dir("locked/sub", 0o000),
            Ent::File("locked/sub/deeper", 0o644, b"deeper"),
            Ent::Dir("wronly", 0o300),
            Ent::File("wronly/f", 0o400, b"inside 0300"),
            Ent::Dir("rx", 0o500),
            Ent::Dir("rx/d", 0o100),
            Ent::File("rx/d/f", 0o000, b"unreadable file"),
        ]),
    );
    let u = t.path().join("umoci");
    umoci_rootless(&layout, &u);
    // nobody owns a work directory and can read the layout.
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    run_ok(Command::new("chown").args(["-R", "65534:65534"]).arg(&work));
    run_ok(Command::new("chmod").args(["a+rx"]).arg(t.path()));
    run_ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&layout));
    let h = work.join("hoist");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(hoist_bin())
        .args(["unpack", "--bundle"])
        .arg(format!("oci:{}:t", layout.display()))
        .arg(&h)
        .env("HOME", &work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The state record holds the image's modes, not the open ones used while listing.
    let state = hoist::unpack::UnpackState::load(&h.join("hoist-state.json")).unwrap();
    assert_eq!(state.get(Path::new("locked")).unwrap().mode, 0);
    assert_eq!(state.get(Path::new("wronly")).unwrap().mode, 0o300);
    assert_eq!(state.get(Path::new("rx/d")).unwrap().mode, 0o100);
    // Compared as root (which can read it all): the same tree, modes restored.
    assert_same(
        &describe(&h.join("rootfs")),
        &describe(&u.join("rootfs")),
        false,
    );
}

/// `hoist ARGS` run as `nobody`, with `work` as its home.
fn hoist_as_nobody(work: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(hoist_bin())
        .args(args)
        .env("HOME", work)
        .output()
        .unwrap()
}

#[test]
fn unprivileged_repack_and_diff_read_directories_their_owner_cannot_enter() {
    if !require_tool("umoci") || !can_drop_privileges() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    image(
        &layout,
        &tar_of(&[
            Ent::Dir("locked", 0o000),
            Ent::File("locked/secret", 0o600, b"inside 0000"),
            Ent::Dir("locked/sub", 0o000),
            Ent::File("locked/sub/deeper", 0o644, b"deeper"),
            Ent::Dir("wronly", 0o300),
            Ent::File("wronly/f", 0o400, b"inside 0300"),
            Ent::Dir("rx", 0o500),
            Ent::Dir("rx/d", 0o100),
            Ent::File("rx/d/f", 0o000, b"unreadable file"),
        ]),
    );
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    run_ok(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&work)
            .arg(&layout),
    );
    run_ok(Command::new("chmod").args(["a+rx"]).arg(t.path()));
    let h = work.join("hoist");
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ok(hoist_as_nobody(
        &work,
        &[
            "unpack".as_ref(),
            "--bundle".as_ref(),
            format!("oci:{}:t", layout.display()).as_ref(),
            h.as_ref(),
        ],
    ));
    let rootfs = h.join("rootfs");
    let lower = work.join("lower");
    run_ok(Command::new("cp").arg("-a").arg(&rootfs).arg(&lower));
    // Changes made inside the shut directories (as root, then given to their owner).
    std::fs::write(rootfs.join("locked/sub/new"), b"new file").unwrap();
    std::fs::write(rootfs.join("rx/d/f"), b"rewritten, same mode").unwrap();
    run_ok(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&rootfs),
    );
    let modes = |root: &Path| -> Vec<u32> {
        ["locked", "locked/sub", "wronly", "rx", "rx/d", "rx/d/f"]
            .iter()
            .map(|p| {
                std::os::unix::fs::PermissionsExt::mode(
                    &std::fs::symlink_metadata(root.join(p))
                        .unwrap()
                        .permissions(),
                ) & 0o7777
            })
            .collect()
    };
    let before = modes(&rootfs);
    assert_eq!(before, [0, 0, 0o300, 0o500, 0o100, 0]);

    // diff of two such trees, as their owner: the layer holds the changes and the real modes.
    let layer = work.join("layer.tar");
    ok(hoist_as_nobody(
        &work,
        &[
            "diff".as_ref(),
            lower.as_ref(),
            rootfs.as_ref(),
            "-o".as_ref(),
            layer.as_ref(),
        ],
    ));
    assert_eq!(modes(&rootfs), before, "diff left the modes changed");
    assert_eq!(modes(&lower), before, "diff left the lower modes changed");
    let mut seen = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&layer).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let mode = e.header().mode().unwrap() & 0o7777;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        seen.insert(p, (mode, data));
    }
    assert_eq!(seen["locked/sub/new"].1, b"new file");
    assert_eq!(seen["rx/d/f"], (0, b"rewritten, same mode".to_vec()));
    assert_eq!(seen["locked/sub"].0, 0);

    // repack as the owner, then umoci (as root) unpacks the new image: the same tree, modes kept.
    ok(hoist_as_nobody(&work, &["repack".as_ref(), h.as_ref()]));
    assert_eq!(modes(&rootfs), before, "repack left the modes changed");
    let u = t.path().join("umoci");
    common::umoci_unpack(&format!("{}:t", layout.display()), &u);
    assert_same(&describe(&rootfs), &describe(&u.join("rootfs")), false);
    assert_eq!(
        std::fs::read(u.join("rootfs/locked/sub/new")).unwrap(),
        b"new file"
    );
}
