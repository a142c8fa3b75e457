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
    lose: bool,
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
        Self::start_losing(oci_subject, api, false)
    }

    /// With `lose`, the first write of a `sha256-*` tag (fallback index, `.sig`) is lost, as to a
    /// concurrent writer that read before it and wrote after it.
    fn start_losing(oci_subject: bool, api: bool, lose: bool) -> ApiRegistry {
        let store = Arc::new(Mutex::new(Store {
            lose,
            ..Store::default()
        }));
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
        if req.method == "PUT" && r.starts_with("sha256-") && s.lose {
            // Lost: answered as stored, but a concurrent writer's update (here: nothing) won.
            s.lose = false;
            return Reply::Full(
                201,
                vec![("Docker-Content-Digest".into(), sha256(&req.body))],
                Vec::new(),
            );
        }
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
fn a_fallback_index_update_lost_to_a_concurrent_writer_is_made_again() {
    let reg = ApiRegistry::start_losing(false, false, true);
    let tmp = tempfile::tempdir().unwrap();
    let (image, digest) = push_small(&reg, tmp.path());
    let a = attach(&image, SPDX, tmp.path(), &[INSECURE]);
    let fallback = format!("sha256-{}", digest.strip_prefix("sha256:").unwrap());
    let puts = reg
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&fallback))
        .count();
    assert_eq!(
        puts, 2,
        "the lost update was detected by the re-read and made again"
    );
    assert_eq!(digests(&referrers(&image, &[INSECURE])["referrers"]), [a]);
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

/// The tree of `reference` as (artifactType, digest) pairs, depth first.
fn flat(reference: &str, extra: &[&str]) -> Vec<(String, String)> {
    fn walk(nodes: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for n in nodes.as_array().unwrap() {
            out.push((
                n["artifactType"].as_str().unwrap_or("").to_string(),
                n["digest"].as_str().unwrap().to_string(),
            ));
            if n["referrers"].is_array() {
                walk(&n["referrers"], out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&referrers(reference, extra)["referrers"], &mut out);
    out.sort();
    out
}

#[test]
fn copy_referrers_travels_registry_to_registry_and_through_a_layout() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let src = format!("oci:{}:v1", layout.display());
    let sbom = attach(&src, SPDX, tmp.path(), &[]);
    attach(
        &format!("oci:{}@{sbom}", layout.display()),
        SIG,
        tmp.path(),
        &[],
    );
    attach(&src, SIG, tmp.path(), &[]);
    let want = flat(&src, &[]);
    assert_eq!(want.len(), 3);

    let copy = |from: &str, to: &str, extra: &[&str]| {
        let mut args = vec!["copy", "--src-tls-verify=false", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend([from, to]);
        run_ok(&mut hoist(&args))
    };
    // Without --referrers nothing but the image travels.
    let plain = format!("{}:v1", reg.url("plain"));
    copy(&src, &plain, &[]);
    assert!(flat(&plain, &[INSECURE]).is_empty());

    let first = format!("{}:v1", reg.url("app"));
    copy(&src, &first, &["--referrers"]);
    assert_eq!(flat(&first, &[INSECURE]), want, "layout -> registry");
    let mirror = format!("{}:v1", reg.url("mirror"));
    copy(&first, &mirror, &["--referrers"]);
    assert_eq!(flat(&mirror, &[INSECURE]), want, "registry -> registry");
    let back = tmp.path().join("back");
    let back_ref = format!("oci:{}:v1", back.display());
    copy(&mirror, &back_ref, &["--referrers"]);
    assert_eq!(flat(&back_ref, &[]), want, "registry -> layout");
    let again = format!("{}:v1", reg.url("again"));
    copy(&back_ref, &again, &["--referrers"]);
    assert_eq!(flat(&again, &[INSECURE]), want, "layout -> registry again");

    // Filtered: the SBOM only (its signature is of another type).
    let only = tmp.path().join("only");
    let only_ref = format!("oci:{}:v1", only.display());
    copy(
        &first,
        &only_ref,
        &["--referrers", "--referrers-filter", SPDX],
    );
    assert_eq!(flat(&only_ref, &[]), [(SPDX.to_string(), sbom)]);
}

#[test]
fn copy_referrers_into_dir_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let src = format!("oci:{}:v1", layout.display());
    attach(&src, SPDX, tmp.path(), &[]);
    let dir = tmp.path().join("dir");
    let err = fails(&mut hoist(&[
        "copy",
        "--referrers",
        &src,
        &format!("dir:{}", dir.display()),
    ]));
    assert!(err.contains("cannot hold"), "{err}");
    assert!(
        !dir.join("manifest.json").exists(),
        "nothing written before the refusal"
    );
}

#[test]
fn copy_referrers_limit_names_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let src = format!("oci:{}:v1", layout.display());
    attach(&src, SPDX, tmp.path(), &[]);
    attach(&src, SIG, tmp.path(), &[]);
    let out = tmp.path().join("out");
    let err = fails(&mut hoist(&[
        "copy",
        "--referrers",
        "--max-referrers",
        "1",
        &src,
        &format!("oci:{}:v1", out.display()),
    ]));
    assert!(err.contains("--max-referrers"), "{err}");
}

#[test]
fn copy_referrers_of_an_image_without_any_costs_one_request_per_manifest() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let image = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &image,
    ]));
    let count_all = |reg: &Registry| -> usize {
        ["GET", "HEAD", "PUT", "POST", "PATCH"]
            .iter()
            .map(|m| reg.count(m, "/v2/"))
            .sum()
    };
    let out1 = tmp.path().join("o1");
    let before = count_all(&reg);
    run_ok(&mut hoist(&[
        "copy",
        "--src-tls-verify=false",
        &image,
        &format!("oci:{}:v1", out1.display()),
    ]));
    let plain = count_all(&reg) - before;
    let out2 = tmp.path().join("o2");
    let before = count_all(&reg);
    run_ok(&mut hoist(&[
        "copy",
        "--referrers",
        "--src-tls-verify=false",
        &image,
        &format!("oci:{}:v1", out2.display()),
    ]));
    let with = count_all(&reg) - before;
    // One manifest: the one GET of its fallback tag (the probe of the referrers API, a 404 from an
    // unknown route, is not in 2.8's request log).
    eprintln!("requests: plain copy {plain}, --referrers {with}");
    assert!(with <= plain + 1, "plain {plain}, --referrers {with}");
    let hex = with_hex(&out2);
    assert_eq!(reg.count("GET", &format!("/manifests/sha256-{hex}")), 1);
}

/// The hex of the root digest of the layout at `dir` (tag v1).
fn with_hex(dir: &Path) -> String {
    let v = referrers(&format!("oci:{}:v1", dir.display()), &[]);
    v["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string()
}

#[test]
fn a_platform_subset_keeps_the_buildx_attestations_of_kept_platforms_only() {
    use hoist::layout::Layout;
    use hoist::media_type;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let mut entries = Vec::new();
    let mut attestations = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].iter().enumerate() {
        let d = common::synth::write_image(&dir, &format!("img{i}"), 1, 100, i as u64);
        let size = std::fs::metadata(dir.join("blobs/sha256").join(d.hex()))
            .unwrap()
            .len();
        entries.push(serde_json::json!({
            "mediaType": media_type::OCI_MANIFEST, "digest": d.to_string(), "size": size,
            "platform": {"os": "linux", "architecture": arch},
        }));
        let layout = Layout::open(&dir).unwrap();
        let _lock = layout.lock().unwrap();
        let empty = layout.write_bytes(b"{}").unwrap();
        let att = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_EMPTY, "digest": empty.to_string(), "size": 2},
            "layers": [],
            "annotations": {"for": arch},
        }))
        .unwrap();
        let ad = layout.write_bytes(&att).unwrap();
        attestations.push(ad.to_string());
        entries.push(serde_json::json!({
            "mediaType": media_type::OCI_MANIFEST, "digest": ad.to_string(), "size": att.len(),
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": d.to_string(),
            },
        }));
    }
    {
        let layout = Layout::open(&dir).unwrap();
        let _lock = layout.lock().unwrap();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": entries,
        }))
        .unwrap();
        let doc = hoist::document::Document::new(media_type::OCI_INDEX, index).unwrap();
        layout.write_bytes(doc.bytes()).unwrap();
        layout.set_tag(Some("multi"), &doc.descriptor()).unwrap();
    }
    let out = tmp.path().join("out");
    run_ok(&mut hoist(&[
        "copy",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        &format!("oci:{}:multi", dir.display()),
        &format!("oci:{}:multi", out.display()),
    ]));
    let raw = run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{}:multi", out.display()),
    ]));
    let kept: Vec<String> = json(&raw)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept.len(), 4, "{raw}");
    assert!(kept.contains(&attestations[0]) && kept.contains(&attestations[1]));
    assert!(
        !kept.contains(&attestations[2]),
        "a dropped platform's attestation goes"
    );
}

/// `shared/peers` (skopeo built with sigstore): `None` with a message, or a panic under CI=true.
fn peers() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [
        root.join("../shared/peers"),
        std::path::PathBuf::from("/work/shared/peers"),
    ] {
        if dir.join("skopeo-sigstore").is_file() {
            return Some(dir);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared/peers/skopeo-sigstore is required under CI=true");
    }
    eprintln!("SKIPPED: shared/peers/skopeo-sigstore is absent");
    None
}

#[test]
fn digest_tags_carry_signatures_that_still_verify_at_the_destination() {
    if !require_tool("docker-registry") {
        return;
    }
    let Some(peers) = peers() else { return };
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let app = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &app,
    ]));
    let prefix = tmp.path().join("k");
    run_ok(
        hoist(&[
            "generate-key",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ])
        .env("HOIST_PASSWORD", "pw"),
    );
    let (key, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    run_ok(
        hoist(&["sign", INSECURE, "--key", key.to_str().unwrap(), &app])
            .env("HOIST_PASSWORD", "pw"),
    );
    let sbom = attach(&app, SPDX, tmp.path(), &[INSECURE]);

    let verify = |image: &str| {
        let mut args = vec!["verify", "--key", public.to_str().unwrap()];
        if image.starts_with("docker://") {
            args.push(INSECURE);
        }
        args.push(image);
        hoist(&args)
    };
    let copy = |from: &str, to: &str, extra: &[&str]| {
        let mut args = vec!["copy", "--src-tls-verify=false", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend([from, to]);
        run_ok(&mut hoist(&args));
    };
    // Without --digest-tags the signature stays behind.
    let bare = format!("{}:v1", reg.url("bare"));
    copy(&app, &bare, &["--referrers"]);
    run_fail(&mut verify(&bare));

    let mirror = format!("{}:v1", reg.url("mirror"));
    copy(&app, &mirror, &["--referrers", "--digest-tags"]);
    run_ok(&mut verify(&mirror));
    let through = tmp.path().join("through");
    let through_ref = format!("oci:{}:v1", through.display());
    copy(&mirror, &through_ref, &["--referrers", "--digest-tags"]);
    run_ok(&mut verify(&through_ref));
    let back = format!("{}:v1", reg.url("back"));
    copy(&through_ref, &back, &["--referrers", "--digest-tags"]);
    run_ok(&mut verify(&back));
    assert_eq!(digests(&referrers(&back, &[INSECURE])["referrers"]), [sbom]);

    // skopeo's own sigstoreSigned check accepts the signature at the end of the road.
    let regd = tmp.path().join("registries.d");
    std::fs::create_dir_all(&regd).unwrap();
    std::fs::write(
        regd.join("local.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            reg.host
        ),
    )
    .unwrap();
    let policy = tmp.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {"": [{
                "type": "sigstoreSigned",
                "keyPath": public,
                "signedIdentity": {"type": "exactReference", "dockerReference": format!("{}/app:v1", reg.host)},
            }]}},
        })
        .to_string(),
    )
    .unwrap();
    let skopeo = |image: &str, to: &Path| {
        let mut c = std::process::Command::new(peers.join("skopeo-sigstore"));
        c.arg("--registries.d")
            .arg(&regd)
            .arg("--policy")
            .arg(&policy)
            .args([
                "copy",
                "--remove-signatures",
                "--src-tls-verify=false",
                image,
            ])
            .arg(format!("oci:{}:v1", to.display()));
        c
    };
    run_ok(&mut skopeo(&back, &tmp.path().join("skopeo-ok")));
    let refused = fails(&mut skopeo(&bare, &tmp.path().join("skopeo-refused")));
    assert!(refused.contains("signature"), "{refused}");
}

#[test]
fn sign_as_referrer_is_found_by_verify_and_travels_with_copy_referrers() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    small_image(&layout, "app", "v1");
    let app = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &app,
    ]));
    let keys: Vec<(std::path::PathBuf, std::path::PathBuf)> = ["k", "other"]
        .iter()
        .map(|n| {
            let prefix = tmp.path().join(n);
            run_ok(
                hoist(&[
                    "generate-key",
                    "--output-key-prefix",
                    prefix.to_str().unwrap(),
                ])
                .env("HOIST_PASSWORD", "pw"),
            );
            (prefix.with_extension("key"), prefix.with_extension("pub"))
        })
        .collect();
    let verify = |public: &Path, image: &str| {
        let mut args = vec!["verify", "--key", public.to_str().unwrap()];
        if image.starts_with("docker://") {
            args.push(INSECURE);
        }
        args.push(image);
        hoist(&args)
    };
    // Unsigned: refused.
    run_fail(&mut verify(&keys[0].1, &app));
    let out = run_ok(
        hoist(&[
            "sign",
            INSECURE,
            "--as-referrer",
            "--key",
            keys[0].0.to_str().unwrap(),
            &app,
        ])
        .env("HOIST_PASSWORD", "pw"),
    );
    assert!(out.contains("(referrer)"), "{out}");
    // No .sig tag: the signature is a referrer (in 2.8's fallback index) that verify finds.
    let tags = run_ok(&mut hoist(&["list-tags", INSECURE, &reg.url("app")]));
    assert!(!tags.contains(".sig"), "{tags}");
    let tree = referrers(&app, &[INSECURE]);
    assert_eq!(tree["referrers"][0]["artifactType"], SIG);
    run_ok(&mut verify(&keys[0].1, &app));
    let e = fails(&mut verify(&keys[1].1, &app));
    assert!(e.contains("does not verify with the key"), "{e}");

    // copy --referrers carries it: verifiable in a layout and at another repository.
    let out_layout = tmp.path().join("out");
    let out_ref = format!("oci:{}:v1", out_layout.display());
    run_ok(&mut hoist(&[
        "copy",
        "--referrers",
        "--src-tls-verify=false",
        &app,
        &out_ref,
    ]));
    run_ok(&mut verify(&keys[0].1, &out_ref));
    let mirror = format!("{}:v1", reg.url("mirror"));
    run_ok(&mut hoist(&[
        "copy",
        "--referrers",
        "--dest-tls-verify=false",
        &out_ref,
        &mirror,
    ]));
    run_ok(&mut verify(&keys[0].1, &mirror));

    // In a layout, sign --as-referrer writes an untagged entry that verify finds too.
    let own = format!("oci:{}:v1", layout.display());
    run_ok(
        hoist(&[
            "sign",
            "--as-referrer",
            "--identity",
            "example.com/app:v1",
            "--key",
            keys[1].0.to_str().unwrap(),
            &own,
        ])
        .env("HOIST_PASSWORD", "pw"),
    );
    run_ok(&mut verify(&keys[1].1, &own));
}

/// True when oras-py (PyPI `oras`, installed by .ci/run) can be imported; else SKIPPED (a panic under
/// CI=true).
fn have_oras_py() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import oras.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("oras-py is required under CI=true (.ci/run installs it)");
        }
        eprintln!("SKIPPED: oras-py (python3 -m pip install oras) is not installed");
    }
    ok
}

/// Runs a Python script with oras-py in `dir`.
fn oras_py(dir: &Path, script: &str) -> String {
    run_ok(
        std::process::Command::new("python3")
            .current_dir(dir)
            .args(["-c", script]),
    )
}

#[test]
fn oras_py_reads_what_hoist_attaches_and_hoist_reads_what_oras_py_pushes() {
    if !require_tool("docker-registry") || !have_oras_py() {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let img = small_image(&layout, "app", "v1");
    let app = format!("{}:v1", reg.url("app"));
    run_ok(&mut hoist(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &app,
    ]));
    let host = app
        .trim_start_matches("docker://")
        .split('/')
        .next()
        .unwrap()
        .to_string();

    // hoist attach -> oras-py pull: the file comes back by its title, byte for byte.
    let sbom = tmp.path().join("sbom.spdx.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3","name":"hoist"}"#).unwrap();
    let out = run_ok(&mut hoist(&[
        "attach",
        "--format",
        "json",
        INSECURE,
        "--artifact-type",
        SPDX,
        &app,
        &format!("{}:{SPDX}", sbom.display()),
    ]));
    let artifact = json(&out)["digest"].as_str().unwrap().to_string();
    let pulled = tmp.path().join("pulled");
    oras_py(
        tmp.path(),
        &format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='{host}', insecure=True)\n\
             print(c.pull(target='{host}/app@{artifact}', outdir='{}'))",
            pulled.display()
        ),
    );
    assert_eq!(
        std::fs::read(pulled.join("sbom.spdx.json")).unwrap(),
        std::fs::read(&sbom).unwrap()
    );

    // oras-py push (with the image as subject) -> hoist: copied by tag into a layout beside the
    // image, verified, and listed there as a referrer of the image.
    std::fs::write(tmp.path().join("notes.txt"), "from oras-py\n").unwrap();
    let manifest_len = std::fs::metadata(
        layout
            .join("blobs/sha256")
            .join(img.digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();
    oras_py(
        tmp.path(),
        &format!(
            "import oras.client, oras.oci\n\
             c = oras.client.OrasClient(hostname='{host}', insecure=True)\n\
             s = oras.oci.Subject(mediaType='application/vnd.oci.image.manifest.v1+json', digest='{}', size={manifest_len})\n\
             c.push(target='{host}/app:notes', files=['notes.txt'], subject=s)",
            img.digest
        ),
    );
    let both = tmp.path().join("both");
    for (from, tag) in [
        (app.clone(), "v1"),
        (format!("{}:notes", reg.url("app")), "notes"),
    ] {
        run_ok(&mut hoist(&[
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            &from,
            &format!("oci:{}:{tag}", both.display()),
        ]));
    }
    run_ok(&mut hoist(&[
        "verify",
        &format!("oci:{}:notes", both.display()),
    ]));
    let tree = referrers(&format!("oci:{}:v1", both.display()), &[]);
    assert_eq!(digests(&tree["referrers"]).len(), 1, "{tree}");
}

#[test]
fn a_sig_tag_update_lost_to_a_concurrent_signer_is_made_again() {
    let reg = ApiRegistry::start_losing(false, false, true);
    let tmp = tempfile::tempdir().unwrap();
    let (image, digest) = push_small(&reg, tmp.path());
    let prefix = tmp.path().join("k");
    run_ok(
        hoist(&[
            "generate-key",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ])
        .env("HOIST_PASSWORD", "pw"),
    );
    run_ok(
        hoist(&[
            "sign",
            INSECURE,
            "--key",
            prefix.with_extension("key").to_str().unwrap(),
            &image,
        ])
        .env("HOIST_PASSWORD", "pw"),
    );
    let tag = format!("sha256-{}.sig", digest.strip_prefix("sha256:").unwrap());
    let puts = reg
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with(&tag))
        .count();
    assert_eq!(
        puts, 2,
        "the lost signature was detected by the re-read and written again"
    );
    run_ok(&mut hoist(&[
        "verify",
        INSECURE,
        "--key",
        prefix.with_extension("pub").to_str().unwrap(),
        &image,
    ]));
}

#[test]
fn sync_referrers_copies_referrers_added_after_the_image_was_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_image(&src, "app", "v1");
    let dst = tmp.path().join("dst");
    let sync = || {
        run_ok(&mut hoist(&[
            "sync",
            "--src",
            "oci",
            "--dest",
            "oci",
            "--referrers",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
        ]))
    };
    sync();
    let dst_ref = format!("oci:{}:v1", dst.display());
    assert!(digests(&referrers(&dst_ref, &[])["referrers"]).is_empty());
    let sbom = attach(&format!("oci:{}:v1", src.display()), SPDX, tmp.path(), &[]);
    // The image is up to date, but with --referrers the new SBOM still travels.
    sync();
    assert_eq!(digests(&referrers(&dst_ref, &[])["referrers"]), [sbom]);
}
