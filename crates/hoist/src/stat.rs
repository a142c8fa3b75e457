//! An image's history matched to its layers, as `umoci stat` shows it: each `history` entry with the
//! layer it made (non-empty entries take the manifest's layers in order) and that layer's diff_id.

use serde::Serialize;

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::image::Image;

/// One `history` entry of an image config, with its layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// The layer this entry made (`None` for an `empty_layer` entry, or when the history lists more
    /// non-empty entries than the image has layers).
    pub layer: Option<Descriptor>,
    /// The layer's diff_id (empty when there is no layer), as umoci writes it.
    pub diff_id: String,
    /// `created`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `created_by`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// `author`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `comment`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True for an entry that made no layer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The history of `image`, each entry with its layer. An image without a container config is an error.
pub fn history(image: &Image) -> Result<Vec<HistoryRow>> {
    let config = image
        .config
        .as_ref()
        .ok_or_else(|| Error::UnsupportedMediaType {
            media_type: image.manifest.config().media_type().to_string(),
            what: format!("the config of {} (not a container image)", image.digest()),
        })?;
    let diff_ids = config.rootfs().diff_ids();
    let mut layers = image.manifest.layers().iter().zip(diff_ids.iter());
    Ok(config
        .history()
        .iter()
        .flatten()
        .map(|h| {
            let empty = h.empty_layer().unwrap_or(false);
            let (layer, diff_id) = if empty {
                (None, String::new())
            } else {
                match layers.next() {
                    Some((l, d)) => (Some(l.clone()), d.clone()),
                    None => (None, String::new()),
                }
            };
            HistoryRow {
                layer,
                diff_id,
                created: h.created().clone(),
                created_by: h.created_by().clone(),
                author: h.author().clone(),
                comment: h.comment().clone(),
                empty_layer: empty,
            }
        })
        .collect())
}
