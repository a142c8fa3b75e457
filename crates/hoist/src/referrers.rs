//! OCI 1.1 referrers over transports: the tree of an image's referrers ([`tree`], `hoist
//! referrers`) and attaching an artifact to an image ([`attach`], `hoist attach`, as `oras attach`).
//! The model they stand on (the subject, the empty descriptor, listings, the fallback tag), which
//! every transport uses to store and list referrers, is re-exported here from the crate-private
//! `artifact` module.
//!
//! Documents stay exact bytes: nothing here re-serialises a manifest it did not build.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::blob::VerifiedReader;
use crate::reference::TransportRef;
use crate::transport::{BlobReader, OpenOptions, Source, open_destination, open_source};

use crate::descriptor::{Descriptor, digest_of, new_descriptor};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::media_type;

pub use crate::artifact::{
    DOCKER_REFERENCE_DIGEST, DOCKER_REFERENCE_TYPE, artifact_type, empty_descriptor, fallback_tag,
    listed_artifact_type, passes, subject,
};
pub(crate) use crate::artifact::{EMPTY_JSON, attests, check_count};

/// One referrer with its own referrers (signatures of an SBOM, ...): a node of [`tree`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    /// The referrer, as the referrers API describes it (artifact type, annotations).
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// Its referrers, recursively.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Node>,
}

/// The referrers of `digest` in `source` and theirs, recursively (as `oras discover` shows them),
/// keeping those whose artifact type is in `artifact_types` at every level (all when empty). At most
/// `--max-referrers` in all and `--max-index-depth` levels; a referrer that refers back to one of
/// its own subjects (a cycle a hostile registry can answer) is an error.
///
/// ```no_run
/// let opts = hoist::OpenOptions::default();
/// let source = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
/// let digest = source.root()?.digest().clone();
/// for node in hoist::referrers::tree(source.as_ref(), &digest, &[])? {
///     println!("{} ({} referrers of its own)", node.descriptor.digest(), node.referrers.len());
/// }
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn tree(source: &dyn Source, digest: &Digest, artifact_types: &[String]) -> Result<Vec<Node>> {
    let mut count = 0;
    let mut path = vec![digest.clone()];
    tree_below(source, artifact_types, &mut path, &mut count)
}

fn tree_below(
    source: &dyn Source,
    artifact_types: &[String],
    path: &mut Vec<Digest>,
    count: &mut usize,
) -> Result<Vec<Node>> {
    let limits = source.limits();
    let Some(subject) = path.last().cloned() else {
        return Ok(Vec::new());
    };
    let what = format!("the referrers of {subject} in {}", source.name());
    if path.len() > limits.max_index_depth + 1 {
        return Err(Error::LimitExceeded {
            what: format!("{what} (referrers of referrers)"),
            limit: format!("{} levels", limits.max_index_depth),
            option: "--max-index-depth".into(),
        });
    }
    let mut out = Vec::new();
    for desc in source.referrers(&subject, artifact_types)? {
        let digest = digest_of(&desc)?;
        if path.contains(&digest) {
            return Err(Error::invalid_document(
                what,
                format!("referrer {digest} is its own subject's subject (a cycle)"),
            ));
        }
        *count += 1;
        check_count(*count, limits, &what)?;
        path.push(digest);
        let referrers = tree_below(source, artifact_types, path, count)?;
        path.pop();
        out.push(Node {
            descriptor: desc,
            referrers,
        });
    }
    Ok(out)
}

/// Where referrers of `image` are written: its registry repository (no tag), or its layout
/// (`oci:`). Other transports cannot take a referrer in place (`oci-archive:` is written whole: attach
/// in an `oci:` layout and copy that).
pub(crate) fn home_of(image: &TransportRef) -> Result<TransportRef> {
    if let Some(home) = image.in_same_repository(None) {
        return Ok(home);
    }
    Err(Error::Unsupported(if image.kind().holds_referrers {
        format!(
            "{image}: an {} is written whole, so a referrer cannot be added to it in place; \
             attach in an oci: layout and copy that",
            image.transport()
        )
    } else {
        format!(
            "{} cannot hold referrers (signatures, SBOMs, attestations): only registries (docker://) \
             and OCI layouts (oci:) can",
            image.transport()
        )
    }))
}

/// What [`attach`] attaches (build it with `default()` and set fields).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AttachOptions {
    /// The artifact's type (`artifactType`), required.
    pub artifact_type: String,
    /// The files, each with its media type (`application/vnd.oci.image.layer.v1.tar` when `None`,
    /// as oras does); none gives an artifact whose one layer is the empty descriptor.
    pub files: Vec<(PathBuf, Option<String>)>,
    /// Annotations of the artifact manifest (`org.opencontainers.image.created` is added when absent).
    pub annotations: BTreeMap<String, String>,
}

/// The layer media type of an attached file when none is given (oras' default).
pub const DEFAULT_FILE_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// The annotation naming an attached file (its file name, as oras writes it).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// The annotation of the artifact's creation time.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// Attaches an artifact to `image` (as `oras attach`): an OCI manifest with `artifactType`, the empty
/// config, one layer per file (titled with its file name) and `subject` the manifest or index `image`
/// names, stored as a referrer where `image` lives (`home_of`). Each file is hashed, then streamed
/// and verified against that hash while it is stored. Returns the artifact manifest.
pub fn attach(image: &TransportRef, opts: &AttachOptions, open: &OpenOptions) -> Result<Document> {
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| attach(image, opts, open));
    }
    if opts.artifact_type.is_empty() {
        return Err(Error::Other("an artifact needs an artifact type".into()));
    }
    let home = home_of(image)?;
    let subject = open_source(image, open)?.root()?;
    let mut layers = Vec::new();
    for (path, media_type) in &opts.files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Other(format!("{}: not a file name", path.display())))?;
        let (digest, size) = hash_file(path)?;
        let mut desc = new_descriptor(
            media_type.as_deref().unwrap_or(DEFAULT_FILE_MEDIA_TYPE),
            &digest,
            size,
        );
        desc.set_annotations(Some(HashMap::from([(
            TITLE_ANNOTATION.to_string(),
            name.to_string(),
        )])));
        layers.push((desc, Some(path.clone())));
    }
    if layers.is_empty() {
        layers.push((empty_descriptor(), None));
    }
    let mut annotations = opts.annotations.clone();
    annotations
        .entry(CREATED_ANNOTATION.into())
        .or_insert_with(crate::config_edit::now_rfc3339);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": opts.artifact_type,
        "config": empty_descriptor(),
        "layers": layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        "subject": subject.descriptor(),
        "annotations": annotations,
    });
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Error::Other(format!("serialising the artifact manifest: {e}")))?;
    let doc = Document::new(media_type::OCI_MANIFEST, bytes)?;
    let dest = open_destination(&home, open)?;
    let empty = empty_descriptor();
    let mut blobs: Vec<(Descriptor, Option<PathBuf>)> = vec![(empty, None)];
    blobs.extend(layers);
    for (desc, path) in blobs {
        if dest.has_blob(&desc)? {
            continue;
        }
        let digest = digest_of(&desc)?;
        let raw: BlobReader<'_> = match &path {
            Some(p) => Box::new(
                crate::durable::open_regular(p, false)
                    .map_err(|e| Error::io(format!("opening {}", p.display()), e))?,
            ),
            None => Box::new(std::io::Cursor::new(EMPTY_JSON)),
        };
        let mut stream = VerifiedReader::new(raw, digest.clone(), desc.size(), format!("{digest}"));
        dest.put_blob(&desc, &mut stream)?;
    }
    dest.commit_referrer(&doc)?;
    Ok(doc)
}

/// The sha256 digest and size of a regular file.
fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let mut file = crate::durable::open_regular(path, false)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut w =
        crate::digest::HashingWriter::new(std::io::sink(), crate::digest::Algorithm::Sha256);
    std::io::copy(&mut file, &mut w)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let (_, digest, size) = w.finish();
    Ok((digest, size))
}
