//! Helpers shared by the CLI's end-to-end tests: running `hoist` and the real third-party tools
//! (skopeo, umoci, oci-image-tool, docker-registry), and building test images with them.
//!
//! Each area keeps its own helpers in a sibling module; this file holds what every area needs.
#![allow(dead_code)]

pub mod docker;
pub mod dockerd;
pub mod fake_registry;
pub mod images;
pub mod registry;
pub mod synth;
pub mod unpack;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `hoist` binary under test.
pub fn hoist_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoist"))
}

/// A `Command` for `hoist` with the given arguments.
pub fn hoist(args: &[&str]) -> Command {
    let mut c = Command::new(hoist_bin());
    c.args(args);
    c
}

/// True when `tool` is on PATH. Under `CI=true` a missing tool fails the test (CI installs them all);
/// elsewhere the test says it skipped and returns early.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} is required under CI=true but is not installed (.ci/run installs it)");
        }
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// Runs a command, panicking with its output when it fails. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Unpacks `image` (`LAYOUT:TAG`) into the bundle `dir` with `umoci unpack` (as root: owners applied).
pub fn umoci_unpack(image: &str, dir: &Path) {
    run_ok(Command::new("umoci").args(["unpack", "--image", image, &dir.display().to_string()]));
}

/// Runs a command that must fail; returns its output.
pub fn run_fail(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// A shell command.
pub fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-ec", script]);
    c
}

/// Lists every file below `dir` with its content digest, for "nothing changed here" assertions.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v = Vec::new();
    for e in walkdir_sorted(dir) {
        let meta = std::fs::symlink_metadata(&e).expect("stat");
        let desc = if meta.is_file() {
            format!(
                "file {}",
                hoist::Digest::sha256(&std::fs::read(&e).expect("read"))
            )
        } else if meta.file_type().is_symlink() {
            format!(
                "link {}",
                std::fs::read_link(&e).expect("readlink").display()
            )
        } else {
            "dir".to_string()
        };
        v.push((e.strip_prefix(dir).expect("prefix").to_path_buf(), desc));
    }
    v
}

fn walkdir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
