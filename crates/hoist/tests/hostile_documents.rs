//! Hostile descriptors and documents in a layout: each case has its expected outcome asserted, and none
//! reads or writes outside the layout.

use std::fs;
use std::path::Path;

use hoist::document::Document;
use hoist::layout::Layout;
use hoist::media_type as mt;
use hoist::reference::LayoutRef;
use hoist::transport::oci::OciSource;
use hoist::transport::{Source, open_verified, read_document};
use hoist::verify::{VerifyOptions, verify};
use hoist::{Digest, Error, Limits};
use serde_json::{Value, json};

/// A layout with one good image under `good`; returns the layout and the manifest JSON.
fn layout_with_image(dir: &Path) -> (Layout, Value) {
    let layout = Layout::create(dir).unwrap();
    let layer = b"not really a tar, but verify only hashes it".to_vec();
    let ld = layout.write_bytes(&layer).unwrap();
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ld.to_string()]}}))
    .unwrap();
    let cd = layout.write_bytes(&config).unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": mt::OCI_LAYER_TAR, "digest": ld.to_string(), "size": layer.len()}]});
    tag_manifest(&layout, "good", &manifest, mt::OCI_MANIFEST);
    (layout, manifest)
}

/// Stores `manifest` (as given, even when hostile) and tags it.
fn tag_manifest(layout: &Layout, tag: &str, manifest: &Value, media_type: &str) -> Digest {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let d = Digest::sha256(&bytes);
    fs::write(layout.blob_path(&d), &bytes).unwrap();
    let mut index = layout.index_value().unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": media_type, "digest": d.to_string(), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag}}));
    layout.write_index_value(&index).unwrap();
    d
}

fn source(layout: &Layout, tag: &str) -> OciSource {
    OciSource::from_layout(layout.clone(), Some(LayoutRef::Tag(tag.into())))
}

fn problems(layout: &Layout, tag: &str) -> Vec<String> {
    verify(&source(layout, tag), &VerifyOptions::default())
        .problems
        .into_iter()
        .map(|p| format!("{}: {}", p.subject, p.message))
        .collect()
}

#[test]
fn good_image_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(dir.path());
    assert!(problems(&layout, "good").is_empty());
}

#[test]
fn traversal_and_bad_hex_digests_are_refused_before_any_path_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path().join("l").as_path());
    fs::write(dir.path().join("secret"), b"outside").unwrap();
    for (i, bad) in [
        "sha256:../../secret".to_string(),
        format!("sha256:{}", "Z".repeat(64)),
        format!("sha256:{}", "A".repeat(64)),
        format!("md5:{}", "a".repeat(32)),
        format!("sha256:{}", "a".repeat(65)),
    ]
    .iter()
    .enumerate()
    {
        let mut hostile = m.clone();
        hostile["layers"][0]["digest"] = json!(bad);
        let tag = format!("bad{i}");
        tag_manifest(&layout, &tag, &hostile, mt::OCI_MANIFEST);
        let p = problems(&layout, &tag);
        assert!(p.iter().any(|p| p.contains("digest")), "{bad}: {p:?}");
        // The root document itself is readable; only the bad descriptor is refused.
        let src = source(&layout, &tag);
        let doc = src.root().unwrap();
        assert!(doc.manifest().is_err(), "{bad} parsed");
    }
}

#[test]
fn wrong_sizes_and_missing_blobs_are_reported_with_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path());
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();

    let mut short = m.clone();
    short["layers"][0]["size"] = json!(3);
    tag_manifest(&layout, "short", &short, mt::OCI_MANIFEST);
    let p = problems(&layout, "short");
    assert!(
        p.iter()
            .any(|p| p.contains("size mismatch") && p.contains(&layer)),
        "{p:?}"
    );

    let mut negative = m.clone();
    negative["layers"][0]["size"] = json!(-1);
    tag_manifest(&layout, "negative", &negative, mt::OCI_MANIFEST);
    let p = problems(&layout, "negative");
    assert!(!p.is_empty(), "a negative size must not verify");

    let mut missing = m.clone();
    let absent = Digest::sha256(b"absent");
    missing["layers"][0]["digest"] = json!(absent.to_string());
    tag_manifest(&layout, "missing", &missing, mt::OCI_MANIFEST);
    let p = problems(&layout, "missing");
    assert!(
        p.iter()
            .any(|p| p.contains("not found") && p.contains(&absent.to_string())),
        "{p:?}"
    );
}

#[test]
fn a_blob_that_is_a_symlink_is_refused_even_when_its_target_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path().join("l").as_path());
    let layer = Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap();
    let path = layout.blob_path(&layer);
    let outside = dir.path().join("outside-copy");
    fs::copy(&path, &outside).unwrap();
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let err = layout.open_blob(&layer).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(
        problems(&layout, "good")
            .iter()
            .any(|p| p.contains("symlink"))
    );
}

#[test]
fn oversized_documents_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path());
    let mut big = m.clone();
    big["annotations"] = json!({"padding": "x".repeat(5 << 20)});
    tag_manifest(&layout, "big", &big, mt::OCI_MANIFEST);
    let err = source(&layout, "big").root().unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    assert!(err.to_string().contains("--max-manifest-size"));
    // Raised, it reads.
    let mut limits = Limits::default();
    limits.max_document_size = 8 << 20;
    let src = OciSource::from_layout(
        layout.clone().with_limits(limits),
        Some(LayoutRef::Tag("big".into())),
    );
    assert!(src.root().is_ok());
}

#[test]
fn embedded_media_type_must_match_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path());
    // The index entry says "index" but the document embeds "manifest".
    tag_manifest(&layout, "liar", &m, mt::OCI_INDEX);
    let err = source(&layout, "liar").root().unwrap_err();
    assert!(err.to_string().contains("disagrees"), "{err}");
}

#[test]
fn schema1_is_refused_with_a_message_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(dir.path());
    let s1 = json!({"schemaVersion": 1, "name": "x/y", "tag": "latest", "architecture": "amd64",
        "fsLayers": [], "history": []});
    tag_manifest(&layout, "old", &s1, mt::DOCKER_SCHEMA1_SIGNED);
    let err = source(&layout, "old").root().unwrap_err();
    assert!(err.to_string().contains("schema 1"), "{err}");
}

#[test]
fn docker_manifest_inside_an_oci_layout_is_read_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path());
    let mut docker = m.clone();
    docker["mediaType"] = json!(mt::DOCKER_MANIFEST);
    docker["config"]["mediaType"] = json!(mt::DOCKER_CONFIG);
    docker["layers"][0]["mediaType"] = json!(mt::DOCKER_LAYER_TAR);
    tag_manifest(&layout, "docker", &docker, mt::DOCKER_MANIFEST);
    let src = source(&layout, "docker");
    let image = hoist::image::resolve(&src, None).unwrap();
    assert_eq!(image.manifest_doc.media_type(), mt::DOCKER_MANIFEST);
    assert!(problems(&layout, "docker").is_empty());
}

#[test]
fn unknown_media_types_are_carried_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path().join("src").as_path());
    let mut artifact = m.clone();
    let sbom = b"{\"sbom\":true}";
    let sd = layout.write_bytes(sbom).unwrap();
    artifact["layers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mediaType": "application/vnd.example.sbom+json", "digest": sd.to_string(), "size": sbom.len()}));
    tag_manifest(&layout, "art", &artifact, mt::OCI_MANIFEST);
    let dest = hoist::transport::oci::OciDestination::open(
        &dir.path().join("dst"),
        Some(LayoutRef::Tag("art".into())),
    )
    .unwrap();
    let report = hoist::copy::copy(&source(&layout, "art"), &dest, &Default::default()).unwrap();
    assert_eq!(report.blobs_copied + report.blobs_linked, 3);
    assert!(dest.layout().unwrap().has_blob(&sd).unwrap());
}

#[test]
fn verified_reads_never_pass_the_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path());
    let mut desc: hoist::descriptor::Descriptor =
        serde_json::from_value(m["layers"][0].clone()).unwrap();
    desc.set_size(5);
    let src = source(&layout, "good");
    let mut r = open_verified(&src, &desc).unwrap();
    let mut out = Vec::new();
    let err = std::io::Read::read_to_end(&mut r, &mut out).unwrap_err();
    assert!(out.len() <= 5);
    assert!(err.to_string().contains("size mismatch"), "{err}");
    // Documents read through a descriptor are checked the same way.
    let mut mdesc = layout
        .resolve(Some(&LayoutRef::Tag("good".into())))
        .unwrap();
    mdesc.set_size(mdesc.size() - 1);
    assert!(read_document(&src, &mdesc).is_err());
    let _ = Document::detect(b"{}".to_vec()).unwrap_err();
}

#[test]
fn a_tag_on_two_entries_for_different_images_is_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("l");
    let (layout, m) = layout_with_image(&l);
    let first = layout
        .resolve(Some(&LayoutRef::Tag("good".into())))
        .unwrap();
    // The same image under the tag twice is not ambiguous, and the tag is listed once.
    tag_manifest(&layout, "good", &m, mt::OCI_MANIFEST);
    assert_eq!(layout.tags().unwrap().len(), 1);
    assert_eq!(
        layout
            .resolve(Some(&LayoutRef::Tag("good".into())))
            .unwrap()
            .digest(),
        first.digest()
    );
    let mut other = m.clone();
    other["annotations"] = json!({"x": "y"});
    let second = tag_manifest(&layout, "good", &other, mt::OCI_MANIFEST);
    let check = |err: Error| {
        let text = err.to_string();
        assert!(
            text.contains("\"good\" is ambiguous")
                && text.contains(&first.digest().to_string())
                && text.contains(&second.to_string()),
            "{text}"
        );
    };
    check(
        layout
            .resolve(Some(&LayoutRef::Tag("good".into())))
            .unwrap_err(),
    );
    check(source(&layout, "good").root().unwrap_err());
    assert!(!problems(&layout, "good").is_empty());

    // An oci-archive of that layout says the same.
    let archive = dir.path().join("l.tar");
    let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
    b.append_dir_all(".", &l).unwrap();
    b.finish().unwrap();
    drop(b);
    let src = hoist::transport::oci_archive::OciArchiveSource::open(
        &archive,
        Some(LayoutRef::Tag("good".into())),
        Limits::default(),
    );
    check(src.and_then(|s| s.root()).unwrap_err());
}

#[test]
fn embedded_data_must_be_the_content_its_descriptor_names() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path());
    let config = layout
        .read_small_blob(&serde_json::from_value(m["config"].clone()).unwrap())
        .unwrap();
    // The right content embedded: fine.
    let mut right = m.clone();
    right["config"]["data"] = json!(b64(&config));
    tag_manifest(&layout, "right", &right, mt::OCI_MANIFEST);
    assert!(problems(&layout, "right").is_empty());

    // Other content of the same size, another size, not base64: each a problem naming the config.
    let mut same_size = config.clone();
    same_size[0] = b' ';
    let config_digest = m["config"]["digest"].as_str().unwrap().to_string();
    for (tag, data, needle) in [
        ("other", b64(&same_size), "digest mismatch"),
        (
            "longer",
            b64(&[&config[..], b" "].concat()),
            "size mismatch",
        ),
        ("garbage", "%%%".to_string(), "not base64"),
    ] {
        let mut wrong = m.clone();
        wrong["config"]["data"] = json!(data);
        tag_manifest(&layout, tag, &wrong, mt::OCI_MANIFEST);
        let found = problems(&layout, tag).join("\n");
        assert!(
            found.contains(needle)
                && found.contains("data embedded")
                && found.contains(&config_digest),
            "{tag}: {found}"
        );
        // Copy refuses it too: the document is not passed on.
        let dest =
            hoist::transport::oci::OciDestination::open(&dir.path().join(tag), None).unwrap();
        assert!(hoist::copy::copy(&source(&layout, tag), &dest, &Default::default()).is_err());
    }

    // In index.json itself: the entry's data must be the manifest.
    let entry_bytes = serde_json::to_vec(&m).unwrap();
    let mut index = layout.index_value().unwrap();
    let mut entry = index["manifests"][0].clone();
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": "entry"});
    entry["data"] = json!(b64(&[&entry_bytes[..entry_bytes.len() - 1], b" "].concat()));
    index["manifests"].as_array_mut().unwrap().push(entry);
    layout.write_index_value(&index).unwrap();
    let err = layout
        .resolve(Some(&LayoutRef::Tag("entry".into())))
        .unwrap_err()
        .to_string();
    assert!(err.contains("data embedded"), "{err}");
}

#[test]
fn an_index_written_anew_for_a_platform_subset_carries_media_type() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(&dir.path().join("src"));
    // An index without mediaType (the image-spec allows it) of two images.
    let entry = |arch: &str| {
        let mut m = m.clone();
        m["annotations"] = json!({"arch": arch});
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = tag_manifest(&layout, arch, &m, mt::OCI_MANIFEST);
        json!({"mediaType": mt::OCI_MANIFEST, "digest": d.to_string(), "size": bytes.len(),
            "platform": {"os": "linux", "architecture": arch}})
    };
    let index = json!({"schemaVersion": 2, "manifests": [entry("amd64"), entry("arm64")]});
    tag_manifest(&layout, "multi", &index, mt::OCI_INDEX);
    let dest = hoist::transport::oci::OciDestination::open(
        &dir.path().join("dst"),
        Some(LayoutRef::Tag("one".into())),
    )
    .unwrap();
    let mut opts = hoist::copy::CopyOptions::default();
    opts.platforms = hoist::copy::PlatformChoice::Subset(vec!["linux/arm64".parse().unwrap()]);
    hoist::copy::copy(&source(&layout, "multi"), &dest, &opts).unwrap();
    let root = source(dest.layout().unwrap(), "one").root().unwrap();
    let v: Value = serde_json::from_slice(root.bytes()).unwrap();
    assert_eq!(v["mediaType"], mt::OCI_INDEX, "{v}");
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn library_entry_points_refuse_invalid_tags_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_image(dir.path());
    let desc = layout
        .resolve(Some(&LayoutRef::Tag("good".into())))
        .unwrap();
    let before = layout.index_value().unwrap();
    for bad in ["", ".abc", "a b", "a/"] {
        let err = layout.set_tag(Some(bad), &desc).unwrap_err().to_string();
        assert!(err.contains("invalid tag"), "{bad:?}: {err}");
        let dest = dir.path().join("new");
        let Err(err) =
            hoist::transport::oci::OciDestination::open(&dest, Some(LayoutRef::Tag(bad.into())))
        else {
            panic!("{bad:?}: OciDestination::open accepted it");
        };
        let err = err.to_string();
        assert!(err.contains("invalid tag"), "{bad:?}: {err}");
        assert!(
            !dest.exists(),
            "{bad:?}: the destination layout was created"
        );
        let mut edit =
            hoist::config_edit::ImageEdit::open(&layout, Some(&LayoutRef::Tag("good".into())))
                .unwrap();
        edit.add_history(hoist::config_edit::ImageEdit::history_entry(
            None, "x", None, true,
        ));
        let err = edit.commit(Some(bad)).unwrap_err().to_string();
        assert!(err.contains("invalid tag"), "{bad:?}: {err}");
    }
    assert_eq!(layout.index_value().unwrap(), before);
}

#[test]
fn an_index_json_that_is_also_a_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("l");
    let (layout, m) = layout_with_image(&l);
    let mut index = layout.index_value().unwrap();
    index["config"] = m["config"].clone();
    index["layers"] = m["layers"].clone();
    layout.write_index_value(&index).unwrap();
    let check = |err: Error| {
        let text = err.to_string();
        assert!(
            text.contains("index.json") && text.contains("CVE-2021-41190"),
            "{text}"
        );
    };
    check(
        layout
            .resolve(Some(&LayoutRef::Tag("good".into())))
            .unwrap_err(),
    );
    check(source(&layout, "good").root().unwrap_err());
    let archive = dir.path().join("l.tar");
    let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
    b.append_dir_all(".", &l).unwrap();
    b.finish().unwrap();
    drop(b);
    let src = hoist::transport::oci_archive::OciArchiveSource::open(
        &archive,
        Some(LayoutRef::Tag("good".into())),
        Limits::default(),
    );
    check(src.and_then(|s| s.root()).unwrap_err());
}

#[test]
fn a_missing_docker_uncompressed_foreign_layer_is_left_out_by_a_plain_copy() {
    // copy.rs's own foreignness test once missed this media type: the copy failed on the missing blob.
    let dir = tempfile::tempdir().unwrap();
    let (layout, m) = layout_with_image(dir.path().join("src").as_path());
    let mut image = m.clone();
    let absent = Digest::sha256(b"a foreign layer this layout does not hold");
    image["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": mt::DOCKER_LAYER_FOREIGN_TAR,
        "digest": absent.to_string(),
        "size": 41,
        "urls": ["https://example.com/foreign.tar"]
    }));
    tag_manifest(&layout, "foreign", &image, mt::OCI_MANIFEST);
    let dest = hoist::transport::oci::OciDestination::open(
        &dir.path().join("dst"),
        Some(LayoutRef::Tag("foreign".into())),
    )
    .unwrap();
    let report =
        hoist::copy::copy(&source(&layout, "foreign"), &dest, &Default::default()).unwrap();
    assert_eq!(report.blobs_foreign, 1);
    assert!(!dest.layout().unwrap().has_blob(&absent).unwrap());
}
