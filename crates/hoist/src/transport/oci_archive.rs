//! The `oci-archive:` transport: a tar of an OCI image layout. Reading indexes the tar once and streams
//! blobs from their offsets (nothing is extracted); writing builds a layout in a temp directory beside
//! the target and, on commit, writes the tar by [`crate::durable::Output`]'s rule (a temp file renamed
//! into place; a FIFO, device or symlink target written through).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;

use crate::descriptor::{Descriptor, digest_of};
use crate::document::Document;
use crate::error::{Error, IoContext, Result};
use crate::limits::Limits;
use crate::reference::LayoutRef;

use super::oci::OciDestination;
use super::tar_index::TarIndex;
use super::{BlobReader, Destination, Source, VerifiedStream};

/// Reads an image from an OCI layout tarball.
#[derive(Debug)]
pub struct OciArchiveSource {
    index: TarIndex,
    reference: Option<LayoutRef>,
    limits: Limits,
}

fn blob_member(digest: &crate::Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

impl OciArchiveSource {
    /// Indexes the archive at `path` and checks that it holds a layout.
    pub fn open(path: &Path, reference: Option<LayoutRef>, limits: Limits) -> Result<Self> {
        let index = TarIndex::build(path, &limits)?;
        let marker =
            index
                .read_small("oci-layout", 64 << 10)
                .map_err(|_| Error::InvalidLayout {
                    path: path.to_path_buf(),
                    reason: "the archive has no oci-layout file".into(),
                })?;
        let v: serde_json::Value =
            serde_json::from_slice(&marker).map_err(|e| Error::InvalidLayout {
                path: path.to_path_buf(),
                reason: format!("oci-layout is not JSON: {e}"),
            })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str())
            != Some(crate::layout::LAYOUT_VERSION)
        {
            return Err(Error::InvalidLayout {
                path: path.to_path_buf(),
                reason: "unsupported imageLayoutVersion".into(),
            });
        }
        Ok(OciArchiveSource {
            index,
            reference,
            limits,
        })
    }

    fn index_json(&self) -> Result<ImageIndex> {
        let bytes = self
            .index
            .read_small("index.json", self.limits.max_document_size)?;
        crate::document::check_index_json(&bytes, &format!("index.json of {}", self.name()))?;
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid_document(format!("index.json of {}", self.name()), e.to_string())
        })?;
        Ok(index)
    }
}

impl Source for OciArchiveSource {
    fn name(&self) -> String {
        match &self.reference {
            Some(r @ LayoutRef::Tag(_)) => {
                format!("oci-archive:{}:{r}", self.index.path().display())
            }
            Some(r) => format!("oci-archive:{}{r}", self.index.path().display()),
            None => format!("oci-archive:{}", self.index.path().display()),
        }
    }

    fn root(&self) -> Result<Document> {
        let index = self.index_json()?;
        let desc = match crate::layout::resolve_entry(
            index.manifests(),
            self.reference.as_ref(),
            &self.name(),
        )? {
            Some(d) => d,
            None => {
                let Some(LayoutRef::Digest(digest)) = &self.reference else {
                    unreachable!("resolve_entry returns None only for digests")
                };
                let bytes = self
                    .index
                    .read_small(&blob_member(digest), self.limits.max_document_size)?;
                let doc = Document::detect(bytes)?;
                if doc.digest() != digest {
                    return Err(Error::DigestMismatch {
                        what: format!("blob {} in {}", blob_member(digest), self.name()),
                        expected: digest.clone(),
                        actual: doc.digest().clone(),
                    });
                }
                return Ok(doc);
            }
        };
        crate::document::check_root_media_type(desc.media_type().as_ref(), &self.name())?;
        super::read_document(self, &desc)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        let digest = digest_of(desc)?;
        let member = blob_member(&digest);
        if self.index.get(&member).is_none() {
            return Err(Error::BlobNotFound {
                digest,
                location: self.name(),
            });
        }
        Ok(Box::new(self.index.open(&member)?))
    }

    fn tags(&self) -> Result<Vec<String>> {
        Ok(self
            .index_json()?
            .manifests()
            .iter()
            .filter_map(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(crate::layout::REF_NAME))
                    .cloned()
            })
            .collect())
    }

    fn tagged(&self, tag: &str) -> Result<Option<Document>> {
        let index = self.index_json()?;
        match crate::layout::tagged_entry(index.manifests(), tag, &self.name())? {
            Some(desc) => super::read_document(self, &desc).map(Some),
            None => Ok(None),
        }
    }

    fn referrers(
        &self,
        digest: &crate::Digest,
        artifact_types: &[String],
    ) -> Result<Vec<Descriptor>> {
        crate::artifact::among_entries(
            self.index_json()?.manifests(),
            digest,
            artifact_types,
            &self.limits,
            &self.name(),
            &|d| super::read_document(self, d),
        )
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Writes an image as an OCI layout tarball.
pub struct OciArchiveDestination {
    target: PathBuf,
    _staging: crate::durable::TempDir,
    inner: OciDestination,
}

impl std::fmt::Debug for OciArchiveDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciArchiveDestination")
            .field("target", &self.target)
            .finish()
    }
}

impl OciArchiveDestination {
    /// Prepares to write `path` (replaced whole on commit); `reference` is the tag to record.
    pub fn create(path: &Path, reference: Option<LayoutRef>) -> Result<Self> {
        let parent = crate::durable::scratch_dir_for(path)?;
        // Staging directories and tar files of killed runs; a live run's staging directory is
        // locked by its layout lock, its tar file by its temp-file lock.
        crate::durable::remove_stale(&parent)?;
        let staging = crate::durable::TempDir::new_in(&parent)?;
        let inner = OciDestination::open(&staging.path().join("layout"), reference)?;
        Ok(OciArchiveDestination {
            target: path.to_path_buf(),
            _staging: staging,
            inner,
        })
    }

    fn write_tar(&self) -> Result<()> {
        let out = crate::durable::Output::create(&self.target)?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, out.file()));
        builder.mode(tar::HeaderMode::Deterministic);
        let root = self.inner.layout()?.root();
        let mut names = vec![PathBuf::from("oci-layout"), PathBuf::from("index.json")];
        for alg in ["sha256", "sha512"] {
            let dir = root.join("blobs").join(alg);
            if let Ok(rd) = fs::read_dir(&dir) {
                let mut blobs: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| Path::new("blobs").join(alg).join(e.file_name()))
                    .collect();
                blobs.sort();
                names.extend(blobs);
            }
        }
        let ctx = || format!("writing {}", self.target.display());
        for name in names {
            let mut f = crate::durable::open_regular(&root.join(&name), true).ctx(ctx)?;
            builder.append_file(&name, &mut f).ctx(ctx)?;
        }
        let w = builder.into_inner().ctx(ctx)?;
        w.into_inner()
            .map_err(|e| Error::io(ctx(), e.into_error()))?
            .flush()
            .ctx(ctx)?;
        out.commit()
    }
}

impl Destination for OciArchiveDestination {
    fn name(&self) -> String {
        format!("oci-archive:{}", self.target.display())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.inner.has_blob(desc)
    }

    fn put_blob(&self, desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()> {
        self.inner.put_blob(desc, stream)
    }

    fn links_blobs(&self) -> bool {
        self.inner.links_blobs()
    }

    fn clone_blob(
        &self,
        desc: &Descriptor,
        from: &std::fs::File,
        verify: &mut dyn FnMut(std::fs::File) -> Result<()>,
    ) -> Result<bool> {
        self.inner.clone_blob(desc, from, verify)
    }

    fn link_blob(&self, desc: &Descriptor, from: &std::fs::File) -> Result<bool> {
        self.inner.link_blob(desc, from)
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        self.inner.put_document(doc)
    }

    fn commit_tagged(&self, tag: &str, doc: &Document) -> Result<()> {
        self.inner.commit_tagged(tag, doc)?;
        self.write_tar()
    }

    fn holds_referrers(&self) -> bool {
        true
    }

    fn commit_referrer(&self, doc: &Document) -> Result<()> {
        // The archive is written whole again, with the referrer in its index.json.
        self.inner.commit_referrer(doc)?;
        self.write_tar()
    }

    fn commit(&self, root: &Document) -> Result<()> {
        self.inner.commit(root)?;
        self.write_tar()
    }

    fn native_format(&self) -> Option<crate::convert::Format> {
        self.inner.native_format()
    }

    fn layer_policy(&self) -> super::LayerPolicy {
        self.inner.layer_policy()
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        self.inner.staging_dir()
    }
}
