//! Reading an image's layers as [`Msg`]s: each layer through the one verified layer stream
//! ([`LayerStream`]: size, digest, compression, diff_id, foreign-layer policy) and the tar parser
//! ([`parse_layer`]). [`stream_layers`] reads them bottom first on a reader thread for a consumer on
//! the calling thread (unpack's applier, export's two passes); [`read_layer_with`] reads one on the
//! calling thread (the runtime config's user database, top-down); [`image_tree`] builds the tree an
//! unpack would make as metadata in memory. The readers of an image's files, below the verbs that
//! use them (unpack, export, bundle).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

use super::memtree::MemTree;
use super::{Applier, ApplyOptions, LayerStream, Msg, ReadTotals, parse_layer};
use crate::cancel::CancelToken;
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::progress::{BlobOutcome, Event, Sink, emit};
use crate::transport::Source;

/// How many messages (entries and data chunks of up to 256 KiB) may wait between reader and writer.
const CHANNEL_DEPTH: usize = 64;

fn send(tx: &SyncSender<Msg>, stopped: &AtomicBool, msg: Msg) -> Result<()> {
    tx.send(msg).map_err(|_| {
        stopped.store(true, Ordering::Relaxed);
        Error::Other("unpack stopped".into())
    })
}

/// Reads one layer through the one verified layer stream ([`LayerStream`]: size, digest, compression,
/// diff_id, foreign-layer policy) and the tar parser, on the calling thread: every message of the layer (from [`Msg::LayerStart`] to
/// [`Msg::LayerEnd`]) goes to `consume`. The layer is always read to its end, so that it is verified
/// (digest, size, diff_id) before `Ok` is returned: a caller must not act on what it was given before
/// then. Readers that need only some layers (the runtime config's user database, top-down) use this.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_layer_with(
    source: &dyn Source,
    desc: &Descriptor,
    name: &str,
    diff_id: &Digest,
    limits: &Limits,
    totals: &mut ReadTotals,
    progress: &Option<Sink>,
    cancel: &CancelToken,
    consume: &mut dyn FnMut(Msg) -> Result<()>,
) -> Result<()> {
    cancel.check()?;
    let digest = crate::descriptor::digest_of(desc)?;
    let mut stream =
        LayerStream::open(source, desc, name, Some(diff_id.clone()), progress.clone())?
            .with_limits(limits)
            .with_cancel(cancel);
    emit(
        progress,
        Event::BlobStarted {
            digest: digest.clone(),
            size: desc.size(),
        },
    );
    consume(Msg::LayerStart(name.to_string()))?;
    if let Err(e) = parse_layer(&mut stream, name, limits, totals, consume) {
        return Err(stream.take_error().unwrap_or(e));
    }
    // The tar ended; whatever follows in the stream still belongs to the diff_id, and the blob must
    // be read to its end.
    stream.finish()?;
    consume(Msg::LayerEnd)?;
    emit(
        progress,
        Event::BlobDone {
            digest,
            size: desc.size(),
            how: BlobOutcome::Applied,
        },
    );
    Ok(())
}

/// Reads `layers` bottom first on a reader thread (each through [`read_layer_with`]: verified, decoded,
/// parsed) and hands every message to `consume` on the calling thread, in order; a bounded channel
/// between them keeps memory flat. The first error of either side ends both and is returned (the
/// consumer's first: the reader's is then only that it was stopped). The one pipeline behind
/// unpack and every other reader of an image's files (the runtime config's user database).
/// `cancel` is checked between layers, inside each layer's stream and before each message.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_layers(
    source: &dyn Source,
    layers: &[Descriptor],
    names: &[String],
    diff_ids: &[Digest],
    limits: &Limits,
    progress: &Option<Sink>,
    cancel: &CancelToken,
    mut consume: impl FnMut(Msg) -> Result<()>,
) -> Result<()> {
    let (tx, rx) = sync_channel::<Msg>(CHANNEL_DEPTH);
    let stopped = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let tx = tx;
            let mut totals = ReadTotals::default();
            for (i, desc) in layers.iter().enumerate() {
                read_layer_with(
                    source,
                    desc,
                    &names[i],
                    &diff_ids[i],
                    limits,
                    &mut totals,
                    progress,
                    cancel,
                    &mut |m| send(&tx, &stopped, m),
                )?;
            }
            Ok::<(), Error>(())
        });
        let mut written: Result<()> = Ok(());
        for msg in rx.iter() {
            if let Err(e) = cancel.check().and_then(|()| consume(msg)) {
                written = Err(e);
                break;
            }
        }
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(Error::Other("the layer reader panicked".into())));
        match (written, read) {
            (Err(w), _) => Err(w),
            (Ok(()), Err(r)) if !stopped.load(Ordering::Relaxed) => Err(r),
            (Ok(()), Err(_)) => Err(Error::Other("unpack stopped".into())),
            (Ok(()), Ok(())) => Ok(()),
        }
    })
}

/// The names every layer reader gives `layers` in messages and errors: `layer I/N <descriptor>`.
pub(crate) fn layer_names(layers: &[Descriptor]) -> Vec<String> {
    let n = layers.len();
    layers
        .iter()
        .enumerate()
        .map(|(i, d)| format!("layer {}/{n} {}", i + 1, crate::descriptor::describe(d)))
        .collect()
}

/// The tree an unpack of `layers` would make, as metadata in memory: the unpack [`Applier`]'s own
/// decisions over a [`MemTree`], every layer read through the verified layer pipeline. Each surviving
/// regular file's node says which entry of which layer holds its content ([`super::memtree::MemNode::source`]:
/// layers counted from 0, entries from 1, every [`Msg::Entry`] of a layer counted).
pub(crate) fn image_tree(
    source: &dyn Source,
    layers: &[Descriptor],
    names: &[String],
    diff_ids: &[Digest],
    limits: &Limits,
    cancel: &CancelToken,
) -> Result<MemTree> {
    let mut applier = Applier::with_target(MemTree::new(), ApplyOptions::default());
    let mut pos = Position::default();
    stream_layers(
        source,
        layers,
        names,
        diff_ids,
        limits,
        &None,
        cancel,
        |msg| {
            if let Some((layer, entry)) = pos.step(&msg) {
                applier.target_mut().set_position(layer, entry);
            }
            applier.apply(msg)
        },
    )?;
    applier.finish()?;
    Ok(applier.into_target())
}

/// Counts layers and entries in a message stream: both passes number entries the same way.
#[derive(Default)]
pub(crate) struct Position {
    layer: Option<usize>,
    entry: u64,
}

impl Position {
    /// Advances over `msg`; for an entry, its (layer, entry) position.
    pub(crate) fn step(&mut self, msg: &Msg) -> Option<(usize, u64)> {
        match msg {
            Msg::LayerStart(_) => {
                self.layer = Some(self.layer.map_or(0, |l| l + 1));
                self.entry = 0;
                None
            }
            Msg::Entry(_) => {
                self.entry += 1;
                Some((self.layer.unwrap_or(0), self.entry))
            }
            _ => None,
        }
    }
}
