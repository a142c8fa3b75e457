//! Registry authentication: `WWW-Authenticate` challenges, the Bearer token flow with one cached token
//! per scope (until it expires), and Basic credentials.
//!
//! This module parses, caches and decides where credentials may go; [`super::client`] sends the
//! requests. Tokens and passwords are never formatted into messages: [`Token`]'s `Debug` hides its value.
//!
//! # Where the user's credentials may go
//!
//! A Bearer challenge names a token endpoint (`realm`) that the registry chooses, so a hostile registry
//! could point it anywhere. skopeo and Docker send the user's Basic credentials to whatever realm is
//! named; hoist is stricter (`realm_policy`):
//!
//! - the realm must be an `http` or `https` URL (`file:`, `ftp:` and the rest are refused);
//! - the credentials go to the realm when it has the registry's own origin (scheme, host and port:
//!   where they go anyway with Basic auth), or when it is `https` with TLS verification on (the realm's
//!   identity is then checked, as Docker Hub's `auth.docker.io` is for `registry-1.docker.io`);
//! - otherwise (a plain-http realm on another host or port, or an unverified TLS one elsewhere) hoist
//!   refuses with an error naming the realm rather than send them; without credentials an anonymous
//!   token is asked for from any http(s) realm, since nothing secret is sent.
//!
//! Every other URL the registry hands back (an upload `Location`, a tag list's `Link`, a redirect) is
//! held to one rule, `same_origin`: the user's credentials, and the registry's Bearer tokens, go
//! only to the registry's own origin (scheme, host and port). Requests to another origin are sent
//! without `Authorization` ([`super::client`] checks each request's URL; reqwest drops the header on
//! a redirect to another host, scheme or port, which is the same rule).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::transport::Credentials;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`: send the user name and password with every request.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`: get a token from `realm`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry asked for, when it said.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header into its challenges (unknown schemes are left out).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut current: Option<(String, HashMap<String, String>)> = None;
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        // A token, then either `=` (a parameter) or a space/comma/end (a new scheme).
        let end = rest.find(['=', ' ', ',', '\t']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if let Some(value_part) = after.strip_prefix('=') {
            let value_part = value_part.trim_start();
            let (value, remaining) = if let Some(q) = value_part.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = q.char_indices();
                let mut close = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => {
                            close = i + 1;
                            break;
                        }
                        other => value.push(other),
                    }
                }
                (value, &q[close.min(q.len())..])
            } else {
                let e = value_part.find([',', ' ']).unwrap_or(value_part.len());
                (value_part[..e].to_string(), &value_part[e..])
            };
            if let Some((_, params)) = current.as_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else {
            if let Some(c) = current.take() {
                out.extend(build(c));
            }
            current = Some((token.to_ascii_lowercase(), HashMap::new()));
            rest = after;
        }
    }
    if let Some(c) = current.take() {
        out.extend(build(c));
    }
    out
}

fn build((scheme, mut params): (String, HashMap<String, String>)) -> Option<Challenge> {
    match scheme.as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

/// What may be sent to a token realm (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealmPolicy {
    /// The user's credentials may be sent.
    Credentials,
    /// Only an anonymous request may be sent.
    AnonymousOnly,
}

/// Decides whether the realm `realm` may receive the user's credentials, for a registry reached at
/// `registry` (its API base URL) with TLS verification `tls_verify`. A realm that is not an http(s) URL
/// is an error message.
pub(crate) fn realm_policy(
    realm: &reqwest::Url,
    registry: &reqwest::Url,
    tls_verify: bool,
) -> Result<RealmPolicy, String> {
    match realm.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "the token realm {realm} uses the scheme {other:?}; only http and https are followed"
            ));
        }
    }
    if realm.host_str().is_none() {
        return Err(format!("the token realm {realm} has no host"));
    }
    if same_origin(realm, registry) || (realm.scheme() == "https" && tls_verify) {
        Ok(RealmPolicy::Credentials)
    } else {
        Ok(RealmPolicy::AnonymousOnly)
    }
}

/// True when `url` has the origin (scheme, host and port) of `registry`: the only URLs, apart from a
/// verified https token realm, that may receive the user's credentials or the registry's tokens.
pub(crate) fn same_origin(url: &reqwest::Url, registry: &reqwest::Url) -> bool {
    url.scheme() == registry.scheme()
        && url.host_str() == registry.host_str()
        && url.port_or_known_default() == registry.port_or_known_default()
}

/// The scope string for a repository and actions: `repository:org/app:pull,push`.
pub fn repository_scope(repository: &str, push: bool) -> String {
    if push {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}

/// The `Authorization` value for Basic credentials.
pub fn basic_header(creds: &Credentials) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", creds.username, creds.password))
    )
}

/// A bearer token and when it stops being usable.
#[derive(Clone)]
pub struct Token {
    value: String,
    expires: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl Token {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        format!("Bearer {}", self.value)
    }
}

/// The JSON a token endpoint answers with.
#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Parses a token endpoint's answer. Tokens without `expires_in` last 60 seconds (the spec's default);
/// a token is dropped 10 seconds before it expires.
pub fn parse_token(body: &[u8]) -> Option<Token> {
    let r: TokenResponse = serde_json::from_slice(body).ok()?;
    let value = r.token.filter(|t| !t.is_empty()).or(r.access_token)?;
    if value.is_empty() {
        return None;
    }
    let life = r.expires_in.unwrap_or(60).clamp(10, 24 * 3600);
    Some(Token {
        value,
        expires: Instant::now() + Duration::from_secs(life - 5),
    })
}

/// Bearer tokens by scope, reused until they expire.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, Token>>,
}

impl TokenCache {
    /// A usable token for `scope`, if one is cached.
    pub fn get(&self, scope: &str) -> Option<Token> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.get(scope)
            .filter(|t| t.expires > Instant::now())
            .cloned()
    }

    /// Caches `token` for `scope`.
    pub fn put(&self, scope: &str, token: Token) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(scope.to_string(), token);
    }

    /// Forgets the token for `scope` (the registry refused it).
    pub fn forget(&self, scope: &str) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse_challenges(h),
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }]
        );
    }

    #[test]
    fn parses_basic_and_several_challenges_and_escapes() {
        assert_eq!(
            parse_challenges(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        let h = r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", bearer realm=https://t.example/token"#;
        assert_eq!(
            parse_challenges(h),
            vec![
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://t.example/token".into(),
                    service: None,
                    scope: None
                }
            ]
        );
        // Bearer without a realm cannot be followed, and garbage yields nothing.
        assert!(parse_challenges("Bearer service=x").is_empty());
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("=\"").is_empty());
    }

    #[test]
    fn tokens_are_parsed_cached_and_hidden() {
        let t = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.header(), "Bearer abc");
        assert!(!format!("{t:?}").contains("abc"));
        let t2 = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t2.header(), "Bearer xyz");
        assert!(parse_token(br#"{"token":""}"#).is_none());
        assert!(parse_token(b"not json").is_none());

        let cache = TokenCache::default();
        cache.put("repository:a:pull", t);
        assert!(cache.get("repository:a:pull").is_some());
        assert!(cache.get("repository:a:pull,push").is_none());
        cache.forget("repository:a:pull");
        assert!(cache.get("repository:a:pull").is_none());
    }

    #[test]
    fn credentials_go_only_to_the_registry_origin_or_verified_https() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let reg = u("http://127.0.0.1:5000/");
        let tls = u("https://registry-1.docker.io/");
        assert_eq!(
            realm_policy(&u("http://127.0.0.1:5000/token"), &reg, false),
            Ok(RealmPolicy::Credentials)
        );
        assert_eq!(
            realm_policy(&u("http://127.0.0.1:5001/token"), &reg, false),
            Ok(RealmPolicy::AnonymousOnly)
        );
        assert_eq!(
            realm_policy(&u("http://localhost:5000/token"), &reg, false),
            Ok(RealmPolicy::AnonymousOnly)
        );
        assert_eq!(
            realm_policy(&u("https://auth.docker.io/token"), &tls, true),
            Ok(RealmPolicy::Credentials)
        );
        assert_eq!(
            realm_policy(&u("https://auth.example/token"), &tls, false),
            Ok(RealmPolicy::AnonymousOnly)
        );
        assert_eq!(
            realm_policy(&u("http://registry-1.docker.io/token"), &tls, true),
            Ok(RealmPolicy::AnonymousOnly)
        );
        for bad in [
            "file:///etc/passwd",
            "ftp://127.0.0.1:5000/token",
            "data:,x",
        ] {
            let e = realm_policy(&u(bad), &reg, false).unwrap_err();
            assert!(e.contains("only http and https"), "{e}");
        }
    }

    #[test]
    fn basic_header_is_base64() {
        assert_eq!(
            basic_header(&Credentials::new("user", "pass")),
            "Basic dXNlcjpwYXNz"
        );
    }
}
