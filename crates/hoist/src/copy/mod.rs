//! The copy engine: one program for every pair of transports.
//!
//! `Source --(plan: platform choice, index walk)--> plan --(transfer: blobs in parallel, each by its
//! action, verified)--> Destination --(commit: documents bottom-up, root last)`.
//!
//! - `plan.rs`: the root to write and, walked with the one index walker (`walk.rs`), the documents
//!   (children before parents) and unique blobs.
//! - `actions.rs`: what happens to each blob: kept when the destination has it,
//!   mounted, hard-linked (only when [`CopyOptions::link`] asks, after it was verified) or cloned
//!   (reflink) or copied from a local source's one open file while it is verified, streamed through a
//!   [`crate::blob::VerifiedReader`], or recompressed; and when a conversion is needed (`needed`).
//! - `transfer.rs`: the one loop that moves blobs, in parallel.
//! - `commit.rs`: documents rebuilt when converting, stored children first, root last.
//!
//! Without a requested conversion the documents travel as exact bytes, so every digest is kept.

mod actions;
mod commit;
mod plan;
mod referrers;
mod transfer;

pub use actions::ConvertOptions;
pub(crate) use actions::needed;
pub(crate) use plan::chosen_manifest;

use crate::cancel::CancelToken;
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::progress::{BlobOutcome, Sink};
use crate::transport::{Destination, Source};

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
#[non_exhaustive]
pub struct CopyOptions {
    /// Which images of an index to copy.
    pub platforms: PlatformChoice,
    /// Blobs in flight at once (0 means 4).
    pub jobs: usize,
    /// Where progress events go.
    pub progress: Option<Sink>,
    /// Manifest format and layer compression changes (see [`ConvertOptions`]).
    pub convert: ConvertOptions,
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
    /// Also copy the referrers (OCI 1.1 subjects: signatures, SBOMs, attestations) of every manifest
    /// and index written as it is, recursively (`--referrers`).
    pub referrers: bool,
    /// With [`Self::referrers`], only referrers of these artifact types (`--referrers-filter`; all
    /// when empty).
    pub referrers_filter: Vec<String>,
    /// Also copy cosign's legacy digest tags (`sha256-<hex>.sig`, `.att`, `.sbom`) of every manifest
    /// and index written as it is (`--digest-tags`).
    pub digest_tags: bool,
    /// Stops the copy from another thread ([`CancelToken::cancel`]): it fails with
    /// [`Error::Cancelled`] and the destination keeps its old root (blobs already stored stay, as
    /// after a SIGKILL; temp files are removed). Never cancelled by default.
    pub cancel: CancelToken,
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
    /// Referrers written (`--referrers`).
    pub referrers: usize,
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
            referrers: 0,
        }
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
    opts.cancel.check()?;
    let source_digest = src.root()?.digest().clone();
    let mut plan = plan::plan(src, opts)?;
    opts.cancel.check()?;
    if opts.referrers || opts.digest_tags {
        // The documents written as they are (a platform subset's new index has no referrers).
        let built_root = plan.root.is_index() && plan.root.digest() != &source_digest;
        let mut subjects: Vec<Digest> = plan.children.iter().map(|d| d.digest().clone()).collect();
        if !built_root {
            subjects.push(plan.root.digest().clone());
        }
        if opts.referrers {
            plan.referrers =
                referrers::plan(src, &subjects, &opts.referrers_filter, &mut plan.blobs)?;
        }
        if opts.digest_tags {
            let tagged =
                referrers::plan_digest_tags(src, &subjects, plan.referrers.len(), &mut plan.blobs)?;
            plan.referrers.extend(tagged);
        }
        if !plan.referrers.is_empty() && !dst.holds_referrers() {
            return Err(Error::Unsupported(format!(
                "--referrers/--digest-tags: {} cannot hold the {} referrers of {}",
                dst.name(),
                plan.referrers.len(),
                src.name()
            )));
        }
    }
    let referrers = std::mem::take(&mut plan.referrers);
    if !referrers.is_empty() && needed(&plan.documents(), dst, &opts.convert) {
        return Err(Error::Unsupported(format!(
            "--referrers/--digest-tags: copying {} to {} converts documents that {} referrers name by digest; \
             copy without a format or compression change",
            src.name(),
            dst.name(),
            referrers.len()
        )));
    }
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
    let (children, root, outcomes) = if needed(&plan.documents(), dst, &opts.convert) {
        // The one extension point for conversions: format changes and layer recompression.
        let layers = actions::plan_layers(src, dst, &plan.documents(), &opts.convert)?;
        commit::check_converted(&plan, &layers, dst, opts)?;
        let done = transfer::transfer(src, dst, &plan.blobs, &layers, opts)?;
        let (children, root) = commit::rebuild(plan, &done.updates, dst, opts)?;
        (children, root, done.outcomes)
    } else {
        commit::check_as_is(&plan, dst)?;
        let done = transfer::transfer(src, dst, &plan.blobs, &Default::default(), opts)?;
        (plan.children, plan.root, done.outcomes)
    };
    // The last point to stop: once the root is committed, the copy is done.
    opts.cancel.check()?;
    commit::commit(dst, &children, &root)?;
    for r in &referrers {
        for child in &r.children {
            dst.put_document(child)?;
        }
        match &r.tag {
            Some(tag) => dst.commit_tagged(tag, &r.doc)?,
            None => dst.commit_referrer(&r.doc)?,
        }
    }
    let mut report = CopyReport::new(&root, source_digest, &outcomes);
    report.referrers = referrers.len();
    Ok(report)
}
