//! Cosign-compatible signatures end to end: `generate-key`, `sign`, `verify --key`, `copy --policy`
//! and `copy --sign-by-sigstore-private-key`, against docker-registry on 127.0.0.1 and the peers
//! built with sigstore support (`shared/peers/skopeo-sigstore`, `shared/peers/cosign-keygen`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::Registry;
use common::{hoist, images, require_tool, run_fail, run_ok};

const INSECURE: &str = "--tls-verify=false";
const PASSWORD: &str = "correct horse";

/// The peers directory: `<workspace root>/../shared/peers`, else `/work/shared/peers`. Missing:
/// `None` with a message, or a panic under CI=true.
fn peers() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [
        root.join("../shared/peers"),
        PathBuf::from("/work/shared/peers"),
    ] {
        if dir.join("skopeo-sigstore").is_file() && dir.join("cosign-keygen").is_file() {
            return Some(dir);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared/peers/skopeo-sigstore and cosign-keygen are required under CI=true");
    }
    eprintln!("SKIPPED: shared/peers/skopeo-sigstore or cosign-keygen is absent");
    None
}

fn ready() -> Option<PathBuf> {
    if !require_tool("docker-registry") {
        return None;
    }
    peers()
}

/// `hoist generate-key` into `DIR/NAME.key|pub`.
fn generate_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    run_ok(
        hoist(&[
            "generate-key",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ])
        .env("HOIST_PASSWORD", PASSWORD),
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// skopeo-sigstore with a permissive policy (unless `policy`) and registries.d turning sigstore
/// attachments on for `host`.
fn skopeo(peers: &Path, dir: &Path, host: &str, policy: Option<&Path>) -> Command {
    let regd = dir.join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("local.yaml"),
        format!("docker:\n  {host}:\n    use-sigstore-attachments: true\n"),
    )
    .unwrap();
    let permissive = dir.join("permissive.json");
    std::fs::write(
        &permissive,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let mut c = Command::new(peers.join("skopeo-sigstore"));
    c.arg("--registries.d")
        .arg(&regd)
        .arg("--policy")
        .arg(policy.unwrap_or(&permissive));
    c
}

/// A registry with `app:v1` (the two-layer image) and `app:unsigned` (the same converted to Docker
/// v2s2, so another digest). Returns the layout reference of the source too.
fn registry_with_images(dir: &Path) -> (Registry, String) {
    let layout = dir.join("src");
    images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", layout.display());
    let reg = Registry::start();
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("{}:v1", reg.url("app")),
    ]));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &src,
        &format!("{}:unsigned", reg.url("app")),
    ]));
    (reg, src)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn verify(public: &Path, image: &str) -> Command {
    hoist(&["verify", INSECURE, "--key", public.to_str().unwrap(), image])
}

#[test]
fn skopeo_signs_with_a_hoist_key_and_hoist_verify_accepts_only_that() {
    let Some(peers) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "hoist");
    let (_, other_public) = generate_key(dir.path(), "other");
    let (reg, src) = registry_with_images(dir.path());
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).unwrap();
    let v1 = format!("{}:v1", reg.url("app"));
    run_ok(skopeo(&peers, dir.path(), &reg.host, None).args([
        "copy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        key.to_str().unwrap(),
        "--sign-passphrase-file",
        pw.to_str().unwrap(),
        &src,
        &v1,
    ]));

    let out = run_ok(&mut verify(&public, &v1));
    assert!(out.contains("signature verified"), "{out}");
    // skopeo names the reference it wrote to: --identity checks it.
    let identity = format!("{}/app:v1", reg.host);
    run_ok(verify(&public, &v1).args(["--identity", &identity]));
    let e = stderr(&run_fail(
        verify(&public, &v1).args(["--identity", &format!("{}/app:v2", reg.host)]),
    ));
    assert!(e.contains("names identity"), "{e}");

    // Another key, an unsigned image: refused, naming the check.
    let e = stderr(&run_fail(&mut verify(&other_public, &v1)));
    assert!(e.contains("does not verify with the key"), "{e}");
    let unsigned = format!("{}:unsigned", reg.url("app"));
    let e = stderr(&run_fail(&mut verify(&public, &unsigned)));
    assert!(e.contains("no signatures found"), "{e}");

    // Tampered: v1's signature annotation replaced by a valid signature of another payload.
    run_ok(
        hoist(&["sign", INSECURE, "--key", key.to_str().unwrap(), &unsigned])
            .env("HOIST_PASSWORD", PASSWORD),
    );
    let digest_of = |image: &str| {
        run_ok(&mut hoist(&[
            "inspect", INSECURE, "--format", "json", image,
        ]))
        .split("\"Digest\":")
        .nth(1)
        .and_then(|r| r.split('"').nth(1))
        .unwrap()
        .to_string()
    };
    let sig_tag = |image: &str| format!("{}.sig", digest_of(image).replace(':', "-"));
    let v1_sig = format!("{}:{}", reg.url("app"), sig_tag(&v1));
    let other_sig = format!("{}:{}", reg.url("app"), sig_tag(&unsigned));
    let raw = |image: &str| -> serde_json::Value {
        serde_json::from_str(&run_ok(&mut hoist(&["inspect", INSECURE, "--raw", image]))).unwrap()
    };
    let foreign =
        raw(&other_sig)["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].clone();
    let staged = dir.path().join("sigdir");
    run_ok(&mut hoist(&[
        "copy",
        "--src-tls-verify=false",
        &v1_sig,
        &format!("dir:{}", staged.display()),
    ]));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(staged.join("manifest.json")).unwrap()).unwrap();
    manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] = foreign;
    std::fs::write(
        staged.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("dir:{}", staged.display()),
        &v1_sig,
    ]));
    let e = stderr(&run_fail(&mut verify(&public, &v1)));
    assert!(e.contains("does not verify with the key"), "{e}");
}

#[test]
fn hoist_signs_with_a_cosign_key_and_skopeo_policy_accepts_it() {
    let Some(peers) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("cosign");
    run_ok(
        Command::new(peers.join("cosign-keygen"))
            .arg(&prefix)
            .env("HOIST_PASSWORD", PASSWORD),
    );
    let (key, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    let (reg, _) = registry_with_images(dir.path());
    let v1 = format!("{}:v1", reg.url("app"));
    let out = run_ok(
        hoist(&["sign", INSECURE, "--key", key.to_str().unwrap(), &v1])
            .env("HOIST_PASSWORD", PASSWORD),
    );
    assert!(out.contains(".sig"), "{out}");
    run_ok(&mut verify(&public, &v1));

    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {format!("{}/app", reg.host): [{
                "type": "sigstoreSigned",
                "keyPath": public,
                "signedIdentity": {"type": "matchRepoDigestOrExact"},
            }]}},
        })
        .to_string(),
    )
    .unwrap();
    // skopeo verifies the source against the policy, then carries the signature to the mirror.
    let mirror = |tag: &str| format!("{}:{tag}", reg.url("mirror"));
    run_ok(skopeo(&peers, dir.path(), &reg.host, Some(&policy)).args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &v1,
        &mirror("accepted"),
    ]));
    // The policy is in force: skopeo refuses the unsigned image.
    run_fail(skopeo(&peers, dir.path(), &reg.host, Some(&policy)).args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{}:unsigned", reg.url("app")),
        &mirror("refused"),
    ]));
    // The signature travelled with the image and still verifies at the mirror.
    run_ok(&mut verify(&public, &mirror("accepted")));
    // A wrong password is refused, naming it.
    let e = stderr(&run_fail(
        hoist(&["sign", INSECURE, "--key", key.to_str().unwrap(), &v1])
            .env("HOIST_PASSWORD", "wrong"),
    ));
    assert!(e.contains("wrong password"), "{e}");
}

#[test]
fn copy_policy_refuses_unsigned_images_and_copy_signs_by_key() {
    let Some(_peers) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "k");
    let (reg, src) = registry_with_images(dir.path());
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let signed = format!("{}:signed", reg.url("app"));
    let out = std::process::Command::new(common::hoist_bin())
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--sign-by-sigstore-private-key",
            key.to_str().unwrap(),
            "--sign-passphrase-file",
            pw.to_str().unwrap(),
            &src,
            &signed,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    run_ok(&mut verify(&public, &signed));

    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {"": [{
                "type": "sigstoreSigned",
                "keyPath": "k.pub",
            }]}},
        })
        .to_string(),
    )
    .unwrap();
    let copy = |image: &str, to: &Path| {
        hoist(&[
            "copy",
            "--src-tls-verify=false",
            "--policy",
            policy.to_str().unwrap(),
            image,
            &format!("oci:{}:v1", to.display()),
        ])
    };
    run_ok(&mut copy(&signed, &dir.path().join("ok")));
    let refused = dir.path().join("refused");
    let e = stderr(&run_fail(&mut copy(
        &format!("{}:unsigned", reg.url("app")),
        &refused,
    )));
    assert!(e.contains("no signatures found"), "{e}");
    assert!(!refused.exists(), "nothing is written for a refused image");
    // The default scope rejects what no transport scope names.
    let e = stderr(&run_fail(&mut copy(&src, &dir.path().join("layout"))));
    assert!(e.contains("rejects"), "{e}");
}

#[test]
fn signatures_in_a_layout_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "k");
    let layout = dir.path().join("layout");
    images::build_two_layer(&layout, "v1");
    let image = format!("oci:{}:v1", layout.display());
    // The private key is the owner's alone; an existing key is never overwritten.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let before = std::fs::read(&key).unwrap();
    let e = stderr(&run_fail(
        hoist(&[
            "generate-key",
            "--output-key-prefix",
            dir.path().join("k").to_str().unwrap(),
        ])
        .env("HOIST_PASSWORD", PASSWORD),
    ));
    assert!(e.contains("not overwriting"), "{e}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let e = stderr(&run_fail(
        hoist(&["sign", "--key", key.to_str().unwrap(), &image]).env("HOIST_PASSWORD", PASSWORD),
    ));
    assert!(e.contains("--identity"), "{e}");
    run_ok(
        hoist(&[
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--identity",
            "example.com/app:v1",
            &image,
        ])
        .env("HOIST_PASSWORD", PASSWORD),
    );
    let out = run_ok(&mut hoist(&[
        "verify",
        "--key",
        public.to_str().unwrap(),
        "--identity",
        "example.com/app",
        &image,
    ]));
    assert!(out.contains("example.com/app:v1"), "{out}");

    // A second key adds a second signature; signing again with the first adds nothing.
    let (key2, public2) = generate_key(dir.path(), "k2");
    for k in [&key2, &key] {
        run_ok(
            hoist(&[
                "sign",
                "--key",
                k.to_str().unwrap(),
                "--identity",
                "example.com/app:v1",
                &image,
            ])
            .env("HOIST_PASSWORD", PASSWORD),
        );
    }
    for p in [&public, &public2] {
        let out = run_ok(&mut hoist(&[
            "verify",
            "--key",
            p.to_str().unwrap(),
            &image,
        ]));
        assert!(out.contains("(2 signatures)"), "{out}");
    }
}

#[test]
fn a_signature_layer_over_4_mib_and_more_than_256_signatures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "k");
    let layout = dir.path().join("layout");
    images::build_two_layer(&layout, "v1");
    let image = format!("oci:{}:v1", layout.display());
    run_ok(
        hoist(&[
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--identity",
            "example.com/app:v1",
            &image,
        ])
        .env("HOIST_PASSWORD", PASSWORD),
    );
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let put = |bytes: &[u8]| {
        let digest = hoist::Digest::sha256(bytes);
        std::fs::write(layout.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
        digest.to_string()
    };
    let config_digest = put(b"{}");
    // Point the signature tag at a manifest with `count` layers of `payload`; verify's error.
    let mut verify_with = |count: usize, payload: &[u8]| {
        let layer = serde_json::json!({
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": payload.len(), "digest": put(payload),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}});
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                       "digest": config_digest},
            "layers": vec![layer; count],
        })
        .to_string();
        let manifest_digest = put(manifest.as_bytes());
        for entry in index["manifests"].as_array_mut().unwrap() {
            let tag = entry["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("");
            if tag.ends_with(".sig") {
                entry["digest"] = manifest_digest.clone().into();
                entry["size"] = manifest.len().into();
            }
        }
        std::fs::write(&index_path, index.to_string()).unwrap();
        // Raising the document limit does not raise the signature limits.
        stderr(&run_fail(&mut hoist(&[
            "--max-manifest-size",
            "64M",
            "verify",
            "--key",
            public.to_str().unwrap(),
            &image,
        ])))
    };
    let e = verify_with(1, &vec![b' '; 5 * 1024 * 1024]);
    assert!(e.contains("signature layer") && e.contains("4 MiB"), "{e}");
    // Nor can an image make hoist read thousands of signatures.
    let e = verify_with(257, b"{}");
    assert!(e.contains("257 signatures"), "{e}");
    let e = verify_with(256, b"{}");
    assert!(
        e.contains("none of 256 signatures") && e.contains("and 251 more"),
        "256 are read and checked, the first reasons shown: {e}"
    );
}

#[test]
fn copy_policy_copies_the_digest_it_checked_even_when_the_tag_moves() {
    use common::fake_registry::{self, FakeServer, LayoutImage, serve_layout};
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "k");
    let (listener, host) = fake_registry::bind();
    let good = fake_registry::small_image(&dir.path().join("good"), "app", "latest");
    let evil_layout = dir.path().join("evil");
    let evil_digest = common::synth::write_image(&evil_layout, "latest", 2, 3000, 7);
    let evil = LayoutImage {
        layout: evil_layout,
        repo: "app".into(),
        tag: "latest".into(),
        digest: evil_digest.to_string(),
    };
    assert_ne!(good.digest, evil.digest);
    run_ok(
        hoist(&[
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--identity",
            &format!("{host}/app:latest"),
            &format!("oci:{}:latest", good.layout.display()),
        ])
        .env("HOIST_PASSWORD", PASSWORD),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(good.layout.join("index.json")).unwrap()).unwrap();
    let sig_entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|t| t.ends_with(".sig"))
        })
        .unwrap()
        .clone();
    let sig = LayoutImage {
        layout: good.layout.clone(),
        repo: "app".into(),
        tag: sig_entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap()
            .into(),
        digest: sig_entry["digest"].as_str().unwrap().into(),
    };
    // `latest` names the signed image until its signatures have been read, then another one.
    let good_digest = good.digest.clone();
    let moved = AtomicBool::new(false);
    let server = FakeServer::serve(listener, move |req| {
        if req.path.contains(&format!("/manifests/{}", sig.tag)) {
            moved.store(true, Ordering::SeqCst);
            return serve_layout(&sig, req).unwrap();
        }
        if req.path.ends_with("/manifests/latest") {
            let img = if moved.load(Ordering::SeqCst) {
                &evil
            } else {
                &good
            };
            return serve_layout(img, req).unwrap();
        }
        for img in [&good, &evil, &sig] {
            let hex = req.path.rsplit(':').next().unwrap_or("");
            let holds = img.layout.join("blobs/sha256").join(hex).is_file();
            let manifest = req.path.ends_with(&img.digest) && !req.path.contains("/referrers/");
            if manifest || (req.path.contains("/blobs/") && holds) {
                return serve_layout(img, req).unwrap();
            }
        }
        serve_layout(&good, req).unwrap_or_else(|| fake_registry::Reply::status(404))
    });
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"default": [{"type": "sigstoreSigned", "keyPath": public}]}).to_string(),
    )
    .unwrap();
    let out = dir.path().join("out");
    run_ok(&mut hoist(&[
        "copy",
        "--src-tls-verify=false",
        "--policy",
        policy.to_str().unwrap(),
        &format!("docker://{host}/app:latest"),
        &format!("oci:{}:v1", out.display()),
    ]));
    assert!(
        server.requests().iter().any(|r| r.path.ends_with(&format!(
            "/manifests/{}",
            sig_entry["digest"].as_str().unwrap()
        )) || r.path.contains(".sig")),
        "the signatures were read"
    );
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        copied["manifests"][0]["digest"].as_str().unwrap(),
        good_digest,
        "the copy is of the image the policy accepted, not what the tag names now"
    );
}
