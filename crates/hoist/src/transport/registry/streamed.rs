//! Requests whose body is streamed: the async half of the registry client, used for upload chunks.
//!
//! reqwest's blocking client sends a body read from a `Read` in 8 KiB pieces, each handed across
//! threads, which costs more CPU than the upload itself saves. So a chunk goes through reqwest's
//! async client instead, on a one-thread tokio runtime of its own, and the caller's thread hands it
//! the body in pieces of any size through a bounded channel. The caller stays synchronous: it never
//! runs inside the runtime, and it bounds each hand-over and the wait for the answer by the client's
//! timeout, so a registry that stops reading fails the attempt instead of hanging it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::sync::{mpsc, oneshot};

/// Pieces of body waiting to go out, per request (the rest stays with the caller).
const QUEUED_PIECES: usize = 4;

/// What came back: the status, the headers and, for an answer outside 2xx, the body up to a limit.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers (`Location` for the next chunk).
    pub headers: HeaderMap,
    /// The body of an unsuccessful answer, at most `limit + 1` bytes (so that a cut is visible).
    pub body: Vec<u8>,
}

/// Why a streamed request failed.
#[derive(Debug)]
pub enum Failure {
    /// The connection failed, or the request could not be built.
    Http(reqwest::Error),
    /// Nothing moved for the whole timeout: a piece could not be handed over, or no answer came.
    Stalled,
    /// The caller's source failed; the request was abandoned.
    Source(std::io::Error),
}

/// A one-thread tokio runtime (stopped when dropped) and the async HTTP client that runs on it.
pub struct Streamer {
    http: reqwest::Client,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamer").finish_non_exhaustive()
    }
}

impl Streamer {
    /// The async client, to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Starts the runtime thread for `http`.
    pub fn start(http: reqwest::Client) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hoist-upload".into())
            .spawn(move || {
                // Drives the runtime's I/O and timers until the streamer is dropped.
                let _ = rt.block_on(stopped);
            })?;
        Ok(Streamer {
            http,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Sends `request` with a body of exactly `len` bytes taken from `next` (called with the number
    /// of bytes still owed; it returns a non-empty piece of at most that many). `timeout` bounds each
    /// hand-over of a piece and the wait for the answer after the last one; `limit` bounds the body
    /// read from an unsuccessful answer.
    pub fn send(
        &self,
        request: reqwest::RequestBuilder,
        len: u64,
        mut next: impl FnMut(u64) -> std::io::Result<Bytes>,
        timeout: Duration,
        limit: u64,
    ) -> Result<Answer, Failure> {
        let (tx, rx) = mpsc::channel(QUEUED_PIECES);
        let request = request
            .body(reqwest::Body::wrap(ChannelBody { rx, remaining: len }))
            .build()
            .map_err(Failure::Http)?;
        let (answer_tx, answer_rx) = std::sync::mpsc::sync_channel(1);
        let http = self.http.clone();
        self.handle.spawn(async move {
            let _ = answer_tx.send(exchange(http, request, limit).await);
        });
        let mut owed = len;
        while owed > 0 {
            let piece = match next(owed) {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => {
                    return Err(Failure::Source(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the blob ended {owed} bytes early"),
                    )));
                }
                Err(e) => return Err(Failure::Source(e)),
            };
            let n = (piece.len() as u64).min(owed);
            // The timer is made inside the runtime's context (block_on enters it).
            let handed = self
                .handle
                .block_on(async { tokio::time::timeout(timeout, tx.send(piece)).await });
            match handed {
                Ok(Ok(())) => owed -= n,
                // The request ended before its body did: its answer (or error) says why.
                Ok(Err(_)) => break,
                Err(_) => return Err(Failure::Stalled),
            }
        }
        drop(tx);
        match answer_rx.recv_timeout(timeout) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(Failure::Http(e)),
            Err(_) => Err(Failure::Stalled),
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `request` and reads the answer (its body only when unsuccessful, up to `limit + 1` bytes).
async fn exchange(
    http: reqwest::Client,
    request: reqwest::Request,
    limit: u64,
) -> Result<Answer, reqwest::Error> {
    let mut resp = http.execute(request).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    if !status.is_success() {
        let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
        while body.len() < cap {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(cap - body.len())]),
                // An error body that cannot be read is still an answer with a status.
                Ok(None) | Err(_) => break,
            }
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A request body fed through a channel, with its exact length declared up front (so it goes out
/// with `Content-Length`, not chunked transfer encoding).
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(mut piece)) => {
                if piece.len() as u64 > self.remaining {
                    piece.truncate(self.remaining as usize);
                }
                self.remaining -= piece.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            // The sender went away before the declared length: abort rather than send short.
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "upload body abandoned",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
