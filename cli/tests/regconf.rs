//! Registries as people configure them: certificates from certs.d (a trusted self-signed `CA:TRUE`
//! certificate, client certificates for mutual TLS), credentials from the auth files and credential
//! helpers, against Debian's docker-registry on 127.0.0.1.

mod common;

use std::path::Path;

use common::fake_registry::{self, FakeServer, Reply, serve_layout};
use common::registry::{Registry, TlsSetup};
use common::{hoist, images, require_tool, run_fail, run_ok};

fn tools() -> bool {
    require_tool("docker-registry") && require_tool("openssl") && require_tool("htpasswd")
}

/// `BASE/HOST/` holding copies of the named files, for `$HOIST_CERTS_D=BASE`.
fn certs_d(base: &Path, host: &str, files: &[&Path]) {
    let dir = base.join(host);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn a_trusted_self_signed_ca_certificate_works_from_cert_dir_and_certs_d() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_tls(
        Some(("alice", "pw-1")),
        None,
        TlsSetup {
            ca_true: true,
            ..TlsSetup::default()
        },
    );
    let certs = reg.cert_dir.clone().unwrap();
    let dest = format!("{}:v1", reg.url("self/signed"));
    let empty = dir.path().join("empty-certs.d");
    std::fs::create_dir(&empty).unwrap();
    run_ok(
        hoist(&[
            "copy",
            "--dest-creds",
            "alice:pw-1",
            "--dest-cert-dir",
            certs.to_str().unwrap(),
            &src,
            &dest,
        ])
        .env("HOIST_CERTS_D", &empty),
    );
    // Untrusted, it is refused.
    let out = run_fail(
        hoist(&[
            "inspect",
            "--creds",
            "alice:pw-1",
            "--retry-times",
            "0",
            &dest,
        ])
        .env("HOIST_CERTS_D", &empty),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Trusted through certs.d/HOST:PORT/ca.crt, without --cert-dir.
    let base = dir.path().join("certs.d");
    certs_d(&base, &reg.host, &[&certs.join("ca.crt")]);
    let bases = std::env::join_paths([&empty, &base]).unwrap();
    let out =
        run_ok(hoist(&["inspect", "--creds", "alice:pw-1", &dest]).env("HOIST_CERTS_D", &bases));
    assert!(out.contains("sha256:"), "{out}");
}

#[test]
fn mutual_tls_presents_the_client_certificate_from_certs_d() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_tls(
        None,
        None,
        TlsSetup {
            client_certs: true,
            ..TlsSetup::default()
        },
    );
    let certs = reg.cert_dir.clone().unwrap();
    let client = reg.client_dir.clone().unwrap();
    let dest = format!("{}:v1", reg.url("mutual/app"));

    // The CA alone: the registry refuses the handshake.
    let only_ca = dir.path().join("only-ca");
    certs_d(&only_ca, &reg.host, &[&certs.join("ca.crt")]);
    let out = run_fail(
        hoist(&["copy", "--retry-times", "0", &src, &dest]).env("HOIST_CERTS_D", &only_ca),
    );
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());

    // With client.cert + client.key beside it: the push and a read both go through.
    let full = dir.path().join("full");
    certs_d(
        &full,
        &reg.host,
        &[
            &certs.join("ca.crt"),
            &client.join("client.cert"),
            &client.join("client.key"),
        ],
    );
    run_ok(hoist(&["copy", &src, &dest]).env("HOIST_CERTS_D", &full));
    let out = run_ok(hoist(&["inspect", &dest]).env("HOIST_CERTS_D", &full));
    assert!(out.contains("sha256:"), "{out}");

    // A key without its certificate is a clear error naming the file.
    let bad = dir.path().join("bad");
    certs_d(
        &bad,
        &reg.host,
        &[&certs.join("ca.crt"), &client.join("client.key")],
    );
    let out = run_fail(hoist(&["inspect", &dest]).env("HOIST_CERTS_D", &bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("client.key") && err.contains("no certificate"),
        "{err}"
    );
}

/// A home of its own for `cmd`: `HOME`, `XDG_RUNTIME_DIR` under `root`, no other auth file or
/// certs.d, and `bin` first on `PATH` (for scripted credential helpers).
fn isolated<'a>(cmd: &'a mut std::process::Command, root: &Path) -> &'a mut std::process::Command {
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::fs::create_dir_all(root.join("home")).unwrap();
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("certs.d")).unwrap();
    cmd.env("HOME", root.join("home"))
        .env("XDG_RUNTIME_DIR", root.join("run"))
        .env("HOIST_CERTS_D", root.join("certs.d"))
        .env("PATH", path)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DOCKER_CONFIG")
}

/// `docker-credential-fake` in `root/bin`: keeps what `store` gets in `root/helper.json`; the
/// contents of `root/mode` (`ok`, `fail`, `hang`) decide how it behaves.
fn fake_helper(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = root.join("helper.json");
    let mode = root.join("mode");
    std::fs::write(&mode, "ok").unwrap();
    let script = format!(
        r#"#!/bin/sh
mode=$(cat '{mode}')
echo "$1" >> '{log}'
if [ "$mode" = hang ]; then exec sleep 60; fi
if [ "$mode" = fail ]; then echo "the keychain is locked" >&2; exit 3; fi
case "$1" in
  store) cat > '{store}' ;;
  get) read server; if [ -s '{store}' ]; then cat '{store}'; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read server; if [ -s '{store}' ]; then rm '{store}'; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#,
        mode = mode.display(),
        store = store.display(),
        log = root.join("helper.log").display(),
    );
    let path = bin.join("docker-credential-fake");
    std::fs::write(&path, script).unwrap();
    run_ok(std::process::Command::new("chmod").arg("755").arg(&path));
}

#[test]
fn a_credential_helper_named_by_cred_helpers_gets_stores_and_erases() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fake_helper(&root);
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_with_auth("alice", "helper-pw-9");
    let certs = reg.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let dest = format!("{}:v1", reg.url("helped/app"));
    let docker = root.join("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"credHelpers":{{"{}":"fake"}},"auths":{{}}}}"#,
            reg.host
        ),
    )
    .unwrap();

    // login checks the password, then stores it through the helper, not in a file.
    run_ok(isolated(
        &mut hoist(&[
            "login",
            "-u",
            "alice",
            "-p",
            "helper-pw-9",
            "--cert-dir",
            certs,
            &reg.host,
        ]),
        &root,
    ));
    let stored = std::fs::read_to_string(root.join("helper.json")).unwrap();
    assert!(
        stored.contains("helper-pw-9") && stored.contains(&reg.host),
        "{stored}"
    );
    assert!(!root.join("run/containers/auth.json").exists());
    let config = std::fs::read_to_string(docker.join("config.json")).unwrap();
    assert!(!config.contains("helper-pw-9"), "{config}");

    // copy and inspect get the credentials from the helper; -v names it, never the password.
    run_ok(isolated(
        &mut hoist(&["copy", "--dest-cert-dir", certs, &src, &dest]),
        &root,
    ));
    let out = isolated(
        &mut hoist(&["-v", "inspect", "--cert-dir", certs, &dest]),
        &root,
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("docker-credential-fake") && err.contains("credHelpers"),
        "{err}"
    );
    assert!(!err.contains("helper-pw-9"), "{err}");

    // A failing helper is a clear error; a hanging one is stopped at the timeout.
    std::fs::write(root.join("mode"), "fail").unwrap();
    let out = run_fail(isolated(
        &mut hoist(&["inspect", "--cert-dir", certs, &dest]),
        &root,
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("docker-credential-fake get failed") && err.contains("keychain is locked"),
        "{err}"
    );
    assert!(!err.contains("helper-pw-9"), "{err}");
    std::fs::write(root.join("mode"), "hang").unwrap();
    let started = std::time::Instant::now();
    let out = run_fail(
        isolated(&mut hoist(&["inspect", "--cert-dir", certs, &dest]), &root)
            .env("HOIST_CREDENTIAL_HELPER_TIMEOUT", "1"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not finish"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // logout erases through the helper; then the registry asks for credentials again.
    std::fs::write(root.join("mode"), "ok").unwrap();
    run_ok(isolated(&mut hoist(&["logout", &reg.host]), &root));
    assert!(!root.join("helper.json").exists());
    let out = run_fail(isolated(
        &mut hoist(&["inspect", "--cert-dir", certs, &dest]),
        &root,
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
}

#[test]
fn skopeo_login_is_read_and_hoist_login_is_read_by_skopeo() {
    if !tools() || !require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_with_auth("bob", "skopeo-pw-2");
    let certs = reg.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let dest = format!("{}:v1", reg.url("peer/app"));
    run_ok(isolated(
        std::process::Command::new("skopeo").args([
            "login",
            "-u",
            "bob",
            "-p",
            "skopeo-pw-2",
            "--cert-dir",
            certs,
            &reg.host,
        ]),
        &root,
    ));
    run_ok(isolated(
        &mut hoist(&["copy", "--dest-cert-dir", certs, &src, &dest]),
        &root,
    ));
    run_ok(isolated(
        std::process::Command::new("skopeo").args(["logout", &reg.host]),
        &root,
    ));
    run_fail(isolated(
        &mut hoist(&["inspect", "--cert-dir", certs, &dest]),
        &root,
    ));
    run_ok(isolated(
        &mut hoist(&[
            "login",
            "-u",
            "bob",
            "-p",
            "skopeo-pw-2",
            "--cert-dir",
            certs,
            &reg.host,
        ]),
        &root,
    ));
    let out = run_ok(isolated(
        std::process::Command::new("skopeo").args(["inspect", "--raw", "--cert-dir", certs, &dest]),
        &root,
    ));
    assert!(out.contains("layers"), "{out}");
}

#[test]
fn docker_credential_pass_with_a_throwaway_gpg_key() {
    if !tools()
        || !require_tool("docker-credential-pass")
        || !require_tool("pass")
        || !require_tool("gpg")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let gnupg = dir.path().join("gnupg");
    std::fs::create_dir(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let store = dir.path().join("pass");
    let with_env = |cmd: &mut std::process::Command| {
        cmd.env("GNUPGHOME", &gnupg)
            .env("PASSWORD_STORE_DIR", &store);
    };
    let mut keygen = std::process::Command::new("gpg");
    keygen.args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-gen-key",
        "hoist test <hoist@test.invalid>",
        "default",
        "default",
        "never",
    ]);
    with_env(&mut keygen);
    run_ok(&mut keygen);
    let mut init = std::process::Command::new("pass");
    init.args(["init", "hoist@test.invalid"]);
    with_env(&mut init);
    run_ok(&mut init);

    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_with_auth("carol", "pass-pw-3");
    let certs = reg.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let dest = format!("{}:v1", reg.url("pass/app"));
    let docker = root.join("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"pass"}"#).unwrap();

    let mut login = hoist(&[
        "login",
        "-u",
        "carol",
        "-p",
        "pass-pw-3",
        "--cert-dir",
        certs,
        &reg.host,
    ]);
    with_env(isolated(&mut login, &root));
    run_ok(&mut login);
    let mut list = std::process::Command::new("docker-credential-pass");
    list.arg("list");
    with_env(&mut list);
    let listed = run_ok(&mut list);
    assert!(listed.contains(&reg.host), "{listed}");

    let mut copy = hoist(&["-v", "copy", "--dest-cert-dir", certs, &src, &dest]);
    with_env(isolated(&mut copy, &root));
    let out = copy.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("docker-credential-pass (credsStore"), "{err}");
    assert!(!err.contains("pass-pw-3"), "{err}");

    let mut logout = hoist(&["logout", &reg.host]);
    with_env(isolated(&mut logout, &root));
    run_ok(&mut logout);
    let listed = run_ok(&mut list);
    assert!(!listed.contains(&reg.host), "{listed}");
    // The agent this test's gpg started, by its home directory.
    let _ = std::process::Command::new("gpgconf")
        .args(["--kill", "gpg-agent"])
        .env("GNUPGHOME", &gnupg)
        .status();
}

/// A fake registry serving `app:v1` behind a Bearer challenge whose realm (on the same host)
/// grants a token only for the refresh token `the-refresh-token`, POSTed.
fn token_registry(dir: &Path) -> (FakeServer, String) {
    let img = fake_registry::small_image(&dir.join("img"), "app", "v1");
    let (listener, host) = fake_registry::bind();
    let realm = format!("http://{host}/token");
    let server = FakeServer::serve(listener, move |req| {
        if req.path == "/token" {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            return if req.method == "POST"
                && body.contains("grant_type=refresh_token")
                && body.contains("refresh_token=the-refresh-token")
            {
                Reply::ok(
                    "application/json",
                    br#"{"access_token":"access-1"}"#.to_vec(),
                )
            } else {
                Reply::status(401)
            };
        }
        if req.header("authorization") != Some("Bearer access-1") {
            return Reply::Full(
                401,
                vec![(
                    "WWW-Authenticate".into(),
                    format!(r#"Bearer realm="{realm}",service="fake""#),
                )],
                Vec::new(),
            );
        }
        serve_layout(&img, req).unwrap_or_else(|| Reply::status(404))
    });
    (server, host)
}

/// `root`'s docker config holding the identity token `the-refresh-token` for `host`.
fn identity_token_config(root: &Path, host: &str) {
    let docker = root.join("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"identitytoken":"the-refresh-token"}}}}}}"#),
    )
    .unwrap();
}

#[test]
fn an_identity_token_is_posted_to_the_realm_as_a_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (server, host) = token_registry(dir.path());
    identity_token_config(&root, &host);
    let out = isolated(
        &mut hoist(&[
            "-v",
            "inspect",
            "--no-tags",
            "--tls-verify=false",
            &format!("docker://{host}/app:v1"),
        ]),
        &root,
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("the-refresh-token"), "{err}");
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .collect();
    assert!(
        !posts.is_empty()
            && posts
                .iter()
                .all(|r| r.method == "POST" && r.header("authorization").is_none())
    );
}

#[test]
fn registries_conf_mirrors_locations_and_blocks_as_skopeo_reads_them() {
    if !require_tool("docker-registry") || !require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let primary = Registry::start();
    let mirror = Registry::start();
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("{}:v1", mirror.url("copy/app")),
    ]));
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "example.test/team"
location = "{}/team"
insecure = true
[[registry.mirror]]
location = "{}/copy"
insecure = true
[[registry]]
location = "blocked.test"
blocked = true
"#,
            primary.host, mirror.host
        ),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let image = "docker://example.test/team/app:v1";

    // A pull is answered by the mirror (no --tls-verify: `insecure` comes from the file); -v says so.
    let out = hoist(&["-v", "inspect", "--registries-conf", conf_s, image])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("pulling from mirror {}/copy", mirror.host)),
        "{err}"
    );
    assert_eq!(primary.count("GET", "/manifests/"), 0);
    // skopeo reads the same file the same way.
    run_ok(std::process::Command::new("skopeo").args([
        "--registries-conf",
        conf_s,
        "inspect",
        "--raw",
        image,
    ]));

    // A push goes to the location, never the mirror; a pull of what only it has falls back to it.
    run_ok(
        hoist(&["copy", &src, "docker://example.test/team/app:v2"])
            .env("CONTAINERS_REGISTRIES_CONF", &conf),
    );
    assert_eq!(primary.count("PUT", "/v2/team/app/manifests/v2"), 1);
    assert_eq!(mirror.count("PUT", "/manifests/v2"), 0);
    let out = run_ok(
        hoist(&["inspect", "docker://example.test/team/app:v2"])
            .env("CONTAINERS_REGISTRIES_CONF", &conf),
    );
    assert!(out.contains("sha256:"), "{out}");

    // A blocked registry is refused, naming the file.
    let out = run_fail(&mut hoist(&[
        "inspect",
        "--registries-conf",
        conf_s,
        "docker://blocked.test/x/y:v1",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("blocked") && err.contains("registries.conf"),
        "{err}"
    );
}

#[test]
fn a_no_op_sync_between_registries_reads_no_manifest() {
    if !require_tool("docker-registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src_reg = Registry::start();
    let dest_reg = Registry::start();
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("{}:v1", src_reg.url("team/app")),
    ]));
    let sync = || {
        let out = hoist(&[
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("{}/team/app", src_reg.host),
            &format!("{}/mirror", dest_reg.host),
        ])
        .output()
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let first = sync();
    assert!(first.contains("1 copied"), "{first}");
    let gets = |r: &Registry| r.count("GET", "/manifests/");
    let (src_before, dest_before) = (gets(&src_reg), gets(&dest_reg));
    let second = sync();
    assert!(
        second.contains("0 copied, 1 skipped (up to date)"),
        "{second}"
    );
    assert_eq!(
        gets(&src_reg),
        src_before,
        "the no-op sync read a source manifest"
    );
    assert_eq!(
        gets(&dest_reg),
        dest_before,
        "the no-op sync read a destination manifest"
    );
    assert!(dest_reg.count("HEAD", "/manifests/") > 0);
}

/// Debian's tinyproxy on a free 127.0.0.1 port, killed by PID on drop; its log names each request.
struct Tinyproxy {
    url: String,
    log: std::path::PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start() -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Info\n\
                 MaxClients 20\nAllow 127.0.0.1\n",
                log.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting tinyproxy");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tinyproxy did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Tinyproxy {
            url: format!("http://127.0.0.1:{port}"),
            log,
            child,
            _dir: dir,
        }
    }

    /// The log lines that name `host` (a request or a CONNECT to it).
    fn seen(&self, host: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(host) && (l.contains("Request") || l.contains("CONNECT")))
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn proxies_from_the_environment_carry_every_request_unless_no_proxy() {
    if !tools() || !require_tool("tinyproxy") {
        return;
    }
    let proxy = Tinyproxy::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    // A layer over 16 MiB goes up as a streamed PATCH, through the async client.
    common::synth::write_image(&layout, "v1", 1, 17 << 20, 5);
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_with_auth("dave", "proxy-pw-4");
    let certs = reg.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let dest = format!("{}:v1", reg.url("proxied/app"));
    let clear = |c: &mut std::process::Command| {
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            c.env_remove(v);
        }
    };

    // HTTPS_PROXY: the TLS registry is reached through CONNECT.
    let mut copy = hoist(&[
        "copy",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        "dave:proxy-pw-4",
        &src,
        &dest,
    ]);
    clear(&mut copy);
    run_ok(copy.env("HTTPS_PROXY", &proxy.url));
    let through = proxy.seen(&reg.host);
    assert!(
        through > 0,
        "the proxy saw nothing: {}",
        std::fs::read_to_string(&proxy.log).unwrap_or_default()
    );
    assert_eq!(
        reg.count("PATCH", "/blobs/uploads/"),
        1,
        "the layer streamed"
    );

    // HTTP_PROXY: a plain-http registry through the proxy as a forward request.
    let plain = Registry::start();
    let plain_dest = format!("{}:v1", plain.url("plain/app"));
    let mut copy = hoist(&["copy", "--dest-tls-verify=false", &src, &plain_dest]);
    clear(&mut copy);
    run_ok(copy.env("http_proxy", &proxy.url));
    assert!(proxy.seen(&plain.host) > 0);

    // A token realm is reached through the proxy too.
    let root = dir.path().join("root");
    let (_server, token_host) = token_registry(dir.path());
    identity_token_config(&root, &token_host);
    let mut inspect = hoist(&[
        "inspect",
        "--no-tags",
        "--tls-verify=false",
        &format!("docker://{token_host}/app:v1"),
    ]);
    clear(isolated(&mut inspect, &root));
    run_ok(inspect.env("HTTP_PROXY", &proxy.url));
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{token_host}/token"))),
        "{log}"
    );

    // NO_PROXY covering the host: the proxy sees nothing more.
    let before = (proxy.seen(&reg.host), proxy.seen(&plain.host));
    let mut inspect = hoist(&[
        "inspect",
        "--cert-dir",
        certs,
        "--creds",
        "dave:proxy-pw-4",
        &dest,
    ]);
    clear(&mut inspect);
    run_ok(
        inspect
            .env("HTTPS_PROXY", &proxy.url)
            .env("NO_PROXY", "127.0.0.1"),
    );
    let mut inspect = hoist(&["inspect", "--tls-verify=false", &plain_dest]);
    clear(&mut inspect);
    run_ok(
        inspect
            .env("HTTP_PROXY", &proxy.url)
            .env("no_proxy", "127.0.0.1"),
    );
    assert_eq!((proxy.seen(&reg.host), proxy.seen(&plain.host)), before);
}

#[test]
fn a_missing_creds_store_program_leaves_the_registry_anonymous() {
    if !require_tool("docker-registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let reg = Registry::start();
    let dest = format!("{}:v1", reg.url("anon/app"));
    let docker = root.join("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        r#"{"credsStore":"desktop-not-here"}"#,
    )
    .unwrap();
    run_ok(isolated(
        &mut hoist(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &dest,
        ]),
        &root,
    ));
    let out = isolated(
        &mut hoist(&["-v", "inspect", "--tls-verify=false", &dest]),
        &root,
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("docker-credential-desktop-not-here, which is not on PATH"),
        "{err}"
    );
}

#[test]
fn a_sync_destination_is_checked_at_its_location_never_a_mirror() {
    if !require_tool("docker-registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let layout_ref = format!("oci:{}:v1", layout.display());
    let (src_reg, dest_reg, mirror) = (Registry::start(), Registry::start(), Registry::start());
    for (reg, repo) in [(&src_reg, "team/app"), (&mirror, "mirror/app")] {
        run_ok(&mut hoist(&[
            "copy",
            "--dest-tls-verify=false",
            &layout_ref,
            &format!("{}:v1", reg.url(repo)),
        ]));
    }
    // The destination's pulls would be served by a mirror that already has the image.
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            dest_reg.host, mirror.host
        ),
    )
    .unwrap();
    let out = hoist(&[
        "sync",
        "--src",
        "docker",
        "--dest",
        "docker",
        "--registries-conf",
        conf.to_str().unwrap(),
        "--src-tls-verify=false",
        &format!("{}/team/app", src_reg.host),
        &format!("{}/mirror", dest_reg.host),
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("1 copied"), "{err}");
    assert_eq!(dest_reg.count("PUT", "/v2/mirror/app/manifests/v1"), 1);
}
