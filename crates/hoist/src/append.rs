//! Appending a diff ([`mod@crate::diff`]) to an image in a layout as a new layer (`repack`'s write): the layer streams into a temp file inside
//! the layout, then [`ImageEdit`] stores it with a new config (`rootfs.diff_ids`, `history`) and
//! manifest and moves the tag, under the layout lock.

use serde_json::Value;

use crate::cancel::CancelToken;
use crate::config_edit::{ImageEdit, now_rfc3339};
use crate::diff::writer::write_layer_into;
use crate::diff::{Diff, LayerBlob, LayerOptions};
use crate::document::Document;
use crate::error::{IoContext, Result};
use crate::layout::Layout;
use crate::progress::Sink;
use crate::reference::LayoutRef;

/// Options of [`append_diff`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AppendOptions {
    /// How the layer is written.
    pub layer: LayerOptions,
    /// The tag to point at the new image; `None` moves the tag the image was opened by (or adds an
    /// untagged entry when it was opened by digest or index).
    pub tag: Option<String>,
    /// `created` of the history entry and of the config (RFC 3339); now when `None`.
    pub created: Option<String>,
    /// `created_by` of the history entry.
    pub created_by: Option<String>,
    /// `author` of the history entry.
    pub author: Option<String>,
    /// `comment` of the history entry.
    pub comment: Option<String>,
    /// Leave `history` alone.
    pub no_history: bool,
    /// Where progress of the layer write goes ([`crate::progress::Event::Step`] and
    /// `StepProgress`).
    pub progress: Option<Sink>,
    /// Stops the append from another thread (checked before each entry of the layer): it fails with
    /// [`crate::Error::Cancelled`], the tag unmoved and the layer's temp file removed. Never
    /// cancelled by default.
    pub cancel: CancelToken,
}

/// What [`append_diff`] wrote.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The new layer.
    pub layer: LayerBlob,
    /// The new manifest.
    pub manifest: Document,
}

/// Writes `diff` as a layer on top of the image `reference` names in `layout` and retags.
///
/// ```no_run
/// use hoist::append::{AppendOptions, append_diff};
/// use hoist::diff::DirTree;
/// use hoist::layout::Layout;
/// use hoist::reference::LayoutRef;
/// let layout = Layout::open("/tmp/layout")?;
/// let diff = hoist::diff(&DirTree::new("/tmp/before"), "/tmp/after".as_ref(), &Default::default())?;
/// let tag = LayoutRef::Tag("v1".into());
/// let appended = append_diff(&layout, Some(&tag), &diff, &AppendOptions::default())?;
/// println!("new manifest {}", appended.manifest.digest());
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn append_diff(
    layout: &Layout,
    reference: Option<&LayoutRef>,
    diff: &Diff,
    opts: &AppendOptions,
) -> Result<Appended> {
    let mut edit = ImageEdit::open(layout, reference)?;
    let tmp = layout.temp_file()?;
    let file = tmp
        .as_file()
        .try_clone()
        .ctx(|| format!("opening a temp file in {}", layout.root().display()))?;
    let layer = write_layer_into(
        diff,
        file,
        Some(tmp.path()),
        &opts.layer,
        &opts.progress,
        &opts.cancel,
    )?;
    opts.cancel.check()?;
    edit.add_layer(&layer, tmp)?;
    let (created, history) = appended_history(opts);
    if let Some(h) = history {
        edit.add_history(h);
    }
    if let Some(top) = edit.config_mut().as_object_mut() {
        top.insert("created".into(), Value::String(created));
    }
    let tag = opts.tag.clone().or_else(|| match reference {
        Some(LayoutRef::Tag(t)) => Some(t.clone()),
        _ => None,
    });
    let manifest = edit.commit(tag.as_deref())?;
    Ok(Appended { layer, manifest })
}

/// The `created` time of an appended layer's image and its history entry (none with
/// `no_history`), as `opts` asks: the one rule of [`append_diff`] and
/// [`crate::ImageBuilder::append_diff`].
pub(crate) fn appended_history(opts: &AppendOptions) -> (String, Option<Value>) {
    let created = opts.created.clone().unwrap_or_else(now_rfc3339);
    let history = (!opts.no_history).then(|| {
        let mut h = ImageEdit::history_entry(
            Some(&created),
            opts.created_by.as_deref().unwrap_or("hoist diff"),
            opts.author.as_deref(),
            false,
        );
        if let (Some(c), Some(obj)) = (&opts.comment, h.as_object_mut()) {
            obj.insert("comment".into(), Value::String(c.clone()));
        }
        h
    });
    (created, history)
}
