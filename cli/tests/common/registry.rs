//! A real registry for tests: Debian's `docker-registry` on a free 127.0.0.1 port (plain http, or with
//! htpasswd Basic auth and a self-signed TLS certificate made here), killed by PID on drop; and a
//! fault-injecting TCP proxy that breaks the first connections before passing the rest through.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `docker-registry serve`.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The registry's storage, config and log.
    pub dir: tempfile::TempDir,
    /// The registry's request log (its stderr).
    pub log: PathBuf,
    /// With TLS: the directory holding the CA certificate (`ca.crt`) to pass as `--cert-dir`.
    pub cert_dir: Option<PathBuf>,
    /// With [`TlsSetup::client_certs`]: `client.cert` and `client.key`, signed by the CA the
    /// registry requires client certificates from (`http.tls.clientcas`).
    pub client_dir: Option<PathBuf>,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Registry {
    /// A plain-http registry without authentication.
    pub fn start() -> Registry {
        Self::start_inner(None)
    }

    /// A registry with TLS (self-signed certificate for 127.0.0.1) and htpasswd Basic auth for one user.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user, password)))
    }

    /// [`Registry::start_with_auth`] whose answers name `http_host` (`http://HOST:PORT`) as its
    /// address (docker-registry's `http.host`): upload `Location`s then point there.
    pub fn start_with_auth_naming(user: &str, password: &str, http_host: &str) -> Registry {
        Self::start_configured(Some((user, password)), Some(http_host))
    }

    fn start_inner(auth: Option<(&str, &str)>) -> Registry {
        Self::start_configured(auth, None)
    }

    /// A plain-http registry that refuses every deletion (distribution's default,
    /// `storage.delete.enabled: false`).
    pub fn start_without_delete() -> Registry {
        Self::start_with_delete(None, None, false)
    }

    fn start_configured(auth: Option<(&str, &str)>, http_host: Option<&str>) -> Registry {
        Self::start_tls(auth, http_host, TlsSetup::default())
    }

    fn start_with_delete(
        auth: Option<(&str, &str)>,
        http_host: Option<&str>,
        delete: bool,
    ) -> Registry {
        Self::start_full(auth, http_host, TlsSetup::default(), delete)
    }

    /// A TLS registry (htpasswd Basic auth for one user) with `setup`'s certificates.
    pub fn start_tls(
        auth: Option<(&str, &str)>,
        http_host: Option<&str>,
        setup: TlsSetup,
    ) -> Registry {
        Self::start_full(auth, http_host, setup, true)
    }

    fn start_full(
        auth: Option<(&str, &str)>,
        http_host: Option<&str>,
        setup: TlsSetup,
        delete: bool,
    ) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {delete}\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        if let Some(h) = http_host {
            config.push_str(&format!("  host: {h}\n"));
        }
        let mut cert_dir = None;
        let mut client_dir = None;
        let tls = auth.is_some() || setup.ca_true || setup.client_certs;
        if tls {
            let certs = dir.path().join("certs");
            std::fs::create_dir(&certs).unwrap();
            let (crt, key) = (certs.join("ca.crt"), dir.path().join("key.pem"));
            run(Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .args(if setup.ca_true {
                    // What `openssl req -x509` makes by default: its own CA.
                    vec!["-addext", "basicConstraints=critical,CA:TRUE"]
                } else {
                    vec![
                        "-addext",
                        "basicConstraints=critical,CA:FALSE",
                        "-addext",
                        "extendedKeyUsage=serverAuth",
                    ]
                })
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&crt));
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                crt.display(),
                key.display(),
            ));
            if setup.client_certs {
                let clients = dir.path().join("client");
                std::fs::create_dir(&clients).unwrap();
                let (ca_crt, ca_key) = (
                    dir.path().join("client-ca.pem"),
                    dir.path().join("client-ca.key"),
                );
                run(Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    ])
                    .args(["-subj", "/CN=client-ca", "-keyout"])
                    .arg(&ca_key)
                    .arg("-out")
                    .arg(&ca_crt));
                let csr = dir.path().join("client.csr");
                let ckey = clients.join("client.key");
                run(Command::new("openssl")
                    .args([
                        "req",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-subj",
                        "/CN=hoist-client",
                    ])
                    .arg("-keyout")
                    .arg(&ckey)
                    .arg("-out")
                    .arg(&csr));
                let ext = dir.path().join("client.ext");
                std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
                run(Command::new("openssl")
                    .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                    .arg("-in")
                    .arg(&csr)
                    .arg("-CA")
                    .arg(&ca_crt)
                    .arg("-CAkey")
                    .arg(&ca_key)
                    .arg("-extfile")
                    .arg(&ext)
                    .arg("-out")
                    .arg(clients.join("client.cert")));
                config.push_str(&format!("    clientcas:\n      - {}\n", ca_crt.display()));
                client_dir = Some(clients);
            }
            if let Some((user, password)) = auth {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd");
                assert!(out.status.success());
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, &out.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            cert_dir = Some(certs);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry {
            host,
            dir,
            log,
            cert_dir,
            client_dir,
            child,
        };
        reg.wait_ready(port);
        reg
    }

    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                if self.cert_dir.is_some() {
                    return;
                }
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `docker://127.0.0.1:PORT/REPO`.
    pub fn url(&self, repo: &str) -> String {
        format!("docker://{}/{repo}", self.host)
    }

    /// How many requests the registry logged with this method whose URI contains `uri_part`.
    pub fn count(&self, method: &str, uri_part: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.contains("response completed") || l.contains("msg=\"response completed\"")
            })
            .filter(|l| l.contains(&format!("http.request.method={method} ")))
            .filter(|l| {
                l.split("http.request.uri=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .is_some_and(|u| u.contains(uri_part))
            })
            .count()
    }

    /// The storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How [`Registry::start_tls`] makes its certificates.
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsSetup {
    /// The server certificate is `openssl req -x509`'s own CA (`CA:TRUE`), not an end entity.
    pub ca_true: bool,
    /// The registry requires a client certificate (mutual TLS); see [`Registry::client_dir`].
    pub client_certs: bool,
}

/// How the proxy breaks a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection after reading the request head, without an answer.
    Drop,
    /// Answer `500 Internal Server Error` and close.
    Status500,
    /// Answer `429 Too Many Requests` with `Retry-After: 1` and close.
    Status429,
    /// Pass the connection through, but cut it once this many bytes went either way (mid-body).
    Cut(u64),
}

/// A TCP proxy on 127.0.0.1 that breaks the first `fail_first` connections with `fault` and passes the
/// rest through to the upstream port.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` of the proxy.
    pub host: String,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

fn read_head(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 << 10 {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// Copies `from` to `to`; with a budget, cuts both connections once the shared count passes it.
fn pipe(mut from: TcpStream, mut to: TcpStream, budget: Option<(u64, Arc<AtomicUsize>)>) {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((limit, used)) = &budget
            && (used.fetch_add(n, Ordering::SeqCst) + n) as u64 > *limit
        {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str, fault: Fault, fail_first: usize) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let (c, st) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut client) = conn else { continue };
                let n = c.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let failing = n < fail_first;
                    if failing && matches!(fault, Fault::Drop | Fault::Status500 | Fault::Status429)
                    {
                        read_head(&mut client);
                        if fault == Fault::Status500 {
                            let _ = client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        }
                        if fault == Fault::Status429 {
                            let _ = client.write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        }
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let budget = match fault {
                        Fault::Cut(limit) if failing => {
                            Some((limit, Arc::new(AtomicUsize::new(0))))
                        }
                        _ => None,
                    };
                    let b2 = budget.clone();
                    std::thread::spawn(move || pipe(c2, s2, b2));
                    pipe(server, client, budget);
                });
            }
        });
        FaultProxy {
            host: format!("127.0.0.1:{port}"),
            connections,
            stop,
            port,
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The raw root manifest or index of `reference`, as `skopeo inspect --raw` prints it.
pub fn skopeo_raw(reference: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(extra)
        .arg("--raw")
        .arg(reference)
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A minimal HTTP server that pages a fixed tag list as registries that paginate do (`?n=` and `last=`,
/// with a `Link: <...>; rel="next"` header), for the client's pagination; docker-registry 2.8 answers
/// tag lists in one page whatever `n` says.
pub struct PagingServer {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Tag-list requests answered.
    pub tag_requests: Arc<AtomicUsize>,
}

impl PagingServer {
    /// Serves `tags` of repository `repo`.
    pub fn start(repo: &str, tags: Vec<String>) -> PagingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let tag_requests = Arc::new(AtomicUsize::new(0));
        let counter = tag_requests.clone();
        let prefix = format!("/v2/{repo}/tags/list");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let mut extra = String::new();
                let body = if path == "/v2/" {
                    "{}".to_string()
                } else if path == prefix {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let param = |k: &str| {
                        query
                            .split('&')
                            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
                    };
                    let n: usize = param("n")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(tags.len());
                    let start = match param("last") {
                        Some(l) => tags
                            .iter()
                            .position(|t| *t == l)
                            .map_or(tags.len(), |i| i + 1),
                        None => 0,
                    };
                    let page: Vec<&String> = tags.iter().skip(start).take(n).collect();
                    if start + n < tags.len()
                        && let Some(last) = page.last()
                    {
                        extra = format!("Link: <{prefix}?last={last}&n={n}>; rel=\"next\"\r\n");
                    }
                    serde_json::json!({"name": "x", "tags": page}).to_string()
                } else {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                };
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        PagingServer { host, tag_requests }
    }
}
