//! The deliberate public entries that replaced reaching into internals: `hoist::output` (durable
//! writes of an output file), `image::resolve_root`, `transport::registry::{login, logout}`,
//! hoist's own key types in `sign`, and the `oci_spec` re-export. Each is used here as an embedder
//! (and the CLI) uses it.

use std::os::unix::fs::symlink;

use hoist::descriptor::new_descriptor;
use hoist::layout::Layout;
use hoist::sign::keys;
#[cfg(feature = "registry")]
use hoist::transport::registry::{self, CredentialStore};
use hoist::transport::{Credentials, OpenOptions};
use hoist::{Platform, media_type};

mod common;

#[test]
fn output_write_file_writes_through_a_symlink_and_replaces_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real.txt");
    let link = tmp.path().join("link.txt");
    std::fs::write(&real, b"old").unwrap();
    symlink(&real, &link).unwrap();

    hoist::output::write_file(&link, b"through the link").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink was replaced"
    );
    assert_eq!(std::fs::read(&real).unwrap(), b"through the link");

    hoist::output::write_file(&real, b"replaced").unwrap();
    assert_eq!(std::fs::read(&real).unwrap(), b"replaced");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "a temp file was left: {names:?}");
}

#[test]
fn resolve_root_resolves_the_root_it_is_given_through_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("layout");
    common::write_image(&path);
    let layout = Layout::open(&path).unwrap();
    let (_, manifest) = layout.tags().unwrap().into_iter().next().unwrap();
    let host = Platform::host();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": manifest.digest().to_string(),
            "size": manifest.size(),
            "platform": {"os": host.os, "architecture": host.architecture},
        }]
    }))
    .unwrap();
    let id = layout.write_bytes(&index).unwrap();
    let desc = new_descriptor(media_type::OCI_INDEX, &id, index.len() as u64);
    layout.set_tag(Some("multi"), &desc).unwrap();

    let reference = format!("oci:{}:multi", path.display()).parse().unwrap();
    let source = hoist::open_source(&reference, &OpenOptions::default()).unwrap();
    let root = source.root().unwrap();
    let image = hoist::image::resolve_root(source.as_ref(), root.clone(), &host).unwrap();
    assert_eq!(image.digest().to_string(), manifest.digest().to_string());
    assert_eq!(
        image.index_doc.as_ref().map(|d| d.digest()),
        Some(root.digest())
    );
    // The image model is oci-spec's, reachable as hoist::oci_spec.
    let parsed: &hoist::oci_spec::image::ImageManifest = &image.manifest;
    assert_eq!(parsed.layers().len(), 1);
    // And the history view of it (umoci stat's), through inspect: this config lists no history.
    assert!(hoist::inspect::history(&image).unwrap().is_empty());
}

#[cfg(feature = "registry")]
#[test]
fn login_to_a_registry_that_does_not_answer_fails_and_writes_no_auth_file() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = tmp.path().join("auth.json");
    // A port nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = OpenOptions::default();
    opts.tls_verify = Some(false);
    opts.retry_times = Some(0);
    opts.authfile = Some(auth.clone());
    let creds = Credentials::new("alice", "secret");
    let result = registry::login(&format!("127.0.0.1:{port}"), &creds, &opts);
    assert!(result.is_err(), "{result:?}");
    assert!(
        !auth.exists(),
        "an auth file was written for a failed login"
    );
}

#[cfg(feature = "registry")]
#[test]
fn logout_erases_only_the_registry_named_and_says_when_there_was_none() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = tmp.path().join("auth.json");
    std::fs::write(
        &auth,
        br#"{"auths":{"a.example:5000":{"auth":"dTpw"},"b.example":{"auth":"dTpw"}}}"#,
    )
    .unwrap();
    let done = registry::logout("a.example:5000", Some(auth.clone())).unwrap();
    assert!(done.erased);
    assert_eq!(done.auth_file, auth);
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    let auths = left["auths"].as_object().unwrap();
    assert!(!auths.contains_key("a.example:5000"));
    assert!(auths.contains_key("b.example"));

    let again = registry::logout("a.example:5000", Some(auth.clone())).unwrap();
    assert!(!again.erased);
    // The variant an embedder matches on after a login (no registry is needed to name it).
    let kept = CredentialStore::AuthFile(auth.clone());
    assert!(matches!(kept, CredentialStore::AuthFile(p) if p == auth));
}

#[test]
fn keys_are_hoist_types_that_round_trip_through_their_files() {
    let private = keys::generate().unwrap();
    let pem = keys::encrypt_private_key(&private, b"pw").unwrap();
    let back = keys::decrypt_private_key(pem.as_bytes(), b"pw", "test key").unwrap();
    assert_eq!(back.public_key(), private.public_key());
    let public_pem = keys::public_key_pem(&private.public_key()).unwrap();
    let public: hoist::sign::PublicKey = keys::read_public_key(&public_pem, "test key").unwrap();
    assert_eq!(public, private.public_key());
    assert_eq!(
        format!("{private:?}"),
        "PrivateKey(ECDSA P-256, secret not shown)"
    );
}
