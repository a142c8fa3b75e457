//! The `dir:` transport, in skopeo's directory format: `manifest.json` (the root document), `version`,
//! blobs named by the hex of their digest, and child manifests of an index as `HEX.manifest.json`.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::durable::{DEFAULT_MODE, Output, replace_file};
use crate::error::{Error, IoContext, Result, from_io};
use crate::limits::Limits;

use super::{BlobReader, Destination, Source, VerifiedStream};

/// The `version` file skopeo writes and hoist expects.
pub const DIR_VERSION: &str = "Directory Transport Version: 1.1\n";

/// Opens a file of the directory for reading: no symlink, and nothing but a regular file (a FIFO is
/// refused without waiting on it).
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    crate::durable::open_regular(path, true)
}

fn blob_file(root: &Path, digest: &Digest) -> PathBuf {
    // skopeo names blobs by the bare hex of a sha256 digest, and ALG-HEX otherwise.
    match digest.algorithm() {
        crate::digest::Algorithm::Sha256 => root.join(digest.hex()),
        alg => root.join(format!("{}-{}", alg.as_str(), digest.hex())),
    }
}

fn manifest_file(root: &Path, digest: &Digest) -> PathBuf {
    root.join(format!("{}.manifest.json", digest.hex()))
}

/// Reads an image from a `dir:` directory.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
    limits: Limits,
}

impl DirSource {
    /// Opens the directory, checking that it has a `manifest.json`.
    pub fn open(root: &Path, limits: Limits) -> Result<Self> {
        if !root.join("manifest.json").is_file() {
            return Err(Error::NotFound {
                reference: "manifest.json".into(),
                location: format!("dir:{}", root.display()),
                hint: "; not a directory written by skopeo or hoist copy dir:".into(),
            });
        }
        Ok(DirSource {
            root: root.to_path_buf(),
            limits,
        })
    }
}

impl Source for DirSource {
    fn name(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn root(&self) -> Result<Document> {
        let path = self.root.join("manifest.json");
        let mut bytes = Vec::new();
        open_nofollow(&path)
            .and_then(|f| {
                f.take(self.limits.max_document_size + 1)
                    .read_to_end(&mut bytes)
            })
            .ctx(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > self.limits.max_document_size {
            return Err(Error::LimitExceeded {
                what: path.display().to_string(),
                limit: crate::limits::human_bytes(self.limits.max_document_size),
                option: "--max-manifest-size".into(),
            });
        }
        Document::detect(bytes)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        let digest = digest_of(desc)?;
        let candidates = if crate::media_type::is_document(desc.media_type().as_ref()) {
            [
                manifest_file(&self.root, &digest),
                blob_file(&self.root, &digest),
            ]
        } else {
            [
                blob_file(&self.root, &digest),
                manifest_file(&self.root, &digest),
            ]
        };
        for path in &candidates {
            match open_nofollow(path) {
                Ok(f) => return Ok(Box::new(crate::layout::regular_blob_file(f, path)?)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(crate::layout::blob_open_error(e, path)),
            }
        }
        Err(Error::BlobNotFound {
            digest,
            location: self.name(),
        })
    }

    fn open_local_blob(&self, desc: &Descriptor) -> Result<Option<fs::File>> {
        let digest = digest_of(desc)?;
        let path = blob_file(&self.root, &digest);
        match open_nofollow(&path) {
            Ok(f) => crate::layout::regular_blob_file(f, &path).map(Some),
            // Not a blob file of this directory (a child manifest, a foreign layer): streamed instead.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::layout::blob_open_error(e, &path)),
        }
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Writes an image into a `dir:` directory (created if missing, at the first write, so a copy refused
/// before it writes anything leaves no trace).
#[derive(Debug)]
pub struct DirDestination {
    root: PathBuf,
    created: std::sync::OnceLock<()>,
}

impl DirDestination {
    /// A destination that creates the directory (and its `version` file) when it first writes.
    pub fn create(root: &Path) -> Result<Self> {
        Ok(DirDestination {
            root: root.to_path_buf(),
            created: std::sync::OnceLock::new(),
        })
    }

    /// Creates the directory and its `version` file, once, before the first write (stale temp files
    /// of a killed run are removed then).
    fn ensure_created(&self) -> Result<()> {
        if self.created.get().is_none() {
            let root = &self.root;
            fs::create_dir_all(root).ctx(|| format!("creating {}", root.display()))?;
            crate::durable::remove_stale(root)?;
            replace_file(&root.join("version"), DIR_VERSION.as_bytes(), None)?;
            let _ = self.created.set(());
        }
        Ok(())
    }

    /// Writes a blob from a verified stream; it lands at `path` only once the stream verified.
    fn write_blob(
        &self,
        path: &Path,
        stream: &mut VerifiedStream<'_>,
        digest: &Digest,
    ) -> Result<()> {
        self.ensure_created()?;
        let mut out = Output::replace(path, DEFAULT_MODE, None)?;
        io::copy(stream, &mut out).map_err(|e| {
            from_io(e, || {
                format!("writing blob {digest} into {}", self.root.display())
            })
        })?;
        if !stream.is_verified() {
            return Err(Error::Other(format!(
                "blob {digest}: stream ended before it was verified"
            )));
        }
        out.commit()
    }
}

impl Destination for DirDestination {
    fn name(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        // Without following links: a symlink planted where a blob belongs is not that blob.
        let path = blob_file(&self.root, &digest_of(desc)?);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => Ok(true),
            Ok(m) if m.file_type().is_symlink() => Err(Error::Other(format!(
                "blob {} is a symlink; hoist refuses to follow links to blobs",
                path.display()
            ))),
            Ok(_) => Err(Error::Other(format!(
                "blob {} is not a regular file",
                path.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("checking {}", path.display()), e)),
        }
    }

    fn put_blob(&self, desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()> {
        let digest = digest_of(desc)?;
        self.write_blob(&blob_file(&self.root, &digest), stream, &digest)
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        self.ensure_created()?;
        replace_file(&manifest_file(&self.root, doc.digest()), doc.bytes(), None)
    }

    fn commit(&self, root: &Document) -> Result<()> {
        self.ensure_created()?;
        replace_file(&self.root.join("manifest.json"), root.bytes(), None)
    }
}
