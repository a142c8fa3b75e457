//! The `oci:` transport: an OCI image layout directory as a [`Source`] and a [`Destination`].

use std::path::{Path, PathBuf};

use crate::descriptor::{Descriptor, digest_of};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::layout::{Layout, LayoutLock};
use crate::limits::Limits;
use crate::media_type;
use crate::reference::LayoutRef;

use super::{BlobReader, Destination, Source, VerifiedStream};

/// Reads an image from a layout.
#[derive(Debug)]
pub struct OciSource {
    layout: Layout,
    reference: Option<LayoutRef>,
    whole: bool,
}

impl OciSource {
    /// Opens the layout at `path`; `reference` picks the image (`None`: the only one).
    pub fn open(path: &Path, reference: Option<LayoutRef>, limits: Limits) -> Result<Self> {
        Ok(OciSource {
            layout: Layout::open(path)?.with_limits(limits),
            reference,
            whole: false,
        })
    }

    /// Reads blobs from the shared blob directory `dir` (skopeo's `--src-shared-blob-dir`).
    pub fn with_shared_blobs(mut self, dir: &Path) -> Self {
        self.layout = self.layout.with_shared_blobs(dir);
        self
    }

    /// Wraps an already open layout.
    pub fn from_layout(layout: Layout, reference: Option<LayoutRef>) -> Self {
        OciSource {
            layout,
            reference,
            whole: false,
        }
    }

    /// A source whose root is the layout's `index.json` itself, so a walk from it reaches every image
    /// (used by `verify --all` and `copy --all` of a whole layout).
    pub fn whole_layout(layout: Layout) -> Self {
        OciSource {
            layout,
            reference: None,
            whole: true,
        }
    }

    /// The layout being read.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The descriptor the reference resolves to in `index.json`.
    pub fn root_descriptor(&self) -> Result<Descriptor> {
        self.layout.resolve(self.reference.as_ref())
    }
}

impl Source for OciSource {
    fn name(&self) -> String {
        match &self.reference {
            Some(r @ LayoutRef::Tag(_)) => format!("oci:{}:{r}", self.layout.root().display()),
            Some(r) => format!("oci:{}{r}", self.layout.root().display()),
            None => format!("oci:{}", self.layout.root().display()),
        }
    }

    fn root(&self) -> Result<Document> {
        if self.whole {
            let bytes = serde_json::to_vec(&self.layout.index_value()?)
                .map_err(|e| Error::Other(format!("serialising index.json: {e}")))?;
            return Document::new(media_type::OCI_INDEX, bytes);
        }
        let desc = self.root_descriptor()?;
        crate::document::check_root_media_type(
            desc.media_type().as_ref(),
            &format!("{} (index.json entry {})", self.name(), desc.digest()),
        )?;
        self.layout.read_document(&desc)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        Ok(Box::new(self.layout.open_blob(&digest_of(desc)?)?))
    }

    fn open_local_blob(&self, desc: &Descriptor) -> Result<Option<std::fs::File>> {
        self.layout.open_blob(&digest_of(desc)?).map(Some)
    }

    fn tags(&self) -> Result<Vec<String>> {
        Ok(self.layout.tags()?.into_iter().map(|(t, _)| t).collect())
    }

    fn tagged(&self, tag: &str) -> Result<Option<Document>> {
        let index = self.layout.index()?;
        match crate::layout::tagged_entry(index.manifests(), tag, &self.name())? {
            Some(desc) => self.layout.read_document(&desc).map(Some),
            None => Ok(None),
        }
    }

    fn referrers(
        &self,
        digest: &crate::Digest,
        artifact_types: &[String],
    ) -> Result<Vec<Descriptor>> {
        crate::artifact::among_entries(
            self.layout.index()?.manifests(),
            digest,
            artifact_types,
            self.layout.limits(),
            &format!("layout {}", self.layout.root().display()),
            &|d| self.layout.read_document(d),
        )
    }

    fn limits(&self) -> &Limits {
        self.layout.limits()
    }
}

/// Writes an image into a layout, holding the layout's writer lock from open to drop.
///
/// A layout that does not exist yet is created (and locked) only when the first blob or document is
/// written, so a copy refused before it writes anything leaves no trace at a new destination.
#[derive(Debug)]
pub struct OciDestination {
    path: PathBuf,
    tag: Option<String>,
    opened: std::sync::OnceLock<(Layout, LayoutLock)>,
    opening: std::sync::Mutex<()>,
    shared_blobs: Option<PathBuf>,
}

impl OciDestination {
    /// Opens the layout at `path` and takes its writer lock, or, when there is no layout there yet,
    /// prepares to create it at the first write. `reference` must be a tag or nothing: an image is
    /// written under a name, not a digest.
    pub fn open(path: &Path, reference: Option<LayoutRef>) -> Result<Self> {
        let tag = match reference {
            None => None,
            Some(LayoutRef::Tag(t)) => {
                crate::reference::check_tag(&t, crate::reference::TagGrammar::LayoutRefName)?;
                Some(t)
            }
            Some(other) => {
                return Err(Error::InvalidReference {
                    reference: format!("oci:{}{other}", path.display()),
                    reason: "a destination layout takes a tag, not a digest or index".into(),
                });
            }
        };
        let dest = OciDestination {
            path: path.to_path_buf(),
            tag,
            opened: std::sync::OnceLock::new(),
            opening: std::sync::Mutex::new(()),
            shared_blobs: None,
        };
        if path.join("oci-layout").exists() {
            dest.layout()?;
        }
        Ok(dest)
    }

    /// The layout being written, created and locked now if this is its first use.
    pub fn layout(&self) -> Result<&Layout> {
        if let Some((layout, _)) = self.opened.get() {
            return Ok(layout);
        }
        let _one_at_a_time = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if self.opened.get().is_none() {
            let mut layout = Layout::create(&self.path)?;
            if let Some(dir) = &self.shared_blobs {
                layout = layout.with_shared_blobs(dir);
            }
            let lock = layout.lock()?;
            let _ = self.opened.set((layout, lock));
        }
        self.opened
            .get()
            .map(|(layout, _)| layout)
            .ok_or_else(|| Error::Other(format!("opening layout {}", self.path.display())))
    }

    /// The layout when it exists already or has been created by a write (reads never create it).
    fn existing(&self) -> Option<&Layout> {
        self.opened.get().map(|(layout, _)| layout)
    }

    /// Writes blobs into the shared blob directory `dir` (skopeo's `--dest-shared-blob-dir`).
    pub fn with_shared_blobs(mut self, dir: &Path) -> Self {
        self.shared_blobs = Some(dir.to_path_buf());
        if let Some((layout, lock)) = self.opened.take() {
            let _ = self.opened.set((layout.with_shared_blobs(dir), lock));
        }
        self
    }
}

impl Destination for OciDestination {
    fn name(&self) -> String {
        match &self.tag {
            Some(t) => format!("oci:{}:{t}", self.path.display()),
            None => format!("oci:{}", self.path.display()),
        }
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        match self.existing() {
            Some(layout) => layout.has_blob(&digest_of(desc)?),
            None => Ok(false),
        }
    }

    fn put_blob(&self, _desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()> {
        self.layout()?.write_verified(stream).map(|_| ())
    }

    fn links_blobs(&self) -> bool {
        true
    }

    fn clone_blob(
        &self,
        desc: &Descriptor,
        from: &std::fs::File,
        verify: &mut dyn FnMut(std::fs::File) -> Result<()>,
    ) -> Result<bool> {
        self.layout()?.clone_blob(&digest_of(desc)?, from, verify)
    }

    fn link_blob(&self, desc: &Descriptor, from: &std::fs::File) -> Result<bool> {
        self.layout()?.link_blob(&digest_of(desc)?, from)
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        self.layout()?.write_bytes(doc.bytes()).map(|_| ())
    }

    fn commit(&self, root: &Document) -> Result<()> {
        let layout = self.layout()?;
        layout.write_bytes(root.bytes())?;
        layout.set_tag(self.tag.as_deref(), &root.descriptor())
    }

    fn commit_tagged(&self, tag: &str, doc: &Document) -> Result<()> {
        let layout = self.layout()?;
        layout.write_bytes(doc.bytes())?;
        layout.set_tag(Some(tag), &doc.descriptor())
    }

    fn holds_referrers(&self) -> bool {
        true
    }

    fn commit_referrer(&self, doc: &Document) -> Result<()> {
        let desc = crate::artifact::referrer_descriptor(doc)?;
        let layout = self.layout()?;
        layout.write_bytes(doc.bytes())?;
        layout.set_tag(None, &desc)
    }

    fn native_format(&self) -> Option<crate::convert::Format> {
        Some(crate::convert::Format::Oci)
    }

    fn layer_policy(&self) -> super::LayerPolicy {
        super::LayerPolicy::CompressWhenConverting
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        // Asked for right before a temp file is written there: the layout is created now. If that
        // fails, the caller stages elsewhere and the error comes back from the write that follows.
        self.layout().ok().map(|l| l.root().to_path_buf())
    }
}

/// An OCI layout as a [`Repository`](super::repository::Repository): its tags are `index.json`'s
/// `org.opencontainers.image.ref.name` entries, its blobs `blobs/ALG/HEX`. Every change takes the
/// layout's writer lock and rewrites `index.json` atomically.
#[derive(Debug)]
pub struct OciRepository {
    layout: Layout,
}

impl OciRepository {
    /// Opens the layout at `path` (it must exist).
    pub fn open(path: &Path, limits: Limits) -> Result<Self> {
        Ok(OciRepository {
            layout: Layout::open(path)?.with_limits(limits),
        })
    }

    fn location(&self) -> String {
        format!("layout {}", self.layout.root().display())
    }
}

impl super::repository::Repository for OciRepository {
    fn name(&self) -> String {
        format!("oci:{}", self.layout.root().display())
    }

    fn resolve(&self, item: &super::repository::Item) -> Result<Document> {
        let reference = match item {
            super::repository::Item::Tag(t) => LayoutRef::Tag(t.clone()),
            super::repository::Item::Digest(d) => LayoutRef::Digest(d.clone()),
        };
        let desc = self.layout.resolve(Some(&reference))?;
        self.layout.read_document(&desc)
    }

    fn tags(&self) -> Result<Vec<String>> {
        Ok(self.layout.tags()?.into_iter().map(|(t, _)| t).collect())
    }

    fn tagged(&self) -> Result<Vec<(String, Descriptor)>> {
        self.layout.tags()
    }

    fn blob_size(&self, digest: &crate::Digest) -> Result<u64> {
        if !self.layout.has_blob(digest)? {
            return Err(Error::NotFound {
                reference: format!("blob {digest}"),
                location: self.location(),
                hint: String::new(),
            });
        }
        let file = self.layout.open_blob(digest)?;
        let meta = file.metadata().map_err(|e| Error::Io {
            context: format!("reading the size of blob {digest}"),
            source: e,
        })?;
        Ok(meta.len())
    }

    fn open_blob(&self, digest: &crate::Digest, size: u64) -> Result<VerifiedStream<'_>> {
        let file = self.layout.open_blob(digest)?;
        Ok(super::repository::verified(Box::new(file), digest, size))
    }

    fn put_blob(
        &self,
        digest: &crate::Digest,
        size: u64,
        content: &mut (dyn std::io::Read + Send),
    ) -> Result<()> {
        let _lock = self.layout.lock()?;
        self.layout.write_blob(digest, size, content).map(|_| ())
    }

    fn tag(&self, doc: &Document, tags: &[String]) -> Result<()> {
        for tag in tags {
            crate::reference::check_tag(tag, crate::reference::TagGrammar::LayoutRefName)?;
        }
        let _lock = self.layout.lock()?;
        if !self.layout.has_blob(doc.digest())? {
            return Err(Error::NotFound {
                reference: doc.digest().to_string(),
                location: self.location(),
                hint: " (the layout does not hold that manifest)".into(),
            });
        }
        for tag in tags {
            self.layout.set_tag(Some(tag), &doc.descriptor())?;
        }
        Ok(())
    }

    fn delete(
        &self,
        item: &super::repository::Item,
        tag_only: bool,
    ) -> Result<super::repository::Deleted> {
        use super::repository::{Deleted, Item};
        let _lock = self.layout.lock()?;
        match item {
            Item::Tag(tag) => {
                let desc = self.layout.resolve(Some(&LayoutRef::Tag(tag.clone())))?;
                self.layout.remove_tag(tag)?;
                Ok(Deleted::Tag {
                    digest: digest_of(&desc)?,
                    repointed: false,
                })
            }
            Item::Digest(_) if tag_only => {
                Err(super::repository::tag_only_needs_a_tag(item, &self.name()))
            }
            Item::Digest(digest) => {
                if self.layout.remove_digest(digest)? == 0 {
                    return Err(Error::NotFound {
                        reference: format!("@{digest}"),
                        location: self.location(),
                        hint: " (no index.json entry has that digest)".into(),
                    });
                }
                Ok(Deleted::Manifest(digest.clone()))
            }
        }
    }
}
