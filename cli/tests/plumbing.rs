//! The registry plumbing verbs against a real registry (Debian's docker-registry on 127.0.0.1) with
//! skopeo as the peer, and on OCI layouts: `delete` (a manifest, or one tag), `tag`, and `catalog`
//! (also against a fake registry that pages).

mod common;

use std::process::Command;

use common::fake_registry::{FakeServer, Reply};
use common::registry::{Registry, skopeo_raw};
use common::{hoist, require_tool, run_fail, run_ok, synth};
use serde_json::Value;

const INSECURE: &str = "--tls-verify=false";

fn tools() -> bool {
    require_tool("docker-registry") && require_tool("skopeo")
}

fn sha256(bytes: &[u8]) -> String {
    hoist::Digest::sha256(bytes).to_string()
}

/// Pushes a small image to `repo` under each of `tags`; returns its manifest digest.
fn push(reg: &Registry, repo: &str, tags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    synth::write_image(&layout, "v1", 1, 100, 1);
    let src = format!("oci:{}:v1", layout.display());
    for t in tags {
        run_ok(&mut hoist(&[
            "copy",
            "--dest-tls-verify=false",
            &src,
            &format!("{}:{t}", reg.url(repo)),
        ]));
    }
    sha256(run_ok(&mut hoist(&["inspect", "--raw", &src])).as_bytes())
}

/// The sorted tags `hoist list-tags` reports, empty when the registry says the repository has none
/// or is unknown.
fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let out = hoist(&["list-tags", INSECURE, &reg.url(repo)])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut t: Vec<String> = v["Tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// True when skopeo finds the image.
fn skopeo_finds(reference: &str) -> bool {
    Command::new("skopeo")
        .args(["inspect", "--raw", INSECURE, reference])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn delete_by_tag_deletes_the_manifest_and_every_tag_as_skopeo_delete_does() {
    if !tools() {
        return;
    }
    let reg = Registry::start();
    let digest = push(&reg, "mine/app", &["v1", "v2"]);
    assert_eq!(push(&reg, "theirs/app", &["v1", "v2"]), digest);
    let keep = push(&reg, "mine/other", &["v1"]);

    let out = run_ok(&mut hoist(&[
        "delete",
        INSECURE,
        "--format",
        "json",
        &format!("{}:v1", reg.url("mine/app")),
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["deleted"], "manifest");
    run_ok(Command::new("skopeo").args([
        "delete",
        INSECURE,
        &format!("{}:v1", reg.url("theirs/app")),
    ]));

    // Both tags went with the manifest, in both repositories alike; another repository is untouched.
    for repo in ["mine/app", "theirs/app"] {
        for t in ["v1", "v2"] {
            assert!(
                !skopeo_finds(&format!("{}:{t}", reg.url(repo))),
                "{repo}:{t}"
            );
        }
        assert!(!skopeo_finds(&format!("{}@{digest}", reg.url(repo))));
    }
    assert_eq!(tags(&reg, "mine/app"), tags(&reg, "theirs/app"));
    assert_eq!(tags(&reg, "mine/other"), ["v1"]);
    assert_eq!(
        sha256(&skopeo_raw(
            &format!("{}:v1", reg.url("mine/other")),
            &[INSECURE]
        )),
        keep
    );

    // What is not there exits 2, by tag and by digest.
    for gone in [
        format!("{}:v1", reg.url("mine/app")),
        format!("{}@{digest}", reg.url("mine/app")),
    ] {
        let out = run_fail(&mut hoist(&["delete", INSECURE, &gone]));
        assert_eq!(out.status.code(), Some(2), "{gone}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    }

    // By digest, as skopeo takes it.
    let digest = push(&reg, "bydigest/app", &["a", "b"]);
    run_ok(&mut hoist(&[
        "delete",
        INSECURE,
        &format!("{}@{digest}", reg.url("bydigest/app")),
    ]));
    assert!(!skopeo_finds(&format!("{}:a", reg.url("bydigest/app"))));
    assert!(!skopeo_finds(&format!("{}:b", reg.url("bydigest/app"))));
}

#[test]
fn tag_then_delete_tag_only_keeps_the_image_and_its_other_tags() {
    if !tools() {
        return;
    }
    let reg = Registry::start();
    let digest = push(&reg, "team/app", &["v1"]);
    let v1 = format!("{}:v1", reg.url("team/app"));
    let raw = skopeo_raw(&v1, &[INSECURE]);

    let out = run_ok(&mut hoist(&[
        "tag", INSECURE, "--format", "json", &v1, "v2", "latest",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(tags(&reg, "team/app"), ["latest", "v1", "v2"]);
    for t in ["v2", "latest"] {
        // The very same bytes, so the same digest.
        assert_eq!(
            skopeo_raw(&format!("{}:{t}", reg.url("team/app")), &[INSECURE]),
            raw
        );
    }

    // distribution 2.8 has no tag deletion: the throw-away manifest technique is used.
    let out = run_ok(&mut hoist(&[
        "delete",
        INSECURE,
        "--tag-only",
        "--format",
        "json",
        &format!("{}:v2", reg.url("team/app")),
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deleted"], "tag-repointed");
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(tags(&reg, "team/app"), ["latest", "v1"]);
    assert_eq!(skopeo_raw(&v1, &[INSECURE]), raw);
    assert_eq!(
        skopeo_raw(&format!("{}@{digest}", reg.url("team/app")), &[INSECURE]),
        raw
    );

    // A tag that does not exist exits 2 and changes nothing; a digest is not a tag; bad tags are
    // refused before anything is sent.
    let out = run_fail(&mut hoist(&[
        "delete",
        INSECURE,
        "--tag-only",
        &format!("{}:nope", reg.url("team/app")),
    ]));
    assert_eq!(out.status.code(), Some(2));
    let out = run_fail(&mut hoist(&[
        "delete",
        INSECURE,
        "--tag-only",
        &format!("{}@{digest}", reg.url("team/app")),
    ]));
    assert_eq!(out.status.code(), Some(2));
    let out = run_fail(&mut hoist(&["tag", INSECURE, &v1, "-bad"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(tags(&reg, "team/app"), ["latest", "v1"]);
    let out = run_fail(&mut hoist(&[
        "tag",
        INSECURE,
        &format!("{}:nope", reg.url("team/app")),
        "x",
    ]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn delete_tag_only_on_a_registry_without_deletion_leaves_the_tag_where_it_was() {
    if !tools() {
        return;
    }
    let reg = Registry::start_without_delete();
    let digest = push(&reg, "team/app", &["v1", "v2"]);
    let v2 = format!("{}:v2", reg.url("team/app"));
    let out = run_fail(&mut hoist(&["delete", INSECURE, "--tag-only", &v2]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not allow deletion"), "{err}");
    // The tag still names the image: it was never moved to the throw-away manifest.
    assert_eq!(sha256(&skopeo_raw(&v2, &[INSECURE])), digest);
    assert_eq!(tags(&reg, "team/app"), ["v1", "v2"]);
    let out = run_fail(&mut hoist(&["delete", INSECURE, &v2]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(tags(&reg, "team/app"), ["v1", "v2"]);
}

#[test]
fn tag_and_delete_in_a_layout_then_gc_removes_the_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    synth::write_image(&layout, "v1", 1, 100, 1);
    let at = |t: &str| format!("oci:{}{t}", layout.display());
    let layout_tags = || {
        let mut t: Vec<String> = run_ok(&mut hoist(&["tags", &at("")]))
            .lines()
            .map(String::from)
            .collect();
        t.sort();
        t
    };
    let digest = sha256(run_ok(&mut hoist(&["inspect", "--raw", &at(":v1")])).as_bytes());
    run_ok(&mut hoist(&["tag", &at(":v1"), "v2", "stable"]));
    assert_eq!(layout_tags(), ["stable", "v1", "v2"]);
    assert_eq!(
        sha256(run_ok(&mut hoist(&["inspect", "--raw", &at(":stable")])).as_bytes()),
        digest
    );

    let out = run_ok(&mut hoist(&["delete", &at(":v2")]));
    assert!(out.contains(&digest), "{out}");
    assert_eq!(layout_tags(), ["stable", "v1"]);
    let out = run_fail(&mut hoist(&["delete", &at(":v2")]));
    assert_eq!(out.status.code(), Some(2));
    let out = run_fail(&mut hoist(&["delete", &at("")]));
    assert_eq!(out.status.code(), Some(2));
    let out = run_fail(&mut hoist(&["tag", &at(":v1"), "bad tag"]));
    assert_eq!(out.status.code(), Some(2));

    // Nothing is removed from blobs/ until gc; deleting the digest drops every entry of it.
    let blobs = || {
        std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs();
    run_ok(&mut hoist(&["delete", &at(&format!("@{digest}"))]));
    assert!(layout_tags().is_empty());
    assert_eq!(blobs(), before);
    run_ok(&mut hoist(&["gc", &at("")]));
    assert_eq!(blobs(), 0);
    let out = run_fail(&mut hoist(&["delete", &at(&format!("@{digest}"))]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn catalog_lists_the_repositories_pushed() {
    if !tools() {
        return;
    }
    let reg = Registry::start();
    for repo in ["team/app", "team/tool", "solo"] {
        push(&reg, repo, &["v1"]);
    }
    let url = format!("docker://{}", reg.host);
    let out = run_ok(&mut hoist(&["catalog", INSECURE, &url]));
    assert_eq!(out, "solo\nteam/app\nteam/tool\n");
    let out = run_ok(&mut hoist(&[
        "catalog",
        INSECURE,
        "--format",
        "json",
        "--page-size",
        "2",
        &url,
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Registry"], reg.host.as_str());
    assert_eq!(
        v["Repositories"],
        serde_json::json!(["solo", "team/app", "team/tool"])
    );
}

/// A registry whose catalog comes in pages of two, linked by `Link` headers, `pages` pages in all
/// (`None`: it never ends); page N's repositories are `rN-a` and `rN-b`. With `bad`, page 1 holds
/// a name that is no repository name.
fn paged_catalog(pages: Option<u64>, bad: bool) -> FakeServer {
    FakeServer::start(move |req| {
        if req.path == "/v2/" {
            return Reply::status(200);
        }
        if req.path != "/v2/_catalog" {
            return Reply::status(404);
        }
        let page: u64 = req
            .query
            .split('&')
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if pages.is_none_or(|p| page + 1 < p) {
            headers.push((
                "Link".into(),
                format!("</v2/_catalog?page={}>; rel=\"next\"", page + 1),
            ));
        }
        let second = if bad && page == 1 {
            "../Bad".to_string()
        } else {
            format!("r{page}-b")
        };
        Reply::Full(
            200,
            headers,
            format!(r#"{{"repositories":["r{page}-a","{second}"]}}"#).into_bytes(),
        )
    })
}

#[test]
fn catalog_follows_pages_and_stops_at_the_caps() {
    let server = paged_catalog(Some(3), false);
    let url = format!("docker://{}", server.host);
    let out = run_ok(&mut hoist(&["catalog", INSECURE, &url]));
    assert_eq!(out, "r0-a\nr0-b\nr1-a\nr1-b\nr2-a\nr2-b\n");

    let endless = paged_catalog(None, false);
    let url = format!("docker://{}", endless.host);
    let out = run_fail(&mut hoist(&[
        "catalog",
        INSECURE,
        "--retry-times",
        "0",
        "--max-tag-pages",
        "7",
        &url,
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--max-tag-pages") && err.contains("7 pages"),
        "{err}"
    );
    let asked = endless
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/_catalog")
        .count();
    assert_eq!(asked, 7);
    let out = run_fail(&mut hoist(&["catalog", INSECURE, "--max-tags", "5", &url]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--max-tags") && err.contains("5 repositories"),
        "{err}"
    );

    let bad = paged_catalog(Some(3), true);
    let out = run_fail(&mut hoist(&[
        "catalog",
        INSECURE,
        &format!("docker://{}", bad.host),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("../Bad") && err.contains("catalog"), "{err}");
}

#[test]
fn blob_put_then_get_round_trips_verified_in_a_registry_and_a_layout() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();
    let want = sha256(&data);

    let reg = Registry::start();
    let repo = reg.url("team/blobs");
    let out = run_ok(&mut hoist(&[
        "blob",
        "put",
        INSECURE,
        &repo,
        file.to_str().unwrap(),
    ]));
    assert_eq!(out.trim(), want);
    let uploads = reg.count("POST", "/blobs/uploads/");
    assert_eq!(uploads, 1);
    // From stdin; the registry has it, so nothing is uploaded again.
    let out = run_ok(
        common::sh(&format!(
            "hoist blob put {INSECURE} {repo} - < {}",
            file.display()
        ))
        .env("PATH", path_with_hoist()),
    );
    assert_eq!(out.trim(), want);
    assert_eq!(reg.count("POST", "/blobs/uploads/"), uploads);

    let got = dir.path().join("got");
    run_ok(&mut hoist(&[
        "blob",
        "get",
        INSECURE,
        &format!("{repo}@{want}"),
        got.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let out = hoist(&["blob", "get", INSECURE, &format!("{repo}@{want}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);

    // A blob that is not there: exit 2, no file.
    let missing = sha256(b"not there");
    let none = dir.path().join("none");
    let out = run_fail(&mut hoist(&[
        "blob",
        "get",
        INSECURE,
        &format!("{repo}@{missing}"),
        none.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(!none.exists());
    // A reference without a digest is a usage error.
    let out = run_fail(&mut hoist(&[
        "blob",
        "get",
        INSECURE,
        &format!("{repo}:v1"),
    ]));
    assert_eq!(out.status.code(), Some(2));

    // A layout: the blob lands under blobs/sha256 and reads back.
    let layout = dir.path().join("l");
    synth::write_image(&layout, "v1", 1, 100, 1);
    let out = run_ok(&mut hoist(&[
        "blob",
        "put",
        &format!("oci:{}", layout.display()),
        file.to_str().unwrap(),
    ]));
    assert_eq!(out.trim(), want);
    assert_eq!(
        std::fs::read(layout.join("blobs/sha256").join(&want["sha256:".len()..])).unwrap(),
        data
    );
    let out = hoist(&[
        "blob",
        "get",
        &format!("oci:{}@{want}", layout.display()),
        "-",
    ])
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    let out = run_fail(&mut hoist(&[
        "blob",
        "get",
        &format!("oci:{}@{missing}", layout.display()),
        none.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(!none.exists());
}

/// `PATH` with the hoist under test first.
fn path_with_hoist() -> String {
    format!(
        "{}:{}",
        common::hoist_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn blob_get_of_a_corrupt_blob_fails_and_leaves_the_named_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    synth::write_image(&layout, "v1", 1, 5000, 1);
    let m: Value = serde_json::from_str(&run_ok(&mut hoist(&[
        "inspect",
        "--raw",
        &format!("oci:{}:v1", layout.display()),
    ])))
    .unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let path = layout.join("blobs/sha256").join(&layer["sha256:".len()..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let out_file = dir.path().join("out");
    std::fs::write(&out_file, "old\n").unwrap();
    let reference = format!("oci:{}@{layer}", layout.display());
    let out = run_fail(&mut hoist(&[
        "blob",
        "get",
        &reference,
        out_file.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&layer), "{err}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "old\n");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".hoist-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = run_fail(&mut hoist(&["blob", "get", &reference]));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn manifest_digest_agrees_with_skopeo() {
    if !require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    synth::write_image(&layout, "v1", 1, 100, 1);
    let src = format!("oci:{}:v1", layout.display());
    let oci = dir.path().join("oci.json");
    std::fs::write(&oci, run_ok(&mut hoist(&["inspect", "--raw", &src]))).unwrap();
    let docker_dir = dir.path().join("docker");
    run_ok(&mut hoist(&[
        "copy",
        "--format",
        "v2s2",
        &src,
        &format!("dir:{}", docker_dir.display()),
    ]));
    for file in [oci, docker_dir.join("manifest.json")] {
        let ours = run_ok(&mut hoist(&["manifest-digest", file.to_str().unwrap()]));
        let theirs =
            run_ok(Command::new("skopeo").args(["manifest-digest", file.to_str().unwrap()]));
        assert_eq!(ours, theirs, "{}", file.display());
        assert_eq!(ours.trim(), sha256(&std::fs::read(&file).unwrap()));
    }
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not json").unwrap();
    let out = run_fail(&mut hoist(&["manifest-digest", junk.to_str().unwrap()]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk"));
}

/// A `docker save` archive of two images sharing a layer, tagged `one:v1`, `one:latest` and
/// `two:v2`.
fn two_image_archive(path: &std::path::Path) {
    use common::docker::{layer_tar, write_tar};
    let shared = layer_tar(&[("etc/shared", b"shared\n")]);
    let own = layer_tar(&[("etc/two", b"two\n")]);
    let hex = |b: &[u8]| sha256(b)["sha256:".len()..].to_string();
    let config = |diff_ids: Vec<String>| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    };
    let c1 = config(vec![sha256(&shared)]);
    let c2 = config(vec![sha256(&shared), sha256(&own)]);
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": format!("{}.json", hex(&c1)), "RepoTags": ["one:v1", "one:latest"],
         "Layers": [format!("{}/layer.tar", hex(&shared))]},
        {"Config": format!("{}.json", hex(&c2)), "RepoTags": ["two:v2"],
         "Layers": [format!("{}/layer.tar", hex(&shared)), format!("{}/layer.tar", hex(&own))]},
    ]))
    .unwrap();
    write_tar(
        path,
        &[
            (format!("{}.json", hex(&c1)), c1.clone()),
            (format!("{}.json", hex(&c2)), c2.clone()),
            (format!("{}/layer.tar", hex(&shared)), shared.clone()),
            (format!("{}/layer.tar", hex(&own)), own.clone()),
            ("manifest.json".to_string(), manifest),
        ],
    );
}

#[test]
fn tags_of_a_docker_archive_are_the_repo_tags_of_every_image() {
    if !require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("two.tar");
    two_image_archive(&archive);
    let reference = format!("docker-archive:{}", archive.display());
    let out = run_ok(&mut hoist(&["tags", &reference]));
    assert_eq!(out, "one:v1\none:latest\ntwo:v2\n");
    let ours: Value =
        serde_json::from_str(&run_ok(&mut hoist(&["list-tags", &reference]))).unwrap();
    let theirs: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["list-tags", &reference]),
    ))
    .unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(
        ours["Tags"],
        serde_json::json!(["one:v1", "one:latest", "two:v2"])
    );
    // The archive's images are still picked by name or index for other verbs.
    run_ok(&mut hoist(&["inspect", &format!("{reference}:two:v2")]));
    run_ok(&mut hoist(&["inspect", &format!("{reference}:@1")]));
}

#[test]
fn shared_blob_dirs_are_read_and_written_as_skopeo_does() {
    // gzip layers (umoci's): skopeo would compress uncompressed ones on the way, changing digests.
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    common::images::build_two_layer(&dir.path().join("src"), "v1");
    let src = format!("oci:{}:v1", d("src"));
    let digest = sha256(run_ok(&mut hoist(&["inspect", "--raw", &src])).as_bytes());
    let raw = |reference: &str| {
        sha256(&run_ok(Command::new("skopeo").args(["inspect", "--raw", reference])).into_bytes())
    };
    let files = |p: &str| -> usize {
        std::fs::read_dir(dir.path().join(p))
            .map(|r| r.count())
            .unwrap_or(0)
    };

    // hoist writes into a shared directory; the layout keeps no blobs; skopeo reads it from there.
    run_ok(&mut hoist(&[
        "copy",
        "--dest-shared-blob-dir",
        &d("shared"),
        &src,
        &format!("oci:{}:v1", d("ours")),
    ]));
    assert_eq!(files("ours/blobs/sha256"), 0);
    assert_eq!(files("shared/sha256"), 4, "config, two layers, manifest");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--src-shared-blob-dir",
        &d("shared"),
        &format!("oci:{}:v1", d("ours")),
        &format!("oci:{}:v1", d("back")),
    ]));
    assert_eq!(raw(&format!("oci:{}:v1", d("back"))), digest);

    // skopeo writes into one; hoist reads it from there (and fails without the flag).
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-shared-blob-dir",
        &d("theirs-shared"),
        &src,
        &format!("oci:{}:v1", d("theirs")),
    ]));
    let theirs = format!("oci:{}:v1", d("theirs"));
    run_ok(&mut hoist(&[
        "copy",
        "--src-shared-blob-dir",
        &d("theirs-shared"),
        &theirs,
        &format!("oci:{}:v1", d("plain")),
    ]));
    run_ok(&mut hoist(&["verify", &format!("oci:{}:v1", d("plain"))]));
    assert_eq!(raw(&format!("oci:{}:v1", d("plain"))), digest);
    run_fail(&mut hoist(&[
        "copy",
        &theirs,
        &format!("oci:{}:v1", d("plain2")),
    ]));

    // Only OCI layouts take it.
    let out = run_fail(&mut hoist(&[
        "copy",
        "--dest-shared-blob-dir",
        &d("shared"),
        &src,
        &format!("dir:{}", d("dir")),
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shared blob directory"));
}

/// `untag` works on a registry repository as on a layout (one tag gone, the image and its other
/// tags kept), through the one repository interface; a missing tag is exit 2 after the others.
#[test]
fn untag_removes_registry_tags_as_delete_tag_only_does() {
    if !tools() {
        return;
    }
    let reg = Registry::start();
    let digest = push(&reg, "team/untag", &["v1", "v2", "v3"]);
    let repo = reg.url("team/untag");
    run_ok(&mut hoist(&[
        "untag",
        INSECURE,
        &format!("{repo}:v2"),
        &format!("{repo}:v3"),
    ]));
    assert_eq!(tags(&reg, "team/untag"), ["v1"]);
    let raw = skopeo_raw(&format!("{repo}:v1"), &[INSECURE]);
    assert_eq!(sha256(&raw), digest);

    let out = run_fail(&mut hoist(&[
        "untag",
        INSECURE,
        &format!("{repo}:gone"),
        &format!("{repo}:v1"),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gone"));
    // The tag after the missing one was still removed, as in a layout.
    assert!(tags(&reg, "team/untag").is_empty());

    // Transports that are not repositories say so, naming the transport.
    let out = run_fail(&mut hoist(&["untag", "dir:/tmp/x"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dir is not a repository"), "{err}");
}
