//! Progress events as data. The library reports what happens; rendering (bars, lines, JSON) is the
//! CLI's job.

use crate::digest::Digest;

/// Something that happened during a long operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The operation knows how much work there is.
    Plan {
        /// Number of blobs (or layers) to process.
        blobs: usize,
        /// Their total size in bytes.
        bytes: u64,
    },
    /// A blob started streaming.
    BlobStarted {
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes of a blob went through.
    BlobProgress {
        /// Its digest.
        digest: Digest,
        /// Bytes done so far for this blob.
        done: u64,
    },
    /// A blob finished.
    BlobDone {
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How it was handled.
        how: BlobOutcome,
    },
    /// A step of the operation that is not one blob began (repack's scan of the tree, the writing of
    /// its layer). It lasts until the next step or the end of the operation.
    Step {
        /// What it does, for people: `scanning ./bundle/rootfs for changes`.
        name: String,
        /// Bytes it will process, when known beforehand (an estimate for a layer being written).
        total: Option<u64>,
    },
    /// Bytes of the current step went through.
    StepProgress {
        /// Bytes done so far in the step.
        done: u64,
    },
}

/// How a blob was handled by a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlobOutcome {
    /// Streamed, copied or cloned (reflink), and verified.
    Copied,
    /// Already present at the destination.
    Skipped,
    /// Mounted from another repository of the same registry (no bytes moved).
    Mounted,
    /// Verified and hard-linked (same filesystem, `--link` only).
    Linked,
    /// A foreign layer left out (it lives at its URLs).
    Foreign,
    /// Verified in place (no destination).
    Verified,
    /// Verified and applied to a directory (an unpacked layer).
    Applied,
}

/// Receives events; must be cheap and thread-safe (blobs move in parallel). Clones share the receiver.
///
/// ```
/// use hoist::{Event, Sink};
/// let sink = Sink::new(|event| {
///     if let Event::BlobDone { digest, size, .. } = event {
///         eprintln!("{digest}: {size} bytes");
///     }
/// });
/// let mut opts = hoist::CopyOptions::default();
/// opts.progress = Some(sink);
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct Sink(std::sync::Arc<dyn Fn(&Event) + Send + Sync>);

impl Sink {
    /// A sink that calls `f` with each event.
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Sink(std::sync::Arc::new(f))
    }

    /// Delivers `event`.
    pub fn send(&self, event: &Event) {
        (self.0)(event)
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

/// Sends `event` to `sink` when there is one.
pub(crate) fn emit(sink: &Option<Sink>, event: Event) {
    if let Some(s) = sink {
        s.send(&event);
    }
}

/// How many bytes go by between two progress events.
const EVERY: u64 = 4 << 20;

/// A writer that reports [`Event::StepProgress`] every few MiB of what goes through it.
pub struct StepWriter<W> {
    inner: W,
    done: u64,
    reported: u64,
    sink: Option<Sink>,
}

impl<W> StepWriter<W> {
    /// Wraps `inner`; events go to `sink` when there is one.
    pub fn new(inner: W, sink: Option<Sink>) -> Self {
        StepWriter {
            inner,
            done: 0,
            reported: 0,
            sink,
        }
    }

    /// The wrapped writer, after a last event for the bytes not yet reported.
    pub fn into_inner(self) -> W {
        if self.done != self.reported {
            emit(&self.sink, Event::StepProgress { done: self.done });
        }
        self.inner
    }
}

impl<W: std::io::Write> std::io::Write for StepWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.sink.is_some() && self.done - self.reported >= EVERY {
            self.reported = self.done;
            emit(&self.sink, Event::StepProgress { done: self.done });
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that reports [`Event::BlobProgress`] every few MiB.
pub struct ProgressReader<R> {
    inner: R,
    digest: Digest,
    done: u64,
    reported: u64,
    sink: Option<Sink>,
}

impl<R> ProgressReader<R> {
    /// Wraps `inner`; events go to `sink` when there is one.
    pub fn new(inner: R, digest: Digest, sink: Option<Sink>) -> Self {
        ProgressReader {
            inner,
            digest,
            done: 0,
            reported: 0,
            sink,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(sink) = &self.sink
            && (self.done - self.reported >= EVERY || n == 0)
            && self.done != self.reported
        {
            self.reported = self.done;
            sink.send(&Event::BlobProgress {
                digest: self.digest.clone(),
                done: self.done,
            });
        }
        Ok(n)
    }
}
