//! The bottom-up commit of a copy: documents are checked against what the destination accepts,
//! rebuilt when the copy converts ([`crate::convert::convert_manifest`] with the new layer
//! descriptors, [`crate::convert::convert_index`] pointing at the rebuilt children), stored children
//! before the indexes that name them, and the root committed last.

use std::collections::HashMap;

use super::CopyOptions;
use super::actions::{ConvertOptions, LayerJob, target_format};
use super::plan::Plan;
use crate::convert::{self, Format, LayerUpdate};
use crate::descriptor::digest_of;
use crate::digest::Digest;
use crate::document::{Document, Parsed};
use crate::error::{Error, Result};
use crate::media_type::is_foreign;
use crate::transport::Destination;

/// Refuses, before anything is written, a copy without conversion of a document `dst` cannot store.
pub(super) fn check_as_is(plan: &Plan, dst: &dyn Destination) -> Result<()> {
    for doc in plan.documents() {
        if !dst.accepts(doc.media_type()) {
            return Err(Error::Unsupported(format!(
                "{} cannot store {} documents; ask for a conversion with --format",
                dst.name(),
                doc.media_type()
            )));
        }
    }
    Ok(())
}

fn refuse_media_type(dst: &dyn Destination, mt: &str, index: bool) -> Error {
    Error::Unsupported(format!(
        "{} cannot store {mt} documents{}",
        dst.name(),
        if index {
            "; it holds a single image: choose one with --platform"
        } else {
            "; choose another --format"
        }
    ))
}

/// Refusals that the plan already decides come before anything is written: a refused conversion
/// leaves no trace at a new destination. (The same checks on the rebuilt documents in [`rebuild`]
/// stay, as the last word.)
pub(super) fn check_converted(
    plan: &Plan,
    layers: &HashMap<Digest, LayerJob>,
    dst: &dyn Destination,
    opts: &CopyOptions,
) -> Result<()> {
    let root = &plan.root;
    for doc in plan.documents() {
        let target = target_format(doc, &opts.convert, dst)?;
        let mt = if doc.is_index() {
            target.index_media_type()
        } else {
            target.manifest_media_type()
        };
        if !dst.accepts(mt) {
            return Err(refuse_media_type(dst, mt, doc.is_index()));
        }
        if opts.preserve_digests && Format::of(doc.media_type()) != Some(target) {
            return Err(Error::Unsupported(format!(
                "--preserve-digests: {} for {} means converting {} to {}, which changes its digest",
                root.digest(),
                dst.name(),
                doc.digest(),
                target.as_str()
            )));
        }
    }
    if opts.preserve_digests
        && let Some(job) = layers
            .values()
            .find(|j| j.actual != j.target && !is_foreign(&j.desc))
    {
        return Err(Error::Unsupported(format!(
            "--preserve-digests: copying {} to {} recompresses layer {} ({} to {}), which changes the manifest's digest",
            root.digest(),
            dst.name(),
            job.desc.digest(),
            job.actual.as_str(),
            job.target.as_str()
        )));
    }
    Ok(())
}

/// Rebuilds the plan's documents in their target format with the transferred layers, children
/// first, each index pointing at its rebuilt children. Returns the new children and root.
pub(super) fn rebuild(
    plan: Plan,
    updates: &HashMap<Digest, LayerUpdate>,
    dst: &dyn Destination,
    opts: &CopyOptions,
) -> Result<(Vec<Document>, Document)> {
    let conv: &ConvertOptions = &opts.convert;
    let mut replaced: HashMap<Digest, Document> = HashMap::new();
    let mut rebuild = |doc: &Document| -> Result<Document> {
        let target = target_format(doc, conv, dst)?;
        let new = match doc.parse()? {
            Parsed::Manifest(m) => {
                let mut layers = Vec::new();
                for l in m.layers() {
                    layers.push(updates.get(&digest_of(l)?).cloned());
                }
                convert::convert_manifest(doc, target, &layers)?
            }
            Parsed::Index(_) => convert::convert_index(doc, target, &replaced)?,
        };
        if !dst.accepts(new.media_type()) {
            return Err(refuse_media_type(dst, new.media_type(), new.is_index()));
        }
        if new.digest() != doc.digest() {
            replaced.insert(doc.digest().clone(), new.clone());
        }
        Ok(new)
    };
    let mut children = Vec::new();
    for child in &plan.children {
        children.push(rebuild(child)?);
    }
    let root = rebuild(&plan.root)?;
    if opts.preserve_digests && root.digest() != plan.root.digest() {
        return Err(Error::Unsupported(format!(
            "--preserve-digests: converting {} for {} writes {} instead",
            plan.root.digest(),
            dst.name(),
            root.digest()
        )));
    }
    Ok((children, root))
}

/// Stores `children` (children before parents) and commits `root` last.
pub(super) fn commit(dst: &dyn Destination, children: &[Document], root: &Document) -> Result<()> {
    for child in children {
        dst.put_document(child)?;
    }
    dst.commit(root)
}
