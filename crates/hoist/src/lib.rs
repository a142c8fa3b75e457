//! hoist: an OCI image toolkit.
//!
//! The library is organised around one idea: everything is a [`transport::Source`] or a
//! [`transport::Destination`] of content-addressed documents and blobs, and every byte that moves is
//! verified while it streams ([`blob::VerifiedReader`]). Verbs ([`copy`], [`verify`], [`inspect`]) are
//! short programs over those two traits.
//!
//! ```no_run
//! use hoist::reference::TransportRef;
//! use hoist::transport::{open_source, OpenOptions};
//! let src = open_source(&"oci:/tmp/layout:latest".parse::<TransportRef>()?, &OpenOptions::default())?;
//! let root = src.root()?;
//! println!("{} {}", root.media_type(), root.digest());
//! # Ok::<(), hoist::Error>(())
//! ```

#![warn(missing_docs)]

pub mod blob;
pub mod blocking;
pub mod bundle;
pub mod compress;
pub mod config_edit;
pub mod convert;
pub mod copy;
pub mod descriptor;
pub mod diff;
pub mod digest;
pub mod document;
pub mod error;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod limits;
pub mod media_type;
pub mod platform;
pub mod progress;
pub mod recompress;
pub mod reference;
pub mod repack;
pub mod sync;
pub mod transport;
pub mod unpack;
pub mod verify;

// The entry points, so that an embedder needs only `hoist::…` (the module paths work as well).
pub use copy::{CopyOptions, CopyReport, PlatformChoice, copy};
pub use diff::{Diff, DiffOptions, compute as diff};
pub use digest::Digest;
pub use error::{Error, Result};
pub use inspect::{Inspection, inspect};
pub use limits::Limits;
pub use platform::Platform;
pub use progress::{BlobOutcome, Event, Sink};
pub use reference::TransportRef;
pub use repack::{RepackOptions, Repacked, repack};
pub use sync::{SyncDestination, SyncOptions, SyncReport, SyncSource, sync};
pub use transport::{Destination, OpenOptions, Source, open_destination, open_source};
pub use unpack::{UnpackOptions, UnpackReport, unpack};
pub use verify::{VerifyOptions, VerifyReport, verify};
