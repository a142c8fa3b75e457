//! Helpers for the docker-archive tests: archives made by skopeo from umoci-built images, hand-made
//! archives of the newer `docker save` format, and readers of a layout's image fields.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{images, run_ok};

/// Builds the two-layer umoci image and has skopeo save it as `archive` under `name` (`repo:tag`).
pub fn skopeo_archive(work: &Path, archive: &Path, name: &str) {
    let layout = work.join("umoci-src");
    images::build_two_layer(&layout, "v1");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker-archive:{}:{name}", archive.display()),
    ]));
}

/// `skopeo inspect --config` of a reference, parsed.
pub fn skopeo_config(reference: &str) -> Value {
    let out = run_ok(Command::new("skopeo").args(["inspect", "--config", reference]));
    serde_json::from_str(&out).expect("skopeo config JSON")
}

/// `skopeo inspect --raw` of a reference, parsed.
pub fn skopeo_manifest(reference: &str) -> Value {
    let out = run_ok(Command::new("skopeo").args(["inspect", "--raw", reference]));
    serde_json::from_str(&out).expect("skopeo manifest JSON")
}

/// The config fields the OCI image-spec defines, for comparing configs written by different tools.
pub fn oci_fields(config: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in [
        "architecture",
        "os",
        "variant",
        "config",
        "rootfs",
        "history",
        "created",
        "author",
    ] {
        out.insert(k.to_string(), config.get(k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// The layer media types of a manifest.
pub fn layer_media_types(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().expect("mediaType").to_string())
        .collect()
}

/// Runs `oci-image-tool validate --type image` on a layout tag.
pub fn validate(layout: &Path, tag: &str) {
    run_ok(Command::new("oci-image-tool").args([
        "validate",
        "--type",
        "image",
        &layout.display().to_string(),
        "--ref",
        &format!("name={tag}"),
    ]));
}

/// Writes a tar file from `(name, bytes)` members (regular files, in order).
pub fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(path).expect("create tar");
    let mut b = tar::Builder::new(f);
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Written raw so that even hostile names ("../x") reach the archive as they are.
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &bytes[..]).expect("append");
    }
    b.finish().expect("finish tar");
}

/// Makes a small layer tar holding `files`.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *bytes).expect("append");
    }
    b.into_inner().expect("tar")
}

fn sha(bytes: &[u8]) -> String {
    hoist::Digest::sha256(bytes).to_string()
}

/// Members of a newer-format `docker save` archive (OCI layout inside, `manifest.json` beside it) with
/// two layers and the tag `repo_tag`. Returns the members and the diff_ids.
pub fn newer_format_members(repo_tag: &str) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let l1 = layer_tar(&[("etc/hello", b"hello\n"), ("bin/tool", b"#!/bin/sh\n")]);
    let l2 = layer_tar(&[("etc/hello", b"hello again\n")]);
    let diff_ids = vec![sha(&l1), sha(&l2)];
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "author": "hand-made",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/tool"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "layer 1"}, {"created_by": "layer 2"}]
    }))
    .expect("config");
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    let blob = |d: &str| format!("blobs/sha256/{}", hex(d));
    let config_d = sha(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_ids[0], "size": l1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_ids[1], "size": l2.len()}
        ]
    }))
    .expect("manifest");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&manifest), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": format!("docker.io/library/{repo_tag}"), "org.opencontainers.image.ref.name": "v1"}}]
    }))
    .expect("index");
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": blob(&config_d),
        "RepoTags": [repo_tag],
        "Layers": [blob(&diff_ids[0]), blob(&diff_ids[1])]
    }]))
    .expect("manifest.json");
    let members = vec![
        (blob(&diff_ids[0]), l1),
        (blob(&diff_ids[1]), l2),
        (blob(&config_d), config),
        (blob(&sha(&manifest)), manifest),
        ("index.json".to_string(), index),
        ("manifest.json".to_string(), docker_manifest),
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
    ];
    (members, diff_ids)
}
