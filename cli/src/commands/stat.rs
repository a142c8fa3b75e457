//! `hoist stat REF`: an image's history with the layer each entry made, as `umoci stat` shows it
//! (a table, or `--format json` in umoci's shape).

use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::image::resolve;
use hoist::platform::Platform;
use hoist::transport::open_source;

/// `--format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table: layer, created, created by, size, comment, empty layer.
    Text,
    /// `{"history": [...]}`, as `umoci stat --json`.
    Json,
}

/// Arguments of `hoist stat`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  hoist stat oci:./layout:latest\n  \
    hoist stat --format json oci-archive:img.tar | jq '.history[].created_by'")]
pub struct Args {
    /// The image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`, ...).
    image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The platform to choose from a multi-platform image (default: the host's).
    #[arg(long)]
    platform: Option<Platform>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist stat`.
pub fn run(args: Args) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.image)?;
    let open = args.registry.apply(super::open_options());
    let source =
        open_source(&reference, &open).with_context(|| format!("opening {}", args.image))?;
    let image = resolve(source.as_ref(), args.platform.as_ref())
        .with_context(|| format!("resolving {}", source.name()))?;
    let rows =
        hoist::inspect::history(&image).with_context(|| format!("reading {}", source.name()))?;
    if args.format == Format::Json {
        crate::output::print_json(&serde_json::json!({ "history": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let none = || "<none>".to_string();
    let mut table = vec![[
        "LAYER".to_string(),
        "CREATED".into(),
        "CREATED BY".into(),
        "SIZE".into(),
        "COMMENT".into(),
        "EMPTY LAYER".into(),
    ]];
    for r in &rows {
        table.push([
            r.layer
                .as_ref()
                .map(|l| l.digest().to_string())
                .unwrap_or_else(none),
            r.created.clone().unwrap_or_else(none),
            r.created_by.clone().unwrap_or_else(none),
            r.layer
                .as_ref()
                .map(|l| hoist::limits::human_bytes(l.size()))
                .unwrap_or_else(none),
            r.comment.clone().unwrap_or_default(),
            r.empty_layer.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join(" ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}
