//! A scriptable HTTP/1.1 server on 127.0.0.1 for registry behaviour docker-registry cannot be made to
//! show (Bearer token endpoints, lying headers, endless or dripping bodies, stalls, cross-host
//! redirects): each connection carries one request, which a test's handler answers; every request is
//! recorded with its headers. It also serves an image from an OCI layout as a registry would ([`serve_layout`]).
//!
//! TLS is not spoken: a TLS hello (hoist tries https first when TLS verification is off) is answered by
//! closing the connection, so the client falls back to plain http at once.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (without `?`), empty when none.
    pub query: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; up to [`BODY_KEPT`], the rest is read and dropped).
    pub body: Vec<u8>,
}

/// The most of a request body a [`Request`] keeps.
pub const BODY_KEPT: u64 = 64 << 20;

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer a request.
pub enum Reply {
    /// A complete answer: status, extra headers, body (`Content-Length` is added).
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// A status and headers, then body bytes without end (until the client hangs up or the server has
    /// sent [`ENDLESS_CAP`] bytes, which [`FakeServer::exhausted`] then reports).
    Endless(u16, Vec<(String, String)>),
    /// Never answer (the connection is held open until the server is dropped).
    Stall,
    /// Send the status line, headers with `Content-Length: len`, the first bytes of `body`, then stall.
    StallBody(u16, u64, Vec<u8>),
    /// A complete answer whose body is sent one byte at a time, `Duration` apart (until the client
    /// hangs up or the server is dropped).
    Drip(u16, Vec<(String, String)>, Vec<u8>, Duration),
    /// A 200 whose body's first `usize` bytes are sent at once and the rest one byte at a time,
    /// `Duration` apart (until the client hangs up or the server is dropped): a transfer that is
    /// visibly under way and never stalls a read for long.
    Trickle(Vec<u8>, usize, Duration),
}

impl Reply {
    /// A 200 with a body and a content type.
    pub fn ok(content_type: &str, body: Vec<u8>) -> Reply {
        Reply::Full(
            200,
            vec![("Content-Type".into(), content_type.into())],
            body,
        )
    }

    /// A status without body.
    pub fn status(status: u16) -> Reply {
        Reply::Full(status, Vec::new(), Vec::new())
    }
}

/// The most an [`Reply::Endless`] body sends: far beyond any limit hoist has, so reaching it means the
/// client never stopped reading.
pub const ENDLESS_CAP: u64 = 512 << 20;

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running fake server.
pub struct FakeServer {
    /// `127.0.0.1:PORT`.
    pub host: String,
    requests: Arc<Mutex<Vec<Request>>>,
    exhausted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// Binds a free loopback port: the listener and its `127.0.0.1:PORT`, so a handler can name its own
/// address (a token realm) before [`FakeServer::serve`] starts.
pub fn bind() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1");
    let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    (l, host)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Status",
    }
}

fn head_bytes(status: u16, headers: &[(String, String)], len: Option<u64>) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(l) = len {
        h.push_str(&format!("Content-Length: {l}\r\n"));
    }
    h.push_str("Connection: close\r\n\r\n");
    h.into_bytes()
}

/// Reads a request head; `None` for TLS, garbage or a closed connection.
fn read_request(s: &mut TcpStream) -> Option<Request> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 << 10 || s.read(&mut b).ok()? != 1 {
            return None;
        }
        if head.is_empty() && b[0] == 0x16 {
            return None; // a TLS handshake
        }
        head.push(b[0]);
    }
    let text = String::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Read the request body, if any, so that the handler can look at an upload.
    let mut body = Vec::new();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<u64>().ok())
    {
        let _ = s.take(len.min(BODY_KEPT)).read_to_end(&mut body);
        let _ = std::io::copy(
            &mut s.take(len.saturating_sub(BODY_KEPT)),
            &mut std::io::sink(),
        );
    }
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

impl FakeServer {
    /// Serves `listener` with `handler` until dropped.
    pub fn serve(
        listener: TcpListener,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let exhausted = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, ex, st) = (requests.clone(), exhausted.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut s) = conn else { continue };
                let (handler, reqs, ex, st) =
                    (handler.clone(), reqs.clone(), ex.clone(), st.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut s) else {
                        let _ = s.shutdown(Shutdown::Both);
                        return;
                    };
                    reqs.lock().unwrap().push(req.clone());
                    let head_only = req.method == "HEAD";
                    match handler(&req) {
                        Reply::Full(status, headers, body) => {
                            let mut out = head_bytes(status, &headers, Some(body.len() as u64));
                            if !head_only {
                                out.extend_from_slice(&body);
                            }
                            let _ = s.write_all(&out);
                        }
                        Reply::Endless(status, headers) => {
                            if s.write_all(&head_bytes(status, &headers, None)).is_err() {
                                return;
                            }
                            let chunk = vec![b'x'; 64 << 10];
                            let mut sent = 0u64;
                            while sent < ENDLESS_CAP {
                                if s.write_all(&chunk).is_err() {
                                    return;
                                }
                                sent += chunk.len() as u64;
                            }
                            ex.store(true, Ordering::SeqCst);
                        }
                        Reply::Stall => {
                            while !st.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                        Reply::Drip(status, headers, body, every) => {
                            let head = head_bytes(status, &headers, Some(body.len() as u64));
                            if s.write_all(&head).is_err() || head_only {
                                return;
                            }
                            for b in body {
                                if st.load(Ordering::Relaxed) || s.write_all(&[b]).is_err() {
                                    return;
                                }
                                std::thread::sleep(every);
                            }
                        }
                        Reply::Trickle(body, first, every) => {
                            let mut out = head_bytes(200, &[], Some(body.len() as u64));
                            if head_only {
                                let _ = s.write_all(&out);
                                return;
                            }
                            let first = first.min(body.len());
                            out.extend_from_slice(&body[..first]);
                            if s.write_all(&out).is_err() {
                                return;
                            }
                            for b in &body[first..] {
                                if st.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                                    return;
                                }
                                std::thread::sleep(every);
                            }
                        }
                        Reply::StallBody(status, len, first) => {
                            let mut out = head_bytes(status, &[], Some(len));
                            out.extend_from_slice(&first);
                            let _ = s.write_all(&out);
                            while !st.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    let _ = s.shutdown(Shutdown::Both);
                });
            }
        });
        FakeServer {
            host,
            requests,
            exhausted,
            stop,
        }
    }

    /// Binds a free port and serves `handler` there.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
        let (l, _) = bind();
        Self::serve(l, handler)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// True when an endless body reached [`ENDLESS_CAP`] (the client never stopped reading).
    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

/// An image in an OCI layout, served as repository `repo` would be by a registry.
#[derive(Clone)]
pub struct LayoutImage {
    /// The layout directory.
    pub layout: PathBuf,
    /// The repository name.
    pub repo: String,
    /// The tag.
    pub tag: String,
    /// The manifest digest (`sha256:...`).
    pub digest: String,
}

impl LayoutImage {
    fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        std::fs::read(self.layout.join("blobs/sha256").join(hex)).ok()
    }
}

/// Answers `/v2/`, the image's manifest (by tag or digest, with `Docker-Content-Digest`) and its blobs;
/// `None` for any other path, so a handler can add its own.
pub fn serve_layout(img: &LayoutImage, req: &Request) -> Option<Reply> {
    if req.path == "/v2/" {
        return Some(Reply::ok("application/json", b"{}".to_vec()));
    }
    let rest = req.path.strip_prefix(&format!("/v2/{}/", img.repo))?;
    if let Some(r) = rest.strip_prefix("manifests/") {
        if r != img.tag && r != img.digest {
            return Some(Reply::status(404));
        }
        let body = img.blob(&img.digest)?;
        return Some(Reply::Full(
            200,
            vec![
                (
                    "Content-Type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
                ("Docker-Content-Digest".into(), img.digest.clone()),
            ],
            body,
        ));
    }
    if let Some(d) = rest.strip_prefix("blobs/") {
        return Some(match img.blob(d) {
            Some(b) => Reply::ok("application/octet-stream", b),
            None => Reply::status(404),
        });
    }
    None
}

/// Writes a small image (two layers) into a new layout at `dir` and describes it as `repo:tag`.
pub fn small_image(dir: &Path, repo: &str, tag: &str) -> LayoutImage {
    let digest = super::synth::write_image(dir, tag, 2, 3000, 42);
    LayoutImage {
        layout: dir.to_path_buf(),
        repo: repo.to_string(),
        tag: tag.to_string(),
        digest: digest.to_string(),
    }
}
