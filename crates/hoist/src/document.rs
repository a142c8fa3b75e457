//! Manifests and indexes as documents: the exact bytes (for digests and copies) beside their parsed form.
//!
//! hoist never re-serialises a document it did not create: oci-spec's maps do not keep key order and it
//! drops unknown fields, so the bytes travel as read, and the parsed form is only for looking inside.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::descriptor::{Descriptor, new_descriptor};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::media_type::{self, Kind};

/// A manifest or index: exact bytes, their digest, and the media type they were served as.
///
/// ```
/// use hoist::document::Document;
/// let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// let doc = Document::detect(bytes.to_vec())?;
/// assert!(doc.is_index());
/// assert_eq!(doc.digest(), &hoist::Digest::sha256(bytes));
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    media_type: String,
    digest: Digest,
    bytes: Vec<u8>,
}

/// The parsed form of a [`Document`].
#[derive(Debug, Clone)]
pub enum Parsed {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Box<ImageManifest>),
    /// An index or Docker manifest list.
    Index(Box<ImageIndex>),
}

/// The few fields hoist reads before choosing how to parse a document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<serde_json::Value>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
}

fn probe(bytes: &[u8], what: &str) -> Result<Probe> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid_document(what, format!("not a JSON object: {e}")))
}

impl Document {
    /// A document whose media type is known from its descriptor (or a registry's `Content-Type`).
    ///
    /// Fails when the bytes embed a different `mediaType`, or are a Docker schema 1 manifest.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Result<Self> {
        let digest = Digest::sha256(&bytes);
        Self::with_digest(media_type, bytes, digest)
    }

    /// Like [`Document::new`] with a digest of another algorithm than sha256 (the bytes are rehashed).
    pub fn with_algorithm(media_type: &str, bytes: Vec<u8>, algorithm: Algorithm) -> Result<Self> {
        let digest = Digest::of_bytes(algorithm, &bytes);
        Self::with_digest(media_type, bytes, digest)
    }

    fn with_digest(media_type: &str, bytes: Vec<u8>, digest: Digest) -> Result<Self> {
        let what = format!("document {}", digest.short());
        let p = probe(&bytes, &what)?;
        if p.fs_layers.is_some() || media_type::kind(media_type) == Kind::Schema1 {
            return Err(schema1_error(&what));
        }
        if let Some(embedded) = &p.media_type {
            let embedded = embedded
                .as_str()
                .ok_or_else(|| Error::invalid_document(&what, "mediaType is not a string"))?;
            if embedded != media_type {
                return Err(Error::invalid_document(
                    &what,
                    format!(
                        "embedded mediaType {embedded:?} disagrees with its descriptor's {media_type:?}"
                    ),
                ));
            }
        }
        check_unambiguous(&p, media_type, &what)?;
        Ok(Document {
            media_type: media_type.to_string(),
            digest,
            bytes,
        })
    }

    /// A document of unknown media type: taken from the embedded `mediaType`, or inferred from its shape
    /// (an object with `manifests` is an OCI index, one with `config` an OCI manifest).
    pub fn detect(bytes: Vec<u8>) -> Result<Self> {
        let digest = Digest::sha256(&bytes);
        let what = format!("document {}", digest.short());
        let p = probe(&bytes, &what)?;
        let media_type = if let Some(mt) = p.media_type.as_ref().and_then(|v| v.as_str()) {
            mt.to_string()
        } else if p.fs_layers.is_some()
            || p.schema_version.as_ref().and_then(|v| v.as_u64()) == Some(1)
        {
            return Err(schema1_error(&what));
        } else if p.manifests.is_some() {
            media_type::OCI_INDEX.to_string()
        } else if p.config.is_some() {
            media_type::OCI_MANIFEST.to_string()
        } else {
            return Err(Error::invalid_document(
                &what,
                "neither a manifest (no config) nor an index (no manifests), and no mediaType",
            ));
        };
        Self::with_digest(&media_type, bytes, digest)
    }

    /// A document that must match `desc` (digest and size), e.g. read from a layout or registry.
    pub fn for_descriptor(desc: &Descriptor, bytes: Vec<u8>) -> Result<Self> {
        let expected = crate::descriptor::digest_of(desc)?;
        if bytes.len() as u64 != desc.size() {
            return Err(Error::SizeMismatch {
                what: format!("document {expected}"),
                expected: desc.size(),
                actual: bytes.len() as u64,
            });
        }
        let doc = Self::with_algorithm(desc.media_type().as_ref(), bytes, expected.algorithm())?;
        if doc.digest != expected {
            return Err(Error::DigestMismatch {
                what: "document".into(),
                expected,
                actual: doc.digest,
            });
        }
        Ok(doc)
    }

    /// The media type.
    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    /// The digest of the exact bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// A descriptor that points at this document.
    pub fn descriptor(&self) -> Descriptor {
        new_descriptor(&self.media_type, &self.digest, self.size())
    }

    /// What kind of document this is.
    pub fn kind(&self) -> Kind {
        media_type::kind(&self.media_type)
    }

    /// True for an index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.kind(), Kind::Index { .. })
    }

    fn what(&self) -> String {
        format!("{} {}", kind_name(self.kind()), self.digest)
    }

    /// Parses the document as a manifest or an index, according to its media type.
    pub fn parse(&self) -> Result<Parsed> {
        match self.kind() {
            Kind::Manifest { .. } => Ok(Parsed::Manifest(Box::new(self.manifest()?))),
            Kind::Index { .. } => Ok(Parsed::Index(Box::new(self.index()?))),
            Kind::Schema1 => Err(schema1_error(&self.what())),
            _ => Err(Error::UnsupportedMediaType {
                media_type: self.media_type.clone(),
                what: format!("document {}", self.digest),
            }),
        }
    }

    /// Parses as an image manifest, checking `schemaVersion` and that every descriptor is well formed.
    pub fn manifest(&self) -> Result<ImageManifest> {
        let m: ImageManifest = serde_json::from_slice(&self.bytes).map_err(|e| {
            explain_bad_digest(&self.bytes)
                .unwrap_or_else(|| Error::invalid_document(self.what(), e.to_string()))
        })?;
        if m.schema_version() != 2 {
            return Err(Error::invalid_document(
                self.what(),
                format!("schemaVersion is {}, expected 2", m.schema_version()),
            ));
        }
        crate::descriptor::check(m.config())?;
        self.check_child_kind(m.config(), "its config", false)?;
        for l in m.layers() {
            crate::descriptor::check(l)?;
            self.check_child_kind(l, "a layer", false)?;
        }
        if let Some(s) = m.subject() {
            crate::descriptor::check(s)?;
        }
        Ok(m)
    }

    /// Parses as an image index, checking `schemaVersion` and every child descriptor's digest.
    pub fn index(&self) -> Result<ImageIndex> {
        let i: ImageIndex = serde_json::from_slice(&self.bytes).map_err(|e| {
            explain_bad_digest(&self.bytes)
                .unwrap_or_else(|| Error::invalid_document(self.what(), e.to_string()))
        })?;
        if i.schema_version() != 2 {
            return Err(Error::invalid_document(
                self.what(),
                format!("schemaVersion is {}, expected 2", i.schema_version()),
            ));
        }
        for m in i.manifests() {
            // An entry in an algorithm hoist does not know is unusable, not the whole index: platform
            // choice passes over it and verify reports it (as skopeo uses the other entries).
            if unregistered_algorithm(m.digest().as_ref()) {
                continue;
            }
            crate::descriptor::check(m)?;
            self.check_child_kind(m, "an entry", true)?;
        }
        if let Some(s) = i.subject() {
            crate::descriptor::check(s)?;
        }
        Ok(i)
    }
}

impl Document {
    /// A manifest's config and layers are blobs, never manifests or indexes; an index's entries are
    /// manifests or indexes (or artifacts of unknown types), never configs or layers. Anything else
    /// would have a walker read a blob as a document or the reverse.
    fn check_child_kind(&self, desc: &Descriptor, role: &str, in_index: bool) -> Result<()> {
        let mt = desc.media_type().to_string();
        let wrong = match media_type::kind(&mt) {
            Kind::Manifest { .. } | Kind::Index { .. } | Kind::Schema1 => !in_index,
            Kind::Config { .. } | Kind::Layer { .. } => in_index,
            Kind::Other => false,
        };
        if !wrong {
            return Ok(());
        }
        let expected = if in_index {
            "a manifest or index"
        } else {
            "a blob, not a manifest or index"
        };
        Err(Error::invalid_document(
            self.what(),
            format!(
                "{role} ({}) has media type {mt:?}, but must be {expected}",
                desc.digest()
            ),
        ))
    }
}

/// Refuses an `index.json` (of a layout or an oci-archive) that is also a manifest: the check every
/// [`Document`] gets ([`check_unambiguous`]), for the one index that is not a blob.
pub(crate) fn check_index_json(bytes: &[u8], what: &str) -> Result<()> {
    check_unambiguous(&probe(bytes, what)?, media_type::OCI_INDEX, what)
}

/// Refuses a document that could be read as both a manifest and an index (CVE-2021-41190): one with
/// `manifests` beside `config` or `layers`, a manifest with `manifests`, or an index with `config` or
/// `layers`. Every [`Document`] goes through this, so no verb can see one reading and copy another.
fn check_unambiguous(p: &Probe, media_type: &str, what: &str) -> Result<()> {
    let fields = |names: &[(&str, bool)]| -> Vec<String> {
        names
            .iter()
            .filter(|(_, present)| *present)
            .map(|(n, _)| format!("{n:?}"))
            .collect()
    };
    let manifest_fields = fields(&[
        ("config", p.config.is_some()),
        ("layers", p.layers.is_some()),
    ]);
    let reason = if p.manifests.is_some() && !manifest_fields.is_empty() {
        format!(
            "ambiguous document: it has both \"manifests\" (an index's) and {} (a manifest's)",
            manifest_fields.join(" and ")
        )
    } else {
        match media_type::kind(media_type) {
            Kind::Manifest { .. } if p.manifests.is_some() => {
                "ambiguous document: a manifest with an index's \"manifests\"".to_string()
            }
            Kind::Index { .. } if !manifest_fields.is_empty() => format!(
                "ambiguous document: an index with a manifest's {}",
                manifest_fields.join(" and ")
            ),
            _ => return Ok(()),
        }
    };
    Err(Error::invalid_document(
        what,
        format!("{reason}; refused, as it could be read as either (CVE-2021-41190)"),
    ))
}

/// Checks that a descriptor a reference resolved to names a manifest or an index; a Docker schema 1
/// manifest gets its own message.
pub fn check_root_media_type(media_type: &str, what: &str) -> Result<()> {
    match media_type::kind(media_type) {
        Kind::Manifest { .. } | Kind::Index { .. } => Ok(()),
        Kind::Schema1 => Err(schema1_error(what)),
        _ => Err(Error::UnsupportedMediaType {
            media_type: media_type.to_string(),
            what: format!("{what}: not a manifest or index"),
        }),
    }
}

/// A manifest or index written anew says what it is: `mediaType` (after `schemaVersion`) when the
/// one it was made from left it out, as the image-spec allows but registries and tools expect.
pub(crate) fn with_media_type(doc: serde_json::Value, media_type: &str) -> serde_json::Value {
    match doc {
        serde_json::Value::Object(m) if !m.contains_key("mediaType") => {
            let mut out = serde_json::Map::new();
            let mut rest = m.into_iter();
            for (k, v) in rest.by_ref() {
                let first = k == "schemaVersion";
                out.insert(k, v);
                if first {
                    break;
                }
            }
            out.insert(
                "mediaType".into(),
                serde_json::Value::String(media_type.into()),
            );
            out.extend(rest);
            serde_json::Value::Object(out)
        }
        other => other,
    }
}

/// Parses an image config, with a clear error naming it.
pub fn parse_config(bytes: &[u8], digest: &Digest) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid_document(format!("config {digest}"), e.to_string()))
}

/// True when `text` follows the OCI digest grammar (`algorithm:encoded`) in an algorithm other than
/// sha256 and sha512: a digest hoist cannot check, as opposed to a malformed one.
pub(crate) fn unregistered_algorithm(text: &str) -> bool {
    let Some((alg, encoded)) = text.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    !matches!(alg, "sha256" | "sha512")
        && alg.split(['+', '.', '_', '-']).all(component)
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// When oci-spec refuses a document, finds a descriptor digest that hoist's grammar refuses too, so the
/// error names the digest rather than a serde position.
pub(crate) fn explain_bad_digest(bytes: &[u8]) -> Option<Error> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut descriptors: Vec<&serde_json::Value> = Vec::new();
    for key in ["config", "subject"] {
        descriptors.extend(v.get(key));
    }
    for key in ["layers", "manifests"] {
        if let Some(a) = v.get(key).and_then(|a| a.as_array()) {
            descriptors.extend(a.iter());
        }
    }
    descriptors.iter().find_map(|d| {
        let text = d.get("digest")?.as_str()?;
        Digest::parse(text).err()
    })
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Manifest { .. } => "manifest",
        Kind::Index { .. } => "index",
        Kind::Config { .. } => "config",
        Kind::Layer { .. } => "layer",
        Kind::Schema1 => "schema 1 manifest",
        Kind::Other => "document",
    }
}

fn schema1_error(what: &str) -> Error {
    Error::invalid_document(
        what,
        "Docker schema 1 manifests are not supported (deprecated by Docker in 2019); \
         re-push the image with a current Docker or registry to get schema 2",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"x-unknown":{"b":1,"a":2}}"#;

    #[test]
    fn keeps_exact_bytes_and_digest() {
        let doc = Document::detect(MANIFEST.as_bytes().to_vec()).unwrap();
        assert_eq!(doc.bytes(), MANIFEST.as_bytes());
        assert_eq!(doc.digest(), &Digest::sha256(MANIFEST.as_bytes()));
        assert_eq!(doc.media_type(), media_type::OCI_MANIFEST);
        assert!(matches!(doc.parse().unwrap(), Parsed::Manifest(_)));
    }

    #[test]
    fn embedded_media_type_must_agree() {
        let err = Document::new(media_type::OCI_INDEX, MANIFEST.as_bytes().to_vec()).unwrap_err();
        assert!(err.to_string().contains("disagrees"), "{err}");
    }

    #[test]
    fn ambiguous_documents_are_refused_whatever_they_claim() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let cases = [
            MANIFEST.replace(r#""layers":[]"#, r#""layers":[],"manifests":[]"#),
            MANIFEST.replace(r#""layers":[],"#, r#""manifests":[],"#),
            index.replace(r#""manifests":[]"#, r#""manifests":[],"layers":[]"#),
            index.replace(r#""manifests":[]"#, r#""manifests":[],"config":{}"#),
        ];
        for (i, text) in cases.iter().enumerate() {
            let bytes = text.as_bytes().to_vec();
            let embedded = if i < 2 {
                media_type::OCI_MANIFEST
            } else {
                media_type::OCI_INDEX
            };
            let no_type = text
                .replace(
                    r#""mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                    "",
                )
                .replace(
                    r#""mediaType":"application/vnd.oci.image.index.v1+json","#,
                    "",
                );
            for result in [
                Document::detect(bytes.clone()),
                Document::new(embedded, bytes.clone()),
                Document::detect(no_type.clone().into_bytes()),
                Document::new(media_type::OCI_MANIFEST, no_type.clone().into_bytes()),
                Document::new(media_type::OCI_INDEX, no_type.clone().into_bytes()),
                Document::new(media_type::DOCKER_MANIFEST, no_type.clone().into_bytes()),
                Document::new(media_type::DOCKER_MANIFEST_LIST, no_type.into_bytes()),
            ] {
                let err = result.expect_err(&format!("case {i}: {text}")).to_string();
                assert!(
                    err.contains("ambiguous") && err.contains("CVE-2021-41190"),
                    "case {i}: {err}"
                );
            }
        }
        // An index with a manifest's layers, even without manifests of its own.
        let layered = index.replace(r#""manifests":[]"#, r#""layers":[]"#);
        let no_type = layered.replace(
            r#""mediaType":"application/vnd.oci.image.index.v1+json","#,
            "",
        );
        for result in [
            Document::detect(layered.clone().into_bytes()),
            Document::new(media_type::OCI_INDEX, layered.into_bytes()),
            Document::new(media_type::DOCKER_MANIFEST_LIST, no_type.into_bytes()),
        ] {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("ambiguous"), "{err}");
        }
        // Unrelated keys with those names deeper down are fine.
        let ok = MANIFEST.replace(r#""x-unknown":{"b":1,"a":2}"#, r#""x":{"manifests":[]}"#);
        Document::detect(ok.into_bytes()).unwrap();
    }

    #[test]
    fn children_of_the_wrong_kind_are_refused() {
        let index_mt = media_type::OCI_INDEX;
        let config_is_index = MANIFEST.replace(
            r#""config":{"mediaType":"application/vnd.oci.image.config.v1+json""#,
            &format!(r#""config":{{"mediaType":"{index_mt}""#),
        );
        let err = Document::detect(config_is_index.into_bytes())
            .unwrap()
            .manifest()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its config") && err.contains(index_mt),
            "{err}"
        );
        let layer_is_manifest = MANIFEST.replace(
            r#""layers":[]"#,
            r#""layers":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]"#,
        );
        let err = Document::detect(layer_is_manifest.into_bytes())
            .unwrap()
            .manifest()
            .unwrap_err()
            .to_string();
        assert!(err.contains("a layer"), "{err}");
        let index_of_layer = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}"#;
        let err = Document::detect(index_of_layer.as_bytes().to_vec())
            .unwrap()
            .index()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("an entry") && err.contains("manifest or index"),
            "{err}"
        );
        // Artifacts of unknown types are carried.
        let artifact = MANIFEST.replace(
            r#""config":{"mediaType":"application/vnd.oci.image.config.v1+json""#,
            r#""config":{"mediaType":"application/vnd.example.thing+json""#,
        );
        Document::detect(artifact.into_bytes())
            .unwrap()
            .manifest()
            .unwrap();
    }

    #[test]
    fn duplicate_keys_are_refused() {
        // serde refuses a repeated field where Go would take the last one: two readers, two images.
        for text in [
            MANIFEST.replace(r#""layers":[]"#, r#""layers":[],"layers":[]"#),
            MANIFEST.replace(r#""size":2}"#, r#""size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}"#),
            MANIFEST.replace(r#""schemaVersion":2,"#, r#""schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","#),
        ] {
            let parsed = Document::detect(text.clone().into_bytes()).and_then(|d| d.parse().map(|_| ()));
            let err = parsed.expect_err(&text).to_string();
            assert!(err.contains("duplicate"), "{err}");
        }
    }

    #[test]
    fn manifests_written_anew_carry_media_type() {
        let bare = serde_json::json!({"schemaVersion": 2, "config": {}, "layers": []});
        let out = serde_json::to_string(&with_media_type(bare, media_type::OCI_MANIFEST)).unwrap();
        assert_eq!(
            out,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#
        );
        let typed = serde_json::json!({"schemaVersion": 2, "mediaType": "x", "config": {}});
        assert_eq!(with_media_type(typed.clone(), "y"), typed);
    }

    #[test]
    fn schema1_is_refused_by_name() {
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_vec();
        let err = Document::detect(s1).unwrap_err();
        assert!(err.to_string().contains("schema 1"), "{err}");
    }

    #[test]
    fn negative_size_and_bad_digest_are_invalid() {
        let neg = MANIFEST.replace("\"size\":2", "\"size\":-2");
        let doc = Document::detect(neg.into_bytes()).unwrap();
        assert!(doc.manifest().is_err());
        let trav = MANIFEST.replace(
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:../../../../etc/passwd",
        );
        let doc = Document::detect(trav.into_bytes()).unwrap();
        assert!(doc.manifest().is_err());
    }

    #[test]
    fn for_descriptor_checks_size_and_digest() {
        let doc = Document::detect(MANIFEST.as_bytes().to_vec()).unwrap();
        let desc = doc.descriptor();
        assert!(Document::for_descriptor(&desc, MANIFEST.as_bytes().to_vec()).is_ok());
        let mut other = MANIFEST.as_bytes().to_vec();
        other[5] = b'X';
        assert!(matches!(
            Document::for_descriptor(&desc, other),
            Err(Error::DigestMismatch { .. }) | Err(Error::InvalidDocument { .. })
        ));
    }
}
