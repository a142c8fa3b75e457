//! Building images without a daemon: [`ImageBuilder`] starts from a source image (or nothing), adds
//! layers made from directories ([`mod@crate::diff`]'s layer writer), tar streams or whiteouts, edits the
//! config ([`crate::config_edit`]), and writes the result to any [`Destination`] through
//! [`crate::copy()`]: the new layers and documents stream from temp files, the base's blobs are
//! skipped when the destination has them and mounted when it is the same registry, never pulled.
//!
//! ```no_run
//! use hoist::{ImageBuilder, OpenOptions, Platform};
//! use hoist::diff::LayerOptions;
//! let opts = OpenOptions::default();
//! let base = hoist::open_source(&"docker://localhost:5000/base:v1".parse()?, &opts)?;
//! let mut builder = ImageBuilder::from_source(base.as_ref(), None)?;
//! builder.add_dir(std::path::Path::new("./app"), Some(std::path::Path::new("/app")), &LayerOptions::default())?;
//! let mut changes = hoist::config_edit::ConfigChanges::default();
//! changes.cmd = Some(vec!["/app/run".into()]);
//! builder.edit_config(&changes)?;
//! let dst = hoist::open_destination(&"docker://localhost:5000/app:v1".parse()?, &opts)?;
//! let report = builder.write(dst.as_ref(), &hoist::CopyOptions::default())?;
//! println!("{} ({} base blobs mounted)", report.digest, report.blobs_mounted);
//!
//! // An image with no layers, for linux/arm64.
//! let empty = ImageBuilder::empty(&Platform::new("linux", "arm64", None))?;
//! let dst = hoist::open_destination(&"oci:/tmp/layout:empty".parse()?, &opts)?;
//! empty.write(dst.as_ref(), &hoist::CopyOptions::default())?;
//! # Ok::<(), hoist::Error>(())
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::append::AppendOptions;
use crate::compress::{self, EncodeOptions};
use crate::config_edit::{ConfigChanges, ImageEdit};
use crate::copy::{CopyOptions, CopyReport};
use crate::descriptor::{Descriptor, digest_of, new_descriptor};
use crate::diff::{
    Diff, DiffOptions, Entries, LayerBlob, LayerOptions, LowerContent, LowerTree, Meta,
};
use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::document::Document;
use crate::durable::TempFile;
use crate::error::{Error, IoContext, Result, from_io};
use crate::limits::Limits;
use crate::media_type::{self, Compression};
use crate::platform::Platform;
use crate::transport::{BlobReader, Destination, RegistryOrigin, Source};

/// A lower tree with nothing in it: a directory layer holds the whole directory.
struct EmptyTree;

impl LowerTree for EmptyTree {
    fn entries(&self) -> Result<Entries<'_>> {
        Ok(Box::new(std::iter::empty()))
    }
    fn lookup(&self, _path: &Path) -> Result<Option<Meta>> {
        Ok(None)
    }
    fn content(&self, _path: &Path) -> Result<LowerContent<'_>> {
        Ok(LowerContent::Unavailable)
    }
}

/// A new layer waiting in a temp file.
struct NewLayer {
    file: TempFile,
    blob: LayerBlob,
}

/// An image being built: a manifest and config as JSON values, the base's blobs where they are, new
/// layers in temp files. Nothing is written anywhere until [`ImageBuilder::write`].
pub struct ImageBuilder<'s> {
    base: Option<&'s dyn Source>,
    manifest_media_type: String,
    manifest: Value,
    config: Value,
    layers: Vec<NewLayer>,
    scratch: PathBuf,
    limits: Limits,
    /// The base's root index and the digest of the entry that was chosen, when the base was an
    /// index and [`ImageBuilder::keep_index`] asked for a new index.
    index: Option<(Document, Digest)>,
    keep_index: bool,
    /// The base image as resolved, for [`ImageBuilder::flatten`].
    base_image: Option<crate::image::Image>,
    /// Other sources blobs come from (a new base's, after [`ImageBuilder::rebase`]), by digest.
    others: Vec<(&'s dyn Source, std::collections::HashSet<Digest>)>,
    /// Stops the layers being made ([`ImageBuilder::cancel_with`]).
    cancel: crate::cancel::CancelToken,
}

impl<'s> ImageBuilder<'s> {
    /// An image with no layers whose config names `platform`.
    pub fn empty(platform: &Platform) -> Result<ImageBuilder<'static>> {
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        if let (Some(v), Some(obj)) = (&platform.variant, config.as_object_mut()) {
            obj.insert("variant".into(), Value::String(v.clone()));
        }
        Ok(ImageBuilder {
            base: None,
            manifest_media_type: media_type::OCI_MANIFEST.into(),
            manifest: json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_MANIFEST,
                "config": {"mediaType": media_type::OCI_CONFIG, "digest": Digest::sha256(b"").to_string(), "size": 0},
                "layers": [],
            }),
            config,
            layers: Vec::new(),
            scratch: std::env::temp_dir(),
            limits: Limits::default(),
            index: None,
            keep_index: false,
            base_image: None,
            others: Vec::new(),
            cancel: crate::cancel::CancelToken::default(),
        })
    }

    /// Starts from the image `base` names (an index is resolved to `platform`, the host's when
    /// `None`). Only the manifest and config are read; the base's layers stay where they are.
    pub fn from_source(base: &'s dyn Source, platform: Option<&Platform>) -> Result<Self> {
        let image = crate::image::resolve(base, platform)?;
        let doc = &image.manifest_doc;
        let config_desc = image.manifest.config();
        if !matches!(
            media_type::kind(config_desc.media_type().as_ref()),
            media_type::Kind::Config { .. }
        ) {
            return Err(Error::UnsupportedMediaType {
                media_type: config_desc.media_type().to_string(),
                what: format!("config of {}: not an image config", doc.digest()),
            });
        }
        let config: Value = serde_json::from_slice(&image.config_bytes).map_err(|e| {
            Error::invalid_document(format!("config {}", config_desc.digest()), e.to_string())
        })?;
        let manifest: Value = serde_json::from_slice(doc.bytes()).map_err(|e| {
            Error::invalid_document(format!("manifest {}", doc.digest()), e.to_string())
        })?;
        Ok(ImageBuilder {
            base: Some(base),
            manifest_media_type: doc.media_type().to_string(),
            manifest,
            config,
            layers: Vec::new(),
            scratch: std::env::temp_dir(),
            limits: base.limits().clone(),
            index: image
                .index_doc
                .clone()
                .map(|i| (i, image.manifest_doc.digest().clone())),
            keep_index: false,
            base_image: Some(image),
            others: Vec::new(),
            cancel: crate::cancel::CancelToken::default(),
        })
    }

    /// Keeps new layers in temp files in `dir` (default: the system's temp directory); a
    /// directory on the destination's filesystem lets a layout take them without a second copy.
    pub fn scratch_dir(&mut self, dir: &Path) -> &mut Self {
        self.scratch = dir.to_path_buf();
        self
    }

    /// When the base was an index: write a new index in which the chosen image's entry names the
    /// new manifest (its platform and annotations kept, the other images untouched) instead of
    /// the new manifest alone. The chosen image must be an entry of the outermost index.
    pub fn keep_index(&mut self, keep: bool) -> &mut Self {
        self.keep_index = keep;
        self
    }

    /// The config being built.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The config being built, mutably.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    /// The media type of the manifest that will be written (the base's, or OCI).
    pub fn manifest_media_type(&self) -> &str {
        &self.manifest_media_type
    }

    /// Applies config edits and manifest annotations ([`ConfigChanges`]).
    pub fn edit_config(&mut self, changes: &ConfigChanges) -> Result<()> {
        changes.apply(&mut self.config, &mut self.manifest)
    }

    /// Appends an entry to the config's `history` (see [`ImageEdit::history_entry`]).
    pub fn add_history(&mut self, entry: Value) {
        let top = self.config.as_object_mut();
        if let Some(top) = top {
            let h = top.entry("history").or_insert_with(|| json!([]));
            if !h.is_array() {
                *h = json!([]);
            }
            if let Some(a) = h.as_array_mut() {
                a.push(entry);
            }
        }
    }

    fn check_compression(&self, compression: Compression) -> Result<()> {
        if self.manifest_media_type == media_type::DOCKER_MANIFEST
            && media_type::docker_layer(compression).is_none()
        {
            return Err(Error::Unsupported(format!(
                "the base is a Docker manifest, which cannot hold a {} layer; use gzip or none",
                compression.as_str()
            )));
        }
        Ok(())
    }

    /// Makes the layers this builder writes ([`ImageBuilder::add_dir`], [`ImageBuilder::add_tar`],
    /// [`ImageBuilder::flatten`]) stop with [`Error::Cancelled`] once `token` is cancelled (from
    /// another thread); their temp files are removed. [`ImageBuilder::write`] takes the token of
    /// its [`CopyOptions`].
    pub fn cancel_with(&mut self, token: &crate::cancel::CancelToken) -> &mut Self {
        self.cancel = token.clone();
        self
    }

    /// Adds a layer holding the whole directory `dir` (walked without following symlinks, in path
    /// order), placed under `at` in the image when given (as `umoci insert`). Owners, times and
    /// compression follow `opts`.
    pub fn add_dir(
        &mut self,
        dir: &Path,
        at: Option<&Path>,
        opts: &LayerOptions,
    ) -> Result<&LayerBlob> {
        self.add_dir_with(Some(dir), at, &[], &[], opts)
    }

    /// [`ImageBuilder::add_dir`], with whiteouts of the image paths `remove` and opaque markers in
    /// the image directories `opaque` in the same layer. `dir` may be `None` for a layer of only
    /// those.
    pub fn add_dir_with(
        &mut self,
        dir: Option<&Path>,
        at: Option<&Path>,
        remove: &[PathBuf],
        opaque: &[PathBuf],
        opts: &LayerOptions,
    ) -> Result<&LayerBlob> {
        self.check_compression(opts.compression)?;
        let empty;
        let upper = match dir {
            Some(d) => {
                let meta =
                    std::fs::symlink_metadata(d).ctx(|| format!("reading {}", d.display()))?;
                if meta.file_type().is_symlink() {
                    // The walk never follows a symlink, the top one included: no loop, no escape.
                    return Err(Error::Other(format!(
                        "{} is a symlink; give the directory it points to",
                        d.display()
                    )));
                }
                if !meta.is_dir() {
                    return Err(Error::Other(format!("{} is not a directory", d.display())));
                }
                d
            }
            None => {
                empty = crate::durable::TempDir::new_in(&self.scratch)?;
                empty.path()
            }
        };
        let mut diff = crate::diff::compute(&EmptyTree, upper, &DiffOptions::default())?;
        if let Some(at) = at {
            diff.place_under(at)?;
        }
        for p in remove {
            diff.add_whiteout(p)?;
        }
        for p in opaque {
            diff.add_opaque(p)?;
        }
        self.push_diff(&diff, opts, &None)
    }

    /// Writes `diff` as a layer into a temp file in the scratch directory and adds it.
    fn push_diff(
        &mut self,
        diff: &Diff,
        opts: &LayerOptions,
        progress: &Option<crate::progress::Sink>,
    ) -> Result<&LayerBlob> {
        let file = TempFile::new_in(&self.scratch)?;
        let out = file
            .as_file()
            .try_clone()
            .ctx(|| format!("opening {}", file.path().display()))?;
        let blob =
            crate::diff::writer::write_layer_into(diff, out, None, opts, progress, &self.cancel)?;
        self.push_layer(file, blob)
    }

    /// Adds `diff` (the changes between two trees, [`crate::diff::compute`]) as a layer written as
    /// `opts.layer` says, with the history entry and `created` time `opts` asks for, as
    /// [`crate::append::append_diff`] appends in a layout. `opts.tag` and `opts.cancel` are not used:
    /// the destination names the image, and the builder's token ([`ImageBuilder::cancel_with`])
    /// stops its layers. How `hoist diff --image` appends to an image of any transport.
    pub fn append_diff(&mut self, diff: &Diff, opts: &AppendOptions) -> Result<&LayerBlob> {
        self.check_compression(opts.layer.compression)?;
        self.push_diff(diff, &opts.layer, &opts.progress)?;
        let (created, history) = crate::append::appended_history(opts);
        if let Some(h) = history {
            self.add_history(h);
        }
        if let Some(top) = self.config.as_object_mut() {
            top.insert("created".into(), Value::String(created));
        }
        Ok(&self.layers[self.layers.len() - 1].blob)
    }

    /// Squashes the base's layers (and any added so far) into one: the tar stream of
    /// [`crate::export()`] (unpack's own applier on an in-memory tree, whiteouts applied, owners
    /// as the image has them; nothing unpacked to disk), hashed for the diff_id as it streams into
    /// the compressor, written back as one layer per `opts` (times and owners as `opts` says).
    /// The history becomes one entry, `history` (none when `None`).
    pub fn flatten(&mut self, opts: &LayerOptions, history: Option<Value>) -> Result<&LayerBlob> {
        let (Some(base), Some(image)) = (self.base, &self.base_image) else {
            return Err(Error::Other(
                "nothing to flatten: the image has no base".into(),
            ));
        };
        if !self.layers.is_empty() {
            return Err(Error::Unsupported(
                "flatten before adding layers (added layers are not in the base to unpack)".into(),
            ));
        }
        self.check_compression(opts.compression)?;
        let export = crate::export::ExportOptions {
            limits: Some(self.limits.clone()),
            cancel: self.cancel.clone(),
            ..Default::default()
        };
        let file = TempFile::new_in(&self.scratch)?;
        let out = file
            .as_file()
            .try_clone()
            .ctx(|| format!("opening {}", file.path().display()))?;
        let what = || file.path().display().to_string();
        let blob = crate::diff::writer::encode_layer(out, opts, &None, &what, |tar_side| {
            crate::export::write_tar(base, image, tar_side, &export, opts).map(drop)
        })?;
        if let Some(m) = self.manifest.as_object_mut() {
            m.insert("layers".into(), json!([]));
        }
        if let Some(c) = self.config.as_object_mut() {
            c.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
            c.insert(
                "history".into(),
                Value::Array(history.into_iter().collect()),
            );
        }
        self.push_layer(file, blob)
    }

    /// Moves the image from the base image `old` onto `new` (crane rebase): the bottom layers that
    /// are `old`'s (same digests and diff_ids, in order, else an error saying the image does not sit
    /// on `old`) are replaced by `new`'s layers, and the history entries of `old` by `new`'s; the
    /// layers above and the config are kept. `new`'s blobs are read from `new` when written.
    pub fn rebase(
        &mut self,
        old: &dyn Source,
        new: &'s dyn Source,
        platform: Option<&Platform>,
    ) -> Result<()> {
        if !self.layers.is_empty() {
            return Err(Error::Unsupported("rebase before adding layers".into()));
        }
        let old_image = crate::image::resolve(old, platform)?;
        let new_image = crate::image::resolve(new, platform)?;
        let layer_list = |v: &Value| -> Vec<Value> {
            v.get("layers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let digests = |layers: &[Value]| -> Vec<String> {
            layers
                .iter()
                .map(|l| {
                    l.get("digest")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        };
        let json_of = |bytes: &[u8], what: String| -> Result<Value> {
            serde_json::from_slice(bytes).map_err(|e| Error::invalid_document(what, e.to_string()))
        };
        let old_manifest = json_of(
            old_image.manifest_doc.bytes(),
            format!("manifest {}", old_image.digest()),
        )?;
        let new_manifest = json_of(
            new_image.manifest_doc.bytes(),
            format!("manifest {}", new_image.digest()),
        )?;
        let old_config = json_of(&old_image.config_bytes, "the old base's config".into())?;
        let new_config = json_of(&new_image.config_bytes, "the new base's config".into())?;
        let mine = layer_list(&self.manifest);
        let old_layers = layer_list(&old_manifest);
        let new_layers = layer_list(&new_manifest);
        let ids = |c: &Value| -> Vec<Value> {
            c.pointer("/rootfs/diff_ids")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let my_ids = ids(&self.config);
        let old_ids = ids(&old_config);
        if old_layers.len() > mine.len()
            || digests(&mine[..old_layers.len()]) != digests(&old_layers)
            || my_ids.len() < old_ids.len()
            || my_ids[..old_ids.len()] != old_ids[..]
        {
            return Err(Error::Other(format!(
                "the image does not sit on the old base {}: its bottom layers are not the old base's",
                old.name()
            )));
        }
        let mut layers = new_layers.clone();
        layers.extend(mine[old_layers.len()..].iter().cloned());
        let mut diff_ids = ids(&new_config);
        diff_ids.extend(my_ids[old_ids.len()..].iter().cloned());
        let history = |c: &Value| -> Vec<Value> {
            c.get("history")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let my_history = history(&self.config);
        let old_history = history(&old_config);
        let mut new_history = history(&new_config);
        if my_history.len() >= old_history.len() {
            new_history.extend(my_history[old_history.len()..].iter().cloned());
        }
        if let Some(m) = self.manifest.as_object_mut() {
            m.insert("layers".into(), Value::Array(layers));
        }
        if let Some(c) = self.config.as_object_mut() {
            c.insert(
                "rootfs".into(),
                json!({"type": "layers", "diff_ids": diff_ids}),
            );
            c.insert("history".into(), Value::Array(new_history));
        }
        let mut held = std::collections::HashSet::new();
        for l in &new_layers {
            if let Some(d) = l.get("digest").and_then(Value::as_str) {
                held.insert(Digest::parse(d)?);
            }
        }
        self.others.push((new, held));
        // Flatten would unpack the old stack: not after a rebase.
        self.base_image = None;
        Ok(())
    }

    /// Adds a layer from a tar stream (plain, gzip or zstd, detected from its first bytes),
    /// recompressed as `opts.compression` asks. Every entry is read and checked first: an entry
    /// whose path holds `..` is refused. Owners and times are kept as the tar has them.
    pub fn add_tar(&mut self, reader: impl Read + Send, opts: &LayerOptions) -> Result<&LayerBlob> {
        self.check_compression(opts.compression)?;
        // The plain tar goes to a temp file first, hashed: its digest is the diff_id.
        let plain = TempFile::new_in(&self.scratch)?;
        let (diff_id, tar_size) = {
            let out = plain
                .as_file()
                .try_clone()
                .ctx(|| format!("opening {}", plain.path().display()))?;
            let mut hashing = HashingWriter::new(std::io::BufWriter::new(out), Algorithm::Sha256);
            let reader = crate::cancel::CancelReader::new(reader, &self.cancel);
            let (_, mut decoded) = compress::sniffing_decoder(Compression::None, reader)
                .map_err(|e| from_io(e, || "reading the layer tarball".into()))?;
            std::io::copy(&mut decoded, &mut hashing)
                .map_err(|e| from_io(e, || "reading the layer tarball".into()))?;
            let (mut buffered, diff_id, size) = hashing.finish();
            buffered
                .flush()
                .ctx(|| format!("writing {}", plain.path().display()))?;
            (diff_id, size)
        };
        // Checked with the reader unpack uses, so what is refused here would be refused there too.
        let mut totals = crate::layer::ReadTotals::default();
        let reopened = plain
            .reopen()
            .ctx(|| format!("opening {}", plain.path().display()))?;
        crate::layer::parse_layer(
            std::io::BufReader::new(reopened),
            "the layer tarball",
            &self.limits,
            &mut totals,
            &mut |msg| {
                if let crate::layer::Msg::Entry(head) = msg {
                    let bad = head.path.split(|b| *b == b'/').any(|c| c == b"..")
                        || (head.kind == crate::layer::EntryKind::Hardlink
                            && head
                                .link
                                .as_deref()
                                .is_some_and(|l| l.split(|b| *b == b'/').any(|c| c == b"..")));
                    if bad {
                        return Err(Error::UnsafeEntry {
                            path: crate::layer::root::show(&head.path),
                            layer: "the layer tarball".into(),
                            reason: "the path escapes the image root through '..'".into(),
                        });
                    }
                }
                Ok(())
            },
        )?;
        let file = TempFile::new_in(&self.scratch)?;
        let out = file
            .as_file()
            .try_clone()
            .ctx(|| format!("opening {}", file.path().display()))?;
        let mut blob_side = HashingWriter::new(out, Algorithm::Sha256);
        let mut input = plain
            .reopen()
            .ctx(|| format!("opening {}", plain.path().display()))?;
        let encode = EncodeOptions {
            compression: opts.compression,
            level: opts.level.map(|l| l as i32),
            threads: 0,
        };
        compress::encode(&encode, &mut input, &mut blob_side)
            .map_err(|e| from_io(e, || format!("compressing into {}", file.path().display())))?;
        let (mut out, digest, size) = blob_side.finish();
        out.flush()
            .ctx(|| format!("writing {}", file.path().display()))?;
        let blob = LayerBlob {
            digest,
            diff_id,
            size,
            tar_size,
            compression: opts.compression,
        };
        self.push_layer(file, blob)
    }

    fn push_layer(&mut self, file: TempFile, blob: LayerBlob) -> Result<&LayerBlob> {
        let media = if self.manifest_media_type == media_type::DOCKER_MANIFEST {
            media_type::docker_layer(blob.compression).unwrap_or(media_type::DOCKER_LAYER_GZIP)
        } else {
            blob.media_type()
        };
        let desc = serde_json::to_value(new_descriptor(media, &blob.digest, blob.size))
            .map_err(|e| Error::Other(format!("serialising a layer descriptor: {e}")))?;
        self.manifest
            .as_object_mut()
            .ok_or_else(|| Error::invalid_document("manifest", "not a JSON object"))?
            .entry("layers")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| Error::invalid_document("manifest", "layers is not an array"))?
            .push(desc);
        let rootfs = self
            .config
            .as_object_mut()
            .ok_or_else(|| Error::invalid_document("image config", "not a JSON object"))?
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers"}));
        let ids = rootfs
            .as_object_mut()
            .ok_or_else(|| Error::invalid_document("image config", "rootfs is not an object"))?
            .entry("diff_ids")
            .or_insert_with(|| json!([]));
        if ids.is_null() {
            *ids = json!([]);
        }
        ids.as_array_mut()
            .ok_or_else(|| {
                Error::invalid_document("image config", "rootfs.diff_ids is not an array")
            })?
            .push(Value::String(blob.diff_id.to_string()));
        self.layers.push(NewLayer { file, blob });
        Ok(&self.layers[self.layers.len() - 1].blob)
    }

    /// The config and manifest documents as they will be written.
    pub fn documents(&self) -> Result<(Document, Document)> {
        let config_bytes = serde_json::to_vec(&self.config)
            .map_err(|e| Error::Other(format!("serialising the config: {e}")))?;
        let config_media_type = self
            .manifest
            .get("config")
            .and_then(|c| c.get("mediaType"))
            .and_then(Value::as_str)
            .unwrap_or(media_type::OCI_CONFIG)
            .to_string();
        let config = Document::new(&config_media_type, config_bytes)?;
        let mut manifest =
            crate::document::with_media_type(self.manifest.clone(), &self.manifest_media_type);
        if let Some(c) = manifest.get_mut("config").and_then(Value::as_object_mut) {
            c.insert("digest".into(), Value::String(config.digest().to_string()));
            c.insert("size".into(), json!(config.size()));
            c.insert("mediaType".into(), Value::String(config_media_type));
        }
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Other(format!("serialising the manifest: {e}")))?;
        let doc = Document::new(&self.manifest_media_type, bytes)?;
        doc.manifest()?;
        Ok((config, doc))
    }

    /// Writes the image to `dst` with [`crate::copy()`] (its options apply: progress, jobs,
    /// format conversion). Returns the copy's report; its `digest` is the new manifest's.
    pub fn write(&self, dst: &dyn Destination, opts: &CopyOptions) -> Result<CopyReport> {
        let (config, manifest) = self.documents()?;
        let linked = self.link_new_layers(dst)?;
        let index = match (&self.index, self.keep_index) {
            (Some((index, chosen)), true) => Some(replace_entry(index, chosen, &manifest)?),
            _ => None,
        };
        let mut opts = opts.clone();
        if index.is_some() {
            opts.platforms = crate::copy::PlatformChoice::All;
        }
        let built = Built {
            builder: self,
            config,
            manifest,
            index,
        };
        let mut report = crate::copy(&built, dst, &opts)?;
        // The layers linked in are this builder's writes, found present by the copy.
        report.blobs_skipped = report.blobs_skipped.saturating_sub(linked);
        report.blobs_copied += linked;
        Ok(report)
    }
}

impl ImageBuilder<'_> {
    /// Stores the new layers in a destination that keeps blobs as local files by hard-linking their
    /// temp files (written by this builder, in [`ImageBuilder::scratch_dir`]): with the scratch
    /// directory on the destination's filesystem (its [`Destination::staging_dir`]), the layer is
    /// written once and moved in, not copied. Each is fsynced and read back through a
    /// [`VerifiedReader`](crate::blob::VerifiedReader) from the very descriptor that is linked, so
    /// only verified bytes are stored, as `put_blob` requires. Where linking is not possible (another
    /// filesystem), nothing happens here and the copy engine copies the layer.
    fn link_new_layers(&self, dst: &dyn Destination) -> Result<usize> {
        let mut linked = 0;
        if !dst.links_blobs() {
            return Ok(linked);
        }
        for l in &self.layers {
            let desc = new_descriptor(l.blob.media_type(), &l.blob.digest, l.blob.size);
            if dst.has_blob(&desc)? {
                continue;
            }
            let what = || format!("the new layer {}", l.blob.digest);
            let file = l.file.reopen().ctx(what)?;
            file.sync_all().ctx(|| format!("syncing {}", what()))?;
            crate::blob::VerifiedReader::new(&file, l.blob.digest.clone(), l.blob.size, what())
                .finish()?;
            if dst.link_blob(&desc, &file)? {
                linked += 1;
            } else {
                tracing::debug!(
                    "{}: cannot hard-link it into {}; copying",
                    what(),
                    dst.name()
                );
            }
        }
        Ok(linked)
    }
}

/// The built image as a [`Source`]: new blobs from memory and temp files, the rest from the base.
struct Built<'b, 's> {
    builder: &'b ImageBuilder<'s>,
    config: Document,
    manifest: Document,
    /// The new root index, when the base's index is kept.
    index: Option<Document>,
}

/// `index` with the entry of digest `chosen` pointing at `manifest` instead; every other byte of
/// the entry (platform, annotations) and of the index kept.
fn replace_entry(index: &Document, chosen: &Digest, manifest: &Document) -> Result<Document> {
    let mut v: Value = serde_json::from_slice(index.bytes())
        .map_err(|e| Error::invalid_document(format!("index {}", index.digest()), e.to_string()))?;
    let mut found = false;
    if let Some(entries) = v.get_mut("manifests").and_then(Value::as_array_mut) {
        for e in entries {
            if e.get("digest").and_then(Value::as_str) == Some(chosen.to_string().as_str())
                && let Some(o) = e.as_object_mut()
            {
                o.insert(
                    "digest".into(),
                    Value::String(manifest.digest().to_string()),
                );
                o.insert("size".into(), json!(manifest.size()));
                o.insert(
                    "mediaType".into(),
                    Value::String(manifest.media_type().to_string()),
                );
                found = true;
            }
        }
    }
    if !found {
        return Err(Error::Unsupported(format!(
            "{chosen} is not an entry of the index {} itself (a nested index); choose the image \
             by digest to edit it alone",
            index.digest()
        )));
    }
    let bytes =
        serde_json::to_vec(&v).map_err(|e| Error::Other(format!("serialising the index: {e}")))?;
    let doc = Document::new(index.media_type(), bytes)?;
    doc.index()?;
    Ok(doc)
}

impl Built<'_, '_> {
    fn new_layer(&self, digest: &Digest) -> Option<&NewLayer> {
        self.builder
            .layers
            .iter()
            .find(|l| &l.blob.digest == digest)
    }
}

impl Source for Built<'_, '_> {
    fn name(&self) -> String {
        match self.builder.base {
            Some(b) => format!("{} (edited)", b.name()),
            None => "a new image".into(),
        }
    }

    fn root(&self) -> Result<Document> {
        Ok(self.index.clone().unwrap_or_else(|| self.manifest.clone()))
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        let digest = digest_of(desc)?;
        for doc in [&self.config, &self.manifest] {
            if &digest == doc.digest() {
                return Ok(Box::new(std::io::Cursor::new(doc.bytes().to_vec())));
            }
        }
        if let Some(l) = self.new_layer(&digest) {
            let f = l
                .file
                .reopen()
                .ctx(|| format!("opening {}", l.file.path().display()))?;
            return Ok(Box::new(f));
        }
        match self.builder.base {
            Some(b) => b.open_blob(desc),
            None => Err(Error::Other(format!(
                "{digest}: not a blob of the new image"
            ))),
        }
    }

    fn open_local_blob(&self, desc: &Descriptor) -> Result<Option<std::fs::File>> {
        let digest = digest_of(desc)?;
        if &digest == self.config.digest() || &digest == self.manifest.digest() {
            return Ok(None);
        }
        if let Some(l) = self.new_layer(&digest) {
            return l
                .file
                .reopen()
                .map(Some)
                .ctx(|| format!("opening {}", l.file.path().display()));
        }
        if let Some((s, _)) = self
            .builder
            .others
            .iter()
            .find(|(_, h)| h.contains(&digest))
        {
            return s.open_local_blob(desc);
        }
        match self.builder.base {
            Some(b) => b.open_local_blob(desc),
            None => Ok(None),
        }
    }

    fn registry_origin(&self) -> Option<RegistryOrigin> {
        self.builder.base.and_then(|b| b.registry_origin())
    }

    fn limits(&self) -> &Limits {
        &self.builder.limits
    }
}

/// A history entry for a layer or edit made by hoist (see [`ImageEdit::history_entry`]), with an
/// optional `comment`.
pub fn history_entry(
    created: Option<&str>,
    created_by: &str,
    author: Option<&str>,
    comment: Option<&str>,
    empty_layer: bool,
) -> Value {
    let mut h = ImageEdit::history_entry(created, created_by, author, empty_layer);
    if let (Some(c), Some(obj)) = (comment, h.as_object_mut()) {
        obj.insert("comment".into(), Value::String(c.to_string()));
    }
    h
}

/// Builds an image index (a multi-platform image) from images of any sources, or edits an existing
/// one: entries added and removed by digest or platform, annotations set. [`IndexBuilder::write`]
/// copies the index with every image it names into a [`Destination`] through [`crate::copy()`]
/// (blobs the destination has are skipped; when every image comes from one registry repository,
/// a destination on that registry mounts them).
///
/// ```no_run
/// use hoist::build::IndexBuilder;
/// let opts = hoist::OpenOptions::default();
/// let amd = hoist::open_source(&"oci:/tmp/layout:amd64".parse()?, &opts)?;
/// let arm = hoist::open_source(&"oci:/tmp/layout:arm64".parse()?, &opts)?;
/// let mut index = IndexBuilder::new();
/// index.add(amd.as_ref(), None)?;
/// index.add(arm.as_ref(), None)?;
/// index.annotate("org.opencontainers.image.version", "1.0");
/// let dst = hoist::open_destination(&"oci:/tmp/layout:multi".parse()?, &opts)?;
/// index.write(dst.as_ref(), &hoist::CopyOptions::default())?;
/// # Ok::<(), hoist::Error>(())
/// ```
pub struct IndexBuilder<'s> {
    media_type: String,
    /// The index as JSON (its `manifests` rebuilt from `entries` when written).
    index: Value,
    /// Each entry's descriptor JSON and the source its blobs come from.
    entries: Vec<(Value, &'s dyn Source)>,
}

impl Default for IndexBuilder<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'s> IndexBuilder<'s> {
    /// An empty OCI index.
    pub fn new() -> Self {
        IndexBuilder {
            media_type: media_type::OCI_INDEX.into(),
            index: json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []}),
            entries: Vec::new(),
        }
    }

    /// Starts from the index `source` names (its entries, annotations and other fields kept).
    pub fn from_source(source: &'s dyn Source) -> Result<Self> {
        let root = source.root()?;
        if !root.is_index() {
            return Err(Error::Unsupported(format!(
                "{} is an image manifest, not an index; make one with `index create`",
                source.name()
            )));
        }
        let mut index: Value = serde_json::from_slice(root.bytes()).map_err(|e| {
            Error::invalid_document(format!("index {}", root.digest()), e.to_string())
        })?;
        let entries = match index.get_mut("manifests").map(Value::take) {
            Some(Value::Array(a)) => a.into_iter().map(|e| (e, source)).collect(),
            _ => Vec::new(),
        };
        Ok(IndexBuilder {
            media_type: root.media_type().to_string(),
            index,
            entries,
        })
    }

    /// Adds the image `source` names: a manifest as one entry (its platform from `platform`, else
    /// from its config), an index as all of its entries.
    pub fn add(&mut self, source: &'s dyn Source, platform: Option<&Platform>) -> Result<()> {
        let root = source.root()?;
        if root.is_index() {
            let index = root.index()?;
            for d in index.manifests() {
                let v = serde_json::to_value(d)
                    .map_err(|e| Error::Other(format!("serialising a descriptor: {e}")))?;
                self.push(v, source);
            }
            return Ok(());
        }
        let platform = match platform {
            Some(p) => p.clone(),
            None => {
                let image = crate::image::resolve(source, None)?;
                let config: Value = serde_json::from_slice(&image.config_bytes).map_err(|e| {
                    Error::invalid_document(format!("config of {}", root.digest()), e.to_string())
                })?;
                let field = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
                match (field("os"), field("architecture")) {
                    (Some(os), Some(arch)) => {
                        Platform::new(&os, &arch, field("variant").as_deref())
                    }
                    _ => {
                        return Err(Error::Other(format!(
                            "{}: its config names no os/architecture; give the platform",
                            source.name()
                        )));
                    }
                }
            }
        };
        let mut p = json!({"architecture": platform.architecture, "os": platform.os});
        if let (Some(v), Some(o)) = (&platform.variant, p.as_object_mut()) {
            o.insert("variant".into(), Value::String(v.clone()));
        }
        let entry = json!({
            "mediaType": root.media_type(),
            "digest": root.digest().to_string(),
            "size": root.size(),
            "platform": p,
        });
        self.push(entry, source);
        Ok(())
    }

    /// An entry of the same digest and platform replaces the old one (adding an image twice
    /// keeps one entry).
    fn push(&mut self, entry: Value, source: &'s dyn Source) {
        let key = |e: &Value| (e.get("digest").cloned(), e.get("platform").cloned());
        self.entries.retain(|(e, _)| key(e) != key(&entry));
        self.entries.push((entry, source));
    }

    /// Removes the entries of manifest `digest`; returns how many there were.
    pub fn remove_digest(&mut self, digest: &Digest) -> usize {
        let before = self.entries.len();
        let d = digest.to_string();
        self.entries
            .retain(|(e, _)| e.get("digest").and_then(Value::as_str) != Some(d.as_str()));
        before - self.entries.len()
    }

    /// Removes the entries whose platform matches `platform`; returns how many there were.
    pub fn remove_platform(&mut self, platform: &Platform) -> Result<usize> {
        let before = self.entries.len();
        let mut kept = Vec::new();
        for (e, s) in std::mem::take(&mut self.entries) {
            let desc: Descriptor = serde_json::from_value(e.clone())
                .map_err(|err| Error::invalid_document("index entry", err.to_string()))?;
            let hit = Platform::of_descriptor(&desc).is_some_and(|p| platform.matches(&p));
            if !hit {
                kept.push((e, s));
            }
        }
        self.entries = kept;
        Ok(before - self.entries.len())
    }

    /// Sets an annotation of the index.
    pub fn annotate(&mut self, key: &str, value: &str) {
        if let Some(o) = self.index.as_object_mut() {
            let a = o.entry("annotations").or_insert_with(|| json!({}));
            if !a.is_object() {
                *a = json!({});
            }
            if let Some(a) = a.as_object_mut() {
                a.insert(key.into(), Value::String(value.into()));
            }
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index document as it will be written.
    pub fn document(&self) -> Result<Document> {
        let mut v = self.index.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "manifests".into(),
                Value::Array(self.entries.iter().map(|(e, _)| e.clone()).collect()),
            );
        }
        let v = crate::document::with_media_type(v, &self.media_type);
        let bytes = serde_json::to_vec(&v)
            .map_err(|e| Error::Other(format!("serialising the index: {e}")))?;
        let doc = Document::new(&self.media_type, bytes)?;
        doc.index()?;
        Ok(doc)
    }

    /// Writes the index and every image it names to `dst`.
    pub fn write(&self, dst: &dyn Destination, opts: &CopyOptions) -> Result<CopyReport> {
        if self.entries.is_empty() {
            return Err(Error::Other("an index needs at least one image".into()));
        }
        let index = self.document()?;
        let mut opts = opts.clone();
        opts.platforms = crate::copy::PlatformChoice::All;
        let sources: Vec<&dyn Source> = self.entries.iter().map(|(_, s)| *s).collect();
        // Which source serves a blob: the first whose entry's image holds it.
        let mut owner = std::collections::HashMap::new();
        for (e, s) in &self.entries {
            let desc: Descriptor = serde_json::from_value(e.clone())
                .map_err(|err| Error::invalid_document("index entry", err.to_string()))?;
            let doc = crate::transport::read_document(*s, &desc)?;
            owner.entry(doc.digest().clone()).or_insert(*s);
            if let crate::document::Parsed::Manifest(m) = doc.parse()? {
                for d in std::iter::once(m.config()).chain(m.layers().iter()) {
                    owner.entry(digest_of(d)?).or_insert(*s);
                }
            }
        }
        let origin = sources.first().and_then(|s| s.registry_origin());
        let same_origin = origin.is_some() && sources.iter().all(|s| s.registry_origin() == origin);
        let assembled = Assembled {
            index,
            owner,
            origin: if same_origin { origin } else { None },
            limits: sources
                .first()
                .map(|s| s.limits().clone())
                .unwrap_or_default(),
        };
        crate::copy(&assembled, dst, &opts)
    }
}

/// An index assembled from images of several sources, as a [`Source`].
struct Assembled<'s> {
    index: Document,
    owner: std::collections::HashMap<Digest, &'s dyn Source>,
    origin: Option<RegistryOrigin>,
    limits: Limits,
}

impl Assembled<'_> {
    fn source_of(&self, desc: &Descriptor) -> Result<&dyn Source> {
        let d = digest_of(desc)?;
        self.owner
            .get(&d)
            .copied()
            .ok_or_else(|| Error::Other(format!("{d}: not a blob of the assembled index")))
    }
}

impl Source for Assembled<'_> {
    fn name(&self) -> String {
        "a new index".into()
    }
    fn root(&self) -> Result<Document> {
        Ok(self.index.clone())
    }
    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        self.source_of(desc)?.open_blob(desc)
    }
    fn open_local_blob(&self, desc: &Descriptor) -> Result<Option<std::fs::File>> {
        self.source_of(desc)?.open_local_blob(desc)
    }
    fn registry_origin(&self) -> Option<RegistryOrigin> {
        self.origin.clone()
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
}
