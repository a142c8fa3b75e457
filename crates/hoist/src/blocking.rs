//! Calling hoist from async code. hoist's API is blocking (files, threads and, for registries,
//! reqwest's blocking client). Inside a tokio runtime's worker a blocking HTTP client panics ("Cannot
//! drop a runtime in a context where blocking is not allowed"), so every public entry that can reach
//! the network first checks [`in_async_context`] and, when it is true, does its work on a fresh thread
//! of its own and waits for it ([`outside_async`]). Nothing panics, but the calling worker is blocked
//! while it waits: from async code prefer `tokio::task::spawn_blocking` (or a thread of your own)
//! around hoist's calls, as `examples/from_async.rs` does.
//!
//! The guarded entries are [`crate::open_source`], [`crate::open_destination`], [`crate::copy()`],
//! [`crate::verify()`], [`crate::image::resolve`] (and so [`crate::unpack()`]), [`crate::sync()`]
//! ([`crate::sync::plan`], and each image of [`crate::sync::run`]). The methods of a
//! [`crate::Source`] or [`crate::Destination`], and the readers they return, are plain blocking I/O
//! and are not moved: from async code call them inside `spawn_blocking` (or use [`outside_async`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let report = tokio::task::spawn_blocking(|| -> hoist::Result<hoist::CopyReport> {
//!     let opts = hoist::OpenOptions::default();
//!     let src = hoist::open_source(&"oci:/tmp/in:latest".parse()?, &opts)?;
//!     let dst = hoist::open_destination(&"oci:/tmp/out:latest".parse()?, &opts)?;
//!     hoist::copy(src.as_ref(), dst.as_ref(), &hoist::CopyOptions::default())
//! })
//! .await??;
//! println!("copied {}", report.digest);
//! # Ok(())
//! # }
//! ```

/// Whether the current thread is inside a tokio runtime's context (a worker, `block_on`, or a
/// `spawn_blocking` thread), where a blocking HTTP client may panic. Always false in builds without
/// the `registry` feature, which do no blocking HTTP.
pub fn in_async_context() -> bool {
    #[cfg(feature = "registry")]
    {
        tokio::runtime::Handle::try_current().is_ok()
    }
    #[cfg(not(feature = "registry"))]
    {
        false
    }
}

/// Runs `f` where blocking is allowed: on the current thread outside a runtime, or on a new scoped
/// thread (joined before returning) inside one. A panic in `f` is resumed on the caller's thread.
pub fn outside_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if !in_async_context() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
