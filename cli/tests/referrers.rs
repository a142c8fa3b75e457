//! OCI 1.1 referrers end to end: `hoist attach` and `hoist referrers` on OCI layouts, on Debian's
//! docker-registry 2.8 (no referrers API: the `sha256-<hex>` tag-schema fallback index), and on the
//! scripted fake registry for the referrers API itself (pagination, `artifactType` filtering,
//! `OCI-Subject` present and absent).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::fake_registry::{FakeServer, Reply, Request, small_image};
use common::registry::Registry;
use common::{hoist, require_tool, run_fail, run_ok};

const INSECURE: &str = "--tls-verify=false";
const SPDX: &str = "application/spdx+json";
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `hoist attach` of a small file; returns the artifact's digest.
fn attach(reference: &str, artifact_type: &str, dir: &Path, extra: &[&str]) -> String {
    let file = dir.join(format!("{}.json", artifact_type.replace('/', "_")));
    std::fs::write(&file, format!("{{\"for\":\"{reference}\"}}")).unwrap();
    let spec = format!("{}:application/json", file.display());
    let mut args = vec![
        "attach",
        "--format",
        "json",
        "--artifact-type",
        artifact_type,
    ];
    args.extend_from_slice(extra);
    args.extend([reference, spec.as_str()]);
    let out = run_ok(&mut hoist(&args));
    json(&out)["digest"].as_str().unwrap().to_string()
}

/// `hoist referrers --format json`.
fn referrers(reference: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["referrers", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(reference);
    json(&run_ok(&mut hoist(&args)))
}

fn digests(nodes: &serde_json::Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn layout_attach_then_list_the_tree_filtered_and_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let img = small_image(&layout, "app", "v1");
    let reference = format!("oci:{}:v1", layout.display());
    assert!(digests(&referrers(&reference, &[])["referrers"]).is_empty());

    let sbom = attach(
        &reference,
        SPDX,
        tmp.path(),
        &["--annotation", "note=first"],
    );
    let sbom_ref = format!("oci:{}@{sbom}", layout.display());
    let sig = attach(&sbom_ref, SIG, tmp.path(), &[]);

    let tree = referrers(&reference, &[]);
    assert_eq!(tree["digest"], img.digest.as_str());
    assert_eq!(digests(&tree["referrers"]), std::slice::from_ref(&sbom));
    let node = &tree["referrers"][0];
    assert_eq!(node["artifactType"], SPDX);
    assert_eq!(node["annotations"]["note"], "first");
    assert!(node["annotations"]["org.opencontainers.image.created"].is_string());
    assert_eq!(digests(&node["referrers"]), std::slice::from_ref(&sig));

    // The referrers are untagged index.json entries (as oras stores them): the tags are unchanged.
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let untagged = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"].is_null())
        .count();
    assert_eq!(untagged, 2);

    // Filtered: another type lists nothing.
    let none = referrers(&reference, &["--artifact-type", "application/vnd.other"]);
    assert!(digests(&none["referrers"]).is_empty());

    // Text: the type, digest and annotations, nested.
    let text = run_ok(&mut hoist(&["referrers", &reference]));
    assert!(text.contains(&format!("└── {SPDX} {sbom}")), "{text}");
    assert!(text.contains("note: first"), "{text}");
    assert!(text.contains(&format!("    └── {SIG} {sig}")), "{text}");

    // An oci-archive of the layout lists the same.
    let archive = tmp.path().join("layout.tar");
    run_ok(
        std::process::Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    let from_archive = referrers(&format!("oci-archive:{}:v1", archive.display()), &[]);
    assert_eq!(digests(&from_archive["referrers"]), [sbom]);
}

#[test]
fn dir_and_docker_archive_say_they_cannot_hold_referrers() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let dir = tmp.path().join("dir");
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &format!("dir:{}", dir.display()),
    ]));
    let dir_ref = format!("dir:{}", dir.display());
    let err = fails(&mut hoist(&["referrers", &dir_ref]));
    assert!(err.contains("cannot hold referrers"), "{err}");
    let file = tmp.path().join("f.json");
    std::fs::write(&file, "{}").unwrap();
    let before = std::fs::read_dir(&dir).unwrap().count();
    let err = fails(&mut hoist(&[
        "attach",
        "--artifact-type",
        SPDX,
        &dir_ref,
        file.to_str().unwrap(),
    ]));
    assert!(err.contains("cannot hold referrers"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), before);
    // An oci-archive is written whole: attaching in place is refused, the archive untouched.
    let archive = tmp.path().join("a.tar");
    run_ok(&mut hoist(&[
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &format!("oci-archive:{}:v1", archive.display()),
    ]));
    let bytes = std::fs::read(&archive).unwrap();
    let err = fails(&mut hoist(&[
        "attach",
        "--artifact-type",
        SPDX,
        &format!("oci-archive:{}:v1", archive.display()),
        file.to_str().unwrap(),
    ]));
    assert!(err.contains("written whole"), "{err}");
    assert_eq!(std::fs::read(&archive).unwrap(), bytes);
}

#[test]
fn registry_without_the_api_keeps_the_fallback_index() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let img = small_image(&layout, "app", "v1");
    let image = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &image,
    ]));
    let sbom = attach(&image, SPDX, tmp.path(), &[INSECURE]);
    let sig = attach(&image, SIG, tmp.path(), &[INSECURE]);

    // The fallback tag holds an index listing both (read, add, write kept the first).
    let hex = img.digest.strip_prefix("sha256:").unwrap();
    let tags = json(&run_ok(&mut hoist(&[
        "list-tags",
        INSECURE,
        &reg.url("app"),
    ])));
    assert!(
        tags["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &format!("sha256-{hex}")),
        "{tags}"
    );
    let tree = referrers(&image, &[INSECURE]);
    let mut got = digests(&tree["referrers"]);
    got.sort();
    let mut want = vec![sbom.clone(), sig.clone()];
    want.sort();
    assert_eq!(got, want);
    let only = referrers(&image, &[INSECURE, "--artifact-type", SIG]);
    assert_eq!(digests(&only["referrers"]), [sig]);
    // The fallback index lists exactly the two.
    let index_ref = format!("{}:sha256-{hex}", reg.url("app"));
    let raw = run_ok(&mut hoist(&["inspect", "--raw", INSECURE, &index_ref]));
    assert_eq!(json(&raw)["manifests"].as_array().unwrap().len(), 2);
}

/// A scripted registry with the referrers API: stores what is pushed; `/referrers/` answers from
/// what it stored, two per page, applying `artifactType`; manifests with a subject are answered
/// with `OCI-Subject` when `oci_subject`.
struct ApiRegistry {
    server: FakeServer,
    host: String,
}

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Vec<u8>>,
    manifests: HashMap<String, (String, Vec<u8>)>,
}

fn sha256(bytes: &[u8]) -> String {
    hoist::Digest::sha256(bytes).to_string()
}

/// The stderr of a command that must fail.
fn fails(cmd: &mut std::process::Command) -> String {
    String::from_utf8_lossy(&run_fail(cmd).stderr).into_owned()
}

impl ApiRegistry {
    fn start(oci_subject: bool, api: bool) -> ApiRegistry {
        let store = Arc::new(Mutex::new(Store::default()));
        let server = FakeServer::start(move |req: &Request| answer(&store, req, oci_subject, api));
        let host = server.host.clone();
        ApiRegistry { server, host }
    }
}

fn answer(store: &Mutex<Store>, req: &Request, oci_subject: bool, api: bool) -> Reply {
    let mut s = store.lock().unwrap();
    let path = req.path.as_str();
    if path == "/v2/" {
        return Reply::ok("application/json", b"{}".to_vec());
    }
    let Some(rest) = path.strip_prefix("/v2/app/") else {
        return Reply::status(404);
    };
    if rest == "blobs/uploads/" && req.method == "POST" {
        return Reply::Full(
            202,
            vec![("Location".into(), "/v2/app/blobs/uploads/u1".into())],
            Vec::new(),
        );
    }
    if rest.starts_with("blobs/uploads/") && req.method == "PUT" {
        let digest = req
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("digest="))
            .unwrap_or("")
            .replace("%3A", ":");
        s.blobs.insert(digest, req.body.clone());
        return Reply::status(201);
    }
    if let Some(d) = rest.strip_prefix("blobs/") {
        return match s.blobs.get(d) {
            Some(b) => Reply::ok("application/octet-stream", b.clone()),
            None => Reply::status(404),
        };
    }
    if let Some(r) = rest.strip_prefix("manifests/") {
        if req.method == "PUT" {
            let ct = req.header("content-type").unwrap_or("").to_string();
            let digest = sha256(&req.body);
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            s.manifests
                .insert(r.to_string(), (ct.clone(), req.body.clone()));
            s.manifests.insert(digest.clone(), (ct, req.body.clone()));
            let mut headers = vec![("Docker-Content-Digest".to_string(), digest)];
            if oci_subject && let Some(subject) = v["subject"]["digest"].as_str() {
                headers.push(("OCI-Subject".into(), subject.to_string()));
            }
            return Reply::Full(201, headers, Vec::new());
        }
        return match s.manifests.get(r) {
            Some((ct, body)) => Reply::Full(
                200,
                vec![
                    ("Content-Type".into(), ct.clone()),
                    ("Docker-Content-Digest".into(), sha256(body)),
                ],
                body.clone(),
            ),
            None => Reply::status(404),
        };
    }
    if let Some(subject) = rest.strip_prefix("referrers/") {
        if !api {
            return Reply::status(404);
        }
        let filter = req
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("artifactType="))
            .map(|t| t.replace("%2F", "/").replace("%2B", "+"));
        let mut all: Vec<(String, serde_json::Value)> = s
            .manifests
            .iter()
            .filter(|(k, _)| k.starts_with("sha256:"))
            .filter_map(|(k, (ct, body))| {
                let v: serde_json::Value = serde_json::from_slice(body).ok()?;
                (v["subject"]["digest"] == subject).then(|| {
                    (
                        k.clone(),
                        serde_json::json!({
                            "mediaType": ct, "digest": k, "size": body.len(),
                            "artifactType": v["artifactType"], "annotations": v["annotations"],
                        }),
                    )
                })
            })
            .filter(|(_, d)| {
                filter
                    .as_ref()
                    .is_none_or(|f| d["artifactType"] == f.as_str())
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let page: usize = req
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let items: Vec<serde_json::Value> = all
            .iter()
            .skip(page * 2)
            .take(2)
            .map(|(_, d)| d.clone())
            .collect();
        let mut headers = vec![(
            "Content-Type".to_string(),
            "application/vnd.oci.image.index.v1+json".to_string(),
        )];
        if all.len() > (page + 1) * 2 {
            headers.push((
                "Link".into(),
                format!(
                    "</v2/app/referrers/{subject}?page={}>; rel=\"next\"",
                    page + 1
                ),
            ));
        }
        if filter.is_some() {
            headers.push(("OCI-Filters-Applied".into(), "artifactType".into()));
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": items,
        }))
        .unwrap();
        return Reply::Full(200, headers, body);
    }
    Reply::status(404)
}

/// Pushes the small image to the fake registry as `app:v1`; returns its reference and digest.
fn push_small(reg: &ApiRegistry, dir: &Path) -> (String, String) {
    let layout = dir.join("layout");
    let img = small_image(&layout, "app", "v1");
    let image = format!("docker://{}/app:v1", reg.host);
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &image,
    ]));
    (image, img.digest)
}

#[test]
fn referrers_api_pages_filters_and_oci_subject_means_no_fallback_index() {
    let reg = ApiRegistry::start(true, true);
    let tmp = tempfile::tempdir().unwrap();
    let (image, digest) = push_small(&reg, tmp.path());
    let mut attached = Vec::new();
    for (i, t) in [SPDX, SIG, SPDX, "application/vnd.example+json", SIG]
        .iter()
        .enumerate()
    {
        let note = format!("note=n{i}");
        attached.push(attach(
            &image,
            t,
            tmp.path(),
            &[INSECURE, "--annotation", &note],
        ));
    }
    let tree = referrers(&image, &[INSECURE]);
    let mut got = digests(&tree["referrers"]);
    got.sort();
    attached.sort();
    attached.dedup();
    assert_eq!(got, attached, "every page followed");
    let reqs = reg.server.requests();
    assert!(
        reqs.iter()
            .any(|r| r.path.contains("/referrers/") && r.query.contains("page=2")),
        "three pages of two were read"
    );
    // One type: asked of the registry.
    let sigs = referrers(&image, &[INSECURE, "--artifact-type", SIG]);
    assert_eq!(digests(&sigs["referrers"]).len(), 2);
    assert!(
        reg.server
            .requests()
            .iter()
            .any(|r| r.path.contains("/referrers/") && r.query.contains("artifactType=")),
        "the filter was sent"
    );
    // The registry said OCI-Subject: no fallback index was written.
    let fallback = format!("sha256-{}", digest.strip_prefix("sha256:").unwrap());
    assert!(
        !reg.server
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with(&fallback)),
        "no fallback index PUT when the registry answers OCI-Subject"
    );
}

#[test]
fn without_oci_subject_the_fallback_index_is_written_and_read() {
    // The registry takes manifests with a subject but does not index them (no OCI-Subject) and has
    // no referrers API: hoist keeps the fallback index and lists from it.
    let reg = ApiRegistry::start(false, false);
    let tmp = tempfile::tempdir().unwrap();
    let (image, digest) = push_small(&reg, tmp.path());
    let a = attach(&image, SPDX, tmp.path(), &[INSECURE]);
    let b = attach(&image, SIG, tmp.path(), &[INSECURE]);
    let fallback = format!("sha256-{}", digest.strip_prefix("sha256:").unwrap());
    let puts = reg
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&fallback))
        .count();
    assert_eq!(puts, 2, "one fallback update per attach");
    let tree = referrers(&image, &[INSECURE]);
    let mut got = digests(&tree["referrers"]);
    got.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_listing_over_max_referrers_is_refused_naming_the_flag() {
    let reg = ApiRegistry::start(true, true);
    let tmp = tempfile::tempdir().unwrap();
    let (image, _) = push_small(&reg, tmp.path());
    attach(&image, SPDX, tmp.path(), &[INSECURE]);
    attach(&image, SIG, tmp.path(), &[INSECURE]);
    let err = fails(&mut hoist(&[
        "referrers",
        "--max-referrers",
        "1",
        INSECURE,
        &image,
    ]));
    assert!(err.contains("--max-referrers"), "{err}");
}
