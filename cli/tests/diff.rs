//! End-to-end tests of `hoist diff` and `hoist config` against umoci, skopeo and oci-image-tool: a
//! layer hoist writes, applied by `umoci unpack` over a base umoci built from LOWER, must give UPPER.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::unpack::{assert_same_as, describe};
use common::{hoist, require_tool, run_fail, run_ok};
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn write(p: &Path, content: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, content).unwrap();
}

/// LOWER and UPPER trees with every kind of change.
fn trees(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let lower = dir.join("lower");
    let upper = dir.join("upper");
    write(&lower.join("etc/a"), "alpha\n");
    write(&lower.join("etc/b"), "bravo\n");
    write(&lower.join("etc/gone"), "bye\n");
    write(&lower.join("d1/sub/x"), "x\n");
    write(&lower.join("d2/z"), "z\n");
    for i in 0..5 {
        write(&lower.join(format!("wipe/f{i}")), "old\n");
    }
    write(&lower.join("big/data"), &"0123456789".repeat(100_000));
    symlink("etc/a", lower.join("la")).unwrap();
    run_ok(&mut common::sh(&format!(
        "cp -a '{}' '{}'",
        lower.display(),
        upper.display()
    )));
    write(&upper.join("etc/a"), "alpha, edited\n");
    fs::set_permissions(upper.join("etc/b"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(upper.join("etc/gone")).unwrap();
    fs::remove_dir_all(upper.join("d1")).unwrap();
    fs::remove_dir_all(upper.join("d2")).unwrap();
    write(&upper.join("d2"), "d2 is a file\n");
    for i in 0..5 {
        fs::remove_file(upper.join(format!("wipe/f{i}"))).unwrap();
    }
    write(&upper.join("wipe/fresh"), "fresh\n");
    write(&upper.join("new/n"), "new\n");
    fs::hard_link(upper.join("new/n"), upper.join("new/n-hard")).unwrap();
    symlink("../etc/b", upper.join("new/lb")).unwrap();
    fs::remove_file(upper.join("la")).unwrap();
    symlink("etc/b", upper.join("la")).unwrap();
    xattr::set(upper.join("etc/a"), "user.hoist", b"yes").unwrap();
    let long = upper.join(format!("{}/{}", "l".repeat(80), "m".repeat(110)));
    write(&long, "long name\n");
    (lower, upper)
}

#[test]
fn layer_applied_by_umoci_reproduces_upper_and_validates() {
    if !(require_tool("umoci") && require_tool("skopeo") && require_tool("oci-image-tool")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = trees(t.path());
    let layout = t.path().join("layout");
    common::images::image_from_tree(&layout, "base", &lower);
    let l = layout.display().to_string();
    let before = json(&run_ok(&mut hoist(&["inspect", &format!("oci:{l}:base")])));

    let out = json(&run_ok(&mut hoist(&[
        "diff",
        &lower.display().to_string(),
        &upper.display().to_string(),
        "--image",
        &format!("oci:{l}:base"),
        "--tag",
        "new",
        "--history.created_by",
        "hoist diff test",
    ])));
    // The layer blob is the one the output names, and the base tag did not move.
    let blob = layout.join("blobs/sha256").join(
        out["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    assert_eq!(
        hoist::Digest::sha256(&fs::read(&blob).unwrap()).to_string(),
        out["digest"].as_str().unwrap()
    );
    let base_now = json(&run_ok(&mut hoist(&["inspect", &format!("oci:{l}:base")])));
    assert_eq!(base_now["Digest"], before["Digest"]);

    // umoci applies it on top of the base and gets UPPER back.
    let bundle = t.path().join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{l}:new"),
        &bundle.display().to_string(),
    ]));
    // Times are left out: the files the layer does not carry come from umoci's base layer, and umoci
    // (Go's archive/tar) rounds their mtimes to the nearest second where UPPER has them truncated.
    let without_times = |mut t: common::unpack::Tree| {
        t.nodes.values_mut().for_each(|n| n.mtime = None);
        t
    };
    let want = without_times(describe(&upper));
    let got = without_times(describe(&bundle.join("rootfs")));
    assert_same_as(("umoci's unpack", &got), ("UPPER", &want), true);
    let hard: BTreeSet<PathBuf> = ["new/n", "new/n-hard"].iter().map(PathBuf::from).collect();
    assert_eq!(want.links, BTreeSet::from([hard]));

    // skopeo sees two layers and diff_ids that match, and the history entry.
    let config = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{l}:new"),
    ])));
    let ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], out["diffId"]);
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["created_by"], "hoist diff test");
    run_ok(&mut hoist(&["verify", &format!("oci:{l}:new")]));

    // oci-image-tool validates the new image (in a layout of its own: 1.0.0-rc1 is confused by
    // index.json entries beside the one it checks).
    let copy = t.path().join("copy").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{l}:new"),
        &format!("oci:{copy}:new"),
    ]));
    run_ok(
        Command::new("oci-image-tool")
            .args(["validate", "--type", "image", &copy, "--ref", "name=new"]),
    );
}

fn diff_to(lower: &Path, upper: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "diff".to_string(),
        lower.display().to_string(),
        upper.display().to_string(),
        "-o".to_string(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    json(&run_ok(&mut hoist(&refs)))
}

#[test]
fn diff_to_file_is_reproducible_with_an_epoch_and_names_its_digests() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = trees(t.path());
    let gz = t.path().join("layer.tar.gz");
    let first = diff_to(&lower, &upper, &gz, &["--source-date-epoch", "1700000000"]);
    let first_bytes = fs::read(&gz).unwrap();
    assert_eq!(
        first["digest"],
        hoist::Digest::sha256(&first_bytes).to_string()
    );
    assert_eq!(
        first["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let plain = Command::new("gzip").arg("-dc").arg(&gz).output().unwrap();
    assert!(plain.status.success());
    assert_eq!(
        first["diffId"],
        hoist::Digest::sha256(&plain.stdout).to_string()
    );

    // The same trees made again a second later: same epoch, same bytes.
    let t2 = tempfile::tempdir().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (lower2, upper2) = trees(t2.path());
    let again = diff_to(
        &lower2,
        &upper2,
        &gz,
        &["--source-date-epoch", "1700000000"],
    );
    assert_eq!(again, first);
    assert_eq!(fs::read(&gz).unwrap(), first_bytes);

    // Extension picks zstd; --uid/--gid show up in every header (checked with GNU tar).
    let zst = t.path().join("layer.tar.zst");
    let z = diff_to(&lower, &upper, &zst, &["--uid", "4242", "--gid", "4343"]);
    assert_eq!(
        z["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(z["diffId"].as_str().unwrap().len(), 71);
    assert_eq!(&fs::read(&zst).unwrap()[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let listing = run_ok(&mut common::sh(&format!(
        "zstd -dc '{}' | tar --numeric-owner -tvf -",
        zst.display()
    )));
    assert!(listing.lines().count() > 5, "{listing}");
    assert!(
        listing.lines().all(|l| l.contains("4242/4343")),
        "{listing}"
    );
    assert!(
        listing.contains(".wh.gone") && listing.contains("wipe/.wh..wh..opq"),
        "{listing}"
    );
}

#[test]
fn diff_list_and_bad_arguments() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = trees(t.path());
    let list = run_ok(&mut hoist(&[
        "diff",
        "--list",
        &lower.display().to_string(),
        &upper.display().to_string(),
    ]));
    for want in [
        "D etc/gone",
        "D d1",
        "M d2 (type)",
        "A new/n",
        "M etc/b (mode)",
    ] {
        assert!(
            list.lines()
                .any(|l| l == want || l.starts_with(&format!("{want} "))),
            "{want}: {list}"
        );
    }
    let err = run_fail(&mut hoist(&[
        "diff",
        &t.path().join("missing").display().to_string(),
        &upper.display().to_string(),
        "-o",
        &t.path().join("x.tar").display().to_string(),
    ]));
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(
        msg.contains("missing") && msg.contains("not a directory"),
        "{msg}"
    );
    assert!(!t.path().join("x.tar").exists());
}

#[test]
fn config_edits_are_seen_by_skopeo_and_umoci() {
    if !(require_tool("umoci") && require_tool("skopeo") && require_tool("oci-image-tool")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "v1");
    let l = layout.display().to_string();
    let old = json(&run_ok(&mut hoist(&["inspect", &format!("oci:{l}:v1")])));
    let digest = run_ok(&mut hoist(&[
        "config",
        "--image",
        &format!("oci:{l}:v1"),
        "--tag",
        "v2",
        "--config.env",
        "HOIST_TEST=2",
        "--config.env",
        "NEW=yes",
        "--config.entrypoint",
        "/bin/sh",
        "--config.entrypoint",
        "-c",
        "--config.cmd",
        "echo hi",
        "--config.user",
        "1000:1000",
        "--config.workingdir",
        "/work",
        "--config.label",
        "org.example.two=2",
        "--config.exposedports",
        "8080",
        "--config.exposedports",
        "53/udp",
        "--config.volume",
        "/data",
        "--author",
        "hoist config test",
        "--created",
        "2024-01-02T03:04:05Z",
        "--history.comment",
        "edited",
    ]));
    let digest = digest.trim();
    let cfg = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{l}:v2"),
    ])));
    let c = &cfg["config"];
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/usr/bin:/bin", "HOIST_TEST=2", "NEW=yes"])
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo hi"]));
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/work");
    assert_eq!(c["Labels"]["org.example.label"], "yes");
    assert_eq!(c["Labels"]["org.example.two"], "2");
    assert!(
        c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some()
    );
    assert!(c["Volumes"].get("/data").is_some());
    assert_eq!(cfg["author"], "hoist config test");
    assert_eq!(cfg["created"], "2024-01-02T03:04:05Z");
    let h = cfg["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(h["created_by"], "hoist config");
    assert_eq!(h["comment"], "edited");
    assert_eq!(h["empty_layer"], true);

    let inspected = json(&run_ok(
        Command::new("skopeo").args(["inspect", &format!("oci:{l}:v2")]),
    ));
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["Layers"], old["Layers"]);
    let stat = run_ok(Command::new("umoci").args(["stat", "--image", &format!("{l}:v2")]));
    assert!(
        stat.contains("hoist config") && stat.contains("edited"),
        "{stat}"
    );

    // v1 is untouched; --clear empties a field; the old manifest stays until gc.
    let v1 = json(&run_ok(&mut hoist(&["inspect", &format!("oci:{l}:v1")])));
    assert_eq!(v1["Digest"], old["Digest"]);
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &format!("oci:{l}:v2"),
        "--clear",
        "config.env",
        "--config.env",
        "ONLY=1",
        "--no-history",
    ]));
    let cfg3 = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{l}:v2"),
    ])));
    assert_eq!(cfg3["config"]["Env"], serde_json::json!(["ONLY=1"]));
    assert_eq!(cfg3["history"], cfg["history"]);
    assert!(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
            .exists()
    );

    let copy = t.path().join("copy").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{l}:v2"),
        &format!("oci:{copy}:v2"),
    ]));
    run_ok(
        Command::new("oci-image-tool")
            .args(["validate", "--type", "image", &copy, "--ref", "name=v2"]),
    );
}

#[test]
fn config_refuses_bad_input_and_changes_nothing() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "v1");
    let l = layout.display().to_string();
    let before = common::snapshot(&layout);
    let image = format!("oci:{l}:v1");
    for (args, needle) in [
        (vec!["--config.env", "=x"], "KEY=VALUE"),
        (vec!["--created", "yesterday"], "RFC 3339"),
        (vec!["--config.exposedports", "http"], "exposed port"),
        (vec!["--clear", "config.nothing"], "cannot clear"),
    ] {
        let mut full = vec!["config", "--image", &image];
        full.extend(args);
        let out = run_fail(&mut hoist(&full));
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    let out = run_fail(&mut hoist(&[
        "config",
        "--image",
        &format!("oci:{l}:nope"),
        "--config.user",
        "x",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = run_fail(&mut hoist(&[
        "config",
        "--image",
        &format!("dir:{l}"),
        "--config.user",
        "x",
    ]));
    // Every transport is edited now (issue #17): a layout named as dir: is no skopeo directory.
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest.json not found"));
    assert_eq!(common::snapshot(&layout), before);
}

#[test]
fn diff_lists_a_same_size_same_mtime_edit() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
    write(&lower.join("etc/conf"), "value=1\n");
    run_ok(&mut common::sh(&format!(
        "cp -a '{l}' '{u}' && printf 'value=2\\n' > '{u}/etc/conf' && \
         touch -r '{l}/etc/conf' '{u}/etc/conf' && touch -r '{l}/etc' '{u}/etc'",
        l = lower.display(),
        u = upper.display()
    )));
    let list = run_ok(&mut hoist(&[
        "diff",
        "--list",
        &lower.display().to_string(),
        &upper.display().to_string(),
    ]));
    assert_eq!(list.trim(), "M etc/conf (content)");
}

#[test]
fn diff_against_an_unpack_record_and_refusing_an_unfinished_tree() {
    if !require_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    common::images::build_two_layer(&layout, "v1");
    let (tree, state) = (t.path().join("tree"), t.path().join("tree.state"));
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--state",
        state.to_str().unwrap(),
        &format!("oci:{}:v1", layout.display()),
        tree.to_str().unwrap(),
    ]));
    let list = |extra: &[&str]| {
        let mut a = vec!["diff", "--list", "--state", state.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.push(tree.to_str().unwrap());
        run_ok(&mut hoist(&a))
    };
    assert_eq!(list(&[]).trim(), "");
    fs::write(tree.join("usr/bin/hi"), "#!/bin/sh\necho HI\n").unwrap();
    run_ok(&mut common::sh(&format!(
        "touch -d @1 '{}'",
        tree.join("usr/bin/hi").display()
    )));
    let out = list(&[]);
    assert!(out.contains("M usr/bin/hi"), "{out}");
    // The record of a plain tree inside that tree is refused.
    fs::copy(&state, tree.join("s")).unwrap();
    let out = run_fail(&mut hoist(&[
        "diff",
        "--list",
        "--state",
        tree.join("s").to_str().unwrap(),
        tree.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the tree"));
    fs::remove_file(tree.join("s")).unwrap();
    // A tree an unpack did not finish is refused, not diffed without its marker.
    fs::write(tree.join(".hoist-unpack-incomplete"), "").unwrap();
    let out = run_fail(&mut hoist(&[
        "diff",
        "--list",
        &tree.display().to_string(),
        &tree.display().to_string(),
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unfinished unpack"));
}

/// umoci's unpack of `reference` (any transport skopeo reads, copied into a layout of its own by
/// skopeo) is UPPER, times aside (see `layer_applied_by_umoci_reproduces_upper_and_validates`).
fn assert_unpacks_to_upper(reference: &str, upper: &Path, work: &Path, extra: &[&str]) {
    let layout = work.join("check-layout");
    let bundle = work.join("check-bundle");
    let _ = fs::remove_dir_all(&layout);
    let _ = fs::remove_dir_all(&bundle);
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "-q"])
        .args(extra)
        .args([reference, &format!("oci:{}:check", layout.display())]);
    run_ok(&mut copy);
    run_ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:check", layout.display()),
        &bundle.display().to_string(),
    ]));
    let without_times = |mut t: common::unpack::Tree| {
        t.nodes.values_mut().for_each(|n| n.mtime = None);
        t
    };
    assert_same_as(
        (reference, &without_times(describe(&bundle.join("rootfs")))),
        ("UPPER", &without_times(describe(upper))),
        true,
    );
}

/// The config's diff_ids of `reference` as skopeo reads them.
fn skopeo_diff_ids(reference: &str, extra: &[&str]) -> Vec<Value> {
    let out = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .args(extra)
            .arg(reference),
    );
    json(&out)["rootfs"]["diff_ids"].as_array().unwrap().clone()
}

#[test]
fn diff_image_appends_to_an_oci_archive_and_a_registry_image() {
    if !(require_tool("umoci") && require_tool("skopeo") && require_tool("docker-registry")) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = trees(t.path());
    let layout = t.path().join("layout");
    common::images::image_from_tree(&layout, "base", &lower);
    let base = format!("oci:{}:base", layout.display());
    let (low, up) = (lower.display().to_string(), upper.display().to_string());

    // An oci-archive holding the one image: the layer is appended and the archive written again.
    let archive = t.path().join("a.tar");
    let a = format!("oci-archive:{}:base", archive.display());
    run_ok(&mut hoist(&["copy", "-q", &base, &a]));
    let out = json(&run_ok(&mut hoist(&["diff", &low, &up, "--image", &a])));
    let ids = skopeo_diff_ids(&a, &[]);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[1], out["diffId"]);
    run_ok(&mut hoist(&["verify", &a]));
    assert_unpacks_to_upper(&a, &upper, t.path(), &[]);

    // An archive holding other images is not rewritten (they would be dropped), nor is a tag given
    // to a transport that has no repository of tags.
    run_ok(&mut hoist(&["tag", &base, "other"]));
    let two = t.path().join("two.tar");
    run_ok(Command::new("tar").args([
        "-cf",
        two.to_str().unwrap(),
        "-C",
        layout.to_str().unwrap(),
        "oci-layout",
        "index.json",
        "blobs",
    ]));
    let before = fs::read(&two).unwrap();
    let out = run_fail(&mut hoist(&[
        "diff",
        &low,
        &up,
        "--image",
        &format!("oci-archive:{}:base", two.display()),
    ]));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("holds other images"), "{msg}");
    let out = run_fail(&mut hoist(&[
        "diff", &low, &up, "--image", &a, "--tag", "v2",
    ]));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("--tag") && msg.contains("oci-archive has none"),
        "{msg}"
    );
    assert_eq!(fs::read(&two).unwrap(), before);

    // A registry image: the new image goes to --tag in the same repository, the base stays.
    let reg = common::registry::Registry::start();
    let v1 = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &base,
        &v1,
    ]));
    let v1_before = json(&run_ok(&mut hoist(&["inspect", "--tls-verify=false", &v1])));
    let out = json(&run_ok(&mut hoist(&[
        "diff",
        &low,
        &up,
        "--image",
        &v1,
        "--tag",
        "v2",
        "--tls-verify=false",
    ])));
    let v2 = format!("{}:v2", reg.url("app"));
    let ids = skopeo_diff_ids(&v2, &["--tls-verify=false"]);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[1], out["diffId"]);
    let v2_now = json(&run_ok(&mut hoist(&["inspect", "--tls-verify=false", &v2])));
    assert_eq!(v2_now["Digest"], out["manifest"]);
    let v1_now = json(&run_ok(&mut hoist(&["inspect", "--tls-verify=false", &v1])));
    assert_eq!(v1_now["Digest"], v1_before["Digest"]);
    assert_unpacks_to_upper(&v2, &upper, t.path(), &["--src-tls-verify=false"]);
}
