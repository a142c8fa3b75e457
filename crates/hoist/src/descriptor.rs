//! Descriptors: oci-spec's [`Descriptor`] plus the checks and accessors hoist needs on every one.
//!
//! oci-spec accepts digests hoist does not (other algorithms); [`digest_of`] re-validates with the hoist
//! grammar, so every descriptor that reaches a filesystem path went through [`Digest::parse`].

pub use oci_spec::image::Descriptor;
use oci_spec::image::MediaType;

use crate::digest::Digest;
use crate::error::Result;

/// The validated digest of a descriptor.
pub fn digest_of(desc: &Descriptor) -> Result<Digest> {
    Digest::parse(desc.digest().as_ref())
}

/// The media type of a descriptor as a string (OCI names from oci-spec, others verbatim).
pub fn media_type_of(desc: &Descriptor) -> String {
    desc.media_type().to_string()
}

/// Builds a descriptor for content of `media_type`, `digest` and `size`.
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
    fn docker_media_types_round_trip_verbatim() {
        let d = Digest::sha256(b"x");
        let desc = new_descriptor(media_type::DOCKER_LAYER_GZIP, &d, 1);
        assert_eq!(media_type_of(&desc), media_type::DOCKER_LAYER_GZIP);
        assert_eq!(digest_of(&desc).unwrap(), d);
        let json = serde_json::to_string(&desc).unwrap();
        assert!(json.contains(media_type::DOCKER_LAYER_GZIP), "{json}");
    }
}
