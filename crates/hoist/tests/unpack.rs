//! Library tests of `unpack` and layer application: changeset semantics, rootless records, the state
//! file, verification, limits, and hostile layers (each must fail or stay inside the target, and a
//! sibling directory outside the target must be unchanged). Hostile tests run with both resolvers
//! (`openat2` and the userspace walk).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hoist::Digest;
use hoist::digest::Algorithm;
use hoist::error::Error;
use hoist::layout::Layout;
use hoist::media_type;
use hoist::reference::TransportRef;
use hoist::transport::{OpenOptions, Source, open_source};
use hoist::unpack::{Resolver, UnpackState, WhiteoutFormat};
use hoist::unpack::{UnpackOptions, is_complete, unpack};
use hoist::{Limits, diff::LowerTree};

// ---------------------------------------------------------------------------------------------
// Building layers and images

/// One tar entry for [`tar_of`]; `path` is written raw into the header (no sanitising).
#[derive(Clone)]
enum E {
    File(&'static [u8], &'static [u8], u32),
    Dir(&'static [u8], u32),
    Sym(&'static [u8], &'static [u8]),
    Hard(&'static [u8], &'static [u8]),
    Fifo(&'static [u8]),
    Char(&'static [u8], u32, u32),
    /// An entry of any type with raw bytes for name (used for whiteouts and root entries).
    Raw(&'static [u8], tar::EntryType),
}

fn raw_header(path: &[u8], kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    let name = &mut h.as_old_mut().name;
    assert!(path.len() < name.len(), "raw names must be short");
    name[..path.len()].copy_from_slice(path);
    h.set_cksum();
    h
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, data, mode) => {
                let h = raw_header(p, tar::EntryType::Regular, data.len() as u64, *mode);
                b.append(&h, *data).unwrap();
            }
            E::Dir(p, mode) => {
                b.append(&raw_header(p, tar::EntryType::Directory, 0, *mode), &[][..])
                    .unwrap();
            }
            E::Sym(p, target) | E::Hard(p, target) => {
                let kind = if matches!(e, E::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = raw_header(p, kind, 0, 0o777);
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(p) => {
                b.append(&raw_header(p, tar::EntryType::Fifo, 0, 0o640), &[][..])
                    .unwrap();
            }
            E::Char(p, maj, min) => {
                let mut h = raw_header(p, tar::EntryType::Char, 0, 0o666);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Raw(p, kind) => {
                b.append(&raw_header(p, *kind, 0, 0o755), &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A layer blob: media type, blob bytes, diff_id.
struct Blob {
    media_type: &'static str,
    bytes: Vec<u8>,
    diff_id: Digest,
}

fn gz_layer(tar: &[u8]) -> Blob {
    Blob {
        media_type: media_type::OCI_LAYER_GZIP,
        bytes: gzip(tar),
        diff_id: Digest::sha256(tar),
    }
}

/// Writes an image of `layers` into a new layout under `dir/layout`, tag `t`, and opens it.
fn image(dir: &Path, layers: Vec<Blob>) -> Box<dyn Source> {
    let path = dir.join("layout");
    write_image(&path, "t", &layers, Algorithm::Sha256);
    let r: TransportRef = format!("oci:{}:t", path.display()).parse().unwrap();
    open_source(&r, &OpenOptions::default()).unwrap()
}

/// Writes an image of `layers` into the layout at `path` (created if absent) under `tag`, every
/// blob and document addressed by `alg`.
fn write_image(path: &Path, tag: &str, layers: &[Blob], alg: Algorithm) {
    let layout = if path.exists() {
        Layout::open(path).unwrap()
    } else {
        Layout::create(path).unwrap()
    };
    let write = |bytes: &[u8]| {
        let d = Digest::of_bytes(alg, bytes);
        layout
            .write_blob(&d, bytes.len() as u64, &mut &bytes[..])
            .unwrap();
        d
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = write(&l.bytes);
        descs.push(serde_json::json!({
            "mediaType": l.media_type, "digest": d.to_string(), "size": l.bytes.len()
        }));
        diff_ids.push(l.diff_id.to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/true"], "WorkingDir": "/../../work"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let cd = write(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": descs
    }))
    .unwrap();
    let md = write(&manifest);
    let desc =
        hoist::descriptor::new_descriptor(media_type::OCI_MANIFEST, &md, manifest.len() as u64);
    layout.set_tag(Some(tag), &desc).unwrap();
}

struct Platform;
impl Platform {
    fn host_arch() -> String {
        hoist::platform::Platform::host().architecture
    }
}

fn opts(resolver: Resolver, rootless: bool) -> UnpackOptions {
    let mut o = UnpackOptions::default();
    o.apply.rootless = rootless;
    o.apply.resolver = Some(resolver);
    o
}

/// A scratch area: `target/` for the unpack and `outside/` with a secret file and a directory.
struct Area {
    _t: tempfile::TempDir,
    base: PathBuf,
}

impl Area {
    fn new() -> Area {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().to_path_buf();
        fs::create_dir_all(base.join("outside/dir")).unwrap();
        fs::write(base.join("outside/secret"), "secret").unwrap();
        fs::write(base.join("outside/dir/victim"), "victim").unwrap();
        Area { _t: t, base }
    }
    fn target(&self) -> PathBuf {
        self.base.join("target")
    }
    fn outside(&self) -> PathBuf {
        self.base.join("outside")
    }
}

/// Every path below `dir` with its type, mode, size, content and link target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in walkdir(dir) {
        let m = fs::symlink_metadata(&e).unwrap();
        let rel = e.strip_prefix(dir).unwrap().to_path_buf();
        let desc = if m.is_file() {
            format!(
                "file {:o} {} {} nlink={}",
                m.mode() & 0o7777,
                m.len(),
                Digest::sha256(&fs::read(&e).unwrap()),
                m.nlink()
            )
        } else if m.file_type().is_symlink() {
            format!("link {}", fs::read_link(&e).unwrap().display())
        } else if m.is_dir() {
            format!("dir {:o}", m.mode() & 0o7777)
        } else {
            format!("special {:o}", m.mode())
        };
        out.insert(rel, desc);
    }
    out
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Unpacks `layers` into the area's target with each resolver; asserts that `outside/` is unchanged
/// and that nothing appeared next to the target. Returns each attempt's result.
fn hostile(layers: &[Vec<u8>], check: impl Fn(&Path, &hoist::Result<hoist::unpack::UnpackReport>)) {
    for resolver in [Resolver::Walk, Resolver::detect()] {
        let area = Area::new();
        let before = snapshot(&area.outside());
        let src = image(&area.base, layers.iter().map(|t| gz_layer(t)).collect());
        let top_before: Vec<_> = fs::read_dir(&area.base)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let result = unpack(src.as_ref(), &area.target(), &opts(resolver, false));
        assert_eq!(
            snapshot(&area.outside()),
            before,
            "outside changed ({resolver:?})"
        );
        let mut top_after: Vec<_> = fs::read_dir(&area.base)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        top_after.retain(|n| n != "target");
        let mut top_before = top_before;
        top_before.sort();
        top_after.sort();
        assert_eq!(
            top_before, top_after,
            "something was written beside the target"
        );
        if result.is_err() {
            assert!(
                !is_complete(&area.target()),
                "a failed unpack looks complete"
            );
        }
        check(&area.target(), &result);
    }
}

fn unsafe_entry(r: &hoist::Result<hoist::unpack::UnpackReport>) -> String {
    match r {
        Err(e @ Error::UnsafeEntry { .. }) => e.to_string(),
        other => panic!("expected an unsafe-entry error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile layers

#[test]
fn dotdot_entries_are_refused() {
    let t = tar_of(&[E::File(b"../outside/secret", b"pwned", 0o644)]);
    hostile(&[t], |_, r| assert!(unsafe_entry(r).contains("..")));
    let t = tar_of(&[E::File(b"a/../../../outside/dir/victim", b"pwned", 0o644)]);
    hostile(&[t], |_, r| {
        unsafe_entry(r);
    });
}

#[test]
fn absolute_paths_land_inside() {
    let t = tar_of(&[E::File(b"/outside/secret", b"inside", 0o644)]);
    hostile(&[t], |target, r| {
        r.as_ref().unwrap();
        assert_eq!(fs::read(target.join("outside/secret")).unwrap(), b"inside");
    });
}

#[test]
fn writes_through_escaping_symlinks_stay_inside() {
    // Layer 1 plants symlinks pointing out of the tree (relative, absolute to the host's real
    // outside dir, and to /); layer 2 writes through them.
    let layer1 = tar_of(&[
        E::Sym(b"rel", b"../../outside/dir"),
        E::Sym(b"up", b"../.."),
        E::Sym(b"slash", b"/"),
        E::Dir(b"outside", 0o755),
        E::Dir(b"outside/dir", 0o755),
    ]);
    let layer2 = tar_of(&[
        E::File(b"rel/victim", b"pwned-rel", 0o644),
        E::File(b"up/secret", b"pwned-up", 0o644),
        E::File(b"slash/outside/dir/victim", b"pwned-slash", 0o644),
    ]);
    hostile(&[layer1, layer2], |target, r| {
        r.as_ref().unwrap();
        // `rel` clamps at the root to /outside/dir inside the tree; `up` to the root itself.
        assert_eq!(
            fs::read(target.join("outside/dir/victim")).unwrap(),
            b"pwned-slash"
        );
        assert_eq!(fs::read(target.join("secret")).unwrap(), b"pwned-up");
        assert!(
            fs::symlink_metadata(target.join("rel"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    });
}

#[test]
fn symlink_to_host_absolute_path_is_resolved_in_the_tree() {
    let area_probe = Area::new();
    let host_dir: &'static [u8] = Box::leak(
        area_probe
            .outside()
            .join("dir")
            .into_os_string()
            .into_encoded_bytes()
            .into_boxed_slice(),
    );
    drop(area_probe);
    let layer1 = tar_of(&[E::Sym(b"host", host_dir)]);
    let layer2 = tar_of(&[E::File(b"host/victim", b"pwned", 0o644)]);
    hostile(&[layer1, layer2], |target, r| {
        // Either refused (the target directory does not exist inside) or written inside.
        if r.is_ok() {
            assert!(
                target
                    .join(
                        Path::new(std::str::from_utf8(host_dir).unwrap())
                            .strip_prefix("/")
                            .unwrap()
                    )
                    .exists()
            );
        }
    });
}

#[test]
fn hardlinks_out_of_the_tree_are_refused() {
    for target in [&b"../outside/secret"[..], b"a/../../outside/secret"] {
        let t = tar_of(&[E::Hard(b"h", target)]);
        hostile(&[t], |_, r| {
            unsafe_entry(r);
        });
    }
    // Absolute targets and targets through escaping symlinks resolve inside, where they are absent.
    let t = tar_of(&[
        E::Sym(b"esc", b"../../outside"),
        E::Hard(b"h", b"esc/secret"),
    ]);
    hostile(&[t], |_, r| {
        assert!(
            unsafe_entry(r).contains("does not exist")
                || unsafe_entry(r).contains("cannot be found")
        );
    });
    let t = tar_of(&[E::Hard(b"h", b"/etc/passwd")]);
    hostile(&[t], |_, r| {
        unsafe_entry(r);
    });
}

#[test]
fn whiteouts_naming_outside_paths_are_refused_or_contained() {
    let t = tar_of(&[E::Raw(b".wh...", tar::EntryType::Regular)]);
    hostile(&[t], |_, r| {
        unsafe_entry(r);
    });
    let t = tar_of(&[E::Raw(b"../outside/.wh.secret", tar::EntryType::Regular)]);
    hostile(&[t], |_, r| {
        unsafe_entry(r);
    });
    // Whiteouts through a symlink to the host's outside dir, and an opaque marker there.
    let layer1 = tar_of(&[
        E::Sym(b"esc", b"../../outside"),
        E::File(b"keep", b"k", 0o644),
    ]);
    let layer2 = tar_of(&[
        E::Raw(b"esc/.wh.secret", tar::EntryType::Regular),
        E::Raw(b"esc/dir/.wh..wh..opq", tar::EntryType::Regular),
    ]);
    hostile(&[layer1, layer2], |target, r| {
        r.as_ref().unwrap();
        assert!(target.join("keep").exists());
    });
}

#[test]
fn the_root_cannot_change_type() {
    for t in [
        tar_of(&[E::Sym(b"./", b"/etc")]),
        tar_of(&[E::File(b".", b"x", 0o644)]),
        tar_of(&[E::Sym(b"/", b"../outside")]),
    ] {
        hostile(&[t], |_, r| assert!(unsafe_entry(r).contains("root")));
    }
}

#[test]
fn reserved_names_are_refused_in_a_plain_unpack() {
    let t = tar_of(&[E::File(b".hoist-unpack-incomplete", b"{}", 0o644)]);
    hostile(&[t], |_, r| assert!(unsafe_entry(r).contains("reserved")));
}

#[test]
fn decompression_bomb_stops_at_max_size() {
    static ZEROS: [u8; 4 << 20] = [0; 4 << 20];
    let t = tar_of(&[E::File(b"big", &ZEROS, 0o644)]);
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let mut o = opts(Resolver::detect(), false);
    let mut limits = Limits::default();
    limits.max_unpack_size = 1 << 20;
    o.limits = Some(limits);
    let err = unpack(src.as_ref(), &area.target(), &o).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    assert!(err.to_string().contains("--max-size"), "{err}");
    assert!(!is_complete(&area.target()));
    assert!(area.target().join(".hoist-unpack-incomplete").exists());

    // The ratio limit (past 64 MiB) and the per-layer uncompressed limit.
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let mut o = opts(Resolver::detect(), false);
    let mut limits = Limits::default();
    limits.max_layer_size = 1 << 20;
    o.limits = Some(limits);
    let err = unpack(src.as_ref(), &area.target(), &o).unwrap_err();
    assert!(err.to_string().contains("--max-layer-size"), "{err}");

    let t = tar_of(&[E::File(b"a", b"x", 0o644), E::File(b"b", b"y", 0o644)]);
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let mut o = opts(Resolver::detect(), false);
    let mut limits = Limits::default();
    limits.max_entries = 1;
    o.limits = Some(limits);
    let err = unpack(src.as_ref(), &area.target(), &o).unwrap_err();
    assert!(err.to_string().contains("--max-entries"), "{err}");
}

#[test]
fn sparse_file_declaring_a_huge_size_is_refused_before_writing() {
    // A GNU sparse header: one 512-byte data block at the end of a 1 TiB file of holes.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_path("sparse").unwrap();
    h.set_mode(0o644);
    h.set_size(512);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset((1 << 40) - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(1 << 40);
    }
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[7u8; 512][..]).unwrap();
    let t = b.into_inner().unwrap();
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let err = unpack(
        src.as_ref(),
        &area.target(),
        &opts(Resolver::detect(), false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--max-size"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Verification

#[test]
fn corrupt_blob_and_wrong_diff_id_name_the_layer() {
    let t = tar_of(&[E::File(b"f", b"content", 0o644)]);
    let area = Area::new();
    let mut bad = gz_layer(&t);
    bad.diff_id = Digest::sha256(b"something else");
    let src = image(&area.base, vec![gz_layer(&t), bad]);
    let err = unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains("layer 2/2") && msg.contains("diff_id"),
        "{msg}"
    );
    assert!(!is_complete(&area.target()));

    // Flip a byte of the stored blob: the compressed digest check fails.
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let layout = Layout::open(area.base.join("layout")).unwrap();
    let blob_path = layout.blob_path(&Digest::sha256(&gzip(&t)));
    let mut bytes = fs::read(&blob_path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff; // inside the gzip trailer (crc/size): decoding may or may not notice
    fs::set_permissions(&blob_path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob_path, &bytes).unwrap();
    let err = unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("layer 1/1") || msg.contains(&Digest::sha256(&gzip(&t)).to_string()),
        "{msg}"
    );
    assert!(!is_complete(&area.target()));
}

#[test]
fn gzip_members_and_trailing_bytes_are_all_read() {
    let t = tar_of(&[E::File(b"f", b"multi member", 0o644), E::Dir(b"d", 0o755)]);
    let (a, b) = t.split_at(700);
    let mut blob = gzip(a);
    blob.extend(gzip(b));
    blob.extend([0u8; 1000]);
    let area = Area::new();
    let src = image(
        &area.base,
        vec![Blob {
            media_type: media_type::DOCKER_LAYER_GZIP,
            bytes: blob,
            diff_id: Digest::sha256(&t),
        }],
    );
    unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(area.target().join("f")).unwrap(), b"multi member");
    assert!(is_complete(&area.target()));
    // verify reads the same blob through the same stream: zero padding is accepted there too.
    let report = hoist::verify::verify(src.as_ref(), &Default::default());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Unpacks and verifies one image; returns (unpack's error, verify's problems), so tests can show
/// that both readers give one answer about the same blob.
fn unpack_and_verify(src: &dyn Source) -> (Option<String>, Vec<String>) {
    let area = Area::new();
    let unpacked = unpack(src, &area.target(), &UnpackOptions::default())
        .err()
        .map(|e| e.to_string());
    let report = hoist::verify::verify(src, &Default::default());
    let problems = report.problems.iter().map(|p| p.message.clone()).collect();
    (unpacked, problems)
}

#[test]
fn verify_and_unpack_give_one_answer_about_gzip_trailers() {
    let t = tar_of(&[E::File(b"f", b"checked", 0o644)]);
    let blob = |bytes: Vec<u8>| Blob {
        media_type: media_type::OCI_LAYER_GZIP,
        bytes,
        diff_id: Digest::sha256(&t),
    };
    // A wrong CRC in the gzip trailer (the blob digest is the stored bytes', so only the decoder can
    // notice): both refuse.
    let mut bad_crc = gzip(&t);
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0x55;
    let dir = tempfile::tempdir().unwrap();
    let src = image(dir.path(), vec![blob(bad_crc)]);
    let (unpacked, problems) = unpack_and_verify(src.as_ref());
    let err = unpacked.expect("unpack accepted a gzip member with a wrong CRC");
    assert!(err.contains("layer 1/1"), "{err}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("checksum"), "{problems:?}");

    // Zero padding after the last member: both accept (as GNU gzip does).
    let mut padded = gzip(&t);
    padded.extend([0u8; 4096]);
    let dir = tempfile::tempdir().unwrap();
    let src = image(dir.path(), vec![blob(padded)]);
    assert_eq!(unpack_and_verify(src.as_ref()), (None, vec![]));

    // Anything else after it: both refuse, naming what follows.
    let mut garbage = gzip(&t);
    garbage.extend([0u8, 0, b'x', b'y']);
    let dir = tempfile::tempdir().unwrap();
    let src = image(dir.path(), vec![blob(garbage)]);
    let (unpacked, problems) = unpack_and_verify(src.as_ref());
    let err = unpacked.expect("unpack accepted garbage after the gzip stream");
    assert!(err.contains("not gzip after the last gzip member"), "{err}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("not gzip"), "{problems:?}");
}

#[test]
fn the_diff_id_algorithm_decides_how_the_tar_is_hashed() {
    let t = tar_of(&[E::File(b"f", b"sha512 everywhere", 0o644)]);
    for (blobs, diff_ids) in [
        (Algorithm::Sha512, Algorithm::Sha256),
        (Algorithm::Sha512, Algorithm::Sha512),
        (Algorithm::Sha256, Algorithm::Sha512),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout");
        let layer = Blob {
            media_type: media_type::OCI_LAYER_GZIP,
            bytes: gzip(&t),
            diff_id: Digest::of_bytes(diff_ids, &t),
        };
        write_image(&path, "t", &[layer], blobs);
        let r: TransportRef = format!("oci:{}:t", path.display()).parse().unwrap();
        let src = open_source(&r, &OpenOptions::default()).unwrap();
        assert_eq!(
            unpack_and_verify(src.as_ref()),
            (None, vec![]),
            "blobs {blobs:?}, diff_ids {diff_ids:?}"
        );
        // And a wrong diff_id of that algorithm is still caught by both.
        let layer = Blob {
            media_type: media_type::OCI_LAYER_GZIP,
            bytes: gzip(&t),
            diff_id: Digest::of_bytes(diff_ids, b"other"),
        };
        let path = dir.path().join("wrong");
        write_image(&path, "t", &[layer], blobs);
        let r: TransportRef = format!("oci:{}:t", path.display()).parse().unwrap();
        let src = open_source(&r, &OpenOptions::default()).unwrap();
        let (unpacked, problems) = unpack_and_verify(src.as_ref());
        assert!(unpacked.is_some_and(|e| e.contains("diff_id")));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}

/// Recompresses the image `t` of the layout at `path` to zstd into `path/../out`; returns the error.
fn recompress(path: &Path) -> Option<String> {
    let r: TransportRef = format!("oci:{}:t", path.display()).parse().unwrap();
    let src = open_source(&r, &OpenOptions::default()).unwrap();
    let out = path.with_file_name("out");
    let d: TransportRef = format!("oci:{}:t", out.display()).parse().unwrap();
    let dst = hoist::transport::open_destination(&d, &OpenOptions::default()).unwrap();
    let mut opts = hoist::copy::CopyOptions::default();
    opts.convert.compression = Some(hoist::compress::Compression::Zstd);
    hoist::copy::copy(src.as_ref(), dst.as_ref(), &opts)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn recompress_reads_layers_through_the_same_stream() {
    let t = tar_of(&[E::File(b"f", b"recompressed", 0o644)]);
    let case = |bytes: Vec<u8>, media: &'static str, blobs, diff_id: Digest| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout");
        let layer = Blob {
            media_type: media,
            bytes,
            diff_id,
        };
        write_image(&path, "t", &[layer], blobs);
        recompress(&path)
    };
    // sha512 blobs with sha256 diff_ids, and the reverse; gzip and plain tar: all accepted.
    for (blobs, ids) in [
        (Algorithm::Sha512, Algorithm::Sha256),
        (Algorithm::Sha256, Algorithm::Sha512),
    ] {
        let diff_id = Digest::of_bytes(ids, &t);
        assert_eq!(
            case(gzip(&t), media_type::OCI_LAYER_GZIP, blobs, diff_id.clone()),
            None
        );
        assert_eq!(
            case(t.clone(), media_type::OCI_LAYER_TAR, blobs, diff_id),
            None
        );
    }
    // Zero padding after gzip is accepted; a wrong gzip CRC is refused, as by unpack and verify.
    let mut padded = gzip(&t);
    padded.extend([0u8; 100]);
    let sha = Digest::sha256(&t);
    let gz = media_type::OCI_LAYER_GZIP;
    assert_eq!(case(padded, gz, Algorithm::Sha256, sha.clone()), None);
    let mut bad_crc = gzip(&t);
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0x55;
    let err = case(bad_crc, gz, Algorithm::Sha256, sha).expect("a wrong CRC was recompressed");
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn an_index_entry_with_an_unregistered_digest_algorithm_is_skipped_not_fatal() {
    let t = tar_of(&[E::File(b"f", b"usable", 0o644)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout");
    write_image(&path, "t", &[gz_layer(&t)], Algorithm::Sha256);
    let layout = Layout::open(&path).unwrap();
    let good = layout
        .resolve(Some(&hoist::reference::LayoutRef::Tag("t".into())))
        .unwrap();
    let host = hoist::platform::Platform::host();
    let platform = serde_json::json!({"architecture": host.architecture, "os": "linux"});
    let mut good_entry = serde_json::to_value(&good).unwrap();
    good_entry["platform"] = platform.clone();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [
            {"mediaType": media_type::OCI_MANIFEST, "size": 100, "platform": platform,
             "digest": format!("sha384:{}", "ab".repeat(48))},
            good_entry,
        ]
    }))
    .unwrap();
    let id = layout.write_bytes(&index).unwrap();
    let desc = hoist::descriptor::new_descriptor(media_type::OCI_INDEX, &id, index.len() as u64);
    layout.set_tag(Some("idx"), &desc).unwrap();
    let r: TransportRef = format!("oci:{}:idx", path.display()).parse().unwrap();
    let src = open_source(&r, &OpenOptions::default()).unwrap();
    // Platform choice passes over the unusable entry, as skopeo does.
    let area = Area::new();
    unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(area.target().join("f")).unwrap(), b"usable");
    // verify reports that entry, and checks the rest.
    let report = hoist::verify::verify(src.as_ref(), &Default::default());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].subject.contains("entry 0"),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[0].message.contains("sha384"),
        "{:?}",
        report.problems
    );
}

#[test]
fn pax_sparse_files_are_the_file_gnu_tar_restores() {
    let Ok(v) = std::process::Command::new("tar").arg("--version").output() else {
        eprintln!("SKIPPED: GNU tar is not installed");
        return;
    };
    if !String::from_utf8_lossy(&v.stdout).contains("GNU tar") {
        eprintln!("SKIPPED: tar is not GNU tar");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    // Data at 1 MiB and 3 MiB of a 4 MiB file; the rest holes.
    fs::create_dir(src.join("d")).unwrap();
    for name in ["sparse", "d/nested"] {
        let f = fs::File::create(src.join(name)).unwrap();
        f.write_all_at(b"middle", 1 << 20).unwrap();
        f.write_all_at(b"end", 3 << 20).unwrap();
        f.set_len(4 << 20).unwrap();
    }
    for version in ["0.0", "0.1", "1.0"] {
        let tar_path = dir.path().join(format!("s{version}.tar"));
        let ok = std::process::Command::new("tar")
            .args([
                "--sparse",
                "--format=pax",
                &format!("--sparse-version={version}"),
            ])
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&tar_path)
            .args(["sparse", "d/nested"])
            .status()
            .unwrap();
        assert!(ok.success());
        // GNU tar's own restore is the reference.
        let gnu = dir.path().join(format!("gnu{version}"));
        fs::create_dir(&gnu).unwrap();
        let ok = std::process::Command::new("tar")
            .arg("-C")
            .arg(&gnu)
            .arg("-xf")
            .arg(&tar_path)
            .status()
            .unwrap();
        assert!(ok.success());
        let t = fs::read(&tar_path).unwrap();
        let area = Area::new();
        let img = image(&area.base, vec![gz_layer(&t)]);
        unpack(img.as_ref(), &area.target(), &UnpackOptions::default())
            .unwrap_or_else(|e| panic!("sparse {version}: {e}"));
        for name in ["sparse", "d/nested"] {
            let ours = area.target().join(name);
            let m = fs::symlink_metadata(&ours).unwrap();
            assert!(m.is_file(), "sparse {version}: {name} is not a file");
            assert!(
                fs::read(&ours).unwrap() == fs::read(gnu.join(name)).unwrap(),
                "sparse {version}: {name} differs from GNU tar's"
            );
            // Holes stay holes.
            assert!(
                m.blocks() * 512 < 1 << 20,
                "sparse {version}: {} blocks",
                m.blocks()
            );
        }
        let names: Vec<String> = fs::read_dir(area.target())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".hoist"))
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("GNUSparseFile")),
            "sparse {version}: {names:?}"
        );
    }
}

#[test]
fn verify_all_checks_every_diff_id_a_shared_layer_is_listed_under() {
    let t = tar_of(&[E::File(b"base", b"shared base layer", 0o644)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layout");
    let layer = |diff_id| Blob {
        media_type: media_type::OCI_LAYER_GZIP,
        bytes: gzip(&t),
        diff_id,
    };
    write_image(
        &path,
        "good",
        &[layer(Digest::sha256(&t))],
        Algorithm::Sha256,
    );
    write_image(
        &path,
        "bad",
        &[layer(Digest::sha256(b"not it"))],
        Algorithm::Sha256,
    );
    let all = hoist::transport::oci::OciSource::whole_layout(Layout::open(&path).unwrap());
    let report = hoist::verify::verify(&all, &Default::default());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].message.contains("diff_id"));
}

#[test]
fn a_layer_pax_header_past_one_mebibyte_is_refused() {
    // A PAX record of 2 MiB: the tar crate would read it whole; Go's archive/tar refuses it.
    let mut b = tar::Builder::new(Vec::new());
    let value = vec![b'v'; 2 << 20];
    b.append_pax_extensions([("comment", value.as_slice())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "f", &b"x"[..]).unwrap();
    let t = b.into_inner().unwrap();
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let err = unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("PAX header of"), "{err}");
    assert!(!area.target().join("f").exists());
}

#[test]
fn zstd_plain_and_docker_media_types() {
    let t = tar_of(&[E::File(b"f", b"z", 0o644)]);
    let t2 = tar_of(&[E::File(b"g", b"plain", 0o600)]);
    let t3 = tar_of(&[E::File(b"h", b"docker tar", 0o600)]);
    let area = Area::new();
    let src = image(
        &area.base,
        vec![
            Blob {
                media_type: media_type::OCI_LAYER_ZSTD,
                bytes: zstd::encode_all(&t[..], 3).unwrap(),
                diff_id: Digest::sha256(&t),
            },
            Blob {
                media_type: media_type::OCI_LAYER_TAR,
                bytes: t2.clone(),
                diff_id: Digest::sha256(&t2),
            },
            Blob {
                media_type: media_type::DOCKER_LAYER_TAR,
                bytes: t3.clone(),
                diff_id: Digest::sha256(&t3),
            },
        ],
    );
    unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(area.target().join("g")).unwrap(), b"plain");
    assert_eq!(fs::read(area.target().join("h")).unwrap(), b"docker tar");
}

#[test]
fn layers_are_decoded_by_their_bytes_not_their_label() {
    // gzip labelled zstd, zstd labelled gzip, and a plain tar labelled gzip (as a docker-archive
    // presents its layers): each decoded by what it is, and still checked against its diff_id.
    let t1 = tar_of(&[E::File(b"a", b"gzip inside", 0o644)]);
    let t2 = tar_of(&[E::File(b"b", b"zstd inside", 0o644)]);
    let t3 = tar_of(&[E::File(b"c", b"plain inside", 0o644)]);
    let t4 = tar_of(&[E::File(b"d", b"gzip under a plain label", 0o644)]);
    let area = Area::new();
    let layers = vec![
        Blob {
            media_type: media_type::OCI_LAYER_ZSTD,
            bytes: gzip(&t1),
            diff_id: Digest::sha256(&t1),
        },
        Blob {
            media_type: media_type::OCI_LAYER_GZIP,
            bytes: zstd::encode_all(&t2[..], 3).unwrap(),
            diff_id: Digest::sha256(&t2),
        },
        Blob {
            media_type: media_type::DOCKER_LAYER_GZIP,
            bytes: t3.clone(),
            diff_id: Digest::sha256(&t3),
        },
        Blob {
            media_type: media_type::OCI_LAYER_TAR,
            bytes: gzip(&t4),
            diff_id: Digest::sha256(&t4),
        },
    ];
    let src = image(&area.base, layers);
    unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(area.target().join("a")).unwrap(), b"gzip inside");
    assert_eq!(fs::read(area.target().join("b")).unwrap(), b"zstd inside");
    assert_eq!(fs::read(area.target().join("c")).unwrap(), b"plain inside");
    assert_eq!(
        fs::read(area.target().join("d")).unwrap(),
        b"gzip under a plain label"
    );
    // verify reads them the same way, and reports each label that is not what the bytes are
    // (readers that trust the media type fail on them).
    let report = hoist::verify::verify(src.as_ref(), &Default::default());
    let messages: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(
        messages[0].contains("says zstd but its bytes are gzip"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("says gzip but its bytes are zstd"),
        "{messages:?}"
    );
    assert!(
        messages[2].contains("says gzip but its bytes are uncompressed tar"),
        "{messages:?}"
    );
    assert!(
        messages[3].contains("says uncompressed tar but its bytes are gzip"),
        "{messages:?}"
    );

    // A label does not excuse content: the same plain tar under a diff_id it does not have fails.
    let area = Area::new();
    let src = image(
        &area.base,
        vec![Blob {
            media_type: media_type::DOCKER_LAYER_GZIP,
            bytes: t3.clone(),
            diff_id: Digest::sha256(&t1),
        }],
    );
    let err = unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap_err();
    assert!(err.to_string().contains("diff_id"), "{err}");
}

#[test]
fn missing_foreign_layer_is_reported_clearly() {
    let t = tar_of(&[E::File(b"f", b"x", 0o644)]);
    let area = Area::new();
    let src = image(
        &area.base,
        vec![Blob {
            media_type: media_type::DOCKER_LAYER_FOREIGN,
            bytes: gzip(&t),
            diff_id: Digest::sha256(&t),
        }],
    );
    let layout = Layout::open(area.base.join("layout")).unwrap();
    fs::remove_file(layout.blob_path(&Digest::sha256(&gzip(&t)))).unwrap();
    let err = unpack(src.as_ref(), &area.target(), &UnpackOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("non-distributable (foreign)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Semantics

fn semantic_layers() -> Vec<Vec<u8>> {
    let l1 = tar_of(&[
        E::Dir(b"etc", 0o755),
        E::File(b"etc/keep", b"keep", 0o644),
        E::File(b"etc/gone", b"gone", 0o644),
        E::Dir(b"opq", 0o755),
        E::File(b"opq/lower", b"lower", 0o644),
        E::Dir(b"opq/sub", 0o755),
        E::File(b"opq/sub/deep", b"deep", 0o644),
        E::File(b"becomes-dir", b"file", 0o644),
        E::Dir(b"becomes-file", 0o755),
        E::File(b"becomes-file/child", b"c", 0o644),
        E::File(b"orig", b"original", 0o4755),
        E::Sym(b"abs-link", b"/etc/keep"),
        E::Sym(b"rel-link", b"../etc/keep"),
        E::Fifo(b"pipe"),
        E::Dir(b"sticky", 0o1777),
    ]);
    let l2 = tar_of(&[
        E::Raw(b"etc/.wh.gone", tar::EntryType::Regular),
        E::File(b"opq/new-before", b"same layer", 0o644),
        E::Raw(b"opq/.wh..wh..opq", tar::EntryType::Regular),
        E::File(b"opq/new-after", b"after", 0o644),
        E::Dir(b"becomes-dir", 0o750),
        E::File(b"becomes-dir/inner", b"inner", 0o644),
        E::File(b"becomes-file", b"now a file", 0o600),
        E::Hard(b"link-to-lower", b"orig"),
        E::File(b"dup", b"first", 0o644),
        E::File(b"dup", b"second wins", 0o644),
        E::Char(b"null", 1, 3),
    ]);
    vec![l1, l2]
}

#[test]
fn changeset_semantics_with_both_resolvers() {
    for resolver in [Resolver::Walk, Resolver::detect()] {
        let area = Area::new();
        let src = image(
            &area.base,
            semantic_layers().iter().map(|t| gz_layer(t)).collect(),
        );
        let report = unpack(src.as_ref(), &area.target(), &opts(resolver, false)).unwrap();
        let r = area.target();
        assert!(is_complete(&r));
        assert!(!report.rootless);
        assert!(r.join("etc/keep").exists());
        assert!(!r.join("etc/gone").exists());
        assert!(!r.join("opq/lower").exists() && !r.join("opq/sub").exists());
        assert_eq!(fs::read(r.join("opq/new-before")).unwrap(), b"same layer");
        assert!(r.join("opq/new-after").exists());
        assert!(r.join("becomes-dir").is_dir());
        assert_eq!(
            fs::metadata(r.join("becomes-dir")).unwrap().mode() & 0o7777,
            0o750
        );
        assert_eq!(fs::read(r.join("becomes-file")).unwrap(), b"now a file");
        assert_eq!(fs::read(r.join("dup")).unwrap(), b"second wins");
        let a = fs::metadata(r.join("orig")).unwrap();
        let b = fs::metadata(r.join("link-to-lower")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hardlink to an earlier layer's file");
        assert_eq!(a.mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!(
            fs::read_link(r.join("abs-link")).unwrap(),
            Path::new("/etc/keep")
        );
        assert_eq!(
            fs::read_link(r.join("rel-link")).unwrap(),
            Path::new("../etc/keep")
        );
        assert!(
            fs::symlink_metadata(r.join("pipe"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(
            fs::metadata(r.join("sticky")).unwrap().mode() & 0o7777,
            0o1777
        );
        let null = fs::symlink_metadata(r.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        // Directory times are set after their children were written.
        assert_eq!(fs::metadata(r.join("etc")).unwrap().mtime(), 1_600_000_000);
        assert_eq!(
            fs::metadata(r.join("becomes-dir")).unwrap().mtime(),
            1_600_000_000
        );
    }
}

#[test]
fn rootless_records_owners_and_skips_devices() {
    let mut b = tar::Builder::new(Vec::new());
    for (path, uid, gid) in [
        ("owned", 1000u64, 2000u64),
        ("group-only", 0, 5),
        ("root", 0, 0),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(1);
        h.set_mode(0o2755);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    }
    let mut t = b.into_inner().unwrap();
    // Append a device entry before the end-of-archive blocks.
    t.truncate(t.len() - 1024);
    t.extend(tar_of(&[E::Char(b"dev-null", 1, 3)]));
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let mut o = opts(Resolver::detect(), true);
    o.state = Some(area.base.join("state.json"));
    let report = unpack(src.as_ref(), &area.target(), &o).unwrap();
    assert!(report.rootless);
    assert_eq!(report.skipped_devices, vec!["dev-null".to_string()]);
    let r = area.target();
    // As umoci: an empty regular file with the entry's mode stands in the device's place.
    let dev = fs::symlink_metadata(r.join("dev-null")).unwrap();
    assert!(dev.is_file() && dev.len() == 0, "{dev:?}");
    assert_eq!(dev.mode() & 0o7777, 0o666);
    let rec = |p: &str| xattr::get(r.join(p), "user.rootlesscontainers").unwrap();
    assert_eq!(hex(&rec("owned").unwrap()), "08e80710d00f");
    assert_eq!(hex(&rec("group-only").unwrap()), "08ffffffff0f1005");
    assert_eq!(rec("root"), None);
    let m = fs::metadata(r.join("owned")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "ownership not applied when rootless"
    );
    assert_eq!(m.mode() & 0o7777, 0o2755);
    // The state records the image's owners and the skipped device.
    let state = UnpackState::load(&area.base.join("state.json")).unwrap();
    assert!(state.header.rootless);
    assert_eq!(state.header.skipped_devices, vec!["dev-null".to_string()]);
    let e = state.get(Path::new("owned")).unwrap();
    assert_eq!((e.uid, e.gid, e.mode), (1000, 2000, 0o2755));
    assert_eq!(
        e.digest.as_deref(),
        Some(Digest::sha256(b"x").to_string().as_str())
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn long_names_non_utf8_xattrs_and_state() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    // GNU long name (the tar crate writes ././@LongLink for a GNU header).
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    // PAX path, PAX xattr and a non-UTF-8 name.
    b.append_pax_extensions([
        ("path", format!("pax/{}", "p".repeat(200)).as_bytes()),
        ("SCHILY.xattr.user.foo", &b"bar"[..]),
        ("mtime", &b"1600000000.25"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_path("placeholder").unwrap();
    h.set_cksum();
    b.append(&h, &b"pax"[..]).unwrap();
    let mut t = b.into_inner().unwrap();
    t.truncate(t.len() - 1024);
    t.extend(tar_of(&[E::File(b"bad-\xff\xfe-name", b"bytes", 0o644)]));
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let mut o = UnpackOptions::default();
    o.state = Some(area.base.join("state.json"));
    unpack(src.as_ref(), &area.target(), &o).unwrap();
    let r = area.target();
    assert_eq!(fs::read(r.join(&long)).unwrap(), b"long");
    let pax = r.join(format!("pax/{}", "p".repeat(200)));
    assert_eq!(fs::read(&pax).unwrap(), b"pax");
    assert_eq!(
        xattr::get(&pax, "user.foo").unwrap().as_deref(),
        Some(&b"bar"[..])
    );
    let m = fs::metadata(&pax).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 250_000_000));
    use std::os::unix::ffi::OsStrExt;
    let odd = r.join(std::ffi::OsStr::from_bytes(b"bad-\xff\xfe-name"));
    assert_eq!(fs::read(odd).unwrap(), b"bytes");

    let state = UnpackState::load(&area.base.join("state.json")).unwrap();
    let e = state
        .get(Path::new(std::ffi::OsStr::from_bytes(b"bad-\xff\xfe-name")))
        .unwrap();
    assert_eq!(e.path, "bad-\\xff\\xfe-name");
    let e = state.get(pax.strip_prefix(&r).unwrap()).unwrap();
    assert_eq!(e.xattrs.get("user.foo").map(String::as_str), Some("626172"));
    // The state is a LowerTree: diffing the tree against it finds nothing.
    let diff = hoist::diff::compute(&state, &r, &Default::default()).unwrap();
    assert!(diff.is_empty(), "{:?}", diff.changes());
    assert!(state.entries().unwrap().count() >= 4);
}

#[test]
fn overlay_whiteout_format_keeps_markers() {
    let t = tar_of(&[
        E::Dir(b"d", 0o755),
        E::Raw(b"d/.wh..wh..opq", tar::EntryType::Regular),
        E::Raw(b".wh.gone", tar::EntryType::Regular),
    ]);
    let area = Area::new();
    let src = image(&area.base, vec![gz_layer(&t)]);
    let mut o = UnpackOptions::default();
    o.apply.whiteout = WhiteoutFormat::Overlay;
    unpack(src.as_ref(), &area.target(), &o).unwrap();
    let r = area.target();
    let m = fs::symlink_metadata(r.join("gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    assert_eq!(
        xattr::get(r.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
}

#[test]
fn bundle_has_config_rootfs_and_private_mode() {
    let area = Area::new();
    let src = image(
        &area.base,
        semantic_layers().iter().map(|t| gz_layer(t)).collect(),
    );
    let mut o = UnpackOptions::default();
    o.bundle = true;
    o.apply.rootless = true;
    let report = unpack(src.as_ref(), &area.target(), &o).unwrap();
    let b = area.target();
    assert_eq!(fs::metadata(&b).unwrap().mode() & 0o777, 0o700);
    assert_eq!(report.rootfs, b.join("rootfs"));
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/bin/true"]));
    assert_eq!(
        spec["process"]["cwd"], "/work",
        "hostile WorkingDir is cleaned"
    );
    assert_eq!(spec["root"]["path"], "rootfs");
    assert!(
        spec["linux"]["uidMappings"].is_array(),
        "rootless bundle maps the user"
    );
    assert!(is_complete(&b));
    let state = UnpackState::load(&b.join("hoist-state.json")).unwrap();
    assert_eq!(state.header.rootfs, "rootfs");
    // Not empty: refuse.
    let err = unpack(src.as_ref(), &b, &o).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}
