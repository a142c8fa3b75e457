//! The `docker://` transport: a registry repository (distribution spec v2) as a [`Source`] and a
//! [`Destination`].
//!
//! Pull: the manifest is fetched with an `Accept` of every OCI and Docker manifest and index type and
//! checked against the digest in the reference and in `Docker-Content-Digest`; blobs stream straight
//! from the response (resumed with `Range` after a dropped connection) and the caller verifies them.
//! Push: blobs go up monolithically when small and in `PATCH` chunks when large (a failed chunk resumes
//! from where the registry says it stands); a blob is committed (`PUT ?digest=`) only after its stream
//! verified; manifests are `PUT` as their exact bytes, so digests are kept.

pub mod auth;
pub mod client;
pub mod credentials;
mod feed;
pub mod retry;
pub mod streamed;

use std::io::{self, Read};
use std::sync::Mutex;

use bytes::Bytes;
use reqwest::blocking::Response;
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, LINK, LOCATION, RANGE,
};
use reqwest::{Method, Url};

use self::client::{Client, ClientConfig, Paced, Req, TooSlow, read_bounded, short_url};
use self::feed::Feed;
use self::retry::{RetryPolicy, is_retryable_status};
use super::{BlobReader, Destination, OpenOptions, RegistryOrigin, Source, VerifiedStream};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result, to_io};
use crate::limits::{Limits, human_bytes};
use crate::media_type;
use crate::reference::ImageName;

/// Every manifest and index type hoist reads, for `Accept`.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

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

/// Retries when `--retry-times` is not given.
pub const DEFAULT_RETRY_TIMES: u32 = 3;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Builds the client for an image's registry from the open options (credentials from `--creds`, else
/// the auth files).
pub fn client_for(name: &ImageName, opts: &OpenOptions) -> Result<Client> {
    let host = name.registry_host().to_string();
    let creds = match &opts.creds {
        Some(c) => Some(c.clone()),
        None => credentials::AuthFiles::from_env(opts.authfile.clone())
            .lookup(&host, &name.repository)?,
    };
    Client::new(
        &host,
        ClientConfig {
            tls_verify: opts.tls_verify.unwrap_or(true),
            tls_verify_flag: opts
                .tls_verify_flag
                .clone()
                .unwrap_or_else(|| "--tls-verify".into()),
            cert_dir: opts.cert_dir.clone(),
            creds,
            retry: RetryPolicy::new(opts.retry_times.unwrap_or(DEFAULT_RETRY_TIMES)),
            max_response_size: opts.limits.max_response_size,
            timeout: opts.timeout.unwrap_or(client::DEFAULT_TIMEOUT),
        },
    )
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// How a chunk went: sent (the URL to go on at), or its session lost for the reason given.
enum Chunk {
    Sent(Url),
    Lost(String),
}

/// The media type of a `Content-Type` value without parameters.
fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Reads a manifest response into a [`Document`], checking its size limit and the digests the reference
/// and the `Docker-Content-Digest` header promise.
fn document_from_response(
    client: &Client,
    resp: Response,
    expected: Option<&Digest>,
    limits: &Limits,
    what: &str,
) -> Result<Document> {
    let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let header_digest = header_str(resp.headers(), DOCKER_CONTENT_DIGEST);
    let mut bytes = Vec::new();
    client
        .body(resp, what)
        .take(limits.max_document_size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {what}"), e))?;
    if bytes.len() as u64 > limits.max_document_size {
        return Err(Error::LimitExceeded {
            what: what.to_string(),
            limit: human_bytes(limits.max_document_size),
            option: "--max-manifest-size".into(),
        });
    }
    let algorithm = expected
        .map(Digest::algorithm)
        .unwrap_or(crate::digest::Algorithm::Sha256);
    let ct = bare_media_type(&content_type);
    let media_type = if media_type::is_document(ct) {
        ct.to_string()
    } else {
        Document::detect(bytes.clone())?.media_type().to_string()
    };
    let doc = Document::with_algorithm(&media_type, bytes, algorithm)?;
    if let Some(want) = expected
        && doc.digest() != want
    {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: want.clone(),
            actual: doc.digest().clone(),
        });
    }
    if let Some(h) = header_digest.as_deref().and_then(|h| Digest::parse(h).ok()) {
        let actual = Digest::of_bytes(h.algorithm(), doc.bytes());
        if actual != h {
            return Err(Error::DigestMismatch {
                what: format!("{what} (Docker-Content-Digest header)"),
                expected: h,
                actual,
            });
        }
    }
    Ok(doc)
}

/// Reads an image from a registry.
#[derive(Debug)]
pub struct RegistrySource {
    client: Client,
    name: ImageName,
    limits: Limits,
    root: Mutex<Option<Document>>,
    page_size: Option<usize>,
}

impl RegistrySource {
    /// A source for `name`; nothing is requested until it is read.
    pub fn open(name: &ImageName, opts: &OpenOptions) -> Result<Self> {
        Ok(RegistrySource {
            client: client_for(name, opts)?,
            name: name.clone(),
            limits: opts.limits.clone(),
            root: Mutex::new(None),
            page_size: None,
        })
    }

    /// Asks for tag lists `n` tags at a time (default: as the registry decides).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    fn scope(&self) -> String {
        auth::repository_scope(&self.name.repository, false)
    }

    fn get_manifest(&self, reference: &str, expected: Option<&Digest>) -> Result<Document> {
        let path = format!("v2/{}/manifests/{reference}", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("GET /{path}");
        let req = Req::new(Method::GET, url, &self.scope()).header(ACCEPT, MANIFEST_ACCEPT);
        let resp = self.client.send(&req, &what)?;
        if resp.status().as_u16() == 404 {
            return Err(Error::NotFound {
                reference: format!("{}:{reference}", self.name.repository),
                location: format!("registry {}", self.client.host()),
                hint: String::new(),
            });
        }
        let resp = self.client.expect(&what, resp, &[200])?;
        document_from_response(
            &self.client,
            resp,
            expected,
            &self.limits,
            &format!("manifest {}", self.name),
        )
    }

    fn get_blob(&self, digest: &Digest, range_from: u64) -> Result<Response> {
        let path = format!("v2/{}/blobs/{digest}", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("GET /{path}");
        let mut req = Req::new(Method::GET, url, &self.scope());
        if range_from > 0 {
            req = req.header(RANGE, &format!("bytes={range_from}-"));
        }
        let resp = self.client.send(&req, &what)?;
        if resp.status().as_u16() == 404 {
            return Err(Error::BlobNotFound {
                digest: digest.clone(),
                location: format!("docker://{}", self.name),
            });
        }
        self.client.expect(&what, resp, &[200, 206])
    }
}

/// A blob download that resumes with a `Range` request when the connection breaks.
struct ResumingReader<'a> {
    source: &'a RegistrySource,
    digest: Digest,
    size: u64,
    offset: u64,
    resp: Paced<Response>,
    attempts: u32,
}

impl ResumingReader<'_> {
    fn reopen(&mut self) -> Result<()> {
        let resp = self.source.get_blob(&self.digest, self.offset)?;
        let range_ignored = resp.status().as_u16() == 200;
        let mut resp = self
            .source
            .client
            .body(resp, &format!("blob {}", self.digest));
        if range_ignored && self.offset > 0 {
            // The registry ignored the range: skip what was already read.
            let skipped = io::copy(&mut (&mut resp).take(self.offset), &mut io::sink())
                .map_err(|e| Error::io(format!("resuming blob {}", self.digest), e))?;
            if skipped != self.offset {
                return Err(Error::io(
                    format!("resuming blob {}", self.digest),
                    io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
        self.resp = resp;
        Ok(())
    }
}

impl ResumingReader<'_> {
    /// A read that timed out says so, with the wait and the flag that sets it.
    fn explain(&self, err: io::Error) -> io::Error {
        if err.get_ref().is_some_and(|e| e.is::<TooSlow>()) {
            return err;
        }
        let timed_out = err.kind() == io::ErrorKind::TimedOut
            || err
                .get_ref()
                .and_then(|e| e.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        if !timed_out {
            return err;
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "registry {} sent no bytes of blob {} for {:?} at byte {} \
                 (--registry-timeout sets the wait)",
                self.source.client.host(),
                self.digest,
                self.source.client.timeout(),
                self.offset
            ),
        )
    }
}

impl Read for ResumingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let err = match self.resp.read(buf) {
                Ok(0) if self.offset < self.size && !buf.is_empty() => {
                    io::Error::from(io::ErrorKind::UnexpectedEof)
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            let policy = self.source.client.retry();
            if self.attempts >= policy.times {
                return Err(self.explain(err));
            }
            tracing::info!(
                "blob {} broke at byte {}: {err}; resuming",
                self.digest,
                self.offset
            );
            std::thread::sleep(policy.delay(self.attempts, None));
            self.attempts += 1;
            self.reopen().map_err(to_io)?;
        }
    }
}

/// The `rel="next"` target of a `Link` header, resolved against the URL it came from.
pub fn next_link(header: &str, current: &Url) -> Option<Url> {
    for part in header.split(',') {
        let part = part.trim();
        let (target, params) = part.strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split(' ').any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return current.join(target.trim()).ok();
        }
    }
    None
}

#[derive(serde::Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

impl Source for RegistrySource {
    fn name(&self) -> String {
        format!("docker://{}", self.name)
    }

    fn root(&self) -> Result<Document> {
        let mut slot = self.root.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(doc) = slot.as_ref() {
            return Ok(doc.clone());
        }
        let doc = self.get_manifest(&self.name.reference(), self.name.digest.as_ref())?;
        crate::document::check_root_media_type(doc.media_type(), &self.name())?;
        *slot = Some(doc.clone());
        Ok(doc)
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        let digest = digest_of(desc)?;
        if media_type::is_document(desc.media_type().as_ref()) {
            // Child manifests live under /manifests/; the caller verifies them against `desc`.
            let path = format!("v2/{}/manifests/{digest}", self.name.repository);
            let url = self.client.url(&path)?;
            let what = format!("GET /{path}");
            let req = Req::new(Method::GET, url, &self.scope()).header(ACCEPT, MANIFEST_ACCEPT);
            let resp = self.client.send(&req, &what)?;
            if resp.status().as_u16() == 404 {
                return Err(Error::BlobNotFound {
                    digest,
                    location: self.name(),
                });
            }
            let resp = self.client.expect(&what, resp, &[200])?;
            return Ok(Box::new(
                self.client.body(resp, &format!("manifest {digest}")),
            ));
        }
        let resp = self.get_blob(&digest, 0)?;
        Ok(Box::new(ResumingReader {
            source: self,
            resp: self.client.body(resp, &format!("blob {digest}")),
            digest,
            size: desc.size(),
            offset: 0,
            attempts: 0,
        }))
    }

    fn tags(&self) -> Result<Vec<String>> {
        let mut path = format!("v2/{}/tags/list", self.name.repository);
        if let Some(n) = self.page_size {
            path.push_str(&format!("?n={n}"));
        }
        let mut url = self.client.url(&path)?;
        let mut tags = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            if seen.len() >= self.limits.max_tag_pages {
                return Err(Error::LimitExceeded {
                    what: format!("the tag list of {} (pages)", self.name()),
                    limit: format!("{} pages", self.limits.max_tag_pages),
                    option: "--max-tag-pages".into(),
                });
            }
            if !seen.insert(url.clone()) {
                return Err(self
                    .client
                    .registry_error("the tag list's Link header loops".into(), None));
            }
            let what = format!("GET {}", short_url(&url));
            let resp = self
                .client
                .send(&Req::new(Method::GET, url.clone(), &self.scope()), &what)?;
            if resp.status().as_u16() == 404 {
                return Err(Error::NotFound {
                    reference: self.name.repository.clone(),
                    location: format!("registry {}", self.client.host()),
                    hint: String::new(),
                });
            }
            let resp = self.client.expect(&what, resp, &[200])?;
            let next = header_str(resp.headers(), LINK.as_str()).and_then(|h| next_link(&h, &url));
            let body = read_bounded(
                self.client.body(resp, "tag list"),
                self.client.max_response_size(),
                "tag list",
            )?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::invalid_document("tag list", e.to_string()))?;
            tags.extend(page.tags.unwrap_or_default());
            if tags.len() > self.limits.max_tags {
                return Err(Error::LimitExceeded {
                    what: format!("the tag list of {} (tags)", self.name()),
                    limit: format!("{} tags", self.limits.max_tags),
                    option: "--max-tags".into(),
                });
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(tags)
    }

    fn registry_origin(&self) -> Option<RegistryOrigin> {
        Some(RegistryOrigin {
            registry: self.client.host().to_string(),
            repository: self.name.repository.clone(),
        })
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Writes an image to a registry.
#[derive(Debug)]
pub struct RegistryDestination {
    client: Client,
    name: ImageName,
}

impl RegistryDestination {
    /// A destination for `name`; nothing is sent until something is written.
    pub fn open(name: &ImageName, opts: &OpenOptions) -> Result<Self> {
        Ok(RegistryDestination {
            client: client_for(name, opts)?,
            name: name.clone(),
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
    fn upload_monolithic(&self, digest: &Digest, data: Bytes) -> Result<()> {
        let policy = self.client.retry();
        let mut attempt = 0;
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
            if !retryable || attempt >= policy.times {
                return Err(err);
            }
            tracing::info!("{err} (retrying with a new upload)");
            std::thread::sleep(policy.delay(attempt, None));
            attempt += 1;
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
        let policy = self.client.retry();
        let mut from = start;
        let mut attempt = 0;
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
            if attempt >= policy.times {
                return Err(failure);
            }
            std::thread::sleep(policy.delay(attempt, None));
            attempt += 1;
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
        let policy = self.client.retry();
        let mut url = session.clone();
        let mut feed = Feed::new(&mut *stream, size, PIECE_SIZE, RESUME_WINDOW);
        let mut offset = 0u64;
        let mut restarts = 0;
        while offset < size {
            let end = (offset + CHUNK_SIZE).min(size);
            match self.patch_chunk(url, offset, end, &mut feed)? {
                Chunk::Sent(next) => {
                    url = next;
                    offset = end;
                }
                Chunk::Lost(why) => {
                    if restarts >= policy.times || feed.rewind(0).is_err() {
                        return Err(self.client.registry_error(
                            format!(
                                "{why}; the upload cannot go on, and the blob's start is no \
                                 longer at hand to begin again: copy again (blobs already pushed \
                                 are skipped)"
                            ),
                            None,
                        ));
                    }
                    restarts += 1;
                    tracing::info!("{why} (starting the upload again)");
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

    fn put_manifest(&self, reference: &str, doc: &Document) -> Result<()> {
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
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_is_resolved() {
        let cur = Url::parse("http://127.0.0.1:5000/v2/a/tags/list?n=2").unwrap();
        let next = next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#, &cur).unwrap();
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:5000/v2/a/tags/list?last=b&n=2"
        );
        let abs = next_link(
            r#"<https://x.example/v2/a/tags/list?last=c>; rel="prev", <https://x.example/v2/a/tags/list?last=d>; rel=next"#,
            &cur,
        )
        .unwrap();
        assert_eq!(abs.as_str(), "https://x.example/v2/a/tags/list?last=d");
        assert!(next_link(r#"</v2/a/tags/list?last=b>; rel="prev""#, &cur).is_none());
        assert!(next_link("garbage", &cur).is_none());
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert_eq!(
            bare_media_type("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
            media_type::OCI_MANIFEST
        );
    }
}
