//! `hoist index create|add|remove`: multi-platform images assembled from single-platform ones, thin
//! shells over [`hoist::build::IndexBuilder`].

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::build::IndexBuilder;
use hoist::platform::Platform;
use hoist::transport::{Source, open_destination, open_source};

/// Arguments of `hoist index`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    hoist index create oci:./layout:multi oci:./layout:amd64 oci:./layout:arm64\n  \
    hoist index create --annotation org.opencontainers.image.version=1.0 \
    docker://localhost:5000/app:v1 docker://localhost:5000/app:amd64 docker://localhost:5000/app:arm64\n  \
    hoist index add oci:./layout:multi oci:./layout:riscv64\n  \
    hoist index remove --platform linux/arm64 oci:./layout:multi")]
pub struct Args {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(clap::Subcommand, Debug)]
enum IndexCommand {
    /// Write a new index over the images REF... (an index REF contributes all its entries).
    Create {
        /// Where to write the index and its images.
        destination: String,
        /// The images, each a single-platform manifest (platform from its config) or an index.
        #[arg(required = true)]
        images: Vec<String>,
        /// Set an index annotation (`KEY=VALUE`); repeatable.
        #[arg(long, value_name = "KEY=VALUE")]
        annotation: Vec<String>,
        #[command(flatten)]
        registry: super::registry_args::RegistryArgs,
    },
    /// Add the images REF... to the index INDEX (written back, or to --dest).
    Add {
        /// The index to edit.
        index: String,
        /// The images to add.
        #[arg(required = true)]
        images: Vec<String>,
        /// Write the new index here instead of back to INDEX.
        #[arg(long, value_name = "REF")]
        dest: Option<String>,
        /// Set an index annotation (`KEY=VALUE`); repeatable.
        #[arg(long, value_name = "KEY=VALUE")]
        annotation: Vec<String>,
        #[command(flatten)]
        registry: super::registry_args::RegistryArgs,
    },
    /// Remove entries from the index INDEX by digest or platform (written back, or to --dest).
    Remove {
        /// The index to edit.
        index: String,
        /// Remove the entries of this manifest digest; repeatable.
        #[arg(long, value_name = "DIGEST")]
        digest: Vec<hoist::Digest>,
        /// Remove the entries of this platform; repeatable.
        #[arg(long)]
        platform: Vec<Platform>,
        /// Write the new index here instead of back to INDEX.
        #[arg(long, value_name = "REF")]
        dest: Option<String>,
        #[command(flatten)]
        registry: super::registry_args::RegistryArgs,
    },
}

fn annotate(builder: &mut IndexBuilder<'_>, annotations: &[String]) -> Result<()> {
    for a in annotations {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => builder.annotate(k, v),
            _ => bail!("--annotation {a:?} is not KEY=VALUE with a non-empty KEY"),
        }
    }
    Ok(())
}

/// Runs `hoist index`.
pub fn run(args: Args) -> Result<ExitCode> {
    let registry = match &args.command {
        IndexCommand::Create { registry, .. }
        | IndexCommand::Add { registry, .. }
        | IndexCommand::Remove { registry, .. } => registry,
    };
    let open = registry.apply(super::open_options());
    let open_src = |text: &str| -> Result<Box<dyn Source>> {
        let r = super::parse_ref(text)?;
        open_source(&r, &open).with_context(|| format!("opening {text}"))
    };
    let (dest, base, images, annotations, removals) = match &args.command {
        IndexCommand::Create {
            destination,
            images,
            annotation,
            ..
        } => (
            destination.clone(),
            None,
            images.clone(),
            annotation.clone(),
            None,
        ),
        IndexCommand::Add {
            index,
            images,
            dest,
            annotation,
            ..
        } => (
            dest.clone().unwrap_or_else(|| index.clone()),
            Some(index.clone()),
            images.clone(),
            annotation.clone(),
            None,
        ),
        IndexCommand::Remove {
            index,
            digest,
            platform,
            dest,
            ..
        } => {
            if digest.is_empty() && platform.is_empty() {
                bail!("nothing to remove: give --digest DIGEST or --platform PLATFORM");
            }
            (
                dest.clone().unwrap_or_else(|| index.clone()),
                Some(index.clone()),
                Vec::new(),
                Vec::new(),
                Some((digest.clone(), platform.clone())),
            )
        }
    };
    let base_src = base.as_deref().map(open_src).transpose()?;
    let image_srcs = images
        .iter()
        .map(|i| open_src(i))
        .collect::<Result<Vec<_>>>()?;
    let mut builder = match &base_src {
        Some(s) => IndexBuilder::from_source(s.as_ref())
            .with_context(|| format!("reading the index {}", s.name()))?,
        None => IndexBuilder::new(),
    };
    for s in &image_srcs {
        builder
            .add(s.as_ref(), None)
            .with_context(|| format!("adding {}", s.name()))?;
    }
    annotate(&mut builder, &annotations)?;
    if let Some((digests, platforms)) = removals {
        for d in &digests {
            if builder.remove_digest(d) == 0 {
                bail!("the index has no entry for {d}");
            }
        }
        for p in &platforms {
            if builder.remove_platform(p)? == 0 {
                bail!("the index has no entry for platform {p}");
            }
        }
    }
    let dst_ref = super::parse_ref(&dest)?;
    hoist::transport::check_keeps_other_images(&dst_ref, &open)?;
    let dst =
        open_destination(&dst_ref, &open).with_context(|| format!("opening destination {dest}"))?;
    let report = builder
        .write(dst.as_ref(), &super::copy_options())
        .with_context(|| format!("writing the index to {}", dst.name()))?;
    println!("{}", report.digest);
    Ok(ExitCode::SUCCESS)
}
