//! Changing what a repository's names point at without moving images: deleting a manifest (every tag
//! on it goes with it), deleting one tag, and giving a manifest more tags (`PUT` of the same bytes).
//! Requests go through the destination's [`Client`](super::client::Client) like every other.
//! [`RegistryRepository`] is a repository of the registry for those plumbing verbs.

use std::io::Read;

use bytes::Bytes;
use reqwest::Method;

use super::auth;
use super::client::Req;
use super::pull::RegistrySource;
use super::push::RegistryDestination;
use crate::digest::{Algorithm, Digest};
use crate::document::Document;
use crate::error::{Error, Result};
use crate::media_type;
use crate::reference::ImageName;
use crate::transport::repository::{Deleted, Item, Repository, tag_only_needs_a_tag, verified};
use crate::transport::{Destination, OpenOptions, Source, VerifiedStream};

/// How a tag was deleted by [`RegistryDestination::delete_tag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagDeletion {
    /// The registry deleted the tag itself (`DELETE /v2/NAME/manifests/TAG`).
    Deleted,
    /// The registry does not delete tags: the tag was moved to a throw-away manifest, which was then
    /// deleted by digest (regctl's technique); the image it named is untouched.
    Repointed,
}

/// The content of the OCI empty descriptor (`application/vnd.oci.empty.v1+json`).
const EMPTY_JSON: &[u8] = b"{}";

impl RegistryDestination {
    /// The token scope a `DELETE` needs (distribution asks for the `delete` action).
    fn delete_scope(&self) -> String {
        format!(
            "{} repository:{}:delete",
            auth::repository_scope(&self.name.repository, true),
            self.name.repository
        )
    }

    /// Sends `DELETE /v2/NAME/manifests/REFERENCE`; the status of the answer (202 means deleted) with
    /// the error it would be when it is not 202.
    fn delete_reference(&self, reference: &str) -> Result<std::result::Result<(), (u16, Error)>> {
        let path = format!("v2/{}/manifests/{reference}", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("DELETE /{path}");
        let resp = self
            .client
            .send(&Req::new(Method::DELETE, url, &self.delete_scope()), &what)?;
        let status = resp.status().as_u16();
        if status == 202 {
            return Ok(Ok(()));
        }
        let mut err = self.client.error(&what, resp);
        if status == 405
            && let Error::Registry { message, .. } = &mut err
        {
            message.push_str(
                " (the registry does not allow deletion; distribution needs storage.delete.enabled)",
            );
        }
        Ok(Err((status, err)))
    }

    /// Deletes the manifest `digest`: the registry removes every tag that points at it too. A
    /// manifest that is not there is [`Error::NotFound`].
    pub fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        match self.delete_reference(&digest.to_string())? {
            Ok(()) => Ok(()),
            Err((404, e)) => Err(self.not_found(&format!("@{digest}"), e)),
            Err((_, e)) => Err(e),
        }
    }

    fn not_found(&self, reference: &str, cause: Error) -> Error {
        Error::NotFound {
            reference: format!("{}{reference}", self.name.repository),
            location: format!("registry {}", self.client.host()),
            hint: format!("; {cause}"),
        }
    }

    /// Deletes `tag` only, leaving the manifest it names and that manifest's other tags: with the
    /// registry's tag deletion where it has one, else by moving the tag to a throw-away manifest
    /// and deleting that. The caller checks first that the tag exists. Nothing is changed when the
    /// registry allows no deletion at all (the throw-away manifest is deleted once before the tag
    /// is moved, to find out).
    pub fn delete_tag(&self, tag: &str) -> Result<TagDeletion> {
        crate::reference::check_tag(tag, crate::reference::TagGrammar::Registry)?;
        match self.delete_reference(tag)? {
            Ok(()) => return Ok(TagDeletion::Deleted),
            // distribution 2.x takes a tag for a malformed digest (400 DIGEST_INVALID); others say
            // they do not support it (405, 501) or do not find a manifest by that name (404).
            Err((400 | 404 | 405 | 501, _)) => {}
            Err((_, e)) => return Err(e),
        }
        let empty = Digest::of_bytes(Algorithm::Sha256, EMPTY_JSON);
        let empty_desc = crate::descriptor::new_descriptor(media_type::OCI_EMPTY, &empty, 2);
        if !self.has_blob(&empty_desc)? {
            self.upload_monolithic(&empty, Bytes::from_static(EMPTY_JSON))?;
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
            "layers": [],
            "annotations": {
                "dev.hoist.deleted-tag": format!("{}:{tag}", self.name.repository),
                "dev.hoist.nonce": format!("{nonce}-{}", std::process::id()),
            },
        });
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Other(format!("serialising a manifest: {e}")))?;
        let doc = Document::new(media_type::OCI_MANIFEST, bytes)?;
        // Untagged first, deleted at once: a registry that refuses deletion fails here, before the
        // tag is touched.
        self.put_manifest(&doc.digest().to_string(), &doc)?;
        self.delete_manifest(doc.digest())?;
        self.put_manifest(tag, &doc)?;
        self.delete_manifest(doc.digest())?;
        Ok(TagDeletion::Repointed)
    }

    /// Points `tag` at `doc` (a `PUT` of its exact bytes; the manifest and its blobs must already be
    /// in the repository).
    pub fn put_tag(&self, tag: &str, doc: &Document) -> Result<()> {
        crate::reference::check_tag(tag, crate::reference::TagGrammar::Registry)?;
        self.put_manifest(tag, doc)
    }
}

/// A registry repository as a [`Repository`]: reads go
/// where registries.conf sends pulls (mirrors included), changes to its location.
#[derive(Debug)]
pub struct RegistryRepository {
    /// The repository's name (its tag and digest are not used).
    name: ImageName,
    opts: OpenOptions,
    source: RegistrySource,
    dest: RegistryDestination,
}

impl RegistryRepository {
    /// The repository `name` is in; nothing is requested until it is used.
    pub fn open(name: &ImageName, opts: &OpenOptions) -> Result<Self> {
        Ok(RegistryRepository {
            name: name.clone(),
            opts: opts.clone(),
            source: RegistrySource::open(name, opts)?,
            dest: RegistryDestination::open(name, opts)?,
        })
    }

    fn named(&self, item: &Item) -> ImageName {
        let (tag, digest) = match item {
            Item::Tag(t) => (Some(t.clone()), None),
            Item::Digest(d) => (None, Some(d.clone())),
        };
        ImageName {
            tag,
            digest,
            ..self.name.clone()
        }
    }
}

impl Repository for RegistryRepository {
    fn name(&self) -> String {
        format!("docker://{}", self.name.name())
    }

    fn resolve(&self, item: &Item) -> Result<Document> {
        RegistrySource::open(&self.named(item), &self.opts)?.root()
    }

    fn tags(&self) -> Result<Vec<String>> {
        self.source.tags()
    }

    fn blob_size(&self, digest: &Digest) -> Result<u64> {
        self.source.blob_size(digest)
    }

    fn open_blob(&self, digest: &Digest, size: u64) -> Result<VerifiedStream<'_>> {
        let desc = crate::descriptor::new_descriptor(media_type::OCI_LAYER_TAR, digest, size);
        Ok(verified(self.source.open_blob(&desc)?, digest, size))
    }

    fn put_blob(&self, digest: &Digest, size: u64, content: &mut (dyn Read + Send)) -> Result<()> {
        let desc = crate::descriptor::new_descriptor(media_type::OCI_LAYER_TAR, digest, size);
        if self.dest.has_blob(&desc)? {
            return Ok(());
        }
        let mut stream = verified(Box::new(content), digest, size);
        self.dest.put_blob(&desc, &mut stream)
    }

    fn tag(&self, doc: &Document, tags: &[String]) -> Result<()> {
        for tag in tags {
            crate::reference::check_tag(tag, crate::reference::TagGrammar::Registry)?;
        }
        for tag in tags {
            self.dest.put_tag(tag, doc).map_err(|e| Error::Image {
                image: format!("{}:{tag}", self.name()),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    fn delete(&self, item: &Item, tag_only: bool) -> Result<Deleted> {
        match item {
            Item::Tag(tag) if tag_only => {
                // The tag must exist: a registry may answer a tag it does not know with success.
                let named = self.resolve(item)?;
                let how = self.dest.delete_tag(tag)?;
                Ok(Deleted::Tag {
                    digest: named.digest().clone(),
                    repointed: how == TagDeletion::Repointed,
                })
            }
            Item::Digest(_) if tag_only => Err(tag_only_needs_a_tag(item, &self.name())),
            Item::Tag(_) => {
                let digest = self.resolve(item)?.digest().clone();
                self.dest.delete_manifest(&digest)?;
                Ok(Deleted::Manifest(digest))
            }
            Item::Digest(digest) => {
                self.dest.delete_manifest(digest)?;
                Ok(Deleted::Manifest(digest.clone()))
            }
        }
    }
}
