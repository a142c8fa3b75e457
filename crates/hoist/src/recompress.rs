//! The conversion step of a copy: manifest format changes and layer recompression.
//!
//! This is the copy engine's one extension point for conversions; no pair of transports is special-cased.
//! A conversion is [`needed`] when the caller asks for a format (`--format`) or a layer compression
//! (`--dest-compress-format`), when a document is not in the destination's
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
//! be linked in) is offered to the destination afterwards. Manifests are rebuilt by
//! [`crate::convert::convert_manifest`] with the new layer descriptors, indexes by
//! [`crate::convert::convert_index`] pointing at the rebuilt children, and the root is committed last.
//! Memory stays flat: layers stream, only documents and configs are held.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use crate::blob::VerifiedReader;
use crate::compress::{self, Compression, EncodeOptions};
use crate::convert::{self, Format, LayerUpdate};
use crate::copy::{CopyOptions, CopyReport};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::document::{Document, Parsed};
use crate::error::{Error, IoContext, Result, from_io};
use crate::layer::LayerStream;
use crate::media_type::{self, Kind};
use crate::progress::{BlobOutcome, Event, ProgressReader, Sink};
use crate::transport::{
    BlobReader, Destination, LayerPolicy, Source, VerifiedStream, read_small_blob,
};

/// What conversion a copy should apply (all `None`: only what the destination needs).
///
/// ```no_run
/// use hoist::compress::Compression;
/// use hoist::convert::Format;
/// use hoist::recompress::ConvertOptions;
/// let opts = hoist::OpenOptions::default();
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
/// let dst = hoist::open_destination(&"oci:/tmp/zstd:v1".parse()?, &opts)?;
/// let convert = ConvertOptions { compression: Some(Compression::Zstd), ..Default::default() };
/// let copy = hoist::CopyOptions { convert, ..Default::default() };
/// hoist::copy(src.as_ref(), dst.as_ref(), &copy)?; // layers recompressed, diff_ids kept
/// # let _ = Format::Oci;
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
struct LayerJob {
    desc: Descriptor,
    actual: Compression,
    target: Compression,
    diff_id: Option<Digest>,
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

fn is_foreign(desc: &Descriptor) -> bool {
    convert::layer_kind(desc.media_type().as_ref()).is_some_and(|(_, foreign)| foreign)
        && desc.urls().as_ref().is_some_and(|u| !u.is_empty())
}

/// Decodes, checks the diff_id, re-encodes into a temp file and hands the result to `dst`.
fn recompress_layer(
    src: &dyn Source,
    dst: &dyn Destination,
    job: &LayerJob,
    opts: &ConvertOptions,
    threads: usize,
    sink: &Option<Sink>,
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
        let raw: BlobReader<'_> = Box::new(ProgressReader::new(
            src.open_blob(&job.desc)?,
            digest.clone(),
            sink.clone(),
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
        let mut tar = LayerStream::open(src, &job.desc, &what, job.diff_id.clone(), sink.clone())?;
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

fn emit(opts: &CopyOptions, ev: Event) {
    crate::progress::emit(&opts.progress, ev);
}

/// Copies `root` and `children` (children before parents, as the copy plan orders them) from `src` to
/// `dst`, converting as [`needed`] says. `blobs` are the plan's unique blobs.
pub(crate) fn copy_converted(
    src: &dyn Source,
    dst: &dyn Destination,
    root: Document,
    children: Vec<Document>,
    blobs: Vec<Descriptor>,
    source_digest: Digest,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let conv = &opts.convert;
    let native = dst.native_format();
    let target_of = |doc: &Document| -> Result<Format> {
        conv.format
            .or(native)
            .or_else(|| Format::of(doc.media_type()))
            .ok_or_else(|| Error::UnsupportedMediaType {
                media_type: doc.media_type().to_string(),
                what: format!("document {}", doc.digest()),
            })
    };

    // Decide, for every unique layer, its real and its target compression.
    let mut jobs: HashMap<Digest, LayerJob> = HashMap::new();
    let mut layer_set = std::collections::HashSet::new();
    let docs: Vec<&Document> = children.iter().chain(std::iter::once(&root)).collect();
    for doc in &docs {
        let Parsed::Manifest(m) = doc.parse()? else {
            continue;
        };
        let converting = Format::of(doc.media_type()) != Some(target_of(doc)?);
        let diff_ids: Vec<Digest> = if matches!(
            media_type::kind(m.config().media_type().as_ref()),
            Kind::Config { .. }
        ) {
            let bytes = read_small_blob(src, m.config())?;
            let config = crate::document::parse_config(&bytes, &digest_of(m.config())?)?;
            crate::image::diff_ids_of(&config)?
        } else {
            Vec::new()
        };
        for (i, layer) in m.layers().iter().enumerate() {
            let Some((declared, _)) = convert::layer_kind(layer.media_type().as_ref()) else {
                continue;
            };
            let d = digest_of(layer)?;
            layer_set.insert(d.clone());
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

    // Refusals that the plan already decides come before anything is written: a refused copy leaves
    // no trace at a new destination. (The same checks on the rebuilt documents below stay, as the
    // last word.)
    for doc in &docs {
        let target = target_of(doc)?;
        let mt = if doc.is_index() {
            target.index_media_type()
        } else {
            target.manifest_media_type()
        };
        if !dst.accepts(mt) {
            return Err(Error::Unsupported(format!(
                "{} cannot store {mt} documents{}",
                dst.name(),
                if doc.is_index() {
                    "; it holds a single image: choose one with --platform"
                } else {
                    "; choose another --format"
                }
            )));
        }
        if opts.preserve_digests && Format::of(doc.media_type()) != Some(target) {
            return Err(Error::Unsupported(format!(
                "--preserve-digests: {} for {} means converting {} to {}, which changes its digest",
                root.digest(),
                dst.name(),
                doc.digest(),
                target.as_str()
            )));
        }
    }
    if opts.preserve_digests
        && let Some(job) = jobs
            .values()
            .find(|j| j.actual != j.target && !is_foreign(&j.desc))
    {
        return Err(Error::Unsupported(format!(
            "--preserve-digests: copying {} to {} recompresses layer {} ({} to {}), which changes the manifest's digest",
            root.digest(),
            dst.name(),
            job.desc.digest(),
            job.actual.as_str(),
            job.target.as_str()
        )));
    }

    emit(
        opts,
        Event::Plan {
            blobs: blobs.len(),
            bytes: blobs.iter().map(|b| b.size()).sum(),
        },
    );
    let results: Mutex<HashMap<Digest, LayerUpdate>> = Mutex::new(HashMap::new());
    let outcomes: Mutex<Vec<(BlobOutcome, u64)>> = Mutex::new(Vec::new());
    let parallelism = if opts.jobs == 0 { 4 } else { opts.jobs };
    // Layers recompressed at once share the cores: each encoder gets its part (at least one worker),
    // rather than every encoder starting a worker per core (more memory, more switching, no speed).
    let recompressing = jobs
        .values()
        .filter(|j| j.actual != j.target && !is_foreign(&j.desc))
        .count()
        .clamp(1, parallelism);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let encode_threads = cores.div_ceil(recompressing);
    crate::copy::parallel(&blobs, parallelism, |desc| {
        let d = digest_of(desc)?;
        let (how, size) = match jobs.get(&d) {
            Some(job) if job.actual != job.target && !is_foreign(desc) => {
                emit(
                    opts,
                    Event::BlobStarted {
                        digest: d.clone(),
                        size: desc.size(),
                    },
                );
                let (update, how) =
                    recompress_layer(src, dst, job, conv, encode_threads, &opts.progress)?;
                let size = update.size;
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(d.clone(), update);
                (how, size)
            }
            other => {
                let how = crate::copy::copy_blob(src, dst, desc, &opts.progress, opts.link)?;
                if let Some(job) = other {
                    results.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        d.clone(),
                        LayerUpdate {
                            digest: d.clone(),
                            size: desc.size(),
                            compression: job.actual,
                        },
                    );
                }
                (how, desc.size())
            }
        };
        emit(
            opts,
            Event::BlobDone {
                digest: d,
                size,
                how,
            },
        );
        outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((how, size));
        Ok(())
    })?;
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());

    // Rebuild the documents, children first, and point each index at its rebuilt children.
    let mut replaced: HashMap<Digest, Document> = HashMap::new();
    let mut rebuild = |doc: &Document| -> Result<Document> {
        let target = target_of(doc)?;
        let new = match doc.parse()? {
            Parsed::Manifest(m) => {
                let mut updates = Vec::new();
                for l in m.layers() {
                    let d = digest_of(l)?;
                    updates.push(results.get(&d).cloned());
                }
                convert::convert_manifest(doc, target, &updates)?
            }
            Parsed::Index(_) => convert::convert_index(doc, target, &replaced)?,
        };
        if !dst.accepts(new.media_type()) {
            return Err(Error::Unsupported(format!(
                "{} cannot store {} documents{}",
                dst.name(),
                new.media_type(),
                if new.is_index() {
                    "; it holds a single image: choose one with --platform"
                } else {
                    "; choose another --format"
                }
            )));
        }
        if new.digest() != doc.digest() {
            replaced.insert(doc.digest().clone(), new.clone());
        }
        Ok(new)
    };
    let mut new_children = Vec::new();
    for child in &children {
        new_children.push(rebuild(child)?);
    }
    let new_root = rebuild(&root)?;
    if opts.preserve_digests && new_root.digest() != root.digest() {
        return Err(Error::Unsupported(format!(
            "--preserve-digests: converting {} for {} writes {} instead",
            root.digest(),
            dst.name(),
            new_root.digest()
        )));
    }
    for child in &new_children {
        dst.put_document(child)?;
    }
    dst.commit(&new_root)?;

    let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(CopyReport::new(&new_root, source_digest, &outcomes))
}
