//! One module per verb. Each turns its arguments into library calls and renders the result.

pub mod copy;
pub mod gc;
pub mod inspect;
pub mod tags;
pub mod verify;

use anyhow::{Context, Result};
use hoist::reference::TransportRef;

/// Parses a transport reference with a message that names the argument.
pub fn parse_ref(text: &str) -> Result<TransportRef> {
    TransportRef::parse(text).with_context(|| format!("parsing image reference {text:?}"))
}
