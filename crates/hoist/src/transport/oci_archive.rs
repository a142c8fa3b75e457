//! The `oci-archive:` transport: a tar of an OCI image layout. Reading indexes the tar once and streams
//! blobs from their offsets (nothing is extracted); writing builds a layout in a temp directory beside
//! the target and, on commit, writes the tar to a temp file and renames it into place.

use std::fs::{self, File};
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

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Writes an image as an OCI layout tarball.
pub struct OciArchiveDestination {
    target: PathBuf,
    staging: tempfile::TempDir,
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
        let parent = crate::layout::dir_of(path);
        let staging = tempfile::Builder::new()
            .prefix(crate::layout::TEMP_PREFIX)
            .tempdir_in(&parent)
            .ctx(|| format!("creating a staging directory in {}", parent.display()))?;
        let inner = OciDestination::open(staging.path(), reference)?;
        Ok(OciArchiveDestination {
            target: path.to_path_buf(),
            staging,
            inner,
        })
    }

    fn write_tar(&self) -> Result<()> {
        let parent = self.staging.path().parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(crate::layout::TEMP_PREFIX)
            .tempfile_in(parent)
            .ctx(|| format!("creating a temp file in {}", parent.display()))?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
        builder.mode(tar::HeaderMode::Deterministic);
        let root = self.staging.path();
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
            let mut f = File::open(root.join(&name)).ctx(ctx)?;
            builder.append_file(&name, &mut f).ctx(ctx)?;
        }
        let w = builder.into_inner().ctx(ctx)?;
        w.into_inner()
            .map_err(|e| Error::io(ctx(), e.into_error()))?
            .flush()
            .ctx(ctx)?;
        tmp.as_file().sync_all().ctx(ctx)?;
        tmp.persist(&self.target)
            .map_err(|e| Error::io(ctx(), e.error))?;
        Ok(())
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

    fn link_blob(&self, desc: &Descriptor, path: &Path) -> Result<bool> {
        self.inner.link_blob(desc, path)
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        self.inner.put_document(doc)
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
