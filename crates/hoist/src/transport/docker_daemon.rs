//! The `docker-daemon:` transport: images of the Docker daemon on `DOCKER_HOST` (`unix://PATH`, the
//! default `/var/run/docker.sock`, or `tcp://HOST:PORT`), through the Docker Engine API.
//!
//! Reading streams `GET /images/{name}/get` (a `docker save` archive) into one temp file and reads it
//! with the docker-archive reader: the daemon writes `manifest.json`, which says which member is which,
//! after the layers, so the archive cannot be read in one pass as it arrives. Writing is the
//! docker-archive writer into a private temp directory, then `POST /images/load` of the finished
//! tar; the image appears in the daemon only then, whole (the daemon's load is its own commit).
//! The daemon's error messages (its JSON `message`, or the `error` of a load's progress stream) are
//! shown as the daemon words them.

use std::io::Read;
use std::path::{Path, PathBuf};

use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::descriptor::Descriptor;
use crate::document::Document;
use crate::error::{Error, IoContext, Result};
use crate::limits::Limits;
use crate::reference::{ArchiveSelector, DaemonRef};

use super::docker_archive::{DockerArchiveDestination, DockerArchiveSource, familiar_name};
use super::{BlobReader, Destination, LayerPolicy, OpenOptions, Source, VerifiedStream};

/// The socket the Docker CLI uses when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The most of a daemon's error or load answer that is read (it is a message, not data).
const MAX_ANSWER: u64 = 1 << 20;

/// A connection to the Docker Engine API.
#[derive(Debug, Clone)]
pub struct Daemon {
    http: Client,
    /// `http://localhost` for a unix socket, `http://HOST:PORT` for TCP.
    base: String,
    /// `DOCKER_HOST` as given, for messages.
    host: String,
}

impl Daemon {
    /// The daemon `DOCKER_HOST` names ([`DEFAULT_DOCKER_HOST`] when it is unset or empty).
    pub fn from_env() -> Result<Self> {
        match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => Self::at(&h),
            _ => Self::at(DEFAULT_DOCKER_HOST),
        }
    }

    /// The daemon at `host`: `unix://PATH` or `tcp://HOST:PORT` (plain HTTP; TLS is not supported).
    pub fn at(host: &str) -> Result<Self> {
        super::registry::client::install_crypto_provider();
        let builder = Client::builder()
            // Saving or loading a large image takes as long as it takes; a dead daemon still fails
            // to connect.
            .timeout(None)
            .connect_timeout(std::time::Duration::from_secs(30));
        let (builder, base) = if let Some(path) = host.strip_prefix("unix://") {
            (
                builder.unix_socket(PathBuf::from(path)),
                "http://localhost".to_string(),
            )
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            (builder, format!("http://{}", addr.trim_end_matches('/')))
        } else {
            return Err(Error::Unsupported(format!(
                "DOCKER_HOST {host:?}: hoist reaches the Docker daemon through unix://PATH or tcp://HOST:PORT"
            )));
        };
        let http = builder.build().map_err(|e| {
            Error::Other(format!(
                "docker daemon {host}: setting up the HTTP client: {e}"
            ))
        })?;
        Ok(Daemon {
            http,
            base,
            host: host.to_string(),
        })
    }

    fn request_error(&self, what: &str, e: &reqwest::Error) -> Error {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        Error::Other(format!(
            "docker daemon {}: {what}: {text} (is the daemon running? DOCKER_HOST names it)",
            self.host
        ))
    }

    /// The answer if it is a success; otherwise the daemon's own message as the error (not found
    /// for a 404, so a missing image exits as any missing image does).
    fn check(&self, answer: Response, what: &str, image: &str) -> Result<Response> {
        let status = answer.status();
        if status.is_success() {
            return Ok(answer);
        }
        let mut body = String::new();
        let _ = answer.take(MAX_ANSWER).read_to_string(&mut body);
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string());
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                reference: format!("docker-daemon:{image}"),
                location: format!("the Docker daemon at {}", self.host),
                hint: format!("; the daemon says: {message}"),
            });
        }
        Err(Error::Other(format!(
            "docker daemon {}: {what}: {message} (HTTP {status})",
            self.host
        )))
    }

    /// Streams `docker save IMAGE` into `out`.
    pub fn save(&self, image: &str, out: &mut std::fs::File) -> Result<u64> {
        let what = format!("saving {image}");
        let answer = self
            .http
            .get(format!("{}/images/{image}/get", self.base))
            .send()
            .map_err(|e| self.request_error(&what, &e))?;
        let mut answer = self.check(answer, &what, image)?;
        answer
            .copy_to(out)
            .map_err(|e| self.request_error(&what, &e))
    }

    /// `docker load` of the tar at `archive`; the error of the load, if any, as the daemon words it.
    pub fn load(&self, archive: &Path) -> Result<()> {
        let what = format!("loading {}", archive.display());
        let file = std::fs::File::open(archive).ctx(|| format!("opening {}", archive.display()))?;
        let answer = self
            .http
            .post(format!("{}/images/load?quiet=1", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(file)
            .send()
            .map_err(|e| self.request_error(&what, &e))?;
        let answer = self.check(answer, &what, "(load)")?;
        // A failed load still answers 200: the failure is an `error` in the progress stream.
        let mut body = String::new();
        answer
            .take(MAX_ANSWER)
            .read_to_string(&mut body)
            .map_err(|e| Error::io(format!("docker daemon {}: {what}", self.host), e))?;
        let stream = serde_json::Deserializer::from_str(&body).into_iter::<Value>();
        for item in stream.flatten() {
            let message = item
                .get("errorDetail")
                .and_then(|d| d.get("message"))
                .or_else(|| item.get("error"))
                .and_then(Value::as_str);
            if let Some(message) = message {
                return Err(Error::Other(format!(
                    "docker daemon {}: {what}: {message}",
                    self.host
                )));
            }
        }
        Ok(())
    }
}

/// How the daemon's API names an image of a reference (`app:1`, `localhost:5000/app:1`, `sha256:...`).
fn api_name(reference: &DaemonRef) -> String {
    match reference {
        DaemonRef::Name(n) => familiar_name(n),
        DaemonRef::Id(d) => d.to_string(),
    }
}

/// Reads an image from the Docker daemon (see the module documentation).
#[derive(Debug)]
pub struct DockerDaemonSource {
    name: String,
    archive: DockerArchiveSource,
    _saved: crate::durable::TempFile,
}

impl DockerDaemonSource {
    /// Saves `reference` from `daemon` into a temp file and opens it.
    pub fn open(daemon: &Daemon, reference: &DaemonRef, limits: Limits) -> Result<Self> {
        let image = api_name(reference);
        let mut saved = crate::durable::TempFile::new_in(&std::env::temp_dir())?;
        daemon.save(&image, saved.as_file_mut())?;
        let archive = DockerArchiveSource::open(saved.path(), None, limits)?;
        Ok(DockerDaemonSource {
            name: format!("docker-daemon:{image}"),
            archive,
            _saved: saved,
        })
    }
}

impl Source for DockerDaemonSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> Result<Document> {
        self.archive.root()
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        self.archive.open_blob(desc)
    }

    fn synthesises_layer_types(&self) -> bool {
        self.archive.synthesises_layer_types()
    }

    fn limits(&self) -> &Limits {
        self.archive.limits()
    }
}

/// Writes an image into the Docker daemon (see the module documentation).
#[derive(Debug)]
pub struct DockerDaemonDestination {
    daemon: Daemon,
    name: String,
    archive_path: PathBuf,
    archive: DockerArchiveDestination,
    _staging: crate::durable::TempDir,
}

impl DockerDaemonDestination {
    /// Prepares to load an image named `reference` (`NAME:TAG`; an image ID cannot be written) into
    /// `daemon`, with `opts.additional_tags` as more names.
    pub fn create(daemon: Daemon, reference: &DaemonRef, opts: &OpenOptions) -> Result<Self> {
        let name = match reference {
            DaemonRef::Name(n) => n.clone(),
            DaemonRef::Id(d) => {
                return Err(Error::InvalidReference {
                    reference: format!("docker-daemon:{d}"),
                    reason: "an image ID cannot be written to; give NAME:TAG".into(),
                });
            }
        };
        let staging = crate::durable::TempDir::new_in(&std::env::temp_dir())?;
        let archive_path = staging.path().join("image.tar");
        let archive = DockerArchiveDestination::create(
            &archive_path,
            Some(ArchiveSelector::Name(name.clone())),
        )?
        .with_additional_tags(&opts.additional_tags)?;
        Ok(DockerDaemonDestination {
            daemon,
            name: format!("docker-daemon:{}", familiar_name(&name)),
            archive_path,
            archive,
            _staging: staging,
        })
    }
}

impl Destination for DockerDaemonDestination {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.archive.has_blob(desc)
    }

    fn put_blob(&self, desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()> {
        self.archive.put_blob(desc, stream)
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        self.archive.put_document(doc).map_err(|_| {
            Error::Unsupported(format!(
                "{} holds a single image, not an index (document {}); pick one platform",
                self.name,
                doc.digest()
            ))
        })
    }

    fn commit(&self, root: &Document) -> Result<()> {
        self.archive.commit(root)?;
        self.daemon.load(&self.archive_path)
    }

    fn accepts(&self, media_type: &str) -> bool {
        self.archive.accepts(media_type)
    }

    fn native_format(&self) -> Option<crate::convert::Format> {
        self.archive.native_format()
    }

    fn layer_policy(&self) -> LayerPolicy {
        self.archive.layer_policy()
    }
}
