//! Cancellation: a token that another thread sets to stop a long operation (copy, sync, verify,
//! unpack, repack, appending a layer).
//!
//! Every options struct of those operations has a `cancel` field holding a [`CancelToken`]; the
//! default one is never cancelled (nothing else holds it). The operation checks the token between
//! units of work (blobs, images, tar entries) and inside every blob it streams (a reader adapter
//! checks it on each read, so even a single large blob stops promptly), and then fails with
//! [`Error::Cancelled`]. What it leaves is what a SIGKILL at that point would leave, less the temp
//! files: destinations are committed root last, so they hold their old state (or, when the commit had
//! already happened, the complete new one), and temp files are removed as the operation unwinds.
//!
//! A program can have SIGINT/SIGTERM cancel a token, as the `hoist` CLI does: [`cancel_on_signals`]
//! (a second signal, or the grace period passing, ends the process at once), then
//! [`cancelled_by_signal`] and [`die_of_signal`] to end as a Unix tool does.
//!
//! ```no_run
//! use hoist::{CancelToken, CopyOptions, OpenOptions};
//! let token = CancelToken::new();
//! let mut copy = CopyOptions::default();
//! copy.cancel = token.clone();
//! let handle = std::thread::spawn(move || -> hoist::Result<hoist::CopyReport> {
//!     let opts = OpenOptions::default();
//!     let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
//!     let dst = hoist::open_destination(&"oci:/tmp/copy:v1".parse()?, &opts)?;
//!     hoist::copy(src.as_ref(), dst.as_ref(), &copy)
//! });
//! token.cancel(); // e.g. when the user presses a Stop button
//! match handle.join().expect("the copy thread panicked") {
//!     Err(hoist::Error::Cancelled) => eprintln!("stopped; /tmp/copy is as it was"),
//!     other => println!("{:?}", other.map(|r| r.digest)),
//! }
//! ```

// Cancelling on SIGINT/SIGTERM, as the CLI does (the handler lives with the temp-file cleanup it
// falls back to, in durable.rs): `cancelled_by_signal` says which signal cancelled the token,
// `die_of_signal` ends the process by it after removing the live temp files, `signal_name` names
// one for messages.
pub use crate::durable::{cancelled_by_signal, die_of_signal, signal_name};

/// From now on the first SIGINT or SIGTERM cancels `token` instead of ending the process: the
/// operation holding it stops at its next check and unwinds (removing its temp files), and the
/// program then reports [`cancelled_by_signal`] and ends, ideally by [`die_of_signal`]. A second
/// signal, or `grace` passing without the process ending, does what
/// [`crate::output::remove_temp_files_on_signals`] does: removes the live temp files and dies of the
/// signal (an operation blocked in a read of a stalled connection sees its token only when the read
/// returns). Installs the handler if that has not; a later call replaces the token.
pub fn cancel_on_signals(token: &CancelToken, grace: std::time::Duration) -> crate::Result<()> {
    let token = token.clone();
    crate::durable::on_first_signal(std::sync::Arc::new(move || token.cancel()), grace)
}

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result, to_io};

/// A cancellation flag shared by its clones: [`cancel`](Self::cancel) on any clone is seen by all.
///
/// Cheap to clone (one reference count) and to check (one atomic load).
///
/// ```
/// let token = hoist::CancelToken::new();
/// let seen_by_the_operation = token.clone();
/// assert!(!seen_by_the_operation.is_cancelled());
/// token.cancel();
/// assert!(seen_by_the_operation.is_cancelled());
/// assert!(matches!(seen_by_the_operation.check(), Err(hoist::Error::Cancelled)));
/// ```
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled (the same as `CancelToken::default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every operation holding a clone of this token to stop. It cannot be undone: an
    /// operation to run later needs a new token.
    pub fn cancel(&self) {
        // Release/Acquire: whatever the canceller wrote before (why it cancelled) is visible to
        // whoever sees the token cancelled.
        self.0.store(true, Ordering::Release);
    }

    /// True once [`cancel`](Self::cancel) was called on this token or a clone of it.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// `Err(`[`Error::Cancelled`]`)` once the token is cancelled, else `Ok(())`: the check an
    /// operation makes between two units of work.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CancelToken")
            .field(&self.is_cancelled())
            .finish()
    }
}

/// A reader that fails with [`Error::Cancelled`] (wrapped in an [`io::Error`] of kind `Other`, never
/// `Interrupted`, which read loops retry) as soon as its token is cancelled.
pub(crate) struct CancelReader<R> {
    inner: R,
    token: CancelToken,
}

impl<R> CancelReader<R> {
    /// Wraps `inner`; reads fail once `token` is cancelled.
    pub(crate) fn new(inner: R, token: &CancelToken) -> Self {
        CancelReader {
            inner,
            token: token.clone(),
        }
    }
}

impl<R: Read> Read for CancelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.token.is_cancelled() {
            return Err(to_io(Error::Cancelled));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_io;

    #[test]
    fn a_cancelled_reader_fails_with_cancelled_not_interrupted() {
        let token = CancelToken::new();
        let data = [7u8; 64];
        let mut r = CancelReader::new(&data[..], &token);
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).unwrap(), 16);
        token.cancel();
        let err = r.read(&mut buf).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::Interrupted);
        assert!(matches!(from_io(err, String::new), Error::Cancelled));
        // A read loop that retries Interrupted still ends.
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(matches!(from_io(err, String::new), Error::Cancelled));
    }

    #[test]
    fn io_errors_carrying_cancelled_stay_cancelled_under_context() {
        let err = Error::io("writing blob x", to_io(Error::Cancelled));
        assert!(matches!(err, Error::Cancelled));
    }
}
