//! The one index walker: from a root document through nested indexes to manifests, bounded in depth
//! ([`crate::Limits::max_index_depth`]) and checked for cycles, with the platform choice of an index
//! entry and the handling of unusable entries in one place. The copy plan walks the whole tree with
//! it, [`crate::image::select_manifest`] follows one platform's path, verify checks every document.
//!
//! Errors are handled one way: every problem met on the walk goes to [`Visitor::problem`], which
//! either returns it (the walk stops: copy, resolve) or records it and returns `Ok` (the walk goes on
//! past it: verify).

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::{Document, Parsed};
use crate::error::{Error, Result};
use crate::media_type;
use crate::platform::{self, Platform};
use crate::transport::{Source, read_document};

/// What a walk does at each thing it reaches.
pub(crate) trait Visitor {
    /// A problem with `subject` (and the digest it concerns, when known): return `Err` to stop the
    /// walk, `Ok` to record it and go on past the thing it concerns.
    fn problem(&mut self, subject: String, digest: Option<&Digest>, err: Error) -> Result<()>;
    /// Every document reached, before it is checked.
    fn document(&mut self, _doc: &Document) {}
    /// A manifest reached (its config and layers are the visitor's to read).
    fn manifest(&mut self, doc: &Document, manifest: &ImageManifest) -> Result<()>;
    /// Entry `i` of `index` that is not a document (an artifact or other blob).
    fn entry_blob(&mut self, index: &Document, i: usize, desc: &Descriptor) -> Result<()>;
    /// A child document, after everything below it was walked (children come before parents).
    fn child(&mut self, _doc: Document) -> Result<()> {
        Ok(())
    }
}

/// Walks everything reachable from `root`.
pub(crate) fn walk(src: &dyn Source, root: &Document, visitor: &mut dyn Visitor) -> Result<()> {
    let mut path = Path::new(src);
    document(src, root, &mut path, visitor)
}

fn document(src: &dyn Source, doc: &Document, path: &mut Path, v: &mut dyn Visitor) -> Result<()> {
    v.document(doc);
    let d = doc.digest();
    if let Err(e) = path.enter(doc) {
        return v.problem(format!("index {d}"), Some(d), e);
    }
    match doc.parse() {
        Err(e) => v.problem(format!("document {d}"), Some(d), e)?,
        Ok(Parsed::Manifest(m)) => v.manifest(doc, &m)?,
        Ok(Parsed::Index(index)) => {
            for (i, child) in index.manifests().iter().enumerate() {
                if !media_type::is_document(child.media_type().as_ref()) {
                    v.entry_blob(doc, i, child)?;
                    continue;
                }
                match read_document(src, child) {
                    Ok(c) => {
                        document(src, &c, path, v)?;
                        v.child(c)?;
                    }
                    Err(e) => v.problem(
                        format!("entry {i} of index {d}"),
                        digest_of(child).ok().as_ref(),
                        e,
                    )?,
                }
            }
        }
    }
    path.leave();
    Ok(())
}

/// The documents from the root to the one being walked: the depth bound and the cycle check.
struct Path {
    max_depth: usize,
    docs: Vec<Digest>,
}

impl Path {
    fn new(src: &dyn Source) -> Self {
        Path {
            max_depth: src.limits().max_index_depth,
            docs: Vec::new(),
        }
    }

    /// Steps into `doc`: refused when it contains itself (the same manifest under two platforms of
    /// one index is no cycle) or lies deeper than the limit.
    fn enter(&mut self, doc: &Document) -> Result<()> {
        if self.docs.contains(doc.digest()) {
            return Err(Error::invalid_document(
                format!("index {}", doc.digest()),
                "index cycle: a document refers back to one that contains it",
            ));
        }
        if self.docs.len() > self.max_depth {
            return Err(Error::LimitExceeded {
                what: "index nesting depth".into(),
                limit: self.max_depth.to_string(),
                option: "--max-index-depth".into(),
            });
        }
        self.docs.push(doc.digest().clone());
        Ok(())
    }

    fn leave(&mut self) {
        self.docs.pop();
    }
}

/// The entry of `index` for `wanted`. Entries whose digest hoist cannot check are not candidates.
pub(crate) fn choose(index: &ImageIndex, wanted: &Platform) -> Result<Descriptor> {
    let mut usable = index.clone();
    usable.set_manifests(
        index
            .manifests()
            .iter()
            .filter(|d| digest_of(d).is_ok())
            .cloned()
            .collect(),
    );
    platform::select(&usable, wanted).cloned()
}

/// Follows `doc` through indexes, choosing `wanted` at each, to a manifest.
pub(crate) fn follow(src: &dyn Source, doc: Document, wanted: &Platform) -> Result<Document> {
    let mut path = Path::new(src);
    let mut current = doc;
    loop {
        path.enter(&current)?;
        match current.parse()? {
            Parsed::Manifest(_) => return Ok(current),
            Parsed::Index(index) => current = read_document(src, &choose(&index, wanted)?)?,
        }
    }
}
