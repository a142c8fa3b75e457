//! The plan of a copy: which root to write (the platform choice: one image of an index, a subset of
//! it, or all of it) and, walked with the one index walker ([`crate::walk`]), the documents to store
//! (children before parents) and the unique blobs to bring over. Sync uses the same choice to know
//! what a copy would write.

use std::collections::HashSet;

use serde_json::Value;

use super::{CopyOptions, PlatformChoice};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::{Document, Parsed};
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::transport::Source;
use crate::walk::{self, Visitor};

/// The documents and blobs of one copy, in the order they must be written.
pub(super) struct Plan {
    pub(super) root: Document,
    /// Manifests and nested indexes, children before parents.
    pub(super) children: Vec<Document>,
    /// Unique blobs (configs and layers, and the referrers' blobs).
    pub(super) blobs: Vec<Descriptor>,
    /// Referrers to write after the root, each after its subject (`copy --referrers`).
    pub(super) referrers: Vec<super::referrers::Referrer>,
}

impl Plan {
    /// Every document, children first and the root last.
    pub(super) fn documents(&self) -> Vec<&Document> {
        self.children.iter().chain([&self.root]).collect()
    }
}

/// The manifest a copy of `root` writes as its root when `choice` picks one image of an index
/// (`None` when it keeps an index or `root` is a single manifest).
pub(crate) fn chosen_manifest(
    src: &dyn Source,
    root: &Document,
    choice: &PlatformChoice,
) -> Result<Option<Document>> {
    if !root.is_index() {
        return Ok(None);
    }
    Ok(match choice {
        PlatformChoice::Host => Some(walk::follow(src, root.clone(), &Platform::host())?),
        PlatformChoice::One(p) => Some(walk::follow(src, root.clone(), p)?),
        PlatformChoice::All | PlatformChoice::Subset(_) => None,
    })
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

/// The root a copy writes: the platform choice applied to the source's root.
fn choose_root(src: &dyn Source, source_root: Document, opts: &CopyOptions) -> Result<Document> {
    if let Some(manifest) = chosen_manifest(src, &source_root, &opts.platforms)? {
        return Ok(manifest);
    }
    if source_root.is_index() {
        let PlatformChoice::Subset(platforms) = &opts.platforms else {
            return Ok(source_root);
        };
        let index = source_root.index()?;
        let mut keep = Vec::new();
        for p in platforms {
            keep.push(digest_of(&walk::choose(&index, p)?)?);
        }
        // buildx's attestation manifests of the kept platforms stay; those of dropped ones go.
        let kept: HashSet<String> = keep.iter().map(ToString::to_string).collect();
        for entry in index.manifests() {
            if crate::referrers::attests(entry).is_some_and(|d| kept.contains(&d)) {
                keep.push(digest_of(entry)?);
            }
        }
        return filter_index(&source_root, &keep);
    }
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
    Ok(source_root)
}

/// Plans the copy `opts` asks for from `src`.
pub(super) fn plan(src: &dyn Source, opts: &CopyOptions) -> Result<Plan> {
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
            referrers: Vec::new(),
        });
    }
    let root = choose_root(src, source_root, opts)?;
    let mut collect = Collect::default();
    walk::walk(src, &root, &mut collect)?;
    Ok(Plan {
        root,
        children: collect.children,
        blobs: collect.blobs,
        referrers: Vec::new(),
    })
}

/// The platform a single image's config names (`None` for an artifact whose config is not an image
/// config).
fn image_platform(src: &dyn Source, manifest: &Document) -> Result<Option<Platform>> {
    let Parsed::Manifest(m) = manifest.parse()? else {
        return Ok(None);
    };
    Ok(crate::image::image_config(src, &m)?.map(|config| {
        Platform::new(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref(),
        )
    }))
}

/// The walk's visitor for a copy: the first problem stops it; documents and unique blobs collected.
#[derive(Default)]
pub(super) struct Collect {
    pub(super) children: Vec<Document>,
    pub(super) blobs: Vec<Descriptor>,
    seen_blobs: HashSet<Digest>,
}

impl Collect {
    fn add_blob(&mut self, d: &Descriptor) -> Result<()> {
        if self.seen_blobs.insert(digest_of(d)?) {
            self.blobs.push(d.clone());
        }
        Ok(())
    }
}

impl Visitor for Collect {
    fn problem(&mut self, _subject: String, _digest: Option<&Digest>, err: Error) -> Result<()> {
        Err(err)
    }

    fn manifest(&mut self, _doc: &Document, m: &oci_spec::image::ImageManifest) -> Result<()> {
        self.add_blob(m.config())?;
        for l in m.layers() {
            self.add_blob(l)?;
        }
        Ok(())
    }

    fn entry_blob(&mut self, _index: &Document, _i: usize, desc: &Descriptor) -> Result<()> {
        // Artifacts and other blobs an index points at travel as opaque blobs.
        self.add_blob(desc)
    }

    fn child(&mut self, doc: Document) -> Result<()> {
        self.children.push(doc);
        Ok(())
    }
}
