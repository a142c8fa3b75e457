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
