//! `hoist login REGISTRY`: check credentials against a registry and store them in the auth file that
//! skopeo and podman read.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::transport::Credentials;
use hoist::transport::registry::CredentialStore;

/// Arguments of `hoist login`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist login -u alice registry.example:5000\n  echo \"$TOKEN\" | hoist login -u alice --password-stdin --authfile ./auth.json registry.example"
)]
pub struct Args {
    /// The registry (`HOST[:PORT]`; `docker://` and a repository path are accepted and ignored).
    registry: String,
    /// The user name.
    #[arg(short, long)]
    username: String,
    /// The password (prefer --password-stdin: arguments are visible to other users).
    #[arg(short, long, conflicts_with = "password_stdin", hide_env_values = true)]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The auth file to write (default: $REGISTRY_AUTH_FILE, else
    /// $XDG_RUNTIME_DIR/containers/auth.json); a credential helper the auth files name for the
    /// registry (credHelpers, credsStore) stores the credentials instead.
    #[arg(long, value_name = "PATH")]
    authfile: Option<std::path::PathBuf>,
    /// Verify the registry's TLS certificate; `--tls-verify=false` also allows plain http.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// A directory of extra CA certificates (`*.crt`) to trust.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<std::path::PathBuf>,
}

/// The host part of a registry argument (`docker://host:5000/repo` -> `host:5000`).
pub fn registry_host(text: &str) -> Result<String> {
    let t = text.strip_prefix("docker://").unwrap_or(text);
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let host = t.split('/').next().unwrap_or("");
    if host.contains('@') {
        let shown = hoist::reference::without_credentials(text);
        return Err(crate::output::Usage(format!(
            "{shown:?}: credentials cannot be part of a registry address (use --username, or \
             --creds on other verbs)"
        ))
        .into());
    }
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(crate::output::Usage(format!("{text:?} is not a registry host")).into());
    }
    Ok(match host {
        "docker.io" | "index.docker.io" => hoist::reference::DOCKER_HUB_REGISTRY.to_string(),
        h => h.to_string(),
    })
}

/// Runs `hoist login`.
pub fn run(args: Args) -> Result<ExitCode> {
    let host = registry_host(&args.registry)?;
    let password = match args.password {
        Some(p) => p,
        None if !args.password_stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            // On a terminal, read without echo.
            rpassword::prompt_password("Password: ").context("reading the password")?
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let creds = Credentials::new(args.username, password);
    let mut opts = super::open_options();
    opts.tls_verify = args.tls_verify;
    opts.cert_dir = args.cert_dir;
    opts.authfile = args.authfile;
    // As `docker login`: the helper the auth file names keeps the secret, else the auth file.
    match hoist::transport::registry::login(&host, &creds, &opts)
        .with_context(|| format!("logging in to {host}"))?
    {
        CredentialStore::Helper { name, named_in } => eprintln!(
            "Login Succeeded! (credentials stored by docker-credential-{name}, named in {})",
            named_in.display()
        ),
        CredentialStore::AuthFile(path) => eprintln!(
            "Login Succeeded! (credentials stored in {})",
            path.display()
        ),
        other => eprintln!("Login Succeeded! (credentials stored: {other:?})"),
    }
    Ok(ExitCode::SUCCESS)
}
