//! The HTTP client of one registry: scheme discovery (`/v2/` ping, https first, plain http only when
//! TLS verification is off), authentication on every request, retries, and registry errors turned into
//! [`Error::Registry`] with bounded bodies.
//!
//! It is reqwest's blocking client (never used inside a tokio runtime), with an async one for upload
//! chunks whose body is streamed (`streamed.rs`). Credentials and tokens go only to the
//! registry's own origin (`auth::same_origin`): a request whose URL the registry handed back on
//! another origin (an upload `Location`, a tag list's `Link`) is sent without `Authorization`, and
//! reqwest drops the header when a redirect leads to another host, scheme or port, so blob downloads
//! that redirect to storage never carry the registry's credentials there.

use std::io::Read;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, Response};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Url};

use super::auth::{self, Challenge, TokenCache};
use super::retry::{Attempts, RetryPolicy, is_retryable_error, is_retryable_status};
use super::streamed::{Answer, Failure, Streamer};
use crate::error::{Error, Result};
use crate::limits::human_bytes;
use crate::transport::Credentials;

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Verify TLS certificates; when false, untrusted certificates and plain http are accepted.
    pub tls_verify: bool,
    /// How the user turns `tls_verify` off (`--tls-verify`, `--src-tls-verify`, ...), for messages.
    pub tls_verify_flag: String,
    /// The directory of extra CA certificates (`*.crt`, PEM) to trust and of the client certificate
    /// (`*.cert` + `*.key`); when none, the registry's certs.d directory (`tls.rs`).
    pub cert_dir: Option<std::path::PathBuf>,
    /// Credentials to authenticate with (none: anonymous).
    pub creds: Option<Credentials>,
    /// Retries on connection errors, 429 and 5xx.
    pub retry: RetryPolicy,
    /// Largest error or token body read.
    pub max_response_size: u64,
    /// How long to wait for a connection, for a response's headers (from the start of the request,
    /// its body included; for a streamed upload chunk, from its last byte), for each next read of a
    /// response body, and for a streamed chunk's each next piece to be taken, before the attempt
    /// fails as timed out (`--registry-timeout`); also the window over which a response body must
    /// average [`MIN_BODY_RATE`].
    pub timeout: Duration,
}

/// The default of [`ClientConfig::timeout`]: long enough for a 16 MiB blob sent in one `PUT` at
/// 60 KB/s, short enough that a stalled registry fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The answer of the `/v2/` ping: where the API is and how it wants to be authenticated.
#[derive(Debug, Clone)]
struct Endpoint {
    base: Url,
    challenge: Option<Challenge>,
}

struct Inner {
    http: Http,
    /// The async client for streamed uploads, started on first use.
    streamer: Mutex<Option<Arc<Streamer>>>,
    /// The TLS configuration ([`super::tls`]), for the async client too.
    tls: rustls::ClientConfig,
    host: String,
    config: ClientConfig,
    endpoint: Mutex<Option<Endpoint>>,
    tokens: TokenCache,
}

/// A client of one registry host; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

/// One request: what to send, and the token scope it needs (`repository:a/b:pull`, several separated
/// by spaces).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: Url,
    /// The scope(s) the request needs.
    pub scope: String,
    /// Extra headers.
    pub headers: HeaderMap,
    /// The body, when there is one (cheap to clone for retries).
    pub body: Option<Bytes>,
}

impl Req {
    /// A request without body or extra headers.
    pub(crate) fn new(method: Method, url: Url, scope: &str) -> Self {
        Req {
            method,
            url,
            scope: scope.to_string(),
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Adds a header (values hoist builds are always valid header text).
    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// Sets the body.
    pub(crate) fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

/// The settings the blocking and the async client share (their builders have the same methods).
/// TLS is [`super::tls`]'s configuration (trusted roots, client certificate, verification).
macro_rules! configure {
    ($builder:expr, $tls:expr, $timeout:expr) => {{
        $builder
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .connect_timeout($timeout.min(Duration::from_secs(30)))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(10))
            .tls_backend_preconfigured($tls.clone())
    }};
}

fn setup_error(host: &str, e: &reqwest::Error) -> Error {
    Error::Registry {
        registry: host.to_string(),
        message: format!("setting up the HTTP client: {}", describe(e)),
        status: None,
    }
}

/// Installs rustls's crypto provider once per process (needed before any reqwest client is built).
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The text of an error and its causes, for messages.
fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The least a response body must deliver, in bytes per second averaged over each
/// `--registry-timeout`, for the download to go on: a registry that drips a byte now and then
/// never trips the timeout of each read, and would hold a download forever.
pub const MIN_BODY_RATE: u64 = 1024;

/// Why [`Paced`] gave up: the body was too slow (inside an [`std::io::Error`] of kind `TimedOut`).
#[derive(Debug)]
pub struct TooSlow(String);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooSlow {}

/// A response body held to [`MIN_BODY_RATE`]: each `--registry-timeout` spent waiting on it must
/// bring at least that rate's bytes, or the read fails as timed out (the end of the body is never
/// refused). Only the time inside reads counts, so a reader that pauses (its destination is slow)
/// is not taken for a slow registry.
pub struct Paced<R> {
    inner: R,
    window: Duration,
    waited: Duration,
    bytes: u64,
    registry: String,
    what: String,
}

impl<R> Paced<R> {
    /// Holds `inner` to the minimum rate over windows of `window`; `what` names it in errors.
    pub fn new(inner: R, window: Duration, registry: &str, what: &str) -> Self {
        Paced {
            inner,
            window,
            waited: Duration::ZERO,
            bytes: 0,
            registry: registry.to_string(),
            what: what.to_string(),
        }
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let started = Instant::now();
        let n = self.inner.read(buf)?;
        self.waited += started.elapsed();
        self.bytes += n as u64;
        let elapsed = self.waited;
        if n > 0 && elapsed >= self.window {
            let need = (MIN_BODY_RATE as f64 * elapsed.as_secs_f64()) as u64;
            if self.bytes < need {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    TooSlow(format!(
                        "registry {}: {} arrived at {} bytes in {:.1?} of waiting, less than {} a \
                         second (--registry-timeout sets the window the rate is measured over)",
                        self.registry,
                        self.what,
                        self.bytes,
                        elapsed,
                        human_bytes(MIN_BODY_RATE)
                    )),
                ));
            }
            self.waited = Duration::ZERO;
            self.bytes = 0;
        }
        Ok(n)
    }
}

/// The text of a reqwest error and its causes, with the URL it names cut to origin and path: a
/// query may carry an upload's state or a storage redirect's signature, which are not for messages.
fn describe(err: &reqwest::Error) -> String {
    let text = chain(err);
    match err.url() {
        Some(url) if url.query().is_some() || !url.username().is_empty() => text.replace(
            url.as_str(),
            &format!("{}{}", short_origin(url), short_url(url)),
        ),
        _ => text,
    }
}

/// Reads at most `max` bytes of a response body; more is an error naming `--max-response-size`.
pub fn read_bounded(resp: impl Read, max: u64, what: &str) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    resp.take(max + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::io(format!("reading {what}"), e))?;
    if body.len() as u64 > max {
        return Err(Error::LimitExceeded {
            what: what.to_string(),
            limit: human_bytes(max),
            option: "--max-response-size".into(),
        });
    }
    Ok(body)
}

/// `scheme://host:port` of a URL, for messages (no path, query or user info).
fn short_origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The path of a URL without its query (upload URLs carry opaque state there), for messages.
pub(crate) fn short_url(url: &Url) -> String {
    url.path().to_string()
}

impl Client {
    /// A client for `host` (`registry.example:5000`).
    pub fn new(host: &str, config: ClientConfig) -> Result<Self> {
        install_crypto_provider();
        let tls = super::tls::TlsFiles::for_host(
            config.cert_dir.as_deref(),
            &super::tls::certs_d_bases(),
            host,
        )?
        .client_config(config.tls_verify)?;
        // The blocking client's timeout bounds each wait separately: for the answer to a request
        // (headers, after sending its body) and for each read of a body; it is not a whole-download
        // deadline, so large blobs are fine. reqwest's async read timeout must not be used here: its
        // timer needs a runtime the blocking reader does not run in.
        let timeout = config.timeout.max(Duration::from_millis(1));
        let http = configure!(Http::builder(), &tls, timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| setup_error(host, &e))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                streamer: Mutex::new(None),
                tls,
                host: host.to_string(),
                config,
                endpoint: Mutex::new(None),
                tokens: TokenCache::default(),
            }),
        })
    }

    /// The async client for streamed uploads, started on first use.
    fn streamer(&self) -> Result<Arc<Streamer>> {
        let mut slot = self
            .inner
            .streamer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let timeout = self.timeout();
        // Reads are bounded here by the async client itself (its timer runs on the streamer's
        // runtime); there is no whole-request deadline, which a large chunk would outlast.
        let http = configure!(reqwest::Client::builder(), &self.inner.tls, timeout)
            .read_timeout(timeout)
            .build()
            .map_err(|e| setup_error(&self.inner.host, &e))?;
        let streamer =
            Arc::new(Streamer::start(http).map_err(|e| {
                self.registry_error(format!("starting the upload runtime: {e}"), None)
            })?);
        *slot = Some(streamer.clone());
        Ok(streamer)
    }

    /// `resp`'s body, held to [`MIN_BODY_RATE`] over each `--registry-timeout`; `what` names it.
    pub(crate) fn body(&self, resp: Response, what: &str) -> Paced<Response> {
        Paced::new(resp, self.timeout(), &self.inner.host, what)
    }

    /// The registry host this client talks to.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        self.inner.config.retry
    }

    /// How long one wait for the registry may last (see [`ClientConfig::timeout`]).
    pub fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    /// The largest error or token body read.
    pub fn max_response_size(&self) -> u64 {
        self.inner.config.max_response_size
    }

    /// An [`Error::Registry`] about this client's registry.
    pub fn registry_error(&self, message: String, status: Option<u16>) -> Error {
        Error::Registry {
            registry: self.inner.host.clone(),
            message,
            status,
        }
    }

    fn transport_error(&self, what: &str, err: &reqwest::Error) -> Error {
        if self.inner.config.tls_verify && answered_plain_http(err) {
            return self.registry_error(
                format!(
                    "{what}: the registry answered plain HTTP: use {}=false",
                    self.inner.config.tls_verify_flag
                ),
                None,
            );
        }
        let mut message = format!("{what}: {}", describe(err));
        if err.is_timeout() {
            message.push_str(&format!(
                " (no answer within {:?}; --registry-timeout sets the wait)",
                self.inner.config.timeout
            ));
        }
        self.registry_error(message, None)
    }

    /// Pings `/v2/` once (https, then http when TLS verification is off) and remembers the answer.
    fn endpoint(&self) -> Result<Endpoint> {
        let mut slot = self
            .inner
            .endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let schemes: &[&str] = if self.inner.config.tls_verify {
            &["https"]
        } else {
            &["https", "http"]
        };
        let mut errors: Vec<String> = Vec::new();
        for (i, scheme) in schemes.iter().enumerate() {
            let base = Url::parse(&format!("{scheme}://{}/", self.inner.host))
                .map_err(|e| self.registry_error(format!("invalid registry address: {e}"), None))?;
            let ping = base
                .join("v2/")
                .map_err(|e| self.registry_error(format!("invalid registry address: {e}"), None))?;
            // Only the last scheme gets retries: a failed https try against a plain-http registry is
            // an answer, not an accident.
            let retries = if i + 1 == schemes.len() {
                self.inner.config.retry.times
            } else {
                0
            };
            let result = self.exchange(&Method::GET, &ping, retries, || {
                Ok(self.inner.http.get(ping.clone()))
            })?;
            match result {
                Ok(resp) => {
                    let challenge = if resp.status().as_u16() == 401 {
                        pick_challenge(resp.headers())
                    } else {
                        None
                    };
                    tracing::debug!(
                        "registry {} answers at {scheme} ({})",
                        self.inner.host,
                        resp.status()
                    );
                    let e = Endpoint { base, challenge };
                    *slot = Some(e.clone());
                    return Ok(e);
                }
                Err(e) => {
                    // Both tries are reported: a registry that is plain http fails the https try for
                    // an uninteresting reason, and the http try says what really went wrong.
                    if let Error::Registry { message, .. } =
                        self.transport_error(&format!("connecting ({scheme})"), &e)
                    {
                        errors.push(message);
                    }
                }
            }
        }
        let message = if errors.is_empty() {
            "cannot connect".to_string()
        } else {
            errors.join("; ")
        };
        Err(self.registry_error(message, None))
    }

    /// The URL of an API path (`v2/...`) on this registry.
    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        let base = self.endpoint()?.base;
        base.join(path)
            .map_err(|e| self.registry_error(format!("invalid URL path {path:?}: {e}"), None))
    }

    /// True when `url` is on the registry's own origin.
    fn is_own_origin(&self, url: &Url) -> Result<bool> {
        Ok(auth::same_origin(url, &self.endpoint()?.base))
    }

    fn set_challenge(&self, challenge: Option<Challenge>) {
        let mut slot = self
            .inner
            .endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = slot.as_mut() {
            e.challenge = challenge;
        }
    }

    /// After a 401 for `scope`: take the answer's challenge and drop the token, so that the next
    /// request authenticates afresh.
    fn refused(&self, headers: &HeaderMap, scope: &str) {
        if let Some(c) = pick_challenge(headers) {
            self.set_challenge(Some(c));
        }
        self.inner.tokens.forget(scope);
    }

    /// The `Authorization` for a request to `url` needing `scope`: none when `url` is not on the
    /// registry's own origin (see [`auth::same_origin`]).
    fn authorization(&self, url: &Url, scope: &str) -> Result<Option<String>> {
        let endpoint = self.endpoint()?;
        if !auth::same_origin(url, &endpoint.base) {
            tracing::debug!(
                "{} is not the registry's origin {}: sent without credentials",
                short_origin(url),
                short_origin(&endpoint.base)
            );
            return Ok(None);
        }
        match endpoint.challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.inner.config.creds.as_ref().map(auth::basic_header)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some(t) = self.inner.tokens.get(scope) {
                    return Ok(Some(t.header()));
                }
                let token = self.fetch_token(&endpoint.base, &realm, service.as_deref(), scope)?;
                let header = token.header();
                self.inner.tokens.put(scope, token);
                Ok(Some(header))
            }
        }
    }

    fn fetch_token(
        &self,
        base: &Url,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<auth::Token> {
        let mut url = Url::parse(realm).map_err(|e| {
            self.registry_error(format!("the token realm {realm:?} is not a URL: {e}"), None)
        })?;
        let policy = auth::realm_policy(&url, base, self.inner.config.tls_verify)
            .map_err(|m| self.registry_error(m, None))?;
        let creds = match (&self.inner.config.creds, policy) {
            (Some(c), auth::RealmPolicy::AnonymousOnly) => {
                return Err(self.registry_error(
                    format!(
                        "refusing to send the credentials of user {:?} to the token realm {}: it is \
                         neither the registry's own origin ({}) nor https with TLS verification",
                        c.username,
                        short_origin(&url),
                        short_origin(base)
                    ),
                    None,
                ));
            }
            (c, _) => c.as_ref(),
        };
        // The realm as given: where a refresh token is POSTed (its parameters go in the body).
        let realm_url = url.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        // An identity token (docker's `identitytoken`, a helper's `<token>` user) is an OAuth2
        // refresh token: POSTed to the realm as a form, as docker does, never sent as Basic.
        let refresh = creds
            .filter(|c| c.username == super::helper::IDENTITY_TOKEN_USER)
            .map(|c| {
                let mut form = Url::parse("http://form.invalid/").expect("a valid URL");
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token");
                    q.append_pair("refresh_token", &c.password);
                    q.append_pair("client_id", "hoist");
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
                    if !scopes.is_empty() {
                        q.append_pair("scope", &scopes.join(" "));
                    }
                }
                form.query().unwrap_or("").to_string()
            });
        let resp = self
            .exchange(
                if refresh.is_some() {
                    &Method::POST
                } else {
                    &Method::GET
                },
                &url,
                self.inner.config.retry.times,
                || {
                    if let Some(form) = &refresh {
                        return Ok(self
                            .inner
                            .http
                            .post(realm_url.clone())
                            .header(
                                reqwest::header::CONTENT_TYPE,
                                "application/x-www-form-urlencoded",
                            )
                            .body(form.clone()));
                    }
                    let mut rb = self.inner.http.get(url.clone());
                    if let Some(c) = creds {
                        rb = rb.header(AUTHORIZATION, auth::basic_header(c));
                    }
                    Ok(rb)
                },
            )?
            .map_err(|e| self.transport_error("getting a token", &e))?;
        let status = resp.status();
        if !status.is_success() {
            let who = match &self.inner.config.creds {
                Some(c) => format!("the credentials of user {:?} were refused", c.username),
                None => "anonymous access was refused; log in (hoist login) or pass --creds".into(),
            };
            return Err(self.registry_error(
                format!("getting a token for {scope}: {status}: {who}"),
                Some(status.as_u16()),
            ));
        }
        let what = format!("token response from {}", short_origin(&url));
        let body = read_bounded(
            self.body(resp, &what),
            self.inner.config.max_response_size,
            &what,
        )?;
        auth::parse_token(&body).ok_or_else(|| {
            self.registry_error(
                "the token service answered without a token".into(),
                Some(status.as_u16()),
            )
        })
    }

    /// Sends `req`, authenticating as the registry asks and retrying connection errors, 429 and 5xx.
    /// Any other answer is returned as is (the caller checks the status); `what` names the operation
    /// in errors.
    pub(crate) fn send(&self, req: &Req, what: &str) -> Result<Response> {
        self.send_with(req, what, self.inner.config.retry.times)
    }

    /// Like [`Client::send`] without retries (the caller resumes by itself).
    pub(crate) fn send_once(&self, req: &Req, what: &str) -> Result<Response> {
        self.send_with(req, what, 0)
    }

    fn send_with(&self, req: &Req, what: &str, retries: u32) -> Result<Response> {
        // A 401 from another origin says nothing about the registry's own challenge.
        let mut reauthenticated = !self.is_own_origin(&req.url)?;
        loop {
            let result = self.exchange(&req.method, &req.url, retries, || {
                let auth = self.authorization(&req.url, &req.scope)?;
                let mut rb = self
                    .inner
                    .http
                    .request(req.method.clone(), req.url.clone())
                    .headers(req.headers.clone());
                if let Some(a) = &auth {
                    rb = rb.header(AUTHORIZATION, a);
                }
                if let Some(b) = &req.body {
                    rb = rb.body(b.clone());
                }
                Ok(rb)
            })?;
            let resp = result.map_err(|e| self.transport_error(what, &e))?;
            if resp.status().as_u16() == 401 && !reauthenticated {
                // The token expired or lacks a scope, or the registry changed its mind about the
                // scheme: take the new challenge and try once more with fresh credentials.
                reauthenticated = true;
                self.refused(resp.headers(), &req.scope);
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends the request `build` makes, again (built afresh) after a connection error, 429 or 5xx,
    /// up to `retries` times with the policy's waits (or `Retry-After`): the one retry loop of every
    /// request. Each attempt and each retry is logged at info level (`-v`): method, URL (origin and
    /// path: no user info, no query, which may carry signatures), status or error, time taken.
    /// The last answer or transport error is returned; `Err` only when `build` fails.
    fn exchange(
        &self,
        method: &Method,
        url: &Url,
        retries: u32,
        mut build: impl FnMut() -> Result<reqwest::blocking::RequestBuilder>,
    ) -> Result<std::result::Result<Response, reqwest::Error>> {
        let mut attempts = Attempts::new(RetryPolicy {
            times: retries,
            ..self.inner.config.retry
        });
        let shown = format!("{}{}", short_origin(url), short_url(url));
        loop {
            let started = std::time::Instant::now();
            let result = build()?.send();
            let took = started.elapsed().as_millis();
            let retry_after = match &result {
                Ok(r) => {
                    tracing::info!("{method} {shown} -> {} ({took} ms)", r.status());
                    if !is_retryable_status(r.status().as_u16()) || attempts.is_exhausted() {
                        return Ok(result);
                    }
                    r.headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                }
                Err(e) => {
                    tracing::info!("{method} {shown} -> error: {} ({took} ms)", describe(e));
                    if !is_retryable_error(e) || attempts.is_exhausted() {
                        return Ok(result);
                    }
                    None
                }
            };
            attempts.again(format_args!("{method} {shown}"), retry_after);
        }
    }

    /// Sends `req` (its `body` ignored) once, with a body of exactly `len` bytes streamed from
    /// `next` (see [`Streamer::send`]), authenticated as [`Client::send`] would. The caller resumes
    /// after a failure; an error from `next` is returned as is (the request is abandoned).
    pub(crate) fn send_streamed(
        &self,
        req: &Req,
        what: &str,
        len: u64,
        next: impl FnMut(u64) -> std::io::Result<Bytes>,
    ) -> Result<Answer> {
        let streamer = self.streamer()?;
        let auth = self.authorization(&req.url, &req.scope)?;
        let mut rb = streamer
            .http()
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let Some(a) = &auth {
            rb = rb.header(AUTHORIZATION, a);
        }
        let limit = self.inner.config.max_response_size;
        let started = std::time::Instant::now();
        let sent = streamer.send(rb, len, next, self.timeout(), limit);
        let outcome = match &sent {
            Ok(a) => a.status.to_string(),
            Err(Failure::Http(e)) => format!("error: {}", describe(e)),
            Err(Failure::Stalled) => "stalled".into(),
            Err(Failure::Source(e)) => format!("abandoned: {e}"),
        };
        tracing::info!(
            "{} {}{} ({len} bytes streamed) -> {outcome} ({} ms)",
            req.method,
            short_origin(&req.url),
            short_url(&req.url),
            started.elapsed().as_millis()
        );
        match sent {
            Ok(answer) => {
                if answer.status == StatusCode::UNAUTHORIZED && self.is_own_origin(&req.url)? {
                    // A token that expired mid-upload: the next request fetches a new one.
                    self.refused(&answer.headers, &req.scope);
                }
                Ok(answer)
            }
            Err(Failure::Http(e)) => Err(self.transport_error(what, &e)),
            Err(Failure::Stalled) => Err(self.registry_error(
                format!(
                    "{what}: nothing moved within {:?}; --registry-timeout sets the wait",
                    self.inner.config.timeout
                ),
                None,
            )),
            Err(Failure::Source(e)) => {
                Err(crate::error::from_io(e, || format!("reading for {what}")))
            }
        }
    }

    /// The error for an unexpected answer: method, path, status and the registry's error codes (from a
    /// bounded body), with a hint for 401 and 403.
    pub(crate) fn error(&self, what: &str, resp: Response) -> Error {
        let status = resp.status();
        let max = self.inner.config.max_response_size;
        let mut body = Vec::new();
        let _ = self
            .body(resp, &format!("the error body of {what}"))
            .take(max.saturating_add(1))
            .read_to_end(&mut body);
        self.status_error(what, status, body)
    }

    /// [`Client::error`] for the answer to a streamed request.
    pub(crate) fn answer_error(&self, what: &str, answer: Answer) -> Error {
        self.status_error(what, answer.status, answer.body)
    }

    /// The error for `status` with the first `max + 1` bytes (or fewer) of the answer's body.
    fn status_error(&self, what: &str, status: StatusCode, mut body: Vec<u8>) -> Error {
        let max = self.inner.config.max_response_size;
        let mut message = format!("{what}: {status}");
        if body.len() as u64 > max {
            body.truncate(max as usize);
            message.push_str(&format!(
                " (the error body is larger than the limit of {} and was not read further; raise it \
                 with --max-response-size)",
                human_bytes(max)
            ));
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
            && let Some(errors) = v.get("errors").and_then(|e| e.as_array())
        {
            for e in errors.iter().take(5) {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                message.push_str(&format!("; {code}: {msg}"));
            }
        }
        match status.as_u16() {
            401 => match &self.inner.config.creds {
                Some(c) => message.push_str(&format!(
                    " (the credentials of user {:?} were refused)",
                    c.username
                )),
                None => message.push_str(
                    " (authentication required: pass --creds, use --authfile, or run hoist login)",
                ),
            },
            403 => message.push_str(" (the credentials lack permission for this repository)"),
            _ => {}
        }
        self.registry_error(message, Some(status.as_u16()))
    }

    /// Checks that the status is one of `ok`, or turns the response into an error.
    pub(crate) fn expect(&self, what: &str, resp: Response, ok: &[u16]) -> Result<Response> {
        if ok.contains(&resp.status().as_u16()) {
            Ok(resp)
        } else {
            Err(self.error(what, resp))
        }
    }

    /// Checks the credentials (or anonymous access) against `/v2/`, as `login` does.
    pub fn check_login(&self) -> Result<()> {
        let url = self.url("v2/")?;
        let resp = self.send(&Req::new(Method::GET, url, ""), "GET /v2/")?;
        self.expect("GET /v2/", resp, &[200]).map(|_| ())
    }
}

/// True when a TLS handshake failed because the other end spoke plain HTTP (its answer is not a TLS
/// record: rustls reports `InvalidContentType`).
fn answered_plain_http(err: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        ) {
            return true;
        }
        // An io::Error's source skips the error it wraps: look inside (io errors nest).
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    false
}

/// The challenge to follow: Bearer when offered, else Basic.
fn pick_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let mut all = Vec::new();
    for v in headers.get_all(WWW_AUTHENTICATE) {
        if let Ok(s) = v.to_str() {
            all.extend(auth::parse_challenges(s));
        }
    }
    all.iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or_else(|| all.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives one byte per read after `delay`, `len` bytes in all.
    struct Drip {
        delay: Duration,
        left: usize,
    }

    impl Read for Drip {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 || buf.is_empty() {
                return Ok(0);
            }
            std::thread::sleep(self.delay);
            buf[0] = b'x';
            self.left -= 1;
            Ok(1)
        }
    }

    #[test]
    fn a_dripping_body_fails_and_a_paused_reader_does_not() {
        let window = Duration::from_millis(200);
        let drip = Drip {
            delay: Duration::from_millis(20),
            left: 1000,
        };
        let mut paced = Paced::new(drip, window, "r.example", "blob x");
        let err = std::io::copy(&mut paced, &mut std::io::sink()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("blob x arrived at"), "{err}");

        // Fast reads with long pauses of the reader's own in between: not the registry's fault.
        let fast = Drip {
            delay: Duration::ZERO,
            left: 5,
        };
        let mut paced = Paced::new(fast, window, "r.example", "blob y");
        let mut b = [0u8; 1];
        for _ in 0..5 {
            assert_eq!(paced.read(&mut b).unwrap(), 1);
            std::thread::sleep(Duration::from_millis(60));
        }
        assert_eq!(paced.read(&mut b).unwrap(), 0);
    }
}
