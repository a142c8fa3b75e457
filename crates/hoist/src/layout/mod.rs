//! The OCI image layout store: `oci-layout`, `index.json`, `blobs/ALG/HEX`, tags, a writer lock and
//! garbage collection.
//!
//! Writes are crash-safe: a blob is written to a temp file inside the layout, fsynced and renamed into
//! place (an existing blob is never rewritten), and `index.json` is replaced atomically, last. `index.json`
//! is edited as JSON values, so fields and annotations hoist does not know survive untouched. Files
//! are written and read through the one durable write (`durable.rs`, public as [`crate::output`]); as root in a layout owned by another user, new
//! files and directories get the layout's owner.

mod gc;
mod lock;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};
use serde_json::{Value, json};

pub use gc::{GcOptions, GcReport};
pub use lock::LayoutLock;

use crate::durable::TempFile;

use crate::blob::VerifiedReader;
use crate::descriptor::digest_of;
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, IoContext, Result, from_io};
use crate::limits::Limits;
use crate::media_type;
use crate::reference::LayoutRef;

/// The annotation that names a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The layout version hoist writes and reads.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// Prefix of hoist's temp files and directories; stale ones are removed by `gc` and the next writer.
pub use crate::durable::TEMP_PREFIX;

/// An OCI image layout directory.
///
/// ```no_run
/// use hoist::layout::Layout;
/// let layout = Layout::create("/tmp/new-layout")?; // or Layout::open for an existing one
/// let digest = layout.write_bytes(b"{}")?; // a blob, stored under its digest
/// assert!(layout.has_blob(&digest)?);
/// for (tag, desc) in layout.tags()? {
///     println!("{tag} {}", desc.digest());
/// }
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    limits: Limits,
    owner: Option<(u32, u32)>,
    /// Where blobs live: `ROOT/blobs`, or a directory shared by several layouts (skopeo's
    /// `--shared-blob-dir`, holding `ALG/HEX`).
    blobs: PathBuf,
}

/// How a blob arrived in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It was already there; nothing was written.
    Existing,
    /// It was written (or linked) now.
    Written,
}

impl Layout {
    /// Opens an existing layout, checking `oci-layout`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let bad = |reason: String| Error::InvalidLayout {
            path: root.clone(),
            reason,
        };
        let marker = root.join("oci-layout");
        let text = match read_small_file(&marker, 64 << 10) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad(if root.exists() {
                    "no oci-layout file".into()
                } else {
                    "directory does not exist".into()
                }));
            }
            Err(e) => return Err(Error::io(format!("reading {}", marker.display()), e)),
        };
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("oci-layout is not JSON: {e}")))?;
        match v.get("imageLayoutVersion").and_then(Value::as_str) {
            Some(LAYOUT_VERSION) => {}
            Some(other) => {
                return Err(bad(format!(
                    "unsupported imageLayoutVersion {other:?} (hoist reads {LAYOUT_VERSION})"
                )));
            }
            None => return Err(bad("oci-layout has no imageLayoutVersion".into())),
        }
        Ok(Layout {
            owner: crate::durable::owner_for(&root),
            blobs: root.join("blobs"),
            root,
            limits: Limits::default(),
        })
    }

    /// Creates a layout (and its directory) if there is none at `root`, or opens the existing one.
    pub fn create(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if root.join("oci-layout").exists() {
            return Self::open(root);
        }
        let owner = crate::durable::owner_for(root);
        crate::durable::create_dir_all(&root.join("blobs").join("sha256"), owner)?;
        let layout = Layout {
            root: root.to_path_buf(),
            limits: Limits::default(),
            owner,
            blobs: root.join("blobs"),
        };
        if !root.join("index.json").exists() {
            let empty =
                json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []});
            layout.write_index_value(&empty)?;
        }
        layout.write_file(
            &root.join("oci-layout"),
            format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}").as_bytes(),
        )?;
        Ok(layout)
    }

    /// Keeps blobs in `dir` (as `dir/ALG/HEX`) instead of the layout's own `blobs/`: skopeo's shared
    /// blob directory, which several layouts use at once. Temp files for blobs are made there too, so
    /// they are renamed on one filesystem. `gc` of such a layout is not supported (it cannot know
    /// what the other layouts use).
    pub fn with_shared_blobs(mut self, dir: &Path) -> Self {
        self.blobs = dir.to_path_buf();
        self
    }

    /// True when the blobs are in a shared directory ([`Layout::with_shared_blobs`]).
    pub fn has_shared_blobs(&self) -> bool {
        self.blobs != self.root.join("blobs")
    }

    /// Replaces the limits used when reading documents.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (validated digest: the path stays under `blobs/`).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// True when the blob is present as a regular file. A blob that is a symlink is an error.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        self.check_blob_dirs(digest)?;
        let path = self.blob_path(digest);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => Ok(true),
            Ok(m) if m.file_type().is_symlink() => Err(symlink_blob(&path)),
            Ok(m) => Err(Error::InvalidLayout {
                path: self.root.clone(),
                reason: format!(
                    "blob {digest} ({}) is {}, not a regular file",
                    path.display(),
                    crate::durable::kind_of(m.file_type())
                ),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("checking {}", path.display()), e)),
        }
    }

    /// Opens a blob file for reading, refusing symlinks (at the blob, `blobs` and `blobs/ALG`) and
    /// anything but a regular file (a FIFO is refused without waiting on it).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        self.check_blob_dirs(digest)?;
        let path = self.blob_path(digest);
        crate::durable::open_regular(&path, true).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => symlink_blob(&path),
            _ if e.kind() == io::ErrorKind::InvalidInput => Error::InvalidLayout {
                path: path.clone(),
                reason: e.to_string(),
            },
            _ if e.kind() == io::ErrorKind::NotFound => Error::BlobNotFound {
                digest: digest.clone(),
                location: format!("layout {}", self.root.display()),
            },
            _ => Error::io(format!("opening blob {}", path.display()), e),
        })
    }

    /// Opens a blob as a verified stream for `desc`.
    pub fn open_verified(&self, desc: &Descriptor) -> Result<VerifiedReader<File>> {
        let digest = digest_of(desc)?;
        let file = self.open_blob(&digest)?;
        Ok(VerifiedReader::new(
            file,
            digest.clone(),
            desc.size(),
            format!("blob {digest}"),
        ))
    }

    /// Reads a manifest or index blob (size-limited and verified) as a document.
    pub fn read_document(&self, desc: &Descriptor) -> Result<Document> {
        let digest = digest_of(desc)?;
        let bytes = crate::blob::read_verified_to_vec(
            self.open_blob(&digest)?,
            desc,
            self.limits.max_document_size,
            &format!("document {digest}"),
        )?;
        Document::for_descriptor(desc, bytes)
    }

    /// Reads a small blob (a config) into memory, verified and size-limited.
    pub fn read_small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let digest = digest_of(desc)?;
        crate::blob::read_verified_to_vec(
            self.open_blob(&digest)?,
            desc,
            self.limits.max_document_size,
            &format!("blob {digest}"),
        )
    }

    /// Stores a blob from `reader`, which must yield content with `digest` and `size`. The reader is
    /// verified while writing; nothing lands under `blobs/` unless it matched. Existing blobs are kept.
    pub fn write_blob(&self, digest: &Digest, size: u64, reader: &mut dyn Read) -> Result<Stored> {
        if self.has_blob(digest)? {
            return Ok(Stored::Existing);
        }
        let mut verified =
            VerifiedReader::new(reader, digest.clone(), size, format!("blob {digest}"));
        self.write_verified(&mut verified)
    }

    /// Stores a blob from a stream that verifies itself: read to its end, then persisted only if the
    /// stream reports it verified (no second hash).
    pub fn write_verified<R: Read>(&self, stream: &mut VerifiedReader<R>) -> Result<Stored> {
        let digest = stream.expected().clone();
        if self.has_blob(&digest)? {
            return Ok(Stored::Existing);
        }
        let mut tmp = self.temp_file()?;
        // 1 MiB at a time: io::copy's 8 KiB buffer costs a syscall per 8 KiB on multi-GB layers.
        // Network streams return a few KiB per read: gather a full buffer before each write.
        let mut buf = vec![0u8; 1 << 20];
        let (mut written, mut flushed) = (0u64, 0u64);
        loop {
            let n = crate::blob::read_full(stream, &mut buf).map_err(|e| {
                from_io(e, || {
                    format!("writing blob {digest} into {}", self.root.display())
                })
            })?;
            if n == 0 {
                break;
            }
            tmp.as_file_mut().write_all(&buf[..n]).map_err(|e| {
                Error::io(
                    format!("writing blob {digest} into {}", self.root.display()),
                    e,
                )
            })?;
            written += n as u64;
            if written - flushed >= WRITEBACK_EVERY {
                start_writeback(tmp.as_file(), flushed, written - flushed);
                flushed = written;
            }
        }
        if !stream.is_verified() {
            return Err(Error::Other(format!(
                "blob {digest}: stream ended before it was verified"
            )));
        }
        self.persist(tmp, &digest)
    }

    /// Stores bytes whose digest is computed here (for documents hoist builds). Returns the digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256(bytes);
        self.write_blob(&digest, bytes.len() as u64, &mut &bytes[..])?;
        Ok(digest)
    }

    /// Stores blob `digest` as a reflink (`FICLONE`) of the open file `from`: the clone is a new inode
    /// sharing nothing writable with `from`. `verify` reads the clone from its start; the blob is
    /// stored only if it returns `Ok`, so what lands is exactly what was verified. Returns `false`
    /// when this filesystem cannot clone `from` into the layout (the caller copies instead).
    pub fn clone_blob(
        &self,
        digest: &Digest,
        from: &File,
        verify: &mut dyn FnMut(File) -> Result<()>,
    ) -> Result<bool> {
        if self.has_blob(digest)? {
            return Ok(true);
        }
        let tmp = self.temp_file()?;
        if rustix::fs::ioctl_ficlone(tmp.as_file(), from).is_err() {
            // EOPNOTSUPP, EXDEV, EINVAL...: no reflinks here; the temp file is removed on drop.
            return Ok(false);
        }
        let clone = tmp
            .reopen()
            .ctx(|| format!("reopening the clone of blob {digest}"))?;
        verify(clone)?;
        self.persist(tmp, digest)?;
        Ok(true)
    }

    /// Stores blob `digest` by hard-linking the inode of the open, already verified file `from` (by
    /// descriptor, through `/proc/self/fd`, never by a path that could have been swapped since it was
    /// verified). Returns `false` when linking is not possible (another filesystem, no `/proc`), so
    /// the caller can copy instead.
    pub fn link_blob(&self, digest: &Digest, from: &File) -> Result<bool> {
        use std::os::fd::AsRawFd;
        if self.has_blob(digest)? {
            return Ok(true);
        }
        let tmp_path = self
            .temp_dir()
            .join(format!("{TEMP_PREFIX}link-{}", digest.hex()));
        let _ = fs::remove_file(&tmp_path);
        let proc_path = format!("/proc/self/fd/{}", from.as_raw_fd());
        if rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            rustix::fs::CWD,
            &tmp_path,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .is_err()
        {
            return Ok(false);
        }
        let dest = self.blob_path(digest);
        self.ensure_alg_dir(digest)?;
        fs::rename(&tmp_path, &dest).ctx(|| format!("linking blob into {}", dest.display()))?;
        sync_dir(dest.parent().unwrap_or(&self.blobs))?;
        Ok(true)
    }

    /// A new temp file inside the layout (same filesystem as `blobs/`, so rename is atomic). It is
    /// locked while it lives, so `gc` and the next writer leave it alone even without the layout lock.
    pub fn temp_file(&self) -> Result<TempFile> {
        TempFile::new_in(&self.temp_dir())
    }

    /// Where blob temp files go: the layout's root, or a shared blob directory (made if needed).
    fn temp_dir(&self) -> PathBuf {
        if self.has_shared_blobs() {
            let _ = crate::durable::create_dir_all(&self.blobs, self.owner);
            self.blobs.clone()
        } else {
            self.root.clone()
        }
    }

    /// Moves a fully written, verified temp file into place as blob `digest` (fsync, rename, fsync dir).
    pub fn persist(&self, tmp: TempFile, digest: &Digest) -> Result<Stored> {
        self.ensure_alg_dir(digest)?;
        tmp.persist(&self.blob_path(digest), self.owner)?;
        Ok(Stored::Written)
    }

    /// Replaces a file of the layout (`index.json`, `oci-layout`): temp file, fsync, rename.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        crate::durable::replace_file(path, bytes, self.owner)
    }

    /// Refuses `blobs` or `blobs/ALG` when it is a symlink, for reading and writing alike.
    fn check_blob_dirs(&self, digest: &Digest) -> Result<()> {
        let blobs = &self.blobs;
        for dir in [blobs.clone(), blobs.join(digest.algorithm().as_str())] {
            if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::InvalidLayout {
                    path: dir,
                    reason: "a blob directory is a symlink; hoist refuses to follow links inside a layout".into(),
                });
            }
        }
        Ok(())
    }

    fn ensure_alg_dir(&self, digest: &Digest) -> Result<()> {
        self.check_blob_dirs(digest)?;
        let dir = self.blobs.join(digest.algorithm().as_str());
        crate::durable::create_dir_all(&dir, self.owner)
    }

    /// `index.json` as a JSON value (kept whole so unknown fields survive edits).
    pub fn index_value(&self) -> Result<Value> {
        let path = self.root.join("index.json");
        let bytes =
            read_small_file(&path, self.limits.max_document_size).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::InvalidLayout {
                    path: self.root.clone(),
                    reason: "no index.json".into(),
                },
                io::ErrorKind::FileTooLarge => Error::LimitExceeded {
                    what: format!("{}", path.display()),
                    limit: crate::limits::human_bytes(self.limits.max_document_size),
                    option: "--max-manifest-size".into(),
                },
                _ => Error::io(format!("reading {}", path.display()), e),
            })?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid_document(format!("{}", path.display()), e.to_string()))?;
        crate::document::check_index_json(&bytes, &path.display().to_string())?;
        if !v.get("manifests").is_some_and(Value::is_array) {
            return Err(Error::invalid_document(
                format!("{}", path.display()),
                "no manifests array",
            ));
        }
        Ok(v)
    }

    /// `index.json` parsed (every descriptor's digest validated).
    pub fn index(&self) -> Result<ImageIndex> {
        let v = self.index_value()?;
        let index: ImageIndex = serde_json::from_value(v.clone()).map_err(|e| {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            crate::document::explain_bad_digest(&bytes).unwrap_or_else(|| {
                Error::invalid_document(
                    format!("{}/index.json", self.root.display()),
                    e.to_string(),
                )
            })
        })?;
        for d in index.manifests() {
            digest_of(d)?;
        }
        Ok(index)
    }

    /// Replaces `index.json` atomically (temp, fsync, rename, fsync dir).
    pub fn write_index_value(&self, v: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(v)
            .map_err(|e| Error::Other(format!("serialising index.json: {e}")))?;
        self.write_file(&self.root.join("index.json"), &bytes)
    }

    /// Every tag with its descriptor, in `index.json` order; a tag on several entries is listed once
    /// (resolving it says whether it is ambiguous).
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(|t| (t.clone(), d.clone()))
            })
            .filter(|(t, _)| seen.insert(t.clone()))
            .collect())
    }

    /// Finds the `index.json` entry a reference names. `None` means "the only entry". A digest that is
    /// not a top-level entry may name any manifest or index blob in the layout.
    pub fn resolve(&self, reference: Option<&LayoutRef>) -> Result<Descriptor> {
        let index = self.index()?;
        let location = format!("layout {}", self.root.display());
        if let Some(d) = resolve_entry(index.manifests(), reference, &location)? {
            return Ok(d);
        }
        let Some(LayoutRef::Digest(digest)) = reference else {
            unreachable!("resolve_entry returns None only for digests")
        };
        if !self.has_blob(digest)? {
            return Err(Error::NotFound {
                reference: digest.to_string(),
                location,
                hint: String::new(),
            });
        }
        let mut bytes = Vec::new();
        (&mut self.open_blob(digest)?)
            .take(self.limits.max_document_size + 1)
            .read_to_end(&mut bytes)
            .ctx(|| format!("reading blob {digest}"))?;
        if bytes.len() as u64 > self.limits.max_document_size {
            return Err(Error::LimitExceeded {
                what: format!("document {digest}"),
                limit: crate::limits::human_bytes(self.limits.max_document_size),
                option: "--max-manifest-size".into(),
            });
        }
        let doc = Document::detect(bytes)?;
        if doc.digest() != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob file {}", self.blob_path(digest).display()),
                expected: digest.clone(),
                actual: doc.digest().clone(),
            });
        }
        Ok(doc.descriptor())
    }

    /// Points `tag` at `desc` in `index.json` (replacing an entry with the same tag), or adds an untagged
    /// entry when `tag` is `None` and no entry has that digest. Call with the writer lock held.
    pub fn set_tag(&self, tag: Option<&str>, desc: &Descriptor) -> Result<()> {
        let mut index = self.index_value()?;
        let mut entry = serde_json::to_value(desc)
            .map_err(|e| Error::Other(format!("serialising descriptor: {e}")))?;
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::invalid_document("index.json", "no manifests array"))?;
        match tag {
            Some(tag) => {
                crate::reference::check_tag(tag, crate::reference::TagGrammar::LayoutRefName)?;
                manifests.retain(|m| {
                    m.pointer("/annotations")
                        .and_then(|a| a.get(REF_NAME))
                        .and_then(Value::as_str)
                        != Some(tag)
                });
                let annotations = entry
                    .as_object_mut()
                    .ok_or_else(|| Error::Other("descriptor is not an object".into()))?
                    .entry("annotations")
                    .or_insert_with(|| json!({}));
                if let Some(a) = annotations.as_object_mut() {
                    a.insert(REF_NAME.into(), Value::String(tag.to_string()));
                }
                manifests.push(entry);
            }
            None => {
                let digest = desc.digest().to_string();
                let present = manifests.iter().any(|m| {
                    m.get("digest").and_then(Value::as_str) == Some(&digest)
                        && m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                            .is_none()
                });
                if !present {
                    manifests.push(entry);
                }
            }
        }
        self.write_index_value(&index)
    }

    /// Removes the entry tagged `tag`; false when there was none. Call with the writer lock held.
    pub fn remove_tag(&self, tag: &str) -> Result<bool> {
        self.remove_entries(|m| {
            m.pointer("/annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                == Some(tag)
        })
        .map(|n| n > 0)
    }

    /// Removes every `index.json` entry (tagged or not) whose digest is `digest`; returns how many.
    /// Call with the writer lock held.
    pub fn remove_digest(&self, digest: &Digest) -> Result<usize> {
        let digest = digest.to_string();
        self.remove_entries(|m| m.get("digest").and_then(Value::as_str) == Some(&digest))
    }

    /// Removes the `index.json` entries `doomed` picks, rewriting it only when one was; returns how
    /// many.
    fn remove_entries(&self, doomed: impl Fn(&Value) -> bool) -> Result<usize> {
        let mut index = self.index_value()?;
        let manifests = index
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| Error::invalid_document("index.json", "no manifests array"))?;
        let before = manifests.len();
        manifests.retain(|m| !doomed(m));
        let removed = before - manifests.len();
        if removed > 0 {
            self.write_index_value(&index)?;
        }
        Ok(removed)
    }

    /// Takes the writer lock (blocking until other writers are done).
    pub fn lock(&self) -> Result<LayoutLock> {
        LayoutLock::acquire(&self.root)
    }

    /// Removes blobs that nothing in `index.json` reaches, and leftover temp files. Takes the lock.
    pub fn gc(&self) -> Result<GcReport> {
        if self.has_shared_blobs() {
            return Err(Error::Unsupported(format!(
                "garbage collection of {} with a shared blob directory ({}): other layouts may use \
                 its blobs",
                self.root.display(),
                self.blobs.display()
            )));
        }
        let lock = self.lock()?;
        let mut report = gc::collect(self)?;
        report.temp_files_removed += lock.stale_removed();
        Ok(report)
    }
}

/// The entry of `entries` (an `index.json`'s manifests) tagged `tag`, or `None` when none is (an
/// ambiguous tag is an error, as [`resolve_entry`] says).
pub(crate) fn tagged_entry(
    entries: &[Descriptor],
    tag: &str,
    location: &str,
) -> Result<Option<Descriptor>> {
    let reference = LayoutRef::Tag(tag.to_string());
    match resolve_entry(entries, Some(&reference), location) {
        Ok(found) => Ok(found),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Picks the entry of an `index.json` that `reference` names (`None`: the only entry), with its
/// embedded `data`, if any, checked against it. Returns `Ok(None)` only for a digest that is not a
/// top-level entry, so callers can look further.
pub(crate) fn resolve_entry(
    entries: &[Descriptor],
    reference: Option<&LayoutRef>,
    location: &str,
) -> Result<Option<Descriptor>> {
    let found = find_entry(entries, reference, location)?;
    if let Some(d) = &found {
        crate::descriptor::check(d)?;
    }
    Ok(found)
}

fn find_entry(
    entries: &[Descriptor],
    reference: Option<&LayoutRef>,
    location: &str,
) -> Result<Option<Descriptor>> {
    let location = location.to_string();
    let tag_list = || {
        let tags: Vec<String> = entries
            .iter()
            .filter_map(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .cloned()
            })
            .collect();
        if tags.is_empty() {
            "; it has no tags".to_string()
        } else {
            format!("; tags: {}", tags.join(", "))
        }
    };
    match reference {
        None => match entries.len() {
            1 => Ok(Some(entries[0].clone())),
            0 => Err(Error::NotFound {
                reference: "an image".into(),
                location,
                hint: "; index.json is empty".into(),
            }),
            n => Err(Error::NotFound {
                reference: "a single image".into(),
                location,
                hint: format!(
                    "; index.json has {n} entries, name one with :TAG or @DIGEST{}",
                    tag_list()
                ),
            }),
        },
        Some(LayoutRef::Tag(tag)) => {
            let mut tagged = entries
                .iter()
                .filter(|d| d.annotations().as_ref().and_then(|a| a.get(REF_NAME)) == Some(tag));
            let first = tagged.next().ok_or_else(|| Error::NotFound {
                reference: format!("tag {tag:?}"),
                location: location.clone(),
                hint: tag_list(),
            })?;
            // Two entries with one tag for different images: neither can be the one meant.
            if let Some(other) = tagged.find(|d| d.digest() != first.digest()) {
                return Err(Error::InvalidDocument {
                    what: format!("index.json of {location}"),
                    reason: format!(
                        "tag {tag:?} is ambiguous: it names both {} and {}",
                        first.digest(),
                        other.digest()
                    ),
                });
            }
            Ok(Some(first.clone()))
        }
        Some(LayoutRef::Digest(digest)) => Ok(entries
            .iter()
            .find(|d| digest_of(d).ok().as_ref() == Some(digest))
            .cloned()),
        Some(LayoutRef::Index(i)) => {
            entries
                .get(*i)
                .cloned()
                .map(Some)
                .ok_or_else(|| Error::NotFound {
                    reference: format!("entry @{i}"),
                    location,
                    hint: format!("; index.json has {} entries", entries.len()),
                })
        }
    }
}

/// `file`, opened from the blob file `path`, when it is a regular file; an error naming it otherwise
/// (a FIFO, a device or a directory planted where a blob belongs).
pub(crate) fn regular_blob_file(file: File, path: &Path) -> Result<File> {
    let meta = file
        .metadata()
        .ctx(|| format!("checking blob {}", path.display()))?;
    if !meta.is_file() {
        return Err(Error::Other(format!(
            "blob {} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// The error for a blob file `path` that could not be opened without following links: a clear
/// refusal when it is a symlink.
pub(crate) fn blob_open_error(e: io::Error, path: &Path) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::Other(format!(
            "blob {} is a symlink; hoist refuses to follow links to blobs",
            path.display()
        )),
        _ => Error::io(format!("opening blob {}", path.display()), e),
    }
}

fn symlink_blob(path: &Path) -> Error {
    Error::InvalidLayout {
        path: path.to_path_buf(),
        reason: "blob is a symlink; hoist refuses to follow links inside a layout".into(),
    }
}

/// Reads a file of at most `max` bytes (`FileTooLarge` past that); a symlink, FIFO or anything but
/// a regular file is refused (without waiting on a FIFO).
fn read_small_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = crate::durable::open_regular(path, true)?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            "file too large",
        ));
    }
    Ok(bytes)
}

/// Bytes of a blob written between two requests to start their writeback.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk now, without waiting,
/// so the disk works while the rest of the blob streams in and the fsync before the rename finds
/// most of it written (the fsync still decides durability). A hint: failures are ignored.
fn start_writeback(file: &fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; SYNC_FILE_RANGE_WRITE only starts I/O on that range.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

fn sync_dir(dir: &Path) -> Result<()> {
    crate::durable::sync_dir(dir)
}
