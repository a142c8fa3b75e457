//! A copy killed with SIGKILL leaves the destination as it was or complete, never with an `index.json`
//! naming a missing blob; concurrent copies into one layout both land.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{hoist, run_ok, synth};

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
        let mut child = hoist(&[
            "copy",
            "-q",
            "--jobs",
            "2",
            &format!("oci-archive:{archive}:big"),
            &format!("oci:{dest}:big"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        // Whatever happened, the layout verifies and still has the image it had before.
        let out = hoist(&["verify", "--all", &format!("oci:{dest}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "iteration {i} (killed after {delay} ms): layout does not verify:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
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
        run_ok(&mut hoist(&["gc", &format!("oci:{dest}")]));
        let leftovers = std::fs::read_dir(&dest)
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
