//! One module per verb. Each turns its arguments into library calls and renders the result.

pub mod apply_limits;
pub mod attach;
pub mod blob;
pub mod build;
#[cfg(feature = "registry")]
pub mod catalog;
pub mod completion;
pub mod config;
pub mod copy;
pub mod delete;
pub mod diff;
pub mod export;
pub mod gc;
pub mod index;
pub mod inspect;
pub mod layer_args;
#[cfg(feature = "registry")]
pub mod list_tags;
#[cfg(feature = "registry")]
pub mod login;
#[cfg(feature = "registry")]
pub mod logout;
pub mod man;
pub mod manifest_digest;
pub mod referrers;
pub mod registry_args;
pub mod repack;
pub mod runtime_config;
pub mod sign;
pub mod stat;
pub mod sync;
pub mod tag;
pub mod tags;
pub mod unpack;
pub mod untag;
pub mod verify;

use std::sync::OnceLock;

use anyhow::{Context, Result};
use hoist::Limits;
use hoist::reference::TransportRef;
use hoist::transport::OpenOptions;

/// Limits every verb applies to what it reads (global flags; defaults from [`hoist::Limits`]).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Largest manifest, index or config read, in bytes (K, M, G suffixes allowed).
    #[arg(long, global = true, value_parser = parse_size, default_value = "4M")]
    pub max_manifest_size: u64,
    /// Deepest nesting of indexes followed.
    #[arg(long, global = true, default_value_t = 8)]
    pub max_index_depth: usize,
    /// Largest registry error or token response body read, in bytes (K, M, G suffixes allowed).
    #[arg(long, global = true, value_parser = parse_size, default_value = "1M")]
    pub max_response_size: u64,
    /// Most pages of a registry's tag list or catalog followed (list-tags, sync, catalog).
    #[arg(long, global = true, default_value_t = Limits::default().max_tag_pages)]
    pub max_tag_pages: usize,
    /// Most tags read from a registry's tag list (list-tags, sync), or repositories from its catalog.
    #[arg(long, global = true, default_value_t = Limits::default().max_tags)]
    pub max_tags: usize,
    /// Most referrers (signatures, SBOMs, attestations) listed for one manifest, or copied by one
    /// `copy --referrers`.
    #[arg(long, global = true, default_value_t = Limits::default().max_referrers)]
    pub max_referrers: usize,
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// Records the global limit flags (called once by `main`).
pub fn set_limits(args: &LimitArgs) {
    let mut limits = Limits::default();
    limits.max_document_size = args.max_manifest_size;
    limits.max_index_depth = args.max_index_depth;
    limits.max_response_size = args.max_response_size;
    limits.max_tag_pages = args.max_tag_pages;
    limits.max_tags = args.max_tags;
    limits.max_referrers = args.max_referrers;
    let _ = LIMITS.set(limits);
}

/// The limits in force.
pub fn limits() -> Limits {
    LIMITS.get().cloned().unwrap_or_default()
}

/// Options for opening transports, carrying the global limits.
pub fn open_options() -> OpenOptions {
    OpenOptions::default().with_limits(limits())
}

/// How long a verb has, after the first SIGINT/SIGTERM cancelled its token, to stop on its own before
/// hoist removes its temp files and ends at once (a read blocked on a stalled connection only sees
/// the token when it returns).
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

static CANCEL: OnceLock<hoist::CancelToken> = OnceLock::new();

/// The process's one cancellation token, for the `cancel` of a long operation's options: once a verb
/// has asked for it, the first SIGINT or SIGTERM cancels it (the operation stops at its next check
/// and unwinds, and `main` reports it and ends by that signal) rather than ending the process at
/// once; a second signal, or [`CANCEL_GRACE`] passing, still ends it at once.
pub fn cancel_token() -> hoist::CancelToken {
    CANCEL
        .get_or_init(|| {
            let token = hoist::CancelToken::new();
            if let Err(e) = hoist::durable::cancel_on_signals(&token, CANCEL_GRACE) {
                tracing::warn!("SIGINT/SIGTERM will end hoist at once, not cancel it: {e}");
            }
            token
        })
        .clone()
}

/// Copy options carrying [`cancel_token`], for the verbs that write a built image or index.
pub fn copy_options() -> hoist::CopyOptions {
    let mut o = hoist::CopyOptions::default();
    o.cancel = cancel_token();
    o
}

/// Parses a byte count with an optional K/M/G/T suffix (powers of 1024).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "unknown size suffix in {text:?} (use K, M, G or T)"
                    ));
                }
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a size"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a transport reference with a message that names the argument.
pub fn parse_ref(text: &str) -> Result<TransportRef> {
    TransportRef::parse(text).with_context(|| {
        let shown = hoist::reference::without_credentials(text);
        format!("parsing image reference {shown:?}")
    })
}

/// Opens the repository (layout or registry repository) `text` names and the tag or digest it names
/// there; `what` says what the verb does with it, for the usage error when neither is given.
pub fn repository_item(
    text: &str,
    opts: &hoist::OpenOptions,
    what: &str,
) -> Result<(
    Box<dyn hoist::Repository>,
    hoist::transport::repository::Item,
)> {
    let (repo, item) = hoist::open_repository(&parse_ref(text)?, opts)?;
    match item {
        Some(item) => Ok((repo, item)),
        None => {
            let name = repo.name();
            Err(crate::output::Usage(format!(
                "name the image {what}: {name}:TAG or {name}@DIGEST"
            ))
            .into())
        }
    }
}
