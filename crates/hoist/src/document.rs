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
        crate::descriptor::digest_of(m.config())?;
        for l in m.layers() {
            crate::descriptor::digest_of(l)?;
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
            if let Err(e) = crate::descriptor::digest_of(m)
                && !unregistered_algorithm(m.digest().as_ref())
            {
                return Err(e);
            }
        }
        Ok(i)
    }
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

/// Parses an image config, with a clear error naming it.
pub fn parse_config(bytes: &[u8], digest: &Digest) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid_document(format!("config {digest}"), e.to_string()))
}

/// True when `text` follows the OCI digest grammar (`algorithm:encoded`) in an algorithm other than
/// sha256 and sha512: a digest hoist cannot check, as opposed to a malformed one.
pub fn unregistered_algorithm(text: &str) -> bool {
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
