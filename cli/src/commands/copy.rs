//! `hoist copy SRC DEST`: copy an image between transports, verifying every blob as it streams.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::copy::{CopyOptions, PlatformChoice, copy};
use hoist::platform::Platform;
use hoist::transport::{open_destination, open_source};

/// skopeo's `--multi-arch` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultiArch {
    /// The host's platform only.
    System,
    /// Every image of the index.
    All,
    /// The index alone.
    IndexOnly,
}

/// `--format`: the manifest format to write.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image-spec.
    Oci,
    /// Docker image manifest v2 schema 2.
    V2s2,
}

/// `--dest-compress-format`: the layer compression to write.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressFormat {
    /// gzip, compressed on every core.
    Gzip,
    /// zstd, multithreaded.
    Zstd,
    /// Uncompressed tar.
    None,
}

/// Arguments of `hoist copy`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist copy oci:./src:v1 oci:./dst:v1\n  hoist copy --all oci:./multi:latest oci-archive:multi.tar:latest\n  hoist copy --platform linux/arm64 oci:./multi:latest dir:./arm64\n  hoist copy docker-archive:saved.tar oci:./layout:v1\n  hoist copy --dest-compress-format none docker-archive:saved.tar oci:./layout:v1\n  hoist copy oci:./layout:v1 docker-archive:out.tar:example.com/app:v1\n  hoist copy --additional-tag app:latest oci:./layout:v1 docker-archive:out.tar:app:v1"
)]
pub struct Args {
    /// Where to read the image (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`,
    /// `docker-archive:PATH[:NAME:TAG|@N]`).
    source: String,
    /// Where to write it (`oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `dir:PATH`,
    /// `docker-archive:PATH[:NAME:TAG]`).
    destination: String,
    /// Copy the whole index, every platform (default: the host's platform only, as skopeo).
    #[arg(long, conflicts_with_all = ["platform", "multi_arch"])]
    all: bool,
    /// What to copy from an index: `system` (the host's image), `all` (everything, as --all) or
    /// `index-only` (the index alone; the destination must have its images already).
    #[arg(long, value_enum)]
    multi_arch: Option<MultiArch>,
    /// Fail rather than write anything whose digest differs from the source's.
    #[arg(long)]
    preserve_digests: bool,
    /// Copy only these platforms (repeatable); more than one writes a new index of just those.
    #[arg(long)]
    platform: Vec<Platform>,
    /// Into a local layout from a layout or a `dir:` image, share blob files by hard link instead of
    /// copying them
    /// them (only files no one else can change: owned by you, not writable by group or others). The two
    /// images then share inodes: a change to one is a change to the other.
    #[arg(long)]
    link: bool,
    /// Also copy the referrers (signatures, SBOMs, attestations: OCI 1.1 subjects) of every manifest
    /// copied, and theirs (as regctl's `--referrers`, oras' `cp -r`).
    #[arg(long)]
    referrers: bool,
    /// With --referrers, only referrers of this artifact type (repeatable).
    #[arg(long, value_name = "ARTIFACT_TYPE", requires = "referrers")]
    referrers_filter: Vec<String>,
    /// Also copy cosign's legacy `sha256-<hex>.sig`, `.att` and `.sbom` tags of every manifest copied
    /// (as regctl's `--digest-tags`).
    #[arg(long)]
    digest_tags: bool,
    /// Manifest format to write (default: the destination's own, converting as skopeo does).
    #[arg(long, value_enum)]
    format: Option<ManifestFormat>,
    /// Recompress layers to this format (default: keep them, but gzip uncompressed layers converted
    /// into an OCI destination, as skopeo does).
    #[arg(long, value_enum)]
    dest_compress_format: Option<CompressFormat>,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long, requires = "dest_compress_format")]
    dest_compress_level: Option<i32>,
    /// Blobs in flight at once.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// One more `NAME:TAG` for a docker-archive or docker-daemon destination (repeatable), as skopeo's
    /// `--additional-tag`; refused for other destinations.
    #[arg(long, value_name = "NAME:TAG", value_parser = parse_additional_tag)]
    additional_tag: Vec<hoist::reference::ImageName>,
    /// Read an OCI layout source's blobs from this directory (`sha256/HEX`) instead of its
    /// `blobs/`, as skopeo's flag.
    #[arg(long, value_name = "DIR")]
    src_shared_blob_dir: Option<std::path::PathBuf>,
    /// Write an OCI layout destination's blobs into this directory (`sha256/HEX`), shared by
    /// several layouts, instead of its `blobs/`, as skopeo's flag.
    #[arg(long, value_name = "DIR")]
    dest_shared_blob_dir: Option<std::path::PathBuf>,
    /// Write the digest of the destination's root manifest to this file.
    #[arg(long)]
    digestfile: Option<std::path::PathBuf>,
    /// Refuse a source image that this containers-policy.json(5) file does not accept
    /// (insecureAcceptAnything, reject, sigstoreSigned with keyPath/keyData and signedIdentity).
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
    /// Sign the written image with this cosign private key (stored as its sha256-<hex>.sig tag).
    #[arg(long, value_name = "FILE")]
    sign_by_sigstore_private_key: Option<std::path::PathBuf>,
    /// The signing key's password, from this file's first line (else $HOIST_PASSWORD).
    #[arg(long, value_name = "FILE", requires = "sign_by_sigstore_private_key")]
    sign_passphrase_file: Option<std::path::PathBuf>,
    /// The docker reference the signature names (default: the destination reference).
    #[arg(long, value_name = "REF", requires = "sign_by_sigstore_private_key")]
    sign_identity: Option<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value_t = crate::progress::Mode::Auto)]
    progress: crate::progress::Mode,
    #[command(flatten)]
    registry: super::registry_args::CopyRegistryArgs,
}

/// Parses `--additional-tag`: an image name with an explicit tag, as skopeo requires.
fn parse_additional_tag(text: &str) -> std::result::Result<hoist::reference::ImageName, String> {
    if text.contains('@') || !hoist::reference::names_tag_or_digest(text) {
        return Err(format!("{text:?} must be NAME:TAG"));
    }
    hoist::reference::ImageName::parse(text).map_err(|e| e.to_string())
}

/// Runs `hoist copy`.
pub fn run(args: Args) -> Result<ExitCode> {
    let src_ref = super::parse_ref(&args.source)?;
    let dst_ref = super::parse_ref(&args.destination)?;
    if src_ref == dst_ref {
        bail!("source and destination are the same image ({src_ref})");
    }
    let open = super::open_options();
    let mut src_opts = args.registry.source(open.clone());
    src_opts.shared_blob_dir = args.src_shared_blob_dir.clone();
    let mut source = open_source(&src_ref, &src_opts)
        .with_context(|| format!("opening source {}", args.source))?;
    // The digest the policy accepted; the copy reads that digest, never the tag again (which could
    // have moved to an image the policy would refuse).
    let mut accepted = None;
    if let Some(policy) = &args.policy {
        let digest = check_policy(policy, &src_ref, source.as_ref(), &src_opts)?;
        let pinned = src_ref.pinned_to(&digest);
        if pinned != src_ref {
            source = open_source(&pinned, &src_opts)
                .with_context(|| format!("opening source {}", args.source))?;
        }
        accepted = Some(digest);
    }
    let mut dest_opts = args.registry.destination(open);
    dest_opts.additional_tags = args.additional_tag.clone();
    dest_opts.shared_blob_dir = args.dest_shared_blob_dir.clone();
    let destination = open_destination(&dst_ref, &dest_opts)
        .with_context(|| format!("opening destination {}", args.destination))?;
    let all = args.all || args.multi_arch == Some(MultiArch::All);
    let platforms = match (all, args.platform.as_slice()) {
        (true, _) => PlatformChoice::All,
        (false, []) => PlatformChoice::Host,
        (false, [one]) => PlatformChoice::One(one.clone()),
        (false, many) => PlatformChoice::Subset(many.to_vec()),
    };
    let mut convert = hoist::copy::ConvertOptions::default();
    convert.format = args.format.map(|f| match f {
        ManifestFormat::Oci => hoist::convert::Format::Oci,
        ManifestFormat::V2s2 => hoist::convert::Format::DockerV2S2,
    });
    convert.compression = args.dest_compress_format.map(|c| match c {
        CompressFormat::Gzip => hoist::compress::Compression::Gzip,
        CompressFormat::Zstd => hoist::compress::Compression::Zstd,
        CompressFormat::None => hoist::compress::Compression::None,
    });
    convert.level = args.dest_compress_level;
    if let (Some(c), Some(level)) = (convert.compression, convert.level) {
        hoist::compress::check_level(c, level).map_err(anyhow::Error::msg)?;
    }
    // The key is read (and its password checked) before anything is copied.
    let sign_key = match &args.sign_by_sigstore_private_key {
        Some(k) => {
            sign_key_check(&dst_ref, args.sign_identity.as_deref())?;
            Some(super::sign::load_private_key(
                k,
                args.sign_passphrase_file.as_deref(),
            )?)
        }
        None => None,
    };
    let progress = crate::progress::sink(args.progress, args.quiet);
    let mut opts = CopyOptions::default();
    opts.platforms = platforms;
    opts.jobs = args.jobs;
    opts.progress = progress.clone();
    opts.preserve_digests = args.preserve_digests;
    opts.index_only = args.multi_arch == Some(MultiArch::IndexOnly);
    opts.link = args.link;
    opts.convert = convert;
    opts.referrers = args.referrers;
    opts.referrers_filter = args.referrers_filter.clone();
    opts.digest_tags = args.digest_tags;
    opts.cancel = super::cancel_token();
    let report = match copy(source.as_ref(), destination.as_ref(), &opts) {
        Ok(report) => report,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "copying {} to {}",
                source.name(),
                destination.name()
            )));
        }
    };
    if let Some(digest) = &accepted
        && report.source_digest != *digest
    {
        bail!(
            "the source changed during the copy: the policy accepted {digest}, {} was copied",
            report.source_digest
        );
    }
    if let Some(key) = &sign_key {
        let identity = super::sign::sign_image(
            &dst_ref,
            &report.digest,
            args.sign_identity.as_deref(),
            key,
            &dest_opts,
        )?;
        if !args.quiet {
            eprintln!("signed {} as {identity}", report.digest);
        }
    }
    if let Some(path) = &args.digestfile {
        hoist::durable::write_file(path, report.digest.to_string().as_bytes())
            .with_context(|| format!("writing digest file {}", path.display()))?;
    }
    if !args.quiet {
        if report.digest != report.source_digest {
            eprintln!(
                "note: the written root {} differs from the source's {} (platform selection or conversion)",
                report.digest, report.source_digest
            );
        }
        let mounted = if report.blobs_mounted > 0 {
            format!(", {} mounted", report.blobs_mounted)
        } else {
            String::new()
        };
        eprintln!(
            "wrote {} {}: {} blobs copied, {} linked, {} already present{mounted} ({})",
            destination.name(),
            report.digest,
            report.blobs_copied,
            report.blobs_linked,
            report.blobs_skipped,
            hoist::limits::human_bytes(report.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `copy --policy`: the source image must satisfy the policy, or nothing is copied. Returns the
/// digest of the image accepted.
fn check_policy(
    policy: &std::path::Path,
    src_ref: &hoist::reference::TransportRef,
    source: &dyn hoist::transport::Source,
    opts: &hoist::transport::OpenOptions,
) -> Result<hoist::Digest> {
    use hoist::sign::policy::{Decision, Policy, enforce};
    let loaded = Policy::load(policy)?;
    let base = policy
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let decision = loaded.decide(src_ref, &base)?;
    let digest = source.root()?.digest().clone();
    let signatures = match decision {
        Decision::NeedsSignatures(_) => hoist::sign::read_signatures(src_ref, &digest, opts)?,
        _ => Vec::new(),
    };
    enforce(&decision, &src_ref.to_string(), &digest, &signatures)
        .with_context(|| format!("policy {} refuses {src_ref}: not copied", policy.display()))?;
    Ok(digest)
}

/// `--sign-by-sigstore-private-key` needs a destination that can hold signatures and an identity.
fn sign_key_check(dst_ref: &hoist::reference::TransportRef, identity: Option<&str>) -> Result<()> {
    hoist::sign::signature_ref(dst_ref, &hoist::Digest::sha256(b""))?;
    if identity.is_none() && hoist::sign::default_identity(dst_ref).is_none() {
        bail!("signing {dst_ref} needs the docker reference it names: give --sign-identity");
    }
    Ok(())
}
