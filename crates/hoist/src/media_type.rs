//! OCI and Docker media types by name, and what kind of thing each one is.
//!
//! oci-spec knows the OCI names; Docker's arrive as `MediaType::Other`. This module is the one place that
//! gives every name a meaning, so no other code compares media type strings.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable uncompressed layer (deprecated by the spec, still seen).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip layer.
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd layer.
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// OCI empty descriptor (`{}`), used as a config by artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (rare, but written by some tools).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign (non-distributable) layer.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 manifest (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 signed manifest (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// What a media type denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image manifest (OCI or Docker schema 2).
    Manifest {
        /// True for Docker schema 2.
        docker: bool,
    },
    /// An index or manifest list.
    Index {
        /// True for a Docker manifest list.
        docker: bool,
    },
    /// An image config.
    Config {
        /// True for the Docker config media type.
        docker: bool,
    },
    /// A filesystem layer.
    Layer {
        /// Its compression.
        compression: Compression,
        /// True when the layer is marked non-distributable/foreign.
        foreign: bool,
        /// True for the Docker names.
        docker: bool,
    },
    /// A Docker schema 1 manifest: recognised only to refuse it clearly.
    Schema1,
    /// Anything else (artifacts, signatures, unknown): carried verbatim, never interpreted.
    Other,
}

/// Classifies a media type string.
///
/// ```
/// use hoist::media_type::{self, Compression, Kind};
/// assert!(matches!(media_type::kind(media_type::OCI_INDEX), Kind::Index { .. }));
/// assert_eq!(media_type::oci_layer(Compression::Zstd), media_type::OCI_LAYER_ZSTD);
/// ```
pub fn kind(media_type: &str) -> Kind {
    use Compression::*;
    let layer = |compression, foreign, docker| Kind::Layer {
        compression,
        foreign,
        docker,
    };
    match media_type {
        OCI_MANIFEST => Kind::Manifest { docker: false },
        DOCKER_MANIFEST => Kind::Manifest { docker: true },
        OCI_INDEX => Kind::Index { docker: false },
        DOCKER_MANIFEST_LIST => Kind::Index { docker: true },
        OCI_CONFIG => Kind::Config { docker: false },
        DOCKER_CONFIG => Kind::Config { docker: true },
        OCI_LAYER_TAR => layer(None, false, false),
        OCI_LAYER_GZIP => layer(Gzip, false, false),
        OCI_LAYER_ZSTD => layer(Zstd, false, false),
        OCI_LAYER_NONDIST_TAR => layer(None, true, false),
        OCI_LAYER_NONDIST_GZIP => layer(Gzip, true, false),
        OCI_LAYER_NONDIST_ZSTD => layer(Zstd, true, false),
        DOCKER_LAYER_GZIP => layer(Gzip, false, true),
        DOCKER_LAYER_TAR => layer(None, false, true),
        DOCKER_LAYER_FOREIGN => layer(Gzip, true, true),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Kind::Schema1,
        _ => Kind::Other,
    }
}

/// True for manifests and indexes: the documents a reference can resolve to.
pub fn is_document(media_type: &str) -> bool {
    matches!(kind(media_type), Kind::Manifest { .. } | Kind::Index { .. })
}

/// The OCI layer media type for a compression.
pub fn oci_layer(compression: Compression) -> &'static str {
    match compression {
        Compression::None => OCI_LAYER_TAR,
        Compression::Gzip => OCI_LAYER_GZIP,
        Compression::Zstd => OCI_LAYER_ZSTD,
    }
}

/// The Docker layer media type for a compression (`None` where Docker has no name, i.e. zstd).
pub fn docker_layer(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => Some(DOCKER_LAYER_TAR),
        Compression::Gzip => Some(DOCKER_LAYER_GZIP),
        Compression::Zstd => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_oci_and_docker_names() {
        assert_eq!(kind(OCI_MANIFEST), Kind::Manifest { docker: false });
        assert_eq!(kind(DOCKER_MANIFEST_LIST), Kind::Index { docker: true });
        assert_eq!(
            kind(DOCKER_LAYER_FOREIGN),
            Kind::Layer {
                compression: Compression::Gzip,
                foreign: true,
                docker: true
            }
        );
        assert_eq!(kind(DOCKER_SCHEMA1_SIGNED), Kind::Schema1);
        assert_eq!(kind("application/vnd.example.sbom"), Kind::Other);
        assert!(is_document(OCI_INDEX));
        assert!(!is_document(OCI_CONFIG));
    }
}
