//! `hoist sync` against a real registry (Debian's docker-registry on 127.0.0.1) and skopeo: a
//! repository's tags into `dir:` directories (named as `skopeo sync` names them) and into one OCI
//! layout, a second run that skips every image without reading a blob, a YAML source, registry to
//! registry, a `dir` tree back to a registry, and clear failures for bad YAML and missing repositories.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::registry::{Registry, skopeo_raw};
use common::{docker, hoist, images, require_tool, run_fail, run_ok};

fn tools() -> bool {
    require_tool("docker-registry")
        && require_tool("skopeo")
        && require_tool("umoci")
        && require_tool("oci-image-tool")
}

fn sha256(bytes: &[u8]) -> String {
    hoist::Digest::sha256(bytes).to_string()
}

const INSECURE: &str = "--tls-verify=false";

/// A registry holding `team/app:v1` and `team/app:v2`, two different two-layer umoci images; returns
/// the registry and the manifest digest of each tag.
fn registry_with_two_tags(work: &Path) -> (Registry, Vec<(String, String)>) {
    let layout = work.join("built");
    images::build_two_layer(&layout, "v1");
    images::build_two_layer(&layout, "v2");
    let reg = Registry::start();
    let mut digests = Vec::new();
    for tag in ["v1", "v2"] {
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("{}:{tag}", reg.url("team/app")),
        ]));
        let raw = skopeo_raw(&format!("{}:{tag}", reg.url("team/app")), &[INSECURE]);
        digests.push((tag.to_string(), sha256(&raw)));
    }
    assert_ne!(
        digests[0].1, digests[1].1,
        "the two tags are different images"
    );
    (reg, digests)
}

/// Runs `hoist sync` and returns its stderr (the per-image lines and the summary).
fn sync_ok(args: &[&str]) -> String {
    let out = hoist(&[&["sync"], args].concat()).output().expect("hoist");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hoist sync {args:?} failed:\n{err}");
    err
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file below `dir` with its inode and mtime, to show a second run rewrote nothing.
fn file_identities(dir: &Path) -> Vec<(std::path::PathBuf, u64, i64, i64)> {
    let mut v = Vec::new();
    for e in walkdir(dir) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        v.push((e, m.ino(), m.mtime(), m.mtime_nsec()));
    }
    v.sort();
    v
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn repository_to_dir_names_images_as_skopeo_and_a_second_run_skips_both() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (reg, digests) = registry_with_two_tags(work.path());
    let repo = format!("{}/team/app", reg.host);
    let out = work.path().join("hoist-out");
    let o = out.display().to_string();

    let first = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &repo,
        &o,
    ]);
    assert!(
        first.contains("synced 2 images: 2 copied, 0 skipped (up to date), 0 failed"),
        "{first}"
    );

    // skopeo sync makes the same directory names, and the same manifests in them.
    let sk = work.path().join("skopeo-out");
    run_ok(Command::new("skopeo").args([
        "sync",
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &repo,
        &sk.display().to_string(),
    ]));
    assert_eq!(sorted_names(&out), vec!["app:v1", "app:v2"]);
    assert_eq!(sorted_names(&out), sorted_names(&sk));
    for (tag, digest) in &digests {
        let name = format!("app:{tag}");
        let ours = std::fs::read(out.join(&name).join("manifest.json")).unwrap();
        let theirs = std::fs::read(sk.join(&name).join("manifest.json")).unwrap();
        assert_eq!(&sha256(&ours), digest);
        assert_eq!(ours, theirs, "{name}: the same manifest bytes as skopeo's");
        run_ok(&mut hoist(&["verify", &format!("dir:{o}/{name}")]));
    }

    // The second run reads the two manifests, finds them at the destination, and copies nothing.
    let before = file_identities(&out);
    let blob_gets = reg.count("GET", "/blobs/");
    let second = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &repo,
        &o,
    ]);
    assert_eq!(
        second.matches("skipped (up to date)").count(),
        3,
        "two image lines and the summary: {second}"
    );
    assert!(
        second.contains("synced 2 images: 0 copied, 2 skipped (up to date), 0 failed"),
        "{second}"
    );
    assert_eq!(reg.count("GET", "/blobs/"), blob_gets, "no blob read again");
    assert_eq!(file_identities(&out), before, "no file rewritten");

    // One changed tag is copied again; the other is still up to date.
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{}:v1", reg.url("team/app")),
        &format!("{}:v2", reg.url("team/app")),
    ]));
    let third = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &repo,
        &o,
    ]);
    assert!(
        third.contains("synced 2 images: 1 copied, 1 skipped (up to date), 0 failed"),
        "{third}"
    );
    let v2 = std::fs::read(out.join("app:v2/manifest.json")).unwrap();
    assert_eq!(sha256(&v2), digests[0].1);
}

#[test]
fn repository_into_one_oci_layout_tags_each_image_and_one_tag_alone() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (reg, digests) = registry_with_two_tags(work.path());
    let layout = work.path().join("mirror");
    let l = layout.display().to_string();
    let repo = format!("{}/team/app", reg.host);

    let first = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "oci",
        "--src-tls-verify=false",
        &repo,
        &l,
    ]);
    assert!(first.contains("2 copied"), "{first}");
    let tags = run_ok(&mut hoist(&["tags", &format!("oci:{l}")]));
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, vec!["app:v1", "app:v2"]);
    for (tag, digest) in &digests {
        let reference = format!("oci:{l}:app:{tag}");
        let raw = run_ok(&mut hoist(&["inspect", "--raw", &reference]));
        assert_eq!(&sha256(raw.as_bytes()), digest);
        docker::validate(&layout, &format!("app:{tag}"));
    }
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{l}")]));
    let second = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "oci",
        "--src-tls-verify=false",
        &repo,
        &l,
    ]);
    assert!(
        second.contains("0 copied, 2 skipped (up to date)"),
        "{second}"
    );

    // --scoped keeps the full name; a tagged source syncs that image alone.
    let second_layout = work.path().join("scoped");
    let out = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "oci",
        "--scoped",
        "--src-tls-verify=false",
        &format!("{repo}:v2"),
        &second_layout.display().to_string(),
    ]);
    assert!(out.contains("synced 1 image: 1 copied"), "{out}");
    let tags = run_ok(&mut hoist(&[
        "tags",
        &format!("oci:{}", second_layout.display()),
    ]));
    assert_eq!(tags.trim(), format!("{repo}:v2"));
}

#[test]
fn yaml_source_two_images_registry_to_registry_and_dir_tree_back() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (reg, digests) = registry_with_two_tags(work.path());
    // A second repository holding the v1 image under another name.
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{}:v1", reg.url("team/app")),
        &format!("{}:1.0", reg.url("tools/tool")),
    ]));
    let yaml = work.path().join("sync.yml");
    std::fs::write(
        &yaml,
        format!(
            "{host}:\n  tls-verify: false\n  images:\n    team/app:\n      - v2\n  images-by-tag-regex:\n    tools/tool: ^1\\.\n",
            host = reg.host
        ),
    )
    .unwrap();
    let ns = format!("{}/mirror", reg.host);
    let out = sync_ok(&[
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        &yaml.display().to_string(),
        &ns,
    ]);
    assert!(
        out.contains("synced 2 images: 2 copied, 0 skipped (up to date), 0 failed"),
        "{out}"
    );
    // skopeo reads both from the mirror with the source's digests.
    let app = skopeo_raw(&format!("{}:v2", reg.url("mirror/app")), &[INSECURE]);
    assert_eq!(sha256(&app), digests[1].1);
    let tool = skopeo_raw(&format!("{}:1.0", reg.url("mirror/tool")), &[INSECURE]);
    assert_eq!(sha256(&tool), digests[0].1);
    let again = sync_ok(&[
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        &yaml.display().to_string(),
        &ns,
    ]);
    assert!(
        again.contains("0 copied, 2 skipped (up to date)"),
        "{again}"
    );

    // Registry to registry, then that repository to a dir tree and back into another namespace.
    let ns2 = format!("{}/copy", reg.host);
    let out = sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "docker",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{}/team/app", reg.host),
        &ns2,
    ]);
    assert!(out.contains("2 copied"), "{out}");
    let tree = work.path().join("tree");
    sync_ok(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &format!("{}/copy/app", reg.host),
        &tree.display().to_string(),
    ]);
    let ns3 = format!("{}/back", reg.host);
    let out = sync_ok(&[
        "--src",
        "dir",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        &tree.display().to_string(),
        &ns3,
    ]);
    assert!(out.contains("synced 2 images: 2 copied"), "{out}");
    for (tag, digest) in &digests {
        let raw = skopeo_raw(&format!("{}:{tag}", reg.url("back/app")), &[INSECURE]);
        assert_eq!(&sha256(&raw), digest, "back/app:{tag}");
    }
    let listed = run_ok(Command::new("skopeo").args(["list-tags", INSECURE, &reg.url("back/app")]));
    assert!(
        listed.contains("\"v1\"") && listed.contains("\"v2\""),
        "{listed}"
    );
}

#[test]
fn bad_yaml_and_missing_repositories_fail_clearly_and_keep_going_goes_on() {
    if !tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (reg, _) = registry_with_two_tags(work.path());
    let dest = work.path().join("dest");
    let d = dest.display().to_string();
    // Exit 1 for a bad file, 2 when what failed is an image or repository that does not exist.
    let fail_with = |code: i32, args: &[&str]| -> String {
        let out = run_fail(&mut hoist(&[&["sync"], args].concat()));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "exit code {code}: {err}");
        err
    };
    let fail = |args: &[&str]| fail_with(1, args);
    let missing = |args: &[&str]| fail_with(2, args);

    // A misspelt key, and a file that is not YAML of the expected shape.
    let bad = work.path().join("bad.yml");
    std::fs::write(&bad, format!("{}:\n  image:\n    team/app: []\n", reg.host)).unwrap();
    let err = fail(&[
        "--src",
        "yaml",
        "--dest",
        "dir",
        &bad.display().to_string(),
        &d,
    ]);
    assert!(
        err.contains("bad.yml") && err.contains("unknown field `image`"),
        "{err}"
    );
    std::fs::write(&bad, "registry: [unclosed\n").unwrap();
    let err = fail(&[
        "--src",
        "yaml",
        "--dest",
        "dir",
        &bad.display().to_string(),
        &d,
    ]);
    assert!(err.contains("invalid sync file"), "{err}");
    let err = fail(&[
        "--src",
        "yaml",
        "--dest",
        "dir",
        &work.path().join("absent.yml").display().to_string(),
        &d,
    ]);
    assert!(err.contains("absent.yml"), "{err}");

    // A repository that does not exist is named.
    let err = missing(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &format!("{}/team/nope", reg.host),
        &d,
    ]);
    assert!(
        err.contains("team/nope") && err.contains("not found"),
        "{err}"
    );
    assert!(!dest.exists(), "nothing written");

    // In a YAML list: stops at the missing repository, or with --keep-going copies the rest and
    // still fails at the end.
    let yaml = work.path().join("mixed.yml");
    std::fs::write(
        &yaml,
        format!(
            "{}:\n  tls-verify: false\n  images:\n    team/app: [v1]\n    team/nope: []\n",
            reg.host
        ),
    )
    .unwrap();
    let y = yaml.display().to_string();
    let err = missing(&["--src", "yaml", "--dest", "dir", &y, &d]);
    assert!(
        err.contains("docker://") && err.contains("team/nope"),
        "{err}"
    );
    assert!(
        !dest.exists(),
        "nothing written before the list was complete"
    );
    let err = missing(&["--src", "yaml", "--dest", "dir", "--keep-going", &y, &d]);
    assert!(
        err.contains("synced 2 images: 1 copied, 0 skipped (up to date), 1 failed"),
        "{err}"
    );
    assert!(dest.join("app:v1/manifest.json").is_file());

    // A tag that does not exist: the image is named, and nothing is created for it.
    let err = missing(&[
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        &format!("{}/team/app:v9", reg.host),
        &d,
    ]);
    assert!(
        err.contains("failed docker://") && err.contains("app:v9"),
        "{err}"
    );
    assert!(!dest.join("app:v9").exists());

    // skopeo's own refusals: dir to dir, and an unknown transport (a usage error).
    let err = fail(&["--src", "dir", "--dest", "dir", &d, &format!("{d}-2")]);
    assert!(err.contains("dir to dir"), "{err}");
    let out = run_fail(&mut hoist(&[
        "sync", "--src", "tarball", "--dest", "dir", "x", &d,
    ]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_yaml_alias_bomb_or_deep_nesting_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // Aliases reused across registries: 3000 tags x 1000 images x 200 registries from 38 KB.
    let mut bomb = format!(
        "t: &t [{}]\ni: &i {{{}}}\n",
        (0..3000)
            .map(|i| format!("\"v{i}\""))
            .collect::<Vec<_>>()
            .join(","),
        (0..1000)
            .map(|i| format!("im{i}: *t"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for r in 0..200 {
        bomb.push_str(&format!("r{r}.example: {{images: *i}}\n"));
    }
    let deep = format!(
        "a.example:\n  images:\n    x: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (name, text, needle) in [
        ("bomb.yml", bomb, "excessive aliasing"),
        ("deep.yml", deep, "nested deeper than"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let started = std::time::Instant::now();
        let out = run_fail(&mut hoist(&[
            "sync",
            "--src",
            "yaml",
            "--dest",
            "dir",
            &file.display().to_string(),
            &dir.path().join("out").display().to_string(),
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle) && err.contains(name), "{err}");
        // Refused before loading: well under the seconds loading would take.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
