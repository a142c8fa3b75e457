//! The two transport traits, [`Source`] and [`Destination`], and opening them from a [`TransportRef`].
//!
//! Every verb is a short program over these: a source resolves a reference to a document and streams
//! blobs; a destination stores verified blob streams and documents and commits the result atomically.
//! A new transport is one module implementing them; `copy` never special-cases a pair of transports.

pub mod dir;
pub mod docker_archive;
#[cfg(feature = "registry")]
pub mod docker_daemon;
pub mod oci;
pub mod oci_archive;
#[cfg(feature = "registry")]
pub mod registry;
pub mod repository;
pub(crate) mod tar_index;

use std::io::Read;
use std::path::PathBuf;

use crate::blob::{VerifiedReader, read_verified_to_vec};
use crate::descriptor::{Descriptor, digest_of};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::reference::TransportRef;

/// A boxed blob stream.
pub type BlobReader<'a> = Box<dyn Read + Send + 'a>;

/// A blob stream that checks its size and digest as it is read.
pub type VerifiedStream<'a> = VerifiedReader<BlobReader<'a>>;

/// Where images are read from.
pub trait Source: Send + Sync {
    /// A human-readable name for messages (`oci:/path:tag`).
    fn name(&self) -> String;

    /// The document (manifest or index) the reference names, exact bytes.
    fn root(&self) -> Result<Document>;

    /// Opens the raw bytes of a blob. Callers verify: use [`open_verified`] or [`read_document`].
    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>>;

    /// The blob as an open local regular file, when this source keeps blobs as files (layouts, `dir:`),
    /// so a destination can clone, copy or (when asked) link exactly the bytes the caller verifies from
    /// this descriptor, never a path that could be swapped in between. A blob that is a symlink is an
    /// error naming it. `None` when the source has no local files.
    fn open_local_blob(&self, _desc: &Descriptor) -> Result<Option<std::fs::File>> {
        Ok(None)
    }

    /// The tags this source knows about (the layout's `ref.name`s, a registry's tag list).
    fn tags(&self) -> Result<Vec<String>> {
        Err(Error::Unsupported(format!(
            "{} cannot list tags",
            self.name()
        )))
    }

    /// The referrers of the manifest or index `digest` (OCI 1.1: manifests whose `subject` is it:
    /// signatures, SBOMs, attestations), as the referrers API describes them
    /// ([`crate::referrers`]), keeping those whose artifact type is in `artifact_types` (all when it
    /// is empty), at most `--max-referrers`. The default: this transport cannot hold referrers.
    fn referrers(
        &self,
        _digest: &crate::Digest,
        _artifact_types: &[String],
    ) -> Result<Vec<Descriptor>> {
        Err(Error::Unsupported(format!(
            "{} cannot hold referrers (signatures, SBOMs, attestations): only registries (docker://) \
             and OCI layouts (oci:, oci-archive:) can",
            self.name()
        )))
    }

    /// The document tagged `tag` beside this source's image (same repository or layout), `None` when
    /// there is no such tag: how `copy --digest-tags` finds cosign's `sha256-<hex>.sig` tags. The
    /// default: none (the transport has no other tags).
    fn tagged(&self, _tag: &str) -> Result<Option<Document>> {
        Ok(None)
    }

    /// The registry and repository the blobs come from, when the source is a registry, so that a
    /// destination on the same registry can mount them instead of copying ([`Destination::mount_blob`]).
    fn registry_origin(&self) -> Option<RegistryOrigin> {
        None
    }

    /// True when this source presents its layers under media types it makes up rather than ones
    /// the image declares: a docker-archive (and the daemon's `docker save` archives) has no
    /// manifest of its own, and its layers, uncompressed tars, are presented under Docker's gzip
    /// type as skopeo presents them. A layer whose bytes disagree with its type is then how the
    /// transport reads, not a mislabelled image (`verify` says so only otherwise). The default: no.
    fn synthesises_layer_types(&self) -> bool {
        false
    }

    /// Limits that apply to reads from this source.
    fn limits(&self) -> &Limits;
}

/// Where a registry source's blobs live (see [`Source::registry_origin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOrigin {
    /// The registry host with port, as requests address it (`registry-1.docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository (`library/busybox`).
    pub repository: String,
}

/// Where images are written to.
pub trait Destination: Send + Sync {
    /// A human-readable name for messages.
    fn name(&self) -> String;

    /// True when the destination already holds the blob (it will not be copied again).
    fn has_blob(&self, desc: &Descriptor) -> Result<bool>;

    /// Stores a blob from a verified stream. The destination reads `stream` to its end (where a
    /// mismatch is reported) and makes the blob visible only if [`VerifiedReader::is_verified`] is then true.
    fn put_blob(&self, desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()>;

    /// True when this destination keeps blobs as local files and can take an open local blob file
    /// ([`Self::clone_blob`], [`Self::link_blob`]); for any other destination the caller streams the
    /// blob through [`Self::put_blob`], so every blob is hashed once.
    fn links_blobs(&self) -> bool {
        false
    }

    /// Stores a blob as a reflink (copy-on-write clone, `FICLONE`) of the open file `from`, which
    /// shares no inode with it: `verify` is handed the clone, read from its start, and the blob is
    /// stored only if it returns `Ok`. Returns `false` when the filesystem cannot clone `from` here
    /// (the default), and the caller copies the bytes instead.
    fn clone_blob(
        &self,
        _desc: &Descriptor,
        _from: &std::fs::File,
        _verify: &mut dyn FnMut(std::fs::File) -> Result<()>,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Stores a blob by hard-linking the inode of the open, already verified file `from` (never a
    /// path, which could be swapped after it was verified). Returns `false` when that is not possible
    /// here (the default), and the caller copies it instead.
    fn link_blob(&self, _desc: &Descriptor, _from: &std::fs::File) -> Result<bool> {
        Ok(false)
    }

    /// Makes a blob of another repository on the same registry available here without copying it
    /// (a cross-repository mount). Returns `false` when that is not possible (the default), and the
    /// caller copies the blob instead. Called after [`Destination::has_blob`] said no.
    fn mount_blob(&self, _desc: &Descriptor, _origin: &RegistryOrigin) -> Result<bool> {
        Ok(false)
    }

    /// Stores a manifest or index that the root refers to (children of an index).
    fn put_document(&self, doc: &Document) -> Result<()>;

    /// Stores the root document and makes the image visible (e.g. `index.json` last), atomically.
    fn commit(&self, root: &Document) -> Result<()>;

    /// Stores `doc` under `tag` beside this destination's image (same repository or layout), its
    /// blobs and children stored first: how `copy --digest-tags` writes cosign's `sha256-<hex>.sig`
    /// tags. The default: this transport has no other tags.
    fn commit_tagged(&self, tag: &str, _doc: &Document) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{} cannot hold other tags (such as {tag}) beside the image",
            self.name()
        )))
    }

    /// True when [`Self::commit_referrer`] can store referrers here (layouts, registries).
    fn holds_referrers(&self) -> bool {
        false
    }

    /// Stores `doc`, a manifest or index whose `subject` names a manifest, as a referrer of it: under
    /// no tag, discoverable by [`Source::referrers`] (a layout adds it to `index.json` untagged, as
    /// oras does; a registry puts it by digest and keeps the tag-schema fallback index up to date when
    /// it has no referrers API). Its blobs and children are stored first, as for [`Self::commit`].
    /// The default: this transport cannot hold referrers.
    fn commit_referrer(&self, _doc: &Document) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{} cannot hold referrers (signatures, SBOMs, attestations): only registries (docker://) \
             and OCI layouts (oci:, oci-archive:) can",
            self.name()
        )))
    }

    /// True when the destination can store documents of this media type (Docker-only formats say no to
    /// OCI manifests and the reverse; most say yes to everything).
    fn accepts(&self, _media_type: &str) -> bool {
        true
    }

    /// The manifest format this destination stores natively: the copy engine converts documents of the
    /// other format into it (as skopeo does). `None` (the default) stores every format as it comes.
    fn native_format(&self) -> Option<crate::convert::Format> {
        None
    }

    /// What this destination wants of layer compression (see [`LayerPolicy`]).
    fn layer_policy(&self) -> LayerPolicy {
        LayerPolicy::Any
    }

    /// A directory on the destination's filesystem where the copy engine may put temp files (recompressed
    /// layers), so that [`Destination::link_blob`] can take them without a second copy.
    fn staging_dir(&self) -> Option<PathBuf> {
        None
    }
}

/// What a destination wants of layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerPolicy {
    /// Layers are stored as they come.
    #[default]
    Any,
    /// Uncompressed layers are gzip-compressed when a manifest is converted to this destination's
    /// format anyway (what skopeo does for OCI destinations); otherwise layers are kept.
    CompressWhenConverting,
    /// Layers must be uncompressed (docker-archive): compressed ones are decompressed.
    Uncompressed,
}

/// How many times a read-add-write of a shared document (a referrers fallback index, a `.sig`
/// manifest) is made again after a concurrent writer dropped the entry added.
pub(crate) const SHARED_UPDATE_ATTEMPTS: usize = 5;

/// Opens a blob of `source` as a verified stream.
pub fn open_verified<'a>(source: &'a dyn Source, desc: &Descriptor) -> Result<VerifiedStream<'a>> {
    let digest = digest_of(desc)?;
    let raw = source.open_blob(desc)?;
    Ok(VerifiedReader::new(
        raw,
        digest.clone(),
        desc.size(),
        format!("blob {digest}"),
    ))
}

/// Reads a child manifest or index of `source` (verified, size-limited).
pub fn read_document(source: &dyn Source, desc: &Descriptor) -> Result<Document> {
    let bytes = read_small_blob(source, desc)?;
    Document::for_descriptor(desc, bytes)
}

/// Reads a small blob (a config) of `source` into memory (verified, size-limited).
pub fn read_small_blob(source: &dyn Source, desc: &Descriptor) -> Result<Vec<u8>> {
    let digest = digest_of(desc)?;
    read_verified_to_vec(
        source.open_blob(desc)?,
        desc,
        source.limits().max_document_size,
        &format!("blob {digest}"),
    )
}

/// A registry user name and password (or token). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Parses skopeo's `--creds USER[:PASSWORD]` (split at the first `:`).
    pub fn parse(text: &str) -> Result<Self> {
        let (user, pass) = text.split_once(':').unwrap_or((text, ""));
        if user.is_empty() {
            return Err(Error::Other(
                "credentials must be USER:PASSWORD with a non-empty user name".into(),
            ));
        }
        Ok(Credentials::new(user, pass))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Options for opening transports.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Limits for reads.
    pub limits: Limits,
    /// Registry: verify TLS certificates (`--tls-verify`, default true). `false` also allows plain
    /// http, as skopeo does.
    pub tls_verify: Option<bool>,
    /// Registry: the flag or setting that turns `tls_verify` off for this end, for messages
    /// (default `--tls-verify`; `--src-tls-verify` for a copy's source, ...).
    pub tls_verify_flag: Option<String>,
    /// Registry: a directory of extra CA certificates (`*.crt`) to trust (`--cert-dir`).
    pub cert_dir: Option<PathBuf>,
    /// Registry: credentials (`--creds`); when absent they are looked up in the auth files.
    pub creds: Option<Credentials>,
    /// Registry: the auth file to read instead of the default ones (`--authfile`).
    pub authfile: Option<PathBuf>,
    /// Registry: the registries.conf to read instead of the default ones (`--registries-conf`).
    pub registries_conf: Option<PathBuf>,
    /// Registry: tags (and catalog entries) to ask for per request when listing (`--page-size`;
    /// default: as many as the registry sends).
    pub page_size: Option<usize>,
    /// Registry: retries on connection errors, 429 and 5xx (`--retry-times`, default 3).
    pub retry_times: Option<u32>,
    /// docker-archive destination: more `NAME:TAG`s for the image's `RepoTags` (skopeo's
    /// `--additional-tag`). Other destinations refuse them rather than drop them silently.
    pub additional_tags: Vec<crate::reference::ImageName>,
    /// Registry: how long to wait for a connection, an answer or the next bytes of a body
    /// (`--registry-timeout`, default 300 s).
    pub timeout: Option<std::time::Duration>,
    /// OCI layout: blobs are read from or written to this directory (`ALG/HEX`) instead of the
    /// layout's `blobs/` (skopeo's `--src-shared-blob-dir` / `--dest-shared-blob-dir`). Other
    /// transports refuse it.
    pub shared_blob_dir: Option<PathBuf>,
}

impl OpenOptions {
    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// What a transport is and what it can do: the one table of transports, so that verbs ask the
/// transport ([`TransportRef::kind`]) instead of matching on its variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportKind {
    /// The name before the `:` (`oci`, `docker-daemon`, ...), as [`TransportRef::transport`] says it.
    pub name: &'static str,
    /// As a destination, takes more `NAME:TAG`s for the image (skopeo's `--additional-tag`).
    pub additional_tags: bool,
    /// Takes a shared blob directory (skopeo's `--src-shared-blob-dir` / `--dest-shared-blob-dir`).
    pub shared_blob_dir: bool,
    /// An image's `RepoTags` (as `inspect` shows them) are the tags [`Source::tags`] lists: its
    /// repository's tags, as skopeo shows them for a registry.
    pub tags_are_repo_tags: bool,
    /// A repository of tags and blobs ([`repository::open_repository`]): tag, untag, delete and
    /// blob plumbing work on it.
    pub repository: bool,
    /// Its tags ([`Source::tags`]) are the `NAME:TAG`s of every image the file holds (a
    /// docker-archive's `RepoTags`), which `list-tags` lists as skopeo does.
    pub tags_are_image_names: bool,
    /// Holds OCI 1.1 referrers (signatures, SBOMs, attestations) beside its images
    /// ([`Destination::holds_referrers`]), in place or, for an archive written whole, when it is
    /// written.
    pub holds_referrers: bool,
}

impl TransportKind {
    const fn new(name: &'static str) -> Self {
        TransportKind {
            name,
            additional_tags: false,
            shared_blob_dir: false,
            tags_are_repo_tags: false,
            repository: false,
            tags_are_image_names: false,
            holds_referrers: false,
        }
    }
}

/// Every transport hoist knows, in the order help texts list them.
pub const TRANSPORTS: &[TransportKind] = &[
    TransportKind {
        shared_blob_dir: true,
        repository: true,
        holds_referrers: true,
        ..TransportKind::new("oci")
    },
    TransportKind {
        holds_referrers: true,
        ..TransportKind::new("oci-archive")
    },
    TransportKind::new("dir"),
    TransportKind {
        additional_tags: true,
        tags_are_image_names: true,
        ..TransportKind::new("docker-archive")
    },
    TransportKind {
        additional_tags: true,
        ..TransportKind::new("docker-daemon")
    },
    TransportKind {
        tags_are_repo_tags: true,
        repository: true,
        holds_referrers: true,
        ..TransportKind::new("docker")
    },
];

impl TransportRef {
    /// What this reference's transport is and can do (its row of [`TRANSPORTS`]).
    pub fn kind(&self) -> &'static TransportKind {
        const UNLISTED: TransportKind = TransportKind::new("unlisted");
        TRANSPORTS
            .iter()
            .find(|k| k.name == self.transport())
            .unwrap_or(&UNLISTED)
    }
}

/// Opens the source a reference names.
///
/// ```no_run
/// use hoist::{OpenOptions, TransportRef};
/// let reference: TransportRef = "oci-archive:/tmp/image.tar".parse()?;
/// let src = hoist::open_source(&reference, &OpenOptions::default())?;
/// let root = src.root()?; // the manifest or index the reference names
/// println!("{} {}", root.media_type(), root.digest());
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn open_source(reference: &TransportRef, opts: &OpenOptions) -> Result<Box<dyn Source>> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| open_source(reference, opts));
    }
    refuse_shared_blob_dir(reference, opts)?;
    match reference {
        TransportRef::Oci { path, reference } => {
            let source = oci::OciSource::open(path, reference.clone(), opts.limits.clone())?;
            Ok(Box::new(match &opts.shared_blob_dir {
                Some(dir) => source.with_shared_blobs(dir),
                None => source,
            }))
        }
        TransportRef::OciArchive { path, reference } => Ok(Box::new(
            oci_archive::OciArchiveSource::open(path, reference.clone(), opts.limits.clone())?,
        )),
        TransportRef::Dir { path } => {
            Ok(Box::new(dir::DirSource::open(path, opts.limits.clone())?))
        }
        TransportRef::DockerArchive { path, selector } => Ok(Box::new(
            docker_archive::DockerArchiveSource::open(path, selector.clone(), opts.limits.clone())?,
        )),
        #[cfg(feature = "registry")]
        TransportRef::Docker(name) => Ok(Box::new(registry::RegistrySource::open(name, opts)?)),
        #[cfg(feature = "registry")]
        TransportRef::DockerDaemon(r) => Ok(Box::new(docker_daemon::DockerDaemonSource::open(
            &docker_daemon::Daemon::from_env()?,
            r,
            opts.limits.clone(),
        )?)),
        // Reachable in builds without the `registry` feature (docker://).
        #[allow(unreachable_patterns)]
        other => Err(Error::Unsupported(format!(
            "reading from the {} transport is not implemented yet ({other})",
            other.transport()
        ))),
    }
}

/// The tags `reference` holds: a layout's, a registry repository's (its tag or digest is not
/// used), or the `RepoTags` of every image of a docker-archive (whichever image it names).
pub fn list_tags(reference: &TransportRef, opts: &OpenOptions) -> Result<Vec<String>> {
    let source = open_source(&reference.any_image(), opts)?;
    source.tags()
}

/// Refuses to write `reference` when it is an archive file that exists and holds images under
/// other tags than the one written (an `oci-archive:` or `docker-archive:` is written whole, so
/// they would be dropped). The verbs that edit or build images call it before writing (`config`,
/// `append` and `index` write back to the archive they read); `copy` replaces an archive whole,
/// as skopeo does. A destination that is not a regular file (a FIFO, `/dev/stdout`) is not read.
pub fn check_keeps_other_images(reference: &TransportRef, opts: &OpenOptions) -> Result<()> {
    let Some((path, _)) = reference.archive_file("") else {
        return Ok(());
    };
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let others: Vec<String> = list_tags(reference, opts)?
        .into_iter()
        .filter(|t| !reference.archive_file(t).is_some_and(|(_, named)| named))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(Error::Unsupported(format!(
        "{reference}: the archive holds other images ({}), which writing it whole would drop; \
         write to another file (--dest), or copy them into a layout (oci:) and work there",
        others.join(", ")
    )))
}

/// A shared blob directory is for OCI layouts only: anything else refuses it rather than ignore it.
fn refuse_shared_blob_dir(reference: &TransportRef, opts: &OpenOptions) -> Result<()> {
    match &opts.shared_blob_dir {
        Some(_) if reference.kind().shared_blob_dir => Ok(()),
        None => Ok(()),
        Some(dir) => Err(Error::Unsupported(format!(
            "a shared blob directory ({}) applies to OCI layouts (oci:), not {}",
            dir.display(),
            reference.transport()
        ))),
    }
}

/// Opens the destination a reference names (creating a layout or directory as needed).
pub fn open_destination(
    reference: &TransportRef,
    opts: &OpenOptions,
) -> Result<Box<dyn Destination>> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| open_destination(reference, opts));
    }
    if !opts.additional_tags.is_empty() && !reference.kind().additional_tags {
        return Err(Error::Unsupported(format!(
            "additional tags apply to docker-archive destinations only (and docker-daemon), not {reference}"
        )));
    }
    refuse_shared_blob_dir(reference, opts)?;
    match reference {
        TransportRef::Oci { path, reference } => {
            let dest = oci::OciDestination::open(path, reference.clone())?;
            Ok(Box::new(match &opts.shared_blob_dir {
                Some(dir) => dest.with_shared_blobs(dir),
                None => dest,
            }))
        }
        TransportRef::OciArchive { path, reference } => Ok(Box::new(
            oci_archive::OciArchiveDestination::create(path, reference.clone())?,
        )),
        TransportRef::Dir { path } => Ok(Box::new(dir::DirDestination::create(path)?)),
        TransportRef::DockerArchive { path, selector } => Ok(Box::new(
            docker_archive::DockerArchiveDestination::create(path, selector.clone())?
                .with_additional_tags(&opts.additional_tags)?,
        )),
        #[cfg(feature = "registry")]
        TransportRef::Docker(name) => {
            Ok(Box::new(registry::RegistryDestination::open(name, opts)?))
        }
        #[cfg(feature = "registry")]
        TransportRef::DockerDaemon(r) => {
            Ok(Box::new(docker_daemon::DockerDaemonDestination::create(
                docker_daemon::Daemon::from_env()?,
                r,
                opts,
            )?))
        }
        // Reachable in builds without the `registry` feature (docker://).
        #[allow(unreachable_patterns)]
        other => Err(Error::Unsupported(format!(
            "writing to the {} transport is not implemented yet ({other})",
            other.transport()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_is_in_the_table_and_answers_for_itself() {
        let d = format!("sha256:{}", "a".repeat(64));
        for (text, additional_tags, shared_blob_dir, repository) in [
            ("oci:x:v1", false, true, true),
            ("oci-archive:x.tar", false, false, false),
            ("dir:x", false, false, false),
            ("docker-archive:x.tar:a:1", true, false, false),
            ("docker-daemon:a:1", true, false, false),
            (&format!("docker-daemon:{d}") as &str, true, false, false),
            ("docker://a:1", false, false, true),
        ] {
            let r = TransportRef::parse(text).unwrap();
            let kind = r.kind();
            assert_eq!(kind.name, r.transport(), "{text}");
            assert_eq!(kind.additional_tags, additional_tags, "{text}");
            assert_eq!(kind.shared_blob_dir, shared_blob_dir, "{text}");
            assert_eq!(kind.repository, repository, "{text}");
            // Only a repository names its neighbours (a tag beside the image, the repository).
            assert_eq!(r.in_same_repository(None).is_some(), repository, "{text}");
            assert_eq!(
                r.in_same_repository(Some("t")).is_some(),
                repository,
                "{text}"
            );
            assert_eq!(
                kind.holds_referrers,
                matches!(kind.name, "oci" | "oci-archive" | "docker"),
                "{text}"
            );
            assert_eq!(
                kind.tags_are_image_names,
                kind.name == "docker-archive",
                "{text}"
            );
        }
        assert_eq!(TRANSPORTS.len(), 6);
    }

    #[test]
    fn references_name_their_neighbours_identity_and_policy_scopes() {
        let d = format!("sha256:{}", "a".repeat(64));
        let home = TransportRef::parse("docker://h.example/a/b:v1").unwrap();
        assert_eq!(
            home.in_same_repository(None).unwrap().to_string(),
            "docker://h.example/a/b"
        );
        assert_eq!(
            home.in_same_repository(Some("v2")).unwrap().to_string(),
            "docker://h.example/a/b:v2"
        );
        let layout = TransportRef::parse(&format!("oci:/l@{d}")).unwrap();
        assert_eq!(
            layout.in_same_repository(Some("v2")).unwrap().to_string(),
            "oci:/l:v2"
        );
        assert_eq!(
            layout.in_same_repository(None).unwrap().to_string(),
            "oci:/l"
        );
        assert_eq!(home.registry_image().unwrap().name(), "h.example/a/b");
        assert!(
            TransportRef::parse("docker-archive:x.tar:a:1")
                .unwrap()
                .registry_image()
                .is_none()
        );
        assert_eq!(
            home.policy_scopes(),
            [
                "h.example/a/b:v1",
                "h.example/a/b",
                "h.example/a",
                "h.example"
            ]
        );
        assert_eq!(
            TransportRef::parse("oci:/l/x:v1").unwrap().policy_scopes(),
            ["/l/x:v1", "/l/x", "/l", "/"]
        );
        assert!(
            TransportRef::parse("dir:/l")
                .unwrap()
                .policy_scopes()
                .is_empty()
        );
    }
}
