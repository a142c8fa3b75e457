//! Changing layer compression on copy: gzip to zstd and back, checked against skopeo and by unpacking.

mod common;

use common::docker::{layer_media_types, skopeo_config, skopeo_manifest};
use common::{hoist, require_tool, run_fail, run_ok, snapshot};

#[test]
fn zstd_copy_unpacks_to_the_same_tree_and_skopeo_reads_it_back_to_the_same_diff_ids() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    common::images::build_two_layer(&dir.path().join("src"), "t");
    let src = format!("oci:{}:t", p("src"));
    let zstd = format!("oci:{}:t", p("z"));

    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        "--dest-compress-level",
        "5",
        &src,
        &zstd,
    ]));
    run_ok(&mut hoist(&["verify", &zstd]));
    // skopeo reads it: zstd media types, the same config (so the same diff_ids).
    let manifest = skopeo_manifest(&zstd);
    assert_eq!(
        layer_media_types(&manifest),
        ["application/vnd.oci.image.layer.v1.tar+zstd"; 2]
    );
    let original = skopeo_config(&src);
    assert_eq!(skopeo_config(&zstd), original);
    for layer in manifest["layers"].as_array().unwrap() {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let blob = std::fs::read(dir.path().join("z/blobs/sha256").join(hex)).unwrap();
        assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    }

    // The same tree comes out of both.
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        &src,
        &p("tree-gzip"),
    ]));
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        &zstd,
        &p("tree-zstd"),
    ]));
    let strip = |mut v: Vec<(std::path::PathBuf, String)>| {
        v.retain(|(path, _)| !path.to_string_lossy().contains(".hoist-state"));
        v
    };
    assert_eq!(
        strip(snapshot(&dir.path().join("tree-zstd"))),
        strip(snapshot(&dir.path().join("tree-gzip")))
    );

    // skopeo copies it back to gzip: the diff_ids it computes are the original ones.
    let back = format!("oci:{}:t", p("back"));
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "-q",
        "--dest-compress-format",
        "gzip",
        &zstd,
        &back,
    ]));
    assert_eq!(
        skopeo_config(&back)["rootfs"]["diff_ids"],
        original["rootfs"]["diff_ids"]
    );
    assert_eq!(
        layer_media_types(&skopeo_manifest(&back)),
        ["application/vnd.oci.image.layer.v1.tar+gzip"; 2]
    );

    // Digests cannot be kept through a compression change: --preserve-digests refuses it.
    let out = run_fail(&mut hoist(&[
        "copy",
        "--preserve-digests",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("oci:{}:t", p("refused")),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("preserve"), "{err}");
    assert!(
        !dir.path().join("refused/index.json").exists()
            || !std::fs::read_to_string(dir.path().join("refused/index.json"))
                .unwrap()
                .contains("\"t\"")
    );
}
