//! `hoist generate-key` and `hoist sign --key KEY REF`: cosign-format keys and cosign-compatible
//! signatures stored as `sha256-<hex>.sig` attachments; plus the key and password helpers that
//! `verify --key` and `copy --policy / --sign-by-sigstore-private-key` share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hoist::reference::TransportRef;
use hoist::sign::{self, keys};
use hoist::transport::{OpenOptions, open_source};

use crate::output::Format;

/// Arguments of `hoist generate-key`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes PREFIX.key (PEM `ENCRYPTED COSIGN PRIVATE KEY`: scrypt + NaCl secretbox, as \
cosign and skopeo read it) and PREFIX.pub (PEM public key). Existing files are not overwritten.\n\n\
Examples:\n  HOIST_PASSWORD=... hoist generate-key\n  hoist generate-key --password-file pw.txt --output-key-prefix release"
)]
pub struct GenerateKeyArgs {
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    output_key_prefix: PathBuf,
    /// Read the password from this file's first line (else $HOIST_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// Arguments of `hoist sign`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Signs the image's manifest (or index) digest with a simple-signing payload and \
stores the signature as the tag sha256-<hex>.sig beside it, as cosign v2 and skopeo do. Keyless \
(Fulcio/Rekor) signing is not supported.\n\n\
Examples:\n  hoist sign --key cosign.key docker://registry.example/app:v1\n  \
hoist sign --key cosign.key --identity registry.example/app:v1 oci:./layout:v1"
)]
pub struct SignArgs {
    /// The image (`docker://HOST/REPO:TAG|@DIGEST`, `oci:PATH:TAG`).
    reference: String,
    /// The private key (cosign format, `ENCRYPTED COSIGN|SIGSTORE PRIVATE KEY`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Read the key's password from this file's first line (else $HOIST_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The docker reference the signature names (default: the registry reference as given;
    /// required for a layout).
    #[arg(long, value_name = "REF")]
    identity: Option<String>,
    /// Store the signature as an OCI 1.1 referrer of the image (artifact type
    /// application/vnd.dev.cosign.artifact.sig.v1+json, as cosign v3) instead of in its .sig tag.
    #[arg(long)]
    as_referrer: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    registry: super::registry_args::RegistryArgs,
}

/// The password for a key: the first line of `file`, else `$HOIST_PASSWORD`, else a prompt on a
/// terminal; `confirm` asks twice (a new key).
pub fn password(file: Option<&Path>, confirm: bool) -> Result<Vec<u8>> {
    if let Some(file) = file {
        let text = std::fs::read(file)
            .with_context(|| format!("reading password file {}", file.display()))?;
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        return Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
    }
    if let Some(p) = std::env::var_os("HOIST_PASSWORD") {
        return Ok(p.into_encoded_bytes());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("no password: give --password-file or set HOIST_PASSWORD");
    }
    let first = rpassword::prompt_password("Password for the key: ").context("reading password")?;
    if confirm {
        let again = rpassword::prompt_password("Again: ").context("reading password")?;
        if again != first {
            bail!("the two passwords differ");
        }
    }
    Ok(first.into_bytes())
}

/// Reads and decrypts a cosign private key.
pub fn load_private_key(path: &Path, password_file: Option<&Path>) -> Result<sign::PrivateKey> {
    let pem = std::fs::read(path).with_context(|| format!("reading key {}", path.display()))?;
    let password = password(password_file, false)?;
    Ok(keys::decrypt_private_key(
        &pem,
        &password,
        &path.display().to_string(),
    )?)
}

/// Reads a cosign public key.
pub fn load_public_key(path: &Path) -> Result<sign::PublicKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    Ok(keys::read_public_key(&pem, &path.display().to_string())?)
}

/// The root digest of `reference` (its manifest or index).
pub fn root_digest(reference: &TransportRef, opts: &OpenOptions) -> Result<hoist::Digest> {
    let source = open_source(reference, opts)?;
    let root = source.root()?;
    Ok(root.digest().clone())
}

/// Signs `reference` (root digest `digest`) and prints what was written unless `quiet`.
pub fn sign_image(
    reference: &TransportRef,
    digest: &hoist::Digest,
    identity: Option<&str>,
    key: &sign::PrivateKey,
    opts: &OpenOptions,
) -> Result<String> {
    let identity = identity_of(reference, identity)?;
    sign::sign(reference, digest, &identity, key, opts)
        .with_context(|| format!("signing {reference}"))?;
    Ok(identity)
}

/// The identity a signature of `reference` names: `identity`, else the registry reference.
fn identity_of(reference: &TransportRef, identity: Option<&str>) -> Result<String> {
    match identity {
        Some(i) => Ok(i.to_string()),
        None => sign::default_identity(reference).with_context(|| {
            format!(
                "a signature of {reference} needs the docker reference it names: give --identity"
            )
        }),
    }
}

/// Runs `hoist generate-key`.
pub fn run_generate_key(args: GenerateKeyArgs) -> Result<ExitCode> {
    let prefix = args.output_key_prefix.as_os_str().to_owned();
    let mut key_path = prefix.clone();
    key_path.push(".key");
    let mut pub_path = prefix;
    pub_path.push(".pub");
    let (key_path, pub_path) = (PathBuf::from(key_path), PathBuf::from(pub_path));
    for p in [&key_path, &pub_path] {
        if std::fs::symlink_metadata(p).is_ok() {
            bail!("{} exists: not overwriting a key", p.display());
        }
    }
    let password = password(args.password_file.as_deref(), true)?;
    let key = keys::generate()?;
    let private = keys::encrypt_private_key(&key, &password)?;
    let public = keys::public_key_pem(&key.public_key())?;
    hoist::output::write_file_with(&key_path, private.as_bytes(), 0o600, None)
        .with_context(|| format!("writing {}", key_path.display()))?;
    hoist::output::write_file(&pub_path, public.as_bytes())
        .with_context(|| format!("writing {}", pub_path.display()))?;
    eprintln!(
        "wrote private key {} and public key {}",
        key_path.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `hoist sign` wrote.
#[derive(serde::Serialize)]
struct Signed {
    digest: String,
    identity: String,
    /// The signature tag; none for a signature stored as a referrer.
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

/// Runs `hoist sign`.
pub fn run_sign(args: SignArgs) -> Result<ExitCode> {
    let reference = super::parse_ref(&args.reference)?;
    let opts = args.registry.apply(super::open_options());
    // Checked before the password is asked for.
    sign::signature_ref(&reference, &hoist::Digest::sha256(b""))?;
    let digest = root_digest(&reference, &opts)?;
    let key = load_private_key(&args.key, args.password_file.as_deref())?;
    let (identity, tag) = if args.as_referrer {
        let identity = identity_of(&reference, args.identity.as_deref())?;
        sign::sign_as_referrer(&reference, &digest, &identity, &key, &opts)
            .with_context(|| format!("signing {reference}"))?;
        (identity, None)
    } else {
        let identity = sign_image(&reference, &digest, args.identity.as_deref(), &key, &opts)?;
        (identity, Some(sign::signature_tag(&digest)))
    };
    let signed = Signed {
        digest: digest.to_string(),
        identity,
        tag,
    };
    match args.format {
        Format::Json => crate::output::print_json(&signed)?,
        Format::Text => println!(
            "signed {} as {} ({})",
            signed.digest,
            signed.identity,
            match &signed.tag {
                Some(t) => format!("tag {t}"),
                None => "referrer".to_string(),
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
