//! `login` and `logout` as `docker login` and `skopeo login` do them: the credentials are checked
//! against the registry's `/v2/`, then kept by the credential helper the auth files name for the
//! registry, else in the auth file (`--authfile`, `$REGISTRY_AUTH_FILE`, or the first default one).

use std::path::PathBuf;

use super::client::{Client, ClientConfig};
use super::credentials::{AuthFiles, helper_server, remove, store};
use super::retry::RetryPolicy;
use super::{DEFAULT_RETRY_TIMES, client, helper};
use crate::error::Result;
use crate::transport::{Credentials, OpenOptions};

/// Where [`login`] kept the credentials, or where [`logout`] looked for them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialStore {
    /// The credential helper `docker-credential-NAME`, named in the auth file `named_in`.
    Helper {
        /// The helper's name (`pass` for `docker-credential-pass`).
        name: String,
        /// The auth file whose `credHelpers` or `credsStore` names it.
        named_in: PathBuf,
    },
    /// The auth file itself (written with mode 0600, through a symlink).
    AuthFile(PathBuf),
}

/// What [`logout`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoggedOut {
    /// Whether an entry for the registry was found and erased (from the helper or the auth file).
    pub erased: bool,
    /// The auth file that was edited (or would have been).
    pub auth_file: PathBuf,
}

/// Checks `creds` against the registry `host` (`HOST[:PORT]`) and keeps them: by the credential
/// helper the auth files name for the registry, else in the auth file. Of `opts`, the TLS settings
/// (`tls_verify`, `cert_dir`), `authfile`, `retry_times`, `timeout` and `limits` apply; credentials
/// in `opts.creds` are ignored (`creds` are the ones checked).
///
/// ```no_run
/// use hoist::transport::{Credentials, OpenOptions};
/// let creds = Credentials::new("alice", "secret");
/// let kept = hoist::transport::registry::login("localhost:5000", &creds, &OpenOptions::default())?;
/// println!("stored in {kept:?}");
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn login(host: &str, creds: &Credentials, opts: &OpenOptions) -> Result<CredentialStore> {
    let client = Client::new(
        host,
        ClientConfig {
            tls_verify: opts.tls_verify.unwrap_or(true),
            tls_verify_flag: opts
                .tls_verify_flag
                .clone()
                .unwrap_or_else(|| "--tls-verify".into()),
            cert_dir: opts.cert_dir.clone(),
            creds: Some(creds.clone()),
            retry: RetryPolicy::new(opts.retry_times.unwrap_or(DEFAULT_RETRY_TIMES)),
            max_response_size: opts.limits.max_response_size,
            timeout: opts.timeout.unwrap_or(client::DEFAULT_TIMEOUT),
        },
    )?;
    client.check_login()?;
    let files = AuthFiles::from_env(opts.authfile.clone());
    if let Some((name, named_in)) = files.helper_for(host)? {
        helper::store(&name, &helper_server(host), creds)?;
        return Ok(CredentialStore::Helper { name, named_in });
    }
    let path = files.write_target()?;
    store(&path, host, creds)?;
    Ok(CredentialStore::AuthFile(path))
}

/// Erases the credentials for the registry `host` from the credential helper the auth files name
/// for it, and from the auth file (`authfile`, else `$REGISTRY_AUTH_FILE` or the first default one).
pub fn logout(host: &str, authfile: Option<PathBuf>) -> Result<LoggedOut> {
    let files = AuthFiles::from_env(authfile);
    let mut erased = match files.helper_for(host)? {
        Some((name, _)) => helper::erase(&name, &helper_server(host))?,
        None => false,
    };
    let auth_file = files.write_target()?;
    erased |= remove(&auth_file, host)?;
    Ok(LoggedOut { erased, auth_file })
}
