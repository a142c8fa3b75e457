//! Conversion between Docker schema 2 and OCI documents, as pure functions on [`Document`]s.
//!
//! Docker schema 2 manifest <-> OCI manifest and Docker manifest list <-> OCI index, with media types
//! mapped as the image-spec's compatibility notes and skopeo map them:
//!
//! | Docker                                               | OCI                                          |
//! |------------------------------------------------------|----------------------------------------------|
//! | `...distribution.manifest.v2+json`                   | `...image.manifest.v1+json`                  |
//! | `...distribution.manifest.list.v2+json`              | `...image.index.v1+json`                     |
//! | `...container.image.v1+json` (config)                | `...image.config.v1+json`                    |
//! | `...image.rootfs.diff.tar.gzip`                      | `...image.layer.v1.tar+gzip`                 |
//! | `...image.rootfs.diff.tar`                           | `...image.layer.v1.tar`                      |
//! | `...image.rootfs.foreign.diff.tar.gzip`              | `...image.layer.nondistributable.v1.tar+gzip`|
//! | `...image.rootfs.foreign.diff.tar`                   | `...image.layer.nondistributable.v1.tar`     |
//!
//! New documents are built with serde_json in a fixed key order (`schemaVersion`, `mediaType`, `config`,
//! `layers` / `manifests`, then the source's other fields in their order), so the same input always
//! gives the same bytes. Config bytes are never touched, so the config digest is kept; `urls`,
//! `annotations` and `platform` of descriptors are kept. Docker schema 2 has no top-level
//! `annotations`, `subject` or `artifactType`: converting to it drops them (as skopeo does). zstd layers
//! have no Docker name and are refused; so are Docker schema 1 manifests.
//!
//! A conversion can also replace layers (after recompression by the copy engine, [`mod@crate::copy`]): the layer keeps
//! its place, `urls` and `annotations` and gets the new digest, size and compression.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::media_type::{self, Compression, Kind};

/// Docker's uncompressed foreign layer (the counterpart of OCI's non-distributable tar).
pub use crate::media_type::DOCKER_LAYER_FOREIGN_TAR;

/// A manifest format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// OCI image-spec v1.
    Oci,
    /// Docker image manifest v2, schema 2.
    DockerV2S2,
}

impl Format {
    /// The format a manifest or index media type belongs to.
    pub fn of(media_type: &str) -> Option<Format> {
        match media_type::kind(media_type) {
            Kind::Manifest { docker } | Kind::Index { docker } => Some(if docker {
                Format::DockerV2S2
            } else {
                Format::Oci
            }),
            _ => None,
        }
    }

    /// The manifest media type of this format.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            Format::Oci => media_type::OCI_MANIFEST,
            Format::DockerV2S2 => media_type::DOCKER_MANIFEST,
        }
    }

    /// The index (manifest list) media type of this format.
    pub fn index_media_type(self) -> &'static str {
        match self {
            Format::Oci => media_type::OCI_INDEX,
            Format::DockerV2S2 => media_type::DOCKER_MANIFEST_LIST,
        }
    }

    /// The name used on the command line (`oci`, `v2s2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Oci => "oci",
            Format::DockerV2S2 => "v2s2",
        }
    }
}

/// A replacement for one layer of a manifest (its content was recompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerUpdate {
    /// Digest of the new blob.
    pub digest: Digest,
    /// Size of the new blob.
    pub size: u64,
    /// Its compression.
    pub compression: Compression,
}

/// The layer media type for `compression` in `format` (`foreign` for non-distributable layers).
pub fn layer_media_type(format: Format, compression: Compression, foreign: bool) -> Result<String> {
    let mt = match (format, foreign) {
        (Format::Oci, false) => media_type::oci_layer(compression),
        (Format::Oci, true) => match compression {
            Compression::None => media_type::OCI_LAYER_NONDIST_TAR,
            Compression::Gzip => media_type::OCI_LAYER_NONDIST_GZIP,
            Compression::Zstd => media_type::OCI_LAYER_NONDIST_ZSTD,
        },
        (Format::DockerV2S2, false) => {
            media_type::docker_layer(compression).ok_or_else(zstd_err)?
        }
        (Format::DockerV2S2, true) => match compression {
            Compression::None => DOCKER_LAYER_FOREIGN_TAR,
            Compression::Gzip => media_type::DOCKER_LAYER_FOREIGN,
            Compression::Zstd => return Err(zstd_err()),
        },
    };
    Ok(mt.to_string())
}

fn zstd_err() -> Error {
    Error::Unsupported(
        "zstd-compressed layers cannot be written in a Docker schema 2 manifest (Docker has no media \
         type for them); recompress them with --dest-compress-format gzip, or write --format oci"
            .into(),
    )
}

/// Classifies a layer media type, knowing Docker's uncompressed foreign layer too.
pub fn layer_kind(mt: &str) -> Option<(Compression, bool)> {
    if mt == DOCKER_LAYER_FOREIGN_TAR {
        return Some((Compression::None, true));
    }
    match media_type::kind(mt) {
        Kind::Layer {
            compression,
            foreign,
            ..
        } => Some((compression, foreign)),
        _ => None,
    }
}

fn as_object(doc: &Document) -> Result<Map<String, Value>> {
    match serde_json::from_slice(doc.bytes()) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::invalid_document(
            format!("document {}", doc.digest()),
            "not a JSON object",
        )),
        Err(e) => Err(Error::invalid_document(
            format!("document {}", doc.digest()),
            e.to_string(),
        )),
    }
}

/// Rebuilds a descriptor object with `mediaType`, `digest`, `size` first (Docker: `mediaType`, `size`,
/// `digest`, as Go's struct order writes them), then every other field of `old` in its order.
fn descriptor(
    format: Format,
    mt: &str,
    digest: &str,
    size: &Value,
    old: &Map<String, Value>,
) -> Value {
    let mut d = Map::new();
    d.insert("mediaType".into(), Value::String(mt.to_string()));
    match format {
        Format::Oci => {
            d.insert("digest".into(), Value::String(digest.to_string()));
            d.insert("size".into(), size.clone());
        }
        Format::DockerV2S2 => {
            d.insert("size".into(), size.clone());
            d.insert("digest".into(), Value::String(digest.to_string()));
        }
    }
    for (k, v) in old {
        if !matches!(k.as_str(), "mediaType" | "digest" | "size") {
            d.insert(k.clone(), v.clone());
        }
    }
    Value::Object(d)
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value> {
    obj.get(key)
        .ok_or_else(|| Error::invalid_document(what, format!("no {key}")))
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str> {
    field(obj, key, what)?
        .as_str()
        .ok_or_else(|| Error::invalid_document(what, format!("{key} is not a string")))
}

fn objects<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Vec<&'a Map<String, Value>>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_object().ok_or_else(|| {
                    Error::invalid_document(what, format!("an entry of {key} is not an object"))
                })
            })
            .collect(),
        Some(_) => Err(Error::invalid_document(
            what,
            format!("{key} is not an array"),
        )),
    }
}

/// Top-level fields Docker schema 2 has no place for.
const NOT_IN_DOCKER: [&str; 3] = ["annotations", "subject", "artifactType"];

fn check_convertible(doc: &Document, want_index: bool) -> Result<Format> {
    let what = format!("document {}", doc.digest());
    match (doc.kind(), want_index) {
        (Kind::Schema1, _) => Err(Error::invalid_document(
            what,
            "Docker schema 1 manifests cannot be converted (schema 1 is deprecated and unsupported); \
             re-push the image with a current Docker or registry to get schema 2",
        )),
        (Kind::Manifest { docker }, false) | (Kind::Index { docker }, true) => Ok(if docker {
            Format::DockerV2S2
        } else {
            Format::Oci
        }),
        _ => Err(Error::UnsupportedMediaType {
            media_type: doc.media_type().to_string(),
            what: format!(
                "{what}: expected {}",
                if want_index {
                    "an index or manifest list"
                } else {
                    "an image manifest"
                }
            ),
        }),
    }
}

/// Converts an image manifest to `target`, replacing the layers that `updates` names (by position;
/// `None` or a short slice keeps a layer's blob). The result is the same document when nothing changes.
pub fn convert_manifest(
    doc: &Document,
    target: Format,
    updates: &[Option<LayerUpdate>],
) -> Result<Document> {
    let source = check_convertible(doc, false)?;
    if source == target && updates.iter().all(Option::is_none) {
        return Ok(doc.clone());
    }
    let what = format!("manifest {}", doc.digest());
    let old = as_object(doc)?;
    let config = field(&old, "config", &what)?
        .as_object()
        .ok_or_else(|| Error::invalid_document(&what, "config is not an object"))?;
    let config_mt = str_field(config, "mediaType", &what)?;
    let new_config_mt = match (media_type::kind(config_mt), target) {
        (Kind::Config { .. }, Format::Oci) => media_type::OCI_CONFIG,
        (Kind::Config { .. }, Format::DockerV2S2) => media_type::DOCKER_CONFIG,
        (_, Format::Oci) => config_mt,
        (_, Format::DockerV2S2) => {
            return Err(Error::UnsupportedMediaType {
                media_type: config_mt.to_string(),
                what: format!(
                    "config of {what}: only image configs can be written as Docker schema 2 (this is an artifact; keep --format oci)"
                ),
            });
        }
    };
    let config_desc = descriptor(
        target,
        new_config_mt,
        str_field(config, "digest", &what)?,
        field(config, "size", &what)?,
        config,
    );

    let mut layers = Vec::new();
    for (i, layer) in objects(&old, "layers", &what)?.into_iter().enumerate() {
        let mt = str_field(layer, "mediaType", &what)?;
        let update = updates.get(i).and_then(Option::as_ref);
        let new = match (layer_kind(mt), update) {
            (Some((_, foreign)), Some(u)) => descriptor(
                target,
                &layer_media_type(target, u.compression, foreign)?,
                &u.digest.to_string(),
                &Value::from(u.size),
                layer,
            ),
            (None, Some(_)) => {
                return Err(Error::UnsupportedMediaType {
                    media_type: mt.to_string(),
                    what: format!("layer {i} of {what}: not a layer hoist can recompress"),
                });
            }
            (Some(_), None) if source == target => Value::Object(layer.clone()),
            (Some((compression, foreign)), None) => descriptor(
                target,
                &layer_media_type(target, compression, foreign)?,
                str_field(layer, "digest", &what)?,
                field(layer, "size", &what)?,
                layer,
            ),
            (None, None) if source == target => Value::Object(layer.clone()),
            (None, None) => {
                return Err(Error::UnsupportedMediaType {
                    media_type: mt.to_string(),
                    what: format!(
                        "layer {i} of {what}: unknown layer media type, cannot convert it to {}",
                        target.as_str()
                    ),
                });
            }
        };
        layers.push(new);
    }

    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(2));
    m.insert(
        "mediaType".into(),
        Value::String(target.manifest_media_type().into()),
    );
    m.insert("config".into(), config_desc);
    m.insert("layers".into(), Value::Array(layers));
    for (k, v) in &old {
        if matches!(
            k.as_str(),
            "schemaVersion" | "mediaType" | "config" | "layers"
        ) {
            continue;
        }
        if target == Format::DockerV2S2 && NOT_IN_DOCKER.contains(&k.as_str()) {
            continue;
        }
        m.insert(k.clone(), v.clone());
    }
    let bytes = serde_json::to_vec(&Value::Object(m))
        .map_err(|e| Error::Other(format!("serialising manifest: {e}")))?;
    Document::new(target.manifest_media_type(), bytes)
}

/// Docker schema 2 manifest -> OCI manifest (same blobs).
///
/// ```
/// use hoist::{Digest, convert, document::Document, media_type};
/// let config = Digest::sha256(b"{}");
/// let docker = serde_json::json!({
///     "schemaVersion": 2,
///     "mediaType": media_type::DOCKER_MANIFEST,
///     "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": config.to_string()},
///     "layers": []
/// });
/// let doc = Document::new(media_type::DOCKER_MANIFEST, serde_json::to_vec(&docker).unwrap())?;
/// let oci = convert::to_oci_manifest(&doc)?;
/// assert_eq!(oci.media_type(), media_type::OCI_MANIFEST);
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn to_oci_manifest(doc: &Document) -> Result<Document> {
    convert_manifest(doc, Format::Oci, &[])
}

/// OCI manifest -> Docker schema 2 manifest (same blobs; zstd layers and artifacts are refused).
pub fn to_docker_manifest(doc: &Document) -> Result<Document> {
    convert_manifest(doc, Format::DockerV2S2, &[])
}

/// Converts an index or manifest list to `target`. Entries whose digest is a key of `replaced` point at
/// the replacement document (digest, size and media type); the others keep their descriptor. Platforms,
/// annotations and unknown fields of entries are kept.
pub fn convert_index(
    doc: &Document,
    target: Format,
    replaced: &HashMap<Digest, Document>,
) -> Result<Document> {
    let source = check_convertible(doc, true)?;
    let what = format!("index {}", doc.digest());
    let old = as_object(doc)?;
    let mut entries = Vec::new();
    let mut changed = source != target;
    for entry in objects(&old, "manifests", &what)? {
        let digest = Digest::parse(str_field(entry, "digest", &what)?)?;
        if target == Format::DockerV2S2 && !entry.contains_key("platform") {
            return Err(Error::invalid_document(
                &what,
                format!("entry {digest} has no platform, which a Docker manifest list requires"),
            ));
        }
        entries.push(match replaced.get(&digest) {
            Some(new) => {
                changed = true;
                descriptor(
                    target,
                    new.media_type(),
                    &new.digest().to_string(),
                    &Value::from(new.size()),
                    entry,
                )
            }
            None => Value::Object(entry.clone()),
        });
    }
    if !changed {
        return Ok(doc.clone());
    }
    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(2));
    m.insert(
        "mediaType".into(),
        Value::String(target.index_media_type().into()),
    );
    m.insert("manifests".into(), Value::Array(entries));
    for (k, v) in &old {
        if matches!(k.as_str(), "schemaVersion" | "mediaType" | "manifests") {
            continue;
        }
        if target == Format::DockerV2S2 && NOT_IN_DOCKER.contains(&k.as_str()) {
            continue;
        }
        m.insert(k.clone(), v.clone());
    }
    let bytes = serde_json::to_vec(&Value::Object(m))
        .map_err(|e| Error::Other(format!("serialising index: {e}")))?;
    Document::new(target.index_media_type(), bytes)
}

/// Converts raw document bytes (media type detected) to `target`: manifests and indexes alike. Schema 1
/// manifests are refused here with a message saying so.
pub fn convert_bytes(bytes: Vec<u8>, target: Format) -> Result<Document> {
    let doc = Document::detect(bytes)?;
    if doc.is_index() {
        convert_index(&doc, target, &HashMap::new())
    } else {
        convert_manifest(&doc, target, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":10,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"},{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":20,"digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333"},{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":30,"digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","urls":["https://example.invalid/l"]}]}"#;

    fn doc(s: &str) -> Document {
        Document::detect(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn docker_to_oci_maps_every_media_type_and_keeps_digests_and_urls() {
        let oci = to_oci_manifest(&doc(DOCKER)).unwrap();
        assert_eq!(oci.media_type(), media_type::OCI_MANIFEST);
        let m = oci.manifest().unwrap();
        assert_eq!(m.config().media_type().to_string(), media_type::OCI_CONFIG);
        assert!(m.config().digest().to_string().ends_with("1111"));
        let mts: Vec<String> = m
            .layers()
            .iter()
            .map(|l| l.media_type().to_string())
            .collect();
        assert_eq!(
            mts,
            [
                media_type::OCI_LAYER_GZIP,
                media_type::OCI_LAYER_TAR,
                media_type::OCI_LAYER_NONDIST_GZIP
            ]
        );
        assert_eq!(
            m.layers()[2].urls().as_deref(),
            Some(&["https://example.invalid/l".to_string()][..])
        );
        // Deterministic bytes, key order fixed.
        let text = String::from_utf8(oci.bytes().to_vec()).unwrap();
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType""#), "{text}");
        assert_eq!(to_oci_manifest(&doc(DOCKER)).unwrap(), oci);
    }

    #[test]
    fn round_trip_docker_oci_docker_gives_the_same_bytes() {
        let back = to_docker_manifest(&to_oci_manifest(&doc(DOCKER)).unwrap()).unwrap();
        assert_eq!(back.bytes(), DOCKER.as_bytes());
    }

    #[test]
    fn annotations_survive_to_oci_and_are_dropped_only_for_docker() {
        let oci_src = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":7},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":10,"annotations":{"k":"v"}}],"annotations":{"org.opencontainers.image.ref.name":"v1"}}"#;
        let d = to_docker_manifest(&doc(oci_src)).unwrap();
        let v: Value = serde_json::from_slice(d.bytes()).unwrap();
        assert!(v.get("annotations").is_none());
        assert_eq!(v["layers"][0]["annotations"]["k"], "v");
        assert_eq!(v["config"]["mediaType"], media_type::DOCKER_CONFIG);
        let o = to_oci_manifest(&d).unwrap();
        let v: Value = serde_json::from_slice(o.bytes()).unwrap();
        assert_eq!(v["layers"][0]["annotations"]["k"], "v");
        // OCI -> OCI with no change is the same document.
        assert_eq!(
            to_oci_manifest(&doc(oci_src)).unwrap().bytes(),
            oci_src.as_bytes()
        );
    }

    #[test]
    fn zstd_to_docker_and_schema1_are_refused_with_clear_messages() {
        let z = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":7},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":10}]}"#;
        let err = to_docker_manifest(&doc(z)).unwrap_err().to_string();
        assert!(
            err.contains("zstd") && err.contains("--dest-compress-format"),
            "{err}"
        );
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","architecture":"amd64","fsLayers":[],"history":[]}"#;
        let err = convert_bytes(s1.to_vec(), Format::Oci)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 1"), "{err}");
    }

    #[test]
    fn layer_updates_replace_digest_size_and_media_type() {
        let new = Digest::sha256(b"new");
        let updates = vec![
            None,
            Some(LayerUpdate {
                digest: new.clone(),
                size: 99,
                compression: Compression::Gzip,
            }),
        ];
        let oci = convert_manifest(&doc(DOCKER), Format::Oci, &updates).unwrap();
        let m = oci.manifest().unwrap();
        assert_eq!(m.layers()[1].digest().to_string(), new.to_string());
        assert_eq!(m.layers()[1].size(), 99);
        assert_eq!(
            m.layers()[1].media_type().to_string(),
            media_type::OCI_LAYER_GZIP
        );
        assert_eq!(m.layers()[0].size(), 10);
    }

    #[test]
    fn manifest_list_to_index_keeps_platforms_and_points_at_converted_children() {
        let child = doc(DOCKER);
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":{},"digest":"{}","platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#,
            child.size(),
            child.digest()
        );
        let converted = to_oci_manifest(&child).unwrap();
        let mut replaced = HashMap::new();
        replaced.insert(child.digest().clone(), converted.clone());
        let index = convert_index(&doc(&list), Format::Oci, &replaced).unwrap();
        assert_eq!(index.media_type(), media_type::OCI_INDEX);
        let i = index.index().unwrap();
        let e = &i.manifests()[0];
        assert_eq!(e.digest().to_string(), converted.digest().to_string());
        assert_eq!(e.media_type().to_string(), media_type::OCI_MANIFEST);
        let p = e.platform().as_ref().unwrap();
        assert_eq!(p.variant().as_deref(), Some("v7"));
        // And back: the list again, byte for byte.
        let mut back_map = HashMap::new();
        back_map.insert(converted.digest().clone(), child.clone());
        let back = convert_index(&index, Format::DockerV2S2, &back_map).unwrap();
        assert_eq!(back.bytes(), list.as_bytes());
    }
}
