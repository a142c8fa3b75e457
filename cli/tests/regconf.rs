//! Registries as people configure them: certificates from certs.d (a trusted self-signed `CA:TRUE`
//! certificate, client certificates for mutual TLS), credentials from the auth files and credential
//! helpers, against Debian's docker-registry on 127.0.0.1.

mod common;

use std::path::Path;

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
