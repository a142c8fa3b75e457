//! A repository's tag list: `Link` pages followed on the registry's own terms, within
//! `--max-tag-pages` and `--max-tags`.

use reqwest::header::LINK;
use reqwest::{Method, Url};

use super::client::{Req, read_bounded, short_url};
use super::header_str;
use super::pull::RegistrySource;
use crate::error::{Error, Result};
use crate::transport::Source;

/// The `rel="next"` target of a `Link` header, resolved against the URL it came from.
pub fn next_link(header: &str, current: &Url) -> Option<Url> {
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

#[derive(serde::Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

impl RegistrySource {
    /// Every tag of the repository, page by page.
    pub(super) fn list_tags(&self) -> Result<Vec<String>> {
        let mut path = format!("v2/{}/tags/list", self.name.repository);
        if let Some(n) = self.page_size {
            path.push_str(&format!("?n={n}"));
        }
        let mut url = self.client.url(&path)?;
        let mut tags = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            if seen.len() >= self.limits.max_tag_pages {
                return Err(Error::LimitExceeded {
                    what: format!("the tag list of {} (pages)", self.name()),
                    limit: format!("{} pages", self.limits.max_tag_pages),
                    option: "--max-tag-pages".into(),
                });
            }
            if !seen.insert(url.clone()) {
                return Err(self
                    .client
                    .registry_error("the tag list's Link header loops".into(), None));
            }
            let what = format!("GET {}", short_url(&url));
            let resp = self
                .client
                .send(&Req::new(Method::GET, url.clone(), &self.scope()), &what)?;
            if resp.status().as_u16() == 404 {
                return Err(Error::NotFound {
                    reference: self.name.repository.clone(),
                    location: format!("registry {}", self.client.host()),
                    hint: String::new(),
                });
            }
            let resp = self.client.expect(&what, resp, &[200])?;
            let next = header_str(resp.headers(), LINK.as_str()).and_then(|h| next_link(&h, &url));
            let body = read_bounded(
                self.client.body(resp, "tag list"),
                self.client.max_response_size(),
                "tag list",
            )?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::invalid_document("tag list", e.to_string()))?;
            let page_tags = page.tags.unwrap_or_default();
            for t in &page_tags {
                crate::reference::check_tag(t, crate::reference::TagGrammar::Registry).map_err(
                    |e| {
                        Error::invalid_document(
                            format!("tag list of {}", self.name.name()),
                            e.to_string(),
                        )
                    },
                )?;
            }
            tags.extend(page_tags);
            if tags.len() > self.limits.max_tags {
                return Err(Error::LimitExceeded {
                    what: format!("the tag list of {} (tags)", self.name()),
                    limit: format!("{} tags", self.limits.max_tags),
                    option: "--max-tags".into(),
                });
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(tags)
    }
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
