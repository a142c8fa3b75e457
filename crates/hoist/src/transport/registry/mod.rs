//! The `docker://` transport: a registry repository (distribution spec v2) as a [`Source`] and a
//! [`Destination`], one file per concern: reading images (`pull`), writing them (`push`), and
//! tag lists and the catalog (`listing`, [`catalog`]), deleting and adding tags (`manage`), [`login`]
//! and [`logout`] (`login`), over one HTTP client (`client`) whose requests, and every resume and
//! restart above them, follow one retry policy (`retry`). Only the entry points are public.
//!
//! [`Source`]: super::Source
//! [`Destination`]: super::Destination

pub(crate) mod auth;
mod blobs;
pub(crate) mod client;
pub(crate) mod credentials;
mod feed;
pub(crate) mod helper;
pub(crate) mod listing;
mod login;
pub(crate) mod manage;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod registries_conf;
pub(crate) mod retry;
pub(crate) mod streamed;
pub(crate) mod tls;

pub use self::listing::catalog;
pub use self::login::{CredentialStore, LoggedOut, login, logout};
pub use self::manage::{RegistryRepository, TagDeletion};
pub use self::pull::RegistrySource;
pub use self::push::RegistryDestination;

use reqwest::header::HeaderMap;

use self::client::{Client, ClientConfig};
use self::retry::RetryPolicy;
use super::OpenOptions;
use crate::error::Result;
use crate::reference::ImageName;

/// Retries when `--retry-times` is not given.
pub const DEFAULT_RETRY_TIMES: u32 = 3;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Builds the client for an image's registry from the open options (credentials from `--creds`, else
/// the auth files), for writing: registries.conf's location of the image, never a mirror. The
/// image's name there may differ (a `location` replaces a `prefix`): [`connect`] returns it.
pub(crate) fn client_for(name: &ImageName, opts: &OpenOptions) -> Result<Client> {
    Ok(connect(name, opts, false)?.0)
}

/// The client and the image's name where registries.conf ([`registries_conf`]) puts `name`: for a
/// pull, the first mirror that has the manifest (asked with `HEAD`), else the location; for a push,
/// the location. A blocked registry is an error.
pub(crate) fn connect(
    name: &ImageName,
    opts: &OpenOptions,
    pull: bool,
) -> Result<(Client, ImageName)> {
    let conf = registries_conf::RegistriesConf::load(opts.registries_conf.as_deref())?;
    let mut endpoints = conf.endpoints(name, pull)?;
    let Some(primary) = endpoints.pop() else {
        return Err(crate::error::Error::Other(format!(
            "registries.conf gives no location for {}/{}",
            name.domain, name.repository
        )));
    };
    for ep in endpoints {
        let mirror = ep.mirror.clone().unwrap_or_default();
        let answer = client_at(&ep, opts).and_then(|c| {
            let found = pull::has_manifest(&c, &ep.name)?;
            Ok((c, found))
        });
        match answer {
            Ok((c, true)) => {
                tracing::info!(
                    "{}/{}: pulling from mirror {mirror} ({}/{})",
                    name.domain,
                    name.repository,
                    ep.name.registry_host(),
                    ep.name.repository
                );
                return Ok((c, ep.name));
            }
            Ok((_, false)) => tracing::info!("mirror {mirror} does not have the image; next"),
            Err(e) => tracing::info!("mirror {mirror} failed: {e}; next"),
        }
    }
    if primary.name != *name {
        tracing::info!(
            "{}/{}: at {}/{} (registries.conf location)",
            name.domain,
            name.repository,
            primary.name.registry_host(),
            primary.name.repository
        );
    }
    Ok((client_at(&primary, opts)?, primary.name))
}

/// The client for one endpoint.
fn client_at(ep: &registries_conf::Endpoint, opts: &OpenOptions) -> Result<Client> {
    let name = &ep.name;
    let host = name.registry_host().to_string();
    let creds = match &opts.creds {
        Some(c) => {
            tracing::info!(
                "{host}: credentials of user {:?} from the command line",
                c.username
            );
            Some(c.clone())
        }
        None => match credentials::AuthFiles::from_env(opts.authfile.clone())
            .find(&host, &name.repository)?
        {
            Some(found) => {
                tracing::info!(
                    "{host}: credentials of user {:?} from {}",
                    found.creds.username,
                    found.source
                );
                Some(found.creds)
            }
            None => {
                tracing::info!("{host}: no credentials found; anonymous");
                None
            }
        },
    };
    Client::new(
        &host,
        ClientConfig {
            // An explicit --tls-verify wins over registries.conf's `insecure`.
            tls_verify: opts.tls_verify.unwrap_or(!ep.insecure),
            tls_verify_flag: opts
                .tls_verify_flag
                .clone()
                .unwrap_or_else(|| "--tls-verify".into()),
            cert_dir: opts.cert_dir.clone(),
            creds,
            retry: RetryPolicy::new(opts.retry_times.unwrap_or(DEFAULT_RETRY_TIMES)),
            max_response_size: opts.limits.max_response_size,
            timeout: opts.timeout.unwrap_or(client::DEFAULT_TIMEOUT),
        },
    )
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// The media type of a `Content-Type` value without parameters.
fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parameters_are_ignored() {
        assert_eq!(
            bare_media_type("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
            crate::media_type::OCI_MANIFEST
        );
    }
}
