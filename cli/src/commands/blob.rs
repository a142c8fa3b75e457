//! `hoist blob get REF@DIGEST [FILE|-]` and `hoist blob put REF FILE|-`: one blob by digest, from or
//! to a registry repository or an OCI layout, verified (size and digest) as it streams, as crane
//! blob and regctl blob do.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::Digest;
use hoist::VerifiedReader;
use hoist::transport::repository::Item;

use crate::output::Usage;

/// Arguments of `hoist blob`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist blob put --tls-verify=false docker://localhost:5000/app layer.tar.gz\n  \
hoist blob get --tls-verify=false docker://localhost:5000/app@sha256:0123... layer.tar.gz"
)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Write one blob to FILE (default: stdout), verified as it streams.
    #[command(
        after_help = "A FILE is written only once the whole blob verified (a temp file renamed over \
it; a FIFO, device or symlink is written through). On stdout, bytes go out as they arrive: a \
mismatch at the end exits 1.\n\n\
Examples:\n  hoist blob get --tls-verify=false docker://localhost:5000/app@sha256:0123... layer.tar.gz\n  \
hoist blob get oci:./layout@sha256:0123... - | sha256sum"
    )]
    Get(GetArgs),
    /// Upload one blob (a file, or stdin with `-`) and print its digest.
    #[command(
        after_help = "The blob is hashed first (stdin is spooled to a temp file), then sent and \
verified again as it streams; a blob the destination has is not sent again.\n\n\
Examples:\n  hoist blob put --tls-verify=false docker://localhost:5000/app layer.tar.gz\n  \
tar c dir | hoist blob put oci:./layout -"
    )]
    Put(PutArgs),
}

#[derive(clap::Args, Debug)]
struct GetArgs {
    /// The blob (`docker://HOST/REPO@DIGEST`, `oci:PATH@DIGEST`).
    reference: String,
    /// Where to write it (`-` or absent: stdout).
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

#[derive(clap::Args, Debug)]
struct PutArgs {
    /// The repository or layout (`docker://HOST/REPO`, `oci:PATH`).
    reference: String,
    /// The blob's content (`-`: stdin).
    input: PathBuf,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// Runs `hoist blob`.
pub fn run(args: Args) -> Result<ExitCode> {
    match args.action {
        Action::Get(a) => get(a),
        Action::Put(a) => put(a),
    }
}

fn get(args: GetArgs) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let opts = args.registry.apply(super::open_options());
    let (repo, item) = hoist::open_repository(&reference, &opts)?;
    let Some(Item::Digest(digest)) = item else {
        return Err(Usage(format!(
            "blob get needs a digest: write {}@DIGEST, not {:?}",
            repo.name(),
            hoist::reference::without_credentials(&args.reference)
        ))
        .into());
    };
    // Not there at all is exit 2 (NotFound); a blob an image needs and lacks is damage, which
    // `verify` reports.
    let size = repo.blob_size(&digest)?;
    write_verified(repo.open_blob(&digest, size)?, args.output.as_deref())
}

/// Copies a verified stream to `output` (a file by the durable rules, committed only when the whole
/// blob verified) or to stdout.
fn write_verified<R: Read>(mut blob: VerifiedReader<R>, output: Option<&Path>) -> Result<ExitCode> {
    let what = format!("blob {}", blob.expected());
    match output {
        Some(path) if path != Path::new("-") => {
            let mut out = hoist::output::Output::create(path)?;
            std::io::copy(&mut blob, &mut out)
                .map_err(|e| hoist::error::from_io(e, || format!("writing {what}")))
                .with_context(|| format!("writing {}", path.display()))?;
            blob.finish()?;
            out.commit()?;
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            std::io::copy(&mut blob, &mut stdout)
                .map_err(|e| hoist::error::from_io(e, || format!("writing {what} to stdout")))?;
            blob.finish()?;
            stdout.flush().context("writing to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The input of `blob put` as a file that can be read again, with its sha256 digest and size from
/// a first read: the named file, or stdin spooled into a temp file (removed when dropped).
struct Input {
    file: std::fs::File,
    digest: Digest,
    size: u64,
    _spool: Option<hoist::output::TempFile>,
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        use hoist::digest::{Algorithm, HashingWriter};
        use std::io::Seek;
        if path != Path::new("-") {
            let mut file = hoist::output::open_regular(path, false)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut hashing = HashingWriter::new(std::io::sink(), Algorithm::Sha256);
            std::io::copy(&mut file, &mut hashing)
                .with_context(|| format!("reading {}", path.display()))?;
            let (_, digest, size) = hashing.finish();
            file.seek(std::io::SeekFrom::Start(0))
                .with_context(|| format!("rewinding {}", path.display()))?;
            return Ok(Input {
                file,
                digest,
                size,
                _spool: None,
            });
        }
        let mut spool = hoist::output::TempFile::new_in(&std::env::temp_dir())?;
        let mut hashing = HashingWriter::new(spool.as_file_mut(), Algorithm::Sha256);
        std::io::copy(&mut std::io::stdin().lock(), &mut hashing)
            .context("spooling the blob from stdin")?;
        let (_, digest, size) = hashing.finish();
        let file = spool.reopen().context("reading back the spooled blob")?;
        Ok(Input {
            file,
            digest,
            size,
            _spool: Some(spool),
        })
    }
}

fn put(args: PutArgs) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let opts = args.registry.apply(super::open_options());
    let (repo, item) = hoist::open_repository(&reference, &opts)?;
    // A blob belongs to the repository, not to a tag (a tag given is not used); a digest would
    // name something else than the blob's own.
    if let Some(Item::Digest(d)) = &item {
        return Err(Usage(format!(
            "blob put names the repository only (docker://HOST/REPO, oci:PATH): the blob's digest \
             is its content's, not {d}"
        ))
        .into());
    }
    let mut input = Input::open(&args.input)?;
    let (digest, size) = (input.digest.clone(), input.size);
    repo.put_blob(&digest, size, &mut input.file)
        .with_context(|| format!("storing blob {digest} in {}", repo.name()))?;
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}
