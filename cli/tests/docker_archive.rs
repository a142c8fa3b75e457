//! The `docker-archive:` transport and Docker <-> OCI conversion, end to end, against skopeo,
//! oci-image-tool and umoci-built images.

mod common;

use std::path::Path;
use std::process::Command;

use common::docker::*;
use common::{hoist, require_tool, run_fail, run_ok};
use serde_json::Value;

fn tools() -> bool {
    require_tool("umoci") && require_tool("skopeo") && require_tool("oci-image-tool")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn hoist_json(args: &[&str]) -> Value {
    serde_json::from_str(&run_ok(&mut hoist(args))).expect("hoist JSON")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn skopeo_archive_to_oci_matches_what_skopeo_writes() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("img.tar");
    skopeo_archive(dir.path(), &archive, "example.com/app:v1");
    let src = format!("docker-archive:{}", s(&archive));

    // The synthesised manifest is skopeo's, byte for byte.
    let ours = hoist(&["inspect", "--raw", &src]).output().unwrap();
    let theirs = Command::new("skopeo")
        .args(["inspect", "--raw", &src])
        .output()
        .unwrap();
    assert_eq!(ours.stdout, theirs.stdout);
    let inspect = hoist_json(&["inspect", &src]);
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);

    let h = dir.path().join("hoist");
    let k = dir.path().join("skopeo");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &src,
        &format!("oci:{}:v1", s(&h)),
    ]));
    run_ok(Command::new("skopeo").args(["copy", "-q", &src, &format!("oci:{}:v1", s(&k))]));
    let (hr, kr) = (format!("oci:{}:v1", s(&h)), format!("oci:{}:v1", s(&k)));
    let (hc, kc) = (skopeo_config(&hr), skopeo_config(&kr));
    assert_eq!(hc["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(oci_fields(&hc), oci_fields(&kc));
    let (hm, km) = (skopeo_manifest(&hr), skopeo_manifest(&kr));
    assert_eq!(
        hm["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(layer_media_types(&hm), layer_media_types(&km));
    assert_eq!(
        layer_media_types(&hm),
        ["application/vnd.oci.image.layer.v1.tar+gzip"; 2]
    );
    // The config bytes are the archive's own: its digest is kept.
    let archived = skopeo_manifest(&src);
    assert_eq!(hm["config"]["digest"], archived["config"]["digest"]);
    validate(&h, "v1");
    run_ok(Command::new("skopeo").args(["inspect", &hr]));
    // Reading the gzip layers back gives the diff_ids.
    run_ok(&mut hoist(&["verify", &hr]));
}

#[test]
fn uncompressed_destination_keeps_the_archive_layers_byte_for_byte() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("img.tar");
    skopeo_archive(dir.path(), &archive, "example.com/app:v1");
    let h = dir.path().join("plain");
    let r = format!("oci:{}:v1", s(&h));
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--dest-compress-format",
        "none",
        &format!("docker-archive:{}", s(&archive)),
        &r,
    ]));
    let m = skopeo_manifest(&r);
    let c = skopeo_config(&r);
    let digests: Vec<&Value> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let diff_ids: Vec<&Value> = c["rootfs"]["diff_ids"].as_array().unwrap().iter().collect();
    assert_eq!(digests, diff_ids);
    assert_eq!(
        layer_media_types(&m),
        ["application/vnd.oci.image.layer.v1.tar"; 2]
    );
    validate(&h, "v1");
}

#[test]
fn oci_to_docker_archive_loads_back_through_skopeo() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    common::images::build_two_layer(&layout, "v1");
    let out = dir.path().join("out.tar");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", s(&layout)),
        &format!("docker-archive:{}:example.com/app:v1", s(&out)),
    ]));
    let src_config = skopeo_config(&format!("oci:{}:v1", s(&layout)));
    let back = dir.path().join("back");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}", s(&out)),
        &format!("oci:{}:x", s(&back)),
    ]));
    let back_config = skopeo_config(&format!("oci:{}:x", s(&back)));
    assert_eq!(src_config["rootfs"], back_config["rootfs"]);
    // skopeo finds the image by the name hoist recorded, and its layers are uncompressed tars.
    let named = format!("docker-archive:{}:example.com/app:v1", s(&out));
    let m = skopeo_manifest(&named);
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    let list = run_ok(Command::new("tar").args(["tf", &s(&out)]));
    assert!(list.lines().any(|l| l == "manifest.json"), "{list}");
    let manifest_json: Value = serde_json::from_str(&run_ok(Command::new("tar").args([
        "xOf",
        &s(&out),
        "manifest.json",
    ])))
    .unwrap();
    assert_eq!(manifest_json[0]["RepoTags"][0], "example.com/app:v1");
    let cfg_name = manifest_json[0]["Config"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", cfg_name.trim_end_matches(".json")),
        m["config"]["digest"].as_str().unwrap()
    );
    // And hoist reads its own archive back to the same diff_ids.
    let again = dir.path().join("again");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &named,
        &format!("oci:{}:x", s(&again)),
    ]));
    assert_eq!(
        skopeo_config(&format!("oci:{}:x", s(&again)))["rootfs"],
        src_config["rootfs"]
    );
}

#[test]
fn newer_format_archive_plain_and_gzipped_reads_like_skopeo() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (members, diff_ids) = newer_format_members("app:v2");
    let plain = dir.path().join("new.tar");
    write_tar(&plain, &members);
    let gz = dir.path().join("new.tar.gz");
    run_ok(&mut common::sh(&format!(
        "gzip -c {} > {}",
        s(&plain),
        s(&gz)
    )));
    for (i, archive) in [&plain, &gz].into_iter().enumerate() {
        let dst = dir.path().join(format!("out{i}"));
        let r = format!("oci:{}:v2", s(&dst));
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &format!("docker-archive:{}:app:v2", s(archive)),
            &r,
        ]));
        let c = skopeo_config(&r);
        assert_eq!(c["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
        validate(&dst, "v2");
    }
    let k = dir.path().join("skopeo");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}", s(&plain)),
        &format!("oci:{}:v2", s(&k)),
    ]));
    assert_eq!(
        oci_fields(&skopeo_config(&format!("oci:{}:v2", s(&k)))),
        oci_fields(&skopeo_config(&format!(
            "oci:{}:v2",
            s(&dir.path().join("out0"))
        )))
    );
}

#[test]
fn several_images_are_chosen_by_name_or_index_and_listed_when_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let (mut members, _) = newer_format_members("app:v2");
    let mj: Value = serde_json::from_slice(&members[5].1).unwrap();
    let mut second = mj[0].clone();
    second["RepoTags"] = serde_json::json!(["other:v9"]);
    members[5].1 = serde_json::to_vec(&serde_json::json!([mj[0].clone(), second])).unwrap();
    let archive = dir.path().join("two.tar");
    write_tar(&archive, &members);
    let a = s(&archive);
    let err = stderr(&run_fail(&mut hoist(&[
        "inspect",
        &format!("docker-archive:{a}"),
    ])));
    assert!(
        err.contains("app:v2") && err.contains("other:v9") && err.contains("@1"),
        "{err}"
    );
    for sel in ["other:v9", "@1", "docker.io/library/app:v2"] {
        run_ok(&mut hoist(&[
            "inspect",
            &format!("docker-archive:{a}:{sel}"),
        ]));
    }
    let err = stderr(&run_fail(&mut hoist(&[
        "inspect",
        &format!("docker-archive:{a}:nope:v1"),
    ])));
    assert!(err.contains("nope:v1") && err.contains("other:v9"), "{err}");
}

fn no_image_written(layout: &Path) {
    let index = layout.join("index.json");
    if let Ok(text) = std::fs::read_to_string(&index) {
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["manifests"], serde_json::json!([]), "{text}");
    }
}

#[test]
fn bad_archives_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (members, _) = newer_format_members("app:v2");
    type Members = Vec<(String, Vec<u8>)>;
    let mut cases: Vec<(&str, Members, &str)> = Vec::new();
    // A layer manifest.json names is missing.
    let mut m = members.clone();
    m.remove(0);
    cases.push(("missing-layer", m, "is missing"));
    // The config is missing.
    let mut m = members.clone();
    m.remove(2);
    cases.push(("missing-config", m, "is missing"));
    // A layer whose content does not match its diff_id.
    let mut m = members.clone();
    let last = m[0].1.len() - 1100;
    m[0].1[last] ^= 0x20;
    cases.push(("bad-diff-id", m, "digest mismatch"));
    // A path-traversing member name.
    let mut m = members.clone();
    m.push(("../escape".to_string(), b"x".to_vec()));
    cases.push(("traversal", m, "escapes the archive"));
    for (name, m, want) in cases {
        let archive = dir.path().join(format!("{name}.tar"));
        write_tar(&archive, &m);
        let dst = dir.path().join(format!("dst-{name}"));
        let out = run_fail(&mut hoist(&[
            "copy",
            &format!("docker-archive:{}", s(&archive)),
            &format!("oci:{}:x", s(&dst)),
        ]));
        assert!(stderr(&out).contains(want), "{name}: {}", stderr(&out));
        no_image_written(&dst);
    }
    // A truncated archive: cut inside the first layer.
    let archive = dir.path().join("whole.tar");
    write_tar(&archive, &members);
    let bytes = std::fs::read(&archive).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..1200]).unwrap();
    let dst = dir.path().join("dst-cut");
    let out = run_fail(&mut hoist(&[
        "copy",
        &format!("docker-archive:{}", s(&cut)),
        &format!("oci:{}:x", s(&dst)),
    ]));
    let e = stderr(&out);
    assert!(
        e.contains("truncated") || e.contains("manifest.json"),
        "{e}"
    );
    no_image_written(&dst);
    // Writing a docker-archive that fails leaves no file behind.
    let target = dir.path().join("never.tar");
    run_fail(&mut hoist(&[
        "copy",
        &format!("docker-archive:{}", s(&dir.path().join("bad-diff-id.tar"))),
        &format!("docker-archive:{}:a:b", s(&target)),
    ]));
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".hoist-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn format_flag_converts_oci_to_v2s2_and_refuses_zstd_there() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    common::images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", s(&layout));
    let d = dir.path().join("d");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--format",
        "v2s2",
        &src,
        &format!("dir:{}", s(&d)),
    ]));
    let m = skopeo_manifest(&format!("dir:{}", s(&d)));
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        layer_media_types(&m),
        ["application/vnd.docker.image.rootfs.diff.tar.gzip"; 2]
    );
    // Same layers, same config: only the manifest changed.
    let o = skopeo_manifest(&src);
    assert_eq!(m["config"]["digest"], o["config"]["digest"]);
    assert_eq!(m["layers"][1]["digest"], o["layers"][1]["digest"]);
    let z = dir.path().join("z");
    let out = run_fail(&mut hoist(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("oci:{}:z", s(&z)),
    ]));
    assert!(stderr(&out).contains("zstd"), "{}", stderr(&out));
    // zstd into OCI works and reads back to the same diff_ids.
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("oci:{}:z", s(&z)),
    ]));
    run_ok(&mut hoist(&["verify", &format!("oci:{}:z", s(&z))]));
    let zm = skopeo_manifest(&format!("oci:{}:z", s(&z)));
    assert_eq!(
        layer_media_types(&zm),
        ["application/vnd.oci.image.layer.v1.tar+zstd"; 2]
    );
}

#[test]
fn additional_tags_join_repo_tags_and_skopeo_reads_each() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    common::images::build_two_layer(&layout, "v1");
    let src = format!("oci:{}:v1", s(&layout));
    let out = dir.path().join("tagged.tar");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--additional-tag",
        "example.com/team/app:latest",
        "--additional-tag",
        "other:v2",
        "--additional-tag",
        "app:v1",
        &src,
        &format!("docker-archive:{}:app:v1", s(&out)),
    ]));
    let manifest_json: Value = serde_json::from_str(&run_ok(Command::new("tar").args([
        "xOf",
        &s(&out),
        "manifest.json",
    ])))
    .unwrap();
    assert_eq!(
        manifest_json[0]["RepoTags"],
        serde_json::json!(["app:v1", "example.com/team/app:latest", "other:v2"]),
        "the destination's name first, then each additional tag once"
    );
    let digest_of = |name: &str| {
        let v: Value = serde_json::from_str(&run_ok(
            Command::new("skopeo").args(["inspect", &format!("docker-archive:{}:{name}", s(&out))]),
        ))
        .unwrap();
        v["Digest"].as_str().unwrap().to_string()
    };
    let first = digest_of("app:v1");
    assert_eq!(digest_of("example.com/team/app:latest"), first);
    assert_eq!(digest_of("other:v2"), first);
    // hoist finds the image by an additional tag too.
    let raw = run_ok(&mut hoist(&[
        "inspect",
        "--format",
        "text",
        &format!("docker-archive:{}:other:v2", s(&out)),
    ]));
    assert!(!raw.is_empty());

    // Without a name of its own the archive holds just the additional tags.
    let untagged = dir.path().join("untagged.tar");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--additional-tag",
        "solo:1",
        &src,
        &format!("docker-archive:{}", s(&untagged)),
    ]));
    assert_eq!(digest_of_archive(&untagged, "solo:1"), first);

    // Other destinations refuse the flag (skopeo ignores it there), and a name without a tag is a
    // usage error.
    let refused = run_fail(&mut hoist(&[
        "copy",
        "--additional-tag",
        "x:y",
        &src,
        &format!("oci:{}:z", s(&dir.path().join("oci"))),
    ]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("docker-archive destinations only"),
        "{}",
        stderr(&refused)
    );
    assert!(!dir.path().join("oci").exists(), "nothing written");
    let usage = run_fail(&mut hoist(&[
        "copy",
        "--additional-tag",
        "notag",
        &src,
        &format!("docker-archive:{}", s(&untagged)),
    ]));
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("NAME:TAG"), "{}", stderr(&usage));
}

fn digest_of_archive(archive: &Path, name: &str) -> String {
    let v: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["inspect", &format!("docker-archive:{}:{name}", s(archive))]),
    ))
    .unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

/// A member of a hand-built archive: a regular file, or a symlink to a target.
enum Entry {
    File(Vec<u8>),
    Link(&'static str),
}

fn write_archive(path: &Path, members: &[(String, Entry)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, entry) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match entry {
            Entry::File(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, name, &bytes[..]).unwrap();
            }
            Entry::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
        }
    }
    b.finish().unwrap();
}

/// The members `docker save one:v1 two:v1` writes when `two` is `one` plus a layer: the shared layer
/// is stored once, under the first image's layer directory, and linked from the second's; `link` is
/// what the second image's `layer.tar` points at.
fn shared_layer_archive(link: &'static str) -> Vec<(String, Entry)> {
    let base = layer_tar(&[("etc/base", b"base\n")]);
    let top = layer_tar(&[("etc/top", b"top\n")]);
    let sha = |b: &[u8]| hoist::Digest::sha256(b);
    let config = |diff_ids: &[&[u8]]| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|b| sha(b).to_string()).collect::<Vec<_>>()}
        }))
        .unwrap()
    };
    let (c1, c2) = (config(&[&base]), config(&[&base, &top]));
    let (id1, id2, id3) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": format!("{}.json", sha(&c1).hex()), "RepoTags": ["one:v1"],
         "Layers": [format!("{id1}/layer.tar")]},
        {"Config": format!("{}.json", sha(&c2).hex()), "RepoTags": ["two:v1"],
         "Layers": [format!("{id2}/layer.tar"), format!("{id3}/layer.tar")]}
    ]))
    .unwrap();
    let json = |id: &str| Entry::File(format!(r#"{{"id":"{id}"}}"#).into_bytes());
    vec![
        (format!("{id1}/VERSION"), Entry::File(b"1.0".to_vec())),
        (format!("{id1}/json"), json(&id1)),
        (format!("{id1}/layer.tar"), Entry::File(base)),
        (format!("{id2}/VERSION"), Entry::File(b"1.0".to_vec())),
        (format!("{id2}/json"), json(&id2)),
        (format!("{id2}/layer.tar"), Entry::Link(link)),
        (format!("{id3}/VERSION"), Entry::File(b"1.0".to_vec())),
        (format!("{id3}/json"), json(&id3)),
        (format!("{id3}/layer.tar"), Entry::File(top)),
        (format!("{}.json", sha(&c1).hex()), Entry::File(c1)),
        (format!("{}.json", sha(&c2).hex()), Entry::File(c2)),
        ("manifest.json".into(), Entry::File(manifest)),
        (
            "repositories".into(),
            Entry::File(br#"{"one":{"v1":"aaaa"},"two":{"v1":"cccc"}}"#.to_vec()),
        ),
    ]
}

#[test]
fn docker_save_layers_shared_by_symlink_are_read_like_skopeo() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // docker save writes the link relative to the linking layer's directory.
    let link = Box::leak(format!("../{}/layer.tar", "a".repeat(64)).into_boxed_str());
    let archive = dir.path().join("saved.tar");
    write_archive(&archive, &shared_layer_archive(link));
    for (name, layers) in [("one:v1", 1), ("two:v1", 2)] {
        let src = format!("docker-archive:{}:{name}", s(&archive));
        // skopeo's manifest is the same but for the linked layer's size, which it takes from the
        // symlink's header (0); hoist gives the size of the bytes it serves.
        let ours: Value =
            serde_json::from_str(&run_ok(&mut hoist(&["inspect", "--raw", &src]))).unwrap();
        let theirs = skopeo_manifest(&src);
        assert_eq!(ours["config"], theirs["config"], "{name}");
        let digests = |m: &Value| {
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(digests(&ours), digests(&theirs), "{name}");
        assert!(
            ours["layers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["size"] == 2048),
            "{ours}"
        );
        let tag = name.replace(':', "-");
        let h = dir.path().join("hoist");
        let k = dir.path().join("skopeo");
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &src,
            &format!("oci:{}:{tag}", s(&h)),
        ]));
        run_ok(Command::new("skopeo").args(["copy", "-q", &src, &format!("oci:{}:{tag}", s(&k))]));
        let (hr, kr) = (
            format!("oci:{}:{tag}", s(&h)),
            format!("oci:{}:{tag}", s(&k)),
        );
        run_ok(&mut hoist(&["verify", &hr]));
        let (hc, kc) = (skopeo_config(&hr), skopeo_config(&kr));
        assert_eq!(hc["rootfs"]["diff_ids"].as_array().unwrap().len(), layers);
        assert_eq!(hc["rootfs"], kc["rootfs"], "{name}");
        validate(&h, &tag);
    }

    // Links that leave the archive, or loop, are refused by name; nothing is written.
    for (bad, needle) in [
        ("../../etc/passwd", "leaves the archive"),
        ("/etc/passwd", "leaves the archive"),
        ("layer.tar", "symlinks to follow"),
    ] {
        let archive = dir.path().join("bad.tar");
        write_archive(&archive, &shared_layer_archive(bad));
        let dest = dir.path().join("bad-dest");
        let out = run_fail(&mut hoist(&[
            "copy",
            "-q",
            &format!("docker-archive:{}:two:v1", s(&archive)),
            &format!("oci:{}:v1", s(&dest)),
        ]));
        let err = stderr(&out);
        assert!(
            err.contains(needle) && err.contains("layer.tar"),
            "{bad}: {err}"
        );
        no_image_written(&dest);
    }
}

#[test]
fn a_name_two_images_carry_in_one_archive_is_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = shared_layer_archive(Box::leak(
        format!("../{}/layer.tar", "a".repeat(64)).into_boxed_str(),
    ));
    // Both images claim one:v1.
    let (name, Entry::File(bytes)) = members
        .iter_mut()
        .find(|(n, _)| n == "manifest.json")
        .unwrap()
    else {
        panic!("manifest.json is a file")
    };
    let mut items: Value = serde_json::from_slice(bytes).unwrap();
    items[1]["RepoTags"] = serde_json::json!(["one:v1"]);
    let configs = [items[0]["Config"].clone(), items[1]["Config"].clone()];
    *bytes = serde_json::to_vec(&items).unwrap();
    assert_eq!(name, "manifest.json");
    let archive = dir.path().join("dup.tar");
    write_archive(&archive, &members);
    let dest = dir.path().join("dest");
    let out = run_fail(&mut hoist(&[
        "copy",
        "-q",
        &format!("docker-archive:{}:one:v1", s(&archive)),
        &format!("oci:{}:v1", s(&dest)),
    ]));
    let err = stderr(&out);
    assert!(
        err.contains("one:v1 is ambiguous")
            && err.contains(configs[0].as_str().unwrap())
            && err.contains(configs[1].as_str().unwrap()),
        "{err}"
    );
    no_image_written(&dest);
    // By index each is still there.
    run_ok(&mut hoist(&[
        "inspect",
        &format!("docker-archive:{}:@1", s(&archive)),
    ]));
}

#[test]
fn xz_and_bzip2_compressed_archives_read_as_skopeo_reads_them() {
    if !tools() || !require_tool("xz") || !require_tool("bzip2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("src");
    common::images::build_two_layer(&layout, "v1");
    let plain = dir.path().join("out.tar");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", s(&layout)),
        &format!("docker-archive:{}:example.com/app:v1", s(&plain)),
    ]));
    for tool in ["xz", "bzip2"] {
        let archive = dir.path().join(format!("out.tar.{tool}"));
        run_ok(&mut common::sh(&format!(
            "{tool} -c {} > {}",
            s(&plain),
            s(&archive)
        )));
        let src = format!("docker-archive:{}", s(&archive));
        let h = format!("oci:{}:v1", s(&dir.path().join(format!("hoist-{tool}"))));
        let k = format!("oci:{}:v1", s(&dir.path().join(format!("skopeo-{tool}"))));
        run_ok(&mut hoist(&["copy", "-q", &src, &h]));
        run_ok(Command::new("skopeo").args(["copy", "-q", &src, &k]));
        assert_eq!(
            oci_fields(&skopeo_config(&h)),
            oci_fields(&skopeo_config(&k)),
            "{tool}"
        );
        assert_eq!(
            skopeo_config(&h)["rootfs"],
            skopeo_config(&k)["rootfs"],
            "{tool}"
        );
        validate(&dir.path().join(format!("hoist-{tool}")), "v1");
        // inspect reads it in place too.
        let inspected = hoist_json(&["inspect", "--format", "json", &src]);
        assert!(inspected.is_object(), "{tool}: {inspected}");
    }
}
