//! `hoist repack`: unpack, change the tree, repack; umoci must unpack the result to the changed tree.
//! Also reproducibility, empty repacks, masks and repacking into another layout.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::unpack::{assert_same, describe};
use common::{hoist, require_tool, run_ok, sh};
use serde_json::Value;

fn tools() -> bool {
    require_tool("umoci") && require_tool("skopeo")
}

/// Makes every kind of change the issue lists in `rootfs`.
fn change(rootfs: &Path) {
    fs::write(rootfs.join("added.txt"), b"new file\n").unwrap();
    let mut motd = fs::read(rootfs.join("etc/motd")).unwrap();
    motd.extend_from_slice(b"modified by repack test\n");
    fs::write(rootfs.join("etc/motd"), motd).unwrap();
    fs::set_permissions(rootfs.join("usr/bin/hi"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_file(rootfs.join("data/new.txt")).unwrap();
    fs::remove_dir_all(rootfs.join("data/sub")).unwrap();
    // A directory replaced by a file.
    fs::create_dir_all(rootfs.join("opt/tool/lib")).unwrap();
    fs::write(rootfs.join("opt/tool/lib/x"), b"x").unwrap();
    fs::remove_dir_all(rootfs.join("usr/bin")).unwrap();
    fs::write(rootfs.join("usr/bin"), b"now a file\n").unwrap();
    fs::hard_link(rootfs.join("added.txt"), rootfs.join("added-hardlink.txt")).unwrap();
    std::os::unix::fs::symlink("../added.txt", rootfs.join("etc/added-link")).unwrap();
    xattr::set(rootfs.join("added.txt"), "user.repack", b"yes").unwrap();
}

/// A temp dir holding a layout with the two-layer umoci image as `v1`; returns the dir and the layout path.
fn base_image() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    common::images::build_two_layer(&layout, "v1");
    let l = layout.display().to_string();
    (dir, l)
}

fn repack(args: &[&str]) -> Value {
    let mut all = vec!["repack"];
    all.extend_from_slice(args);
    serde_json::from_str(&run_ok(&mut hoist(&all))).unwrap()
}

#[test]
fn repacked_changes_unpack_with_umoci_to_the_changed_tree() {
    if !tools() || !require_tool("oci-image-tool") {
        return;
    }
    let (dir, l) = base_image();
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:v1"),
        bundle.to_str().unwrap(),
    ]));
    let rootfs = bundle.join("rootfs");
    change(&rootfs);
    let out = repack(&[bundle.to_str().unwrap(), "--tag", "v2", "--refresh-bundle"]);
    assert!(out["changes"].as_u64().unwrap() >= 9, "{out}");

    let check = dir.path().join("check");
    common::umoci_unpack(&format!("{l}:v2"), &check);
    assert_same(&describe(&check.join("rootfs")), &describe(&rootfs), true);

    // The new image has one more layer and a history entry; v1 is untouched and still verifies.
    let v1: Value =
        serde_json::from_str(&run_ok(&mut hoist(&["inspect", &format!("oci:{l}:v1")]))).unwrap();
    let v2: Value =
        serde_json::from_str(&run_ok(&mut hoist(&["inspect", &format!("oci:{l}:v2")]))).unwrap();
    assert_eq!(
        v2["Layers"].as_array().unwrap().len(),
        v1["Layers"].as_array().unwrap().len() + 1
    );
    let config: Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "inspect",
        "--config",
        &format!("oci:{l}:v2"),
    ])))
    .unwrap();
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["created_by"],
        "hoist repack"
    );
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{l}")]));
    // oci-image-tool validates one image per layout: check a copy of v2.
    let single = dir.path().join("single").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{l}:v2"),
        &format!("oci:{single}:v2"),
    ]));
    run_ok(
        std::process::Command::new("oci-image-tool")
            .args(["validate", "--type", "image", &single, "--ref", "name=v2"]),
    );

    // With --refresh-bundle, a second repack right after sees no change: an empty layer, said so.
    let again = hoist(&["repack", bundle.to_str().unwrap(), "--tag", "v3"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no changes"));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["changes"], 0);
    assert_eq!(
        again["diffId"],
        hoist::Digest::sha256(&[0u8; 1024]).to_string(),
        "an empty tar"
    );
}

#[test]
fn same_changes_and_epoch_give_the_same_layer() {
    if !tools() {
        return;
    }
    let (dir, l) = base_image();
    let mut digests = Vec::new();
    for (i, compress) in [(1, "gzip"), (2, "gzip"), (3, "zstd"), (4, "zstd")] {
        let b = dir.path().join(format!("b{i}"));
        let state = dir.path().join(format!("b{i}.state"));
        run_ok(&mut hoist(&[
            "unpack",
            "-q",
            "--state",
            state.to_str().unwrap(),
            &format!("oci:{l}:v1"),
            b.to_str().unwrap(),
        ]));
        change(&b);
        let out = repack(&[
            "--state",
            state.to_str().unwrap(),
            b.to_str().unwrap(),
            "--tag",
            &format!("r{i}"),
            "--source-date-epoch",
            "1700000000",
            "--compress",
            compress,
        ]);
        digests.push((
            out["layer"].clone(),
            out["diffId"].clone(),
            out["manifest"].clone(),
        ));
        // The plain unpack's state file is outside the tree: it cannot land in the layer.
        // (umoci cannot read zstd layers: hoist unpacks those.)
        let check = dir.path().join(format!("check{i}"));
        if compress == "gzip" {
            common::umoci_unpack(&format!("{l}:r{i}"), &check);
        } else {
            run_ok(&mut hoist(&[
                "unpack",
                "-q",
                "--bundle",
                &format!("oci:{l}:r{i}"),
                check.to_str().unwrap(),
            ]));
        }
        assert!(!check.join("rootfs/.hoist-state.json").exists());
        assert!(check.join("rootfs/added.txt").exists());
    }
    assert_eq!(
        digests[0], digests[1],
        "gzip layers differ between identical repacks"
    );
    assert_eq!(
        digests[2], digests[3],
        "zstd layers differ between identical repacks"
    );
    assert_eq!(
        digests[0].1, digests[2].1,
        "the same tar under both compressions"
    );
}

#[test]
fn mask_paths_and_another_destination() {
    if !tools() {
        return;
    }
    let (dir, l) = base_image();
    let b = dir.path().join("b");
    let state = dir.path().join("b.state");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--state",
        state.to_str().unwrap(),
        &format!("oci:{l}:v1"),
        b.to_str().unwrap(),
    ]));
    fs::create_dir_all(b.join("tmp/cache")).unwrap();
    fs::write(b.join("tmp/cache/junk"), b"junk").unwrap();
    fs::write(b.join("kept.txt"), b"kept").unwrap();
    let other = dir.path().join("other").display().to_string();
    let dest = format!("oci:{other}");
    let masked_repack = |tag: &str| {
        repack(&[
            "--state",
            state.to_str().unwrap(),
            b.to_str().unwrap(),
            "--dest",
            &dest,
            "--tag",
            tag,
            "--mask-path",
            "/tmp",
        ])
    };
    let first = masked_repack("masked");
    // Without --refresh-bundle (as umoci), a second repack holds the same changes again.
    let second = masked_repack("masked2");
    assert_eq!(first["changes"], second["changes"]);
    assert_eq!(first["diffId"], second["diffId"]);
    let check = dir.path().join("check");
    common::umoci_unpack(&format!("{other}:masked"), &check);
    assert!(check.join("rootfs/kept.txt").exists());
    assert!(
        !check.join("rootfs/tmp").exists(),
        "a masked path went into the layer"
    );
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{other}")]));
    // The source layout did not get the new tag.
    let tags = run_ok(&mut hoist(&["tags", &format!("oci:{l}")]));
    assert_eq!(tags.trim(), "v1");
}

#[test]
fn repack_refuses_what_unpack_did_not_finish() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_fail(&mut hoist(&[
        "repack",
        dir.path().to_str().unwrap(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hoist-state.json"));
    fs::write(dir.path().join(".hoist-unpack-incomplete"), b"").unwrap();
    let out = common::run_fail(&mut hoist(&[
        "repack",
        dir.path().to_str().unwrap(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unfinished unpack"));
    let _ = sh("true");
}

#[test]
fn a_same_size_same_mtime_copy_over_a_file_is_repacked() {
    if !tools() {
        return;
    }
    let (dir, l) = base_image();
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:v1"),
        bundle.to_str().unwrap(),
    ]));
    let motd = bundle.join("rootfs/etc/motd");
    let mut same_size = fs::read(&motd).unwrap();
    same_size.iter_mut().for_each(|b| *b = b'#');
    let other = dir.path().join("other");
    fs::write(&other, &same_size).unwrap();
    // `cp -p` writes into the same inode and sets the mtime back: only the ctime tells.
    run_ok(&mut sh(&format!(
        "touch -r '{m}' '{o}' && cp -p '{o}' '{m}'",
        m = motd.display(),
        o = other.display()
    )));
    let out = repack(&[bundle.to_str().unwrap(), "--tag", "v2"]);
    // etc/motd and its hardlink data/motd-hard.
    assert_eq!(out["changes"], 2, "{out}");
    let check = dir.path().join("check");
    common::umoci_unpack(&format!("{l}:v2"), &check);
    assert_eq!(fs::read(check.join("rootfs/etc/motd")).unwrap(), same_size);
    assert_eq!(
        fs::read(check.join("rootfs/data/motd-hard")).unwrap(),
        same_size
    );
}

/// Rewrites the state file at `path`: `edit` gets the header and the entry lines.
fn tamper(path: &Path, edit: impl FnOnce(&mut Value, &mut Vec<Value>)) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let mut header = lines.next().unwrap();
    let mut entries: Vec<Value> = lines.collect();
    edit(&mut header, &mut entries);
    header["entries"] = entries.len().into();
    let mut out = serde_json::to_string(&header).unwrap() + "\n";
    for e in entries {
        out += &(serde_json::to_string(&e).unwrap() + "\n");
    }
    fs::write(path, out).unwrap();
}

#[test]
fn a_tampered_or_misplaced_state_is_refused() {
    if !tools() {
        return;
    }
    let (dir, l) = base_image();
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{l}:v1"),
        bundle.to_str().unwrap(),
    ]));
    let state = bundle.join("hoist-state.json");
    let pristine = fs::read(&state).unwrap();
    let tags = || run_ok(&mut hoist(&["tags", &format!("oci:{l}")]));
    let before = tags();
    let entry = |path: &str| {
        serde_json::json!({"path": path, "type": "file", "mode": 420, "uid": 0, "gid": 0,
            "size": 1, "mtime": 0, "digest": hoist::Digest::sha256(b"x").to_string()})
    };
    type Edit = Box<dyn Fn(&mut Value, &mut Vec<Value>)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("rootfs", Box::new(|h, _| h["rootfs"] = "..".into())),
        ("rootfs", Box::new(|h, _| h["rootfs"] = "/".into())),
        (
            "../../etc/passwd",
            Box::new(move |_, e| e.insert(0, entry("../../etc/passwd"))),
        ),
        (
            "/etc/passwd",
            Box::new(move |_, e| e.insert(0, entry("/etc/passwd"))),
        ),
        (
            "source",
            Box::new(|h, _| h["source"] = "oci:../elsewhere:v1".into()),
        ),
        (
            "manifest",
            Box::new(|h, _| h["manifest"] = "sha256:../../x".into()),
        ),
    ];
    for (what, edit) in cases {
        fs::write(&state, &pristine).unwrap();
        tamper(&state, edit);
        let out = common::run_fail(&mut hoist(&[
            "repack",
            bundle.to_str().unwrap(),
            "--tag",
            "evil",
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{what}: {err}");
        assert_eq!(tags(), before, "{what}: a tag moved");
    }
    assert!(!dir.path().join("elsewhere").exists());
    // A source naming another layout (absolute, so well-formed) that does not hold the unpacked
    // manifest: refused there too, and its tags do not move.
    let other = dir.path().join("other");
    run_ok(&mut sh(&format!(
        "umoci init --layout '{o}' && umoci new --image '{o}:x'",
        o = other.display()
    )));
    fs::write(&state, &pristine).unwrap();
    let other_ref = format!("oci:{}:v1", other.display());
    tamper(&state, |h, _| h["source"] = other_ref.clone().into());
    let out = common::run_fail(&mut hoist(&[
        "repack",
        bundle.to_str().unwrap(),
        "--tag",
        "evil",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sha256:"), "{err}");
    let other_tags = run_ok(&mut hoist(&["tags", &format!("oci:{}", other.display())]));
    assert_eq!(other_tags.trim(), "x");

    // A state the tree's contents could edit is not trusted: inside the rootfs, or linked there.
    fs::write(&state, &pristine).unwrap();
    fs::write(bundle.join("rootfs/state.json"), &pristine).unwrap();
    fs::remove_file(&state).unwrap();
    std::os::unix::fs::symlink("rootfs/state.json", &state).unwrap();
    let out = common::run_fail(&mut hoist(&[
        "repack",
        bundle.to_str().unwrap(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hoist-state.json"));
    let plain = dir.path().join("plain");
    let outside = dir.path().join("plain.state");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--state",
        outside.to_str().unwrap(),
        &format!("oci:{l}:v1"),
        plain.to_str().unwrap(),
    ]));
    fs::copy(&outside, plain.join("state.json")).unwrap();
    let out = common::run_fail(&mut hoist(&[
        "repack",
        "--state",
        plain.join("state.json").to_str().unwrap(),
        plain.to_str().unwrap(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the tree"));
    // A plain tree's record cannot be used as a bundle's, nor the reverse.
    let out = common::run_fail(&mut hoist(&[
        "repack",
        "--state",
        outside.to_str().unwrap(),
        bundle.to_str().unwrap(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain"));
    // The old location inside a plain tree is named and refused.
    fs::rename(plain.join("state.json"), plain.join(".hoist-state.json")).unwrap();
    let out = common::run_fail(&mut hoist(&[
        "repack",
        plain.to_str().unwrap(),
        "--tag",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not trusted"));
    assert_eq!(tags(), before);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: --uid-map needs root");
    }
    root
}

#[test]
fn owners_are_mapped_back_and_the_root_itself_is_repacked() {
    if !tools() || !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("layout").display().to_string();
    common::images::build_two_layer(Path::new(&l), "v1");
    let (t, state) = (dir.path().join("t"), dir.path().join("t.state"));
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--uid-map",
        "0:100000:65536",
        "--gid-map",
        "0:200000:65536",
        "--state",
        state.to_str().unwrap(),
        &format!("oci:{l}:v1"),
        t.to_str().unwrap(),
    ]));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(t.join("etc/motd")).unwrap().uid(), 100000);
    fs::write(t.join("etc/new"), b"new\n").unwrap();
    std::os::unix::fs::chown(t.join("etc/new"), Some(101000), Some(201000)).unwrap();
    fs::set_permissions(&t, fs::Permissions::from_mode(0o750)).unwrap();
    xattr::set(&t, "user.root-note", b"yes").unwrap();
    let out = repack(&[
        "--state",
        state.to_str().unwrap(),
        t.to_str().unwrap(),
        "--tag",
        "v2",
    ]);
    assert!(out["changes"].as_u64().unwrap() >= 3, "{out}");
    let check = dir.path().join("check");
    common::umoci_unpack(&format!("{l}:v2"), &check);
    let r = check.join("rootfs");
    let m = fs::metadata(r.join("etc/new")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (1000, 1000),
        "owners are the image's ids"
    );
    let m = fs::metadata(r.join("etc/motd")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(fs::metadata(&r).unwrap().mode() & 0o7777, 0o750, "./ mode");
    assert_eq!(
        xattr::get(&r, "user.root-note").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    // hoist's own unpack applies the ./ entry's xattrs too.
    let mine = dir.path().join("mine");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        &format!("oci:{l}:v2"),
        mine.to_str().unwrap(),
    ]));
    assert_eq!(fs::metadata(&mine).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(
        xattr::get(&mine, "user.root-note").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    // An owner outside the maps has no id in the image: refused, naming the file.
    fs::write(t.join("etc/stray"), b"x").unwrap();
    std::os::unix::fs::chown(t.join("etc/stray"), Some(5), Some(5)).unwrap();
    let out = common::run_fail(&mut hoist(&[
        "repack",
        "--state",
        state.to_str().unwrap(),
        t.to_str().unwrap(),
        "--tag",
        "v3",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("etc/stray") && err.contains("uid-map"),
        "{err}"
    );
}
