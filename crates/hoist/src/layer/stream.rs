//! One verified layer stream: opens a layer blob of an image and yields its uncompressed tar, checking
//! everything one layer can be checked for, the same way for every reader (unpack, verify,
//! recompress).
//!
//! Underneath, the blob's bytes pass a [`VerifiedReader`] (size and digest, in the digest's own
//! algorithm); the compression is what the bytes are ([`compress::sniffing_decoder`]), so a mislabelled
//! layer still reads, and [`LayerStream::mislabelled`] says so for those who report it; the decoder
//! checks every gzip member's CRC and accepts only zero padding after the last; the uncompressed bytes
//! are hashed in the algorithm of the config's diff_id. The end of the stream (a read returning 0) is
//! only reached when all of that held: the blob is read to its last byte and the diff_id matched.
//! Any error of the blob itself (short, long, wrong digest) is preferred over what a decoder made of
//! the damage. The foreign-layer policy is here too: a non-distributable layer is read when its blob
//! is present, and a missing one is an error that says hoist does not fetch foreign URLs.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::blob::VerifiedReader;
use crate::cancel::CancelToken;
use crate::compress::{self, Compression};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result, from_io};
use crate::limits::{Limits, human_bytes};
use crate::media_type::{self, Kind};
use crate::progress::{ProgressReader, Sink};
use crate::transport::{BlobReader, Source};

/// Past this many uncompressed bytes, the compression ratio is checked.
const RATIO_GRACE: u64 = compress::EXPANSION_GRACE;

type Blob<'a> = Arc<Mutex<VerifiedReader<BlobReader<'a>>>>;

/// The verified blob, shared between the decoder (which reads it) and the stream (which finishes it).
struct Shared<'a> {
    blob: Blob<'a>,
    count: Arc<AtomicU64>,
}

impl Read for Shared<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut blob = self
            .blob
            .lock()
            .map_err(|_| io::Error::other("blob lock"))?;
        let n = blob.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The uncompressed tar of one layer, verified as it streams (see the module documentation).
pub struct LayerStream<'a> {
    name: String,
    blob: Blob<'a>,
    compressed: Arc<AtomicU64>,
    decoder: Box<dyn Read + Send + 'a>,
    declared: Compression,
    compression: Compression,
    hasher: Option<Hasher>,
    diff_id: Option<Digest>,
    read: u64,
    limits: Option<Limits>,
    cancel: Option<CancelToken>,
    actual: Option<Digest>,
    error: Option<Error>,
    done: bool,
}

impl<'a> LayerStream<'a> {
    /// Opens the layer `desc` of `source`. `name` names it in errors (`layer 2/3 sha256:...`);
    /// `diff_id` is the config's, checked at the end (the uncompressed bytes are hashed in its
    /// algorithm); `progress` receives the compressed bytes read.
    pub fn open(
        source: &'a dyn Source,
        desc: &Descriptor,
        name: &str,
        diff_id: Option<Digest>,
        progress: Option<Sink>,
    ) -> Result<Self> {
        let media = desc.media_type().to_string();
        let Kind::Layer {
            compression: declared,
            foreign,
            ..
        } = media_type::kind(&media)
        else {
            return Err(Error::UnsupportedMediaType {
                media_type: media,
                what: name.to_string(),
            });
        };
        let digest = digest_of(desc)?;
        let raw = match source.open_blob(desc) {
            Err(Error::BlobNotFound { digest, location }) if foreign => {
                let urls = desc.urls().clone().unwrap_or_default().join(", ");
                return Err(Error::Unsupported(format!(
                    "{name} is a non-distributable (foreign) layer and its blob {digest} is not in \
                     {location}; hoist does not fetch foreign URLs{}",
                    if urls.is_empty() {
                        String::new()
                    } else {
                        format!(" ({urls})")
                    }
                )));
            }
            other => other?,
        };
        if foreign {
            tracing::info!("{name} is non-distributable; its blob is present and is read");
        }
        let raw: BlobReader<'a> = Box::new(ProgressReader::new(raw, digest.clone(), progress));
        let blob: Blob<'a> = Arc::new(Mutex::new(VerifiedReader::new(
            raw,
            digest,
            desc.size(),
            format!("{name} blob"),
        )));
        let compressed = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            blob: Arc::clone(&blob),
            count: Arc::clone(&compressed),
        };
        let mut stream = LayerStream {
            name: name.to_string(),
            blob,
            compressed,
            decoder: Box::new(io::empty()),
            declared,
            compression: declared,
            hasher: Some(
                diff_id
                    .as_ref()
                    .map_or(Algorithm::Sha256, Digest::algorithm)
                    .hasher(),
            ),
            diff_id,
            read: 0,
            limits: None,
            cancel: None,
            actual: None,
            error: None,
            done: false,
        };
        match compress::sniffing_decoder(declared, shared) {
            Ok((compression, decoder)) => {
                stream.compression = compression;
                stream.decoder = decoder;
                Ok(stream)
            }
            Err(e) => Err(stream.fail(e, "opening")),
        }
    }

    /// Enforces `--max-layer-size` and `--max-compression-ratio` while streaming.
    pub fn with_limits(mut self, limits: &Limits) -> Self {
        self.limits = Some(limits.clone());
        self
    }

    /// Fails the stream with [`Error::Cancelled`] (at its next read) once `cancel` is cancelled.
    pub fn with_cancel(mut self, cancel: &CancelToken) -> Self {
        self.cancel = Some(cancel.clone());
        self
    }

    /// When the bytes are not the compression the media type names: `(declared, actual)`.
    pub fn mislabelled(&self) -> Option<(Compression, Compression)> {
        (self.compression != self.declared).then_some((self.declared, self.compression))
    }

    /// The hoist error behind the last failed read, when there was one (a tar parser above may have
    /// reworded it).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Reads the rest of the layer (after its tar ended, whatever follows still belongs to the diff_id)
    /// and checks it all. Returns the diff_id computed.
    pub fn finish(&mut self) -> Result<Digest> {
        if let Err(e) = io::copy(self, &mut io::sink()) {
            return Err(self
                .take_error()
                .unwrap_or_else(|| from_io(e, || format!("reading {}", self.name))));
        }
        self.actual
            .clone()
            .ok_or_else(|| Error::Other(format!("{} ended without a diff_id", self.name)))
    }

    /// Turns a failure into the error to report: the blob's own problem when it has one.
    fn fail(&mut self, e: io::Error, doing: &str) -> Error {
        let blob_error = match self.blob.lock() {
            Ok(mut blob) => blob.finish().err(),
            Err(_) => None,
        };
        match blob_error {
            Some(b) => b,
            None if e.get_ref().is_some_and(|i| i.is::<Error>()) => from_io(e, String::new),
            None => Error::io(
                format!("{doing} {} ({} data)", self.name, self.compression.as_str()),
                e,
            ),
        }
    }

    fn limit(&self) -> Option<Error> {
        let limits = self.limits.as_ref()?;
        if self.read > limits.max_layer_size {
            return Some(Error::LimitExceeded {
                what: format!("uncompressed size of {}", self.name),
                limit: human_bytes(limits.max_layer_size),
                option: "--max-layer-size".into(),
            });
        }
        let compressed = self.compressed.load(Ordering::Relaxed).max(1);
        if self.read > RATIO_GRACE && self.read / compressed > limits.max_compression_ratio {
            return Some(Error::LimitExceeded {
                what: format!(
                    "compression ratio of {} ({} bytes from {compressed})",
                    self.name, self.read
                ),
                limit: format!("{}:1", limits.max_compression_ratio),
                option: "--max-compression-ratio".into(),
            });
        }
        None
    }

    /// The end of the decoded stream: the blob must be complete and the diff_id right.
    fn end(&mut self) -> Result<()> {
        let blob_end = match self.blob.lock() {
            Ok(mut blob) => blob.finish(),
            Err(_) => Err(Error::Other(format!(
                "reading {}: lock poisoned",
                self.name
            ))),
        };
        blob_end?;
        let actual = self
            .hasher
            .take()
            .map(Hasher::finish)
            .ok_or_else(|| Error::Other(format!("{} was read past its end", self.name)))?;
        if let Some(expected) = &self.diff_id
            && &actual != expected
        {
            return Err(Error::DigestMismatch {
                what: format!("{} diff_id (uncompressed content)", self.name),
                expected: expected.clone(),
                actual,
            });
        }
        self.actual = Some(actual);
        Ok(())
    }

    fn keep(&mut self, err: Error) -> io::Error {
        let text = err.to_string();
        if self.error.is_none() {
            self.error = Some(err);
        }
        // A plain message: the hoist error itself is kept for `take_error`.
        io::Error::other(text)
    }
}

impl Read for LayerStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            // Kept for `take_error`, and carried as itself so that a caller that maps the I/O error
            // (`from_io`, `Error::io`) gets it back too.
            self.error.get_or_insert(Error::Cancelled);
            return Err(crate::error::to_io(Error::Cancelled));
        }
        let n = match self.decoder.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let err = self.fail(e, "decompressing");
                return Err(self.keep(err));
            }
        };
        if n == 0 {
            self.done = true;
            return match self.end() {
                Ok(()) => Ok(0),
                Err(e) => Err(self.keep(e)),
            };
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        if let Some(e) = self.limit() {
            return Err(self.keep(e));
        }
        Ok(n)
    }
}
