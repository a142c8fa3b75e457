//! End-to-end tests of the foundation verbs (inspect, verify, copy, tags, gc) against skopeo, umoci
//! and oci-image-tool on images the tests build.

mod common;

use std::fs;
use std::path::Path;

use common::{hoist, require_tool, run_fail, run_ok};
use serde_json::Value;

fn tools() -> bool {
    require_tool("umoci") && require_tool("skopeo")
}

fn two_layer(dir: &Path) -> String {
    let layout = dir.join("src");
    common::images::build_two_layer(&layout, "v1");
    layout.display().to_string()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The manifest the layout's tag points at, parsed, with the path of its blob file.
fn manifest_of(layout: &str, tag: &str) -> (Value, std::path::PathBuf) {
    let raw = run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{layout}:{tag}"),
    ]));
    let digest = hoist::Digest::sha256(raw.as_bytes());
    (
        json(&raw),
        Path::new(layout).join("blobs/sha256").join(digest.hex()),
    )
}

fn blob_path(layout: &str, digest: &str) -> std::path::PathBuf {
    Path::new(layout)
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn inspect_agrees_with_skopeo() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let r = format!("oci:{layout}:v1");
    let ours = json(&run_ok(&mut hoist(&["inspect", &r])));
    let theirs = json(&run_ok(
        std::process::Command::new("skopeo").args(["inspect", &r]),
    ));
    for field in [
        "Digest",
        "Layers",
        "Architecture",
        "Os",
        "Env",
        "Labels",
        "Created",
    ] {
        assert_eq!(ours[field], theirs[field], "field {field}");
    }
    assert_eq!(ours["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(ours["LayersData"][1]["Digest"], theirs["Layers"][1]);
    let text = run_ok(&mut hoist(&["inspect", "--format", "text", &r]));
    assert!(
        text.contains("HOIST_TEST=1") && text.contains("org.example.label=yes"),
        "{text}"
    );
}

#[test]
fn raw_is_byte_identical_to_skopeo() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let r = format!("oci:{layout}:v1");
    let ours = hoist(&["inspect", "--raw", &r]).output().unwrap();
    let theirs = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &r])
        .output()
        .unwrap();
    assert!(ours.status.success());
    assert_eq!(ours.stdout, theirs.stdout);
    let ours = hoist(&["inspect", "--raw", "--config", &r])
        .output()
        .unwrap();
    let theirs = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--config", &r])
        .output()
        .unwrap();
    assert_eq!(ours.stdout, theirs.stdout);
}

#[test]
fn copied_layout_validates_and_keeps_digests() {
    if !tools() || !require_tool("oci-image-tool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let src_digest = json(&run_ok(&mut hoist(&[
        "inspect",
        &format!("oci:{layout}:v1"),
    ])))["Digest"]
        .clone();
    let dst = dir.path().join("dst").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{layout}:v1"),
        &format!("oci:{dst}:copied"),
    ]));
    run_ok(std::process::Command::new("oci-image-tool").args([
        "validate",
        "--type",
        "image",
        &dst,
        "--ref",
        "name=copied",
    ]));
    let theirs = json(&run_ok(
        std::process::Command::new("skopeo").args(["inspect", &format!("oci:{dst}:copied")]),
    ));
    assert_eq!(theirs["Digest"], src_digest);
    run_ok(&mut hoist(&["verify", &format!("oci:{dst}:copied")]));

    // Through an oci-archive and a dir: the same manifest digest comes out, and skopeo reads both.
    let archive = dir.path().join("img.tar").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{dst}:copied"),
        &format!("oci-archive:{archive}:a"),
    ]));
    let via_archive = json(&run_ok(
        std::process::Command::new("skopeo").args(["inspect", &format!("oci-archive:{archive}:a")]),
    ));
    assert_eq!(via_archive["Digest"], src_digest);
    let d = dir.path().join("dirimg").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci-archive:{archive}:a"),
        &format!("dir:{d}"),
    ]));
    let via_dir = json(&run_ok(
        std::process::Command::new("skopeo").args(["inspect", &format!("dir:{d}")]),
    ));
    assert_eq!(via_dir["Digest"], src_digest);
    let back = dir.path().join("back").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        &format!("dir:{d}"),
        &format!("oci:{back}:b"),
    ]));
    assert_eq!(
        json(&run_ok(&mut hoist(&["inspect", &format!("oci:{back}:b")])))["Digest"],
        src_digest
    );

    // A second copy into the same layout transfers nothing.
    let out = hoist(&[
        "copy",
        &format!("oci:{layout}:v1"),
        &format!("oci:{dst}:again"),
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("0 blobs copied, 0 linked, 3 already present"),
        "{err}"
    );
    let tags = run_ok(&mut hoist(&["tags", &format!("oci:{dst}")]));
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["copied", "again"]);
}

#[test]
fn skopeo_written_layouts_are_read() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let sk = dir.path().join("sk").display().to_string();
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        &format!("oci:{layout}:v1"),
        &format!("dir:{sk}"),
    ]));
    run_ok(&mut hoist(&["verify", &format!("dir:{sk}")]));
    let ska = dir.path().join("sk.tar").display().to_string();
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        &format!("oci:{layout}:v1"),
        &format!("oci-archive:{ska}:t"),
    ]));
    run_ok(&mut hoist(&["verify", &format!("oci-archive:{ska}:t")]));
}

fn verify_fails_naming(reference: &str, needle: &str) -> String {
    let out = run_fail(&mut hoist(&["verify", reference]));
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    text
}

#[test]
fn verify_catches_corruption_each_naming_the_blob() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pristine = two_layer(dir.path());
    let fresh = |name: &str| {
        let d = dir.path().join(name).display().to_string();
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &format!("oci:{pristine}:v1"),
            &format!("oci:{d}:v1"),
        ]));
        d
    };
    let (m, _) = manifest_of(&pristine, "v1");
    let layer0 = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let layer1 = m["layers"][1]["digest"].as_str().unwrap().to_string();
    run_ok(&mut hoist(&["verify", &format!("oci:{pristine}:v1")]));

    // A flipped byte in a layer.
    let l = fresh("flip");
    let p = blob_path(&l, &layer1);
    let mut bytes = fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::remove_file(&p).unwrap(); // the blob is hard-linked to the pristine layout's
    fs::write(&p, &bytes).unwrap();
    let text = verify_fails_naming(&format!("oci:{l}:v1"), &layer1);
    assert!(text.contains("digest mismatch"), "{text}");

    // A truncated blob.
    let l = fresh("trunc");
    let p = blob_path(&l, &layer0);
    let bytes = fs::read(&p).unwrap();
    fs::remove_file(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    let text = verify_fails_naming(&format!("oci:{l}:v1"), &layer0);
    assert!(text.contains("size mismatch"), "{text}");

    // A missing blob.
    let l = fresh("missing");
    fs::remove_file(blob_path(&l, &layer1)).unwrap();
    let text = verify_fails_naming(&format!("oci:{l}:v1"), &layer1);
    assert!(text.contains("not found"), "{text}");

    // A wrong size in a descriptor: rewrite the manifest and point the tag at it.
    let l = fresh("size");
    let (mut m2, _) = manifest_of(&l, "v1");
    let size = m2["layers"][0]["size"].as_u64().unwrap();
    m2["layers"][0]["size"] = Value::from(size + 7);
    retag_with_manifest(&l, "v1", &m2);
    let text = verify_fails_naming(&format!("oci:{l}:v1"), &layer0);
    assert!(text.contains("size mismatch"), "{text}");

    // A diff_id mismatch: a config whose first diff_id is wrong, with a manifest pointing at it.
    let l = fresh("diffid");
    let (mut m3, _) = manifest_of(&l, "v1");
    let cfg_path = blob_path(&l, m3["config"]["digest"].as_str().unwrap());
    let mut cfg = json(&fs::read_to_string(&cfg_path).unwrap());
    let bogus = format!("sha256:{}", "0".repeat(64));
    cfg["rootfs"]["diff_ids"][0] = Value::from(bogus.clone());
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_digest = hoist::Digest::sha256(&cfg_bytes);
    fs::write(
        Path::new(&l).join("blobs/sha256").join(cfg_digest.hex()),
        &cfg_bytes,
    )
    .unwrap();
    m3["config"]["digest"] = Value::from(cfg_digest.to_string());
    m3["config"]["size"] = Value::from(cfg_bytes.len());
    retag_with_manifest(&l, "v1", &m3);
    let text = verify_fails_naming(&format!("oci:{l}:v1"), &bogus);
    assert!(text.contains("diff_id") && text.contains(&layer0), "{text}");
    // Only that problem: the other layer still verifies.
    assert!(text.contains("1 problem"), "{text}");

    // --all reports problems across every tag of a layout, and --format json carries them.
    let out = run_fail(&mut hoist(&[
        "verify",
        "--all",
        "--format",
        "json",
        &format!("oci:{l}"),
    ]));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["problems"].as_array().unwrap().len(), 1);
}

/// Writes `manifest` as a blob and points `tag` at it in index.json.
fn retag_with_manifest(layout: &str, tag: &str, manifest: &Value) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = hoist::Digest::sha256(&bytes);
    fs::write(
        Path::new(layout).join("blobs/sha256").join(digest.hex()),
        &bytes,
    )
    .unwrap();
    let index_path = Path::new(layout).join("index.json");
    let mut index = json(&fs::read_to_string(&index_path).unwrap());
    for e in index["manifests"].as_array_mut().unwrap() {
        if e["annotations"]["org.opencontainers.image.ref.name"] == tag {
            e["digest"] = Value::from(digest.to_string());
            e["size"] = Value::from(bytes.len());
        }
    }
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn hostile_layouts_are_refused_clearly() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let (m, manifest_path) = manifest_of(&layout, "v1");

    // A blob that is a symlink.
    let l = dir.path().join("symlinked").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{layout}:v1"),
        &format!("oci:{l}:v1"),
    ]));
    let victim = blob_path(&l, m["layers"][0]["digest"].as_str().unwrap());
    fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(
        blob_path(&layout, m["layers"][0]["digest"].as_str().unwrap()),
        &victim,
    )
    .unwrap();
    verify_fails_naming(&format!("oci:{l}:v1"), "symlink");

    // A traversal digest in index.json.
    let l2 = dir.path().join("trav").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{layout}:v1"),
        &format!("oci:{l2}:v1"),
    ]));
    let ip = Path::new(&l2).join("index.json");
    let text = fs::read_to_string(&ip).unwrap();
    let manifest_digest = format!(
        "sha256:{}",
        manifest_path.file_name().unwrap().to_str().unwrap()
    );
    fs::write(
        &ip,
        text.replace(&manifest_digest, "sha256:../../../../../../etc/passwd"),
    )
    .unwrap();
    let out = run_fail(&mut hoist(&["inspect", &format!("oci:{l2}:v1")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid") && err.contains("digest"), "{err}");

    // An unknown tag lists the tags that exist.
    let out = run_fail(&mut hoist(&["inspect", &format!("oci:{layout}:nope")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"nope\"") && err.contains("tags: v1"),
        "{err}"
    );

    // An unknown oci-layout version.
    let l3 = dir.path().join("ver").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{layout}:v1"),
        &format!("oci:{l3}:v1"),
    ]));
    fs::write(
        Path::new(&l3).join("oci-layout"),
        r#"{"imageLayoutVersion":"9.9.9"}"#,
    )
    .unwrap();
    let out = run_fail(&mut hoist(&["inspect", &format!("oci:{l3}:v1")]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("9.9.9"));
}

#[test]
fn gc_removes_only_unreachable_blobs() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let l = dir.path().join("gc").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{layout}:v1"),
        &format!("oci:{l}:v1"),
    ]));
    let stray = b"not referenced by anything";
    let stray_digest = hoist::Digest::sha256(stray);
    fs::write(
        Path::new(&l).join("blobs/sha256").join(stray_digest.hex()),
        stray,
    )
    .unwrap();
    fs::write(Path::new(&l).join(".hoist-tmp-leftover"), b"partial").unwrap();
    let report = json(&run_ok(&mut hoist(&["gc", "--json", &format!("oci:{l}")])));
    assert_eq!(
        report["removed"],
        serde_json::json!([stray_digest.to_string()])
    );
    assert_eq!(report["temp_files_removed"], 1);
    assert_eq!(report["kept"], 4, "manifest, config and two layers stay");
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{l}")]));
}

#[test]
fn document_size_limit_is_enforced_and_configurable() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer(dir.path());
    let r = format!("oci:{layout}:v1");
    let out = run_fail(&mut hoist(&["--max-manifest-size", "100", "inspect", &r]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exceeds the limit of 100 bytes") && err.contains("--max-manifest-size"),
        "{err}"
    );
    run_ok(&mut hoist(&["--max-manifest-size", "1M", "inspect", &r]));
    let out = run_fail(&mut hoist(&["--max-manifest-size", "12Q", "inspect", &r]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad flag value is a usage error"
    );
}

/// Every file name under `dir`, recursively, sorted: what a refused write must leave as it was.
fn tree_of(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn invalid_tags_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("src");
    common::synth::write_tar_image(&l, "v1", &[("hello.txt", b"hi")]);
    let layout = l.display().to_string();
    let index_before = fs::read(l.join("index.json")).unwrap();
    let tree_before = tree_of(&l);
    let unchanged = |what: &str| {
        assert_eq!(
            fs::read(l.join("index.json")).unwrap(),
            index_before,
            "{what} changed index.json"
        );
        assert_eq!(tree_of(&l), tree_before, "{what} wrote files");
    };
    let refused = |out: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("invalid tag"), "{what}: {err}");
    };

    // A copy destination naming a tag the image-spec grammar forbids.
    for bad in [".abc", "-x", "a b", "a/", "a#b"] {
        let dst = dir.path().join("dst");
        let out = run_fail(&mut hoist(&[
            "copy",
            "-q",
            &format!("oci:{layout}:v1"),
            &format!("oci:{}:{bad}", dst.display()),
        ]));
        refused(out, &format!("copy to tag {bad:?}"));
        assert!(!dst.exists(), "copy to {bad:?} created the layout");
        let arch = dir.path().join("dst.tar");
        let out = run_fail(&mut hoist(&[
            "copy",
            "-q",
            &format!("oci:{layout}:v1"),
            &format!("oci-archive:{}:{bad}", arch.display()),
        ]));
        refused(out, &format!("copy to oci-archive tag {bad:?}"));
        assert!(!arch.exists());
    }

    // `hoist config --tag`.
    for bad in ["", ".abc", "-x", "a b"] {
        let out = run_fail(&mut hoist(&[
            "config",
            "--image",
            &format!("oci:{layout}:v1"),
            &format!("--tag={bad}"),
            "--config.env",
            "A=1",
        ]));
        refused(out, &format!("config --tag {bad:?}"));
        unchanged(&format!("config --tag {bad:?}"));
    }

    // `hoist repack --tag`: the new layer is not left behind either.
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{layout}:v1"),
        bundle.to_str().unwrap(),
    ]));
    fs::write(bundle.join("rootfs/new.txt"), b"new").unwrap();
    let tree_before = tree_of(&l);
    for bad in ["", ".abc"] {
        let out = run_fail(&mut hoist(&[
            "repack",
            bundle.to_str().unwrap(),
            "--tag",
            bad,
        ]));
        refused(out, &format!("repack --tag {bad:?}"));
        assert_eq!(fs::read(l.join("index.json")).unwrap(), index_before);
        assert_eq!(tree_of(&l), tree_before, "repack --tag {bad:?} wrote files");
    }
    // A valid tag still works, and names as the grammar allows (`:`, `/`, `+`) are kept.
    run_ok(&mut hoist(&[
        "config",
        "--image",
        &format!("oci:{layout}:v1"),
        "--tag",
        "example.com/app:v1+b--2",
        "--config.env",
        "A=1",
    ]));
    let tags = run_ok(&mut hoist(&["tags", &format!("oci:{layout}")]));
    assert!(
        tags.lines().any(|t| t == "example.com/app:v1+b--2"),
        "{tags}"
    );
}

#[test]
fn tags_a_registry_lists_are_validated_before_use() {
    use common::fake_registry::{FakeServer, Reply, serve_layout, small_image};
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../../../../x/y", "small#frag", ".hidden", ""] {
        let img = small_image(&dir.path().join("img"), "app", "small");
        let list = serde_json::to_vec(&serde_json::json!({"name": "app", "tags": ["small", bad]}))
            .unwrap();
        let server = FakeServer::start(move |req| {
            if req.path == "/v2/app/tags/list" {
                return Reply::ok("application/json", list.clone());
            }
            serve_layout(&img, req).unwrap_or(Reply::status(404))
        });
        for dest in ["oci", "dir"] {
            let out_dir = dir.path().join(format!("out-{dest}"));
            let out = run_fail(&mut hoist(&[
                "sync",
                "--src",
                "docker",
                "--dest",
                dest,
                "--src-tls-verify=false",
                &format!("{}/app", server.host),
                out_dir.to_str().unwrap(),
            ]));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("invalid tag") && err.contains(&format!("{bad:?}")),
                "{bad:?} to {dest}: {err}"
            );
            assert!(!out_dir.join("app:small").exists() && !out_dir.join("index.json").exists());
        }
        let out = run_fail(&mut hoist(&[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/app", server.host),
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid tag"), "{bad:?}: {err}");
        for r in server.requests() {
            assert!(
                r.path == "/v2/" || r.path == "/v2/app/tags/list",
                "{bad:?}: a request other than the tag list was sent: {} {}",
                r.method,
                r.path
            );
        }
    }
}

/// Stores `doc` as a blob of the layout at `l` and adds an `index.json` entry tagged `tag` for it with
/// `media_type`; returns its descriptor.
fn add_entry(l: &Path, tag: &str, media_type: &str, doc: &Value) -> Value {
    let bytes = serde_json::to_vec(doc).unwrap();
    let digest = hoist::Digest::sha256(&bytes);
    fs::write(l.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    let desc = serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()});
    let index_path = l.join("index.json");
    let mut index = json(&fs::read_to_string(&index_path).unwrap());
    let mut entry = desc.clone();
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    index["manifests"].as_array_mut().unwrap().push(entry);
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    desc
}

#[test]
fn ambiguous_documents_are_refused_by_every_verb() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("src");
    common::synth::write_tar_image(&l, "v1", &[("hello.txt", b"hi")]);
    let layout = l.display().to_string();
    let (m, _) = manifest_of(&layout, "v1");
    let good = serde_json::json!({
        "mediaType": hoist::media_type::OCI_MANIFEST,
        "digest": hoist::Digest::sha256(&serde_json::to_vec(&m).unwrap()).to_string(),
        "size": serde_json::to_vec(&m).unwrap().len()});
    // A manifest that is also an index of itself (CVE-2021-41190): no mediaType, so either reading fits.
    let mut amb = m.clone();
    amb.as_object_mut().unwrap().remove("mediaType");
    amb["manifests"] = serde_json::json!([good]);
    add_entry(&l, "as-manifest", hoist::media_type::OCI_MANIFEST, &amb);
    let as_index = add_entry(&l, "as-index", hoist::media_type::OCI_INDEX, &amb);
    // An index whose child is the ambiguous document.
    let mut child = as_index.clone();
    child["mediaType"] = Value::from(hoist::media_type::OCI_MANIFEST);
    child["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    add_entry(
        &l,
        "parent",
        hoist::media_type::OCI_INDEX,
        &serde_json::json!({"schemaVersion": 2, "mediaType": hoist::media_type::OCI_INDEX,
            "manifests": [child]}),
    );
    for tag in ["as-manifest", "as-index", "parent"] {
        let src = format!("oci:{layout}:{tag}");
        let dst = dir.path().join(format!("copy-{tag}"));
        let bundle = dir.path().join(format!("bundle-{tag}"));
        for args in [
            vec!["verify", src.as_str()],
            // The parent itself is a fine index: its raw bytes are shown, its child is not.
            if tag == "parent" {
                vec!["inspect", src.as_str()]
            } else {
                vec!["inspect", "--raw", src.as_str()]
            },
            vec![
                "copy",
                "-q",
                "--all",
                src.as_str(),
                &format!("oci:{}:x", dst.display()),
            ],
            vec![
                "copy",
                "-q",
                src.as_str(),
                &format!("oci:{}:y", dst.display()),
            ],
            vec!["unpack", "-q", src.as_str(), bundle.to_str().unwrap()],
        ] {
            let out = run_fail(&mut hoist(&args));
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("ambiguous") && text.contains("CVE-2021-41190"),
                "{args:?}: {text}"
            );
        }
        let copied = fs::read_to_string(dst.join("index.json")).unwrap_or_default();
        assert!(
            !copied.contains("\"x\"") && !copied.contains("\"y\""),
            "{copied}"
        );
        assert!(!bundle.join("rootfs/hello.txt").exists());
    }
    run_ok(&mut hoist(&["verify", &format!("oci:{layout}:v1")]));
}

/// The config blob of the manifest `tag` names in the layout at `layout`.
fn config_of(layout: &str, tag: &str) -> Value {
    let (m, _) = manifest_of(layout, tag);
    let digest = m["config"]["digest"].as_str().unwrap();
    json(&fs::read_to_string(blob_path(layout, digest)).unwrap())
}

#[test]
fn config_and_repack_write_media_type_and_config_honours_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("src");
    common::synth::write_tar_image(&l, "v1", &[("hello.txt", b"hi")]);
    let layout = l.display().to_string();
    // The image-spec lets a manifest leave mediaType out; hoist's new manifests say it.
    let (mut m, _) = manifest_of(&layout, "v1");
    m.as_object_mut().unwrap().remove("mediaType");
    retag_with_manifest(&layout, "v1", &m);
    assert!(manifest_of(&layout, "v1").0.get("mediaType").is_none());

    let config = |tag: &str| {
        run_ok(
            hoist(&[
                "config",
                "--image",
                &format!("oci:{layout}:v1"),
                "--tag",
                tag,
                "--config.env",
                "A=1",
            ])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
        )
    };
    let first = config("c1");
    let (c1, _) = manifest_of(&layout, "c1");
    assert_eq!(c1["mediaType"], hoist::media_type::OCI_MANIFEST, "{c1}");
    let cfg = config_of(&layout, "c1");
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z", "{cfg}");
    let history = cfg["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["created"], "2023-11-14T22:13:20Z");
    // Reproducible: the same edit later gives the same image.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(config("c2"), first);
    // --created still wins over the epoch.
    run_ok(
        hoist(&[
            "config",
            "--image",
            &format!("oci:{layout}:v1"),
            "--tag",
            "c3",
            "--created",
            "2001-02-03T04:05:06Z",
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let cfg = config_of(&layout, "c3");
    assert_eq!(cfg["created"], "2001-02-03T04:05:06Z");
    assert_eq!(
        cfg["history"].as_array().unwrap().last().unwrap()["created"],
        "2001-02-03T04:05:06Z"
    );

    // repack of the bare manifest writes one with mediaType too.
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{layout}:v1"),
        bundle.to_str().unwrap(),
    ]));
    fs::write(bundle.join("rootfs/new.txt"), b"new").unwrap();
    run_ok(&mut hoist(&[
        "repack",
        bundle.to_str().unwrap(),
        "--tag",
        "r1",
    ]));
    let (r1, _) = manifest_of(&layout, "r1");
    assert_eq!(r1["mediaType"], hoist::media_type::OCI_MANIFEST, "{r1}");
    run_ok(&mut hoist(&["verify", &format!("oci:{layout}:r1")]));
}
