//! The `docker://` transport against a real registry (Debian's docker-registry on 127.0.0.1): pushes
//! and pulls checked with skopeo, skipped uploads, multi-arch indexes, Basic auth over TLS with login
//! and logout, retries through a fault-injecting proxy, and tag pagination.

mod common;

use std::path::Path;

use common::registry::{Fault, FaultProxy, PagingServer, Registry, skopeo_raw};
use common::{hoist, images, require_tool, run_fail, run_ok, synth};
use hoist::layout::Layout;
use hoist::media_type;
use serde_json::{Value, json};

fn tools() -> bool {
    require_tool("docker-registry") && require_tool("skopeo") && require_tool("umoci")
}

fn sha256(bytes: &[u8]) -> String {
    hoist::Digest::sha256(bytes).to_string()
}

/// The layer digests of a manifest.
fn layers(manifest: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(manifest).unwrap();
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

const INSECURE: &str = "--tls-verify=false";

#[test]
fn hoist_push_then_skopeo_pull_keeps_every_digest_and_a_second_push_uploads_nothing() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let src_manifest = run_ok(&mut hoist(&["inspect", "--raw", &src])).into_bytes();
    let reg = Registry::start();
    let dest = format!("{}:v1", reg.url("team/app"));

    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &dest,
    ]));
    let uploads = reg.count("POST", "/blobs/uploads/");
    assert_eq!(uploads, 3, "config and two layers are uploaded once each");

    // skopeo sees the very same manifest bytes, and pulls the same layers.
    let raw = skopeo_raw(&dest, &[INSECURE]);
    assert_eq!(sha256(&raw), sha256(&src_manifest));
    let pulled = dir.path().join("pulled");
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:v1", pulled.display()),
    ]));
    let pulled_manifest = run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{}:v1", pulled.display()),
    ]));
    assert_eq!(sha256(pulled_manifest.as_bytes()), sha256(&src_manifest));
    assert_eq!(layers(pulled_manifest.as_bytes()), layers(&src_manifest));

    // A second push asks (HEAD) and uploads nothing.
    let heads = reg.count("HEAD", "/blobs/");
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &dest,
    ]));
    assert_eq!(
        reg.count("POST", "/blobs/uploads/"),
        uploads,
        "no blob uploaded again"
    );
    assert_eq!(reg.count("HEAD", "/blobs/") - heads, 3);

    // Within the same registry, another repository mounts the blobs instead of uploading them.
    let other = format!("{}:v1", reg.url("other/app"));
    let mount_out = hoist(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &dest,
        &other,
    ])
    .output()
    .unwrap();
    assert!(mount_out.status.success());
    let summary = String::from_utf8_lossy(&mount_out.stderr);
    assert!(summary.contains("3 mounted"), "{summary}");
    assert_eq!(
        reg.count("POST", "mount=sha256"),
        3,
        "three cross-repository mounts"
    );
    assert_eq!(
        reg.count("PATCH", "/blobs/uploads/"),
        0,
        "small blobs go up in one PUT"
    );
    assert_eq!(
        sha256(&skopeo_raw(&other, &[INSECURE])),
        sha256(&src_manifest)
    );
}

#[test]
fn skopeo_push_then_hoist_pull_verifies_and_large_blobs_go_in_chunks() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    // One layer larger than an upload chunk (64 MiB).
    let digest = synth::write_image(&layout, "big", 1, 65 << 20, 7);
    let reg = Registry::start();
    let remote = format!("{}:big", reg.url("lib/big"));
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:big", layout.display()),
        &remote,
    ]));

    let pulled = dir.path().join("pulled");
    let dst = format!("oci:{}:big", pulled.display());
    run_ok(&mut hoist(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &dst,
    ]));
    run_ok(&mut hoist(&["verify", &dst]));
    let raw = run_ok(&mut hoist(&["inspect", "--raw", &dst]));
    assert_eq!(sha256(raw.as_bytes()), digest.to_string());
    let raw = run_ok(&mut hoist(&["inspect", INSECURE, "--raw", &remote]));
    assert_eq!(sha256(raw.as_bytes()), digest.to_string());

    // hoist's push of the same image to a new repository sends the big layer in two PATCH chunks
    // (64 MiB and 1 MiB), and skopeo reads the result back with the same digest.
    let pushed = format!("{}:big", reg.url("lib/pushed"));
    let before = reg.count("PATCH", "/blobs/uploads/");
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:big", layout.display()),
        &pushed,
    ]));
    assert_eq!(
        reg.count("PATCH", "/blobs/uploads/") - before,
        2,
        "a 65 MiB layer in 64 MiB chunks"
    );
    assert_eq!(
        sha256(&skopeo_raw(&pushed, &[INSECURE])),
        digest.to_string()
    );

    // A digest reference that does not match what the registry serves is refused.
    let wrong = format!("{}@sha256:{}", reg.url("lib/big"), "0".repeat(64));
    let out = run_fail(&mut hoist(&["inspect", INSECURE, "--raw", &wrong]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flips one byte in the middle of blob `digest` of the layout at `layout`.
fn flip_byte(layout: &Path, digest: &str) {
    let p = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
}

#[test]
fn a_corrupt_local_blob_is_refused_and_never_committed_by_the_registry() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    let blob_dir = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:").to_string();
        reg.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
    };
    // The control: a sound push stores its layer where this test looks.
    let sound = dir.path().join("sound");
    synth::write_image(&sound, "v1", 1, 4096, 12);
    let src = format!("oci:{}:v1", sound.display());
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("{}:v1", reg.url("good/sound")),
    ]));
    let manifest = run_ok(&mut hoist(&["inspect", "--raw", &src])).into_bytes();
    assert!(blob_dir(&layers(&manifest)[0]).is_dir());

    // A small layer (one PUT) and a 20 MiB one (PATCH chunks): hoist hashes each blob once, as it
    // streams to the registry, so the mismatch is found on the way and the upload abandoned.
    let small = dir.path().join("small");
    images::build_two_layer(&small, "v1");
    let big = dir.path().join("big");
    synth::write_image(&big, "v1", 1, 20 << 20, 11);
    for (layout, repo) in [(&small, "bad/small"), (&big, "bad/big")] {
        let src = format!("oci:{}:v1", layout.display());
        let manifest = run_ok(&mut hoist(&["inspect", "--raw", &src])).into_bytes();
        let layer = layers(&manifest).pop().unwrap();
        flip_byte(layout, &layer);
        let dest = format!("{}:v1", reg.url(repo));
        let out = run_fail(&mut hoist(&[
            "copy",
            "--dest-tls-verify=false",
            &src,
            &dest,
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("digest mismatch") && err.contains(&layer),
            "{repo}: {err}"
        );
        // Neither the manifest nor the corrupt blob exists in the registry.
        let inspect = run_fail(&mut hoist(&["inspect", INSECURE, "--raw", &dest]));
        assert!(
            String::from_utf8_lossy(&inspect.stderr).contains("not found"),
            "{repo}: {}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        assert!(
            !blob_dir(&layer).exists(),
            "{repo}: the registry holds {layer}"
        );
    }
}

/// Three single-platform images and an index over them (tag `multi`) in `dir`; returns the index digest.
fn multi_arch_layout(dir: &Path) -> String {
    let mut entries = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let digest = synth::write_image(dir, arch, 1, 1000 + i, 40 + i as u64);
        let layout = Layout::open(dir).unwrap();
        let size = std::fs::metadata(layout.blob_path(&digest)).unwrap().len();
        entries.push(json!({"mediaType": media_type::OCI_MANIFEST, "digest": digest.to_string(), "size": size, "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": entries}),
    )
    .unwrap();
    let layout = Layout::open(dir).unwrap();
    let _lock = layout.lock().unwrap();
    let doc = hoist::document::Document::new(media_type::OCI_INDEX, index).unwrap();
    layout.write_bytes(doc.bytes()).unwrap();
    layout.set_tag(Some("multi"), &doc.descriptor()).unwrap();
    doc.digest().to_string()
}

#[test]
fn a_multi_arch_index_round_trips() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("multi");
    let index_digest = multi_arch_layout(&layout);
    let reg = Registry::start();
    let remote = format!("{}:multi", reg.url("multi/app"));
    run_ok(&mut hoist(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &remote,
    ]));
    // The index was PUT after its three manifests, and keeps its digest.
    assert_eq!(reg.count("PUT", "/manifests/sha256:"), 3);
    assert_eq!(sha256(&skopeo_raw(&remote, &[INSECURE])), index_digest);

    // skopeo pulls the whole index; hoist pulls it back too; both keep the digest and verify.
    let by_skopeo = dir.path().join("skopeo");
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:multi", by_skopeo.display()),
    ]));
    let back = format!("oci:{}:multi", dir.path().join("back").display());
    run_ok(&mut hoist(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &remote,
        &back,
    ]));
    run_ok(&mut hoist(&["verify", &back]));
    for r in [back, format!("oci:{}:multi", by_skopeo.display())] {
        let raw = run_ok(&mut hoist(&["inspect", "--raw", &r]));
        assert_eq!(sha256(raw.as_bytes()), index_digest, "{r}");
    }
    // One platform by name, straight from the registry.
    let arm = run_ok(&mut hoist(&[
        "inspect",
        INSECURE,
        "--platform",
        "linux/arm64",
        "--config",
        "--raw",
        &remote,
    ]));
    assert!(arm.contains("SEED=41"), "{arm}");
}

#[test]
fn basic_auth_over_tls_with_wrong_and_right_credentials_login_and_logout() {
    if !tools() || !require_tool("htpasswd") || !require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    // A layer over 16 MiB: it goes up as a streamed PATCH, through the async client, which must
    // trust the same certificates and send the same credentials as the blocking one.
    synth::write_image(&layout, "v1", 1, 17 << 20, 3);
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start_with_auth("alice", "s3cret-pw");
    let certs = reg.cert_dir.clone().unwrap();
    let certs = certs.to_str().unwrap();
    let dest = format!("{}:v1", reg.url("private/app"));
    let authfile = dir.path().join("auth.json");
    let authfile_s = authfile.to_str().unwrap();

    // The self-signed certificate is refused without --dest-cert-dir.
    let out = run_fail(&mut hoist(&[
        "copy",
        "--dest-creds",
        "alice:s3cret-pw",
        "--retry-times",
        "0",
        &src,
        &dest,
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // Wrong password: a clear 401 that names the user and never the password.
    let out = run_fail(&mut hoist(&[
        "copy",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        "alice:WRONG-pw",
        &src,
        &dest,
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("alice") && err.contains("refused"), "{err}");
    assert!(!err.contains("WRONG-pw"), "the password leaked: {err}");
    // No credentials at all: the error says how to give some.
    let out = run_fail(&mut hoist(&[
        "copy",
        "--dest-cert-dir",
        certs,
        "--authfile",
        authfile_s,
        &src,
        &dest,
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("--creds"), "{err}");

    run_ok(&mut hoist(&[
        "copy",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        "alice:s3cret-pw",
        &src,
        &dest,
    ]));
    assert_eq!(
        reg.count("PATCH", "/blobs/uploads/"),
        1,
        "the layer streamed"
    );

    // login checks the password before storing it.
    let out = run_fail(&mut hoist(&[
        "login",
        "-u",
        "alice",
        "-p",
        "nope",
        "--cert-dir",
        certs,
        "--authfile",
        authfile_s,
        &reg.host,
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert!(!authfile.exists());
    let mut login = hoist(&[
        "login",
        "-u",
        "alice",
        "--password-stdin",
        "--cert-dir",
        certs,
        "--authfile",
        authfile_s,
        &reg.host,
    ]);
    login.stdin(std::process::Stdio::piped());
    let mut child = login
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"s3cret-pw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // skopeo reads the auth file hoist wrote, and hoist reads it back.
    let v: Value = serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert!(v["auths"][&reg.host]["auth"].is_string());
    run_ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--cert-dir",
        certs,
        "--authfile",
        authfile_s,
        &dest,
    ]));
    let tags = run_ok(&mut hoist(&[
        "list-tags",
        "--cert-dir",
        certs,
        "--authfile",
        authfile_s,
        &dest,
    ]));
    assert!(tags.contains("\"v1\""), "{tags}");

    run_ok(&mut hoist(&["logout", "--authfile", authfile_s, &reg.host]));
    let out = run_fail(&mut hoist(&[
        "list-tags",
        "--cert-dir",
        certs,
        "--authfile",
        authfile_s,
        &dest,
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn dropped_connections_500s_and_429s_are_retried() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    let digest = synth::write_image(&layout, "v1", 3, 300_000, 11);
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start();

    for (i, (fault, n)) in [
        (Fault::Drop, 3),
        (Fault::Status500, 3),
        (Fault::Status429, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let proxy = FaultProxy::start(&reg.host, fault, n);
        let repo = format!("docker://{}/flaky/{i}:v1", proxy.host);
        run_ok(&mut hoist(&[
            "copy",
            "--dest-tls-verify=false",
            "--retry-times",
            "5",
            &src,
            &repo,
        ]));
        assert!(proxy.connections.load(std::sync::atomic::Ordering::SeqCst) > n);
        let back = format!("oci:{}:v1", dir.path().join(format!("back{i}")).display());
        // Fresh faults for the pull.
        let proxy2 = FaultProxy::start(&reg.host, fault, n);
        let repo2 = repo.replace(&proxy.host, &proxy2.host);
        run_ok(&mut hoist(&[
            "copy",
            "--src-tls-verify=false",
            "--retry-times",
            "5",
            &repo2,
            &back,
        ]));
        run_ok(&mut hoist(&["verify", &back]));
        let raw = run_ok(&mut hoist(&["inspect", "--raw", &back]));
        assert_eq!(sha256(raw.as_bytes()), digest.to_string());
    }

    // Connections cut in the middle of a body: small uploads start a new session, downloads resume
    // with a Range request where they broke.
    let big = dir.path().join("big");
    let big_digest = synth::write_image(&big, "v1", 2, 3 << 20, 12);
    let proxy = FaultProxy::start(&reg.host, Fault::Cut(1 << 20), 3);
    let repo = format!("docker://{}/flaky/cut:v1", proxy.host);
    let posts = reg.count("POST", "/blobs/uploads/");
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        "--retry-times",
        "5",
        &format!("oci:{}:v1", big.display()),
        &repo,
    ]));
    assert!(
        reg.count("POST", "/blobs/uploads/") - posts > 3,
        "a cut upload started again"
    );
    let proxy2 = FaultProxy::start(&reg.host, Fault::Cut(1 << 20), 3);
    let gets = reg.count("GET", "/flaky/cut/blobs/sha256:");
    let back = format!("oci:{}:v1", dir.path().join("back-cut").display());
    run_ok(&mut hoist(&[
        "copy",
        "--src-tls-verify=false",
        "--retry-times",
        "5",
        &repo.replace(&proxy.host, &proxy2.host),
        &back,
    ]));
    run_ok(&mut hoist(&["verify", &back]));
    assert!(
        reg.count("GET", "/flaky/cut/blobs/sha256:") - gets > 3,
        "a cut download resumed"
    );
    let log = std::fs::read_to_string(&reg.log).unwrap();
    assert!(
        log.contains("http.response.status=206"),
        "resumed with a Range request"
    );
    let raw = run_ok(&mut hoist(&["inspect", "--raw", &back]));
    assert_eq!(sha256(raw.as_bytes()), big_digest.to_string());

    // Without retries, the same faults fail the copy with a registry error.
    let proxy = FaultProxy::start(&reg.host, Fault::Status500, 100);
    let out = run_fail(&mut hoist(&[
        "inspect",
        "--tls-verify=false",
        "--retry-times",
        "0",
        &format!("docker://{}/flaky/4:v1", proxy.host),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("500"), "{err}");
}

#[test]
fn a_cut_chunked_upload_asks_where_it_stood_then_starts_again() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("big");
    let digest = synth::write_image(&layout, "v1", 1, 20 << 20, 13);
    let reg = Registry::start();
    // One job: the blocking client's connections (pings, HEADs, POSTs, PUTs) stay small; the
    // layer's PATCH is on a connection of its own, cut after 4 MiB.
    let proxy = FaultProxy::start(&reg.host, Fault::Cut(4 << 20), 3);
    let dest = format!("docker://{}/cut/chunked:v1", proxy.host);
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        "--retry-times",
        "5",
        "--jobs",
        "1",
        &format!("oci:{}:v1", layout.display()),
        &dest,
    ]));
    // docker-registry cannot say where a session broken half-way through a chunk stands (it answers
    // BLOB_UPLOAD_INVALID), so hoist asks, then starts the layer again in a new session.
    assert!(
        reg.count("GET", "/blobs/uploads/") >= 1,
        "asked where it stood"
    );
    assert!(
        reg.count("POST", "/blobs/uploads/") >= 3,
        "config, layer, and the layer again"
    );
    let direct = format!("{}:v1", reg.url("cut/chunked"));
    assert_eq!(
        sha256(&skopeo_raw(&direct, &[INSECURE])),
        digest.to_string()
    );
    let back = format!("oci:{}:v1", dir.path().join("back").display());
    run_ok(&mut hoist(&[
        "copy",
        "--src-tls-verify=false",
        &direct,
        &back,
    ]));
    run_ok(&mut hoist(&["verify", &back]));
}

#[test]
fn list_tags_follows_pagination() {
    if !tools() {
        return;
    }
    // docker-registry 2.8 ignores `n` for tag lists, so pagination is shown against a small server that
    // pages like newer registries do; the real registry gives the full list in one answer.
    let want: Vec<String> = ["a1", "b2", "c3", "d4", "e5"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let pager = PagingServer::start("paged/app", want.clone());
    let out = run_ok(&mut hoist(&[
        "list-tags",
        INSECURE,
        "--page-size",
        "2",
        &format!("docker://{}/paged/app", pager.host),
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Repository"], format!("{}/paged/app", pager.host));
    let got: Vec<String> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        pager.tag_requests.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "5 tags in pages of 2"
    );

    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    synth::write_image(&layout, "v1", 1, 100, 1);
    let reg = Registry::start();
    let src = format!("oci:{}:v1", layout.display());
    for t in ["x1", "y2", "z3"] {
        run_ok(&mut hoist(&[
            "copy",
            "--dest-tls-verify=false",
            &src,
            &format!("{}:{t}", reg.url("real/app")),
        ]));
    }
    let out = run_ok(&mut hoist(&["list-tags", INSECURE, &reg.url("real/app")]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut got: Vec<&str> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["x1", "y2", "z3"]);

    let out = run_fail(&mut hoist(&["list-tags", "oci:/nonexistent"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("docker://"));
    let out = run_fail(&mut hoist(&["list-tags", INSECURE, &reg.url("no/such")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") || err.contains("NAME_UNKNOWN"),
        "{err}"
    );
}

#[test]
fn a_tls_registry_naming_another_host_in_its_upload_location_keeps_the_password_home() {
    if !(require_tool("docker-registry") && require_tool("openssl") && require_tool("htpasswd")) {
        return;
    }
    // docker-registry with TLS and Basic auth whose answers name a plain-http host elsewhere (its
    // `http.host`): the upload Location points there.
    let elsewhere =
        common::fake_registry::FakeServer::start(|_| common::fake_registry::Reply::status(201));
    let reg = Registry::start_with_auth_naming(
        "alice",
        "s3cret-pw",
        &format!("http://{}", elsewhere.host),
    );
    let certs = reg.cert_dir.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    synth::write_image(&layout, "v1", 1, 3000, 3);
    let out = hoist(&[
        "copy",
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        "--dest-creds",
        "alice:s3cret-pw",
        "--retry-times",
        "0",
        &format!("oci:{}:v1", layout.display()),
        &format!("{}:v1", reg.url("private/app")),
    ])
    .output()
    .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let reached = elsewhere.requests();
    assert!(!reached.is_empty(), "no upload went to the named host");
    for r in reached {
        assert_eq!(
            r.header("authorization"),
            None,
            "the password went over plain http to another host: {r:?}"
        );
    }
}
