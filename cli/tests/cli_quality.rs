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
