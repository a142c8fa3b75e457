//! Reading an image from a registry: the manifest, checked against the digests the reference and
//! `Docker-Content-Digest` promise, and blobs streamed straight from the response (resumed with
//! `Range` after a dropped connection) for the caller to verify.

use std::io::{self, Read};
use std::sync::Mutex;

use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RANGE};

use super::client::{Client, Paced, Req, TooSlow};
use super::retry::Attempts;
use super::{DOCKER_CONTENT_DIGEST, auth, bare_media_type, header_str};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result, to_io};
use crate::limits::{Limits, human_bytes};
use crate::media_type;
use crate::reference::ImageName;
use crate::transport::{BlobReader, OpenOptions, RegistryOrigin, Source};

/// Every manifest and index type hoist reads, for `Accept`.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

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

/// `GET`s the manifest `reference` (a tag or digest) of `name`'s repository, size-limited and checked
/// against `expected` and `Docker-Content-Digest` (`push`: with a scope that may push, for a
/// read-modify-write).
pub(super) fn fetch_manifest(
    client: &Client,
    name: &ImageName,
    reference: &str,
    expected: Option<&Digest>,
    limits: &Limits,
    push: bool,
) -> Result<Document> {
    let path = format!("v2/{}/manifests/{reference}", name.repository);
    let url = client.url(&path)?;
    let what = format!("GET /{path}");
    let scope = auth::repository_scope(&name.repository, push);
    let req = Req::new(Method::GET, url, &scope).header(ACCEPT, MANIFEST_ACCEPT);
    let resp = client.send(&req, &what)?;
    if resp.status().as_u16() == 404 {
        return Err(Error::NotFound {
            reference: format!("{}:{reference}", name.repository),
            location: format!("registry {}", client.host()),
            hint: String::new(),
        });
    }
    let resp = client.expect(&what, resp, &[200])?;
    document_from_response(client, resp, expected, limits, &format!("manifest {name}"))
}

/// Reads an image from a registry.
#[derive(Debug)]
pub struct RegistrySource {
    pub(super) client: Client,
    pub(super) name: ImageName,
    pub(super) limits: Limits,
    root: Mutex<Option<Document>>,
    pub(super) page_size: Option<usize>,
    /// Set when the registry answered 404 to the referrers API: listings read fallback indexes.
    pub(super) no_referrers_api: std::sync::atomic::AtomicBool,
}

/// The registry's answer to a `HEAD` of `name`'s manifest (which costs no pull quota): `None` when
/// absent, else its digest (`Docker-Content-Digest`, when given and valid) and media type.
pub(super) fn head_manifest(
    client: &Client,
    name: &ImageName,
) -> Result<Option<(Option<Digest>, String)>> {
    let path = format!("v2/{}/manifests/{}", name.repository, name.reference());
    let url = client.url(&path)?;
    let req = Req::new(
        Method::HEAD,
        url,
        &auth::repository_scope(&name.repository, false),
    )
    .header(ACCEPT, MANIFEST_ACCEPT);
    let what = format!("HEAD /{path}");
    let resp = client.send(&req, &what)?;
    if resp.status().as_u16() == 404 {
        return Ok(None);
    }
    let resp = client.expect(&what, resp, &[200])?;
    let digest = header_str(resp.headers(), DOCKER_CONTENT_DIGEST).and_then(|d| d.parse().ok());
    let media_type = header_str(resp.headers(), CONTENT_TYPE.as_str())
        .map(|c| bare_media_type(&c).to_string())
        .unwrap_or_default();
    Ok(Some((digest, media_type)))
}

/// True when the registry has `name`'s manifest (asked with `HEAD`): how a registries.conf mirror
/// is chosen.
pub(super) fn has_manifest(client: &Client, name: &ImageName) -> Result<bool> {
    Ok(head_manifest(client, name)?.is_some())
}

/// The digest and media type of `name`'s root manifest, from a `HEAD` (no pull quota spent), with
/// registries.conf applied as for a pull (mirrors first) or, for a destination (`pull` false), as
/// for a push (the location only): `Ok(None)` when the registry does not have it, an error when it
/// cannot say (the caller then reads the manifest). Up-to-date checks use it.
pub fn head_root(
    name: &ImageName,
    opts: &OpenOptions,
    pull: bool,
) -> Result<Option<(Digest, String)>> {
    let (client, there) = super::connect(name, opts, pull)?;
    match head_manifest(&client, &there)? {
        None => Ok(None),
        Some((Some(d), mt)) => Ok(Some((d, mt))),
        Some((None, _)) => Err(client.registry_error(
            format!(
                "HEAD of {}:{} answered without a Docker-Content-Digest",
                there.repository,
                there.reference()
            ),
            None,
        )),
    }
}

impl RegistrySource {
    /// A source for `name`; nothing is requested until it is read.
    pub fn open(name: &ImageName, opts: &OpenOptions) -> Result<Self> {
        // registries.conf may send the pull to a mirror or another location, under another name.
        let (client, name) = super::connect(name, opts, true)?;
        Ok(RegistrySource {
            client,
            name,
            limits: opts.limits.clone(),
            root: Mutex::new(None),
            page_size: opts.page_size.map(|n| n.max(1)),
            no_referrers_api: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Asks for tag lists `n` tags at a time (default: as the registry decides).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    pub(super) fn scope(&self) -> String {
        auth::repository_scope(&self.name.repository, false)
    }

    pub(super) fn get_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Document> {
        fetch_manifest(
            &self.client,
            &self.name,
            reference,
            expected,
            &self.limits,
            false,
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
    attempts: Attempts,
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
            let what = format_args!(
                "blob {} from byte {} (it broke: {err})",
                self.digest, self.offset
            );
            if !self.attempts.again(what, None) {
                return Err(self.explain(err));
            }
            self.reopen().map_err(to_io)?;
        }
    }
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
            attempts: Attempts::new(self.client.retry()),
        }))
    }

    fn tags(&self) -> Result<Vec<String>> {
        self.list_tags()
    }

    fn tagged(&self, tag: &str) -> Result<Option<Document>> {
        crate::reference::check_tag(tag, crate::reference::TagGrammar::Registry)?;
        match self.get_manifest(tag, None) {
            Ok(doc) => Ok(Some(doc)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn referrers(&self, digest: &Digest, artifact_types: &[String]) -> Result<Vec<Descriptor>> {
        self.list_referrers(digest, artifact_types)
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
