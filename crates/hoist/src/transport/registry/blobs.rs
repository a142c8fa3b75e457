//! One blob of a repository by digest, for the blob plumbing (`hoist blob get`): its size, asked
//! with `HEAD`, so that the download can be verified (size and digest) as it streams through
//! [`Source::open_blob`](crate::transport::Source::open_blob).

use reqwest::Method;
use reqwest::header::CONTENT_LENGTH;

use super::client::Req;
use super::header_str;
use super::pull::RegistrySource;
use crate::digest::Digest;
use crate::error::{Error, Result};

impl RegistrySource {
    /// The size of blob `digest` (`HEAD /v2/NAME/blobs/DIGEST`); a blob that is not there is
    /// [`Error::NotFound`].
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = format!("v2/{}/blobs/{digest}", self.name.repository);
        let url = self.client.url(&path)?;
        let what = format!("HEAD /{path}");
        let resp = self
            .client
            .send(&Req::new(Method::HEAD, url, &self.scope()), &what)?;
        if resp.status().as_u16() == 404 {
            return Err(Error::NotFound {
                reference: format!("blob {digest}"),
                location: format!("repository {}", self.name.name()),
                hint: String::new(),
            });
        }
        let resp = self.client.expect(&what, resp, &[200])?;
        header_str(resp.headers(), CONTENT_LENGTH.as_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                self.client.registry_error(
                    format!("{what}: the answer has no Content-Length, so the size is unknown"),
                    None,
                )
            })
    }
}
