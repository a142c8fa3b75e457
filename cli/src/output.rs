//! Output helpers shared by the verbs: JSON or text on stdout, errors with their chain of causes on
//! stderr (one screen, no backtrace).

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// Prints `value` as pretty JSON on stdout, followed by a newline.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints an error and its causes, one per line, to stderr.
pub fn print_error(err: &anyhow::Error) {
    let mut text = format!("hoist: error: {err}");
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(&format!("\n  caused by: {c}"));
        }
    }
    eprintln!("{text}");
}

/// True when the verb failed because its cancel token was cancelled ([`hoist::Error::is_cancelled`]
/// anywhere in the chain).
pub fn is_cancelled(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<hoist::Error>())
        .any(hoist::Error::is_cancelled)
}

/// A usage error found after argument parsing (a reference of the wrong transport for a verb): the
/// CLI exits 2 for it, as for clap's own.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The exit code of a failed command, decided in this one place: 2 for a usage error (a malformed
/// reference included) and for an image, tag or repository that does not exist
/// ([`hoist::Error::is_usage`], [`hoist::Error::is_not_found`]); 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> std::process::ExitCode {
    let usage_or_missing = err.chain().any(|c| c.is::<Usage>())
        || err
            .chain()
            .find_map(|c| c.downcast_ref::<hoist::Error>())
            .is_some_and(|e| e.is_usage() || e.is_not_found());
    if usage_or_missing {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// `--format` of the plumbing verbs (`delete`, `tag`): lines for people, JSON for machines.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// A line per result.
    #[default]
    Text,
    /// One JSON document.
    Json,
}
