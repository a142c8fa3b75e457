//! Writing an image to a registry: blobs monolithically when small and in streamed `PATCH` chunks
//! when large (a failed chunk resumes from where the registry says it stands), committed
//! (`PUT ?digest=`) only after their stream verified; manifests `PUT` as their exact bytes.

use std::io::Read;

use bytes::Bytes;
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, LOCATION, RANGE};
use reqwest::{Method, Url};

use super::client::{Client, Req, short_url};
use super::feed::Feed;
use super::retry::{Attempts, is_retryable_status};
use super::{DOCKER_CONTENT_DIGEST, auth, header_str};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::reference::ImageName;
use crate::transport::{Destination, OpenOptions, RegistryOrigin, VerifiedStream};

/// Blobs up to this size are read into memory and uploaded in one `PUT`.
pub const MONOLITHIC_MAX: usize = 16 << 20;

/// Larger blobs go up in `PATCH` chunks of at most this size, each streamed as it is read (one
/// request per chunk: registries spend a few milliseconds of CPU on each).
pub const CHUNK_SIZE: u64 = 64 << 20;

/// The pieces a streamed chunk is read and handed to the HTTP client in.
const PIECE_SIZE: usize = 512 << 10;

/// How far back a failed chunk can resume: the registry usually holds all but the last few MiB it
/// was sent. This and a few pieces are an upload's memory, whatever the blob's size.
const RESUME_WINDOW: u64 = 16 << 20;

/// How a chunk went: sent (the URL to go on at), or its session lost for the reason given.
enum Chunk {
    Sent(Url),
    Lost(String),
}

/// Writes an image to a registry.
#[derive(Debug)]
pub struct RegistryDestination {
    pub(super) client: Client,
    pub(super) name: ImageName,
    limits: crate::limits::Limits,
}

impl RegistryDestination {
    /// A destination for `name`; nothing is sent until something is written.
    pub fn open(name: &ImageName, opts: &OpenOptions) -> Result<Self> {
        // registries.conf's location (never a mirror), under the name it gives.
        let (client, name) = super::connect(name, opts, false)?;
        Ok(RegistryDestination {
            client,
            name,
            limits: opts.limits.clone(),
        })
    }

    fn scope(&self) -> String {
        auth::repository_scope(&self.name.repository, true)
    }

    fn location(&self, resp: &Response, base: &Url) -> Result<Url> {
        self.location_in(resp.headers(), resp.status().as_u16(), base)
    }

    /// The `Location` in `headers` (of an answer with `status`), resolved against `base`.
    fn location_in(&self, headers: &HeaderMap, status: u16, base: &Url) -> Result<Url> {
        let loc = header_str(headers, LOCATION.as_str()).ok_or_else(|| {
            self.client.registry_error(
                format!("{} answered without a Location", short_url(base)),
                Some(status),
            )
        })?;
        base.join(&loc).map_err(|e| {
            self.client
                .registry_error(format!("invalid upload Location: {e}"), None)
        })
    }

    /// Starts an upload session; returns its URL.
    fn start_upload(&self) -> Result<Url> {
        let path = format!("v2/{}/blobs/uploads/", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("POST /{path}");
        let resp = self.client.send(
            &Req::new(Method::POST, url.clone(), &self.scope()).header(CONTENT_LENGTH, "0"),
            &what,
        )?;
        let resp = self.client.expect(&what, resp, &[202])?;
        self.location(&resp, &url)
    }

    fn cancel_upload(&self, url: &Url) {
        let _ = self.client.send_once(
            &Req::new(Method::DELETE, url.clone(), &self.scope()),
            "cancel upload",
        );
    }

    /// Commits an upload with `PUT ?digest=` and an optional last piece of data. With data, the `PUT`
    /// is tried once: after a broken body the registry may have dropped the session, so the caller
    /// retries with a new one.
    fn finish_upload(&self, url: &Url, digest: &Digest, data: Bytes) -> Result<()> {
        let mut put = url.clone();
        put.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let what = format!("PUT blob {digest}");
        let with_data = !data.is_empty();
        let req = Req::new(Method::PUT, put, &self.scope())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, &data.len().to_string())
            .body(data);
        let resp = if with_data {
            self.client.send_once(&req, &what)?
        } else {
            self.client.send(&req, &what)?
        };
        self.client.expect(&what, resp, &[201]).map(|_| ())
    }

    /// Uploads a small blob held in memory in one `PUT`, with a new session for each retry.
    pub(super) fn upload_monolithic(&self, digest: &Digest, data: Bytes) -> Result<()> {
        let mut attempts = Attempts::new(self.client.retry());
        loop {
            let url = self.start_upload()?;
            let err = match self.finish_upload(&url, digest, data.clone()) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.cancel_upload(&url);
            let retryable = match &err {
                Error::Registry { status: None, .. } => true,
                Error::Registry {
                    status: Some(s), ..
                } => is_retryable_status(*s),
                _ => false,
            };
            if !retryable || !attempts.again(format_args!("with a new upload ({err})"), None) {
                return Err(err);
            }
        }
    }

    /// Where an upload stands: the number of bytes the registry holds, and the URL to continue at.
    fn upload_status(&self, url: &Url) -> Result<(u64, Url)> {
        let what = "GET upload status";
        let resp = self
            .client
            .send(&Req::new(Method::GET, url.clone(), &self.scope()), what)?;
        let resp = self.client.expect(what, resp, &[204])?;
        let next = self.location(&resp, url).unwrap_or_else(|_| url.clone());
        let have = header_str(resp.headers(), RANGE.as_str())
            .and_then(|r| {
                let end = r
                    .trim_start_matches("bytes=")
                    .split_once('-')?
                    .1
                    .parse::<u64>()
                    .ok()?;
                Some(end + 1)
            })
            .unwrap_or(0);
        Ok((have, next))
    }

    /// Sends bytes `start..end` of the blob in `feed` as one streamed `PATCH`, resuming from the
    /// registry's offset after a failure (within the feed's window).
    fn patch_chunk<R: Read>(
        &self,
        mut url: Url,
        start: u64,
        end: u64,
        feed: &mut Feed<'_, R>,
    ) -> Result<Chunk> {
        let mut attempts = Attempts::new(self.client.retry());
        let mut from = start;
        loop {
            let req = Req::new(Method::PATCH, url.clone(), &self.scope())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, &(end - from).to_string())
                .header(
                    HeaderName::from_static("content-range"),
                    &format!("{from}-{}", end - 1),
                );
            let what = format!("PATCH {} ({from}-{})", short_url(&url), end - 1);
            let answer = self
                .client
                .send_streamed(&req, &what, end - from, |owed| feed.next(owed));
            let failure = match answer {
                Ok(a) if a.status.as_u16() == 202 => {
                    return self.location_in(&a.headers, 202, &url).map(Chunk::Sent);
                }
                Ok(a) if is_retryable_status(a.status.as_u16()) || a.status.as_u16() == 401 => {
                    self.client.answer_error(&what, a)
                }
                Ok(a) => return Err(self.client.answer_error(&what, a)),
                Err(e @ Error::Registry { status: None, .. }) => e,
                Err(e) => return Err(e),
            };
            if !attempts.again(format_args!("{what} ({failure})"), None) {
                return Err(failure);
            }
            // docker-registry refuses this (BLOB_UPLOAD_INVALID) once a chunk broke half-way: the
            // session is lost, and the caller may start another.
            let (have, next) = match self.upload_status(&url) {
                Ok(status) => status,
                Err(e) => {
                    return Ok(Chunk::Lost(format!(
                        "{failure}; asking where the upload stood then failed: {e}"
                    )));
                }
            };
            if have < start || have > end {
                return Err(self.client.registry_error(
                    format!(
                        "cannot resume the upload at byte {have}: this chunk covers {start}-{}",
                        end - 1
                    ),
                    None,
                ));
            }
            if have == end {
                return Ok(Chunk::Sent(next));
            }
            if let Err(kept) = feed.rewind(have) {
                return Ok(Chunk::Lost(format!(
                    "{failure}; the registry holds {have} bytes, and only bytes from {kept} on \
                     are still at hand"
                )));
            }
            tracing::info!("resuming upload at byte {have}");
            from = have;
            url = next;
        }
    }

    /// Uploads a large blob in streamed `PATCH` chunks of [`CHUNK_SIZE`]. The blob is read (and
    /// verified) piece by piece as it goes out; what is kept is the resume window. A session the
    /// registry cannot continue is replaced by a new one while the blob's start is still kept.
    fn upload_chunked(
        &self,
        digest: &Digest,
        size: u64,
        stream: &mut VerifiedStream<'_>,
    ) -> Result<()> {
        let mut session = self.start_upload()?;
        let result = self.send_chunks(digest, size, stream, &mut session);
        if result.is_err() {
            self.cancel_upload(&session);
        }
        result
    }

    fn send_chunks(
        &self,
        digest: &Digest,
        size: u64,
        stream: &mut VerifiedStream<'_>,
        session: &mut Url,
    ) -> Result<()> {
        let mut restarts = Attempts::new(self.client.retry());
        let mut url = session.clone();
        let mut feed = Feed::new(&mut *stream, size, PIECE_SIZE, RESUME_WINDOW);
        let mut offset = 0u64;
        while offset < size {
            let end = (offset + CHUNK_SIZE).min(size);
            match self.patch_chunk(url, offset, end, &mut feed)? {
                Chunk::Sent(next) => {
                    url = next;
                    offset = end;
                }
                Chunk::Lost(why) => {
                    if restarts.is_exhausted() || feed.rewind(0).is_err() {
                        return Err(self.client.registry_error(
                            format!(
                                "{why}; the upload cannot go on, and the blob's start is no \
                                 longer at hand to begin again: copy again (blobs already pushed \
                                 are skipped)"
                            ),
                            None,
                        ));
                    }
                    restarts.again(format_args!("the upload from its start ({why})"), None);
                    self.cancel_upload(session);
                    *session = self.start_upload()?;
                    url = session.clone();
                    offset = 0;
                }
            }
        }
        if !stream.is_verified() {
            // The last byte was read, but not the end of the stream, where the digest is checked.
            stream.finish()?;
        }
        self.finish_upload(&url, digest, Bytes::new())
    }

    pub(super) fn put_manifest(&self, reference: &str, doc: &Document) -> Result<()> {
        let path = format!("v2/{}/manifests/{reference}", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("PUT /{path}");
        let req = Req::new(Method::PUT, url, &self.scope())
            .header(CONTENT_TYPE, doc.media_type())
            .body(Bytes::copy_from_slice(doc.bytes()));
        let resp = self.client.send(&req, &what)?;
        let resp = self.client.expect(&what, resp, &[200, 201, 202])?;
        if let Some(h) = header_str(resp.headers(), DOCKER_CONTENT_DIGEST)
            && let Ok(d) = Digest::parse(&h)
            && d.algorithm() == doc.digest().algorithm()
            && &d != doc.digest()
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest stored by {}", self.name()),
                expected: doc.digest().clone(),
                actual: d,
            });
        }
        // A registry with the referrers API says it indexed the subject; without that answer the
        // client keeps the tag-schema fallback index (distribution-spec, "Pushing Manifests with
        // Subject").
        // (Not when the manifest is being put under that fallback tag itself: a tag copied as it is.)
        if let Ok(Some(subject)) = crate::artifact::subject(doc)
            && header_str(resp.headers(), crate::artifact::OCI_SUBJECT_HEADER).is_none()
        {
            let subject = digest_of(&subject)?;
            if reference != crate::artifact::fallback_tag(&subject) {
                self.add_to_fallback_index(&subject, doc)?;
            }
        }
        Ok(())
    }

    /// Adds `doc` to the tag-schema fallback index of `subject` (read, add, write), then reads the
    /// index again: when a concurrent writer replaced it without `doc`, the update is made again, at
    /// most [`FALLBACK_ATTEMPTS`] times. (Without conditional writes a lost entry is detected only
    /// when the other writer's update lands before the re-read.)
    fn add_to_fallback_index(&self, subject: &Digest, doc: &Document) -> Result<()> {
        let tag = crate::artifact::fallback_tag(subject);
        let entry = crate::artifact::referrer_descriptor(doc)?;
        let what = format!(
            "the referrers fallback index {}:{tag}",
            self.name.repository
        );
        for _ in 0..FALLBACK_ATTEMPTS {
            let current = self.fallback_entries(&tag, &what)?;
            if current
                .iter()
                .any(|d| d.digest().to_string() == doc.digest().to_string())
            {
                return Ok(());
            }
            let mut entries = current;
            entries.push(entry.clone());
            crate::artifact::check_count(entries.len(), &self.limits, &what)?;
            let index = crate::artifact::listing_index(&entries)?;
            self.put_manifest(&tag, &index)?;
            let after = self.fallback_entries(&tag, &what)?;
            if after
                .iter()
                .any(|d| d.digest().to_string() == doc.digest().to_string())
            {
                return Ok(());
            }
            tracing::info!(
                "{what}: a concurrent update dropped {}; again",
                doc.digest()
            );
        }
        Err(self.client.registry_error(
            format!(
                "{what}: {} was dropped by concurrent updates {FALLBACK_ATTEMPTS} times",
                doc.digest()
            ),
            None,
        ))
    }

    /// The entries of a fallback index (none when the tag does not exist).
    fn fallback_entries(&self, tag: &str, what: &str) -> Result<Vec<Descriptor>> {
        match super::pull::fetch_manifest(&self.client, &self.name, tag, None, &self.limits, true) {
            Ok(doc) => crate::artifact::entries_of_listing(&doc)
                .map_err(|e| Error::invalid_document(what, e.to_string())),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// How many times a fallback index update is made again after a concurrent writer dropped it.
pub const FALLBACK_ATTEMPTS: usize = crate::transport::SHARED_UPDATE_ATTEMPTS;

impl Destination for RegistryDestination {
    fn name(&self) -> String {
        format!("docker://{}", self.name)
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let digest = digest_of(desc)?;
        let path = format!("v2/{}/blobs/{digest}", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("HEAD /{path}");
        let resp = self
            .client
            .send(&Req::new(Method::HEAD, url, &self.scope()), &what)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.client.error(&what, resp)),
        }
    }

    fn put_blob(&self, desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()> {
        let digest = digest_of(desc)?;
        if desc.size() <= MONOLITHIC_MAX as u64 {
            // Small: read (and verify) it whole, then upload it in one request.
            let mut data = Vec::with_capacity(desc.size() as usize);
            stream
                .read_to_end(&mut data)
                .map_err(|e| crate::error::from_io(e, || format!("reading blob {digest}")))?;
            if !stream.is_verified() {
                stream.finish()?;
            }
            return self.upload_monolithic(&digest, Bytes::from(data));
        }
        self.upload_chunked(&digest, desc.size(), stream)
    }

    fn mount_blob(&self, desc: &Descriptor, origin: &RegistryOrigin) -> Result<bool> {
        if origin.registry != self.client.host() || origin.repository == self.name.repository {
            return Ok(false);
        }
        let digest = digest_of(desc)?;
        let path = format!("v2/{}/blobs/uploads/", self.name.repository);
        let mut url = self.client.url(&path)?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", &origin.repository);
        let scope = format!(
            "{} {}",
            self.scope(),
            auth::repository_scope(&origin.repository, false)
        );
        let what = format!("POST /{path} (mount {digest})");
        let resp = self.client.send(
            &Req::new(Method::POST, url.clone(), &scope).header(CONTENT_LENGTH, "0"),
            &what,
        )?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                // The registry could not mount and opened an upload instead: close it.
                if let Ok(loc) = self.location(&resp, &url) {
                    self.cancel_upload(&loc);
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        self.put_manifest(&doc.digest().to_string(), doc)
    }

    fn commit_tagged(&self, tag: &str, doc: &Document) -> Result<()> {
        crate::reference::check_tag(tag, crate::reference::TagGrammar::Registry)?;
        self.put_manifest(tag, doc)
    }

    fn holds_referrers(&self) -> bool {
        true
    }

    fn commit_referrer(&self, doc: &Document) -> Result<()> {
        // put_manifest keeps the fallback index when the registry has no referrers API.
        self.put_manifest(&doc.digest().to_string(), doc)
    }

    fn commit(&self, root: &Document) -> Result<()> {
        if let Some(d) = &self.name.digest
            && d != root.digest()
        {
            return Err(Error::DigestMismatch {
                what: format!("the image written to {}", self.name()),
                expected: d.clone(),
                actual: root.digest().clone(),
            });
        }
        match &self.name.tag {
            Some(t) => self.put_manifest(t, root),
            None => self.put_manifest(&root.digest().to_string(), root),
        }
    }
}
