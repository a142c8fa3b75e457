//! Descriptors: oci-spec's [`Descriptor`] plus the checks and accessors hoist needs on every one.
//!
//! oci-spec accepts digests hoist does not (other algorithms); [`digest_of`] re-validates with the hoist
//! grammar, so every descriptor that reaches a filesystem path went through [`Digest::parse`].

pub use oci_spec::image::Descriptor;
use oci_spec::image::MediaType;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The validated digest of a descriptor.
pub fn digest_of(desc: &Descriptor) -> Result<Digest> {
    Digest::parse(desc.digest().as_ref())
}

/// The content a descriptor embeds in its `data` field (base64), checked against the descriptor: it
/// must decode, and have the descriptor's size and digest. `None` when there is no `data`. Documents
/// check every descriptor with this when they are parsed, so embedded content that disagrees with
/// what the descriptor names never travels on, and content taken from `data` is the blob's.
pub fn embedded_data(desc: &Descriptor) -> Result<Option<Vec<u8>>> {
    use base64::Engine;
    let Some(text) = desc.data() else {
        return Ok(None);
    };
    let digest = digest_of(desc)?;
    let what = format!("the data embedded in the descriptor of {digest}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::invalid_document(&what, format!("not base64: {e}")))?;
    if bytes.len() as u64 != desc.size() {
        return Err(Error::SizeMismatch {
            what,
            expected: desc.size(),
            actual: bytes.len() as u64,
        });
    }
    let actual = Digest::of_bytes(digest.algorithm(), &bytes);
    if actual != digest {
        return Err(Error::DigestMismatch {
            what,
            expected: digest,
            actual,
        });
    }
    Ok(Some(bytes))
}

/// A descriptor's digest checked against hoist's grammar, and its embedded `data`, if any, checked
/// against that digest and its size ([`embedded_data`]).
pub fn check(desc: &Descriptor) -> Result<Digest> {
    let digest = digest_of(desc)?;
    embedded_data(desc)?;
    Ok(digest)
}

/// The media type of a descriptor as a string (OCI names from oci-spec, others verbatim).
pub fn media_type_of(desc: &Descriptor) -> String {
    desc.media_type().to_string()
}

/// Builds a descriptor for content of `media_type`, `digest` and `size`.
///
/// ```
/// use hoist::{Digest, descriptor, media_type};
/// let config = br#"{"architecture":"amd64","os":"linux"}"#;
/// let desc = descriptor::new_descriptor(media_type::OCI_CONFIG, &Digest::sha256(config), config.len() as u64);
/// assert_eq!(descriptor::digest_of(&desc)?, Digest::sha256(config));
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn new_descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(MediaType::from(media_type), size, digest)
}

/// A short description for messages: `layer sha256:0123456789ab (application/...tar+gzip)`.
pub fn describe(desc: &Descriptor) -> String {
    let digest = desc.digest().to_string();
    let short = digest.get(..19).unwrap_or(&digest);
    format!("{} ({})", short, desc.media_type())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type;

    #[test]
    fn embedded_data_must_match_size_and_digest() {
        let good = |bytes: &[u8]| {
            let mut d = new_descriptor(
                media_type::OCI_CONFIG,
                &Digest::sha256(bytes),
                bytes.len() as u64,
            );
            d.set_data(Some("e30=".into())); // "{}"
            d
        };
        assert_eq!(embedded_data(&good(b"{}")).unwrap().unwrap(), b"{}");
        assert!(check(&good(b"{}")).is_ok());
        let no_data = new_descriptor(media_type::OCI_CONFIG, &Digest::sha256(b"x"), 1);
        assert_eq!(embedded_data(&no_data).unwrap(), None);
        // Same size, other content: the digest disagrees.
        let err = check(&good(b"[]")).unwrap_err().to_string();
        assert!(
            err.contains("digest mismatch") && err.contains("data embedded"),
            "{err}"
        );
        // Other size.
        let err = check(&good(b"{ }")).unwrap_err().to_string();
        assert!(
            err.contains("size mismatch") && err.contains("data embedded"),
            "{err}"
        );
        let mut bad = good(b"{}");
        bad.set_data(Some("!!".into()));
        assert!(check(&bad).unwrap_err().to_string().contains("not base64"));
    }

    #[test]
    fn docker_media_types_round_trip_verbatim() {
        let d = Digest::sha256(b"x");
        let desc = new_descriptor(media_type::DOCKER_LAYER_GZIP, &d, 1);
        assert_eq!(media_type_of(&desc), media_type::DOCKER_LAYER_GZIP);
        assert_eq!(digest_of(&desc).unwrap(), d);
        let json = serde_json::to_string(&desc).unwrap();
        assert!(json.contains(media_type::DOCKER_LAYER_GZIP), "{json}");
    }
}
