//! A copy or a repack killed with SIGKILL leaves the layout as it was or complete, never with an
//! `index.json` naming a missing blob, and a re-run completes; concurrent copies into one layout both
//! land.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{hoist, run_ok, synth};

/// Runs `hoist ARGS` and sends it SIGKILL after `delay`; true when it had already finished successfully.
fn run_killed(args: &[&str], delay: Duration) -> bool {
    let mut child = hoist(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    // Killed (no exit code), or finished by itself: then it must have succeeded.
    assert!(
        status.code().is_none_or(|c| c == 0),
        "hoist {args:?} failed by itself: {status}"
    );
    status.success()
}

/// `hoist verify --all` passes on the layout at `layout`.
fn assert_layout_verifies(layout: &str, context: &str) {
    let out = hoist(&["verify", "--all", &format!("oci:{layout}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{context}: layout does not verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hoist gc` leaves no `.hoist-tmp-*` file in the layout.
fn assert_gc_clears_temp_files(layout: &str) {
    run_ok(&mut hoist(&["gc", &format!("oci:{layout}")]));
    let leftovers = std::fs::read_dir(layout)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".hoist-tmp-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn sigkill_midway_never_leaves_a_broken_layout() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen");
    let big = synth::write_image(&generated, "big", 12, 6 << 20, 7);
    let archive = dir.path().join("big.tar").display().to_string();
    // From an archive the blobs stream (no hard links), so a kill lands mid-blob.
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:big", generated.display()),
        &format!("oci-archive:{archive}:big"),
    ]));
    let delays_ms = [5u64, 30, 80, 150, 250, 400];
    let mut completed = 0;
    for (i, delay) in delays_ms.iter().enumerate() {
        // A fresh destination each time, holding one other image, so every run starts from scratch.
        let dest = dir.path().join(format!("dest{i}")).display().to_string();
        synth::write_image(std::path::Path::new(&dest), "a", 1, 1000, 1);
        let done = run_killed(
            &[
                "copy",
                "-q",
                "--jobs",
                "2",
                &format!("oci-archive:{archive}:big"),
                &format!("oci:{dest}:big"),
            ],
            Duration::from_millis(*delay),
        );
        completed += usize::from(done);
        // Whatever happened, the layout verifies and still has the image it had before.
        assert_layout_verifies(&dest, &format!("iteration {i} (killed after {delay} ms)"));
        let tags = run_ok(&mut hoist(&["tags", &format!("oci:{dest}")]));
        assert!(
            tags.lines().any(|t| t == "a"),
            "iteration {i}: tag a lost: {tags}"
        );
        // The new tag is either absent or complete.
        if tags.lines().any(|t| t == "big") {
            run_ok(&mut hoist(&["verify", &format!("oci:{dest}:big")]));
        }
        // A re-run over what the killed run left completes.
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &format!("oci-archive:{archive}:big"),
            &format!("oci:{dest}:big"),
        ]));
        let raw = run_ok(&mut hoist(&[
            "inspect",
            "--raw",
            &format!("oci:{dest}:big"),
        ]));
        assert_eq!(hoist::Digest::sha256(raw.as_bytes()), big);
        // gc clears the temp files a killed run left behind, and nothing that is referenced.
        assert_gc_clears_temp_files(&dest);
        run_ok(&mut hoist(&["verify", "--all", &format!("oci:{dest}")]));
    }
    eprintln!(
        "{completed} of {} runs completed before the kill",
        delays_ms.len()
    );
}

#[test]
fn concurrent_copies_into_one_layout_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let da = synth::write_image(&a, "one", 4, 2 << 20, 11);
    let db = synth::write_image(&b, "two", 4, 2 << 20, 12);
    let dest = dir.path().join("dest").display().to_string();
    let spawn = |src: &std::path::Path, tag: &str| {
        hoist(&[
            "copy",
            "-q",
            &format!("oci:{}:{tag}", src.display()),
            &format!("oci:{dest}:{tag}"),
        ])
        .spawn()
        .unwrap()
    };
    let mut c1 = spawn(&a, "one");
    let mut c2 = spawn(&b, "two");
    assert!(c1.wait().unwrap().success());
    assert!(c2.wait().unwrap().success());
    for (tag, digest) in [("one", &da), ("two", &db)] {
        let raw = run_ok(&mut hoist(&[
            "inspect",
            "--raw",
            &format!("oci:{dest}:{tag}"),
        ]));
        assert_eq!(&hoist::Digest::sha256(raw.as_bytes()), digest);
    }
    run_ok(&mut hoist(&["verify", "--all", &format!("oci:{dest}")]));
}

/// The files a repack test adds to the unpacked tree: noise, so that compressing them takes a while.
fn added_files() -> Vec<(String, Vec<u8>)> {
    (0..40)
        .map(|i| (format!("added/f{i:02}.bin"), synth::noise(1 << 20, 100 + i)))
        .collect()
}

#[test]
fn sigkill_during_repack_never_leaves_a_broken_layout() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout").display().to_string();
    synth::write_tar_image(
        Path::new(&layout),
        "v1",
        &[("etc/motd", b"hello\n"), ("bin/tool", b"#!/bin/sh\n")],
    );
    let bundle = dir.path().join("bundle");
    let b = bundle.display().to_string();
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &format!("oci:{layout}:v1"),
        &b,
    ]));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir(rootfs.join("added")).unwrap();
    for (path, data) in added_files() {
        std::fs::write(rootfs.join(path), data).unwrap();
    }
    std::fs::remove_file(rootfs.join("bin/tool")).unwrap();

    // One undisturbed repack (into another layout) gives the span the kills are spread over.
    let probe = dir.path().join("probe").display().to_string();
    let start = Instant::now();
    run_ok(&mut hoist(&[
        "repack",
        &b,
        "--tag",
        "probe",
        "--dest",
        &format!("oci:{probe}"),
    ]));
    let span = start.elapsed();

    let runs = 6u32;
    let mut completed = 0;
    for k in 1..=runs {
        let delay = span * k / (runs + 1);
        let tag = format!("v2-{k}");
        // Half of the runs also refresh the bundle's record, which must stay consistent too.
        let mut args = vec!["repack", &b, "--tag", &tag];
        if k % 2 == 0 {
            args.push("--refresh-bundle");
        }
        let done = run_killed(&args, delay);
        completed += usize::from(done);
        let context = format!("run {k} (killed after {delay:?} of {span:?})");
        assert_layout_verifies(&layout, &context);
        let tags = run_ok(&mut hoist(&["tags", &format!("oci:{layout}")]));
        assert!(
            tags.lines().any(|t| t == "v1"),
            "{context}: tag v1 lost: {tags}"
        );
        if tags.lines().any(|t| t == tag) {
            run_ok(&mut hoist(&["verify", &format!("oci:{layout}:{tag}")]));
        }

        // A re-run completes, and its image unpacks to the changed tree.
        let rerun = format!("rerun-{k}");
        run_ok(&mut hoist(&["repack", &b, "--tag", &rerun]));
        assert_layout_verifies(&layout, &format!("{context}, after the re-run"));
        let check = dir.path().join(format!("check-{k}"));
        run_ok(&mut hoist(&[
            "unpack",
            "-q",
            &format!("oci:{layout}:{rerun}"),
            check.to_str().unwrap(),
        ]));
        for (path, data) in added_files() {
            assert!(
                std::fs::read(check.join(&path)).unwrap() == data,
                "{context}: {path} differs after the re-run"
            );
        }
        assert_eq!(std::fs::read(check.join("etc/motd")).unwrap(), b"hello\n");
        assert!(
            !check.join("bin/tool").exists(),
            "{context}: the deletion was lost"
        );
        std::fs::remove_dir_all(&check).unwrap();
        assert_gc_clears_temp_files(&layout);
        assert_layout_verifies(&layout, &format!("{context}, after gc"));
    }
    eprintln!("{completed} of {runs} repacks completed before the kill (span {span:?})");
}
