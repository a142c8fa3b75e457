//! The per-layer actions of a copy, and the decision between them. A blob is kept (the destination
//! has it), mounted (same registry), hard-linked (`--link`) or cloned/copied from a local source's
//! open file, or streamed through a [`crate::blob::VerifiedReader`]; a foreign layer the source lacks
//! is left out. A layer whose compression changes is recompressed, and documents converted (see
//! [`super::commit`]), when [`needed`]: when the caller asks for a format (`--format`) or a layer
//! compression (`--dest-compress-format`), when a document is not in the destination's
//! [`Destination::native_format`] (Docker into an OCI layout, OCI into a docker-archive, as skopeo
//! converts them), or when the destination's [`LayerPolicy`] requires uncompressed layers.
//!
//! Then every layer's real compression is sniffed from its first bytes (a docker-archive's synthesised
//! manifest calls uncompressed layers gzip, as skopeo's does) and a target compression is chosen: the
//! requested one, else the policy's (decompress for docker-archive; gzip for uncompressed layers going
//! into an OCI destination whose manifest is converted anyway, as `skopeo copy docker-archive: oci:`
//! does), else the layer's own. A layer whose compression stays is copied as it is (same digest). One
//! that changes streams `source -> crate::layer::LayerStream (verified blob, decoder, the tar hashed and
//! checked against the config's diff_id) -> encoder on every core -> sha256 -> temp file`; only then are its digest and size
//! known, so the temp file (in the destination's [`Destination::staging_dir`] when it has one, so it can
//! be linked in) is offered to the destination afterwards. Memory stays flat: layers stream, only
//! documents and configs are held.

use std::collections::HashMap;
use std::io::{BufWriter, Write};

use crate::blob::VerifiedReader;
use crate::cancel::{CancelReader, CancelToken};
use crate::compress::{self, Compression, EncodeOptions};
use crate::convert::{self, Format, LayerUpdate};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::document::{Document, Parsed};
use crate::error::{Error, IoContext, Result, from_io};
use crate::layer::LayerStream;
use crate::media_type::is_foreign;
use crate::progress::{BlobOutcome, Event, ProgressReader, Sink, emit};
use crate::transport::{BlobReader, Destination, LayerPolicy, Source, VerifiedStream};

/// What conversion a copy should apply (all `None`: only what the destination needs).
///
/// ```no_run
/// use hoist::compress::Compression;
/// use hoist::convert::Format;
/// use hoist::copy::ConvertOptions;
/// let opts = hoist::OpenOptions::default();
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
/// let dst = hoist::open_destination(&"oci:/tmp/zstd:v1".parse()?, &opts)?;
/// let mut convert = ConvertOptions::default();
/// convert.compression = Some(Compression::Zstd);
/// let mut copy = hoist::CopyOptions::default();
/// copy.convert = convert;
/// hoist::copy(src.as_ref(), dst.as_ref(), &copy)?; // layers recompressed, diff_ids kept
/// # let _ = Format::Oci;
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConvertOptions {
    /// The manifest format to write (`--format`).
    pub format: Option<Format>,
    /// The layer compression to write (`--dest-compress-format`).
    pub compression: Option<Compression>,
    /// The compression level (`--dest-compress-level`).
    pub level: Option<i32>,
}

/// True when copying these documents to `dst` with `opts` needs the conversion step.
pub fn needed(docs: &[&Document], dst: &dyn Destination, opts: &ConvertOptions) -> bool {
    if opts.format.is_some()
        || opts.compression.is_some()
        || dst.layer_policy() == LayerPolicy::Uncompressed
    {
        return true;
    }
    match dst.native_format() {
        Some(native) => docs
            .iter()
            .any(|d| Format::of(d.media_type()).is_some_and(|f| f != native)),
        None => false,
    }
}

/// One unique layer to bring over, and what to do with it.
#[derive(Debug, Clone)]
pub(super) struct LayerJob {
    pub(super) desc: Descriptor,
    pub(super) actual: Compression,
    pub(super) target: Compression,
    pub(super) diff_id: Option<Digest>,
}

/// The format `doc` is written in: the requested one, else the destination's own, else its own.
pub(super) fn target_format(
    doc: &Document,
    conv: &ConvertOptions,
    dst: &dyn Destination,
) -> Result<Format> {
    conv.format
        .or(dst.native_format())
        .or_else(|| Format::of(doc.media_type()))
        .ok_or_else(|| Error::UnsupportedMediaType {
            media_type: doc.media_type().to_string(),
            what: format!("document {}", doc.digest()),
        })
}

/// Decides, for every unique layer of `docs`, its real and its target compression (and checks that
/// an uncompressed layer's digest is its diff_id).
pub(super) fn plan_layers(
    src: &dyn Source,
    dst: &dyn Destination,
    docs: &[&Document],
    conv: &ConvertOptions,
) -> Result<HashMap<Digest, LayerJob>> {
    let mut jobs: HashMap<Digest, LayerJob> = HashMap::new();
    for &doc in docs {
        let Parsed::Manifest(m) = doc.parse()? else {
            continue;
        };
        let converting = Format::of(doc.media_type()) != Some(target_format(doc, conv, dst)?);
        let diff_ids = match crate::image::image_config(src, &m)? {
            Some(config) => crate::image::diff_ids_of(&config)?,
            None => Vec::new(),
        };
        for (i, layer) in m.layers().iter().enumerate() {
            let Some((declared, _)) = convert::layer_kind(layer.media_type().as_ref()) else {
                continue;
            };
            let d = digest_of(layer)?;
            if jobs.contains_key(&d) {
                continue;
            }
            let actual = sniff_blob(src, layer)?.unwrap_or(declared);
            let target = match (conv.compression, dst.layer_policy()) {
                (Some(c), _) => c,
                (None, LayerPolicy::Uncompressed) => Compression::None,
                (None, LayerPolicy::CompressWhenConverting)
                    if converting && actual == Compression::None =>
                {
                    Compression::Gzip
                }
                (None, _) => actual,
            };
            let diff_id = diff_ids.get(i).cloned();
            if let Some(expected) = &diff_id
                && actual == Compression::None
                && d.algorithm() == expected.algorithm()
                && &d != expected
            {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "uncompressed layer {i} of manifest {} (its digest must be its diff_id)",
                        doc.digest()
                    ),
                    expected: expected.clone(),
                    actual: d,
                });
            }
            jobs.insert(
                d,
                LayerJob {
                    desc: layer.clone(),
                    actual,
                    target,
                    diff_id,
                },
            );
        }
    }
    Ok(jobs)
}

/// Reads the first bytes of a blob to learn its real compression (`None` when it cannot be opened,
/// e.g. a foreign layer: then the declared compression stands).
fn sniff_blob(src: &dyn Source, desc: &Descriptor) -> Result<Option<Compression>> {
    let mut r = match src.open_blob(desc) {
        Ok(r) => r,
        Err(Error::BlobNotFound { .. }) if is_foreign(desc) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = [0u8; 4];
    let n = crate::blob::read_full(&mut r, &mut buf)
        .map_err(|e| from_io(e, || format!("reading blob {}", desc.digest())))?;
    Ok(Some(compress::sniff(&buf[..n])))
}

/// Copies one blob as it is (kept, mounted, linked, cloned, copied or left out); returns how.
pub(super) fn copy_blob(
    src: &dyn Source,
    dst: &dyn Destination,
    desc: &Descriptor,
    sink: &Option<Sink>,
    link: bool,
    cancel: &CancelToken,
) -> Result<BlobOutcome> {
    let digest = digest_of(desc)?;
    if dst.has_blob(desc)? {
        return Ok(BlobOutcome::Skipped);
    }
    if let Some(origin) = src.registry_origin()
        && dst.mount_blob(desc, &origin)?
    {
        // Mounted from another repository of the same registry: nothing was transferred.
        return Ok(BlobOutcome::Mounted);
    }
    emit(
        sink,
        Event::BlobStarted {
            digest: digest.clone(),
            size: desc.size(),
        },
    );
    let what = || format!("blob {digest} of {}", src.name());
    if dst.links_blobs() {
        let local = match src.open_local_blob(desc) {
            Ok(f) => f,
            Err(Error::BlobNotFound { .. }) if is_foreign(desc) => return Ok(BlobOutcome::Foreign),
            Err(e) => return Err(e),
        };
        if let Some(mut file) = local {
            // Everything below works from this one open file: what lands is what was verified, even
            // if the source's file is renamed over meanwhile.
            if link && shareable(&file) {
                VerifiedReader::new(
                    CancelReader::new(
                        ProgressReader::new(&file, digest.clone(), sink.clone()),
                        cancel,
                    ),
                    digest.clone(),
                    desc.size(),
                    what(),
                )
                .finish()?;
                if dst.link_blob(desc, &file)? {
                    return Ok(BlobOutcome::Linked);
                }
                tracing::debug!("{}: cannot hard-link it here; copying", what());
                std::io::Seek::rewind(&mut file)
                    .map_err(|e| Error::io(format!("rewinding {}", what()), e))?;
            } else if link {
                tracing::debug!(
                    "{}: writable by others or owned by another user; copying, not linking",
                    what()
                );
            }
            let cloned = dst.clone_blob(desc, &file, &mut |clone| {
                VerifiedReader::new(
                    CancelReader::new(
                        ProgressReader::new(clone, digest.clone(), sink.clone()),
                        cancel,
                    ),
                    digest.clone(),
                    desc.size(),
                    what(),
                )
                .finish()
            })?;
            if cloned {
                return Ok(BlobOutcome::Copied);
            }
            let raw: BlobReader<'_> = Box::new(CancelReader::new(
                ProgressReader::new(file, digest.clone(), sink.clone()),
                cancel,
            ));
            return put_verified(dst, desc, raw, &digest, what());
        }
    }
    let raw = match src.open_blob(desc) {
        Ok(r) => r,
        Err(Error::BlobNotFound { .. }) if is_foreign(desc) => return Ok(BlobOutcome::Foreign),
        Err(e) => return Err(e),
    };
    let raw: BlobReader<'_> = Box::new(CancelReader::new(
        ProgressReader::new(raw, digest.clone(), sink.clone()),
        cancel,
    ));
    put_verified(dst, desc, raw, &digest, what())
}

/// Streams `raw` into `dst` through a verified reader: the destination stores only verified bytes.
fn put_verified(
    dst: &dyn Destination,
    desc: &Descriptor,
    raw: BlobReader<'_>,
    digest: &Digest,
    what: String,
) -> Result<BlobOutcome> {
    let mut stream = VerifiedReader::new(raw, digest.clone(), desc.size(), what);
    dst.put_blob(desc, &mut stream)?;
    if !stream.is_verified() {
        // A destination that did not read to the end would otherwise accept an unverified blob.
        stream.finish()?;
    }
    Ok(BlobOutcome::Copied)
}

/// True when a local blob file may be shared by hard link (`--link`): a regular file that no one but
/// the user running hoist can change (owned by this user, not writable by group or others).
fn shareable(file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata().is_ok_and(|m| {
        m.is_file() && m.mode() & 0o022 == 0 && m.uid() == rustix::process::geteuid().as_raw()
    })
}

/// Decodes, checks the diff_id, re-encodes into a temp file and hands the result to `dst`.
pub(super) fn recompress_layer(
    src: &dyn Source,
    dst: &dyn Destination,
    job: &LayerJob,
    opts: &ConvertOptions,
    threads: usize,
    sink: &Option<Sink>,
    cancel: &CancelToken,
) -> Result<(LayerUpdate, BlobOutcome)> {
    let digest = digest_of(&job.desc)?;
    let what = format!("layer {digest} of {}", src.name());
    let dir = dst.staging_dir().unwrap_or_else(std::env::temp_dir);
    let mut tmp = crate::durable::TempFile::new_in(&dir)?;
    let into = tmp.path().to_path_buf();
    // Plain tar to plain tar: the bytes pass through unchanged, so the source digest (checked by the
    // verified stream) is also the new digest and, in the same algorithm, the diff_id. Hashing the
    // same bytes twice more would triple the CPU for nothing.
    let passthrough = job.actual == Compression::None
        && job.target == Compression::None
        && job
            .diff_id
            .as_ref()
            .is_none_or(|d| d.algorithm() == digest.algorithm());
    let (new_digest, new_size) = if passthrough {
        // Progress is the source's bytes as they are read (the BlobStarted size is the source's).
        let raw: BlobReader<'_> = Box::new(CancelReader::new(
            ProgressReader::new(src.open_blob(&job.desc)?, digest.clone(), sink.clone()),
            cancel,
        ));
        let mut stream = VerifiedReader::new(raw, digest.clone(), job.desc.size(), what.clone());
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        std::io::copy(&mut stream, &mut out)
            .map_err(|e| from_io(e, || format!("copying {what} into {}", into.display())))?;
        out.flush()
            .map_err(|e| from_io(e, || format!("writing {what} into {}", into.display())))?;
        stream.finish()?;
        if let Some(expected) = &job.diff_id
            && &digest != expected
        {
            return Err(Error::DigestMismatch {
                what: format!("uncompressed content (diff_id) of {what}"),
                expected: expected.clone(),
                actual: digest,
            });
        }
        (digest.clone(), job.desc.size())
    } else {
        // The one verified layer stream: blob digest and size, real compression, gzip trailers, and
        // the diff_id (in its own algorithm) are all checked by the time it ends.
        let mut tar = LayerStream::open(src, &job.desc, &what, job.diff_id.clone(), sink.clone())?
            .with_cancel(cancel);
        let mut out = HashingWriter::new(
            BufWriter::with_capacity(1 << 20, tmp.as_file_mut()),
            Algorithm::Sha256,
        );
        let encode = EncodeOptions {
            compression: job.target,
            level: opts.level,
            threads,
        };
        let encoded = compress::encode(&encode, &mut tar, &mut out);
        encoded.map_err(|e| {
            tar.take_error().unwrap_or_else(|| {
                from_io(e, || {
                    format!("recompressing {what} into {}", into.display())
                })
            })
        })?;
        tar.finish()?;
        out.flush()
            .map_err(|e| from_io(e, || format!("writing {what} into {}", into.display())))?;
        let (_, d, n) = out.finish();
        (d, n)
    };
    tmp.as_file()
        .sync_all()
        .ctx(|| format!("syncing the recompressed {what}"))?;
    let update = LayerUpdate {
        digest: new_digest.clone(),
        size: new_size,
        compression: job.target,
    };
    let new_desc = crate::descriptor::new_descriptor(
        &convert::layer_media_type(Format::Oci, job.target, false)?,
        &new_digest,
        new_size,
    );
    if dst.has_blob(&new_desc)? {
        return Ok((update, BlobOutcome::Skipped));
    }
    // The temp file is hoist's own, in the destination's staging directory: linking it is moving it.
    if dst.link_blob(&new_desc, tmp.as_file())? {
        // Written by this copy (recompressed), not shared with anything: a copy, not a link.
        return Ok((update, BlobOutcome::Copied));
    }
    let file = tmp
        .reopen()
        .ctx(|| format!("reopening the recompressed {what}"))?;
    let mut verified: VerifiedStream<'_> = VerifiedReader::new(
        Box::new(file),
        new_digest.clone(),
        new_size,
        format!("recompressed {what}"),
    );
    dst.put_blob(&new_desc, &mut verified)?;
    if !verified.is_verified() {
        verified.finish()?;
    }
    Ok((update, BlobOutcome::Copied))
}
