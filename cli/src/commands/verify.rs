//! `hoist verify REF`: check every reachable document and blob, and every layer's diff_id.

use std::process::ExitCode;

use anyhow::Result;
use hoist::layout::Layout;
use hoist::transport::oci::OciSource;
use hoist::transport::{Source, open_source};
use hoist::verify::{VerifyOptions, verify};

/// Output format of `verify`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per problem and a summary.
    Text,
    /// The whole report as JSON.
    Json,
}

/// Arguments of `hoist verify`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist verify oci:./layout:latest\n  hoist verify --all oci:./layout\n\nExit status: 0 when everything verified, 1 when any problem was found."
)]
pub struct Args {
    /// The image, or with --all a whole layout (`oci:PATH`).
    reference: String,
    /// Verify every image of the layout (every entry of index.json).
    #[arg(long)]
    all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Layers verified at once (default: number of CPUs).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// How to show progress on stderr (default: bars on a terminal, nothing otherwise).
    #[arg(long, value_enum)]
    progress: Option<crate::progress::Mode>,
    /// Check the image's signatures instead of its content: at least one must verify with this
    /// cosign public key and name the image's digest (keyless signatures are not supported).
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    key: Option<std::path::PathBuf>,
    /// With --key, the docker reference a signature must name: `REPO:TAG` exactly, or any tag of
    /// `REPO`.
    #[arg(long, value_name = "REF", requires = "key")]
    identity: Option<String>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist verify`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    if let Some(key) = &args.key {
        return verify_signatures(&args, &reference, key);
    }
    let source: Box<dyn Source> = if args.all {
        Box::new(OciSource::whole_layout(
            Layout::open(reference.whole_layout("--all")?)?.with_limits(super::limits()),
        ))
    } else {
        open_source(&reference, &args.registry.apply(super::open_options()))?
    };
    // An image that does not exist is not a verification problem: exit 2, as on every verb.
    if let Err(e) = source.root()
        && e.is_not_found()
    {
        return Err(e.into());
    }
    let mut opts = VerifyOptions::default();
    opts.jobs = args.jobs;
    opts.cancel = super::cancel_token();
    opts.progress = crate::progress::when_watched(args.progress, false);
    let report = verify(source.as_ref(), &opts);
    match args.format {
        Format::Json => crate::output::print_json(&report)?,
        Format::Text => {
            for p in &report.problems {
                println!("FAIL {}: {}", p.subject, p.message);
            }
            println!(
                "{}: {} documents, {} blobs ({}) checked, {} problem{}{}",
                report.source,
                report.documents,
                report.blobs,
                hoist::limits::human_bytes(report.bytes),
                report.problems.len(),
                if report.problems.len() == 1 { "" } else { "s" },
                if report.cancelled {
                    " (cancelled before the end)"
                } else {
                    ""
                }
            );
        }
    }
    if report.cancelled {
        return Err(hoist::Error::Cancelled.into());
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `verify --key`: the image's signatures, not its content.
fn verify_signatures(
    args: &Args,
    reference: &hoist::reference::TransportRef,
    key: &std::path::Path,
) -> Result<ExitCode> {
    use hoist::sign::IdentityRule;
    let key = super::sign::load_public_key(key)?;
    let rule = match &args.identity {
        None => IdentityRule::Any,
        Some(i) if hoist::reference::names_tag_or_digest(i) => IdentityRule::Exact(i.clone()),
        Some(i) => IdentityRule::Repository(i.clone()),
    };
    let opts = args.registry.apply(super::open_options());
    let digest = super::sign::root_digest(reference, &opts)?;
    let verified = hoist::sign::verify_signatures(reference, &digest, &key, &rule, &opts)?;
    match args.format {
        Format::Json => crate::output::print_json(&verified)?,
        Format::Text => println!(
            "{reference}: signature verified: {} names {} ({} signature{})",
            verified.digest,
            verified.identity,
            verified.signatures,
            if verified.signatures == 1 { "" } else { "s" }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
