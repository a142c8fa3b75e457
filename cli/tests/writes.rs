//! How hoist writes and reads local files: special destinations (a FIFO, `/dev/stdout`, a symlink)
//! are written through; new files follow the umask; temp files are removed on SIGINT/SIGTERM and,
//! after SIGKILL, by the next writer; `gc` leaves a running repack's temp file alone; a FIFO inside a
//! layout is an error, not a hang; and as root a layout keeps its owner.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_registry::{self, FakeServer, Reply, serve_layout};
use common::{hoist, run_fail, run_ok, sh};

/// A layout at `dir` with a one-layer image (a real tar) tagged `t`; returns `oci:DIR:t`.
fn image(dir: &Path) -> String {
    common::synth::write_tar_image(
        dir,
        "t",
        &[("etc/hello", b"hello\n"), ("bin/tool", &[7u8; 5000])],
    );
    format!("oci:{}:t", dir.display())
}

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

/// The names in `tar` (a file's bytes).
fn tar_names(bytes: &[u8]) -> Vec<String> {
    tar::Archive::new(bytes)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// hoist's temp files and directories directly in `dir`.
fn temp_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".hoist-tmp-"))
        .map(|e| e.path())
        .collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` at most 30 s (killing it and failing past that): a hang is the bug.
fn wait_bounded(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fake registry serving a small image as `app:v1` whose blobs stop after their first bytes.
fn stalling_registry(dir: &Path) -> FakeServer {
    let img = fake_registry::small_image(&dir.join("img"), "app", "v1");
    FakeServer::start(move |req| {
        if req.path.contains("/blobs/") {
            return Reply::StallBody(200, 3000, vec![0u8; 100]);
        }
        serve_layout(&img, req).unwrap_or(Reply::status(404))
    })
}

/// `hoist copy` from the stalling registry to `dest`, left running.
fn stalled_copy(reg: &FakeServer, dest: &str) -> Child {
    hoist(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--retry-times",
        "0",
        &format!("docker://{}/app:v1", reg.host),
        dest,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn archives_to_dev_stdout_stream_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(&dir.path().join("src"));
    let stdout_before = fs::symlink_metadata("/dev/stdout")
        .ok()
        .map(|m| m.file_type());
    // Without -q too: progress and messages go to stderr, never into the archive.
    for (transport, member, quiet) in [
        ("docker-archive", "manifest.json", ""),
        ("oci-archive", "index.json", "-q"),
    ] {
        let listed = run_ok(&mut sh(&format!(
            "{} copy {quiet} {src} {transport}:/dev/stdout | tar t",
            common::hoist_bin().display()
        )));
        assert!(
            listed.lines().any(|l| l == member),
            "{transport}: tar t listed {listed:?}"
        );
    }
    // The machine's /dev/stdout is what it was (hoist used to rename a regular file over it).
    let after = fs::symlink_metadata("/dev/stdout")
        .ok()
        .map(|m| m.file_type());
    assert_eq!(stdout_before, after);
    assert!(!after.is_some_and(|t| t.is_file()));
}

#[test]
fn archives_to_a_fifo_reach_its_reader_and_the_fifo_stays() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(&dir.path().join("src"));
    for (transport, member) in [
        ("docker-archive", "manifest.json"),
        ("oci-archive", "index.json"),
    ] {
        let fifo = dir.path().join(format!("{transport}.fifo"));
        mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        let mut child = hoist(&[
            "copy",
            "-q",
            &src,
            &format!("{transport}:{}", fifo.display()),
        ])
        .spawn()
        .unwrap();
        let status = wait_bounded(&mut child, &format!("copy to a {transport} FIFO"));
        assert!(status.success(), "{transport}: {status}");
        let bytes = reader.join().unwrap();
        assert!(tar_names(&bytes).iter().any(|n| n == member), "{transport}");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }
}

#[test]
fn outputs_through_a_symlink_land_in_its_target_and_the_link_stays() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(&dir.path().join("src"));
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = |name: &str| {
        let target = real.join(name);
        fs::write(&target, b"old").unwrap();
        let l = dir.path().join(name);
        std::os::unix::fs::symlink(&target, &l).unwrap();
        (l, target)
    };
    for (transport, member) in [
        ("docker-archive", "manifest.json"),
        ("oci-archive", "index.json"),
    ] {
        let (l, target) = link(&format!("{transport}.tar"));
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &src,
            &format!("{transport}:{}", l.display()),
        ]));
        assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
        let names = tar_names(&fs::read(&target).unwrap());
        assert!(names.iter().any(|n| n == member), "{transport}: {names:?}");
    }
    // hoist diff -o, and copy --digestfile.
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&upper).unwrap();
    fs::write(upper.join("new.txt"), b"new\n").unwrap();
    let (l, target) = link("layer.tar");
    run_ok(&mut hoist(&[
        "diff",
        lower.to_str().unwrap(),
        upper.to_str().unwrap(),
        "-o",
        l.to_str().unwrap(),
    ]));
    assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
    assert_eq!(tar_names(&fs::read(&target).unwrap()), ["new.txt"]);
    let (l, target) = link("digest");
    let out = dir.path().join("copy");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        "--digestfile",
        l.to_str().unwrap(),
        &src,
        &format!("oci:{}:t", out.display()),
    ]));
    assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
    assert!(fs::read_to_string(&target).unwrap().starts_with("sha256:"));
    // unpack --state FILE: a state file the user names is an output like the others.
    let (l, target) = link("state.json");
    let rootfs = dir.path().join("rootfs");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--rootless",
        "--state",
        l.to_str().unwrap(),
        &src,
        rootfs.to_str().unwrap(),
    ]));
    assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
    assert!(fs::read_to_string(&target).unwrap().starts_with('{'));
}

#[test]
fn written_files_follow_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(&dir.path().join("src"));
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&upper).unwrap();
    fs::write(upper.join("new.txt"), b"new\n").unwrap();
    // From an archive, so the layout's blobs are written, not hard-linked from the source.
    let src = {
        let a = format!("oci-archive:{}/src.tar:t", dir.path().display());
        run_ok(&mut hoist(&["copy", "-q", &src, &a]));
        a
    };
    for (umask, want) in [("022", 0o644), ("027", 0o640)] {
        let d = dir.path().join(umask);
        fs::create_dir(&d).unwrap();
        let bin = common::hoist_bin().display().to_string();
        run_ok(&mut sh(&format!(
            "umask {umask}; cd {d}; \
             {bin} copy -q {src} oci:layout:t; \
             {bin} copy -q {src} docker-archive:d.tar; \
             {bin} copy -q {src} oci-archive:o.tar; \
             {bin} copy -q {src} dir:dir; \
             {bin} diff {} {} -o layer.tar; \
             {bin} unpack -q --state state.json oci:layout:t unpacked; \
             {bin} unpack -q --bundle oci:layout:t bundle",
            lower.display(),
            upper.display(),
            d = d.display()
        )));
        let mut files = vec![
            d.join("layout/index.json"),
            d.join("layout/oci-layout"),
            d.join("d.tar"),
            d.join("o.tar"),
            d.join("dir/manifest.json"),
            d.join("dir/version"),
            d.join("layer.tar"),
            d.join("state.json"),
            d.join("bundle/config.json"),
            d.join("bundle/hoist-state.json"),
        ];
        for e in fs::read_dir(d.join("layout/blobs/sha256")).unwrap() {
            files.push(e.unwrap().path());
        }
        for f in files {
            assert_eq!(mode(&f), want, "umask {umask}: {}", f.display());
        }
    }
}

#[test]
fn sigint_and_sigterm_remove_the_runs_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let reg = stalling_registry(dir.path());
    for (sig, name) in [(libc::SIGINT, "int"), (libc::SIGTERM, "term")] {
        // Into a layout: the blob's temp file is in the layout.
        let layout = dir.path().join(format!("layout-{name}"));
        let mut child = stalled_copy(&reg, &format!("oci:{}:v1", layout.display()));
        wait_until("the blob's temp file", || !temp_entries(&layout).is_empty());
        signal(&child, sig);
        let status = wait_bounded(&mut child, "the interrupted copy");
        assert_eq!(status.signal(), Some(sig), "{status}");
        assert_eq!(temp_entries(&layout), Vec::<PathBuf>::new(), "SIG{name}");

        // Into an oci-archive: the staging directory beside it.
        let out = dir.path().join(format!("archive-{name}"));
        fs::create_dir(&out).unwrap();
        let mut child = stalled_copy(&reg, &format!("oci-archive:{}/a.tar", out.display()));
        wait_until("the staging directory", || !temp_entries(&out).is_empty());
        signal(&child, sig);
        wait_bounded(&mut child, "the interrupted archive copy");
        assert_eq!(temp_entries(&out), Vec::<PathBuf>::new(), "SIG{name}");
        assert!(!out.join("a.tar").exists());
    }
}

#[test]
fn temp_files_of_a_killed_run_are_removed_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(&dir.path().join("src"));
    let reg = stalling_registry(dir.path());

    let layout = dir.path().join("layout");
    let mut child = stalled_copy(&reg, &format!("oci:{}:v1", layout.display()));
    wait_until("the blob's temp file", || !temp_entries(&layout).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !temp_entries(&layout).is_empty(),
        "SIGKILL leaves temp files"
    );
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &src,
        &format!("oci:{}:t", layout.display()),
    ]));
    assert_eq!(temp_entries(&layout), Vec::<PathBuf>::new());
    run_ok(&mut hoist(&[
        "verify",
        &format!("oci:{}:t", layout.display()),
    ]));

    // oci-archive: the killed run's staging is removed by the next run into that directory, and a
    // running copy's staging is left alone by a third.
    let out = dir.path().join("archives");
    fs::create_dir(&out).unwrap();
    let mut killed = stalled_copy(&reg, &format!("oci-archive:{}/a.tar", out.display()));
    wait_until("the staging directory", || !temp_entries(&out).is_empty());
    killed.kill().unwrap();
    killed.wait().unwrap();
    let stale = temp_entries(&out);
    assert_eq!(stale.len(), 1, "the staging directory: {stale:?}");
    let mut live = stalled_copy(&reg, &format!("oci-archive:{}/b.tar", out.display()));
    wait_until("the stale staging to go and the live one to come", || {
        let now = temp_entries(&out);
        now.len() == 1 && now != stale
    });
    let live_staging = temp_entries(&out);
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &src,
        &format!("oci-archive:{}/c.tar", out.display()),
    ]));
    if let Some(st) = live.try_wait().unwrap() {
        let mut err = String::new();
        std::io::Read::read_to_string(live.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("the live copy ended: {st}: {err}");
    }
    assert_eq!(
        temp_entries(&out),
        live_staging,
        "a live run's staging was removed"
    );
    assert!(out.join("c.tar").is_file());
    signal(&live, libc::SIGTERM);
    wait_bounded(&mut live, "the live archive copy");
    assert_eq!(temp_entries(&out), Vec::<PathBuf>::new());
}

#[test]
fn gc_during_repack_leaves_the_new_layer_alone() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let src = image(&layout);
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &src,
        bundle.to_str().unwrap(),
    ]));
    let gc_target = format!("oci:{}", layout.display());
    for i in 0..4 {
        // Enough new content that the layer takes a while to write.
        fs::write(
            bundle.join("rootfs").join(format!("big-{i}")),
            common::synth::noise(24 << 20, i),
        )
        .unwrap();
        let mut repack = hoist(&[
            "repack",
            bundle.to_str().unwrap(),
            "--tag",
            &format!("v{i}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        while repack.try_wait().unwrap().is_none() {
            run_ok(&mut hoist(&["gc", &gc_target]));
        }
        let out = repack.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "repack {i} failed while gc ran: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        run_ok(&mut hoist(&[
            "verify",
            &format!("oci:{}:v{i}", layout.display()),
        ]));
    }
}

#[test]
fn a_fifo_in_a_layout_is_an_error_naming_it_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    let src = image(&src_dir);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(src_dir.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    for file in [
        "index.json",
        "oci-layout",
        &format!("blobs/sha256/{manifest}"),
    ] {
        let broken = dir.path().join(format!("broken-{}", file.len()));
        run_ok(Command::new("cp").arg("-a").arg(&src_dir).arg(&broken));
        fs::remove_file(broken.join(file)).unwrap();
        mkfifo(&broken.join(file));
        let b = broken.display().to_string();
        let runs: Vec<Vec<String>> = vec![
            vec!["verify".into(), format!("oci:{b}:t")],
            vec![
                "copy".into(),
                "-q".into(),
                format!("oci:{b}:t"),
                format!("oci:{b}-out:t"),
            ],
            vec![
                "copy".into(),
                "-q".into(),
                src.clone(),
                format!("oci:{b}:other"),
            ],
        ];
        for args in runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut child = hoist(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let status = wait_bounded(&mut child, &format!("{args:?} with a FIFO {file}"));
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut err).unwrap();
            assert!(!status.success(), "{args:?} with a FIFO {file} succeeded");
            let name = Path::new(file).file_name().unwrap().to_string_lossy();
            assert!(
                err.contains(&*name) && err.contains("FIFO"),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn symlinked_blob_directories_are_refused_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("src");
    let src = image(&src_dir);
    for link in ["blobs", "blobs/sha256"] {
        let l = dir.path().join(format!("layout-{}", link.len()));
        run_ok(Command::new("cp").arg("-a").arg(&src_dir).arg(&l));
        let elsewhere = dir.path().join(format!("elsewhere-{}", link.len()));
        fs::rename(l.join(link), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, l.join(link)).unwrap();
        let before = common::snapshot(&elsewhere);
        // As a source.
        let out = run_fail(&mut hoist(&[
            "copy",
            "-q",
            &format!("oci:{}:t", l.display()),
            &format!("oci:{}-out:t", l.display()),
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("symlink"), "{link} as source: {err}");
        // As a destination: nothing is written through the link.
        let out = run_fail(&mut hoist(&[
            "copy",
            "-q",
            &src,
            &format!("oci:{}:new", l.display()),
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("symlink"), "{link} as destination: {err}");
        assert_eq!(common::snapshot(&elsewhere), before);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn as_root_new_files_keep_the_layouts_owner() {
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("SKIPPED: needs root to own a layout as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Sources in archives, so every blob is written (a hard link would keep the source's owner).
    let archive = |name: &str, seed: u64| {
        let l = dir.path().join(name);
        common::synth::write_image(&l, "x", 1, 1000, seed);
        let a = format!("oci-archive:{}.tar:x", l.display());
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &format!("oci:{}:x", l.display()),
            &a,
        ]));
        a
    };
    let (first, second) = (archive("first", 1), archive("second", 2));
    // An existing layout owned by 4242, and an empty directory owned by 4242 that becomes one.
    let existing = dir.path().join("existing");
    image(&existing);
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    run_ok(
        Command::new("chown")
            .args(["-R", "4242:4343"])
            .arg(&existing)
            .arg(&empty),
    );
    for l in [&existing, &empty] {
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &first,
            &format!("oci:{}:a", l.display()),
        ]));
        run_ok(&mut hoist(&[
            "copy",
            "-q",
            &second,
            &format!("oci:{}:b", l.display()),
        ]));
        for e in walkdir(l) {
            let m = fs::symlink_metadata(&e).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{}", e.display());
        }
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

/// `hoist login` to `host` writing `authfile`, left running.
fn login(host: &str, authfile: &Path) -> Child {
    hoist(&[
        "login",
        "--tls-verify=false",
        "-u",
        "user",
        "-p",
        "secret",
        "--authfile",
        authfile.to_str().unwrap(),
        host,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn auth_hosts(authfile: &Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&fs::read(authfile).unwrap()).unwrap();
    let mut hosts: Vec<String> = v["auths"].as_object().unwrap().keys().cloned().collect();
    hosts.sort();
    hosts
}

#[test]
fn concurrent_logins_all_land_and_a_symlinked_auth_file_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let registries: Vec<FakeServer> = (0..12)
        .map(|_| FakeServer::start(|_| Reply::status(200)))
        .collect();
    let real = dir.path().join("real-auth.json");
    fs::write(&real, br#"{"auths":{},"credHelpers":{"x":"y"}}"#).unwrap();
    let authfile = dir.path().join("auth.json");
    std::os::unix::fs::symlink(&real, &authfile).unwrap();
    let children: Vec<Child> = registries
        .iter()
        .map(|r| login(&r.host, &authfile))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut want: Vec<String> = registries.iter().map(|r| r.host.clone()).collect();
    want.sort();
    assert_eq!(
        auth_hosts(&authfile),
        want,
        "entries lost to concurrent logins"
    );
    assert!(
        fs::symlink_metadata(&authfile)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(auth_hosts(&real), want);
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
    assert_eq!(v["credHelpers"]["x"], "y");
    // A new auth file is private whatever the umask.
    let fresh = dir.path().join("fresh/auth.json");
    let out = login(&registries[0].host, &fresh)
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(mode(&fresh), 0o600);
}

#[test]
fn repack_never_writes_through_a_planted_state_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let src = image(&layout);
    let bundle = dir.path().join("bundle");
    run_ok(&mut hoist(&[
        "unpack",
        "-q",
        "--bundle",
        &src,
        bundle.to_str().unwrap(),
    ]));
    // A state file replaced by a link elsewhere: repack refuses it or replaces the link, and never
    // writes through it.
    let outside = dir.path().join("outside");
    let state = bundle.join("hoist-state.json");
    let saved = fs::read(&state).unwrap();
    fs::remove_file(&state).unwrap();
    fs::write(&outside, &saved).unwrap();
    std::os::unix::fs::symlink(&outside, &state).unwrap();
    fs::write(bundle.join("rootfs/added.txt"), b"added\n").unwrap();
    let out = hoist(&[
        "repack",
        bundle.to_str().unwrap(),
        "--tag",
        "v2",
        "--refresh-bundle",
    ])
    .output()
    .unwrap();
    assert!(
        fs::read(&outside).unwrap() == saved,
        "written through the link"
    );
    if out.status.success() {
        assert!(fs::symlink_metadata(&state).unwrap().is_file());
    }
}

#[test]
fn fifos_given_as_inputs_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(&dir.path().join("src"));
    let d = dir.path().join("dir");
    run_ok(&mut hoist(&[
        "copy",
        "-q",
        &src,
        &format!("dir:{}", d.display()),
    ]));
    // Every blob a FIFO (manifest.json stays: a directory without one is not a dir: image).
    for e in fs::read_dir(&d).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("manifest.json") && !p.ends_with("version") {
            fs::remove_file(&p).unwrap();
            mkfifo(&p);
        }
    }
    let archive = dir.path().join("archive.fifo");
    mkfifo(&archive);
    for (source, named) in [
        (format!("dir:{}", d.display()), "dir/"),
        (format!("oci-archive:{}", archive.display()), "archive.fifo"),
        (
            format!("docker-archive:{}", archive.display()),
            "archive.fifo",
        ),
    ] {
        let out = dir.path().join("out");
        let mut child = hoist(&["copy", "-q", &source, &format!("oci:{}:t", out.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_bounded(&mut child, &format!("copy from {source}"));
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "{source}");
        assert!(
            err.contains(named) && err.contains("FIFO"),
            "{source}: {err}"
        );
    }
}

#[test]
fn an_archive_written_through_stages_in_the_temp_directory_not_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let reg = stalling_registry(dir.path());
    // Like /dev/stdout: the directory of a FIFO is no place for a staging layout.
    let devdir = dir.path().join("dev");
    fs::create_dir(&devdir).unwrap();
    let fifo = devdir.join("out.fifo");
    mkfifo(&fifo);
    let tmpdir = dir.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let mut child = hoist(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--retry-times",
        "0",
        &format!("docker://{}/app:v1", reg.host),
        &format!("oci-archive:{}", fifo.display()),
    ])
    .env("TMPDIR", &tmpdir)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_until("the staging directory", || {
        !temp_entries(&tmpdir).is_empty()
    });
    assert_eq!(temp_entries(&devdir), Vec::<PathBuf>::new());
    signal(&child, libc::SIGTERM);
    wait_bounded(&mut child, "the staged copy");
    assert_eq!(temp_entries(&tmpdir), Vec::<PathBuf>::new());
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}
