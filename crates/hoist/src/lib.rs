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
pub mod bundle;
pub mod compress;
pub mod config_edit;
pub mod convert;
pub mod copy;
pub mod descriptor;
pub mod diff;
pub mod digest;
pub mod document;
pub mod durable;
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
pub mod stat;
pub mod sync;
pub mod transport;
pub mod umoci;
pub mod unpack;
pub mod verify;

pub use digest::Digest;
pub use error::{Error, Result};
pub use limits::Limits;
