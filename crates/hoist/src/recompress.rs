//! The conversion options of a copy, at their former path: the conversion step (format changes and
//! layer recompression) is now part of the copy engine's per-layer actions, see [`mod@crate::copy`].

pub use crate::copy::{ConvertOptions, needed};
