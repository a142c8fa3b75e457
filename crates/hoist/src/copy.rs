//! The copy engine: one program for every pair of transports.
//!
//! `Source --(resolve, select platforms)--> plan --(blobs in parallel, verified)--> Destination`.
//! Blobs the destination has are skipped; a local blob is opened once and, from that descriptor, cloned
//! (reflink) or copied into a local destination while it is verified, or hard-linked after it was
//! verified only when [`CopyOptions::link`] asks; everything else streams through a
//! [`crate::blob::VerifiedReader`]. Child manifests are stored
//! before the indexes that name them, and the root document is committed last. Without a requested
//! conversion the documents travel as exact bytes, so every digest is kept.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::blob::VerifiedReader;
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::{Document, Parsed};
use crate::error::{Error, Result};
use crate::image::select_manifest;
use crate::media_type::{self, Kind};
use crate::platform::Platform;
use crate::progress::{BlobOutcome, Event, ProgressReader, Sink, emit};
use crate::transport::{BlobReader, Destination, Source, read_document};

/// Which images of an index to copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PlatformChoice {
    /// The host's platform only (the root becomes that image's manifest), as skopeo does by default.
    #[default]
    Host,
    /// One platform only (the root becomes that image's manifest).
    One(Platform),
    /// The whole index, every image in it.
    All,
    /// A subset: a new index holding only these platforms' entries (its digest changes).
    Subset(Vec<Platform>),
}

/// Options of a copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Which images of an index to copy.
    pub platforms: PlatformChoice,
    /// Blobs in flight at once (0 means 4).
    pub jobs: usize,
    /// Where progress events go.
    pub progress: Option<Sink>,
    /// Manifest format and layer compression changes (see [`crate::recompress`]).
    pub convert: crate::recompress::ConvertOptions,
    /// Fail rather than write any document whose digest differs from the source's (a platform subset
    /// builds a new index; later, format and compression conversions rewrite manifests).
    pub preserve_digests: bool,
    /// Copy only the index itself, not its images: the destination must already hold every manifest
    /// the index names (skopeo's `--multi-arch index-only`).
    pub index_only: bool,
    /// Share blob files with a local source by hard link (`--link`) instead of cloning or copying
    /// them, for files neither writable by group or others nor owned by another user (others are
    /// copied). Off by default: a copy then shares no inode with a layout it was not asked to write.
    pub link: bool,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Digest of the root document written (manifest or index).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Digest of the source's root, when the destination's root differs from it (platform selection).
    pub source_digest: Digest,
    /// Blobs streamed.
    pub blobs_copied: usize,
    /// Blobs hard-linked.
    pub blobs_linked: usize,
    /// Blobs the destination already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: usize,
    /// Foreign layers left out.
    pub blobs_foreign: usize,
    /// Bytes streamed or linked.
    pub bytes: u64,
}

impl CopyReport {
    /// The report of a copy that committed `root`, with how each blob (and its size) was handled.
    pub fn new(root: &Document, source_digest: Digest, outcomes: &[(BlobOutcome, u64)]) -> Self {
        let count = |o: BlobOutcome| outcomes.iter().filter(|(h, _)| *h == o).count();
        CopyReport {
            digest: root.digest().clone(),
            media_type: root.media_type().to_string(),
            source_digest,
            blobs_copied: count(BlobOutcome::Copied),
            blobs_linked: count(BlobOutcome::Linked),
            blobs_skipped: count(BlobOutcome::Skipped),
            blobs_mounted: count(BlobOutcome::Mounted),
            blobs_foreign: count(BlobOutcome::Foreign),
            bytes: outcomes
                .iter()
                .filter(|(h, _)| matches!(h, BlobOutcome::Copied | BlobOutcome::Linked))
                .map(|(_, s)| s)
                .sum(),
        }
    }
}

/// The documents and blobs of one copy, in the order they must be written.
struct Plan {
    root: Document,
    /// Manifests and nested indexes, children before parents.
    children: Vec<Document>,
    /// Unique blobs (configs and layers).
    blobs: Vec<Descriptor>,
}

/// Builds a new index that keeps only the entries with the given digests, preserving every other byte
/// of each entry's JSON (unknown fields, annotations) and of the index itself.
fn filter_index(index: &Document, keep: &[Digest]) -> Result<Document> {
    let mut v: Value = serde_json::from_slice(index.bytes())
        .map_err(|e| Error::invalid_document(format!("index {}", index.digest()), e.to_string()))?;
    let keep: HashSet<String> = keep.iter().map(|d| d.to_string()).collect();
    if let Some(m) = v.get_mut("manifests").and_then(Value::as_array_mut) {
        m.retain(|e| {
            e.get("digest")
                .and_then(Value::as_str)
                .is_some_and(|d| keep.contains(d))
        });
    }
    let v = crate::document::with_media_type(v, index.media_type());
    let bytes =
        serde_json::to_vec(&v).map_err(|e| Error::Other(format!("serialising index: {e}")))?;
    Document::new(index.media_type(), bytes)
}

fn plan(src: &dyn Source, opts: &CopyOptions) -> Result<Plan> {
    let source_root = src.root()?;
    if opts.index_only {
        if !source_root.is_index() {
            return Err(Error::Unsupported(format!(
                "--multi-arch index-only needs an index, but {} is a single manifest",
                src.name()
            )));
        }
        return Ok(Plan {
            root: source_root,
            children: Vec::new(),
            blobs: Vec::new(),
        });
    }
    let root = if source_root.is_index() {
        match &opts.platforms {
            PlatformChoice::Host => select_manifest(src, source_root, &Platform::host())?,
            PlatformChoice::One(p) => select_manifest(src, source_root, p)?,
            PlatformChoice::All => source_root,
            PlatformChoice::Subset(platforms) => {
                let index = source_root.index()?;
                let mut keep = Vec::new();
                for p in platforms {
                    let d = crate::platform::select(&index, p)?;
                    keep.push(digest_of(d)?);
                }
                filter_index(&source_root, &keep)?
            }
        }
    } else {
        // A single image: a requested platform must be its own, or nothing the user asked for exists.
        let wanted: &[Platform] = match &opts.platforms {
            PlatformChoice::One(p) => std::slice::from_ref(p),
            PlatformChoice::Subset(ps) => ps,
            PlatformChoice::Host | PlatformChoice::All => &[],
        };
        if !wanted.is_empty()
            && let Some(actual) = image_platform(src, &source_root)?
            && let Some(missing) = wanted.iter().find(|p| !p.matches(&actual))
        {
            return Err(Error::Platform(format!(
                "{} is a single image for {actual}, not {missing}; it has no other platform",
                src.name()
            )));
        }
        source_root
    };

    let mut children = Vec::new();
    let mut blobs = Vec::new();
    let mut seen_blobs = HashSet::new();
    let mut seen_docs = HashSet::new();
    walk(
        src,
        &root,
        0,
        &mut seen_docs,
        &mut children,
        &mut blobs,
        &mut seen_blobs,
    )?;
    Ok(Plan {
        root,
        children,
        blobs,
    })
}

/// The platform a single image's config names (`None` for an artifact whose config is not an image
/// config).
fn image_platform(src: &dyn Source, manifest: &Document) -> Result<Option<Platform>> {
    let Parsed::Manifest(m) = manifest.parse()? else {
        return Ok(None);
    };
    if !matches!(
        media_type::kind(m.config().media_type().as_ref()),
        Kind::Config { .. }
    ) {
        return Ok(None);
    }
    let bytes = crate::transport::read_small_blob(src, m.config())?;
    let config = crate::document::parse_config(&bytes, &digest_of(m.config())?)?;
    Ok(Some(Platform::new(
        &config.os().to_string(),
        &config.architecture().to_string(),
        config.variant().as_deref(),
    )))
}

fn walk(
    src: &dyn Source,
    doc: &Document,
    depth: usize,
    seen_docs: &mut HashSet<Digest>,
    children: &mut Vec<Document>,
    blobs: &mut Vec<Descriptor>,
    seen_blobs: &mut HashSet<Digest>,
) -> Result<()> {
    if depth > src.limits().max_index_depth {
        return Err(Error::LimitExceeded {
            what: "index nesting depth".into(),
            limit: src.limits().max_index_depth.to_string(),
            option: "--max-index-depth".into(),
        });
    }
    if !seen_docs.insert(doc.digest().clone()) {
        return Err(Error::invalid_document(
            format!("index {}", doc.digest()),
            "index cycle: a document refers back to one that contains it",
        ));
    }
    fn add_blob(
        blobs: &mut Vec<Descriptor>,
        seen: &mut HashSet<Digest>,
        d: &Descriptor,
    ) -> Result<()> {
        if seen.insert(digest_of(d)?) {
            blobs.push(d.clone());
        }
        Ok(())
    }
    match doc.parse()? {
        Parsed::Manifest(m) => {
            add_blob(blobs, seen_blobs, m.config())?;
            for l in m.layers() {
                add_blob(blobs, seen_blobs, l)?;
            }
        }
        Parsed::Index(i) => {
            for child in i.manifests() {
                let mt = child.media_type().to_string();
                if media_type::is_document(&mt) {
                    let c = read_document(src, child)?;
                    walk(src, &c, depth + 1, seen_docs, children, blobs, seen_blobs)?;
                    children.push(c);
                } else {
                    // Artifacts and other blobs an index points at travel as opaque blobs.
                    add_blob(blobs, seen_blobs, child)?;
                }
            }
        }
    }
    // Allow the same manifest to appear under two platforms of one index without calling it a cycle.
    seen_docs.remove(doc.digest());
    Ok(())
}

fn is_foreign(desc: &Descriptor) -> bool {
    matches!(
        media_type::kind(desc.media_type().as_ref()),
        Kind::Layer { foreign: true, .. }
    ) && desc.urls().as_ref().is_some_and(|u| !u.is_empty())
}

/// Copies one blob; returns how.
pub(crate) fn copy_blob(
    src: &dyn Source,
    dst: &dyn Destination,
    desc: &Descriptor,
    sink: &Option<Sink>,
    link: bool,
) -> Result<BlobOutcome> {
    let digest = digest_of(desc)?;
    if dst.has_blob(desc)? {
        return Ok(BlobOutcome::Skipped);
    }
    if let Some(origin) = src.registry_origin()
        && dst.mount_blob(desc, &origin)?
    {
        // Mounted from another repository of the same registry: nothing was transferred.
        return Ok(BlobOutcome::Mounted);
    }
    emit(
        sink,
        Event::BlobStarted {
            digest: digest.clone(),
            size: desc.size(),
        },
    );
    let what = || format!("blob {digest} of {}", src.name());
    if dst.links_blobs() {
        let local = match src.open_local_blob(desc) {
            Ok(f) => f,
            Err(Error::BlobNotFound { .. }) if is_foreign(desc) => return Ok(BlobOutcome::Foreign),
            Err(e) => return Err(e),
        };
        if let Some(mut file) = local {
            // Everything below works from this one open file: what lands is what was verified, even
            // if the source's file is renamed over meanwhile.
            if link && shareable(&file) {
                VerifiedReader::new(
                    ProgressReader::new(&file, digest.clone(), sink.clone()),
                    digest.clone(),
                    desc.size(),
                    what(),
                )
                .finish()?;
                if dst.link_blob(desc, &file)? {
                    return Ok(BlobOutcome::Linked);
                }
                tracing::debug!("{}: cannot hard-link it here; copying", what());
                std::io::Seek::rewind(&mut file)
                    .map_err(|e| Error::io(format!("rewinding {}", what()), e))?;
            } else if link {
                tracing::debug!(
                    "{}: writable by others or owned by another user; copying, not linking",
                    what()
                );
            }
            let cloned = dst.clone_blob(desc, &file, &mut |clone| {
                VerifiedReader::new(
                    ProgressReader::new(clone, digest.clone(), sink.clone()),
                    digest.clone(),
                    desc.size(),
                    what(),
                )
                .finish()
            })?;
            if cloned {
                return Ok(BlobOutcome::Copied);
            }
            let raw: BlobReader<'_> =
                Box::new(ProgressReader::new(file, digest.clone(), sink.clone()));
            return put_verified(dst, desc, raw, &digest, what());
        }
    }
    let raw = match src.open_blob(desc) {
        Ok(r) => r,
        Err(Error::BlobNotFound { .. }) if is_foreign(desc) => return Ok(BlobOutcome::Foreign),
        Err(e) => return Err(e),
    };
    let raw: BlobReader<'_> = Box::new(ProgressReader::new(raw, digest.clone(), sink.clone()));
    put_verified(dst, desc, raw, &digest, what())
}

/// Streams `raw` into `dst` through a verified reader: the destination stores only verified bytes.
fn put_verified(
    dst: &dyn Destination,
    desc: &Descriptor,
    raw: BlobReader<'_>,
    digest: &Digest,
    what: String,
) -> Result<BlobOutcome> {
    let mut stream = VerifiedReader::new(raw, digest.clone(), desc.size(), what);
    dst.put_blob(desc, &mut stream)?;
    if !stream.is_verified() {
        // A destination that did not read to the end would otherwise accept an unverified blob.
        stream.finish()?;
    }
    Ok(BlobOutcome::Copied)
}

/// True when a local blob file may be shared by hard link (`--link`): a regular file that no one but
/// the user running hoist can change (owned by this user, not writable by group or others).
fn shareable(file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata().is_ok_and(|m| {
        m.is_file() && m.mode() & 0o022 == 0 && m.uid() == rustix::process::geteuid().as_raw()
    })
}

/// Runs `f` over `items` on up to `jobs` threads, stopping at the first error.
pub(crate) fn parallel<T: Sync, F>(items: &[T], jobs: usize, f: F) -> Result<()>
where
    F: Fn(&T) -> Result<()> + Sync,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let workers = jobs.max(1).min(items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    if let Err(e) = f(item) {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if slot.is_none() {
                            *slot = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Copies the image `src` names into `dst`.
///
/// ```no_run
/// let opts = hoist::OpenOptions::default();
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
/// let dst = hoist::open_destination(&"dir:/tmp/image-dir".parse()?, &opts)?;
/// let report = hoist::copy(src.as_ref(), dst.as_ref(), &hoist::CopyOptions::default())?;
/// println!("{} ({} blobs streamed)", report.digest, report.blobs_copied);
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn copy(src: &dyn Source, dst: &dyn Destination, opts: &CopyOptions) -> Result<CopyReport> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| copy(src, dst, opts));
    }
    let source_digest = src.root()?.digest().clone();
    let plan = plan(src, opts)?;
    if opts.preserve_digests && plan.root.is_index() && plan.root.digest() != &source_digest {
        return Err(Error::Unsupported(format!(
            "--preserve-digests: copying a platform subset writes a new index ({}) instead of {source_digest}",
            plan.root.digest()
        )));
    }
    if opts.index_only {
        let index = plan.root.index()?;
        let missing: Vec<String> = index
            .manifests()
            .iter()
            .filter(|d| !dst.has_blob(d).unwrap_or(false))
            .map(|d| d.digest().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Unsupported(format!(
                "--multi-arch index-only: {} lacks manifests the index names: {}; copy them first (or use --all)",
                dst.name(),
                missing.join(", ")
            )));
        }
    }
    let docs: Vec<&Document> = plan.children.iter().chain([&plan.root]).collect();
    if crate::recompress::needed(&docs, dst, &opts.convert) {
        // The one extension point for conversions: format changes and layer recompression.
        return crate::recompress::copy_converted(
            src,
            dst,
            plan.root,
            plan.children,
            plan.blobs,
            source_digest,
            opts,
        );
    }
    for doc in plan.children.iter().chain(std::iter::once(&plan.root)) {
        if !dst.accepts(doc.media_type()) {
            return Err(Error::Unsupported(format!(
                "{} cannot store {} documents; ask for a conversion with --format",
                dst.name(),
                doc.media_type()
            )));
        }
    }
    emit(
        &opts.progress,
        Event::Plan {
            blobs: plan.blobs.len(),
            bytes: plan.blobs.iter().map(|b| b.size()).sum(),
        },
    );
    let outcomes: Mutex<Vec<(BlobOutcome, u64)>> = Mutex::new(Vec::new());
    let jobs = if opts.jobs == 0 { 4 } else { opts.jobs };
    parallel(&plan.blobs, jobs, |desc| {
        let how = copy_blob(src, dst, desc, &opts.progress, opts.link)?;
        emit(
            &opts.progress,
            Event::BlobDone {
                digest: digest_of(desc)?,
                size: desc.size(),
                how,
            },
        );
        outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((how, desc.size()));
        Ok(())
    })?;
    for child in &plan.children {
        dst.put_document(child)?;
    }
    dst.commit(&plan.root)?;

    let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(CopyReport::new(&plan.root, source_digest, &outcomes))
}
