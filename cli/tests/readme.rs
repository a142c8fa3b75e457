//! The README's tour of the verbs runs as written: every command line of its `sh` block, in order, in a
//! scratch directory (`/tmp/` and `localhost:5000` mapped to a temp dir and a loopback registry), and
//! every verb of `hoist --help` appears in at least one of them.

mod common;

use std::path::Path;
use std::process::Command;

use common::hoist;
use common::registry::Registry;

/// The command lines of the first `sh` block after the "A tour of the verbs" heading.
fn tour_lines(readme: &str) -> Vec<String> {
    let tour = readme
        .split_once("## A tour of the verbs")
        .expect("the README has a tour of the verbs")
        .1;
    let block = tour
        .split_once("```sh\n")
        .expect("the tour has an sh block")
        .1
        .split_once("```")
        .expect("the sh block ends")
        .0;
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The verbs `hoist --help` lists (but `help`).
fn verbs() -> Vec<String> {
    let out = common::run_ok(&mut hoist(&["--help"]));
    out.split_once("Commands:")
        .expect("help lists commands")
        .1
        .split_once("Options:")
        .expect("help lists options")
        .0
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(String::from)
        .collect()
}

#[test]
fn every_command_of_the_readme_tour_runs() {
    if !common::require_tool("docker-registry") || !common::require_tool("python3") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let lines = tour_lines(&readme);

    let verbs = verbs();
    assert!(verbs.len() >= 10, "{verbs:?}");
    for verb in &verbs {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("hoist {verb} "))
                    || l.contains(&format!("| hoist {verb} "))),
            "the README's tour has no example of `hoist {verb}`"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["tmp", "home", "run", "man", "before", "after/etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("before/keep"), "same\n").unwrap();
    std::fs::write(root.join("before/gone"), "old\n").unwrap();
    std::fs::write(root.join("after/keep"), "same\n").unwrap();
    std::fs::write(root.join("after/etc/new"), "new\n").unwrap();
    common::run_ok(Command::new("python3").args([
        repo.join("testdata/make-hello.py").to_str().unwrap(),
        root.join("testdata/hello").to_str().unwrap(),
    ]));
    let registry = Registry::start();
    let bin_dir = common::hoist_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tmp = format!("{}/tmp/", root.display());

    for line in &lines {
        // `/tmp/` first: the other replacements are themselves under the system's temp directory.
        let cmd = line
            .replace("/tmp/", &tmp)
            .replace(
                "/etc/bash_completion.d/hoist",
                &format!("{}/completion", root.display()),
            )
            .replace(
                "/usr/local/share/man/man1",
                &format!("{}/man", root.display()),
            )
            .replace("localhost:5000", &registry.host);
        let out = Command::new("sh")
            .args(["-ec", &cmd])
            .current_dir(root)
            .env("PATH", &path)
            .env("HOME", root.join("home"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env("PASSWORD", "secret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README line failed: {line}\nran: {cmd}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the tour promised happened: the repacked tree's file is in the new image, the registry holds
    // the image, the man pages and completion script were written, the refused copy wrote nothing.
    let tree = root.join("tmp/check");
    common::run_ok(&mut hoist(&[
        "unpack",
        "-q",
        &format!("oci:{tmp}copy:v2"),
        tree.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(tree.join("hello.txt")).unwrap(),
        "hi\n"
    );
    assert!(registry.count("PUT", "/v2/hello/manifests/v1") >= 1);
    assert!(root.join("man/hoist-copy.1").is_file());
    assert!(root.join("completion").metadata().unwrap().len() > 1000);
    common::run_fail(&mut hoist(&["inspect", &format!("oci:{tmp}x:v1")]));
}
