//! Registries that misbehave, end to end through `hoist copy docker://... oci:...` against a scripted
//! server on 127.0.0.1 (`common::fake_registry`): the Bearer token flow (one token per scope, reused),
//! token realms that must not receive credentials, blob redirects to another host (no `Authorization`
//! forwarded), endless error and token bodies (stopped at the limit), a lying `Docker-Content-Digest`,
//! and stalled servers (bounded by `--registry-timeout`). Each failure must exit non-zero with an
//! error naming the problem and leave no image in the destination layout. Pushes to a scripted
//! server: a streamed chunk never answered (bounded by the timeout, no manifest put), and a failed
//! chunk resumed at the offset the registry reports (which docker-registry itself never does).

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::fake_registry::{self, FakeServer, LayoutImage, Reply, Request, serve_layout};
use common::{hoist, run_ok};

const USER: &str = "user";
const PASSWORD: &str = "secret";
/// `Basic` + base64("user:secret").
const BASIC: &str = "Basic dXNlcjpzZWNyZXQ=";
const TOKEN: &str = "tok-3f9a";
const BEARER: &str = "Bearer tok-3f9a";

/// How the scripted registry wants to be authenticated.
#[derive(Clone)]
enum Auth {
    /// `Basic` with [`USER`]/[`PASSWORD`] on every request.
    Basic,
    /// `Bearer` with a token from `realm`.
    Bearer { realm: String },
}

fn challenge(auth: &Auth) -> Vec<(String, String)> {
    let value = match auth {
        Auth::Basic => r#"Basic realm="fake""#.to_string(),
        Auth::Bearer { realm } => {
            format!(r#"Bearer realm="{realm}",service="fake-registry",scope="repository:app:pull""#)
        }
    };
    vec![("WWW-Authenticate".into(), value)]
}

/// A token endpoint: checks `service` and `scope`, the Basic credentials when `require_creds`, and
/// answers [`TOKEN`].
fn token_reply(req: &Request, require_creds: bool) -> Reply {
    let query_ok = req.query.contains("service=fake-registry")
        && req.query.contains("scope=repository%3Aapp%3Apull");
    let creds_ok = !require_creds || req.header("authorization") == Some(BASIC);
    if !(query_ok && creds_ok) {
        return Reply::status(401);
    }
    Reply::ok(
        "application/json",
        format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#).into_bytes(),
    )
}

/// A registry serving `img` behind `auth`. `/token` on the same server is its token endpoint;
/// `redirect_blobs` sends blob downloads to another server (`http://HOST/storage/DIGEST`).
fn registry(
    listener: std::net::TcpListener,
    img: LayoutImage,
    auth: Auth,
    redirect_blobs: Option<String>,
) -> FakeServer {
    FakeServer::serve(listener, move |req| {
        if req.path == "/token" {
            return token_reply(req, true);
        }
        let authorised = match &auth {
            Auth::Basic => req.header("authorization") == Some(BASIC),
            Auth::Bearer { .. } => req.header("authorization") == Some(BEARER),
        };
        if !authorised {
            return Reply::Full(401, challenge(&auth), b"{}".to_vec());
        }
        if let Some(storage) = &redirect_blobs
            && let Some(d) = req.path.strip_prefix(&format!("/v2/{}/blobs/", img.repo))
        {
            return Reply::Full(
                307,
                vec![(
                    "Location".into(),
                    format!("http://{storage}/storage/{d}?signature=abc"),
                )],
                Vec::new(),
            );
        }
        serve_layout(&img, req).unwrap_or(Reply::status(404))
    })
}

/// `hoist copy` from `docker://HOST/app:v1` (plain http) into `oci:DEST:v1`, without retries.
fn pull(host: &str, dest: &Path, extra: &[&str]) -> Output {
    let src = format!("docker://{host}/app:v1");
    let dst = format!("oci:{}:v1", dest.display());
    let mut args = vec!["copy", "-q", "--src-tls-verify=false", "--retry-times", "0"];
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dst);
    hoist(&args).output().expect("running hoist")
}

/// A registry that takes uploads for `app` (any blob PUT succeeds, manifests are not found) and
/// answers each `PATCH` with `patch`.
fn upload_server(patch: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |req| match req.method.as_str() {
        "GET" if req.path == "/v2/" => Reply::status(200),
        "HEAD" => Reply::status(404),
        "POST" => Reply::Full(
            202,
            vec![("Location".into(), "/v2/app/blobs/uploads/u1".into())],
            Vec::new(),
        ),
        "PUT" if req.path.contains("/blobs/uploads/") => Reply::status(201),
        "PATCH" => patch(req),
        _ => Reply::status(404),
    })
}

/// `hoist copy -q` of the layout at `layout` (tag `v1`) to `docker://HOST/app:v1`, plain http.
fn push(host: &str, layout: &Path, extra: &[&str]) -> Output {
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("docker://{host}/app:v1");
    let mut args = vec!["copy", "-q", "--dest-tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dst);
    hoist(&args).output().expect("running hoist")
}

/// The command failed (exit 1) with an error containing every one of `needles`, and the destination
/// layout names no image.
fn assert_failed(out: &Output, dest: &Path, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected exit 1:\n{stderr}");
    eprintln!("expected failure:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "error lacks {n:?}:\n{stderr}");
    }
    let index = dest.join("index.json");
    if index.exists() {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
        assert!(
            v["manifests"].as_array().is_none_or(|m| m.is_empty()),
            "the destination names an image after a failed pull: {v}"
        );
    }
    stderr
}

/// The pull succeeded and the destination holds the very manifest, verified.
fn assert_pulled(out: &Output, dest: &Path, img: &LayoutImage) {
    assert!(
        out.status.success(),
        "pull failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{}:v1", dest.display()),
    ]));
    assert_eq!(
        hoist::Digest::sha256(raw.as_bytes()).to_string(),
        img.digest
    );
    run_ok(&mut hoist(&[
        "verify",
        &format!("oci:{}:v1", dest.display()),
    ]));
}

fn creds() -> String {
    format!("--src-creds={USER}:{PASSWORD}")
}

#[test]
fn bearer_token_is_fetched_once_per_scope_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    let (listener, host) = fake_registry::bind();
    let realm = format!("http://{host}/token");
    let reg = registry(listener, img.clone(), Auth::Bearer { realm }, None);
    let dest = dir.path().join("dest");

    let out = pull(&reg.host, &dest, &[&creds(), "--jobs", "4"]);
    assert_pulled(&out, &dest, &img);

    let reqs = reg.requests();
    let tokens: Vec<&Request> = reqs.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(tokens.len(), 1, "one token for the one scope: {reqs:#?}");
    assert_eq!(tokens[0].header("authorization"), Some(BASIC));
    let api: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.path.starts_with("/v2/app/"))
        .collect();
    // The manifest, the config and two layers, each asked for once, each with the token.
    assert_eq!(api.len(), 4, "{api:#?}");
    for r in &api {
        assert_eq!(r.header("authorization"), Some(BEARER), "{r:?}");
    }
    assert!(
        reqs.iter()
            .filter(|r| r.path != "/token")
            .all(|r| r.header("authorization") != Some(BASIC)),
        "the password went to the registry API instead of only the token endpoint"
    );

    // Wrong credentials: the token endpoint refuses and the error says whose.
    let dest2 = dir.path().join("dest2");
    let out = pull(&reg.host, &dest2, &["--src-creds=user:wrong"]);
    assert_failed(
        &out,
        &dest2,
        &["getting a token", "401", "credentials of user \"user\""],
    );
}

#[test]
fn token_realm_with_another_scheme_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    for realm in ["file:///etc/passwd", "ftp://127.0.0.1:2121/token"] {
        let (listener, _) = fake_registry::bind();
        let reg = registry(
            listener,
            img.clone(),
            Auth::Bearer {
                realm: realm.into(),
            },
            None,
        );
        for with_creds in [true, false] {
            let dest = dir
                .path()
                .join(format!("dest-{}", realm.len() + with_creds as usize));
            let c = creds();
            let extra: &[&str] = if with_creds { &[&c] } else { &[] };
            let out = pull(&reg.host, &dest, extra);
            assert_failed(
                &out,
                &dest,
                &["token realm", realm, "only http and https are followed"],
            );
        }
    }
}

#[test]
fn credentials_never_go_to_a_plain_http_realm_on_another_port() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    // The token service on another port answers anonymous requests too.
    let tokens = FakeServer::start(|req| {
        if req.path == "/token" {
            token_reply(req, false)
        } else {
            Reply::status(404)
        }
    });
    let (listener, _) = fake_registry::bind();
    let realm = format!("http://{}/token", tokens.host);
    let reg = registry(listener, img.clone(), Auth::Bearer { realm }, None);

    // With credentials: refused before anything is sent to the realm.
    let dest = dir.path().join("dest");
    let out = pull(&reg.host, &dest, &[&creds()]);
    let err = assert_failed(
        &out,
        &dest,
        &[
            "refusing to send the credentials of user \"user\"",
            &format!("http://{}", tokens.host),
        ],
    );
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(tokens.requests().is_empty(), "{:#?}", tokens.requests());

    // Anonymous: nothing secret to protect, so the token is fetched there and the pull works.
    let dest = dir.path().join("anon");
    let out = pull(&reg.host, &dest, &[]);
    assert_pulled(&out, &dest, &img);
    let reqs = tokens.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].header("authorization"), None);
}

#[test]
fn blob_redirect_to_another_host_carries_no_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    let storage_img = img.clone();
    let storage = FakeServer::start(move |req| {
        match req.path.strip_prefix("/storage/").and_then(|d| {
            std::fs::read(
                storage_img
                    .layout
                    .join("blobs/sha256")
                    .join(d.strip_prefix("sha256:")?),
            )
            .ok()
        }) {
            Some(b) => Reply::ok("application/octet-stream", b),
            None => Reply::status(404),
        }
    });
    let (listener, host) = fake_registry::bind();
    let bearer = Auth::Bearer {
        realm: format!("http://{host}/token"),
    };
    let reg_bearer = registry(listener, img.clone(), bearer, Some(storage.host.clone()));
    let (listener, _) = fake_registry::bind();
    let reg_basic = registry(
        listener,
        img.clone(),
        Auth::Basic,
        Some(storage.host.clone()),
    );

    for (i, reg) in [reg_bearer, reg_basic].iter().enumerate() {
        let before = storage.requests().len();
        let dest = dir.path().join(format!("dest{i}"));
        let out = pull(&reg.host, &dest, &[&creds()]);
        assert_pulled(&out, &dest, &img);
        let redirected = &storage.requests()[before..];
        assert_eq!(redirected.len(), 3, "config and layers: {redirected:#?}");
        for r in redirected {
            assert_eq!(
                r.header("authorization"),
                None,
                "credentials were forwarded to another host: {r:?}"
            );
        }
    }
}

#[test]
fn endless_token_and_error_bodies_stop_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // A token endpoint that never stops talking.
    let (listener, host) = fake_registry::bind();
    let realm = format!("http://{host}/token");
    let auth = Auth::Bearer { realm };
    let reg = FakeServer::serve(listener, move |req| {
        if req.path == "/token" {
            return Reply::Endless(
                200,
                vec![("Content-Type".into(), "application/json".into())],
            );
        }
        Reply::Full(401, challenge(&auth), Vec::new())
    });
    let dest = dir.path().join("dest1");
    let out = pull(&reg.host, &dest, &[]);
    assert_failed(
        &out,
        &dest,
        &[
            &format!("token response from http://{host} exceeds the limit of 1 MiB"),
            "--max-response-size",
        ],
    );
    assert!(
        !reg.exhausted(),
        "the client read the endless body on and on"
    );

    // The limit is the flag's: a 10 KiB token answer against --max-response-size 4K.
    let (listener, host) = fake_registry::bind();
    let auth = Auth::Bearer {
        realm: format!("http://{host}/token"),
    };
    let padded = FakeServer::serve(listener, move |req| {
        if req.path == "/token" {
            let pad = "x".repeat(10 << 10);
            let body = format!(r#"{{"token":"{TOKEN}","pad":"{pad}"}}"#);
            return Reply::ok("application/json", body.into_bytes());
        }
        Reply::Full(401, challenge(&auth), Vec::new())
    });
    let dest = dir.path().join("dest2");
    let out = pull(&padded.host, &dest, &["--max-response-size", "4K"]);
    assert_failed(&out, &dest, &["exceeds the limit of 4 KiB"]);

    // An error answer (403) whose body never ends.
    let reg = FakeServer::start(|req| {
        if req.path == "/v2/" {
            return Reply::ok("application/json", b"{}".to_vec());
        }
        Reply::Endless(
            403,
            vec![("Content-Type".into(), "application/json".into())],
        )
    });
    let dest = dir.path().join("dest3");
    let out = pull(&reg.host, &dest, &[]);
    assert_failed(
        &out,
        &dest,
        &[
            "403 Forbidden",
            "the error body is larger than the limit of 1 MiB",
        ],
    );
    assert!(
        !reg.exhausted(),
        "the client read the endless body on and on"
    );

    // The same answer to a streamed upload chunk (the async client reads that body).
    let layout = dir.path().join("big");
    common::synth::write_image(&layout, "v1", 1, 17 << 20, 6);
    let reg = upload_server(|_| {
        Reply::Endless(
            403,
            vec![("Content-Type".into(), "application/json".into())],
        )
    });
    let out = push(&reg.host, &layout, &["--max-response-size", "4K"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "PATCH",
        "403 Forbidden",
        "the error body is larger than the limit of 4 KiB",
    ] {
        assert!(stderr.contains(needle), "error lacks {needle:?}:\n{stderr}");
    }
    assert!(
        !reg.exhausted(),
        "the client read the endless body on and on"
    );
}

#[test]
fn docker_content_digest_disagreeing_with_the_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    let claimed = hoist::Digest::sha256(b"some other manifest").to_string();
    let (c, i) = (claimed.clone(), img.clone());
    let reg = FakeServer::start(move |req| {
        if req.path.contains("/manifests/") {
            let body = std::fs::read(
                i.layout
                    .join("blobs/sha256")
                    .join(i.digest.trim_start_matches("sha256:")),
            )
            .unwrap();
            return Reply::Full(
                200,
                vec![
                    (
                        "Content-Type".into(),
                        "application/vnd.oci.image.manifest.v1+json".into(),
                    ),
                    ("Docker-Content-Digest".into(), c.clone()),
                ],
                body,
            );
        }
        serve_layout(&i, req).unwrap_or(Reply::status(404))
    });
    let dest = dir.path().join("dest");
    let out = pull(&reg.host, &dest, &[]);
    assert_failed(
        &out,
        &dest,
        &["Docker-Content-Digest", &claimed, &img.digest],
    );
}

#[test]
fn stalled_registry_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");

    // Accepts connections and never answers.
    let silent = FakeServer::start(|_| Reply::Stall);
    let dest = dir.path().join("dest1");
    let out = pull(&silent.host, &dest, &["--registry-timeout", "1"]);
    assert_failed(&out, &dest, &["timed out", "--registry-timeout"]);

    // Answers, then stops in the middle of a blob.
    let calls = Arc::new(AtomicUsize::new(0));
    let (i, n) = (img.clone(), calls.clone());
    let stalling = FakeServer::start(move |req| {
        if req.path.contains("/blobs/") {
            n.fetch_add(1, Ordering::SeqCst);
            return Reply::StallBody(200, 3000, vec![0u8; 100]);
        }
        serve_layout(&i, req).unwrap_or(Reply::status(404))
    });
    let dest = dir.path().join("dest2");
    let out = pull(&stalling.host, &dest, &["--registry-timeout", "1"]);
    assert_failed(
        &out,
        &dest,
        &[
            "sent no bytes of blob",
            "for 1s at byte 100",
            "--registry-timeout",
        ],
    );
    assert!(calls.load(Ordering::SeqCst) >= 1);
}

#[test]
fn a_registry_that_never_answers_a_streamed_chunk_fails_the_push_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img");
    // Larger than one PUT (16 MiB): the layer goes up as a streamed PATCH.
    common::synth::write_image(&layout, "v1", 1, 17 << 20, 5);
    let patches = Arc::new(AtomicUsize::new(0));
    let n = patches.clone();
    let server = upload_server(move |_| {
        n.fetch_add(1, Ordering::SeqCst);
        Reply::Stall
    });
    let out = push(
        &server.host,
        &layout,
        &["--retry-times", "0", "--registry-timeout", "1"],
    );
    // The server holds the connection until dropped: only the timeout ends the wait.
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("expected failure:\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PATCH") && stderr.contains("--registry-timeout"),
        "{stderr}"
    );
    assert_eq!(patches.load(Ordering::SeqCst), 1);
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/manifests/")),
        "no manifest is put after a failed blob"
    );
}

/// The value of `name` in a query string, with `%3A` (the `:` of a digest) decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .map(|v| v.replace("%3A", ":").replace("%3a", ":"))
}

#[test]
fn a_failed_chunk_resumes_at_the_offset_the_registry_reports() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img");
    common::synth::write_image(&layout, "v1", 1, 20 << 20, 9);
    // A registry that, like the spec allows, keeps part of a failed chunk and says how much: the
    // first PATCH fails after its first 5 MiB were stored, and the status query reports that.
    const KEPT: usize = 5 << 20;
    let sessions: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Default::default();
    let ranges: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let (ss, rs) = (sessions.clone(), ranges.clone());
    let server = FakeServer::start(move |req| {
        let mut sessions = ss.lock().unwrap();
        let session = req
            .path
            .strip_prefix("/v2/app/blobs/uploads/u")
            .and_then(|n| n.parse::<usize>().ok());
        let at = |n: usize| {
            vec![(
                "Location".to_string(),
                format!("/v2/app/blobs/uploads/u{n}"),
            )]
        };
        match (req.method.as_str(), session) {
            ("GET", None) if req.path == "/v2/" => Reply::status(200),
            ("HEAD", _) => Reply::status(404),
            ("POST", None) => {
                sessions.push(Vec::new());
                Reply::Full(202, at(sessions.len() - 1), Vec::new())
            }
            ("PATCH", Some(n)) if n < sessions.len() => {
                let range = req.header("content-range").unwrap_or("").to_string();
                let start: usize = range.split('-').next().unwrap().parse().unwrap();
                rs.lock().unwrap().push(range);
                let data = &mut sessions[n];
                if start != data.len() {
                    return Reply::status(416);
                }
                data.extend_from_slice(&req.body);
                if rs.lock().unwrap().len() == 1 {
                    data.truncate(KEPT);
                    return Reply::status(500);
                }
                Reply::Full(202, at(n), Vec::new())
            }
            ("GET", Some(n)) if n < sessions.len() => {
                let mut headers = at(n);
                let len = sessions[n].len();
                headers.push(("Range".into(), format!("0-{}", len.max(1) - 1)));
                Reply::Full(204, headers, Vec::new())
            }
            ("PUT", Some(n)) if n < sessions.len() => {
                sessions[n].extend_from_slice(&req.body);
                let want = query_value(&req.query, "digest").unwrap_or_default();
                if hoist::Digest::sha256(&sessions[n]).to_string() == want {
                    Reply::status(201)
                } else {
                    Reply::status(400)
                }
            }
            ("PUT", None) if req.path.starts_with("/v2/app/manifests/") => Reply::status(201),
            _ => Reply::status(404),
        }
    });
    let out = push(
        &server.host,
        &layout,
        &["--retry-times", "2", "--jobs", "1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The chunk was sent again from the reported offset, in the same session, and the blob the
    // registry assembled has the right digest (else its PUT would have failed).
    let end = (20 << 20) - 1;
    assert_eq!(
        *ranges.lock().unwrap(),
        vec![format!("0-{end}"), format!("{KEPT}-{end}")]
    );
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 2, "config and layer, each in one session");
}

/// A server that records what reaches it and answers as a registry's other host would: `PUT`s of
/// uploads are taken (201), a tag list page is served without a `Link`.
fn other_host() -> FakeServer {
    FakeServer::start(|req| match req.method.as_str() {
        "PUT" | "PATCH" => Reply::status(201),
        "GET" if req.path.ends_with("/tags/list") => Reply::ok(
            "application/json",
            br#"{"name":"app","tags":["c","d"]}"#.to_vec(),
        ),
        _ => Reply::status(404),
    })
}

/// No request that reached `server` carried an `Authorization` header; at least one reached it.
fn assert_no_credentials(server: &FakeServer) {
    let reqs = server.requests();
    assert!(!reqs.is_empty(), "nothing reached the other host");
    for r in reqs {
        assert_eq!(
            r.header("authorization"),
            None,
            "the registry's credentials went to another host: {r:?}"
        );
    }
}

#[test]
fn an_upload_location_on_another_host_gets_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img");
    common::synth::write_image(&layout, "v1", 1, 3000, 3);
    let other = other_host();
    let upload = format!("http://{}/v2/app/blobs/uploads/u1", other.host);
    let registry = FakeServer::start(move |req| {
        if req.header("authorization") != Some(BASIC) {
            return Reply::Full(401, challenge(&Auth::Basic), b"{}".to_vec());
        }
        match req.method.as_str() {
            "GET" if req.path == "/v2/" => Reply::status(200),
            "HEAD" => Reply::status(404),
            "POST" => Reply::Full(202, vec![("Location".into(), upload.clone())], Vec::new()),
            "PUT" if req.path.contains("/manifests/") => Reply::status(201),
            _ => Reply::status(404),
        }
    });
    let out = push(
        &registry.host,
        &layout,
        &[&format!("--dest-creds={USER}:{PASSWORD}")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_credentials(&other);
    // The registry itself still got them (the manifest went up there).
    assert!(registry.requests().iter().any(|r| r.method == "PUT"
        && r.path.contains("/manifests/")
        && r.header("authorization") == Some(BASIC)));
}

#[test]
fn a_tag_list_link_to_another_host_gets_no_credentials() {
    let other = other_host();
    let next = format!(
        "<http://{}/v2/app/tags/list?last=b>; rel=\"next\"",
        other.host
    );
    let registry = FakeServer::start(move |req| {
        if req.header("authorization") != Some(BASIC) {
            return Reply::Full(401, challenge(&Auth::Basic), b"{}".to_vec());
        }
        match req.path.as_str() {
            "/v2/" => Reply::status(200),
            "/v2/app/tags/list" => Reply::Full(
                200,
                vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("Link".into(), next.clone()),
                ],
                br#"{"name":"app","tags":["a","b"]}"#.to_vec(),
            ),
            _ => Reply::status(404),
        }
    });
    let out = hoist(&[
        "list-tags",
        "--tls-verify=false",
        &format!("--creds={USER}:{PASSWORD}"),
        &format!("docker://{}/app", registry.host),
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"d\""), "{stdout}");
    assert_no_credentials(&other);
}

/// A registry whose tag list of `app` never ends: page N holds ten new tags and links to page N+1.
fn endless_tag_list() -> FakeServer {
    FakeServer::start(|req| {
        if req.path == "/v2/" {
            return Reply::status(200);
        }
        if req.path != "/v2/app/tags/list" {
            return Reply::status(404);
        }
        let page: u64 = query_value(&req.query, "last")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tags: Vec<String> = (0..10).map(|i| format!("\"t{}\"", page * 10 + i)).collect();
        Reply::Full(
            200,
            vec![
                ("Content-Type".into(), "application/json".into()),
                (
                    "Link".into(),
                    format!("</v2/app/tags/list?last={}>; rel=\"next\"", page + 1),
                ),
            ],
            format!(r#"{{"name":"app","tags":[{}]}}"#, tags.join(",")).into_bytes(),
        )
    })
}

#[test]
fn an_endless_tag_list_stops_at_the_page_and_tag_caps() {
    let server = endless_tag_list();
    let repo = format!("docker://{}/app", server.host);
    let list = |extra: &[&str]| {
        let mut args = vec!["list-tags", "--tls-verify=false", "--retry-times", "0"];
        args.extend_from_slice(extra);
        args.push(&repo);
        hoist(&args).output().unwrap()
    };
    // The page cap: 30 pages, 300 tags (under the tag cap).
    let out = list(&["--max-tag-pages", "30"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--max-tag-pages") && stderr.contains("30 pages"),
        "{stderr}"
    );
    let pages = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/tags/list"))
        .count();
    assert_eq!(pages, 30);
    // The tag cap stops it first when lower.
    let out = list(&["--max-tags", "55"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--max-tags") && stderr.contains("55 tags"),
        "{stderr}"
    );
    // Without a flag, the default page cap ends it (10000 pages on loopback: a few seconds).
    let out = list(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--max-tag-pages"), "{stderr}");
}

#[test]
fn sync_of_an_endless_tag_list_stops_at_the_page_cap() {
    let server = endless_tag_list();
    let dir = tempfile::tempdir().unwrap();
    let out = hoist(&[
        "sync",
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        "--retry-times",
        "0",
        "--max-tag-pages",
        "20",
        &format!("{}/app", server.host),
        &dir.path().join("mirror").display().to_string(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--max-tag-pages"), "{stderr}");
}

#[test]
fn a_body_dripping_bytes_fails_the_attempt_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    // A byte every 50 ms: each read answers well within the timeout, but the 3000-byte blob (or the
    // manifest) would take minutes.
    for (i, part) in ["/blobs/", "/manifests/"].into_iter().enumerate() {
        let img2 = img.clone();
        let server = FakeServer::start(move |req| match serve_layout(&img2, req) {
            Some(Reply::Full(status, headers, body)) if req.path.contains(part) => {
                Reply::Drip(status, headers, body, std::time::Duration::from_millis(50))
            }
            Some(r) => r,
            None => Reply::status(404),
        });
        let dest = dir.path().join(format!("dest{i}"));
        let started = std::time::Instant::now();
        let out = pull(&server.host, &dest, &["--registry-timeout", "1"]);
        assert_failed(
            &out,
            &dest,
            &["less than 1 KiB a second", "--registry-timeout"],
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{part}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn verbose_logs_each_request_and_retry_without_secrets_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    let img = fake_registry::small_image(&dir.path().join("img"), "app", "v1");
    let blobs = img.layout.join("blobs/sha256");
    let storage = FakeServer::start(move |req| {
        let hex = req.path.strip_prefix("/storage/sha256:").unwrap_or("");
        match std::fs::read(blobs.join(hex)) {
            Ok(b) if !hex.is_empty() => Reply::ok("application/octet-stream", b),
            _ => Reply::status(404),
        }
    });
    // Basic auth; the first manifest answer is 503 (a retry); blobs redirect to a signed URL.
    let failed_once = Arc::new(AtomicUsize::new(0));
    let (f, img2, storage_host) = (failed_once.clone(), img.clone(), storage.host.clone());
    let flaky = FakeServer::start(move |req| {
        if req.header("authorization") != Some(BASIC) {
            return Reply::Full(401, challenge(&Auth::Basic), b"{}".to_vec());
        }
        if req.path.contains("/manifests/") && f.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::status(503);
        }
        if let Some(d) = req.path.strip_prefix("/v2/app/blobs/") {
            return Reply::Full(
                307,
                vec![(
                    "Location".into(),
                    format!("http://{storage_host}/storage/{d}?signature=s3cr3tsig"),
                )],
                Vec::new(),
            );
        }
        serve_layout(&img2, req).unwrap_or(Reply::status(404))
    });
    let dest = dir.path().join("dest");
    let src = format!("docker://{}/app:v1", flaky.host);
    let dst = format!("oci:{}:v1", dest.display());
    let out = hoist(&[
        "-v",
        "copy",
        "-q",
        "--src-tls-verify=false",
        &creds(),
        &src,
        &dst,
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let manifest = format!("GET http://{}/v2/app/manifests/v1", flaky.host);
    for needle in [
        format!("{manifest} -> 503"),
        format!("retrying {manifest} in"),
        format!("{manifest} -> 200 OK"),
        format!("GET http://{}/v2/ -> 401", flaky.host),
    ] {
        assert!(stderr.contains(&needle), "no {needle:?} in:\n{stderr}");
    }
    assert!(stderr.contains(" ms)"), "{stderr}");
    for secret in [PASSWORD, BASIC, "dXNlcjpzZWNyZXQ", "s3cr3tsig", "\x1b["] {
        assert!(!stderr.contains(secret), "{secret:?} in:\n{stderr}");
    }
}

/// A server that answers anything, a TLS hello included, with a plain HTTP 400, as Go's and most
/// HTTP servers do.
fn plain_http_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    host
}

#[test]
fn a_plain_http_registry_reached_over_https_names_the_flag() {
    let host = plain_http_server();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img");
    common::synth::write_image(&layout, "v1", 1, 3000, 3);
    let image = format!("docker://{host}/app:v1");
    let local = format!("oci:{}:v1", layout.display());
    let dest = format!("oci:{}:v1", dir.path().join("d").display());
    for (args, flag) in [
        (
            vec!["inspect", "--retry-times", "0", &image],
            "--tls-verify=false",
        ),
        (
            vec!["copy", "--retry-times", "0", &image, &dest],
            "--src-tls-verify=false",
        ),
        (
            vec!["copy", "--retry-times", "0", &local, &image],
            "--dest-tls-verify=false",
        ),
    ] {
        let out = hoist(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains(&format!("the registry answered plain HTTP: use {flag}")),
            "{args:?}:\n{stderr}"
        );
        assert!(!stderr.contains("InvalidContentType"), "{stderr}");
    }
}

#[test]
fn a_failed_request_does_not_echo_the_query_of_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img");
    common::synth::write_image(&layout, "v1", 1, 3000, 3);
    // An upload Location, carrying state in its query, on a port nothing listens on.
    let closed = {
        let (l, host) = fake_registry::bind();
        drop(l);
        host
    };
    let server = FakeServer::start(move |req| match req.method.as_str() {
        "GET" if req.path == "/v2/" => Reply::status(200),
        "HEAD" => Reply::status(404),
        "POST" => Reply::Full(
            202,
            vec![(
                "Location".into(),
                format!("http://{closed}/v2/app/blobs/uploads/u1?_state=s3cr3tstate"),
            )],
            Vec::new(),
        ),
        _ => Reply::status(404),
    });
    let out = push(&server.host, &layout, &["-v", "--retry-times", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/v2/app/blobs/uploads/u1"), "{stderr}");
    assert!(!stderr.contains("s3cr3tstate"), "{stderr}");
}
