//! One image through every transport hoist writes: oci -> docker-archive -> oci-archive -> docker://
//! (Debian's docker-registry on 127.0.0.1) -> oci. At the end the layers' diff_ids and the config's
//! OCI fields equal the start's, hoist verify and oci-image-tool validate pass, and skopeo's inspect
//! of the registry copy agrees with hoist's.

mod common;

use std::process::Command;

use common::docker::{oci_fields, skopeo_config, validate};
use common::registry::Registry;
use common::{hoist, images, require_tool, run_ok};
use serde_json::Value;

fn tools() -> bool {
    require_tool("umoci")
        && require_tool("skopeo")
        && require_tool("oci-image-tool")
        && require_tool("docker-registry")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

#[test]
fn oci_docker_archive_oci_archive_registry_oci_keeps_the_image() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    images::build_two_layer(&dir.path().join("start"), "v1");
    let reg = Registry::start();
    let remote = format!("{}:v1", reg.url("round/trip"));
    let chain = [
        format!("oci:{}:v1", p("start")),
        format!("docker-archive:{}:round/trip:v1", p("image.tar")),
        format!("oci-archive:{}:v1", p("image-oci.tar")),
        remote.clone(),
        format!("oci:{}:v1", p("end")),
    ];
    for pair in chain.windows(2) {
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &pair[0],
            &pair[1],
        ]));
        run_ok(&mut hoist(&["verify", "--tls-verify=false", &pair[1]]));
    }

    // The docker-archive unpacks to the same tree as the start (its plain layers carry skopeo's gzip
    // media type: they are decoded by their bytes).
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        &chain[0],
        &p("tree-start"),
    ]));
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        &chain[1],
        &p("tree-archive"),
    ]));
    let tree = |name: &str| {
        let mut t = common::unpack::describe(&dir.path().join(name));
        t.nodes
            .retain(|path, _| !path.to_string_lossy().starts_with(".hoist-state"));
        t
    };
    common::unpack::assert_same_as(
        ("docker-archive", &tree("tree-archive")),
        ("start", &tree("tree-start")),
        true,
    );

    let start = skopeo_config(&chain[0]);
    let end = skopeo_config(&chain[4]);
    assert_eq!(
        end["rootfs"]["diff_ids"], start["rootfs"]["diff_ids"],
        "the same layer contents"
    );
    assert_eq!(
        start["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        oci_fields(&end),
        oci_fields(&start),
        "the config's OCI fields"
    );
    // The trip went through Docker's format and back: the end is an OCI image with gzip layers.
    let manifest = json(&run_ok(&mut hoist(&["inspect", "--raw", &chain[4]])));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
    validate(&dir.path().join("end"), "v1");
    // Past the one conversion (Docker's format into OCI), no copy asked for one: oci-archive,
    // registry and layout hold the same manifest bytes.
    let raw_digest = |r: &str| {
        let raw = run_ok(&mut hoist(&["inspect", "--raw", "--tls-verify=false", r]));
        hoist::Digest::sha256(raw.as_bytes())
    };
    let kept = raw_digest(&chain[2]);
    assert_eq!(
        raw_digest(&chain[3]),
        kept,
        "the registry copy keeps the digest"
    );
    assert_eq!(
        raw_digest(&chain[4]),
        kept,
        "the layout copy keeps the digest"
    );
    assert_eq!(
        json(&run_ok(&mut hoist(&[
            "inspect",
            "--tls-verify=false",
            &remote
        ])))["Digest"],
        kept.to_string()
    );

    // skopeo and hoist say the same about the registry copy.
    let theirs = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &remote,
    ])));
    let ours = json(&run_ok(&mut hoist(&[
        "inspect",
        "--tls-verify=false",
        &remote,
    ])));
    // Every field skopeo 1.9 prints; hoist adds LayersData, which later skopeo versions print.
    let theirs_map = theirs.as_object().expect("skopeo inspect prints an object");
    for (key, value) in theirs_map {
        assert_eq!(
            ours.get(key),
            Some(value),
            "{key} differs: skopeo {value}, hoist {:?}",
            ours.get(key)
        );
    }
    for key in [
        "Digest",
        "RepoTags",
        "Layers",
        "Architecture",
        "Os",
        "Env",
        "Labels",
        "Created",
    ] {
        assert!(theirs_map.contains_key(key), "skopeo inspect prints {key}");
    }
    assert_eq!(ours["RepoTags"], serde_json::json!(["v1"]));
    let ours_map = ours.as_object().expect("hoist inspect prints an object");
    for key in ours_map.keys() {
        assert!(
            theirs_map.contains_key(key) || key == "LayersData",
            "hoist prints {key}, skopeo does not"
        );
    }
}
