//! `hoist login REGISTRY`: check credentials against a registry and store them in the auth file that
//! skopeo and podman read.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist::transport::Credentials;
use hoist::transport::registry::client::{Client, ClientConfig};
use hoist::transport::registry::credentials::{AuthFiles, helper_server, store};
use hoist::transport::registry::helper;
use hoist::transport::registry::retry::RetryPolicy;

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
    let client = Client::new(
        &host,
        ClientConfig {
            tls_verify: args.tls_verify.unwrap_or(true),
            tls_verify_flag: "--tls-verify".into(),
            cert_dir: args.cert_dir,
            creds: Some(creds.clone()),
            retry: RetryPolicy::new(hoist::transport::registry::DEFAULT_RETRY_TIMES),
            max_response_size: super::limits().max_response_size,
            timeout: hoist::transport::registry::client::DEFAULT_TIMEOUT,
        },
    )?;
    client
        .check_login()
        .with_context(|| format!("logging in to {host}"))?;
    let files = AuthFiles::from_env(args.authfile);
    if let Some((name, named_in)) = files.helper_for(&host)? {
        // As `docker login`: the helper the auth file names keeps the secret.
        helper::store(&name, &helper_server(&host), &creds)
            .with_context(|| format!("storing the credentials for {host}"))?;
        eprintln!(
            "Login Succeeded! (credentials stored by docker-credential-{name}, named in {})",
            named_in.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let path = files.write_target()?;
    store(&path, &host, &creds).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "Login Succeeded! (credentials stored in {})",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
