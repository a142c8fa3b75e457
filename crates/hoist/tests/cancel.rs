//! Cancellation through the options' `CancelToken`: a copy, an unpack, a verify and a repack stopped
//! halfway (deterministically, by a progress sink that cancels at a chosen event) fail with
//! `Error::Cancelled` and leave their destination as a SIGKILL would (valid: the old state), with no
//! temp file left; run again, they complete.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist::descriptor::new_descriptor;
use hoist::layout::{Layout, TEMP_PREFIX};
use hoist::unpack::INCOMPLETE_MARKER;
use hoist::{
    CancelToken, CopyOptions, Digest, Error, Event, OpenOptions, RepackOptions, Sink,
    UnpackOptions, VerifyOptions, media_type,
};

mod common;

/// A tar holding one file `name` with `content`.
fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, name, content).unwrap();
    tar.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Bytes that do not compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes an image of `layers` (uncompressed tars; gzipped unless `plain`) into the layout at `path`
/// (created when absent) under `tag`; returns its manifest digest.
fn write_image(path: &Path, tag: &str, layers: &[Vec<u8>], plain: bool) -> Digest {
    let layout = if path.join("oci-layout").exists() {
        Layout::open(path).unwrap()
    } else {
        Layout::create(path).unwrap()
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        let (blob, mt) = if plain {
            (tar.clone(), media_type::OCI_LAYER_TAR)
        } else {
            (gzip(tar), media_type::OCI_LAYER_GZIP)
        };
        let d = layout.write_bytes(&blob).unwrap();
        descs.push(
            serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": blob.len()}),
        );
        diff_ids.push(Digest::sha256(tar).to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": hoist::Platform::host().architecture, "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let cd = layout.write_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": descs
    }))
    .unwrap();
    let md = layout.write_bytes(&manifest).unwrap();
    let desc = new_descriptor(media_type::OCI_MANIFEST, &md, manifest.len() as u64);
    layout.set_tag(Some(tag), &desc).unwrap();
    md
}

/// Three small layers, each a file of its own.
fn three_layers() -> Vec<Vec<u8>> {
    (1..=3)
        .map(|i| tar_of(&format!("file{i}.txt"), format!("layer {i}\n").as_bytes()))
        .collect()
}

fn open(reference: &str) -> Box<dyn hoist::Source> {
    hoist::open_source(&reference.parse().unwrap(), &OpenOptions::default()).unwrap()
}

/// The digest `reference`'s root resolves to.
fn root_of(reference: &str) -> Digest {
    open(reference).root().unwrap().digest().clone()
}

/// Every path below `dir` whose name starts with the temp-file prefix.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                found.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    found
}

/// A sink that cancels `token` at the first event `at` accepts; counts the events it saw after.
fn cancelling_sink(
    token: &CancelToken,
    at: impl Fn(&Event) -> bool + Send + Sync + 'static,
) -> (Sink, Arc<AtomicUsize>) {
    let token = token.clone();
    let done_after = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&done_after);
    let sink = Sink::new(move |event| {
        if token.is_cancelled() {
            if matches!(event, Event::BlobDone { .. }) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        } else if at(event) {
            token.cancel();
        }
    });
    (sink, done_after)
}

fn verify_ok(reference: &str) {
    let report = hoist::verify(open(reference).as_ref(), &VerifyOptions::default());
    assert!(report.is_ok(), "{reference}: {:?}", report.problems);
}

#[test]
fn a_copy_cancelled_after_its_first_blob_keeps_the_old_tag_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let new = write_image(&src, "v1", &three_layers(), false);
    let old = write_image(&dst, "v1", &[tar_of("old.txt", b"old\n")], false);
    let (src_ref, dst_ref) = (
        format!("oci:{}:v1", src.display()),
        format!("oci:{}:v1", dst.display()),
    );

    let token = CancelToken::new();
    let (sink, done_after) = cancelling_sink(&token, |e| matches!(e, Event::BlobDone { .. }));
    let mut opts = CopyOptions::default();
    opts.jobs = 1;
    opts.progress = Some(sink);
    opts.cancel = token.clone();
    let source = open(&src_ref);
    let destination =
        hoist::open_destination(&dst_ref.parse().unwrap(), &OpenOptions::default()).unwrap();
    let result = hoist::copy(source.as_ref(), destination.as_ref(), &opts);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    drop(destination);
    assert_eq!(
        done_after.load(Ordering::Relaxed),
        0,
        "no blob moved after the cancel"
    );

    // As a SIGKILL would leave it: the old tag, a valid layout, no temp file.
    assert_eq!(root_of(&dst_ref), old);
    verify_ok(&dst_ref);
    assert_eq!(temp_files(&dst), Vec::<PathBuf>::new());

    // A new token (the old one stays cancelled), and the copy completes.
    let mut opts = CopyOptions::default();
    opts.jobs = 1;
    let destination =
        hoist::open_destination(&dst_ref.parse().unwrap(), &OpenOptions::default()).unwrap();
    let report = hoist::copy(source.as_ref(), destination.as_ref(), &opts).unwrap();
    drop(destination);
    assert_eq!(report.digest, new);
    assert_eq!(root_of(&dst_ref), new);
    verify_ok(&dst_ref);
}

#[test]
fn a_copy_cancelled_inside_one_large_blob_stops_before_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("out.tar"));
    // One 12 MiB uncompressed layer: progress is reported every 4 MiB, and the cancel at the first
    // report must stop the stream there, not at the blob's end.
    write_image(&src, "v1", &[tar_of("big.bin", &noise(12 << 20))], true);
    let token = CancelToken::new();
    let (sink, done_after) = cancelling_sink(
        &token,
        |e| matches!(e, Event::BlobProgress { done, .. } if *done >= 4 << 20),
    );
    let mut opts = CopyOptions::default();
    opts.jobs = 1;
    opts.progress = Some(sink);
    opts.cancel = token;
    let source = open(&format!("oci:{}:v1", src.display()));
    // An archive: its staging files must go when the copy unwinds, and no archive appears.
    let destination = hoist::open_destination(
        &format!("oci-archive:{}:v1", out.display()).parse().unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    let result = hoist::copy(source.as_ref(), destination.as_ref(), &opts);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    drop(destination);
    assert_eq!(done_after.load(Ordering::Relaxed), 0);
    assert!(!out.exists(), "a cancelled copy wrote no archive");
    assert_eq!(temp_files(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn an_unpack_cancelled_after_its_first_layer_stays_incomplete_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_image(&layout, "v1", &three_layers(), false);
    let reference = format!("oci:{}:v1", layout.display());
    let rootfs = tmp.path().join("rootfs");

    let token = CancelToken::new();
    let (sink, done_after) = cancelling_sink(&token, |e| matches!(e, Event::BlobDone { .. }));
    let mut opts = UnpackOptions::default();
    opts.apply.rootless = true;
    opts.progress = Some(sink);
    opts.cancel = token;
    let result = hoist::unpack(open(&reference).as_ref(), &rootfs, &opts);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(
        done_after.load(Ordering::Relaxed),
        0,
        "no layer applied after the cancel"
    );
    assert!(rootfs.join(INCOMPLETE_MARKER).exists());
    assert!(!hoist::unpack::is_complete(&rootfs));
    assert!(
        !rootfs.join("file3.txt").exists(),
        "the last layer was not applied"
    );
    assert_eq!(temp_files(tmp.path()), Vec::<PathBuf>::new());

    // Run again (into an empty directory, as unpack requires), it completes.
    std::fs::remove_dir_all(&rootfs).unwrap();
    let mut opts = UnpackOptions::default();
    opts.apply.rootless = true;
    let report = hoist::unpack(open(&reference).as_ref(), &rootfs, &opts).unwrap();
    assert_eq!(report.layers, 3);
    assert!(hoist::unpack::is_complete(&rootfs));
    for i in 1..=3 {
        assert!(rootfs.join(format!("file{i}.txt")).is_file());
    }
}

#[test]
fn a_verify_cancelled_after_its_first_blob_says_so_and_is_not_ok() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_image(&layout, "v1", &three_layers(), false);
    let reference = format!("oci:{}:v1", layout.display());
    let token = CancelToken::new();
    let (sink, done_after) = cancelling_sink(&token, |e| matches!(e, Event::BlobDone { .. }));
    let mut opts = VerifyOptions::default();
    opts.jobs = 1;
    opts.progress = Some(sink);
    opts.cancel = token;
    let report = hoist::verify(open(&reference).as_ref(), &opts);
    assert!(report.cancelled);
    assert!(!report.is_ok());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(done_after.load(Ordering::Relaxed), 0);

    let report = hoist::verify(open(&reference).as_ref(), &VerifyOptions::default());
    assert!(report.is_ok() && !report.cancelled);
}

#[test]
fn a_repack_cancelled_while_writing_its_layer_keeps_the_tag_and_state_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let old = write_image(&layout, "v1", &three_layers(), false);
    let reference = format!("oci:{}:v1", layout.display());
    let bundle = tmp.path().join("bundle");
    let mut unpack = UnpackOptions::default();
    unpack.apply.rootless = true;
    unpack.bundle = true;
    unpack.source_ref = Some(reference.clone());
    hoist::unpack(open(&reference).as_ref(), &bundle, &unpack).unwrap();
    std::fs::write(bundle.join("rootfs/added.txt"), b"new\n").unwrap();
    let state = bundle.join(hoist::unpack::BUNDLE_STATE);
    let state_before = std::fs::read(&state).unwrap();

    let token = CancelToken::new();
    let (sink, _) = cancelling_sink(
        &token,
        |e| matches!(e, Event::Step { name, .. } if name.starts_with("writing the layer")),
    );
    let mut opts = RepackOptions::default();
    opts.refresh = true;
    opts.progress = Some(sink);
    opts.cancel = token;
    let result = hoist::repack(&bundle, &opts);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert_eq!(root_of(&reference), old, "the tag did not move");
    verify_ok(&reference);
    assert_eq!(temp_files(tmp.path()), Vec::<PathBuf>::new());
    assert_eq!(
        std::fs::read(&state).unwrap(),
        state_before,
        "the state is unchanged"
    );

    let mut opts = RepackOptions::default();
    opts.refresh = true;
    let repacked = hoist::repack(&bundle, &opts).unwrap();
    assert_eq!(repacked.changes, 1);
    assert_eq!(root_of(&reference), *repacked.appended.manifest.digest());
    assert_ne!(root_of(&reference), old);
    verify_ok(&reference);
}

/// The image builder's own layers (a directory, a tarball, a flatten) stop once its token is
/// cancelled, with no temp file left in its scratch directory; without the token they are made.
#[test]
fn the_builders_layers_stop_when_cancelled_and_leave_no_temp_file() {
    use hoist::ImageBuilder;
    use hoist::diff::LayerOptions;
    let t = tempfile::tempdir().unwrap();
    let scratch = t.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let dir = t.path().join("tree");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("big"), noise(4 << 20)).unwrap();
    let layout = t.path().join("layout");
    write_image(&layout, "v1", &three_layers(), false);
    let base = open(&format!("oci:{}:v1", layout.display()));

    let token = CancelToken::new();
    let mut builder = ImageBuilder::from_source(base.as_ref(), None).unwrap();
    builder.scratch_dir(&scratch);
    builder.cancel_with(&token);
    // Not cancelled: each is made.
    builder
        .add_dir(&dir, None, &LayerOptions::default())
        .unwrap();
    token.cancel();
    let opts = LayerOptions::default();
    assert!(matches!(
        builder.add_dir(&dir, None, &opts),
        Err(Error::Cancelled)
    ));
    let tarball = tar_of("f", &noise(1 << 20));
    let err = builder.add_tar(&tarball[..], &opts).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let mut flat = ImageBuilder::from_source(base.as_ref(), None).unwrap();
    flat.scratch_dir(&scratch);
    flat.cancel_with(&token);
    let err = flat.flatten(&opts, None).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    drop(flat);
    // Only the one layer made before the cancel is in the scratch directory.
    assert_eq!(temp_files(&scratch).len(), 1, "{:?}", temp_files(&scratch));
    drop(builder);
    assert_eq!(temp_files(&scratch), Vec::<PathBuf>::new());
}
