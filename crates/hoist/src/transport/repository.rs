//! A repository: a named store of manifests, blobs and tags (an OCI layout, a registry repository),
//! for the plumbing that works on names and blobs rather than on one image: more tags for an image,
//! deleting a tag or a manifest, one blob by digest in or out, tags with the digests they name
//! (crane's and regctl's `tag`, `delete`, `blob`; umoci's `tag`/`rm`).
//!
//! [`open_repository`] is the one place that says which transports are repositories; each transport
//! implements [`Repository`] in its own module, so verbs never match on transport variants.

use std::io::Read;

use crate::blob::VerifiedReader;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::reference::{LayoutRef, TransportRef};
use crate::transport::{OpenOptions, VerifiedStream};

/// What a reference names inside its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A tag.
    Tag(String),
    /// A manifest (or index) digest.
    Digest(Digest),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Tag(t) => write!(f, ":{t}"),
            Item::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// What [`Repository::delete`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The manifest `0` and, with it, every tag on it (a layout: every `index.json` entry of it).
    Manifest(Digest),
    /// One tag, which named the manifest `digest`; the manifest and its other tags stay.
    Tag {
        /// The manifest the tag named.
        digest: Digest,
        /// The registry could not delete tags, so the tag was moved to a throw-away manifest that
        /// was then deleted (regctl's technique).
        repointed: bool,
    },
}

/// A named store of manifests, blobs and tags. Every method is blocking I/O.
pub trait Repository: Send + Sync {
    /// The repository as a reference without tag or digest (`oci:PATH`, `docker://HOST/REPO`).
    fn name(&self) -> String;

    /// The manifest or index `item` names, exact bytes (verified against a digest).
    fn resolve(&self, item: &Item) -> Result<Document>;

    /// The repository's tags.
    fn tags(&self) -> Result<Vec<String>>;

    /// Every tag with the descriptor of what it names. The default resolves each tag.
    fn tagged(&self) -> Result<Vec<(String, Descriptor)>> {
        self.tags()?
            .into_iter()
            .map(|tag| {
                let doc = self.resolve(&Item::Tag(tag.clone()))?;
                Ok((tag, doc.descriptor()))
            })
            .collect()
    }

    /// The size of blob `digest`; [`Error::NotFound`] when the repository does not hold it.
    fn blob_size(&self, digest: &Digest) -> Result<u64>;

    /// Blob `digest` of `size` bytes as a stream that checks both as it is read.
    fn open_blob(&self, digest: &Digest, size: u64) -> Result<VerifiedStream<'_>>;

    /// Stores `content` as blob `digest` of `size` bytes, only if it has that size and digest
    /// (nothing is stored otherwise); a blob the repository holds already is not sent again.
    fn put_blob(&self, digest: &Digest, size: u64, content: &mut (dyn Read + Send)) -> Result<()>;

    /// Points each of `tags` at `doc`, a manifest or index the repository holds (a tag that exists
    /// is moved). Every tag is checked against the repository's tag grammar before any is written.
    fn tag(&self, doc: &Document, tags: &[String]) -> Result<()>;

    /// Deletes what `item` names. A digest deletes the manifest and every tag on it. A tag deletes
    /// only the tag when `tag_only` is set, and otherwise what the transport means by deleting a
    /// named image: a registry deletes the manifest it names (and so every tag on it, as
    /// `skopeo delete` does), a layout removes that one name. Nothing there is [`Error::NotFound`].
    fn delete(&self, item: &Item, tag_only: bool) -> Result<Deleted>;
}

/// Opens the repository `reference` is in, and what it names there (`None`: no tag or digest was
/// given). OCI layouts (`oci:PATH`) and registries (`docker://HOST/REPO`) are repositories; any
/// other transport is [`Error::Unsupported`], naming it.
///
/// ```no_run
/// let (repo, item) = hoist::open_repository(&"oci:/tmp/layout:v1".parse()?, &Default::default())?;
/// let doc = repo.resolve(&item.expect("a tag was given"))?;
/// repo.tag(&doc, &["stable".to_string()])?;
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn open_repository(
    reference: &TransportRef,
    opts: &OpenOptions,
) -> Result<(Box<dyn Repository>, Option<Item>)> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| open_repository(reference, opts));
    }
    match reference {
        TransportRef::Oci {
            path,
            reference: at,
        } => {
            let item = match at {
                None => None,
                Some(LayoutRef::Tag(t)) => Some(Item::Tag(t.clone())),
                Some(LayoutRef::Digest(d)) => Some(Item::Digest(d.clone())),
                Some(LayoutRef::Index(_)) => {
                    return Err(Error::Unsupported(format!(
                        "{reference}: an entry number names no tag or digest; write oci:PATH:TAG or oci:PATH@DIGEST"
                    )));
                }
            };
            let repo = super::oci::OciRepository::open(path, opts.limits.clone())?;
            Ok((Box::new(repo), item))
        }
        #[cfg(feature = "registry")]
        TransportRef::Docker(name) => {
            // A name without tag or digest means `latest`, as everywhere.
            let item = match (&name.digest, &name.tag) {
                (Some(d), _) => Some(Item::Digest(d.clone())),
                (None, t) => Some(Item::Tag(t.clone().unwrap_or_else(|| "latest".into()))),
            };
            let repo = super::registry::RegistryRepository::open(name, opts)?;
            Ok((Box::new(repo), item))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::Unsupported(format!(
            "{} is not a repository of tags and blobs: this works on registries (docker://) and OCI layouts (oci:)",
            other.transport()
        ))),
    }
}

/// A verified stream over `raw`, blob `digest` of `size` bytes (for [`Repository::open_blob`]).
pub(crate) fn verified<'a>(
    raw: super::BlobReader<'a>,
    digest: &Digest,
    size: u64,
) -> VerifiedStream<'a> {
    VerifiedReader::new(raw, digest.clone(), size, format!("blob {digest}"))
}

/// The usage error for `tag_only` with a digest (shared by every [`Repository::delete`]).
pub(crate) fn tag_only_needs_a_tag(item: &Item, repo: &str) -> Error {
    Error::InvalidReference {
        reference: format!("{repo}{item}"),
        reason: format!("deleting only a tag needs a tag: write {repo}:TAG"),
    }
}
