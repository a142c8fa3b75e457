//! Resolving a source's root document to one image: through nested indexes (by platform, with the one
//! index walker, `walk.rs`) to a manifest, its exact bytes, and its config.

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::{Document, parse_config};
use crate::error::{Error, Result};
use crate::media_type::{self, Kind};
use crate::platform::Platform;
use crate::transport::{Source, read_small_blob};

/// One image: its manifest (exact bytes and parsed) and config (exact bytes and parsed).
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest document.
    pub manifest_doc: Document,
    /// The manifest, parsed.
    pub manifest: ImageManifest,
    /// The config's exact bytes.
    pub config_bytes: Vec<u8>,
    /// The config, parsed (`None` for artifacts whose config is not an image config).
    pub config: Option<ImageConfiguration>,
    /// The index the manifest was chosen from, when there was one (the outermost).
    pub index_doc: Option<Document>,
}

impl Image {
    /// The manifest digest.
    pub fn digest(&self) -> &Digest {
        self.manifest_doc.digest()
    }

    /// The config's `rootfs.diff_ids`, validated.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        match &self.config {
            Some(c) => diff_ids_of(c),
            None => Ok(Vec::new()),
        }
    }

    /// The manifest's layers with the config's diff_id of each, refused when the two lists differ in
    /// length (what every reader of the layers' contents needs).
    pub fn layers_with_diff_ids(&self) -> Result<(Vec<Descriptor>, Vec<Digest>)> {
        let layers = self.manifest.layers().clone();
        let diff_ids = self.diff_ids()?;
        if diff_ids.len() != layers.len() {
            return Err(Error::invalid_document(
                format!("image {}", self.digest()),
                format!(
                    "the config lists {} diff_ids for {} layers",
                    diff_ids.len(),
                    layers.len()
                ),
            ));
        }
        Ok((layers, diff_ids))
    }
}

/// The one reader of a config's `rootfs.diff_ids`: each entry validated, in order (verify reports
/// each bad one and still checks the others).
pub(crate) fn diff_ids_each(config: &ImageConfiguration) -> Vec<Result<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect()
}

/// A config's `rootfs.diff_ids`, all valid, or the first invalid one's error.
pub(crate) fn diff_ids_of(config: &ImageConfiguration) -> Result<Vec<Digest>> {
    diff_ids_each(config).into_iter().collect()
}

/// Walks from `doc` through indexes to the manifest for `wanted`, fetching children from `source`.
/// Fails on nesting deeper than the source's limit, and on cycles (the one index walker, `walk.rs`).
pub(crate) fn select_manifest(
    source: &dyn Source,
    doc: Document,
    wanted: &Platform,
) -> Result<Document> {
    crate::walk::follow(source, doc, wanted)
}

/// Resolves a source to the image for `wanted` (the host platform when `None`).
///
/// ```no_run
/// use hoist::Platform;
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let arm = Platform::new("linux", "arm64", None);
/// let image = hoist::image::resolve(src.as_ref(), Some(&arm))?;
/// println!("manifest {} with {} layers", image.digest(), image.manifest.layers().len());
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn resolve(source: &dyn Source, wanted: Option<&Platform>) -> Result<Image> {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| resolve(source, wanted));
    }
    let root = source.root()?;
    let host = Platform::host();
    resolve_root(source, root, wanted.unwrap_or(&host))
}

/// [`resolve`] from a root document already read from `source` (so that the image is the one that
/// root names, and the root is read once): through indexes to the manifest for `wanted`, and its
/// config. The image's `index_doc` is `root` when `root` is an index.
pub fn resolve_root(source: &dyn Source, root: Document, wanted: &Platform) -> Result<Image> {
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| resolve_root(source, root, wanted));
    }
    let index_doc = root.is_index().then(|| root.clone());
    let manifest_doc = select_manifest(source, root, wanted)?;
    load(source, manifest_doc, index_doc)
}

/// The image config `manifest` names, parsed (`None`, and not read, for an artifact whose config is
/// not an image config).
pub(crate) fn image_config(
    source: &dyn Source,
    manifest: &ImageManifest,
) -> Result<Option<ImageConfiguration>> {
    let desc = manifest.config();
    if !matches!(
        media_type::kind(desc.media_type().as_ref()),
        Kind::Config { .. }
    ) {
        return Ok(None);
    }
    let bytes = read_small_blob(source, desc)?;
    Ok(Some(parse_config(&bytes, &digest_of(desc)?)?))
}

/// Loads the config of a manifest document.
pub(crate) fn load(
    source: &dyn Source,
    manifest_doc: Document,
    index_doc: Option<Document>,
) -> Result<Image> {
    let manifest = manifest_doc.manifest()?;
    let config_desc = manifest.config();
    let config_bytes = read_small_blob(source, config_desc)?;
    let config = match media_type::kind(config_desc.media_type().as_ref()) {
        Kind::Config { .. } => Some(parse_config(&config_bytes, &digest_of(config_desc)?)?),
        _ => None,
    };
    Ok(Image {
        manifest_doc,
        manifest,
        config_bytes,
        config,
        index_doc,
    })
}
