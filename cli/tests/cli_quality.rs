//! The CLI's manners: help with examples, completions, man pages, exit codes, and progress that goes
//! to stderr only (stdout is the same with and without a terminal).

mod common;

use common::{hoist, run_fail, run_ok, synth};

#[test]
fn every_verb_has_help_with_an_example() {
    let top = run_ok(&mut hoist(&["--help"]));
    assert!(top.contains("Examples:"), "{top}");
    let verbs: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A verb starts two spaces in; a wrapped description continues further in.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|v| v != "help")
        .collect();
    assert!(verbs.len() >= 7, "{verbs:?}");
    for verb in verbs {
        let help = run_ok(&mut hoist(&[&verb, "--help"]));
        assert!(
            help.contains("Example"),
            "hoist {verb} --help has no example:\n{help}"
        );
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    for (shell, needle) in [
        ("bash", "_hoist()"),
        ("zsh", "#compdef hoist"),
        ("fish", "complete -c hoist"),
    ] {
        let out = run_ok(&mut hoist(&["completion", shell]));
        assert!(
            out.contains(needle),
            "{shell}: {}",
            &out[..out.len().min(200)]
        );
        assert!(out.contains("copy") && out.contains("verify"));
    }
    let dir = tempfile::tempdir().unwrap();
    run_ok(&mut hoist(&["man", "--dir", dir.path().to_str().unwrap()]));
    for page in [
        "hoist.1",
        "hoist-copy.1",
        "hoist-verify.1",
        "hoist-inspect.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
}

#[test]
fn exit_codes_are_documented_values() {
    let out = run_fail(&mut hoist(&["no-such-verb"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run_fail(&mut hoist(&["inspect", "oci:/nonexistent/layout:tag"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("hoist: error:") && err.contains("/nonexistent/layout"),
        "{err}"
    );
    assert!(!err.contains("stack backtrace"), "{err}");
    let out = run_fail(&mut hoist(&["copy", "bogus:x", "oci:/tmp/x"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown transport"));
}

#[test]
fn progress_goes_to_stderr_only() {
    if !common::require_tool("script") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    synth::write_image(&src, "t", 3, 3 << 20, 3);
    let s = format!("oci-archive:{}:t", dir.path().join("a.tar").display());
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:t", src.display()),
        &s,
    ]));

    // Without a terminal: lines on stderr, nothing on stdout.
    let plain = hoist(&[
        "copy",
        &s,
        &format!("oci:{}:t", dir.path().join("d1").display()),
    ])
    .output()
    .unwrap();
    assert!(plain.status.success());
    assert!(plain.stdout.is_empty());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("blob ")).count(),
        4,
        "{err}"
    );

    // On a terminal (script gives stderr a pty; stdout goes to a file): bars, and the same stdout.
    let out_file = dir.path().join("stdout.txt");
    let cmd = format!(
        "{} copy {s} oci:{}:t > {}",
        common::hoist_bin().display(),
        dir.path().join("d2").display(),
        out_file.display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(
        tty.status.success(),
        "{}",
        String::from_utf8_lossy(&tty.stdout)
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), plain.stdout);
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("copied") && screen.contains("wrote"),
        "{screen}"
    );

    // JSON events, one per line, parse.
    let json = hoist(&[
        "copy",
        "--progress",
        "json",
        &s,
        &format!("oci:{}:t", dir.path().join("d3").display()),
    ])
    .output()
    .unwrap();
    assert!(json.stdout.is_empty());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "plan");
    assert_eq!(
        events.iter().filter(|e| e["event"] == "blob_done").count(),
        4
    );
}

/// JSON progress events of a run, in order (stderr lines that are objects).
fn events(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `hoist VERB --progress json ARGS...`, which must succeed: its stdout and its events.
fn with_json_progress(verb: &str, args: &[&str]) -> (Vec<u8>, Vec<serde_json::Value>) {
    let out = hoist(&[&[verb, "--progress", "json"], args].concat())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    (out.stdout, events(&out.stderr))
}

#[test]
fn unpack_and_repack_report_progress() {
    if !common::require_tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    common::images::build_two_layer(&src, "t");
    let image = format!("oci:{}:t", src.display());
    let tree = dir.path().join("tree");

    // Off a terminal and unasked: no progress, just the summary.
    let quiet_dir = dir.path().join("quiet");
    let plain = hoist(&["unpack", &image, quiet_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(plain.status.success());
    assert!(events(&plain.stderr).is_empty());
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("applied"));

    let state = dir.path().join("tree.state");
    let state = state.to_str().unwrap();
    let (_, ev) = with_json_progress(
        "unpack",
        &["--state", state, &image, tree.to_str().unwrap()],
    );
    assert_eq!(ev[0]["event"], "plan");
    assert_eq!(ev[0]["blobs"], 2);
    let applied: Vec<_> = ev.iter().filter(|e| e["event"] == "blob_done").collect();
    assert_eq!(applied.len(), 2, "{ev:?}");
    assert!(applied.iter().all(|e| e["how"] == "applied"));
    let planned = ev[0]["bytes"].as_u64().unwrap();
    let done: u64 = applied.iter().map(|e| e["size"].as_u64().unwrap()).sum();
    assert_eq!(planned, done);

    // A 5 MiB file makes the layer: the last step's progress is the layer's uncompressed size.
    let noise: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("big.bin"), &noise).unwrap();
    let (stdout, ev) = with_json_progress(
        "repack",
        &["--state", state, "--tag", "t2", tree.to_str().unwrap()],
    );
    let steps: Vec<_> = ev.iter().filter(|e| e["event"] == "step").collect();
    assert_eq!(steps.len(), 2, "{ev:?}");
    assert!(steps[0]["name"].as_str().unwrap().starts_with("scanning"));
    assert!(
        steps[1]["name"]
            .as_str()
            .unwrap()
            .starts_with("writing the layer")
    );
    let total = steps[1]["total"].as_u64().unwrap();
    let last = ev
        .iter()
        .rev()
        .find(|e| e["event"] == "step_progress")
        .expect("step progress")["done"]
        .as_u64()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let layer = report["layer"].as_str().unwrap().replace("sha256:", "");
    let blob = std::fs::File::open(src.join("blobs/sha256").join(layer)).unwrap();
    let mut gz = hoist::compress::decoder(hoist::media_type::Compression::Gzip, blob).unwrap();
    let tar_size = std::io::copy(&mut gz, &mut std::io::sink()).unwrap();
    assert_eq!(last, tar_size);
    // The estimate the bar is drawn against is close (PAX records come on top of it).
    assert!(
        total <= tar_size && tar_size - total < 64 << 10,
        "{total} vs {tar_size}"
    );
    run_ok(&mut hoist(&[
        "verify",
        &format!("oci:{}:t2", src.display()),
    ]));
}

#[test]
fn a_closed_stdout_ends_hoist_quietly_by_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    synth::write_image(&src, "t", 1, 1000, 1);
    // inspect writes through a handle (an error), tags with println! (a panic).
    let image = format!("oci:{}:t", src.display());
    let layout = format!("oci:{}", src.display());
    for args in [["inspect", image.as_str()], ["tags", layout.as_str()]] {
        // stdout is a pipe nobody reads any more (as after `| head` has had enough).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = hoist(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// SIGPIPE's number on Linux.
const SIGPIPE: i32 = 13;

#[test]
fn a_password_typed_into_a_reference_or_creds_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", dir.path().join("d").display());
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", "docker://me:pw-9z@host.example/x"],
        vec!["list-tags", "docker://me:pw-9z@localhost:5000/x"],
        vec!["copy", "docker://me:pw-9z@host.example/x:v1", &dest],
        vec!["inspect", "--creds", ":pw-9z", "docker://host.example/x"],
        vec!["login", "--username", "me", "me:pw-9z@host.example"],
        vec!["logout", "docker://me:pw-9z@host.example"],
        vec![
            "copy",
            "--src-creds",
            ":pw-9z",
            "docker://host.example/x",
            &dest,
        ],
    ];
    for args in cases {
        let out = hoist(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            !stderr.contains("pw-9z"),
            "{args:?} echoed the password:\n{stderr}"
        );
    }
}

#[test]
fn usage_errors_and_missing_images_exit_2_on_every_verb_other_failures_1() {
    use common::fake_registry::{self, FakeServer, Reply, serve_layout};
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let img = fake_registry::small_image(&dir.path().join("layout"), "app", "v1");
    let archive = format!("docker-archive:{}", d("a.tar"));
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", d("layout")),
        &format!("{archive}:app:v1"),
    ]));
    let served = img.clone();
    let registry = FakeServer::start(move |req| {
        if req.path.ends_with("/manifests/broken") {
            return Reply::status(500);
        }
        if req.path == "/v2/gone/manifests/v1" {
            return Reply::Full(
                400,
                vec![("Content-Type".into(), "application/json".into())],
                br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#
                    .to_vec(),
            );
        }
        serve_layout(&served, req).unwrap_or(Reply::status(404))
    });
    let reg = |r: &str| format!("docker://{}/{r}", registry.host);
    let missing_tag = format!("oci:{}:nope", d("layout"));
    let out_layout = format!("oci:{}:v1", d("out"));
    let cases: Vec<(Vec<String>, i32)> = vec![
        // Usage: malformed references, a verb given the wrong transport.
        (vec!["inspect".into(), "docker://UPPER/x".into()], 2),
        (vec!["copy".into(), "oci:".into(), out_layout.clone()], 2),
        (vec!["verify".into(), "bogus:x".into()], 2),
        (vec!["list-tags".into(), format!("oci:{}", d("layout"))], 2),
        // Not found: a layout tag, an archive image, a registry tag and repository.
        (vec!["inspect".into(), missing_tag.clone()], 2),
        (vec!["verify".into(), missing_tag.clone()], 2),
        (
            vec!["copy".into(), missing_tag.clone(), out_layout.clone()],
            2,
        ),
        (
            vec![
                "unpack".into(),
                "--rootless".into(),
                missing_tag.clone(),
                d("rootfs"),
            ],
            2,
        ),
        (vec!["inspect".into(), format!("{archive}:other:v9")], 2),
        (
            vec![
                "copy".into(),
                format!("{archive}:other:v9"),
                out_layout.clone(),
            ],
            2,
        ),
        (
            vec![
                "inspect".into(),
                "--tls-verify=false".into(),
                reg("app:nope"),
            ],
            2,
        ),
        (
            vec![
                "copy".into(),
                "--src-tls-verify=false".into(),
                reg("app:nope"),
                out_layout.clone(),
            ],
            2,
        ),
        (
            vec![
                "inspect".into(),
                "--tls-verify=false".into(),
                reg("gone:v1"),
            ],
            2,
        ),
        (
            vec![
                "list-tags".into(),
                "--tls-verify=false".into(),
                reg("nothing"),
            ],
            2,
        ),
        (
            vec![
                "sync".into(),
                "--src".into(),
                "docker".into(),
                "--dest".into(),
                "dir".into(),
                "--src-tls-verify=false".into(),
                format!("{}/app:nope", registry.host),
                d("mirror"),
            ],
            2,
        ),
        // Other failures: a registry error, a layout that is not there at all.
        (
            vec![
                "inspect".into(),
                "--tls-verify=false".into(),
                "--retry-times".into(),
                "0".into(),
                reg("app:broken"),
            ],
            1,
        ),
        (
            vec!["inspect".into(), "oci:/nonexistent/layout:tag".into()],
            1,
        ),
    ];
    for (args, code) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = hoist(&argv).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
