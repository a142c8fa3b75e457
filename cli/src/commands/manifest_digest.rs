//! `hoist manifest-digest FILE`: the digest of a manifest file, as `skopeo manifest-digest` prints it.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// Arguments of `hoist manifest-digest`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The sha256 digest of the file's exact bytes, which must be an OCI or Docker schema 2 \
manifest or index (schema 1 is refused, as everywhere in hoist); files larger than --max-manifest-size \
are refused.\n\n\
Examples:\n  hoist manifest-digest manifest.json\n  \
hoist inspect --raw oci:./layout:v1 > m.json && hoist manifest-digest m.json"
)]
pub struct Args {
    /// The manifest (or index) file.
    file: PathBuf,
}

/// Runs `hoist manifest-digest`.
pub fn run(args: Args) -> Result<ExitCode> {
    let max = super::limits().max_document_size;
    let file = hoist::output::open_regular(&args.file, false)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", args.file.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{} is larger than {} (--max-manifest-size)",
            args.file.display(),
            hoist::limits::human_bytes(max)
        );
    }
    let doc = hoist::document::Document::detect(bytes)
        .with_context(|| format!("{} is not a manifest or index", args.file.display()))?;
    println!("{}", doc.digest());
    Ok(ExitCode::SUCCESS)
}
