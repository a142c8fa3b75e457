//! The verification walk: every document and blob reachable from a source's root is read through a
//! verified stream; layers are also decompressed and hashed against the config's `rootfs.diff_ids`.
//! Every problem is collected (not only the first), each naming the document or blob it concerns.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Serialize;

use crate::blob::VerifiedReader;
use crate::cancel::{CancelReader, CancelToken};
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::{Document, parse_config};
use crate::error::{Error, Result};
use crate::layer::LayerStream;
use crate::media_type::{self, Kind};
use crate::progress::{BlobOutcome, Event, ProgressReader, Sink};
use crate::transport::{BlobReader, Source, read_small_blob};
use crate::walk::Visitor;

/// Options of a verification.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Layers verified at once (0 means the number of CPUs).
    pub jobs: usize,
    /// Where progress events go.
    pub progress: Option<Sink>,
    /// Stops the verification from another thread: the report then says
    /// [`VerifyReport::cancelled`] (and is not ok). Never cancelled by default.
    pub cancel: CancelToken,
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What it concerns: `layer 2 of manifest sha256:...`, `config sha256:...`, `index.json`.
    pub subject: String,
    /// The blob or document digest, when known.
    pub digest: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// What was verified.
    pub source: String,
    /// The root digest, when the root could be read.
    pub digest: Option<Digest>,
    /// Manifests and indexes checked.
    pub documents: usize,
    /// Blobs checked.
    pub blobs: usize,
    /// Bytes read from blobs.
    pub bytes: u64,
    /// Everything wrong, in discovery order.
    pub problems: Vec<Problem>,
    /// True when the verification was stopped through [`VerifyOptions::cancel`] before it checked
    /// everything (the blobs not checked are not problems).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
}

impl VerifyReport {
    /// True when everything was checked and nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && !self.cancelled
    }
}

struct BlobTask {
    desc: Descriptor,
    subject: String,
    diff_id: Option<Digest>,
}

struct Walker<'a> {
    src: &'a dyn Source,
    report: VerifyReport,
    tasks: Vec<BlobTask>,
    /// Each (blob, diff_id) pair is checked once: a layer shared by images is checked against the
    /// diff_id every one of them lists.
    seen_blobs: HashSet<(Digest, Option<Digest>)>,
}

/// Every problem the walk meets is recorded and the walk goes on past it.
impl Visitor for Walker<'_> {
    fn problem(&mut self, subject: String, digest: Option<&Digest>, err: Error) -> Result<()> {
        self.record(subject, digest, err);
        Ok(())
    }

    fn document(&mut self, _doc: &Document) {
        self.report.documents += 1;
    }

    fn manifest(&mut self, doc: &Document, m: &oci_spec::image::ImageManifest) -> Result<()> {
        self.check_manifest(doc, m);
        Ok(())
    }

    fn entry_blob(&mut self, index: &Document, i: usize, desc: &Descriptor) -> Result<()> {
        let subject = format!("entry {i} of index {}", index.digest());
        self.blob(desc.clone(), subject, None);
        Ok(())
    }
}

impl Walker<'_> {
    fn record(
        &mut self,
        subject: impl Into<String>,
        digest: Option<&Digest>,
        err: impl std::fmt::Display,
    ) {
        self.report.problems.push(Problem {
            subject: subject.into(),
            digest: digest.map(|d| d.to_string()),
            message: err.to_string(),
        });
    }

    fn check_manifest(&mut self, doc: &Document, m: &oci_spec::image::ImageManifest) {
        let mdigest = doc.digest();
        let config = m.config();
        let config_digest = digest_of(config).ok();
        let mut diff_ids: Option<Vec<Option<Digest>>> = None;
        match read_small_blob(self.src, config) {
            Err(e) => self.record(
                format!("config of manifest {mdigest}"),
                config_digest.as_ref(),
                e,
            ),
            Ok(bytes) => {
                self.report.blobs += 1;
                self.report.bytes += bytes.len() as u64;
                if let Some(d) = &config_digest {
                    self.seen_blobs.insert((d.clone(), None));
                }
                if matches!(
                    media_type::kind(config.media_type().as_ref()),
                    Kind::Config { .. }
                ) {
                    match parse_config(&bytes, config_digest.as_ref().unwrap_or(mdigest)) {
                        Err(e) => self.record(
                            format!("config of manifest {mdigest}"),
                            config_digest.as_ref(),
                            e,
                        ),
                        Ok(c) => {
                            let ids: Vec<Option<Digest>> = crate::image::diff_ids_each(&c)
                                .into_iter()
                                .map(Result::ok)
                                .collect();
                            if ids.iter().any(Option::is_none) {
                                self.record(
                                    format!("config of manifest {mdigest}"),
                                    config_digest.as_ref(),
                                    "rootfs.diff_ids holds an invalid digest",
                                );
                            }
                            if ids.len() != m.layers().len() {
                                self.record(
                                    format!("manifest {mdigest}"),
                                    Some(mdigest),
                                    format!(
                                        "{} layers but the config lists {} diff_ids",
                                        m.layers().len(),
                                        ids.len()
                                    ),
                                );
                            }
                            diff_ids = Some(ids);
                        }
                    }
                }
            }
        }
        for (i, layer) in m.layers().iter().enumerate() {
            let diff_id = diff_ids
                .as_ref()
                .and_then(|ids| ids.get(i).cloned().flatten());
            self.blob(
                layer.clone(),
                format!("layer {i} of manifest {mdigest}"),
                diff_id,
            );
        }
    }

    fn blob(&mut self, desc: Descriptor, subject: String, diff_id: Option<Digest>) {
        match digest_of(&desc) {
            Err(e) => self.record(subject, None, e),
            Ok(d) => {
                if self.seen_blobs.insert((d, diff_id.clone())) {
                    self.tasks.push(BlobTask {
                        desc,
                        subject,
                        diff_id,
                    });
                }
            }
        }
    }
}

/// Reads one blob through a verified stream; a layer through the one verified layer stream
/// ([`LayerStream`]), which also checks its compression and diff_id. Returns the problem.
fn check_blob(
    src: &dyn Source,
    task: &BlobTask,
    sink: &Option<Sink>,
    cancel: &CancelToken,
) -> std::result::Result<(), Error> {
    let digest = digest_of(&task.desc)?;
    if !matches!(
        media_type::kind(task.desc.media_type().as_ref()),
        Kind::Layer { .. }
    ) {
        let raw = src.open_blob(&task.desc)?;
        let raw: BlobReader<'_> = Box::new(CancelReader::new(
            ProgressReader::new(raw, digest.clone(), sink.clone()),
            cancel,
        ));
        let mut stream = VerifiedReader::new(
            raw,
            digest.clone(),
            task.desc.size(),
            format!("blob {digest}"),
        );
        return stream.finish();
    }
    let name = format!("layer {digest}");
    let mut layer = LayerStream::open(src, &task.desc, &name, task.diff_id.clone(), sink.clone())?
        .with_cancel(cancel);
    layer.finish()?;
    // A docker-archive (or the daemon's save of one) presents every layer as skopeo synthesises it:
    // the uncompressed tar under the (historical) gzip media type. Anywhere else the label is the
    // image's own, and a reader that trusts it (containerd's strict paths, older skopeo) fails where
    // hoist unpack reads the bytes.
    if let Some((declared, actual)) = layer.mislabelled()
        && !src.synthesises_layer_types()
    {
        return Err(Error::Other(format!(
            "its media type {} says {} but its bytes are {}; hoist unpack reads it, readers that \
             trust the media type fail on it",
            task.desc.media_type(),
            compression_name(declared),
            compression_name(actual)
        )));
    }
    Ok(())
}

fn compression_name(c: crate::compress::Compression) -> &'static str {
    match c {
        crate::compress::Compression::None => "uncompressed tar",
        crate::compress::Compression::Gzip => "gzip",
        crate::compress::Compression::Zstd => "zstd",
    }
}

/// Verifies everything reachable from the source's root.
///
/// ```no_run
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let report = hoist::verify(src.as_ref(), &hoist::VerifyOptions::default());
/// for p in &report.problems {
///     eprintln!("{}: {}", p.subject, p.message);
/// }
/// assert!(report.is_ok());
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn verify(src: &dyn Source, opts: &VerifyOptions) -> VerifyReport {
    // Blocking HTTP must not run on an async worker (see crate::blocking).
    if crate::blocking::in_async_context() {
        return crate::blocking::outside_async(|| verify(src, opts));
    }
    let mut walker = Walker {
        src,
        report: VerifyReport {
            source: src.name(),
            ..Default::default()
        },
        tasks: Vec::new(),
        seen_blobs: HashSet::new(),
    };
    match src.root() {
        Err(e) => walker.record(src.name(), None, e),
        Ok(root) => {
            walker.report.digest = Some(root.digest().clone());
            // The walker records every problem (Visitor::problem never stops it).
            let _ = crate::walk::walk(src, &root, &mut walker);
        }
    }
    let Walker {
        mut report, tasks, ..
    } = walker;
    if let Some(s) = &opts.progress {
        s.send(&Event::Plan {
            blobs: tasks.len(),
            bytes: tasks.iter().map(|t| t.desc.size()).sum(),
        });
    }
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.jobs
    };
    let found: Mutex<Vec<(usize, Problem)>> = Mutex::new(Vec::new());
    let indexed: Vec<(usize, &BlobTask)> = tasks.iter().enumerate().collect();
    let checked = crate::pool::parallel(&indexed, jobs, |(i, task)| {
        opts.cancel.check()?;
        let checked = check_blob(src, task, &opts.progress, &opts.cancel);
        if opts.cancel.is_cancelled() {
            // A blob whose check was stopped is not a problem: the pool stops, the report says so.
            return Err(Error::Cancelled);
        }
        if let Err(e) = checked {
            found.lock().unwrap_or_else(|p| p.into_inner()).push((
                *i,
                Problem {
                    subject: task.subject.clone(),
                    digest: Some(task.desc.digest().to_string()),
                    message: e.to_string(),
                },
            ));
        } else if let (Some(s), Ok(digest)) = (&opts.progress, digest_of(&task.desc)) {
            s.send(&Event::BlobDone {
                digest,
                size: task.desc.size(),
                how: BlobOutcome::Verified,
            });
        }
        Ok(())
    });
    report.cancelled = matches!(checked, Err(Error::Cancelled)) || opts.cancel.is_cancelled();
    let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    found.sort_by_key(|(i, _)| *i);
    report.blobs += tasks.len();
    report.bytes += tasks.iter().map(|t| t.desc.size()).sum::<u64>();
    report.problems.extend(found.into_iter().map(|(_, p)| p));
    report
}
