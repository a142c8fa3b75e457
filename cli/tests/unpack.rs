//! End-to-end tests of `hoist unpack`: the same trees as `umoci unpack` (as root and rootless) on
//! images built with umoci, bundles, the state file, and clear failures.

mod common;

use std::path::Path;

use common::unpack::{assert_same, build_complex, describe};
use common::{hoist, require_tool, run_fail, run_ok, sh};

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path, rootless: bool) {
    let mut c = std::process::Command::new("umoci");
    c.arg("unpack");
    if rootless {
        c.arg("--rootless");
    }
    c.arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle);
    run_ok(&mut c);
}

fn compare(rootless: bool, build: fn(&Path, &str)) {
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build(&layout, "t");
    let u = t.path().join("umoci");
    umoci_unpack(&layout, "t", &u, rootless);
    let h = t.path().join("hoist");
    let image = format!("oci:{}:t", layout.display());
    let mut args = vec!["unpack", "--bundle", image.as_str(), h.to_str().unwrap()];
    if rootless {
        args.insert(1, "--rootless");
    }
    run_ok(&mut hoist(&args));
    assert_same(
        &describe(&h.join("rootfs")),
        &describe(&u.join("rootfs")),
        !rootless,
    );
}

#[test]
fn same_tree_as_umoci_as_root() {
    if !require_tool("umoci") {
        return;
    }
    compare(false, build_complex);
}

#[test]
fn same_tree_as_umoci_rootless() {
    if !require_tool("umoci") {
        return;
    }
    compare(true, build_complex);
}

#[test]
fn two_layer_image_matches_umoci_both_modes() {
    if !require_tool("umoci") {
        return;
    }
    compare(false, common::images::build_two_layer);
    compare(true, common::images::build_two_layer);
}

#[test]
fn bundle_config_and_state() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    build_complex(&layout, "t");
    let b = t.path().join("bundle");
    let image = format!("oci:{}:t", layout.display());
    run_ok(&mut hoist(&[
        "unpack",
        "--bundle",
        &image,
        b.to_str().unwrap(),
    ]));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&b).unwrap().mode() & 0o777, 0o700);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/usr/bin/hi"]));
    assert_eq!(spec["process"]["cwd"], "/srv");
    // `app` is looked up in the image's /etc/passwd.
    assert_eq!(spec["process"]["user"]["uid"], 1000);
    assert_eq!(spec["root"]["path"], "rootfs");
    let state = std::fs::read_to_string(b.join("hoist-state.json")).unwrap();
    let header: serde_json::Value = serde_json::from_str(state.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "hoist-unpack-state");
    assert_eq!(header["layers"].as_array().unwrap().len(), 3);
    assert!(state.contains("\"path\":\"srv/hard-a\""), "{state}");
    assert!(!b.join(".hoist-unpack-incomplete").exists());
}

#[test]
fn refuses_a_non_empty_target_and_a_bad_platform() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "t");
    let image = format!("oci:{}:t", layout.display());
    let d = t.path().join("full");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("x"), "x").unwrap();
    let out = run_fail(&mut hoist(&["unpack", &image, d.to_str().unwrap()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    // The user's directory was not touched, and hoist says so; it never asks to delete it.
    assert!(
        err.contains("not changed") && !err.contains("remove"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    // A failure inside a directory the user made: empty it, not remove it.
    let e = t.path().join("made-by-user");
    std::fs::create_dir(&e).unwrap();
    run_ok(&mut sh(&format!(
        r#"f=$(ls -S "{l}"/blobs/sha256/* | head -1); chmod u+w "$f"; printf 'XXXX' | dd of="$f" bs=1 seek=2000 conv=notrunc 2>/dev/null"#,
        l = layout.display()
    )));
    let out = run_fail(&mut hoist(&["unpack", &image, e.to_str().unwrap()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty it") && !err.contains("remove"), "{err}");
    let out = run_fail(&mut hoist(&[
        "unpack",
        "--platform",
        "linux",
        &image,
        "/tmp/never",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OS/ARCH"));
}

#[test]
fn corrupt_layer_fails_and_leaves_the_target_marked_incomplete() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "t");
    // Corrupt the largest blob (the first layer, with its 300 kB of random data).
    run_ok(&mut sh(&format!(
        r#"f=$(ls -S "{l}"/blobs/sha256/* | head -1); chmod u+w "$f"; printf 'XXXX' | dd of="$f" bs=1 seek=2000 conv=notrunc 2>/dev/null"#,
        l = layout.display()
    )));
    let d = t.path().join("out");
    let image = format!("oci:{}:t", layout.display());
    let out = run_fail(&mut hoist(&["unpack", &image, d.to_str().unwrap()]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("layer 1/2"), "{err}");
    assert!(d.join(".hoist-unpack-incomplete").exists());
}

#[test]
fn a_plain_unpack_holds_only_the_image_and_writes_its_state_where_asked() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    run_ok(&mut sh(&format!(
        "umoci init --layout '{l}' && umoci new --image '{l}:empty'",
        l = layout.display()
    )));
    // An image with no layers unpacks to an empty directory.
    let d = t.path().join("empty");
    let image = format!("oci:{}:empty", layout.display());
    run_ok(&mut hoist(&["unpack", "-q", &image, d.to_str().unwrap()]));
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
    assert!(names.is_empty(), "{names:?}");
    // --state writes the record there; inside the target it is refused before anything is written.
    let state = t.path().join("empty.state");
    let d2 = t.path().join("with-state");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--state",
        state.to_str().unwrap(),
        &image,
        d2.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read_dir(&d2).unwrap().count(), 0);
    let header = std::fs::read_to_string(&state).unwrap();
    assert!(header.contains("\"rootfs\":\".\""), "{header}");
    let d3 = t.path().join("inside");
    let out = run_fail(&mut hoist(&[
        "unpack",
        "--state",
        d3.join("state.json").to_str().unwrap(),
        &image,
        d3.to_str().unwrap(),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inside the tree"), "{err}");
    assert!(!d3.exists());
}

/// A tar of `(path, type, mode, content or link target)` entries, in the order given.
fn dirlink_tar(entries: &[(&str, tar::EntryType, u32, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(1_600_000_000);
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        if *kind == tar::EntryType::Symlink {
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

#[test]
fn keep_dirlinks_writes_through_a_directory_symlink_as_umoci_does() {
    if !require_tool("umoci") {
        return;
    }
    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    layered_image(
        &layout,
        &[
            dirlink_tar(&[
                ("usr", D, 0o755, ""),
                ("usr/lib64", D, 0o755, ""),
                ("usr/lib64/old", F, 0o644, "from layer 1"),
                ("usr/lib", L, 0o777, "lib64"),
                // Absolute, and through `..` past the root: both resolve inside it.
                ("usr/abs", L, 0o777, "/usr/lib64"),
                ("escape", L, 0o777, "../../../usr/lib64"),
            ]),
            dirlink_tar(&[
                ("usr", D, 0o755, ""),
                ("usr/lib", D, 0o750, ""),
                ("usr/lib/x", F, 0o644, "written through the link"),
                ("usr/abs", D, 0o700, ""),
                ("usr/abs/y", F, 0o600, "through an absolute link"),
                ("escape", D, 0o755, ""),
                ("escape/z", F, 0o644, "through .. past the root"),
            ]),
        ],
    );
    for keep in [true, false] {
        let flag: &[&str] = if keep { &["--keep-dirlinks"] } else { &[] };
        let u = t.path().join(format!("umoci-{keep}"));
        let mut c = std::process::Command::new("umoci");
        c.arg("unpack").args(flag).arg("--image");
        run_ok(c.arg(format!("{}:t", layout.display())).arg(&u));
        let h = t.path().join(format!("hoist-{keep}"));
        let image = format!("oci:{}:t", layout.display());
        let mut args = vec!["unpack", "-q"];
        args.extend(flag);
        args.extend([image.as_str(), h.to_str().unwrap()]);
        run_ok(&mut hoist(&args));
        let (ht, ut) = (describe(&h), describe(&u.join("rootfs")));
        assert_same(&ht, &ut, true);
        let lib = std::fs::symlink_metadata(h.join("usr/lib")).unwrap();
        assert_eq!(lib.file_type().is_symlink(), keep);
        if keep {
            let x = std::fs::read_to_string(h.join("usr/lib64/x")).unwrap();
            assert_eq!(x, "written through the link");
            assert!(h.join("usr/lib64/y").is_file() && h.join("usr/lib64/z").is_file());
        }
    }
}
