//! Indexes: platform selection for inspect and copy, whole-index and subset copies, and nested-index
//! depth bound, on indexes written by the test.

mod common;

use std::path::Path;

use common::{hoist, run_fail, run_ok, synth};
use hoist::layout::Layout;
use hoist::media_type;
use serde_json::{Value, json};

/// Writes three single-platform images and an index over them (tag `multi`) into `dir`.
/// Returns the index digest and the manifest digests by platform.
fn three_platform_layout(dir: &Path) -> (String, Vec<(String, String)>) {
    let mut entries = Vec::new();
    let mut by_platform = Vec::new();
    let layout_path = dir.join("multi");
    for (i, (arch, variant)) in [("amd64", None), ("arm64", Some("v8")), ("arm", Some("v7"))]
        .iter()
        .enumerate()
    {
        let tag = arch.to_string();
        let digest = synth::write_image(&layout_path, &tag, 1, 1000 + i, 100 + i as u64);
        let layout = Layout::open(&layout_path).unwrap();
        let size = std::fs::metadata(layout.blob_path(&digest)).unwrap().len();
        let mut platform = json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        entries.push(json!({"mediaType": media_type::OCI_MANIFEST, "digest": digest.to_string(), "size": size, "platform": platform, "x-extra": i}));
        let p = match variant {
            Some(v) => format!("linux/{arch}/{v}"),
            None => format!("linux/{arch}"),
        };
        by_platform.push((p, digest.to_string()));
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    let layout = Layout::open(&layout_path).unwrap();
    let _lock = layout.lock().unwrap();
    let doc = hoist::document::Document::new(media_type::OCI_INDEX, index).unwrap();
    layout.write_bytes(doc.bytes()).unwrap();
    layout.set_tag(Some("multi"), &doc.descriptor()).unwrap();
    (doc.digest().to_string(), by_platform)
}

fn inspect_digest_of_manifest(reference: &str, platform: Option<&str>) -> String {
    let mut args = vec!["inspect", "--config", "--raw"];
    if let Some(p) = platform {
        args.extend(["--platform", p]);
    }
    args.push(reference);
    let config = run_ok(&mut hoist(&args));
    let v: Value = serde_json::from_str(&config).unwrap();
    v["config"]["Env"][0].as_str().unwrap().to_string()
}

#[test]
fn platform_selection_and_copies_of_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let (index_digest, platforms) = three_platform_layout(dir.path());
    let src = format!("oci:{}:multi", dir.path().join("multi").display());

    // --raw prints the index itself; plain inspect describes one platform's image.
    let raw = run_ok(&mut hoist(&["inspect", "--raw", &src]));
    assert_eq!(
        hoist::Digest::sha256(raw.as_bytes()).to_string(),
        index_digest
    );
    let arm = inspect_digest_of_manifest(&src, Some("linux/arm64"));
    assert_eq!(arm, "SEED=101");
    let arm7 = inspect_digest_of_manifest(&src, Some("linux/arm"));
    assert_eq!(arm7, "SEED=102", "linux/arm means v7");
    let out = run_fail(&mut hoist(&["inspect", "--platform", "linux/s390x", &src]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64/v8"),
        "{err}"
    );
    let inspected: Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "inspect",
        "--platform",
        "linux/arm64",
        &src,
    ])))
    .unwrap();
    assert_eq!(
        inspected["Digest"], index_digest,
        "Digest is the index's, as skopeo reports it"
    );
    assert_eq!(
        inspected["Architecture"], "amd64",
        "synthetic configs all say amd64"
    );

    // --all keeps the index byte for byte.
    let all = dir.path().join("all").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--all",
        &src,
        &format!("oci:{all}:m"),
    ]));
    let raw_all = run_ok(&mut hoist(&["inspect", "--raw", &format!("oci:{all}:m")]));
    assert_eq!(raw_all, raw);
    run_ok(&mut hoist(&["verify", &format!("oci:{all}:m")]));

    // One platform: the root becomes that manifest.
    let one = dir.path().join("one").display().to_string();
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--platform",
        "linux/arm64",
        &src,
        &format!("oci:{one}:m"),
    ]));
    let raw_one = run_ok(&mut hoist(&["inspect", "--raw", &format!("oci:{one}:m")]));
    assert_eq!(
        hoist::Digest::sha256(raw_one.as_bytes()).to_string(),
        platforms[1].1
    );

    // A subset: a new index of just those entries, each entry's JSON kept (unknown fields too).
    let sub = dir.path().join("sub").display().to_string();
    let out = hoist(&[
        "copy",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm/v7",
        &src,
        &format!("oci:{sub}:m"),
    ])
    .output()
    .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("differs from the source"),
        "the changed index digest is reported"
    );
    let idx: Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{sub}:m"),
    ])))
    .unwrap();
    let digests: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [platforms[0].1.as_str(), platforms[2].1.as_str()]);
    assert_eq!(idx["manifests"][1]["x-extra"], 2);
    run_ok(&mut hoist(&["verify", &format!("oci:{sub}:m")]));
    // Only the chosen images' blobs were copied.
    let layout = Layout::open(&sub).unwrap();
    let arm64_manifest = hoist::Digest::parse(&platforms[1].1).unwrap();
    assert!(!layout.has_blob(&arm64_manifest).unwrap());
}

#[test]
fn deep_index_nesting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nest");
    let leaf = synth::write_image(&path, "leaf", 1, 100, 5);
    let layout = Layout::open(&path).unwrap();
    let _lock = layout.lock().unwrap();
    // A chain of 12 indexes, each wrapping the previous one: deeper than the default bound of 8.
    let mut child = (
        leaf.to_string(),
        std::fs::metadata(layout.blob_path(&leaf)).unwrap().len(),
        media_type::OCI_MANIFEST,
    );
    for _ in 0..12 {
        let bytes = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": [
            {"mediaType": child.2, "digest": child.0, "size": child.1, "platform": {"os": "linux", "architecture": "amd64"}}]}))
        .unwrap();
        let d = layout.write_bytes(&bytes).unwrap();
        child = (d.to_string(), bytes.len() as u64, media_type::OCI_INDEX);
    }
    let doc_desc = hoist::descriptor::new_descriptor(
        media_type::OCI_INDEX,
        &hoist::Digest::parse(&child.0).unwrap(),
        child.1,
    );
    layout.set_tag(Some("deep"), &doc_desc).unwrap();
    drop(_lock);
    let r = format!("oci:{}:deep", path.display());
    let out = run_fail(&mut hoist(&["inspect", "--platform", "linux/amd64", &r]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nesting depth") && err.contains("--max-index-depth"),
        "{err}"
    );
    run_ok(&mut hoist(&[
        "--max-index-depth",
        "20",
        "inspect",
        "--platform",
        "linux/amd64",
        &r,
    ]));
    let out = run_fail(&mut hoist(&["verify", &r]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-index-depth"));
}

#[test]
fn preserve_digests_and_index_only() {
    let dir = tempfile::tempdir().unwrap();
    let (index_digest, _) = three_platform_layout(dir.path());
    let src = format!("oci:{}:multi", dir.path().join("multi").display());
    let dst = dir.path().join("dst").display().to_string();

    // A subset would write a new index: refused with --preserve-digests, and nothing is written.
    let out = run_fail(&mut hoist(&[
        "copy",
        "--preserve-digests",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        &src,
        &format!("oci:{dst}:s"),
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--preserve-digests"));
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--preserve-digests",
        "--multi-arch",
        "all",
        &src,
        &format!("oci:{dst}:all"),
    ]));

    // index-only into a layout that lacks the images is refused, naming what is missing.
    let empty = dir.path().join("empty").display().to_string();
    let out = run_fail(&mut hoist(&[
        "copy",
        "--multi-arch",
        "index-only",
        &src,
        &format!("oci:{empty}:i"),
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lacks manifests"));
    // Where the images are present, only the index is written.
    let out = hoist(&[
        "copy",
        "--multi-arch",
        "index-only",
        &src,
        &format!("oci:{dst}:idx"),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 blobs copied"));
    let raw = run_ok(&mut hoist(&["inspect", "--raw", &format!("oci:{dst}:idx")]));
    assert_eq!(
        hoist::Digest::sha256(raw.as_bytes()).to_string(),
        index_digest
    );
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{dst}")]));
}
