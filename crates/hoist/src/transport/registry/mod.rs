//! The `docker://` transport: a registry repository (distribution spec v2) as a [`Source`] and a
//! [`Destination`], one file per concern: reading images ([`pull`]), writing them ([`push`]), and
//! tag lists ([`listing`]), over one HTTP client ([`client`]) whose requests, and every resume and
//! restart above them, follow one retry policy ([`retry`]).
//!
//! [`Source`]: super::Source
//! [`Destination`]: super::Destination

pub mod auth;
pub mod client;
pub mod credentials;
mod feed;
pub mod helper;
pub mod listing;
pub mod pull;
pub mod push;
pub mod retry;
pub mod streamed;
pub mod tls;

pub use self::listing::next_link;
pub use self::pull::RegistrySource;
pub use self::push::{CHUNK_SIZE, MONOLITHIC_MAX, RegistryDestination};

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
/// the auth files).
pub fn client_for(name: &ImageName, opts: &OpenOptions) -> Result<Client> {
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
            tls_verify: opts.tls_verify.unwrap_or(true),
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
