//! Sync: many images from one place into another, as `skopeo sync` does.
//!
//! `SyncSource --(list: registry tags, YAML file, directory walk, layout tags)--> plan of (source ref,
//! destination ref) --(each image: up to date? else crate::copy::copy)--> SyncReport`.
//!
//! Destination names follow skopeo's rule: each source image has a *suffix*, its full name
//! (`registry.example.com/team/app:v1`, or for `--src dir` its path below the source directory), cut
//! to the last `/`-separated part unless `scoped` (`app:v1`). The image goes to `NAMESPACE/SUFFIX`
//! in a registry, to the `dir:` directory `DIR/SUFFIX`, or into one OCI layout tagged `SUFFIX`.
//!
//! Before copying, the digest the destination holds under that name is compared with the source's
//! root digest (after platform selection): equal means the image is up to date and it is skipped
//! without touching the destination. Registries are asked with `HEAD` (`Docker-Content-Digest`),
//! never a manifest `GET`, for the destination, and for the source when its root is copied as it is
//! (`--all`, or a single-manifest image), so a no-op sync spends no pull quota. An image whose manifest a copy converts (a Docker manifest into
//! an OCI layout, `--format`) never compares equal, so it is copied again; its blobs are then found
//! present and not transferred again. Images are copied one after the other, each through
//! [`crate::copy::copy`]; the first failure stops the sync unless [`SyncOptions::keep_going`].

use std::path::{Component, Path, PathBuf};

use crate::copy::{CopyOptions, CopyReport, PlatformChoice, copy};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{ImageName, LayoutRef, TransportRef, names_tag_or_digest};
use crate::transport::{OpenOptions, Source, open_destination, open_source};

/// Where a sync reads images (skopeo's `--src`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncSource {
    /// `--src docker`: a registry repository (`HOST/REPO`: every tag) or one image (`REPO:TAG`,
    /// `REPO@DIGEST`). A `docker://` prefix is allowed.
    Docker(String),
    /// `--src yaml`: a YAML file in skopeo's format (registry -> `images`, `images-by-tag-regex`,
    /// `credentials`, `tls-verify`, `cert-dir`).
    #[cfg(feature = "registry")]
    Yaml(PathBuf),
    /// `--src dir`: a directory tree in which every directory holding a `manifest.json` is a `dir:` image.
    Dir(PathBuf),
    /// `--src oci`: every tagged image (`org.opencontainers.image.ref.name`) of one OCI layout.
    Oci(PathBuf),
}

/// Where a sync writes images (skopeo's `--dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncDestination {
    /// `--dest docker`: a registry namespace (`HOST[:PORT][/PATH]`); each image becomes `NAMESPACE/SUFFIX`.
    Docker(String),
    /// `--dest dir`: a directory; each image becomes the `dir:` directory `DIR/SUFFIX`.
    Dir(PathBuf),
    /// `--dest oci`: one OCI layout holding every image, each tagged `SUFFIX` (e.g. `app:v1`).
    Oci(PathBuf),
}

/// Options of a sync.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SyncOptions {
    /// How each image is copied (platforms, jobs, conversions, progress). Its
    /// [`CopyOptions::cancel`] stops the whole sync: the image being copied fails with
    /// [`Error::Cancelled`] (even with `keep_going`) and no later image is started.
    pub copy: CopyOptions,
    /// Options for opening sources (a YAML file's per-registry settings override them).
    pub source: OpenOptions,
    /// Options for opening the destination.
    pub destination: OpenOptions,
    /// Keep the source's full name in the destination name (skopeo's `--scoped`).
    pub scoped: bool,
    /// Go on after an image (or a repository's tag list) fails, and report every failure at the end.
    pub keep_going: bool,
    /// Decide what would be copied and skipped, but write nothing.
    pub dry_run: bool,
}

/// One image to sync: where it comes from and where it goes.
#[derive(Debug, Clone)]
pub struct SyncItem {
    /// The source image.
    pub source: TransportRef,
    /// Options for opening it (the sync's, with a YAML registry's settings applied).
    pub source_options: OpenOptions,
    /// The destination image.
    pub destination: TransportRef,
}

/// What happened to one image.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Copied; the copy engine's report.
    Copied(CopyReport),
    /// The destination already held this digest under the image's name: nothing was done.
    UpToDate(Digest),
    /// Dry run: the image would be copied.
    WouldCopy,
    /// The image (or listing a repository's tags) failed.
    Failed(Error),
}

/// One image of a sync and its outcome.
#[derive(Debug)]
pub struct ImageResult {
    /// The source, as a transport reference (a repository for a failed tag listing).
    pub source: String,
    /// The destination, as a transport reference (empty when the source could not be listed).
    pub destination: String,
    /// What happened.
    pub outcome: Outcome,
}

/// What a sync did, image by image, in order.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Every image handled (and every repository that could not be listed).
    pub images: Vec<ImageResult>,
    /// True when a failure stopped the sync before every image was handled.
    pub stopped: bool,
}

impl SyncReport {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.images.iter().filter(|i| f(&i.outcome)).count()
    }
    /// Images copied.
    pub fn copied(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Copied(_)))
    }
    /// Images skipped because the destination was up to date.
    pub fn up_to_date(&self) -> usize {
        self.count(|o| matches!(o, Outcome::UpToDate(_)))
    }
    /// Images a dry run would copy.
    pub fn would_copy(&self) -> usize {
        self.count(|o| matches!(o, Outcome::WouldCopy))
    }
    /// Images (and tag listings) that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
}

/// The images of a source, planned against a destination, with the listings that failed (only with
/// [`SyncOptions::keep_going`]; otherwise the first failure is the error).
#[derive(Debug, Default)]
pub struct Plan {
    /// The images to sync, in order.
    pub items: Vec<SyncItem>,
    /// Repositories whose tags could not be listed.
    pub failures: Vec<ImageResult>,
}

fn image_error(image: impl Into<String>, source: Error) -> Error {
    Error::Image {
        image: image.into(),
        source: Box::new(source),
    }
}

/// Go's `path.Base` for the names skopeo builds: the part after the last `/`.
fn base(suffix: &str) -> &str {
    let trimmed = suffix.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

fn strip_docker(text: &str) -> &str {
    text.strip_prefix("docker://").unwrap_or(text)
}

/// The destination reference for a source image with this suffix.
fn destination_ref(dest: &SyncDestination, suffix: &str) -> Result<TransportRef> {
    let suffix = suffix.trim_start_matches('/');
    match dest {
        SyncDestination::Docker(ns) => {
            let ns = strip_docker(ns).trim_end_matches('/');
            Ok(TransportRef::Docker(ImageName::parse(&format!(
                "{ns}/{suffix}"
            ))?))
        }
        SyncDestination::Dir(root) => {
            let rel = Path::new(suffix);
            if suffix.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(Error::InvalidReference {
                    reference: suffix.to_string(),
                    reason: format!(
                        "cannot be a directory name below {} (empty, absolute or with ..)",
                        root.display()
                    ),
                });
            }
            Ok(TransportRef::Dir {
                path: root.join(rel),
            })
        }
        SyncDestination::Oci(root) => {
            crate::reference::check_tag(suffix, crate::reference::TagGrammar::LayoutRefName)?;
            Ok(TransportRef::Oci {
                path: root.clone(),
                reference: Some(LayoutRef::Tag(suffix.to_string())),
            })
        }
    }
}

fn docker_item(
    name: ImageName,
    source_options: &OpenOptions,
    dest: &SyncDestination,
    scoped: bool,
) -> Result<SyncItem> {
    let full = name.to_string();
    let suffix = if scoped { full.as_str() } else { base(&full) };
    Ok(SyncItem {
        destination: destination_ref(dest, suffix)?,
        source: TransportRef::Docker(name),
        source_options: source_options.clone(),
    })
}

/// The tags of a registry repository, as images.
fn repository_images(repo: &ImageName, opts: &OpenOptions) -> Result<Vec<ImageName>> {
    let source = open_source(&TransportRef::Docker(repo.clone()), opts)?;
    let mut out = Vec::new();
    for tag in source.tags()? {
        let mut name = repo.clone();
        name.tag = Some(tag);
        name.digest = None;
        out.push(name);
    }
    if out.is_empty() {
        return Err(Error::NotFound {
            reference: "any tag".into(),
            location: repo.name(),
            hint: "; the repository has no images to sync".into(),
        });
    }
    Ok(out)
}

/// Parses `--src docker`'s argument: the repository and whether it names one image.
fn parse_docker_source(text: &str) -> Result<(ImageName, bool)> {
    let text = strip_docker(text);
    Ok((ImageName::parse(text)?, names_tag_or_digest(text)))
}

/// Lists the images of `source` and where each goes in `dest`.
pub fn plan(source: &SyncSource, dest: &SyncDestination, opts: &SyncOptions) -> Result<Plan> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| plan(source, dest, opts));
    }
    if let (SyncSource::Dir(_), SyncDestination::Dir(_)) = (source, dest) {
        return Err(Error::Unsupported(
            "sync from dir to dir is not supported (as in skopeo); copy the directories instead"
                .into(),
        ));
    }
    let mut plan = Plan::default();
    match source {
        SyncSource::Docker(text) => {
            let (name, one) = parse_docker_source(text)?;
            let images = if one {
                vec![name]
            } else {
                repository_images(&name, &opts.source)
                    .map_err(|e| image_error(format!("docker://{}", name.name()), e))?
            };
            for n in images {
                plan.items
                    .push(docker_item(n, &opts.source, dest, opts.scoped)?);
            }
        }
        #[cfg(feature = "registry")]
        SyncSource::Yaml(path) => yaml::plan(path, dest, opts, &mut plan)?,
        SyncSource::Dir(root) => {
            let images = dir_images(root)?;
            if images.is_empty() {
                return Err(Error::NotFound {
                    reference: "any image (a directory with a manifest.json)".into(),
                    location: root.display().to_string(),
                    hint: String::new(),
                });
            }
            for image in images {
                let rel = image
                    .strip_prefix(root)
                    .ok()
                    .and_then(Path::to_str)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string);
                let full = match rel {
                    Some(r) => r,
                    None => root
                        .file_name()
                        .and_then(|n| n.to_str())
                        .map(str::to_string)
                        .ok_or_else(|| Error::InvalidReference {
                            reference: root.display().to_string(),
                            reason: "the directory has no usable UTF-8 name".into(),
                        })?,
                };
                let suffix = if opts.scoped {
                    full.as_str()
                } else {
                    base(&full)
                };
                plan.items.push(SyncItem {
                    destination: destination_ref(dest, suffix)?,
                    source: TransportRef::Dir { path: image },
                    source_options: opts.source.clone(),
                });
            }
        }
        SyncSource::Oci(root) => {
            let layout = crate::layout::Layout::open(root)?;
            let tags = layout.tags()?;
            if tags.is_empty() {
                return Err(Error::NotFound {
                    reference: "any tagged image".into(),
                    location: format!("oci:{}", root.display()),
                    hint: String::new(),
                });
            }
            for (tag, _) in tags {
                let suffix = if opts.scoped {
                    tag.as_str()
                } else {
                    base(&tag)
                };
                plan.items.push(SyncItem {
                    destination: destination_ref(dest, suffix)?,
                    source: TransportRef::Oci {
                        path: root.clone(),
                        reference: Some(LayoutRef::Tag(tag.clone())),
                    },
                    source_options: opts.source.clone(),
                });
            }
        }
    }
    Ok(plan)
}

/// Every directory below `root` (or `root` itself) holding a `manifest.json`, in name order; the
/// walk does not descend into an image, and follows no symlinks.
fn dir_images(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Err(Error::NotFound {
            reference: "source directory".into(),
            location: root.display().to_string(),
            hint: String::new(),
        });
    }
    let mut out = Vec::new();
    let mut walk = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .follow_links(false)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| Error::Other(format!("walking {}: {e}", root.display())))?;
        if entry.file_type().is_dir() && entry.path().join("manifest.json").is_file() {
            out.push(entry.path().to_path_buf());
            walk.skip_current_dir();
        }
    }
    Ok(out)
}

/// The digest the destination will hold after a copy without conversion: the source's root, or the
/// manifest chosen from its index. `None` when that is not known without copying (a platform subset).
fn expected_digest(src: &dyn Source, opts: &CopyOptions) -> Result<Option<Digest>> {
    let root = src.root()?;
    if !root.is_index() || opts.index_only {
        return Ok(Some(root.digest().clone()));
    }
    // The copy plan's own platform choice (crate::copy::plan), so sync expects what copy writes.
    Ok(
        match crate::copy::chosen_manifest(src, &root, &opts.platforms)? {
            Some(manifest) => Some(manifest.digest().clone()),
            None if opts.platforms == PlatformChoice::All => Some(root.digest().clone()),
            None => None,
        },
    )
}

/// The digest the destination holds under the item's name, if any (any failure to read it means no).
fn existing_digest(dest: &TransportRef, opts: &OpenOptions) -> Option<Digest> {
    match open_source(dest, opts).and_then(|s| s.root()) {
        Ok(doc) => Some(doc.digest().clone()),
        Err(e) => {
            tracing::debug!("{dest}: nothing to compare with ({e})");
            None
        }
    }
}

/// A registry image's root digest and media type from a `HEAD` (no pull quota): `None` when it
/// cannot be asked so (not a registry, or the registry would not say), `Some(None)` when absent.
#[allow(unused_variables)]
fn head_root(r: &TransportRef, opts: &OpenOptions, pull: bool) -> Option<Option<(Digest, String)>> {
    #[cfg(feature = "registry")]
    if let Some(name) = r.registry_image() {
        return match crate::transport::registry::pull::head_root(name, opts, pull) {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::debug!("{r}: no digest from HEAD ({e})");
                None
            }
        };
    }
    None
}

fn sync_one(item: &SyncItem, opts: &SyncOptions) -> Result<Outcome> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| sync_one(item, opts));
    }
    // Registries are asked with HEAD (Docker-Content-Digest) first, so that a no-op sync reads no
    // manifest: equal digests mean up to date when the copy would write the root as it is (the
    // whole image, or a root that is a single manifest).
    // The destination as a push sees it (registries.conf location, never a mirror).
    let dest_head = head_root(&item.destination, &opts.destination, false);
    // With referrers asked for, an image already there is copied again (its blobs are found
    // present), so that referrers and digest tags added since travel too.
    let carries_referrers = opts.copy.referrers || opts.copy.digest_tags;
    if !carries_referrers
        && let Some(Some((dest_digest, _))) = &dest_head
        && let Some(Some((src_digest, src_type))) =
            head_root(&item.source, &item.source_options, true)
        && &src_digest == dest_digest
        && (opts.copy.index_only
            || matches!(opts.copy.platforms, PlatformChoice::All)
            || (crate::media_type::is_document(&src_type)
                && src_type != crate::media_type::OCI_INDEX
                && src_type != crate::media_type::DOCKER_MANIFEST_LIST))
    {
        return Ok(Outcome::UpToDate(src_digest));
    }
    let src = open_source(&item.source, &item.source_options)?;
    let expected = expected_digest(src.as_ref(), &opts.copy)?;
    if let Some(expected) = expected {
        let existing = match dest_head {
            Some(found) => found.map(|(d, _)| d),
            None => existing_digest(&item.destination, &opts.destination),
        };
        if existing.as_ref() == Some(&expected) && !carries_referrers {
            return Ok(Outcome::UpToDate(expected));
        }
    }
    if opts.dry_run {
        return Ok(Outcome::WouldCopy);
    }
    let dst = open_destination(&item.destination, &opts.destination)?;
    Ok(Outcome::Copied(copy(
        src.as_ref(),
        dst.as_ref(),
        &opts.copy,
    )?))
}

/// Syncs the planned images in order, calling `on_image` after each. Without
/// [`SyncOptions::keep_going`] the first failure ends the sync (`stopped`).
pub fn run(plan: Plan, opts: &SyncOptions, on_image: &dyn Fn(&ImageResult)) -> SyncReport {
    let mut report = SyncReport::default();
    for failure in plan.failures {
        on_image(&failure);
        report.images.push(failure);
    }
    for item in &plan.items {
        if opts.copy.cancel.is_cancelled() {
            report.stopped = true;
            break;
        }
        let outcome = sync_one(item, opts).unwrap_or_else(Outcome::Failed);
        let failed = matches!(outcome, Outcome::Failed(_));
        let cancelled = matches!(&outcome, Outcome::Failed(e) if e.is_cancelled());
        let result = ImageResult {
            source: item.source.to_string(),
            destination: item.destination.to_string(),
            outcome,
        };
        on_image(&result);
        report.images.push(result);
        if cancelled || (failed && !opts.keep_going) {
            report.stopped = report.images.len() < plan.items.len();
            break;
        }
    }
    report
}

/// Plans and runs a sync. Errors are those of planning (an unreadable YAML file, a repository whose
/// tags cannot be listed without `keep_going`); image failures are in the report.
///
/// ```no_run
/// use hoist::{SyncDestination, SyncOptions, SyncSource};
/// let report = hoist::sync(
///     &SyncSource::Oci("/tmp/layout".into()),
///     &SyncDestination::Dir("/tmp/mirror".into()),
///     &SyncOptions::default(),
///     &|image| eprintln!("{} -> {}", image.source, image.destination),
/// )?;
/// println!("{} copied, {} up to date, {} failed", report.copied(), report.up_to_date(), report.failed());
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn sync(
    source: &SyncSource,
    dest: &SyncDestination,
    opts: &SyncOptions,
    on_image: &dyn Fn(&ImageResult),
) -> Result<SyncReport> {
    let plan = plan(source, dest, opts)?;
    Ok(run(plan, opts, on_image))
}

/// Bounds on a YAML text checked before it is loaded: serde_norway parses a whole document into
/// events first (libyaml's scanner slows quadratically with nesting, 34 s for 100k levels) and
/// replays an alias's events at each use (a 94 KB file of aliases reused across registries expanded
/// to 7.9 GB). This walks libyaml's event stream (serde_norway's own parser, through its event API,
/// the only one the crate offers) and stops at the first level past `max_depth`, or once aliases
/// have added more than `max_alias_nodes` nodes to what the text itself holds.
#[cfg(feature = "registry")]
mod yaml_bounds {
    use std::collections::HashMap;
    use std::ffi::CStr;
    use std::mem::MaybeUninit;

    use unsafe_libyaml_norway as unsafe_sys;

    /// A libyaml parser over a borrowed text; the box keeps it in place (it points into itself).
    struct Parser<'a> {
        sys: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
        _input: &'a [u8],
    }

    impl<'a> Parser<'a> {
        fn new(input: &'a [u8]) -> Option<Self> {
            let mut sys = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
            // SAFETY: initialize writes the whole struct; the input outlives the parser (`'a`).
            unsafe {
                let p = sys.as_mut_ptr();
                if unsafe_sys::yaml_parser_initialize(p).fail {
                    return None;
                }
                unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
                unsafe_sys::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
            }
            Some(Parser { sys, _input: input })
        }

        /// The next event, reduced to what the bounds need; `Err` on a syntax error (left to
        /// serde_norway to report with its position). Not called again after `End` or `Err`.
        fn next(&mut self) -> Result<Event, ()> {
            let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
            // SAFETY: the parser was initialised; a parsed event is read, then deleted once.
            unsafe {
                let p = self.sys.as_mut_ptr();
                let e = event.as_mut_ptr();
                if unsafe_sys::yaml_parser_parse(p, e).fail {
                    return Err(());
                }
                let anchor = |ptr: *const u8| {
                    (!ptr.is_null()).then(|| CStr::from_ptr(ptr.cast()).to_bytes().to_vec())
                };
                let out = match (*e).type_ {
                    // After the end (or an error) libyaml answers with no event.
                    unsafe_sys::YAML_STREAM_END_EVENT | unsafe_sys::YAML_NO_EVENT => Event::End,
                    unsafe_sys::YAML_ALIAS_EVENT => Event::Alias(anchor((*e).data.alias.anchor)),
                    unsafe_sys::YAML_SCALAR_EVENT => Event::Scalar(anchor((*e).data.scalar.anchor)),
                    unsafe_sys::YAML_SEQUENCE_START_EVENT => {
                        Event::Start(anchor((*e).data.sequence_start.anchor))
                    }
                    unsafe_sys::YAML_MAPPING_START_EVENT => {
                        Event::Start(anchor((*e).data.mapping_start.anchor))
                    }
                    unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                        Event::Close
                    }
                    _ => Event::Other,
                };
                unsafe_sys::yaml_event_delete(e);
                Ok(out)
            }
        }
    }

    impl Drop for Parser<'_> {
        fn drop(&mut self) {
            // SAFETY: initialised in `new` (a parser that failed to initialise is never built).
            unsafe { unsafe_sys::yaml_parser_delete(self.sys.as_mut_ptr()) }
        }
    }

    enum Event {
        Start(Option<Vec<u8>>),
        Close,
        Scalar(Option<Vec<u8>>),
        Alias(Option<Vec<u8>>),
        Other,
        End,
    }

    /// Checks `text`'s nesting and alias expansion; the error says which bound was passed.
    pub(super) fn check(text: &str, max_depth: usize, max_alias_nodes: u64) -> Result<(), String> {
        let Some(mut parser) = Parser::new(text.as_bytes()) else {
            return Ok(());
        };
        // Nodes so far with aliases expanded, and those aliases added; each open collection with
        // its anchor and the count at its start; each anchor's expanded size.
        let (mut nodes, mut added) = (0u64, 0u64);
        let mut open: Vec<(Option<Vec<u8>>, u64)> = Vec::new();
        let mut sizes: HashMap<Vec<u8>, u64> = HashMap::new();
        loop {
            let event = match parser.next() {
                Ok(e) => e,
                Err(()) => return Ok(()),
            };
            match event {
                Event::End => return Ok(()),
                Event::Other => {}
                Event::Start(anchor) => {
                    open.push((anchor, nodes));
                    nodes += 1;
                    if open.len() > max_depth {
                        return Err(format!("nested deeper than {max_depth} levels"));
                    }
                }
                Event::Close => {
                    if let Some((Some(anchor), start)) = open.pop() {
                        sizes.insert(anchor, nodes - start);
                    }
                }
                Event::Scalar(anchor) => {
                    nodes += 1;
                    if let Some(a) = anchor {
                        sizes.insert(a, 1);
                    }
                }
                Event::Alias(anchor) => {
                    let size = anchor.and_then(|a| sizes.get(&a).copied()).unwrap_or(1);
                    nodes += size;
                    added += size;
                    if added > max_alias_nodes {
                        return Err(format!(
                            "excessive aliasing: aliases expand to more than {max_alias_nodes} nodes"
                        ));
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::check;

        #[test]
        fn deep_nesting_is_refused_at_the_bound() {
            let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
            let t = std::time::Instant::now();
            let e = check(&deep, 32, 1000).unwrap_err();
            assert!(e.contains("deeper than 32"), "{e}");
            // Stopped at the bound, not after scanning 100k levels (seconds): a generous margin.
            assert!(t.elapsed() < std::time::Duration::from_secs(2));
            let block = "a:\n  b:\n    c: [x, {d: y}]\n";
            assert_eq!(check(block, 5, 1000), Ok(()));
            assert!(check(block, 4, 1000).is_err());
        }

        #[test]
        fn aliases_are_counted_as_expanded() {
            // Each level doubles: 2^20 nodes from a few hundred bytes.
            let mut text = String::from("l0: &l0 [x, x]\n");
            for i in 1..=20 {
                text.push_str(&format!("l{i}: &l{i} [*l{}, *l{}]\n", i - 1, i - 1));
            }
            let e = check(&text, 32, 1_000_000).unwrap_err();
            assert!(e.contains("excessive aliasing"), "{e}");
            // A few aliases are fine, and plain text is never refused by the alias bound.
            assert_eq!(check("a: &a [x, y]\nb: *a\nc: *a\n", 32, 10), Ok(()));
            assert!(check("a: &a [x, y]\nb: *a\nc: *a\nd: *a\nf: *a\n", 32, 10).is_err());
            let plain: String = (0..100).map(|i| format!("k{i}: v\n")).collect();
            assert_eq!(check(&plain, 32, 0), Ok(()));
        }
    }
}

#[cfg(feature = "registry")]
mod yaml {
    //! skopeo's YAML source format.

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use serde::Deserialize;

    use super::{ImageResult, Outcome, Plan, SyncDestination, SyncOptions, docker_item};
    use crate::digest::Digest;
    use crate::error::{Error, Result};
    use crate::reference::{ImageName, is_valid_tag, names_tag_or_digest};
    use crate::transport::{Credentials, OpenOptions};

    /// Files larger than this are refused (a sync list is small).
    const MAX_YAML: u64 = 4 << 20;
    /// The deepest nesting of a sync file (skopeo's format needs four levels).
    const MAX_YAML_DEPTH: usize = 32;
    /// The most nodes aliases may add to a sync file (a 4 MiB file holds about a million of its own).
    const MAX_ALIAS_NODES: u64 = 1_000_000;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct YamlCredentials {
        username: String,
        #[serde(default)]
        password: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RegistryConfig {
        #[serde(default)]
        images: BTreeMap<String, Option<Vec<String>>>,
        #[serde(default, rename = "images-by-tag-regex")]
        images_by_tag_regex: BTreeMap<String, String>,
        #[serde(default)]
        credentials: Option<YamlCredentials>,
        #[serde(default, rename = "tls-verify")]
        tls_verify: Option<bool>,
        #[serde(default, rename = "cert-dir")]
        cert_dir: Option<PathBuf>,
    }

    /// A YAML error about `credentials` with the string values it quotes (`invalid type: string
    /// "me:secret"`) left out: a password written in the wrong shape is never echoed.
    pub(super) fn without_secrets(message: &str) -> String {
        if !message.contains("credentials") {
            return message.to_string();
        }
        let mut out = String::new();
        let mut rest = message;
        while let Some(i) = rest.find("string \"") {
            out.push_str(&rest[..i]);
            out.push_str("a string");
            // Skip to the closing quote (serde writes the value Debug-escaped).
            let mut chars = rest[i + 8..].char_indices();
            let mut end = rest.len() - i - 8;
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = j + 1;
                        break;
                    }
                    _ => {}
                }
            }
            rest = &rest[i + 8 + end..];
        }
        out.push_str(rest);
        out
    }

    fn bad(path: &Path, reason: impl Into<String>) -> Error {
        Error::invalid_document(format!("sync file {}", path.display()), reason)
    }

    fn repository(path: &Path, registry: &str, image: &str) -> Result<ImageName> {
        let text = format!("{registry}/{image}");
        if names_tag_or_digest(&text) {
            return Err(bad(
                path,
                format!("{text:?} names a tag or digest; list tags under the repository instead"),
            ));
        }
        let name = ImageName::parse(&text).map_err(|e| bad(path, e.to_string()))?;
        Ok(name)
    }

    /// Adds the images a YAML file lists to `plan`.
    pub(super) fn plan(
        path: &Path,
        dest: &SyncDestination,
        opts: &SyncOptions,
        plan: &mut Plan,
    ) -> Result<()> {
        use std::io::Read;
        let file = crate::durable::open_regular(path, false)
            .map_err(|e| Error::io(format!("opening sync file {}", path.display()), e))?;
        let mut text = String::new();
        file.take(MAX_YAML + 1)
            .read_to_string(&mut text)
            .map_err(|e| Error::io(format!("reading sync file {}", path.display()), e))?;
        if text.len() as u64 > MAX_YAML {
            return Err(bad(path, "larger than 4 MiB"));
        }
        super::yaml_bounds::check(&text, MAX_YAML_DEPTH, MAX_ALIAS_NODES)
            .map_err(|e| bad(path, e))?;
        let config: BTreeMap<String, RegistryConfig> = serde_norway::from_str(&text)
            .map_err(|e| bad(path, without_secrets(&e.to_string())))?;
        if config.is_empty() {
            return Err(bad(path, "it lists no registries"));
        }
        for (registry, cfg) in &config {
            let mut ropts: OpenOptions = opts.source.clone();
            if let Some(v) = cfg.tls_verify {
                ropts.tls_verify = Some(v);
            }
            ropts.tls_verify_flag = Some(format!(
                "tls-verify: false under {registry} in the sync file, or --src-tls-verify"
            ));
            if let Some(d) = &cfg.cert_dir {
                ropts.cert_dir = Some(d.clone());
            }
            if let Some(c) = &cfg.credentials {
                ropts.creds = Some(Credentials::new(&c.username, &c.password));
            }
            if cfg.images.is_empty() && cfg.images_by_tag_regex.is_empty() {
                return Err(bad(
                    path,
                    format!("registry {registry:?} lists no images or images-by-tag-regex"),
                ));
            }
            // Fully validated before any registry is asked anything.
            let mut wanted: Vec<(ImageName, Option<Vec<ImageName>>, Option<regex::Regex>)> =
                Vec::new();
            for (image, refs) in &cfg.images {
                let repo = repository(path, registry, image)?;
                let refs = refs.as_deref().unwrap_or_default();
                if refs.is_empty() {
                    wanted.push((repo, None, None));
                    continue;
                }
                let mut names = Vec::new();
                for r in refs {
                    let mut n = repo.clone();
                    if let Ok(d) = Digest::parse(r) {
                        n.tag = None;
                        n.digest = Some(d);
                    } else if is_valid_tag(r) {
                        n.tag = Some(r.clone());
                    } else {
                        return Err(bad(
                            path,
                            format!("{r:?} of {registry}/{image} is neither a tag nor a digest"),
                        ));
                    }
                    names.push(n);
                }
                wanted.push((repo, Some(names), None));
            }
            for (image, pattern) in &cfg.images_by_tag_regex {
                let repo = repository(path, registry, image)?;
                let re = regex::Regex::new(pattern).map_err(|e| {
                    bad(
                        path,
                        format!("images-by-tag-regex of {registry}/{image}: {e}"),
                    )
                })?;
                wanted.push((repo, None, Some(re)));
            }
            for (repo, names, filter) in wanted {
                let names = match names {
                    Some(n) => n,
                    None => match super::repository_images(&repo, &ropts) {
                        Ok(all) => all
                            .into_iter()
                            .filter(|n| {
                                filter.as_ref().is_none_or(|re| {
                                    n.tag.as_deref().is_some_and(|t| re.is_match(t))
                                })
                            })
                            .collect(),
                        Err(e) if opts.keep_going => {
                            plan.failures.push(ImageResult {
                                source: format!("docker://{}", repo.name()),
                                destination: String::new(),
                                outcome: Outcome::Failed(e),
                            });
                            continue;
                        }
                        Err(e) => {
                            return Err(super::image_error(format!("docker://{}", repo.name()), e));
                        }
                    },
                };
                for n in names {
                    plan.items.push(docker_item(n, &ropts, dest, opts.scoped)?);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "registry")]
    #[test]
    fn credentials_in_a_yaml_error_are_not_echoed() {
        let m = yaml::without_secrets(
            r#"r.example.credentials: invalid type: string "me:s3\"cret", expected struct YamlCredentials at line 2"#,
        );
        assert!(!m.contains("s3"), "{m}");
        assert!(
            m.contains("invalid type: a string, expected struct YamlCredentials at line 2"),
            "{m}"
        );
        let other = r#"r.example.tls-verify: invalid type: string "yes", expected a boolean"#;
        assert_eq!(yaml::without_secrets(other), other);
    }

    #[test]
    fn suffixes_follow_skopeo() {
        assert_eq!(base("127.0.0.1:5000/team/app:v1"), "app:v1");
        assert_eq!(base("app@sha256:00"), "app@sha256:00");
        let d = SyncDestination::Dir(PathBuf::from("/out"));
        assert_eq!(
            destination_ref(&d, "app:v1").unwrap(),
            TransportRef::Dir {
                path: PathBuf::from("/out/app:v1")
            }
        );
        assert!(destination_ref(&d, "../x").is_err());
        let r = SyncDestination::Docker("docker://127.0.0.1:5000/mirror/".into());
        assert_eq!(
            destination_ref(&r, "app:v1").unwrap().to_string(),
            "docker://127.0.0.1:5000/mirror/app:v1"
        );
        let o = SyncDestination::Oci(PathBuf::from("/l"));
        assert_eq!(
            destination_ref(&o, "registry.example/app:v1").unwrap(),
            TransportRef::Oci {
                path: PathBuf::from("/l"),
                reference: Some(LayoutRef::Tag("registry.example/app:v1".into()))
            }
        );
    }

    #[test]
    fn docker_source_names_a_repository_or_an_image() {
        assert!(!parse_docker_source("127.0.0.1:5000/team/app").unwrap().1);
        assert!(
            parse_docker_source("docker://127.0.0.1:5000/team/app:v1")
                .unwrap()
                .1
        );
        let pinned = format!("busybox@sha256:{}", "0".repeat(64));
        assert!(parse_docker_source(&pinned).unwrap().1);
    }
}
