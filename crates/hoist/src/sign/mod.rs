//! Cosign-compatible, key-based image signatures: the simple-signing payload, signatures stored as
//! sigstore attachments (a `sha256-<hex>.sig` tag whose manifest has one layer per signature, as
//! cosign v2 and skopeo write them), signing, verifying, and the containers-policy.json(5) subset
//! that `copy --policy` applies ([`policy`]). Keys are in [`keys`].
//!
//! Signatures are read and written through the [`Source`] / [`Destination`](crate::transport::Destination) traits, so they work
//! for registries and (hoist only: skopeo cannot) OCI layouts. Keyless signatures (Fulcio
//! certificates, Rekor transparency-log entries) are not supported: a key is always needed.

pub mod keys;
pub mod policy;

/// The key types (ECDSA P-256): hoist's own, so that callers need no crypto crate of their own.
pub use keys::{PrivateKey, PublicKey};

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::Signature as EcdsaSignature;
use p256::ecdsa::signature::{Signer, Verifier};
use serde_json::{Value, json};

use crate::blob::VerifiedReader;
use crate::descriptor::{digest_of, media_type_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::reference::{ImageName, TransportRef};
use crate::transport::{
    BlobReader, OpenOptions, Source, open_destination, open_source, read_small_blob,
};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation of a signature layer holding the base64 ECDSA signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign / sigstore image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The largest signature payload layer read or written (as skopeo and cosign bound it).
pub const MAX_SIGNATURE_SIZE: u64 = 4 * 1024 * 1024;

/// The artifact type of a signature stored as an OCI 1.1 referrer (as cosign writes it with
/// `--registry-referrers-mode=oci-1-1`, and as cosign v3 stores signatures): a manifest with the
/// empty config, one simple-signing layer carrying [`SIGNATURE_ANNOTATION`], and the image as subject.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The most signatures (layers of the signature manifest) read for one image: a hostile registry
/// cannot make hoist fetch thousands of payloads.
pub const MAX_SIGNATURES: usize = 256;

/// One signature of an image: the payload bytes and the base64 signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSignature {
    /// The simple-signing payload, exact bytes.
    pub payload: Vec<u8>,
    /// The signature annotation (base64 of an ASN.1 DER ECDSA signature).
    pub signature: String,
}

/// The simple-signing payload naming `digest` as the image of `identity` (a docker reference such
/// as `registry.example/app:v1`), field for field as skopeo and cosign write it.
pub fn payload(identity: &str, digest: &Digest) -> Vec<u8> {
    let value = json!({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    value.to_string().into_bytes()
}

/// Signs `payload` with `key`: base64 of the ASN.1 DER ECDSA P-256/SHA-256 signature.
pub fn sign_payload(key: &PrivateKey, payload: &[u8]) -> String {
    let sig: EcdsaSignature = key.ecdsa().sign(payload);
    B64.encode(sig.to_der().as_bytes())
}

/// The tag cosign and skopeo store an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The reference of the signature tag of `digest` beside `image` (same repository or layout).
pub fn signature_ref(image: &TransportRef, digest: &Digest) -> Result<TransportRef> {
    image
        .in_same_repository(Some(&signature_tag(digest)))
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "signatures are stored in registries (docker://) and OCI layouts (oci:), not {}",
                image.transport()
            ))
        })
}

/// The signatures stored for `digest` beside `image`; empty when there is no signature tag.
/// A layer that is not a simple-signing payload, lacks the signature annotation or is larger than
/// [`MAX_SIGNATURE_SIZE`] is an error.
pub fn read_signatures(
    image: &TransportRef,
    digest: &Digest,
    opts: &OpenOptions,
) -> Result<Vec<ImageSignature>> {
    let sig_ref = signature_ref(image, digest)?;
    let source = match open_source(&sig_ref, opts) {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = match source.root() {
        Ok(root) => signatures_of(source.as_ref(), &root)?,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    out.extend(referrer_signatures(image, digest, opts)?);
    Ok(out)
}

/// The signatures of `digest` stored as OCI 1.1 referrers beside `image` (artifact type
/// [`SIGNATURE_ARTIFACT_TYPE`]), each manifest checked as a `.sig` manifest is.
fn referrer_signatures(
    image: &TransportRef,
    digest: &Digest,
    opts: &OpenOptions,
) -> Result<Vec<ImageSignature>> {
    let source = open_source(&crate::referrers::home_of(image)?, opts);
    let source = match source {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let listed = source.referrers(digest, &[SIGNATURE_ARTIFACT_TYPE.to_string()])?;
    if listed.len() > MAX_SIGNATURES {
        return Err(Error::LimitExceeded {
            what: format!("{} signature referrers of {digest}", listed.len()),
            limit: format!("{MAX_SIGNATURES} signatures"),
            option: "no option: hoist reads at most 256 signatures of an image".into(),
        });
    }
    let mut out = Vec::new();
    for desc in listed {
        let doc = crate::transport::read_document(source.as_ref(), &desc)?;
        let named = crate::referrers::subject(&doc)?
            .map(|s| digest_of(&s))
            .transpose()?;
        if named.as_ref() != Some(digest) {
            return Err(Error::invalid_document(
                format!("signature referrer {}", doc.digest()),
                format!("listed for {digest} but its subject is another"),
            ));
        }
        out.extend(signatures_of(source.as_ref(), &doc)?);
    }
    Ok(out)
}

/// Stores `signature` of the image `image` (root `subject`) as an OCI 1.1 referrer, as cosign v3
/// does: a manifest of its own (artifact type [`SIGNATURE_ARTIFACT_TYPE`], the empty config, the
/// payload as its one layer, `subject` the image), so that concurrent signers never overwrite each
/// other. A registry without the referrers API gets it in the `sha256-<hex>` fallback index.
pub fn write_signature_referrer(
    image: &TransportRef,
    subject: &Document,
    signature: &ImageSignature,
    opts: &OpenOptions,
) -> Result<Document> {
    if signature.payload.len() as u64 > MAX_SIGNATURE_SIZE {
        return Err(Error::LimitExceeded {
            what: format!("signature payload ({} bytes)", signature.payload.len()),
            limit: "4 MiB".into(),
            option: "no option: signatures larger than 4 MiB are refused".into(),
        });
    }
    let home = crate::referrers::home_of(image)?;
    let payload_digest = Digest::sha256(&signature.payload);
    let empty = crate::referrers::empty_descriptor();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": crate::media_type::OCI_MANIFEST,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": empty,
        "layers": [{
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "size": signature.payload.len(),
            "digest": payload_digest.to_string(),
            "annotations": {SIGNATURE_ANNOTATION: signature.signature},
        }],
        "subject": subject.descriptor(),
    })
    .to_string()
    .into_bytes();
    let doc = Document::new(crate::media_type::OCI_MANIFEST, manifest)?;
    let dest = open_destination(&home, opts)?;
    let empty_digest = Digest::sha256(crate::referrers::EMPTY_JSON);
    for (bytes, digest, media_type) in [
        (
            crate::referrers::EMPTY_JSON,
            &empty_digest,
            crate::media_type::OCI_EMPTY,
        ),
        (
            signature.payload.as_slice(),
            &payload_digest,
            SIMPLE_SIGNING_MEDIA_TYPE,
        ),
    ] {
        let desc = crate::descriptor::new_descriptor(media_type, digest, bytes.len() as u64);
        if dest.has_blob(&desc)? {
            continue;
        }
        let reader: BlobReader<'_> = Box::new(Cursor::new(bytes));
        let mut stream = VerifiedReader::new(
            reader,
            digest.clone(),
            bytes.len() as u64,
            format!("signature blob {digest}"),
        );
        dest.put_blob(&desc, &mut stream)?;
    }
    dest.commit_referrer(&doc)?;
    Ok(doc)
}

fn signatures_of(source: &dyn Source, root: &Document) -> Result<Vec<ImageSignature>> {
    let what = format!("signature manifest {}", root.digest());
    let manifest = root.manifest()?;
    if manifest.layers().len() > MAX_SIGNATURES {
        return Err(Error::LimitExceeded {
            what: format!("{what} with {} signatures", manifest.layers().len()),
            limit: format!("{MAX_SIGNATURES} signatures"),
            option: "no option: hoist reads at most 256 signatures of an image".into(),
        });
    }
    let mut out = Vec::new();
    for layer in manifest.layers() {
        let media_type = media_type_of(layer);
        if media_type != SIMPLE_SIGNING_MEDIA_TYPE {
            return Err(Error::invalid_document(
                &what,
                format!("layer of media type {media_type:?} is not a signature"),
            ));
        }
        if layer.size() > MAX_SIGNATURE_SIZE {
            return Err(Error::LimitExceeded {
                what: format!(
                    "signature layer {} ({} bytes)",
                    digest_of(layer)?,
                    layer.size()
                ),
                limit: "4 MiB".into(),
                option: "no option: signatures larger than 4 MiB are refused".into(),
            });
        }
        let signature = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .cloned()
            .ok_or_else(|| {
                Error::invalid_document(
                    &what,
                    format!("a layer lacks the {SIGNATURE_ANNOTATION} annotation"),
                )
            })?;
        let payload = read_small_blob(source, layer)?;
        out.push(ImageSignature { payload, signature });
    }
    Ok(out)
}

/// Adds `signature` to the signatures of `digest` beside `image` (creating the signature tag, or
/// rewriting its manifest with one more layer; a signature already there is not added twice).
pub fn write_signature(
    image: &TransportRef,
    digest: &Digest,
    signature: &ImageSignature,
    opts: &OpenOptions,
) -> Result<()> {
    if signature.payload.len() as u64 > MAX_SIGNATURE_SIZE {
        return Err(Error::LimitExceeded {
            what: format!("signature payload ({} bytes)", signature.payload.len()),
            limit: "4 MiB".into(),
            option: "no option: signatures larger than 4 MiB are refused".into(),
        });
    }
    let sig_ref = signature_ref(image, digest)?;
    // Read, add, write; then read again: a concurrent signer that wrote the tag in between dropped
    // this signature, and the update is made again (bounded).
    for _ in 0..crate::transport::SHARED_UPDATE_ATTEMPTS {
        let existing = tag_signatures(&sig_ref, opts)?;
        if existing
            .as_ref()
            .is_some_and(|(sigs, _)| sigs.contains(signature))
        {
            return Ok(());
        }
        put_signature_manifest(
            &sig_ref,
            existing.as_ref().map(|(_, root)| root),
            signature,
            opts,
        )?;
        if tag_signatures(&sig_ref, opts)?.is_some_and(|(sigs, _)| sigs.contains(signature)) {
            return Ok(());
        }
        tracing::info!("{sig_ref}: a concurrent update dropped the new signature; again");
    }
    Err(Error::Signature(format!(
        "{sig_ref}: the new signature was dropped by concurrent updates {} times",
        crate::transport::SHARED_UPDATE_ATTEMPTS
    )))
}

/// The signatures in the signature tag `sig_ref` and its manifest; `None` when there is no such tag.
fn tag_signatures(
    sig_ref: &TransportRef,
    opts: &OpenOptions,
) -> Result<Option<(Vec<ImageSignature>, Document)>> {
    let source = match open_source(sig_ref, opts) {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    match source.root() {
        Ok(root) => Ok(Some((signatures_of(source.as_ref(), &root)?, root))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the signature manifest of `sig_ref`: the layers of `existing` (kept as they are) and one
/// more for `signature`.
fn put_signature_manifest(
    sig_ref: &TransportRef,
    existing: Option<&Document>,
    signature: &ImageSignature,
    opts: &OpenOptions,
) -> Result<()> {
    let mut layers: Vec<Value> = Vec::new();
    if let Some(root) = existing {
        let value: Value = serde_json::from_slice(root.bytes())
            .map_err(|e| Error::invalid_document("signature manifest", e.to_string()))?;
        if let Some(l) = value.get("layers").and_then(Value::as_array) {
            layers.clone_from(l);
        }
    }
    let payload_digest = Digest::sha256(&signature.payload);
    layers.push(json!({
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "size": signature.payload.len(),
        "digest": payload_digest.to_string(),
        "annotations": {SIGNATURE_ANNOTATION: signature.signature},
    }));
    let diff_ids: Vec<Value> = layers
        .iter()
        .filter_map(|l| l.get("digest").cloned())
        .collect();
    // The config cosign writes: an image config whose rootfs lists the payloads.
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    })
    .to_string()
    .into_bytes();
    let config_digest = Digest::sha256(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": crate::media_type::OCI_MANIFEST,
        "config": {
            "mediaType": crate::media_type::OCI_CONFIG,
            "size": config.len(),
            "digest": config_digest.to_string(),
        },
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    let doc = Document::new(crate::media_type::OCI_MANIFEST, manifest)?;
    let dest = open_destination(sig_ref, opts)?;
    for (bytes, digest, media_type) in [
        (&config, &config_digest, crate::media_type::OCI_CONFIG),
        (
            &signature.payload,
            &payload_digest,
            SIMPLE_SIGNING_MEDIA_TYPE,
        ),
    ] {
        let desc = crate::descriptor::new_descriptor(media_type, digest, bytes.len() as u64);
        if dest.has_blob(&desc)? {
            continue;
        }
        let reader: BlobReader<'_> = Box::new(Cursor::new(bytes.as_slice()));
        let mut stream = VerifiedReader::new(
            reader,
            digest.clone(),
            bytes.len() as u64,
            format!("signature blob {digest}"),
        );
        dest.put_blob(&desc, &mut stream)?;
    }
    dest.commit(&doc)
}

/// The docker reference a signature of `image` names by default: the registry name with its tag
/// (as skopeo writes it), or the bare repository when the image is named by digest. `None` for a
/// transport with no registry name (give one explicitly).
pub fn default_identity(image: &TransportRef) -> Option<String> {
    let name = image.registry_image()?;
    Some(match &name.tag {
        Some(tag) if name.digest.is_none() => format!("{}:{tag}", name.name()),
        _ => name.name(),
    })
}

/// Signs the image `image` (its root manifest or index, digest `digest`) with `key`, naming it
/// `identity`, and stores the signature beside it. Returns the signature written.
///
/// ```no_run
/// use hoist::sign::{IdentityRule, keys, sign, verify_signatures};
/// let opts = hoist::OpenOptions::default();
/// let image: hoist::TransportRef = "oci:/tmp/layout:v1".parse()?;
/// let digest = hoist::open_source(&image, &opts)?.root()?.digest().clone();
/// let key = keys::generate()?;
/// sign(&image, &digest, "registry.example/app:v1", &key, &opts)?;
/// let ok = verify_signatures(&image, &digest, &key.public_key(), &IdentityRule::Any, &opts)?;
/// println!("{ok:?}");
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn sign(
    image: &TransportRef,
    digest: &Digest,
    identity: &str,
    key: &PrivateKey,
    opts: &OpenOptions,
) -> Result<ImageSignature> {
    ImageName::parse(identity)?;
    let payload = payload(identity, digest);
    let signature = sign_payload(key, &payload);
    let sig = ImageSignature { payload, signature };
    write_signature(image, digest, &sig, opts)?;
    Ok(sig)
}

/// Like [`sign`], stored as an OCI 1.1 referrer of the image ([`write_signature_referrer`], cosign
/// v3's way) instead of in the `.sig` tag. The image's root must still be `digest`.
pub fn sign_as_referrer(
    image: &TransportRef,
    digest: &Digest,
    identity: &str,
    key: &PrivateKey,
    opts: &OpenOptions,
) -> Result<ImageSignature> {
    ImageName::parse(identity)?;
    let subject = open_source(image, opts)?.root()?;
    if subject.digest() != digest {
        return Err(Error::DigestMismatch {
            what: format!("the image {image} (it changed while being signed)"),
            expected: digest.clone(),
            actual: subject.digest().clone(),
        });
    }
    let payload = payload(identity, digest);
    let signature = sign_payload(key, &payload);
    let sig = ImageSignature { payload, signature };
    write_signature_referrer(image, &subject, &sig, opts)?;
    Ok(sig)
}

/// How a signature's claimed identity must relate to the image (containers-policy.json(5)'s
/// `signedIdentity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRule {
    /// Any identity (hoist verify without `--identity`: the digest alone is checked, as cosign does).
    Any,
    /// The identity must equal this reference exactly (`matchExact`, `--identity REPO:TAG`).
    Exact(String),
    /// The identity must be in this repository, any tag or digest (`matchRepository`, `--identity REPO`).
    Repository(String),
}

/// Why one signature was not accepted.
fn check_one(
    sig: &ImageSignature,
    key: &PublicKey,
    digest: &Digest,
    rule: &IdentityRule,
) -> std::result::Result<(), String> {
    let der = B64
        .decode(sig.signature.trim())
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let ecdsa = EcdsaSignature::from_der(&der)
        .map_err(|e| format!("the signature is not an ECDSA P-256 signature: {e}"))?;
    key.ecdsa()
        .verify(&sig.payload, &ecdsa)
        .map_err(|_| "the signature does not verify with the key".to_string())?;
    let value: Value = serde_json::from_slice(&sig.payload)
        .map_err(|e| format!("the signed payload is not JSON: {e}"))?;
    let critical = value
        .get("critical")
        .ok_or("the signed payload has no \"critical\" section")?;
    let kind = critical.get("type").and_then(Value::as_str);
    if kind != Some(PAYLOAD_TYPE) {
        return Err(format!(
            "the signed payload's type is {kind:?}, not {PAYLOAD_TYPE:?}"
        ));
    }
    let signed_digest = critical
        .pointer("/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .ok_or("the signed payload names no image digest")?;
    if signed_digest != digest.to_string() {
        return Err(format!(
            "the signature is for image {signed_digest}, not {digest}"
        ));
    }
    let identity = critical
        .pointer("/identity/docker-reference")
        .and_then(Value::as_str)
        .ok_or("the signed payload names no docker-reference")?;
    let matches = match rule {
        IdentityRule::Any => true,
        IdentityRule::Exact(want) => same_reference(identity, want),
        IdentityRule::Repository(want) => same_repository(identity, want),
    };
    if !matches {
        let want = match rule {
            IdentityRule::Exact(w) => format!("exactly {w}"),
            IdentityRule::Repository(w) => format!("repository {w}"),
            IdentityRule::Any => String::new(),
        };
        return Err(format!(
            "the signature names identity {identity}, not {want}"
        ));
    }
    Ok(())
}

fn same_reference(a: &str, b: &str) -> bool {
    match (ImageName::parse(a), ImageName::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn same_repository(a: &str, b: &str) -> bool {
    match (ImageName::parse(a), ImageName::parse(b)) {
        (Ok(a), Ok(b)) => a.name() == b.name(),
        _ => false,
    }
}

/// What [`verify_signatures`] found: the signature that verified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The image digest the signature names.
    pub digest: String,
    /// The docker reference the signature names.
    pub identity: String,
    /// How many signatures the image has.
    pub signatures: usize,
}

/// Checks `signatures` of the image `digest`: at least one must verify with `key`, name `digest`,
/// and satisfy `rule`. The error says, for each signature, which check failed.
pub(crate) fn check_signatures(
    signatures: &[ImageSignature],
    key: &PublicKey,
    digest: &Digest,
    rule: &IdentityRule,
    image: &str,
) -> Result<Verified> {
    if signatures.is_empty() {
        return Err(Error::Signature(format!(
            "{image}: no signatures found (no {} tag, no {SIGNATURE_ARTIFACT_TYPE} referrer)",
            signature_tag(digest)
        )));
    }
    let mut reasons = Vec::new();
    for (i, sig) in signatures.iter().enumerate() {
        match check_one(sig, key, digest, rule) {
            Ok(()) => {
                let identity = serde_json::from_slice::<Value>(&sig.payload)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/critical/identity/docker-reference")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                return Ok(Verified {
                    digest: digest.to_string(),
                    identity,
                    signatures: signatures.len(),
                });
            }
            Err(reason) => reasons.push(format!("signature {}: {reason}", i + 1)),
        }
    }
    // The first few reasons say what is wrong; hundreds would bury it.
    let shown = reasons.len().min(5);
    let more = match reasons.len() - shown {
        0 => String::new(),
        n => format!("; and {n} more not accepted"),
    };
    Err(Error::Signature(format!(
        "{image}: none of {} signature{} is accepted: {}{more}",
        reasons.len(),
        if reasons.len() == 1 { "" } else { "s" },
        reasons[..shown].join("; ")
    )))
}

/// Reads the signatures of the image `image` whose root digest is `digest` and checks them: at least
/// one must verify with `key`, name `digest`, and satisfy `rule`; the error says, for each signature,
/// which check failed.
pub fn verify_signatures(
    image: &TransportRef,
    digest: &Digest,
    key: &PublicKey,
    rule: &IdentityRule,
    opts: &OpenOptions,
) -> Result<Verified> {
    let signatures = read_signatures(image, digest, opts)?;
    check_signatures(&signatures, key, digest, rule, &image.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_only_for_its_digest_key_and_identity() {
        let key = keys::generate().unwrap();
        let other = keys::generate().unwrap();
        let digest = Digest::sha256(b"manifest");
        let sig = ImageSignature {
            payload: payload("example.com/app:v1", &digest),
            signature: String::new(),
        };
        let sig = ImageSignature {
            signature: sign_payload(&key, &sig.payload),
            ..sig
        };
        let vk = &key.public_key();
        let ok = check_signatures(
            std::slice::from_ref(&sig),
            vk,
            &digest,
            &IdentityRule::Any,
            "i",
        );
        assert_eq!(ok.unwrap().identity, "example.com/app:v1");
        let exact = IdentityRule::Exact("example.com/app:v1".into());
        check_signatures(std::slice::from_ref(&sig), vk, &digest, &exact, "i").unwrap();
        let repo = IdentityRule::Repository("example.com/app".into());
        check_signatures(std::slice::from_ref(&sig), vk, &digest, &repo, "i").unwrap();

        let err = |r: Result<Verified>| r.unwrap_err().to_string();
        let wrong_key = err(check_signatures(
            std::slice::from_ref(&sig),
            &other.public_key(),
            &digest,
            &IdentityRule::Any,
            "i",
        ));
        assert!(
            wrong_key.contains("does not verify with the key"),
            "{wrong_key}"
        );
        let wrong_digest = err(check_signatures(
            std::slice::from_ref(&sig),
            vk,
            &Digest::sha256(b"other"),
            &IdentityRule::Any,
            "i",
        ));
        assert!(wrong_digest.contains("is for image"), "{wrong_digest}");
        let wrong_tag = IdentityRule::Exact("example.com/app:v2".into());
        let e = err(check_signatures(
            std::slice::from_ref(&sig),
            vk,
            &digest,
            &wrong_tag,
            "i",
        ));
        assert!(e.contains("names identity"), "{e}");
        let mut tampered = sig.clone();
        tampered.payload = payload("example.com/app:v1", &Digest::sha256(b"x"));
        let e = err(check_signatures(
            &[tampered],
            vk,
            &digest,
            &IdentityRule::Any,
            "i",
        ));
        assert!(e.contains("does not verify"), "{e}");
        let e = err(check_signatures(&[], vk, &digest, &IdentityRule::Any, "i"));
        assert!(e.contains("no signatures found"), "{e}");
    }
}
