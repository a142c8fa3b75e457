//! Referrers in a copy (`copy --referrers`): the referrers (signatures, SBOMs, attestations) of every
//! manifest and index the copy writes as it is, and theirs, recursively, become more documents and
//! blobs of the plan: their blobs travel in the one transfer loop, and they are committed after the
//! image, each after its subject ([`crate::transport::Destination::commit_referrer`]).
//!
//! Bounded: at most `--max-referrers` in all, `--max-index-depth` levels of referrers of referrers; a
//! listed referrer must be a manifest or index whose `subject` is the manifest it was listed for,
//! and one seen twice (a cycle a hostile listing can draw) is an error. Referrers travel as exact
//! bytes: a copy that converts the documents they name refuses them, since their subjects would
//! name digests the destination does not have.

use std::collections::HashSet;

use super::plan::Collect;
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::transport::{Source, read_document};

/// One referrer to write: its document, and the documents it names when it is an index (children
/// before parents).
pub(super) struct Referrer {
    pub(super) doc: Document,
    pub(super) children: Vec<Document>,
    /// The tag it is written under (cosign's `sha256-<hex>.sig`, `--digest-tags`), else `None`: a
    /// referrer, untagged.
    pub(super) tag: Option<String>,
}

/// The suffixes of cosign's legacy digest tags (`sha256-<hex>.sig`, `.att`, `.sbom`).
pub const DIGEST_TAG_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// The documents of cosign's legacy digest tags of `subjects` in `src` (`--digest-tags`), with their
/// blobs added to `blobs`; `count` is how many referrers are planned already (one `--max-referrers`
/// for both).
pub(super) fn plan_digest_tags(
    src: &dyn Source,
    subjects: &[Digest],
    count: usize,
    blobs: &mut Vec<Descriptor>,
) -> Result<Vec<Referrer>> {
    let mut seen_blobs: HashSet<Digest> = blobs.iter().filter_map(|b| digest_of(b).ok()).collect();
    let mut out = Vec::new();
    for subject in subjects {
        for suffix in DIGEST_TAG_SUFFIXES {
            let tag = format!("{}.{suffix}", crate::referrers::fallback_tag(subject));
            let Some(doc) = src.tagged(&tag)? else {
                continue;
            };
            crate::referrers::check_count(count + out.len() + 1, src.limits(), &src.name())?;
            let mut collect = Collect::default();
            crate::walk::walk(src, &doc, &mut collect)?;
            for b in collect.blobs {
                if seen_blobs.insert(digest_of(&b)?) {
                    blobs.push(b);
                }
            }
            out.push(Referrer {
                doc,
                children: collect.children,
                tag: Some(tag),
            });
        }
    }
    Ok(out)
}

/// The referrers of `subjects` in `src` and theirs, in the order they are committed (each after its
/// subject), with their blobs added to `blobs` (unique by digest, with `seen`).
pub(super) fn plan(
    src: &dyn Source,
    subjects: &[Digest],
    artifact_types: &[String],
    blobs: &mut Vec<Descriptor>,
) -> Result<Vec<Referrer>> {
    let limits = src.limits();
    let mut seen_blobs: HashSet<Digest> = blobs.iter().filter_map(|b| digest_of(b).ok()).collect();
    let mut visited: HashSet<Digest> = subjects.iter().cloned().collect();
    let mut out = Vec::new();
    // Breadth first: every referrer comes after its subject.
    let mut level: Vec<Digest> = subjects.to_vec();
    let mut depth = 0;
    while !level.is_empty() {
        let mut next = Vec::new();
        for subject in &level {
            let listed = src.referrers(subject, artifact_types)?;
            if !listed.is_empty() && depth >= limits.max_index_depth {
                return Err(Error::LimitExceeded {
                    what: format!(
                        "the referrers of {subject} in {} (referrers of referrers)",
                        src.name()
                    ),
                    limit: format!("{} levels", limits.max_index_depth),
                    option: "--max-index-depth".into(),
                });
            }
            for desc in listed {
                let digest = digest_of(&desc)?;
                if !visited.insert(digest.clone()) {
                    return Err(Error::invalid_document(
                        format!("the referrers of {subject} in {}", src.name()),
                        format!("referrer {digest} was reached twice (a cycle of subjects)"),
                    ));
                }
                crate::referrers::check_count(out.len() + 1, limits, &src.name())?;
                let doc = read_document(src, &desc)?;
                let named = crate::referrers::subject(&doc)?
                    .map(|s| digest_of(&s))
                    .transpose()?;
                if named.as_ref() != Some(subject) {
                    return Err(Error::invalid_document(
                        format!("referrer {digest} in {}", src.name()),
                        format!(
                            "listed as a referrer of {subject}, but its subject is {}",
                            named.map_or("none".to_string(), |d| d.to_string())
                        ),
                    ));
                }
                let mut collect = Collect::default();
                crate::walk::walk(src, &doc, &mut collect)?;
                for b in collect.blobs {
                    if seen_blobs.insert(digest_of(&b)?) {
                        blobs.push(b);
                    }
                }
                next.push(digest);
                out.push(Referrer {
                    doc,
                    children: collect.children,
                    tag: None,
                });
            }
        }
        level = next;
        depth += 1;
    }
    Ok(out)
}
