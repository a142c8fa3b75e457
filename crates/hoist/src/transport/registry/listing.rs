//! A registry's paged lists, a repository's tags, the catalog of repositories and the referrers of a
//! manifest (`GET /v2/<name>/referrers/<digest>`, falling back to the tag-schema index where the API
//! answers 404): `Link` pages followed on the registry's own terms by one loop, within
//! `--max-tag-pages` pages and `--max-tags` (or `--max-referrers`) items.

use reqwest::header::LINK;
use reqwest::{Method, Url};

use super::client::{Client, Req, read_bounded, short_url};
use super::pull::RegistrySource;
use super::{client_for, header_str};
use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::reference::ImageName;
use crate::transport::OpenOptions;

/// The `rel="next"` target of a `Link` header, resolved against the URL it came from.
pub(crate) fn next_link(header: &str, current: &Url) -> Option<Url> {
    for part in header.split(',') {
        let part = part.trim();
        let (target, params) = part.strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split(' ').any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return current.join(target.trim()).ok();
        }
    }
    None
}

/// One paged list of a registry: which answer field holds its items, what to call it in errors, how
/// to check each item, and its bounds.
struct PagedList<'a, T> {
    /// The field of each page's JSON object holding the items (`tags`, `repositories`, `manifests`).
    field: &'static str,
    /// The list, for errors (`the tag list of REPO`).
    what: String,
    /// Checks one item; the error says why it is refused.
    check: &'a dyn Fn(&T) -> Result<()>,
    /// The most items read, and the flag that raises it.
    max_items: (usize, &'static str),
    /// The largest page read, in bytes.
    max_page_size: u64,
}

/// Follows a paged list from `url` (`Link: <...>; rel="next"`), within `--max-tag-pages` pages and
/// the list's item limit: the one paging loop of tag lists, the catalog and referrers listings.
/// `Ok(None)` when the first page is a 404 (the thing listed, or the listing API, is missing).
fn follow_pages<T: serde::de::DeserializeOwned>(
    client: &Client,
    scope: &str,
    mut url: Url,
    limits: &Limits,
    list: &PagedList<'_, T>,
) -> Result<Option<Vec<T>>> {
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        if seen.len() >= limits.max_tag_pages {
            return Err(Error::LimitExceeded {
                what: format!("{} (pages)", list.what),
                limit: format!("{} pages", limits.max_tag_pages),
                option: "--max-tag-pages".into(),
            });
        }
        if !seen.insert(url.clone()) {
            return Err(
                client.registry_error(format!("{}: the Link header loops", list.what), None)
            );
        }
        let what = format!("GET {}", short_url(&url));
        let resp = client.send(&Req::new(Method::GET, url.clone(), scope), &what)?;
        if resp.status().as_u16() == 404 && seen.len() == 1 {
            return Ok(None);
        }
        let resp = client.expect(&what, resp, &[200])?;
        let next = header_str(resp.headers(), LINK.as_str()).and_then(|h| next_link(&h, &url));
        let body = read_bounded(
            client.body(resp, &list.what),
            list.max_page_size,
            &list.what,
        )?;
        let page: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid_document(list.what.clone(), e.to_string()))?;
        let page_items: Vec<T> = match page.get(list.field) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::invalid_document(list.what.clone(), format!("{}: {e}", list.field))
            })?,
        };
        for item in &page_items {
            (list.check)(item)
                .map_err(|e| Error::invalid_document(list.what.clone(), e.to_string()))?;
        }
        items.extend(page_items);
        let (max, option) = list.max_items;
        if items.len() > max {
            return Err(Error::LimitExceeded {
                what: format!("{} ({})", list.what, list.field),
                limit: format!("{max} {}", list.field),
                option: option.into(),
            });
        }
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    Ok(Some(items))
}

/// The error of a list whose first page was a 404.
fn missing(client: &Client, thing: String) -> Error {
    Error::NotFound {
        reference: thing,
        location: format!("registry {}", client.host()),
        hint: String::new(),
    }
}

/// `?n=N` on a list's path when a page size is asked for.
fn with_page_size(mut path: String, page_size: Option<usize>) -> String {
    if let Some(n) = page_size {
        path.push_str(&format!("?n={n}"));
    }
    path
}

impl RegistrySource {
    /// Every tag of the repository, page by page.
    pub(super) fn list_tags(&self) -> Result<Vec<String>> {
        let path = with_page_size(
            format!("v2/{}/tags/list", self.name.repository),
            self.page_size,
        );
        let check =
            |t: &String| crate::reference::check_tag(t, crate::reference::TagGrammar::Registry);
        follow_pages(
            &self.client,
            &self.scope(),
            self.client.url(&path)?,
            &self.limits,
            &PagedList {
                field: "tags",
                what: format!("the tag list of {}", self.name.name()),
                check: &check,
                max_items: (self.limits.max_tags, "--max-tags"),
                max_page_size: self.client.max_response_size(),
            },
        )?
        .ok_or_else(|| missing(&self.client, self.name.repository.clone()))
    }

    /// The referrers of `digest` in this repository: the referrers API's answer, page by page (with
    /// `artifactType` asked of the registry when there is one type to keep), or where the API answers
    /// 404, the tag-schema fallback index (none when that tag does not exist either). A 404 is
    /// remembered, so later listings go to the fallback index at once. Each page is a document:
    /// `--max-manifest-size` bounds it, and the fallback index is verified like any manifest.
    pub(super) fn list_referrers(
        &self,
        digest: &Digest,
        artifact_types: &[String],
    ) -> Result<Vec<Descriptor>> {
        use std::sync::atomic::Ordering;
        let what = format!("the referrers of {}@{digest}", self.name.name());
        if !self.no_referrers_api.load(Ordering::Relaxed) {
            let mut url = self
                .client
                .url(&format!("v2/{}/referrers/{digest}", self.name.repository))?;
            if let [one] = artifact_types {
                url.query_pairs_mut().append_pair("artifactType", one);
            }
            let listed = follow_pages(
                &self.client,
                &self.scope(),
                url,
                &self.limits,
                &PagedList {
                    field: "manifests",
                    what: what.clone(),
                    check: &|_: &Descriptor| Ok(()),
                    max_items: (self.limits.max_referrers, "--max-referrers"),
                    max_page_size: self.limits.max_document_size,
                },
            )?;
            match listed {
                Some(listed) => {
                    return crate::artifact::check_listing(
                        listed,
                        artifact_types,
                        &self.limits,
                        &what,
                    );
                }
                None => {
                    tracing::info!(
                        "{}: no referrers API (404); reading tag-schema fallback indexes",
                        self.client.host()
                    );
                    self.no_referrers_api.store(true, Ordering::Relaxed);
                }
            }
        }
        let tag = crate::artifact::fallback_tag(digest);
        let index = match self.get_manifest(&tag, None) {
            Ok(doc) => doc,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let what = format!("{what} (fallback index {}:{tag})", self.name.repository);
        let entries = crate::artifact::entries_of_listing(&index)
            .map_err(|e| Error::invalid_document(what.clone(), e.to_string()))?;
        crate::artifact::check_listing(entries, artifact_types, &self.limits, &what)
    }
}

/// The repositories of the registry `host` (`GET /v2/_catalog`), page by page (`n` at a time when
/// `page_size` is given), within the same `--max-tag-pages` and `--max-tags` limits as tag lists.
/// Each name must be a valid repository name.
pub fn catalog(host: &str, opts: &OpenOptions, page_size: Option<usize>) -> Result<Vec<String>> {
    // The registry as an image name without a repository: credentials are looked up for the host.
    let name = ImageName {
        domain: host.to_string(),
        repository: String::new(),
        tag: None,
        digest: None,
    };
    let client = client_for(&name, opts)?;
    let path = with_page_size("v2/_catalog".into(), page_size.map(|n| n.max(1)));
    let check = |r: &String| ImageName::parse(&format!("{host}/{r}")).map(|_| ());
    follow_pages(
        &client,
        "registry:catalog:*",
        client.url(&path)?,
        &opts.limits,
        &PagedList {
            field: "repositories",
            what: format!("the catalog of {host}"),
            check: &check,
            max_items: (opts.limits.max_tags, "--max-tags"),
            max_page_size: client.max_response_size(),
        },
    )?
    .ok_or_else(|| missing(&client, "the catalog (GET /v2/_catalog)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_is_resolved() {
        let cur = Url::parse("http://127.0.0.1:5000/v2/a/tags/list?n=2").unwrap();
        let next = next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#, &cur).unwrap();
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:5000/v2/a/tags/list?last=b&n=2"
        );
        let abs = next_link(
            r#"<https://x.example/v2/a/tags/list?last=c>; rel="prev", <https://x.example/v2/a/tags/list?last=d>; rel=next"#,
            &cur,
        )
        .unwrap();
        assert_eq!(abs.as_str(), "https://x.example/v2/a/tags/list?last=d");
        assert!(next_link(r#"</v2/a/tags/list?last=b>; rel="prev""#, &cur).is_none());
        assert!(next_link("garbage", &cur).is_none());
    }
}
