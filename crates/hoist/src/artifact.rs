//! The OCI 1.1 referrers model, below the transports that store it: manifests and indexes whose
//! `subject` names another manifest (signatures, SBOMs, attestations), the empty descriptor artifacts
//! use as their config, the referrer descriptor, listings (an index of referrers) and the
//! tag-schema fallback tag, and the one rule every transport lists referrers by. The operations over
//! transports (the tree of an image's referrers, attaching an artifact) are [`crate::referrers`]',
//! which re-exports this model.
//!
//! A referrer is described as the distribution-spec's referrers API describes it: the descriptor of
//! the referring manifest, with its `artifactType` (the manifest's own, else its config's media type)
//! and the manifest's annotations. [`Source::referrers`](crate::transport::Source::referrers) lists
//! them: a registry asks `GET /v2/<name>/referrers/<digest>` and, where the API answers 404, reads
//! the tag-schema fallback index (tag [`fallback_tag`]); a layout (`oci:`, `oci-archive:`) looks at
//! the manifests in its `index.json` whose `subject` is the digest, tagged or not, as oras and
//! ocidir store them (`among_entries`). `dir:` and `docker-archive:` cannot hold referrers and say so.
//!
//! Documents stay exact bytes: nothing here re-serialises a manifest it did not build.

use std::collections::{HashMap, HashSet};

use oci_spec::image::MediaType;

use crate::descriptor::{Descriptor, digest_of, new_descriptor};
use crate::digest::Digest;
use crate::document::{Document, Parsed};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::media_type;

/// The content of the empty descriptor: `{}`.
pub(crate) const EMPTY_JSON: &[u8] = b"{}";

/// The header a registry that supports the referrers API sets when it accepts a manifest that has
/// a `subject` (the subject's digest); without it, the client maintains the fallback index.
#[cfg_attr(not(feature = "registry"), allow(dead_code))] // used by the registry transport only
pub(crate) const OCI_SUBJECT_HEADER: &str = "oci-subject";

/// The empty descriptor (`application/vnd.oci.empty.v1+json`, content `{}`, 2 bytes): the config of
/// an artifact that has none, and the layer of one that has no files.
///
/// ```
/// let d = hoist::referrers::empty_descriptor();
/// assert_eq!(d.size(), 2);
/// assert_eq!(d.digest().to_string(), "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
/// ```
pub fn empty_descriptor() -> Descriptor {
    new_descriptor(
        media_type::OCI_EMPTY,
        &Digest::sha256(EMPTY_JSON),
        EMPTY_JSON.len() as u64,
    )
}

/// The tag of the tag-schema fallback index that lists the referrers of `digest` on a registry
/// without the referrers API: `<alg>-<hex>`, truncated to 128 characters (the distribution-spec's
/// rule).
///
/// ```
/// let d = hoist::Digest::sha256(b"x");
/// assert_eq!(hoist::referrers::fallback_tag(&d), format!("sha256-{}", d.hex()));
/// ```
pub fn fallback_tag(digest: &Digest) -> String {
    let mut tag = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
    tag.truncate(128);
    tag
}

/// The `subject` of a manifest or index; `None` when it has none or is not a manifest or index.
pub fn subject(doc: &Document) -> Result<Option<Descriptor>> {
    Ok(match doc.parse() {
        Ok(Parsed::Manifest(m)) => m.subject().clone(),
        Ok(Parsed::Index(i)) => i.subject().clone(),
        Err(Error::UnsupportedMediaType { .. }) => None,
        Err(e) => return Err(e),
    })
}

/// The artifact type of a manifest or index as the referrers API reports it: its `artifactType`,
/// else (for a manifest) its config's media type.
pub fn artifact_type(doc: &Document) -> Result<Option<String>> {
    Ok(match doc.parse()? {
        Parsed::Manifest(m) => Some(
            m.artifact_type()
                .as_ref()
                .unwrap_or(m.config().media_type())
                .to_string(),
        ),
        Parsed::Index(i) => i.artifact_type().as_ref().map(ToString::to_string),
    })
}

/// The descriptor that lists `doc` among referrers: its media type, digest and size, its artifact type
/// ([`artifact_type`]) and its annotations, as the referrers API answers.
pub(crate) fn referrer_descriptor(doc: &Document) -> Result<Descriptor> {
    let mut desc = doc.descriptor();
    if let Some(t) = artifact_type(doc)? {
        desc.set_artifact_type(Some(MediaType::from(t.as_str())));
    }
    let annotations = match doc.parse()? {
        Parsed::Manifest(m) => m.annotations().clone(),
        Parsed::Index(i) => i.annotations().clone(),
    };
    desc.set_annotations(annotations.filter(|a| !a.is_empty()));
    Ok(desc)
}

/// The artifact type a listed referrer carries (`None` when the listing gave none).
pub fn listed_artifact_type(desc: &Descriptor) -> Option<String> {
    desc.artifact_type().as_ref().map(ToString::to_string)
}

/// True when `desc` passes the `artifactType` filter (an empty filter passes everything).
pub fn passes(desc: &Descriptor, artifact_types: &[String]) -> bool {
    artifact_types.is_empty()
        || listed_artifact_type(desc).is_some_and(|t| artifact_types.contains(&t))
}

/// Checks a listing of referrers of `subject` read from `what` (a registry's answer or fallback index):
/// every entry must be a manifest or index with a valid digest; duplicates are dropped, the
/// `artifact_types` filter applied (registries may ignore it), and at most `--max-referrers` kept.
#[cfg_attr(not(feature = "registry"), allow(dead_code))] // used by the registry transport only
pub(crate) fn check_listing(
    listed: Vec<Descriptor>,
    artifact_types: &[String],
    limits: &Limits,
    what: &str,
) -> Result<Vec<Descriptor>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for desc in listed {
        let digest = crate::descriptor::check(&desc)
            .map_err(|e| Error::invalid_document(what, e.to_string()))?;
        let mt = desc.media_type().to_string();
        if !media_type::is_document(&mt) {
            return Err(Error::invalid_document(
                what,
                format!("referrer {digest} has media type {mt:?}, not a manifest or index"),
            ));
        }
        if !passes(&desc, artifact_types) || !seen.insert(digest) {
            continue;
        }
        out.push(desc);
        check_count(out.len(), limits, what)?;
    }
    Ok(out)
}

/// Fails when `count` referrers are more than `--max-referrers` allows.
pub(crate) fn check_count(count: usize, limits: &Limits, what: &str) -> Result<()> {
    if count > limits.max_referrers {
        return Err(Error::LimitExceeded {
            what: format!("{what} (referrers)"),
            limit: format!("{} referrers", limits.max_referrers),
            option: "--max-referrers".into(),
        });
    }
    Ok(())
}

/// The referrers of `subject` among a layout's `index.json` entries (tagged or not): each manifest or
/// index entry is read with `read` (verified and size-limited by the caller's source) and kept when its
/// `subject` is `subject`. A digest listed twice (two tags) counts once.
pub(crate) fn among_entries(
    entries: &[Descriptor],
    subject_digest: &Digest,
    artifact_types: &[String],
    limits: &Limits,
    what: &str,
    read: &dyn Fn(&Descriptor) -> Result<Document>,
) -> Result<Vec<Descriptor>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in entries {
        if !media_type::is_document(entry.media_type().as_ref()) {
            continue;
        }
        let Ok(digest) = digest_of(entry) else {
            continue;
        };
        if !seen.insert(digest) {
            continue;
        }
        let doc = read(entry)?;
        let Some(s) = subject(&doc)? else { continue };
        if digest_of(&s)? != *subject_digest {
            continue;
        }
        let desc = referrer_descriptor(&doc)?;
        if passes(&desc, artifact_types) {
            out.push(desc);
            check_count(out.len(), limits, what)?;
        }
    }
    Ok(out)
}

/// An OCI index listing `referrers`: the referrers API's answer and the tag-schema fallback index.
#[cfg_attr(not(feature = "registry"), allow(dead_code))] // used by the registry transport only
pub(crate) fn listing_index(referrers: &[Descriptor]) -> Result<Document> {
    let value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": referrers,
    });
    let bytes = serde_json::to_vec(&value)
        .map_err(|e| Error::Other(format!("serialising a referrers index: {e}")))?;
    Document::new(media_type::OCI_INDEX, bytes)
}

/// The entries of a referrers listing index (a registry's answer page or a fallback index), unchecked.
#[cfg_attr(not(feature = "registry"), allow(dead_code))] // used by the registry transport only
pub(crate) fn entries_of_listing(doc: &Document) -> Result<Vec<Descriptor>> {
    if !doc.is_index() {
        return Err(Error::invalid_document(
            format!("referrers listing {}", doc.digest()),
            format!("a {} is not an index", doc.media_type()),
        ));
    }
    Ok(doc.index()?.manifests().clone())
}

/// The annotation buildx puts on the attestation manifests it adds to an index
/// (`vnd.docker.reference.type: attestation-manifest`), beside the one naming the manifest they
/// attest (`vnd.docker.reference.digest`).
pub const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// The annotation naming the manifest a buildx attestation manifest attests.
pub const DOCKER_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// The digest an index entry attests when it is a buildx attestation manifest, else `None`.
pub(crate) fn attests(entry: &Descriptor) -> Option<String> {
    let a: &HashMap<String, String> = entry.annotations().as_ref()?;
    (a.get(DOCKER_REFERENCE_TYPE).map(String::as_str) == Some("attestation-manifest"))
        .then(|| a.get(DOCKER_REFERENCE_DIGEST).cloned())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(subject: &Document, artifact_type: &str, created: &str) -> Document {
        let e = empty_descriptor();
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": e,
            "layers": [e],
            "subject": subject.descriptor(),
            "annotations": {"org.opencontainers.image.created": created},
        }))
        .unwrap();
        Document::new(media_type::OCI_MANIFEST, bytes).unwrap()
    }

    fn image() -> Document {
        let e = empty_descriptor();
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_CONFIG, "digest": e.digest(), "size": 2},
            "layers": [],
        }))
        .unwrap();
        Document::new(media_type::OCI_MANIFEST, bytes).unwrap()
    }

    #[test]
    fn a_referrer_is_described_as_the_api_describes_it() {
        let img = image();
        let sbom = artifact(&img, "application/spdx+json", "2026-01-01T00:00:00Z");
        assert_eq!(
            subject(&sbom).unwrap().unwrap().digest().to_string(),
            img.digest().to_string()
        );
        assert!(subject(&img).unwrap().is_none());
        let d = referrer_descriptor(&sbom).unwrap();
        assert_eq!(
            listed_artifact_type(&d).as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(
            d.annotations().as_ref().unwrap()["org.opencontainers.image.created"],
            "2026-01-01T00:00:00Z"
        );
        // A manifest without artifactType: its config's media type.
        assert_eq!(
            artifact_type(&img).unwrap().as_deref(),
            Some(media_type::OCI_CONFIG)
        );
    }

    #[test]
    fn layout_entries_are_matched_by_subject_filtered_and_limited() {
        let img = image();
        let other = Document::new(
            media_type::OCI_INDEX,
            br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
        )
        .unwrap();
        let sbom = artifact(&img, "application/spdx+json", "t1");
        let sig = artifact(
            &img,
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            "t2",
        );
        let elsewhere = artifact(&other, "application/spdx+json", "t3");
        let docs = [img.clone(), other, sbom.clone(), sig.clone(), elsewhere];
        let mut entries: Vec<Descriptor> = docs.iter().map(Document::descriptor).collect();
        entries.push(sbom.descriptor()); // tagged twice: listed once
        let read = |d: &Descriptor| {
            Ok(docs
                .iter()
                .find(|doc| doc.digest().to_string() == d.digest().to_string())
                .unwrap()
                .clone())
        };
        let limits = Limits::default();
        let all = among_entries(&entries, img.digest(), &[], &limits, "t", &read).unwrap();
        let digests: Vec<String> = all.iter().map(|d| d.digest().to_string()).collect();
        assert_eq!(
            digests,
            [sbom.digest().to_string(), sig.digest().to_string()]
        );
        let only = among_entries(
            &entries,
            img.digest(),
            &["application/spdx+json".into()],
            &limits,
            "t",
            &read,
        )
        .unwrap();
        assert_eq!(only.len(), 1);
        let small = Limits {
            max_referrers: 1,
            ..Limits::default()
        };
        let err = among_entries(&entries, img.digest(), &[], &small, "t", &read).unwrap_err();
        assert!(err.to_string().contains("--max-referrers"), "{err}");
    }

    #[test]
    fn a_listing_must_name_manifests_with_valid_digests() {
        let img = image();
        let sbom = artifact(&img, "application/spdx+json", "t1");
        let d = referrer_descriptor(&sbom).unwrap();
        let limits = Limits::default();
        let kept = check_listing(vec![d.clone(), d.clone()], &[], &limits, "answer").unwrap();
        assert_eq!(kept.len(), 1, "duplicates dropped");
        let filtered =
            check_listing(vec![d.clone()], &["other/type".into()], &limits, "answer").unwrap();
        assert!(filtered.is_empty());
        let layer = new_descriptor(media_type::OCI_LAYER_GZIP, &Digest::sha256(b"x"), 1);
        let err = check_listing(vec![layer], &[], &limits, "answer").unwrap_err();
        assert!(err.to_string().contains("not a manifest or index"), "{err}");
        let index = listing_index(&kept).unwrap();
        assert_eq!(entries_of_listing(&index).unwrap().len(), 1);
        assert_eq!(fallback_tag(img.digest()).len(), 71);
    }
}
