//! hoist: an OCI image toolkit you embed. It reads and writes OCI image layouts, OCI and
//! `docker save` tarballs, skopeo directories and registries; copies images between any two of them;
//! verifies, inspects, unpacks and repacks images; and builds layers from directory diffs. The `hoist`
//! CLI is a thin layer over this crate.
//!
//! # The one idea: sources, destinations, verified streams
//!
//! Everything is a [`Source`] or a [`Destination`] of content-addressed documents (manifests,
//! indexes) and blobs (configs, layers), opened from a reference written as skopeo writes it
//! ([`TransportRef`]: `oci:PATH:TAG`, `oci-archive:PATH`, `dir:PATH`, `docker-archive:PATH`,
//! `docker://HOST/REPO:TAG`) by [`open_source`] and [`open_destination`]. Every byte that moves is
//! checked against its digest while it streams ([`blob::VerifiedReader`]), and every write is atomic.
//! The verbs — [`copy()`], [`verify()`], [`unpack()`], [`inspect()`], [`sync()`], [`repack()`],
//! [`diff()`] — are short programs over those two traits. Errors are one [`Error`] type; long
//! operations report progress as [`Event`]s to a [`Sink`] you give them.
//!
//! Each task below has a runnable example in `crates/hoist/examples/` (`cargo run --example NAME --
//! ARGS`; each prints its usage when run without arguments).
//!
//! ## Pull and unpack
//!
//! Copy an image into a local layout, then unpack it into a directory
//! (`examples/pull_and_unpack.rs`):
//!
//! ```no_run
//! use hoist::{CopyOptions, OpenOptions, UnpackOptions};
//! let opts = OpenOptions::default();
//! let src = hoist::open_source(&"docker://localhost:5000/hello:v1".parse()?, &opts)?;
//! let dst = hoist::open_destination(&"oci:/tmp/layout:v1".parse()?, &opts)?;
//! hoist::copy(src.as_ref(), dst.as_ref(), &CopyOptions::default())?;
//!
//! let local = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
//! let mut unpack = UnpackOptions::default();
//! unpack.apply.rootless = true; // record ownership instead of applying it: no root needed
//! let report = hoist::unpack(local.as_ref(), std::path::Path::new("/tmp/rootfs"), &unpack)?;
//! println!("{} layers into {}", report.layers, report.rootfs.display());
//! # Ok::<(), hoist::Error>(())
//! ```
//!
//! ## Inspect a layout
//!
//! List a layout's tags and describe each image (`examples/inspect_layout.rs`):
//!
//! ```no_run
//! let layout = hoist::layout::Layout::open("/tmp/layout")?;
//! for (tag, _descriptor) in layout.tags()? {
//!     let src = hoist::open_source(&format!("oci:/tmp/layout:{tag}").parse()?, &Default::default())?;
//!     let image = hoist::image::resolve(src.as_ref(), None)?; // the host's platform from an index
//!     let inspection = hoist::inspect(&image, src.root()?.digest(), None, vec![tag]);
//!     print!("{}", hoist::inspect::to_text(&inspection));
//! }
//! # Ok::<(), hoist::Error>(())
//! ```
//!
//! ## Copy with a progress callback
//!
//! The callback runs on the copy's worker threads, so it is `Send + Sync` and should be cheap
//! (`examples/copy_with_progress.rs`):
//!
//! ```no_run
//! use hoist::{CopyOptions, Event, OpenOptions, Sink};
//! let opts = OpenOptions::default();
//! let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
//! let dst = hoist::open_destination(&"oci-archive:/tmp/hello.tar:v1".parse()?, &opts)?;
//! let progress = Sink::new(|event| {
//!     if let Event::BlobDone { digest, how, .. } = event {
//!         println!("{how:?} {digest}");
//!     }
//! });
//! let mut copy = CopyOptions::default();
//! copy.progress = Some(progress);
//! let report = hoist::copy(src.as_ref(), dst.as_ref(), &copy)?;
//! println!("{} blobs streamed, {} bytes", report.blobs_copied, report.bytes);
//! # Ok::<(), hoist::Error>(())
//! ```
//!
//! ## Verify and report
//!
//! [`verify()`] does not stop at the first problem: its report lists them all
//! (`examples/verify_report.rs`):
//!
//! ```no_run
//! let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &Default::default())?;
//! let report = hoist::verify(src.as_ref(), &hoist::VerifyOptions::default());
//! for problem in &report.problems {
//!     eprintln!("{}: {}", problem.subject, problem.message);
//! }
//! println!("{} blobs checked: {}", report.blobs, if report.is_ok() { "ok" } else { "damaged" });
//! # Ok::<(), hoist::Error>(())
//! ```
//!
//! ## Build an image from a directory
//!
//! An empty image, a layer from a directory placed under a path, a config edit, written to any
//! destination; fixed owners and times make the digest reproducible (`examples/image_from_dir.rs`):
//!
//! ```no_run
//! use hoist::diff::{LayerOptions, MtimePolicy};
//! let mut builder = hoist::ImageBuilder::empty(&hoist::Platform::host())?;
//! let mut layer = LayerOptions::default();
//! layer.mtime = MtimePolicy::Fixed(1_700_000_000);
//! builder.add_dir(std::path::Path::new("./site"), Some(std::path::Path::new("/srv/www")), &layer)?;
//! let dst = hoist::open_destination(&"oci:/tmp/built:v1".parse()?, &Default::default())?;
//! builder.write(dst.as_ref(), &hoist::CopyOptions::default())?;
//! # Ok::<(), hoist::Error>(())
//! ```
//!
//! ## Calling from async code
//!
//! The API is blocking. From async code, hand each call to `tokio::task::spawn_blocking` (or a
//! thread) and await it (`examples/from_async.rs`). A call made directly on an async worker does not
//! panic — the entry points that can reach a registry move their work to a thread of their own
//! (an internal guard) — but it blocks that worker until it is done. The methods of a `Source` or
//! `Destination` and their readers are plain blocking I/O: call them inside `spawn_blocking` too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let report = tokio::task::spawn_blocking(|| -> hoist::Result<hoist::CopyReport> {
//!     let opts = hoist::OpenOptions::default();
//!     let src = hoist::open_source(&"docker://localhost:5000/hello:v1".parse()?, &opts)?;
//!     let dst = hoist::open_destination(&"oci:/tmp/layout:v1".parse()?, &opts)?;
//!     hoist::copy(src.as_ref(), dst.as_ref(), &hoist::CopyOptions::default())
//! })
//! .await??;
//! println!("copied {}", report.digest);
//! # Ok(())
//! # }
//! ```
//!
//! ## Cancel a long operation
//!
//! Every long operation's options have a `cancel` field: a [`CancelToken`] whose clones share one
//! flag. Cancelled from another thread, the operation stops at its next check (between blobs, images
//! and tar entries, and on every read of a streaming blob) with [`Error::Cancelled`], leaving its
//! destination as a SIGKILL would (the old tag, or the new one once committed; an unpack target
//! still marked incomplete) with its temp files removed ([`mod@cancel`]):
//!
//! ```no_run
//! let token = hoist::CancelToken::new();
//! let mut copy = hoist::CopyOptions::default();
//! copy.cancel = token.clone();
//! let stop = std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(10));
//!     token.cancel(); // ten seconds is all it gets
//! });
//! let opts = hoist::OpenOptions::default();
//! let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
//! let dst = hoist::open_destination(&"oci:/tmp/copy:v1".parse()?, &opts)?;
//! match hoist::copy(src.as_ref(), dst.as_ref(), &copy) {
//!     Err(hoist::Error::Cancelled) => eprintln!("stopped; oci:/tmp/copy:v1 is as it was"),
//!     other => println!("copied {}", other?.digest),
//! }
//! # drop(stop);
//! # Ok::<(), hoist::Error>(())
//! ```
//!
//! ## Options
//!
//! Every options struct (and [`Limits`]) is `#[non_exhaustive]`, so that new options are not breaking
//! changes: start from `default()` and assign the fields you need, as the snippets above do.
//!
//! # Where things are
//!
//! The entry points are re-exported here; each public module is one concept and holds the rest of
//! it. Everything else (the layer applier, the durable-write machinery, the registry client, the
//! index walker, the thread pool, umoci interop) is crate-private: what is listed here is the API.
//!
//! | task | module | entry points |
//! |---|---|---|
//! | name an image | [`mod@reference`], [`platform`] | [`TransportRef`], [`Platform`] |
//! | open a source or destination | [`transport`] | [`open_source`], [`open_destination`], [`Source`], [`Destination`], [`open_repository`] |
//! | log in to a registry, list its repositories | [`transport::registry`] | [`transport::registry::login`], [`transport::registry::logout`], [`transport::registry::catalog`] |
//! | work in an OCI layout (tags, blobs, gc) | [`layout`] | [`layout::Layout`] |
//! | read documents and blobs | [`document`], [`descriptor`], [`media_type`], [`mod@digest`], [`compress`] | [`Digest`], [`VerifiedReader`], [`transport::open_verified`] |
//! | resolve an image, describe it | [`image`], [`mod@inspect`] | [`image::resolve`], [`inspect()`], [`inspect::history`] |
//! | copy, mirror | [`mod@copy`], [`mod@sync`], [`convert`] (pure Docker/OCI conversion) | [`copy()`], [`sync()`] |
//! | check an image | [`mod@verify`] | [`verify()`] |
//! | unpack, repack, export a rootfs | [`mod@unpack`], [`mod@repack`], [`mod@export`], [`bundle`] (runtime bundles) | [`unpack()`], [`repack()`], [`export()`] |
//! | make layers and images | [`mod@diff`], [`build`], [`config_edit`] | [`diff()`], [`ImageBuilder`], [`config_edit::ImageEdit`] |
//! | sign and check signatures, referrers | [`sign`], [`referrers`] | [`sign::sign`], [`sign::verify_signatures`] |
//! | watch, bound and stop long operations | [`progress`], [`limits`], [`mod@cancel`] | [`Sink`], [`Limits`], [`CancelToken`] |
//! | write an output file as hoist does | [`output`] | [`output::write_file`] |
//! | handle errors | [`error`] | [`Error`], [`Result`] |
//!
//! # The image model is oci-spec's
//!
//! Manifests, indexes, configs and descriptors are the [`oci_spec`] crate's types (`ImageManifest`,
//! `ImageIndex`, `ImageConfiguration`, `Descriptor`, and the runtime `Spec` of a bundle). hoist
//! re-exports that crate as [`hoist::oci_spec`](oci_spec): use it rather than a dependency of your own,
//! so that the types are the version hoist was built with. Apart from it, no third-party type is
//! part of the API except `serde_json`'s `Value`/`Map` where a document's free-form JSON (labels,
//! annotations, an edited config) is handed over as JSON.

#![warn(missing_docs)]
#![warn(unnameable_types)]
// The fuzz targets reach internals whose types they need not name (`fuzzing` below).
#![cfg_attr(feature = "fuzzing", allow(unnameable_types))]

pub mod append;
pub(crate) mod artifact;
pub(crate) mod blob;
pub(crate) mod blocking;
pub mod build;
pub mod bundle;
pub mod cancel;
pub mod compress;
pub mod config_edit;
pub mod convert;
pub mod copy;
pub mod descriptor;
pub mod diff;
pub mod digest;
pub mod document;
pub(crate) mod durable;
pub mod error;
pub mod export;
pub mod image;
pub mod inspect;
pub(crate) mod layer;
pub mod layout;
pub mod limits;
pub mod media_type;
pub(crate) mod owner;
pub mod platform;
pub(crate) mod pool;
pub mod progress;
pub mod reference;
pub mod referrers;
pub mod repack;
pub mod sign;
pub(crate) mod stat;
pub mod sync;
pub(crate) mod tar_headers;
pub mod transport;
pub(crate) mod umoci;
pub mod unpack;
pub mod verify;
pub(crate) mod walk;

/// Writing an output file the way hoist writes every file: whole or not at all (a temp file beside
/// the target, synced, renamed over it, the directory synced), and *through* a target that is a
/// symlink, FIFO or character device (`/dev/stdout`, a named pipe) rather than replacing it.
///
/// ```no_run
/// hoist::output::write_file(std::path::Path::new("digest.txt"), b"sha256:...\n")?;
/// # Ok::<(), hoist::Error>(())
/// ```
pub mod output {
    pub use crate::durable::{
        DEFAULT_MODE, Output, PRIVATE_MODE, TempFile, open_regular, remove_temp_files_on_signals,
        write_file, write_file_with,
    };
}

/// The crate-private internals the fuzz targets in `fuzz/` drive (the layer parser and applier, the
/// digest grammar check), behind the `fuzzing` feature, which only that crate enables: not part of the
/// API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::layer::{Applier, ApplyOptions, Msg, ReadTotals, Resolver, parse_layer};

    /// True when `text` is a digest in an algorithm hoist cannot check (`document`'s rule).
    pub fn unregistered_algorithm(text: &str) -> bool {
        crate::document::unregistered_algorithm(text)
    }
}

/// The image model (manifests, indexes, configs, descriptors, runtime specs): oci-spec, re-exported
/// so that embedders use the version hoist is built with.
pub use oci_spec;

// The entry points, so that an embedder needs only `hoist::…` (the module paths work as well).
pub use blob::VerifiedReader;
pub use build::ImageBuilder;
pub use cancel::CancelToken;
pub use copy::{CopyOptions, CopyReport, PlatformChoice, copy};
pub use diff::{Diff, DiffOptions, compute as diff};
pub use digest::Digest;
pub use error::{Error, Result};
pub use export::{ExportOptions, ExportReport, export, export_to_path};
pub use inspect::{Inspection, inspect};
pub use limits::Limits;
pub use platform::Platform;
pub use progress::{BlobOutcome, Event, Sink};
pub use reference::TransportRef;
pub use repack::{RepackOptions, Repacked, repack};
pub use sync::{SyncDestination, SyncOptions, SyncReport, SyncSource, sync};
pub use transport::repository::{Repository, open_repository};
pub use transport::{Destination, OpenOptions, Source, open_destination, open_source};
pub use unpack::{UnpackOptions, UnpackReport, unpack};
pub use verify::{VerifyOptions, VerifyReport, verify};
