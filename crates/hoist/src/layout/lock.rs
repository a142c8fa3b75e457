//! The layout writer lock: an exclusive `flock` on the layout directory itself, so no lock file is
//! added to the layout and a crashed writer's lock disappears with its process. Taking it removes the
//! temp files a killed writer left (see [`crate::durable::remove_stale`]).

use std::fs::File;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::error::{Error, IoContext, Result};

/// Held while writing to a layout; released on drop.
#[derive(Debug)]
pub struct LayoutLock {
    _dir: File,
    stale_removed: usize,
}

impl LayoutLock {
    /// Blocks until the exclusive lock on `root` is held.
    pub fn acquire(root: &Path) -> Result<Self> {
        let dir =
            File::open(root).ctx(|| format!("opening layout {} to lock it", root.display()))?;
        match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                tracing::info!("waiting for another writer to release {}", root.display());
                flock(&dir, FlockOperation::LockExclusive).map_err(|e| {
                    Error::io(format!("locking layout {}", root.display()), e.into())
                })?;
            }
            Err(e) => {
                return Err(Error::io(
                    format!("locking layout {}", root.display()),
                    e.into(),
                ));
            }
        }
        // Temp files a killed writer left: a live one is locked by its writer, so any unlocked one
        // present now is stale.
        let stale_removed = crate::durable::remove_stale(root)?;
        Ok(LayoutLock {
            _dir: dir,
            stale_removed,
        })
    }

    /// How many stale temp files taking the lock removed.
    pub fn stale_removed(&self) -> usize {
        self.stale_removed
    }
}
