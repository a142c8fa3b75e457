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
/// Docker foreign (non-distributable) uncompressed layer (what converting an OCI non-distributable
/// tar layer to Docker writes; [`kind`] leaves it `Other`, [`is_foreign`] knows it).
pub const DOCKER_LAYER_FOREIGN_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
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

/// True for a foreign (non-distributable) layer that names where to fetch it (`urls`): a blob a
/// source may lack and a copy leaves out. The one test of foreignness, for every Docker and OCI name.
pub fn is_foreign(desc: &oci_spec::image::Descriptor) -> bool {
    let mt = desc.media_type().to_string();
    (mt == DOCKER_LAYER_FOREIGN_TAR || matches!(kind(&mt), Kind::Layer { foreign: true, .. }))
        && desc.urls().as_ref().is_some_and(|u| !u.is_empty())
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

    #[test]
    fn foreign_layers_of_every_name_with_urls() {
        use oci_spec::image::{DescriptorBuilder, MediaType};
        let desc = |mt: &str, urls: Vec<String>| {
            DescriptorBuilder::default()
                .media_type(MediaType::from(mt))
                .digest(
                    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                        .parse::<oci_spec::image::Digest>()
                        .unwrap(),
                )
                .size(0u64)
                .urls(urls)
                .build()
                .unwrap()
        };
        let url = || vec!["https://example.com/layer".to_string()];
        // Docker's uncompressed foreign type too (copy's own test once missed it).
        for mt in [
            DOCKER_LAYER_FOREIGN,
            DOCKER_LAYER_FOREIGN_TAR,
            OCI_LAYER_NONDIST_TAR,
            OCI_LAYER_NONDIST_GZIP,
            OCI_LAYER_NONDIST_ZSTD,
        ] {
            assert!(is_foreign(&desc(mt, url())), "{mt}");
            assert!(!is_foreign(&desc(mt, Vec::new())), "{mt} without urls");
        }
        assert!(!is_foreign(&desc(OCI_LAYER_GZIP, url())));
        assert!(!is_foreign(&desc(DOCKER_LAYER_TAR, url())));
    }
}
