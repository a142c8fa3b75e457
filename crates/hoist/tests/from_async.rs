//! Calling the library from inside a tokio runtime (on a worker thread, as an `async fn` would)
//! must not panic: copy and unpack from a layout, and a copy from a loopback `docker-registry`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist::{CopyOptions, OpenOptions, TransportRef, UnpackOptions};

mod common;
use common::write_image;

fn reference(text: &str) -> TransportRef {
    text.parse().unwrap()
}

/// Copies `from` to `to` with the library's entry points, from the calling (async) thread.
fn copy(from: &str, to: &str) -> hoist::CopyReport {
    let mut opts = OpenOptions::default();
    opts.tls_verify = Some(false);
    let src = hoist::open_source(&reference(from), &opts).unwrap();
    let dst = hoist::open_destination(&reference(to), &opts).unwrap();
    hoist::copy(src.as_ref(), dst.as_ref(), &CopyOptions::default()).unwrap()
}

/// A multi-thread runtime, as `#[tokio::main]` builds.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn copy_and_unpack_from_a_layout_inside_a_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_image(&layout);
    let rt = runtime();
    let (copied, rootfs) = rt.block_on(async {
        let out = tmp.path().join("out");
        let report = copy(
            &format!("oci:{}:v1", layout.display()),
            &format!("oci:{}:v1", out.display()),
        );
        let src = hoist::open_source(
            &reference(&format!("oci:{}:v1", out.display())),
            &OpenOptions::default(),
        )
        .unwrap();
        let rootfs = tmp.path().join("rootfs");
        let mut opts = UnpackOptions::default();
        opts.apply.rootless = true;
        hoist::unpack(src.as_ref(), &rootfs, &opts).unwrap();
        let verified = hoist::verify(src.as_ref(), &hoist::VerifyOptions::default());
        assert!(verified.is_ok(), "{verified:?}");
        (report, rootfs)
    });
    assert_eq!(copied.blobs_copied + copied.blobs_linked, 2);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello\n"
    );
}

/// A running `docker-registry serve` on a free loopback port (plain http), killed on drop.
struct Registry {
    host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Option<Registry> {
    let installed = Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !installed {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "docker-registry is not installed (required under CI=true)"
        );
        eprintln!("SKIPPED: docker-registry is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let storage: PathBuf = dir.path().join("storage");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            storage.display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry {
        host,
        child,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                return Some(registry);
            }
        }
        assert!(Instant::now() < deadline, "docker-registry did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn copy_from_a_registry_inside_a_runtime() {
    let Some(registry) = start_registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_image(&layout);
    let remote = format!("docker://{}/hello:v1", registry.host);
    // Pushed from outside the runtime: the test is about reading inside it.
    let pushed = copy(&format!("oci:{}:v1", layout.display()), &remote);
    let rt = runtime();
    let pulled = rt.block_on(async {
        let out = tmp.path().join("pulled");
        copy(&remote, &format!("oci:{}:v1", out.display()))
    });
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(pulled.blobs_copied, 2);

    // verify, unpack and sync straight from the registry, inside the runtime too.
    let mut opts = OpenOptions::default();
    opts.tls_verify = Some(false);
    let rootfs = tmp.path().join("rootfs");
    let synced = rt.block_on(async {
        let src = hoist::open_source(&reference(&remote), &opts).unwrap();
        let verified = hoist::verify(src.as_ref(), &hoist::VerifyOptions::default());
        assert!(verified.is_ok(), "{verified:?}");
        assert_eq!(verified.blobs, 2);
        let mut unpack = UnpackOptions::default();
        unpack.apply.rootless = true;
        hoist::unpack(src.as_ref(), &rootfs, &unpack).unwrap();
        let mut sync_opts = hoist::SyncOptions::default();
        sync_opts.source = opts.clone();
        hoist::sync(
            &hoist::SyncSource::Docker(format!("{}/hello", registry.host)),
            &hoist::SyncDestination::Oci(tmp.path().join("mirror")),
            &sync_opts,
            &|_| {},
        )
        .unwrap()
    });
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!((synced.copied(), synced.failed()), (1, 0), "{synced:?}");
}
