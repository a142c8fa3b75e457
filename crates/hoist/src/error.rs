//! The library's error type: one variant per kind of failure a caller can act on.
//!
//! Every message names the thing that was wrong (a digest, a path, a media type, a limit and the option
//! that raises it) so that the CLI can print it as is.

use std::path::PathBuf;

use crate::digest::Digest;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hoist.
///
/// ```no_run
/// let opened = hoist::open_source(&"oci:/tmp/layout:no-such-tag".parse()?, &Default::default());
/// match opened.and_then(|src| src.root()) {
///     Ok(root) => println!("{}", root.digest()),
///     Err(hoist::Error::NotFound { reference, .. }) => eprintln!("no image {reference}"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed; `context` says what was being done and to which path.
    #[error("{context}: {source}")]
    Io {
        /// What hoist was doing, e.g. `reading blob /x/blobs/sha256/ab..`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A digest string does not follow the OCI grammar or uses an unsupported algorithm.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The offending text (shortened when very long).
        digest: String,
        /// Why it was refused.
        reason: String,
    },

    /// The bytes read did not hash to the digest they were declared with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being read (blob, layer n, diff_id of ...).
        what: String,
        /// The declared digest.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },

    /// A blob was shorter or longer than its descriptor said.
    #[error("size mismatch for {what}: descriptor says {expected} bytes, read {actual}")]
    SizeMismatch {
        /// What was being read.
        what: String,
        /// The declared size.
        expected: u64,
        /// The number of bytes read (for a too-long blob, the declared size plus what was seen past it).
        actual: u64,
    },

    /// A blob that a document refers to is not present.
    #[error("blob {digest} not found in {location}")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
        /// Where it was looked for.
        location: String,
    },

    /// A tag or reference did not name anything.
    #[error("{reference} not found in {location}{hint}")]
    NotFound {
        /// What was looked up.
        reference: String,
        /// Where.
        location: String,
        /// Extra help, e.g. the list of tags that do exist (starts with `; ` when present).
        hint: String,
    },

    /// A manifest, index, config or other JSON document is malformed.
    #[error("invalid {what}: {reason}")]
    InvalidDocument {
        /// Which document (media type and digest where known).
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A media type that hoist cannot handle where it was found.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// The media type.
        media_type: String,
        /// Where it appeared.
        what: String,
    },

    /// The directory is not an OCI image layout (or has an unsupported `oci-layout` version).
    #[error("{path}: not an OCI image layout: {reason}")]
    InvalidLayout {
        /// The layout directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// An image or transport reference could not be parsed.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// Why it was refused.
        reason: String,
    },

    /// A platform string (`os/arch[/variant]`) could not be parsed, or no manifest matched it.
    #[error("{0}")]
    Platform(String),

    /// A configured limit was exceeded.
    #[error("{what} exceeds the limit of {limit} (raise it with {option})")]
    LimitExceeded {
        /// What grew too large (e.g. `manifest sha256:..`, `layer 3 uncompressed size`).
        what: String,
        /// The limit, with its unit.
        limit: String,
        /// The CLI option (or [`crate::Limits`] field) that raises it.
        option: String,
    },

    /// A layer entry tried to escape the target root or do something unsafe.
    #[error("unsafe layer entry {path:?} in {layer}: {reason}")]
    UnsafeEntry {
        /// The entry's path as it appears in the tar.
        path: String,
        /// Which layer.
        layer: String,
        /// What it tried to do.
        reason: String,
    },

    /// An operation is not supported by a transport or by this build.
    #[error("{0}")]
    Unsupported(String),

    /// A registry answered with an error.
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What it said (status and error codes), never credentials.
        message: String,
        /// HTTP status, when there was one.
        status: Option<u16>,
    },

    /// One image (or repository) of an operation over many (`sync`) failed; `source` says how.
    #[error("{image}: {source}")]
    Image {
        /// The image or repository, as a transport reference.
        image: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },

    /// A signing key that cannot be read or used (wrong password, unknown format).
    #[error("key {what}: {reason}")]
    Key {
        /// Which key (its path or role).
        what: String,
        /// What was wrong.
        reason: String,
    },

    /// An image's signatures do not satisfy a check (none found, none verifies, policy refused).
    #[error("{0}")]
    Signature(String),

    /// The operation was stopped through its options' [`crate::CancelToken`]. What it was writing
    /// is as a SIGKILL would have left it (the old state, or the complete new one), its temp files
    /// removed.
    #[error("cancelled")]
    Cancelled,

    /// Another failure, described in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Builds an [`Error::Io`] with a description of what was being done; an I/O error that carries
    /// [`Error::Cancelled`] (a cancelled stream) stays [`Error::Cancelled`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        if source
            .get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .is_some_and(|e| matches!(e, Error::Cancelled))
        {
            return Error::Cancelled;
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the error says the user asked for something malformed (an unparsable reference):
    /// the CLI exits 2, as for any usage error. Looks through [`Error::Image`].
    pub fn is_usage(&self) -> bool {
        match self {
            Error::InvalidReference { .. } => true,
            Error::Image { source, .. } => source.is_usage(),
            _ => false,
        }
    }

    /// True when the image, tag or repository asked for does not exist: a missing tag of a layout,
    /// image of an archive, or a registry's 404 / `MANIFEST_UNKNOWN` / `NAME_UNKNOWN` (a missing
    /// blob of an image that exists is damage, not this). The CLI exits 2, as newer skopeo does.
    /// A platform the image does not have counts (so does a malformed platform string, a usage
    /// error: both exit 2). Looks through [`Error::Image`].
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } | Error::Platform(_) => true,
            Error::Registry { message, .. } => {
                message.contains("; MANIFEST_UNKNOWN:") || message.contains("; NAME_UNKNOWN:")
            }
            Error::Image { source, .. } => source.is_not_found(),
            _ => false,
        }
    }

    /// True when the operation was cancelled ([`Error::Cancelled`]), also when that travelled inside
    /// an [`Error::Io`] or [`Error::Image`].
    pub fn is_cancelled(&self) -> bool {
        match self {
            Error::Cancelled => true,
            Error::Image { source, .. } => source.is_cancelled(),
            Error::Io { source, .. } => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<Error>())
                .is_some_and(Error::is_cancelled),
            _ => false,
        }
    }

    /// Builds an [`Error::InvalidDocument`].
    pub fn invalid_document(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidDocument {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Adds a description of the operation to `std::io::Result`s.
pub trait IoContext<T> {
    /// Maps an I/O error into [`Error::Io`] with the context produced by `f`.
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}

/// Errors raised while reading through [`std::io::Read`] carry a hoist [`Error`] inside; this takes it back out.
pub fn from_io(err: std::io::Error, context: impl FnOnce() -> String) -> Error {
    if err.get_ref().is_some_and(|e| e.is::<Error>()) {
        let text = err.to_string();
        return match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            _ => Error::Other(text),
        };
    }
    Error::io(context(), err)
}

/// Wraps a hoist [`Error`] so it can travel through a [`std::io::Read`] implementation.
pub fn to_io(err: Error) -> std::io::Error {
    std::io::Error::other(err)
}
