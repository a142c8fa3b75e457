//! The `docker-daemon:` transport against a real, private Docker daemon (started by the test, stopped
//! by its PID): round trips through `docker load`/`docker save`, skopeo reading the same images, the
//! daemon's own error words, and `docker save` archives of images sharing a layer.

mod common;

use std::path::Path;
use std::process::Command;

use common::dockerd::Dockerd;
use common::images::build_two_layer;
use common::{hoist, require_tool, run_fail, run_ok, sh};
use serde_json::Value;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn with_host(mut cmd: Command, d: &Dockerd) -> Command {
    cmd.env("DOCKER_HOST", &d.host);
    cmd
}

fn config(layout_ref: &str) -> Value {
    serde_json::from_str(&run_ok(&mut hoist(&["inspect", "--config", layout_ref]))).unwrap()
}

#[test]
fn round_trip_through_the_daemon_keeps_the_image_and_skopeo_agrees() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let Some(d) = Dockerd::start() else { return };
    let work = d.dir().join("w");
    std::fs::create_dir(&work).unwrap();
    let src = work.join("src");
    build_two_layer(&src, "v1");
    let src_ref = format!("oci:{}:v1", s(&src));
    let original = config(&src_ref);

    run_ok(&mut with_host(
        hoist(&[
            "copy",
            "--additional-tag",
            "hoist-test/x:extra",
            &src_ref,
            "docker-daemon:hoist-test/x:1",
        ]),
        &d,
    ));
    // The daemon holds the image under both names, with the config hoist wrote.
    let inspected: Value = serde_json::from_str(&run_ok(&mut d.docker(&[
        "image",
        "inspect",
        "hoist-test/x:1",
    ])))
    .unwrap();
    let image = &inspected[0];
    assert_eq!(image["Config"]["Cmd"], serde_json::json!(["/usr/bin/hi"]));
    assert!(
        image["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("HOIST_TEST=1")),
        "{image}"
    );
    assert_eq!(image["RootFS"]["Layers"], original["rootfs"]["diff_ids"]);
    let tags = image["RepoTags"].as_array().unwrap();
    assert!(
        tags.contains(&Value::from("hoist-test/x:extra")),
        "{tags:?}"
    );

    // Read back by name: the diff_ids are kept.
    let back = work.join("back");
    run_ok(&mut with_host(
        hoist(&[
            "copy",
            "docker-daemon:hoist-test/x:1",
            &format!("oci:{}:v1", s(&back)),
        ]),
        &d,
    ));
    let back_config = config(&format!("oci:{}:v1", s(&back)));
    assert_eq!(
        back_config["rootfs"]["diff_ids"],
        original["rootfs"]["diff_ids"]
    );

    // inspect names the image as the reference does (the transport answers, as for docker-archive).
    let shown: Value = serde_json::from_str(&run_ok(&mut with_host(
        hoist(&["inspect", "docker-daemon:hoist-test/x:1"]),
        &d,
    )))
    .unwrap();
    assert_eq!(shown["Name"], "docker.io/hoist-test/x", "{shown}");
    assert_eq!(shown["Layers"].as_array().map(Vec::len), Some(2), "{shown}");

    // skopeo reads the same image from the same daemon and agrees on the config (this skopeo
    // ignores DOCKER_HOST: it is given the daemon with --src-daemon-host).
    let theirs = work.join("skopeo");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--src-daemon-host",
        &d.host,
        "docker-daemon:hoist-test/x:1",
        &format!("oci:{}:v1", s(&theirs)),
    ]));
    let skopeo_config = config(&format!("oci:{}:v1", s(&theirs)));
    assert_eq!(skopeo_config, back_config);

    // And by image ID (docker's `sha256:ID`, the config digest).
    let id = image["Id"].as_str().unwrap();
    let by_id = work.join("by-id");
    run_ok(&mut with_host(
        hoist(&[
            "copy",
            &format!("docker-daemon:{id}"),
            &format!("oci:{}:v1", s(&by_id)),
        ]),
        &d,
    ));
    assert_eq!(config(&format!("oci:{}:v1", s(&by_id))), back_config);
}

#[test]
fn daemon_errors_are_shown_in_the_daemons_words() {
    if !require_tool("umoci") {
        return;
    }
    let Some(d) = Dockerd::start() else { return };
    let work = d.dir().join("w");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("out");

    // Not found: exit 2, with what the daemon said.
    let missing = run_fail(&mut with_host(
        hoist(&[
            "copy",
            "docker-daemon:no-such/image:1",
            &format!("oci:{}", s(&out)),
        ]),
        &d,
    ));
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("the daemon says:"), "{err}");
    assert!(!out.exists(), "nothing is written for a missing image");

    // A load the daemon refuses: its error, not a success.
    let bad = work.join("bad.tar");
    run_ok(&mut sh(&format!(
        "cd {w} && echo '[{{\"Config\":\"nope.json\",\"RepoTags\":[\"a:1\"],\"Layers\":[]}}]' > manifest.json && tar cf {b} manifest.json",
        w = s(&work),
        b = s(&bad)
    )));
    let daemon = hoist::transport::docker_daemon::Daemon::at(&d.host).unwrap();
    let e = daemon.load(&bad).unwrap_err().to_string();
    assert!(
        e.contains("docker daemon") && e.contains("nope.json"),
        "{e}"
    );

    // No daemon there: the error says which DOCKER_HOST was tried.
    let gone = format!("unix://{}/none.sock", s(&work));
    let out2 = run_fail(
        hoist(&["copy", "docker-daemon:a:1", &format!("oci:{}", s(&out))])
            .env("DOCKER_HOST", &gone),
    );
    let err = String::from_utf8_lossy(&out2.stderr);
    assert!(err.contains(&gone), "{err}");

    // An image ID cannot be a destination.
    let src = work.join("src");
    build_two_layer(&src, "v1");
    let id_dest = format!("docker-daemon:sha256:{}", "a".repeat(64));
    let out3 = run_fail(&mut with_host(
        hoist(&["copy", &format!("oci:{}:v1", s(&src)), &id_dest]),
        &d,
    ));
    let err = String::from_utf8_lossy(&out3.stderr);
    assert!(err.contains("give NAME:TAG"), "{err}");
}

#[test]
fn docker_save_of_two_images_sharing_a_layer_reads_back() {
    if !require_tool("umoci") {
        return;
    }
    let Some(d) = Dockerd::start() else { return };
    let work = d.dir().join("w");
    std::fs::create_dir(&work).unwrap();
    let src = work.join("src");
    build_two_layer(&src, "a");
    let l = s(&src);
    let w = s(&work);
    // b = a plus one more layer: both share a's two layers.
    run_ok(&mut sh(&format!(
        "umoci unpack --rootless --image {l}:a {w}/b && echo more > {w}/b/rootfs/more.txt && \
         umoci repack --image {l}:b {w}/b"
    )));
    for tag in ["a", "b"] {
        run_ok(&mut with_host(
            hoist(&[
                "copy",
                &format!("oci:{l}:{tag}"),
                &format!("docker-daemon:shared:{tag}"),
            ]),
            &d,
        ));
    }
    let saved = work.join("both.tar");
    run_ok(&mut d.docker(&["save", "-o", &s(&saved), "shared:a", "shared:b"]));
    for tag in ["a", "b"] {
        let out = work.join(format!("out-{tag}"));
        run_ok(&mut hoist(&[
            "copy",
            &format!("docker-archive:{}:shared:{tag}", s(&saved)),
            &format!("oci:{}:v1", s(&out)),
        ]));
        assert_eq!(
            config(&format!("oci:{}:v1", s(&out)))["rootfs"]["diff_ids"],
            config(&format!("oci:{l}:{tag}"))["rootfs"]["diff_ids"]
        );
        run_ok(&mut hoist(&["verify", &format!("oci:{}:v1", s(&out))]));
    }
}

/// `verify` reads an image of the daemon as it reads a docker-archive (the daemon's images come as
/// `docker save` archives): the uncompressed layers under the synthesised gzip media type are how
/// the transport presents them, not a mislabelled image.
#[test]
fn verify_reads_a_daemon_image_as_it_reads_a_docker_archive() {
    if !require_tool("umoci") {
        return;
    }
    let Some(d) = Dockerd::start() else { return };
    let work = d.dir().join("w");
    std::fs::create_dir(&work).unwrap();
    let src = work.join("src");
    build_two_layer(&src, "v1");
    let src_ref = format!("oci:{}:v1", s(&src));
    run_ok(&mut with_host(
        hoist(&["copy", &src_ref, "docker-daemon:hoist-test/verify:1"]),
        &d,
    ));
    let saved = work.join("saved.tar");
    run_ok(&mut d.docker(&["save", "-o", &s(&saved), "hoist-test/verify:1"]));
    run_ok(&mut hoist(&[
        "verify",
        &format!("docker-archive:{}", s(&saved)),
    ]));
    run_ok(&mut with_host(
        hoist(&["verify", "docker-daemon:hoist-test/verify:1"]),
        &d,
    ));
}
