//! End-to-end tests of the image builder verbs (`hoist new`, `hoist append`) against umoci, skopeo,
//! oci-image-tool and docker-registry: every image built is read back by the real tools.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};

use common::docker::{skopeo_config, skopeo_manifest, validate};
use common::images::build_two_layer;
use common::registry::Registry;
use common::unpack::{assert_same_as, describe};
use common::{hoist, require_tool, run_fail, run_ok};

fn tools() -> bool {
    ["umoci", "skopeo", "oci-image-tool"]
        .iter()
        .all(|t| require_tool(t))
}

fn write(p: &Path, content: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, content).unwrap();
}

/// A small tree: nested files, an executable, a symlink, a hardlink, an empty directory.
fn tree(dir: &Path) {
    write(&dir.join("etc/app.conf"), "key = value\n");
    write(&dir.join("bin/run"), "#!/bin/sh\necho run\n");
    fs::set_permissions(dir.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../etc/app.conf", dir.join("bin/conf")).unwrap();
    fs::hard_link(dir.join("etc/app.conf"), dir.join("etc/app.hard")).unwrap();
    fs::create_dir_all(dir.join("var/empty")).unwrap();
    // Whole seconds: Go's tar (umoci) rounds sub-second times, hoist truncates as GNU tar does.
    run_ok(&mut common::sh(&format!(
        "find {} -exec touch -h -d @1700000000 {{}} +",
        dir.display()
    )));
}

fn unpacked(layout: &Path, tag: &str, into: &Path) -> std::path::PathBuf {
    run_ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:{tag}", layout.display()),
        &into.display().to_string(),
    ]));
    into.join("rootfs")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn append_directory_gives_the_tree_umoci_insert_gives() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "base");
    let src = w.join("src");
    tree(&src);
    // hoist: the tree at the root, then the same tree under /opt/app.
    run_ok(&mut hoist(&[
        "append",
        "--base",
        &format!("oci:{}:base", layout.display()),
        &format!("oci:{}:hoist", layout.display()),
        &src.display().to_string(),
        &format!("{}:/opt/app", src.display()),
    ]));
    // umoci: the same two inserts.
    run_ok(Command::new("umoci").args([
        "tag",
        "--image",
        &format!("{}:base", layout.display()),
        "umoci",
    ]));
    for target in ["/", "/opt/app"] {
        run_ok(Command::new("umoci").args([
            "insert",
            "--image",
            &format!("{}:umoci", layout.display()),
            &src.display().to_string(),
            target,
        ]));
    }
    validate(&layout, "hoist");
    let h = unpacked(&layout, "hoist", &w.join("bh"));
    let u = unpacked(&layout, "umoci", &w.join("bu"));
    assert!(h.join("etc/motd").is_file(), "the base's files are kept");
    assert!(h.join("opt/app/bin/run").is_file());
    assert_same_as(("hoist", &describe(&h)), ("umoci", &describe(&u)), true);
    // Two layers on top of the base's two; history records each.
    let config = skopeo_config(&format!("oci:{}:hoist", layout.display()));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    let history = config["history"].as_array().unwrap();
    assert!(
        history.last().unwrap()["created_by"]
            .as_str()
            .unwrap()
            .contains("/opt/app"),
        "{history:?}"
    );
}

#[test]
fn append_tarballs_plain_gzip_zstd_and_stdin_with_owner_and_compression() {
    if !tools() || !require_tool("zstd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for (name, content) in [("p", "plain"), ("g", "gzip"), ("z", "zstd"), ("s", "stdin")] {
        write(&w.join(format!("t{name}/files/{name}.txt")), content);
    }
    run_ok(&mut common::sh(&format!(
        "cd {w}; tar -C tp -cf p.tar files; tar -C tg -czf g.tar.gz files; \
         tar -C tz -cf - files | zstd -q -o z.tar.zst; tar -C ts -cf s.tar files",
        w = w.display()
    )));
    let layout = w.join("layout");
    run_ok(&mut hoist(&[
        "new",
        &format!("oci:{}:base", layout.display()),
    ]));
    let stdin_tar = fs::read(w.join("s.tar")).unwrap();
    let mut child = hoist(&[
        "append",
        "--dest-compress-format",
        "none",
        "--base",
        &format!("oci:{}:base", layout.display()),
        &format!("oci:{}:v1", layout.display()),
        &w.join("p.tar").display().to_string(),
        &w.join("g.tar.gz").display().to_string(),
        &w.join("z.tar.zst").display().to_string(),
        "-",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(&stdin_tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // (oci-image-tool's schemas predate zstd layers: it refuses their media type.)
    let manifest = skopeo_manifest(&format!("oci:{}:v1", layout.display()));
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["application/vnd.oci.image.layer.v1.tar"; 4],
        "--dest-compress-format none"
    );
    let root = unpacked(&layout, "v1", &w.join("b"));
    for (name, content) in [("p", "plain"), ("g", "gzip"), ("z", "zstd"), ("s", "stdin")] {
        assert_eq!(
            fs::read_to_string(root.join(format!("files/{name}.txt"))).unwrap(),
            content
        );
    }
    // --uid/--gid give a directory layer's entries an owner.
    run_ok(&mut hoist(&[
        "append",
        "--dest-compress-format",
        "none",
        "--uid",
        "1234",
        "--gid",
        "5678",
        &format!("oci:{}:v1", layout.display()),
        &format!("{}:/owned", w.join("tp").display()),
    ]));
    let root = unpacked(&layout, "v1", &w.join("b2"));
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(root.join("owned/files/p.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678), "--uid/--gid");
    // --uid on a tarball layer is refused, not ignored: its entries are kept as they are.
    let out = run_fail(&mut hoist(&[
        "append",
        "--uid",
        "0",
        &format!("oci:{}:v1", layout.display()),
        &w.join("p.tar").display().to_string(),
    ]));
    assert!(stderr(&out).contains("--uid"), "{}", stderr(&out));
    // zstd (umoci cannot read it: hoist verifies every diff_id and skopeo reads the manifest).
    run_ok(&mut hoist(&[
        "append",
        "--dest-compress-format",
        "zstd",
        "--base",
        &format!("oci:{}:v1", layout.display()),
        &format!("oci:{}:v2", layout.display()),
        &w.join("g.tar.gz").display().to_string(),
    ]));
    let manifest = skopeo_manifest(&format!("oci:{}:v2", layout.display()));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6); // 4 tarballs, the owned directory, this one
    assert_eq!(
        layers[5]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    run_ok(&mut hoist(&[
        "verify",
        &format!("oci:{}:v2", layout.display()),
    ]));
}

#[test]
fn append_remove_and_opaque_write_whiteouts_umoci_applies() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "v1");
    // No --base: DEST is edited in place, as `umoci insert` does.
    run_ok(&mut hoist(&[
        "append",
        "--remove",
        "/etc/motd",
        "--opaque",
        "/data",
        "--history-comment",
        "cleanup",
        &format!("oci:{}:v1", layout.display()),
    ]));
    validate(&layout, "v1");
    let root = unpacked(&layout, "v1", &w.join("b"));
    assert!(!root.join("etc/motd").exists(), "--remove");
    assert!(root.join("etc").is_dir());
    assert!(root.join("usr/bin/hi").is_file());
    assert_eq!(
        fs::read_dir(root.join("data")).unwrap().count(),
        0,
        "--opaque hides what lower layers had"
    );
    let config = skopeo_config(&format!("oci:{}:v1", layout.display()));
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["comment"],
        "cleanup"
    );
}

#[test]
fn append_is_reproducible_across_directories_and_runs() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (a, b) = (w.join("a"), w.join("b"));
    tree(&a);
    tree(&b);
    // b's copy is newer than the epoch: SOURCE_DATE_EPOCH clamps it to a's times.
    run_ok(&mut common::sh(&format!(
        "find {} -exec touch -h -d @1800000000 {{}} +",
        b.display()
    )));
    let mut digests = Vec::new();
    for (i, dir) in [&a, &b].into_iter().enumerate() {
        // A second apart, so that a time taken from the clock instead of the epoch shows.
        std::thread::sleep(std::time::Duration::from_millis(1100 * i as u64));
        let layout = w.join(format!("layout{i}"));
        let base = format!("oci:{}:base", layout.display());
        run_ok(hoist(&["new", &base]).env("SOURCE_DATE_EPOCH", "1700000000"));
        let out = run_ok(
            hoist(&[
                "append",
                "--base",
                &base,
                &format!("oci:{}:v1", layout.display()),
                &dir.display().to_string(),
            ])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
        );
        digests.push(out.trim().to_string());
    }
    assert!(digests[0].starts_with("sha256:"), "{digests:?}");
    assert_eq!(
        digests[0], digests[1],
        "same tree, same epoch: same manifest"
    );
}

#[test]
fn new_writes_an_empty_image_for_the_platform() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    run_ok(&mut hoist(&[
        "new",
        "--platform",
        "linux/arm64",
        &format!("oci:{}:empty", layout.display()),
    ]));
    // (oci-image-tool's schemas predate empty images: `umoci new`'s fail it the same way.)
    let config = skopeo_config(&format!("oci:{}:empty", layout.display()));
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 0);
    let root = unpacked(&layout, "empty", &work.path().join("b"));
    assert_eq!(fs::read_dir(root).unwrap().count(), 0);
}

#[test]
fn append_onto_a_registry_base_never_downloads_its_layers() {
    if !tools() || !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "v1");
    let base = format!("{}:v1", reg.url("base"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &base,
    ]));
    let manifest = skopeo_manifest(&format!("oci:{}:v1", layout.display()));
    let base_layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let src = w.join("src");
    tree(&src);
    for dest in [
        format!("{}:v1", reg.url("app")),
        format!("{}:v2", reg.url("base")),
    ] {
        run_ok(&mut hoist(&[
            "append",
            "--tls-verify=false",
            "--base",
            &base,
            &dest,
            &src.display().to_string(),
        ]));
    }
    for digest in &base_layers {
        assert_eq!(
            reg.count("GET", digest),
            0,
            "base layer {digest} was downloaded:\n{}",
            fs::read_to_string(&reg.log).unwrap_or_default()
        );
    }
    // The registry holds a complete image: skopeo copies it out and umoci unpacks it.
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("{}:v1", reg.url("app")),
        &format!("oci:{}:pulled", layout.display()),
    ]));
    let root = unpacked(&layout, "pulled", &w.join("b"));
    assert!(root.join("etc/motd").is_file());
    assert!(root.join("bin/run").is_file());
}

#[test]
fn append_refuses_bad_input_and_writes_nothing() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "v1");
    let before = common::snapshot(&layout);
    let v1 = format!("oci:{}:v1", layout.display());
    let v2 = format!("oci:{}:v2", layout.display());
    // A tarball with a path that escapes.
    let evil = w.join("evil.tar");
    common::docker::write_tar(&evil, &[("../escape".into(), b"x".to_vec())]);
    let out = run_fail(&mut hoist(&[
        "append",
        "--base",
        &v1,
        &v2,
        &evil.display().to_string(),
    ]));
    assert!(stderr(&out).contains(".."), "{}", stderr(&out));
    // DIR:PATH whose PATH escapes, and --remove of a path that escapes.
    let src = w.join("src");
    tree(&src);
    let out = run_fail(&mut hoist(&[
        "append",
        "--base",
        &v1,
        &v2,
        &format!("{}:/../x", src.display()),
    ]));
    assert!(stderr(&out).contains(".."), "{}", stderr(&out));
    let out = run_fail(&mut hoist(&[
        "append", "--base", &v1, &v2, "--remove", "../x",
    ]));
    assert!(stderr(&out).contains(".."), "{}", stderr(&out));
    // A symlinked source directory is named, never followed (its own symlink loop is kept as a link).
    symlink(&src, w.join("src-link")).unwrap();
    let out = run_fail(&mut hoist(&[
        "append",
        "--base",
        &v1,
        &v2,
        &w.join("src-link").display().to_string(),
    ]));
    assert!(stderr(&out).contains("is a symlink"), "{}", stderr(&out));
    // A layer that does not exist.
    let out = run_fail(&mut hoist(&[
        "append",
        "--base",
        &v1,
        &v2,
        "/nonexistent/layer",
    ]));
    assert!(
        stderr(&out).contains("/nonexistent/layer"),
        "{}",
        stderr(&out)
    );
    // A missing base.
    let out = run_fail(&mut hoist(&[
        "append",
        "--base",
        &format!("oci:{}:nosuchtag", layout.display()),
        &v2,
        &src.display().to_string(),
    ]));
    assert!(stderr(&out).contains("nosuchtag"), "{}", stderr(&out));
    assert_eq!(common::snapshot(&layout), before, "nothing was written");
    // A zstd layer onto a Docker manifest.
    let docker_dir = w.join("docker");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--format",
        "v2s2",
        &v1,
        &format!("dir:{}", docker_dir.display()),
    ]));
    let out = run_fail(&mut hoist(&[
        "append",
        "--dest-compress-format",
        "zstd",
        "--base",
        &format!("dir:{}", docker_dir.display()),
        &v2,
        &src.display().to_string(),
    ]));
    assert!(stderr(&out).contains("Docker manifest"), "{}", stderr(&out));
    assert_eq!(common::snapshot(&layout), before, "nothing was written");
    // gzip onto it is fine: the new layer gets the Docker media type, the manifest stays Docker's.
    let docker_out = format!("dir:{}", w.join("docker-out").display());
    run_ok(&mut hoist(&[
        "append",
        "--base",
        &format!("dir:{}", docker_dir.display()),
        &docker_out,
        &src.display().to_string(),
    ]));
    let manifest = skopeo_manifest(&docker_out);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["layers"][2]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
}

/// Writes an index over `entries` (`(tag, os, arch)` of images already in the layout) under `tag`.
fn write_index(layout: &Path, tag: &str, entries: &[(&str, &str, &str)]) -> String {
    use hoist::layout::Layout;
    use hoist::reference::LayoutRef;
    let l = Layout::open(layout).unwrap();
    let mut manifests = Vec::new();
    for (t, os, arch) in entries {
        let d = l.resolve(Some(&LayoutRef::Tag(t.to_string()))).unwrap();
        manifests.push(serde_json::json!({
            "mediaType": d.media_type().to_string(),
            "digest": d.digest().to_string(),
            "size": d.size(),
            "platform": {"os": os, "architecture": arch},
            "annotations": {"x-kept": *t},
        }));
    }
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": hoist::media_type::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let doc = hoist::document::Document::new(hoist::media_type::OCI_INDEX, bytes).unwrap();
    let _lock = l.lock().unwrap();
    l.write_bytes(doc.bytes()).unwrap();
    l.set_tag(Some(tag), &doc.descriptor()).unwrap();
    doc.digest().to_string()
}

#[test]
fn config_edits_a_registry_image_without_pulling_a_layer() {
    if !tools() || !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    build_two_layer(&layout, "v1");
    let app = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &app,
    ]));
    let layers: Vec<String> = skopeo_manifest(&format!("oci:{}:v1", layout.display()))["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    // In place, then into another repository.
    run_ok(&mut hoist(&[
        "config",
        "--tls-verify=false",
        "--image",
        &app,
        "--label",
        "org.example.edited=yes",
        "--annotation",
        "team=web",
        "--config.env",
        "EDITED=1",
    ]));
    let other = format!("{}:v2", reg.url("other"));
    run_ok(&mut hoist(&[
        "config",
        "--tls-verify=false",
        "--image",
        &app,
        "--dest",
        &other,
        "--config.cmd",
        "/bin/true",
    ]));
    for digest in &layers {
        assert_eq!(reg.count("GET", digest), 0, "layer {digest} was pulled");
    }
    let config =
        run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--config", &other]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["config"]["Labels"]["org.example.edited"], "yes");
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("EDITED=1"))
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/true"]));
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &app]));
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["annotations"]["team"], "web");
    // The whole image is there: skopeo copies it out, umoci unpacks it.
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &other,
        &format!("oci:{}:pulled", layout.display()),
    ]));
    let root = unpacked(&layout, "pulled", &work.path().join("b"));
    assert!(root.join("etc/motd").is_file());
}

#[test]
fn config_on_dir_and_archive_transports() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "v1");
    let dir = format!("dir:{}", w.join("d").display());
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:v1", layout.display()),
        &dir,
    ]));
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &dir,
        "--config.user",
        "1000",
    ]));
    let archive = format!("oci-archive:{}:v9", w.join("a.tar").display());
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &dir,
        "--dest",
        &archive,
        "--config.workingdir",
        "/srv",
    ]));
    let config = skopeo_config(&archive);
    assert_eq!(
        config["config"]["User"], "1000",
        "the in-place edit of dir:"
    );
    assert_eq!(config["config"]["WorkingDir"], "/srv");
    run_ok(&mut hoist(&["verify", &archive]));
}

#[test]
fn config_with_platform_writes_a_new_index_entry() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    let src = w.join("src");
    tree(&src);
    for arch in ["amd64", "arm64"] {
        let r = format!("oci:{}:{arch}", layout.display());
        run_ok(&mut hoist(&[
            "new",
            "--platform",
            &format!("linux/{arch}"),
            &r,
        ]));
        run_ok(&mut hoist(&["append", &r, &src.display().to_string()]));
    }
    write_index(
        &layout,
        "multi",
        &[("amd64", "linux", "amd64"), ("arm64", "linux", "arm64")],
    );
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &format!("oci:{}:multi", layout.display()),
        "--platform",
        "linux/arm64",
        "--config.env",
        "MODE=arm",
        "--dest",
        &format!("oci:{}:v2", layout.display()),
    ]));
    let v2 = format!("oci:{}:v2", layout.display());
    let index = skopeo_manifest(&v2);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(
        entries[1]["annotations"]["x-kept"], "arm64",
        "the entry keeps its fields"
    );
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");
    let arm = run_ok(Command::new("skopeo").args([
        "--override-arch",
        "arm64",
        "inspect",
        "--config",
        &v2,
    ]));
    let arm: serde_json::Value = serde_json::from_str(&arm).unwrap();
    assert!(
        arm["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("MODE=arm"))
    );
    // The other platform's image is untouched.
    let amd_digest = entries[0]["digest"].as_str().unwrap();
    let l = hoist::layout::Layout::open(&layout).unwrap();
    let amd64_tag = l
        .resolve(Some(&hoist::reference::LayoutRef::Tag("amd64".into())))
        .unwrap();
    assert_eq!(amd_digest, amd64_tag.digest().to_string());
    run_ok(&mut hoist(&[
        "verify",
        "--all",
        &format!("oci:{}", layout.display()),
    ]));
}

#[test]
fn index_create_add_remove_pulled_back_per_platform_by_skopeo() {
    if !tools() || !require_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    let l = layout.display().to_string();
    for arch in ["amd64", "arm64", "s390x"] {
        let src = w.join(format!("src-{arch}"));
        write(&src.join("arch.txt"), arch);
        let r = format!("oci:{l}:{arch}");
        run_ok(&mut hoist(&[
            "new",
            "--platform",
            &format!("linux/{arch}"),
            &r,
        ]));
        run_ok(&mut hoist(&["append", &r, &src.display().to_string()]));
    }
    let multi = format!("oci:{l}:multi");
    run_ok(&mut hoist(&[
        "index",
        "create",
        "--annotation",
        "org.opencontainers.image.version=1.0",
        &multi,
        &format!("oci:{l}:amd64"),
        &format!("oci:{l}:arm64"),
    ]));
    run_ok(&mut hoist(&[
        "index",
        "add",
        &multi,
        &format!("oci:{l}:s390x"),
    ]));
    let index = skopeo_manifest(&multi);
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "1.0"
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    // Each platform pulled back by skopeo gives its own tree.
    for arch in ["amd64", "arm64", "s390x"] {
        let tag = format!("pulled-{arch}");
        run_ok(Command::new("skopeo").args([
            "--override-arch",
            arch,
            "copy",
            "-q",
            &multi,
            &format!("oci:{l}:{tag}"),
        ]));
        let root = unpacked(&layout, &tag, &w.join(format!("b-{arch}")));
        assert_eq!(fs::read_to_string(root.join("arch.txt")).unwrap(), arch);
    }
    // Remove by platform into a registry: skopeo finds the rest there, not the removed one.
    let reg = Registry::start();
    let pushed = format!("{}:multi", reg.url("multi"));
    run_ok(&mut hoist(&[
        "index",
        "remove",
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
        "--dest",
        &pushed,
        &multi,
    ]));
    let raw =
        run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &pushed]));
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let archs: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "s390x"]);
    let cfg = run_ok(Command::new("skopeo").args([
        "--override-arch",
        "s390x",
        "inspect",
        "--tls-verify=false",
        "--config",
        &pushed,
    ]));
    assert!(cfg.contains("s390x"), "{cfg}");
    // Removing what is not there is an error, and nothing is written.
    let out = run_fail(&mut hoist(&[
        "index",
        "remove",
        "--platform",
        "linux/riscv64",
        &multi,
    ]));
    assert!(stderr(&out).contains("riscv64"), "{}", stderr(&out));
    let out = run_fail(&mut hoist(&[
        "index",
        "add",
        &format!("oci:{l}:amd64"),
        &multi,
    ]));
    assert!(stderr(&out).contains("not an index"), "{}", stderr(&out));
}

#[test]
fn flatten_gives_one_layer_with_the_same_tree() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    let l = layout.display().to_string();
    build_two_layer(&layout, "v1");
    // Nothing is staged outside the destination (the tree is never unpacked to disk).
    let out = hoist(&["flatten", &format!("oci:{l}:v1"), &format!("oci:{l}:flat")])
        .env("TMPDIR", w.join("no-such-dir"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    validate(&layout, "flat");
    let manifest = skopeo_manifest(&format!("oci:{l}:flat"));
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    // The root directory's own entry (umoci's layers have one) is kept, first.
    let blob = layout.join("blobs/sha256").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let listing = run_ok(Command::new("tar").arg("-tzf").arg(&blob));
    assert_eq!(listing.lines().next(), Some("./"), "{listing}");
    let config = skopeo_config(&format!("oci:{l}:flat"));
    assert_eq!(config["history"].as_array().unwrap().len(), 1);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/usr/bin/hi"]),
        "config kept"
    );
    let flat = unpacked(&layout, "flat", &w.join("bf"));
    let orig = unpacked(&layout, "v1", &w.join("bo"));
    assert!(
        !flat.join("data/sub/gone.txt").exists(),
        "the whiteout was applied"
    );
    assert_same_as(
        ("flattened", &describe(&flat)),
        ("layered", &describe(&orig)),
        true,
    );
}

#[test]
fn rebase_moves_the_own_layers_onto_the_new_base() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    let l = layout.display().to_string();
    build_two_layer(&layout, "old");
    let src = w.join("src");
    tree(&src);
    run_ok(&mut hoist(&[
        "append",
        "--base",
        &format!("oci:{l}:old"),
        &format!("oci:{l}:app"),
        &src.display().to_string(),
    ]));
    let newbase = w.join("newbase");
    write(&newbase.join("etc/os-release"), "ID=new\n");
    run_ok(&mut hoist(&["new", &format!("oci:{l}:new")]));
    run_ok(&mut hoist(&[
        "append",
        &format!("oci:{l}:new"),
        &newbase.display().to_string(),
    ]));
    run_ok(&mut hoist(&[
        "rebase",
        "--old-base",
        &format!("oci:{l}:old"),
        "--new-base",
        &format!("oci:{l}:new"),
        &format!("oci:{l}:app"),
        &format!("oci:{l}:rebased"),
    ]));
    // (oci-image-tool calls a ref "not unique" in some layouts of several tags: it checks a copy.)
    let alone = w.join("alone");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{l}:rebased"),
        &format!("oci:{}:rebased", alone.display()),
    ]));
    validate(&alone, "rebased");
    let manifest = skopeo_manifest(&format!("oci:{l}:rebased"));
    let layers = manifest["layers"].as_array().unwrap();
    let app = skopeo_manifest(&format!("oci:{l}:app"));
    let new = skopeo_manifest(&format!("oci:{l}:new"));
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["digest"], new["layers"][0]["digest"]);
    assert_eq!(layers[1]["digest"], app["layers"][2]["digest"]);
    let root = unpacked(&layout, "rebased", &w.join("b"));
    assert!(
        root.join("etc/os-release").is_file(),
        "the new base's files"
    );
    assert!(root.join("bin/run").is_file(), "the image's own files");
    assert!(
        !root.join("etc/motd").exists(),
        "the old base's files are gone"
    );
    // An image that does not sit on the given old base is refused, nothing written.
    let out = run_fail(&mut hoist(&[
        "rebase",
        "--old-base",
        &format!("oci:{l}:new"),
        "--new-base",
        &format!("oci:{l}:old"),
        &format!("oci:{l}:app"),
        &format!("oci:{l}:wrong"),
    ]));
    assert!(stderr(&out).contains("does not sit on"), "{}", stderr(&out));
}

/// An appended layer is written inside the destination layout and moved in (not staged in the
/// system's temp directory and copied): the append works with TMPDIR unusable, leaves no temp file
/// in the layout, and the new layer blob is a file of its own (one link), read back by umoci.
#[test]
fn append_writes_the_layer_straight_into_the_layout() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "base");
    let src = w.join("src");
    tree(&src);
    let out = hoist(&[
        "append",
        &format!("oci:{}:base", layout.display()),
        &src.display().to_string(),
    ])
    .env("TMPDIR", w.join("no-such-dir"))
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The new layer and config are written, the base's two layers found present.
    assert!(
        stderr(&out).contains("2 already present"),
        "{}",
        stderr(&out)
    );
    validate(&layout, "base");
    let manifest = skopeo_manifest(&format!("oci:{}:base", layout.display()));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let top = layers[2]["digest"].as_str().unwrap().replace("sha256:", "");
    let blob = layout.join("blobs/sha256").join(top);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&blob).unwrap().nlink(), 1);
    let strays: Vec<_> = fs::read_dir(&layout)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["blobs", "index.json", "oci-layout"].contains(&n.as_str()))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    let h = unpacked(&layout, "base", &w.join("b"));
    assert!(h.join("etc/app.conf").is_file());
    assert!(h.join("etc/motd").is_file());
}

/// `config` without `--dest` on an oci-archive reads and rewrites the same file: a failure part
/// way (a damaged layer found while the new archive is written) leaves the archive byte for byte
/// as it was, and no temp file beside it.
#[test]
fn an_in_place_edit_of_an_archive_that_fails_leaves_it_as_it_was() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "t");
    let archive = w.join("a.tar");
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{}:t", layout.display()),
        &format!("oci-archive:{}:t", archive.display()),
    ]));
    // Damage the middle of the biggest blob member (a layer) inside the tar.
    let script = format!(
        "import tarfile\nt = tarfile.open('{a}')\nm = max(t.getmembers(), key=lambda m: m.size)\n\
         off = m.offset_data + m.size // 2\nt.close()\nb = bytearray(open('{a}', 'rb').read())\n\
         b[off] ^= 0xff\nopen('{a}', 'wb').write(b)\n",
        a = archive.display()
    );
    run_ok(Command::new("python3").args(["-c", &script]));
    let before = fs::read(&archive).unwrap();
    let out = run_fail(&mut hoist(&[
        "config",
        "--image",
        &format!("oci-archive:{}:t", archive.display()),
        "--config.env",
        "A=B",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
    assert_eq!(fs::read(&archive).unwrap(), before, "the archive changed");
    let left: Vec<_> = fs::read_dir(w)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "layout" && n != "a.tar")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An archive holding several images is written whole: editing one image of it in place (`config`,
/// `append`, `index` without `--dest`), or building into it, would drop the others. It is refused,
/// the archive unchanged; one image under its own tag is still edited in place; `--dest` works.
#[test]
fn in_place_edits_of_an_archive_with_other_images_are_refused_not_dropped() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let layout = w.join("layout");
    build_two_layer(&layout, "t");
    let (l, a, d) = (layout.display(), w.join("a.tar"), w.join("d.tar"));
    let (a, d) = (a.display(), d.display());
    run_ok(&mut hoist(&["tag", &format!("oci:{l}:t"), "u"]));
    // Two tags in one oci-archive (a tar of the layout), two RepoTags in one docker-archive.
    run_ok(Command::new("tar").args([
        "-cf",
        &a.to_string(),
        "-C",
        &l.to_string(),
        "oci-layout",
        "index.json",
        "blobs",
    ]));
    run_ok(&mut hoist(&[
        "copy",
        "--additional-tag",
        "other:v2",
        &format!("oci:{l}:t"),
        &format!("docker-archive:{d}:app:v1"),
    ]));
    let tags = |r: &str| run_ok(&mut hoist(&["tags", r]));
    assert_eq!(tags(&format!("oci-archive:{a}")), "t\nu\n");
    let before_a = fs::read(w.join("a.tar")).unwrap();
    let before_d = fs::read(w.join("d.tar")).unwrap();
    for args in [
        vec![
            "config".to_string(),
            "--image".into(),
            format!("oci-archive:{a}:t"),
            "--config.env".into(),
            "A=B".into(),
        ],
        vec![
            "config".into(),
            "--image".into(),
            format!("docker-archive:{d}:app:v1"),
            "--label".into(),
            "x=y".into(),
        ],
        vec!["append".into(), format!("oci-archive:{a}:t"), l.to_string()],
        vec!["new".into(), format!("oci-archive:{a}:fresh")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_fail(&mut hoist(&args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("holds other images"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        fs::read(w.join("a.tar")).unwrap(),
        before_a,
        "oci-archive changed"
    );
    assert_eq!(
        fs::read(w.join("d.tar")).unwrap(),
        before_d,
        "docker-archive changed"
    );
    assert_eq!(tags(&format!("oci-archive:{a}")), "t\nu\n");

    // To another file, the edit is made; an archive of one image is edited in place.
    let e = w.join("e.tar");
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &format!("oci-archive:{a}:t"),
        "--dest",
        &format!("oci-archive:{}:t", e.display()),
        "--config.env",
        "A=B",
    ]));
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &format!("oci-archive:{}:t", e.display()),
        "--config.env",
        "C=D",
    ]));
    let config = run_ok(&mut hoist(&[
        "inspect",
        "--config",
        &format!("oci-archive:{}:t", e.display()),
    ]));
    assert!(config.contains("A=B") && config.contains("C=D"), "{config}");
}

/// `config --tag` names the edited image's tag beside it: in a layout, and in a registry
/// repository too; a transport with no repository of tags refuses it and is left as it was.
#[test]
fn config_tag_writes_beside_a_registry_image_and_is_refused_by_an_archive() {
    if !tools() || !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    build_two_layer(&layout, "v1");
    let v1 = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &v1,
    ]));
    let digest = |r: &str| {
        let raw = run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", r]));
        serde_json::from_str::<serde_json::Value>(&raw).unwrap()["Digest"].clone()
    };
    let v1_before = digest(&v1);
    let printed = run_ok(&mut hoist(&[
        "config",
        "--tls-verify=false",
        "--image",
        &v1,
        "--tag",
        "v2",
        "--config.env",
        "EDITED=2",
    ]));
    let v2 = format!("{}:v2", reg.url("app"));
    assert_eq!(digest(&v2), printed.trim());
    assert_eq!(digest(&v1), v1_before);
    let config =
        run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--config", &v2]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("EDITED=2"))
    );

    let archive = work.path().join("a.tar");
    let a = format!("oci-archive:{}:v1", archive.display());
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &a,
    ]));
    let before = fs::read(&archive).unwrap();
    let out = run_fail(&mut hoist(&[
        "config",
        "--image",
        &a,
        "--tag",
        "v2",
        "--config.env",
        "EDITED=2",
    ]));
    assert!(
        stderr(&out).contains("--tag") && stderr(&out).contains("oci-archive has none"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&archive).unwrap(), before);
}
