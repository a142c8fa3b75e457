//! The one transfer loop of a copy: every unique blob of the plan, in parallel on the general pool
//! ([`crate::pool`]), each by its action ([`super::actions`]): recompressed when its layer's
//! compression changes, else copied as it is. Progress events and outcomes are recorded here.

use std::collections::HashMap;
use std::sync::Mutex;

use super::CopyOptions;
use super::actions::{LayerJob, copy_blob, recompress_layer};
use crate::convert::LayerUpdate;
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::error::Result;
use crate::media_type::is_foreign;
use crate::progress::{BlobOutcome, Event, emit};
use crate::transport::{Destination, Source};

/// What the transfer did.
pub(super) struct Transferred {
    /// How each blob was handled, with its size at the destination.
    pub(super) outcomes: Vec<(BlobOutcome, u64)>,
    /// For each planned layer, what the destination now holds (for rebuilding manifests).
    pub(super) updates: HashMap<Digest, LayerUpdate>,
}

fn recompresses(job: &LayerJob) -> bool {
    job.actual != job.target && !is_foreign(&job.desc)
}

/// Brings `blobs` into `dst`; `layers` are the planned layer actions (empty when nothing converts).
pub(super) fn transfer(
    src: &dyn Source,
    dst: &dyn Destination,
    blobs: &[Descriptor],
    layers: &HashMap<Digest, LayerJob>,
    opts: &CopyOptions,
) -> Result<Transferred> {
    emit(
        &opts.progress,
        Event::Plan {
            blobs: blobs.len(),
            bytes: blobs.iter().map(|b| b.size()).sum(),
        },
    );
    let updates: Mutex<HashMap<Digest, LayerUpdate>> = Mutex::new(HashMap::new());
    let outcomes: Mutex<Vec<(BlobOutcome, u64)>> = Mutex::new(Vec::new());
    let parallelism = if opts.jobs == 0 { 4 } else { opts.jobs };
    // Layers recompressed at once share the cores: each encoder gets its part (at least one worker),
    // rather than every encoder starting a worker per core (more memory, more switching, no speed).
    let recompressing = layers
        .values()
        .filter(|j| recompresses(j))
        .count()
        .clamp(1, parallelism);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let encode_threads = cores.div_ceil(recompressing);
    crate::pool::parallel(blobs, parallelism, |desc| {
        opts.cancel.check()?;
        let d = digest_of(desc)?;
        let job = layers.get(&d);
        let (how, update) = match job {
            Some(job) if recompresses(job) => {
                emit(
                    &opts.progress,
                    Event::BlobStarted {
                        digest: d.clone(),
                        size: desc.size(),
                    },
                );
                let (update, how) = recompress_layer(
                    src,
                    dst,
                    job,
                    &opts.convert,
                    encode_threads,
                    &opts.progress,
                    &opts.cancel,
                )?;
                (how, Some(update))
            }
            _ => {
                let how = copy_blob(src, dst, desc, &opts.progress, opts.link, &opts.cancel)?;
                let update = job.map(|job| LayerUpdate {
                    digest: d.clone(),
                    size: desc.size(),
                    compression: job.actual,
                });
                (how, update)
            }
        };
        let size = update.as_ref().map_or(desc.size(), |u| u.size);
        if let Some(update) = update {
            updates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.clone(), update);
        }
        emit(
            &opts.progress,
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
    Ok(Transferred {
        outcomes: outcomes.into_inner().unwrap_or_else(|p| p.into_inner()),
        updates: updates.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}
