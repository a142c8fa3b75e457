//! Layer diffing on trees made by the tests: the change model, the layer plan (whiteouts, opaque
//! markers, hardlinks), the written tar (PAX names and xattrs, rootless owners) and reproducibility.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::diff::{
    ChangeKind, DiffOptions, DirTree, LayerEntry, LayerOptions, MtimePolicy, compute,
    write_layer_file,
};
use hoist::layer::state::{StateHeader, UnpackState};
use hoist::media_type::Compression;

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(p: &Path, content: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, content).unwrap();
}

/// A lower tree, and an upper copy of it (`cp -a`, same metadata) to modify.
fn trees() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    let upper = t.path().join("upper");
    write(&lower.join("a.txt"), "alpha");
    write(&lower.join("b.txt"), "bravo");
    write(&lower.join("c.txt"), "charlie");
    write(&lower.join("keep.txt"), "kept");
    write(&lower.join("dir1/x"), "x");
    write(&lower.join("dir1/sub/y"), "y");
    write(&lower.join("dir2/z"), "z");
    symlink("a.txt", lower.join("link")).unwrap();
    sh(&format!(
        "cp -a '{}' '{}'",
        lower.display(),
        upper.display()
    ));
    (t, lower, upper)
}

fn kind_of(changes: &[hoist::diff::Change], path: &str) -> Option<ChangeKind> {
    changes
        .iter()
        .find(|c| c.path == Path::new(path))
        .map(|c| c.kind.clone())
}

/// (path, entry type, link name, uid, gid, mtime, pax records) of every entry of a tar.
type TarEntry = (
    String,
    tar::EntryType,
    Option<String>,
    u64,
    u64,
    u64,
    Vec<(String, Vec<u8>)>,
);

fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let pax: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .map(|ext| {
                ext.map(|x| (x.key().unwrap().to_string(), x.value_bytes().to_vec()))
                    .unwrap()
            })
            .collect();
        let h = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        out.push((
            e.path().unwrap().to_string_lossy().into_owned(),
            h.entry_type(),
            link,
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            pax,
        ));
        let mut sink = Vec::new();
        e.read_to_end(&mut sink).unwrap();
    }
    out
}

fn tar_opts() -> LayerOptions {
    let mut o = LayerOptions::default();
    o.compression = Compression::None;
    o
}

#[test]
fn changes_cover_add_modify_chmod_delete_replace_link_xattr() {
    let (t, lower, upper) = trees();
    write(&upper.join("a.txt"), "alpha, longer now");
    fs::set_permissions(upper.join("b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(upper.join("c.txt")).unwrap();
    fs::remove_dir_all(upper.join("dir1")).unwrap();
    fs::remove_dir_all(upper.join("dir2")).unwrap();
    write(&upper.join("dir2"), "dir2 is a file now");
    write(&upper.join("new.txt"), "new");
    fs::hard_link(upper.join("new.txt"), upper.join("new-hard")).unwrap();
    symlink("keep.txt", upper.join("newlink")).unwrap();
    xattr::set(upper.join("keep.txt"), "user.hoist", b"v1").unwrap();

    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    assert!(!diff.is_empty());
    let changes = diff.changes();
    let modified = |p: &str| match kind_of(&changes, p) {
        Some(ChangeKind::Modified(r)) => r,
        other => panic!("{p}: expected modified, got {other:?}"),
    };
    assert!(modified("a.txt").content);
    let b = modified("b.txt");
    assert!(b.mode && !b.content, "{b:?}");
    assert!(modified("dir2").file_type);
    let k = modified("keep.txt");
    assert!(k.xattrs && !k.content && !k.mode, "{k:?}");
    assert_eq!(kind_of(&changes, "c.txt"), Some(ChangeKind::Deleted));
    assert_eq!(kind_of(&changes, "dir1"), Some(ChangeKind::Deleted));
    assert_eq!(
        kind_of(&changes, "dir1/x"),
        None,
        "contents of a deleted dir are implied"
    );
    assert_eq!(
        kind_of(&changes, "dir2/z"),
        None,
        "replaced dir's contents are implied"
    );
    for p in ["new.txt", "new-hard", "newlink"] {
        assert_eq!(kind_of(&changes, p), Some(ChangeKind::Added), "{p}");
    }
    assert_eq!(kind_of(&changes, "link"), None);
    assert_eq!(kind_of(&changes, "dir1/sub/y"), None);
    // Changes are in path order.
    let paths: Vec<_> = changes.iter().map(|c| c.path.clone()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);

    let plan = diff.plan();
    assert!(plan.contains(&LayerEntry::Whiteout {
        path: "c.txt".into()
    }));
    assert!(plan.contains(&LayerEntry::Whiteout {
        path: "dir1".into()
    }));
    assert!(
        plan.contains(&LayerEntry::Hardlink {
            path: "new.txt".into(),
            target: "new-hard".into()
        }),
        "{plan:?}"
    );

    let out = t.path().join("layer.tar");
    let blob = write_layer_file(&diff, &out, &tar_opts()).unwrap();
    let bytes = fs::read(&out).unwrap();
    assert_eq!(blob.digest, hoist::Digest::sha256(&bytes));
    assert_eq!(
        blob.diff_id, blob.digest,
        "uncompressed: digest is the diff_id"
    );
    assert_eq!(blob.size, bytes.len() as u64);
    let entries = read_tar(&bytes);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for want in [
        "a.txt",
        "b.txt",
        ".wh.c.txt",
        ".wh.dir1",
        "dir2",
        "keep.txt",
        "new-hard",
        "new.txt",
        "newlink",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("dir1/")), "{names:?}");
    let get = |n: &str| entries.iter().find(|e| e.0 == n).unwrap();
    assert_eq!(get("new.txt").1, tar::EntryType::Link);
    assert_eq!(get("new.txt").2.as_deref(), Some("new-hard"));
    assert_eq!(get("newlink").1, tar::EntryType::Symlink);
    assert_eq!(get("newlink").2.as_deref(), Some("keep.txt"));
    assert_eq!(get("dir2").1, tar::EntryType::Regular);
    assert!(
        get("keep.txt")
            .6
            .contains(&("SCHILY.xattr.user.hoist".to_string(), b"v1".to_vec())),
        "{:?}",
        get("keep.txt").6
    );
}

#[test]
fn same_size_same_mtime_edit_is_found_without_asking() {
    let (_t, lower, upper) = trees();
    write(&upper.join("a.txt"), "ALPHA");
    sh(&format!(
        "touch -h -r '{}' '{}'; touch -r '{}' '{}'",
        lower.join("a.txt").display(),
        upper.join("a.txt").display(),
        lower.display(),
        upper.display()
    ));
    // Two plain directories: contents are compared whenever size and mtime agree.
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    match kind_of(&diff.changes(), "a.txt") {
        Some(ChangeKind::Modified(r)) => assert!(r.content),
        other => panic!("{other:?}"),
    }
    assert_eq!(diff.changes().len(), 1, "{:?}", diff.changes());
}

/// A state record of `root`, as unpack makes it.
fn record(root: &Path) -> UnpackState {
    let header = StateHeader {
        format: hoist::layer::state::STATE_FORMAT.into(),
        version: hoist::layer::state::STATE_VERSION,
        manifest: hoist::Digest::sha256(b"m").to_string(),
        source: None,
        config: hoist::Digest::sha256(b"c").to_string(),
        layers: vec![],
        diff_ids: vec![],
        rootfs: ".".into(),
        rootless: false,
        whiteout_format: "apply".into(),
        skipped_devices: vec![],
        entries: 0,
        uid_map: vec![],
        gid_map: vec![],
        root: None,
    };
    UnpackState::scan(header, root, &Default::default(), &[]).unwrap()
}

#[test]
fn recorded_tree_hashes_files_whose_inode_or_ctime_changed() {
    let (t, _lower, upper) = trees();
    let state = record(&upper);
    assert!(
        compute(&state, &upper, &DiffOptions::default())
            .unwrap()
            .is_empty()
    );
    // In place, same size, mtime set back: the inode is the same but the ctime moved.
    let stamp = t.path().join("stamp");
    sh(&format!(
        "touch -r '{a}' '{s}'; printf ALPHA > '{a}'; touch -r '{s}' '{a}'",
        a = upper.join("a.txt").display(),
        s = stamp.display()
    ));
    // As `cp -p` or rsync: another file of the same size and mtime put in its place.
    let other = t.path().join("other");
    sh(&format!(
        "printf BRAVO > '{o}'; touch -r '{b}' '{o}'; mv '{o}' '{b}'",
        o = other.display(),
        b = upper.join("b.txt").display()
    ));
    let diff = compute(&state, &upper, &DiffOptions::default()).unwrap();
    let changed: Vec<_> = diff.changes().into_iter().map(|c| c.path).collect();
    assert_eq!(
        changed,
        vec![PathBuf::from("a.txt"), PathBuf::from("b.txt")],
        "{:?}",
        diff.changes()
    );
}

#[test]
fn emptied_directory_becomes_opaque_but_one_deletion_among_many_does_not() {
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    for i in 0..6 {
        write(&lower.join(format!("wiped/f{i}")), "old");
        write(&lower.join(format!("kept/big{i}")), &"k".repeat(10_000));
    }
    let upper = t.path().join("upper");
    sh(&format!(
        "cp -a '{}' '{}'",
        lower.display(),
        upper.display()
    ));
    for i in 0..6 {
        fs::remove_file(upper.join(format!("wiped/f{i}"))).unwrap();
    }
    write(&upper.join("wiped/fresh"), "new");
    fs::remove_file(upper.join("kept/big0")).unwrap();

    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    let plan = diff.plan();
    assert!(
        plan.contains(&LayerEntry::Opaque {
            dir: "wiped".into()
        }),
        "{plan:?}"
    );
    assert!(
        !plan
            .iter()
            .any(|e| matches!(e, LayerEntry::Whiteout { path } if path.starts_with("wiped"))),
        "{plan:?}"
    );
    assert!(plan.contains(&LayerEntry::Whiteout {
        path: "kept/big0".into()
    }));
    assert!(!plan.contains(&LayerEntry::Opaque { dir: "kept".into() }));
    let out = t.path().join("l.tar");
    write_layer_file(&diff, &out, &tar_opts()).unwrap();
    let names: Vec<String> = read_tar(&fs::read(&out).unwrap())
        .into_iter()
        .map(|e| e.0)
        .collect();
    let opq = names
        .iter()
        .position(|n| n == "wiped/.wh..wh..opq")
        .unwrap();
    let dir = names
        .iter()
        .position(|n| n == "wiped/" || n == "wiped")
        .unwrap();
    assert!(dir < opq, "{names:?}");
    assert!(names.contains(&"wiped/fresh".to_string()));
    assert!(names.contains(&"kept/.wh.big0".to_string()));
}

#[test]
fn rootless_owner_record_is_restored_and_not_written_as_xattr() {
    let (t, lower, upper) = trees();
    write(&upper.join("owned"), "x");
    // Resource { uid: 1234, gid: 5678 }
    let record = [0x08, 0xd2, 0x09, 0x10, 0xae, 0x2c];
    xattr::set(upper.join("owned"), hoist::owner::ROOTLESS_XATTR, &record).unwrap();
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    let out = t.path().join("l.tar");
    write_layer_file(&diff, &out, &tar_opts()).unwrap();
    let entries = read_tar(&fs::read(&out).unwrap());
    let e = entries.iter().find(|e| e.0 == "owned").unwrap();
    assert_eq!((e.3, e.4), (1234, 5678));
    assert!(
        e.6.iter().all(|(k, _)| !k.contains("rootless")),
        "{:?}",
        e.6
    );
    // Fixed owner options override everything.
    let mut fixed = tar_opts();
    fixed.uid = Some(0);
    fixed.gid = Some(0);
    write_layer_file(&diff, &out, &fixed).unwrap();
    let entries = read_tar(&fs::read(&out).unwrap());
    assert!(entries.iter().all(|e| e.3 == 0 && e.4 == 0));
}

#[test]
fn long_names_and_link_targets_use_pax() {
    let (t, lower, upper) = trees();
    let long_dir = "d".repeat(90);
    let long_name = format!("{long_dir}/{}", "f".repeat(120));
    write(&upper.join(&long_name), "deep");
    let target = format!("../{}", "t".repeat(150));
    symlink(&target, upper.join("longlink")).unwrap();
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    let out = t.path().join("l.tar");
    write_layer_file(&diff, &out, &tar_opts()).unwrap();
    let entries = read_tar(&fs::read(&out).unwrap());
    assert!(entries.iter().any(|e| e.0 == long_name), "long path lost");
    let l = entries.iter().find(|e| e.0 == "longlink").unwrap();
    assert_eq!(l.2.as_deref(), Some(target.as_str()));
}

fn make_upper(root: &Path) {
    write(&root.join("etc/config"), "setting=1\n");
    write(&root.join("bin/tool"), &"binary ".repeat(50_000));
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("tool", root.join("bin/alias")).unwrap();
    fs::hard_link(root.join("etc/config"), root.join("etc/config.bak")).unwrap();
}

#[test]
fn same_epoch_gives_identical_bytes_for_every_compression() {
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let a = t.path().join("a");
    make_upper(&a);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut opts = LayerOptions::default();
        opts.compression = compression;
        opts.mtime = MtimePolicy::Clamp(1_700_000_000);
        let d = compute(&DirTree::new(&empty), &a, &DiffOptions::default()).unwrap();
        let one = write_layer_file(&d, &t.path().join("one"), &opts).unwrap();
        // A second tree made later, with the same content: clamped times make it the same layer.
        let b = t.path().join(format!("b-{}", compression.as_str()));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        make_upper(&b);
        let d2 = compute(&DirTree::new(&empty), &b, &DiffOptions::default()).unwrap();
        let two = write_layer_file(&d2, &t.path().join("two"), &opts).unwrap();
        assert_eq!(one, two, "{compression:?}");
        assert_eq!(
            fs::read(t.path().join("one")).unwrap(),
            fs::read(t.path().join("two")).unwrap()
        );
        // Decodes with a plain decoder to a tar whose digest is the diff_id.
        let raw = fs::read(t.path().join("one")).unwrap();
        let mut tar_bytes = Vec::new();
        match compression {
            Compression::None => tar_bytes = raw.clone(),
            Compression::Gzip => {
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut tar_bytes)
                    .unwrap();
            }
            Compression::Zstd => tar_bytes = zstd::decode_all(&raw[..]).unwrap(),
        }
        assert_eq!(hoist::Digest::sha256(&tar_bytes), one.diff_id);
        assert_eq!(tar_bytes.len() as u64, one.tar_size);
        let entries = read_tar(&tar_bytes);
        assert!(entries.iter().all(|e| e.5 <= 1_700_000_000));
        let bak = entries.iter().find(|e| e.0 == "etc/config.bak").unwrap();
        assert_eq!(bak.1, tar::EntryType::Link);
    }
}

#[test]
fn gzip_output_is_read_by_gzip_itself() {
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let a = t.path().join("a");
    make_upper(&a);
    // Enough data for many parallel blocks.
    let big: String = (0..400_000).map(|i| format!("{i}\n")).collect();
    write(&a.join("big.txt"), &big);
    let d = compute(&DirTree::new(&empty), &a, &DiffOptions::default()).unwrap();
    let out = t.path().join("l.tar.gz");
    let blob = write_layer_file(&d, &out, &LayerOptions::default()).unwrap();
    let o = Command::new("gzip").arg("-dc").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(hoist::Digest::sha256(&o.stdout), blob.diff_id);
}

#[test]
fn excluded_paths_are_left_out_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    let upper = dir.path().join("upper");
    for root in [&lower, &upper] {
        std::fs::create_dir_all(root.join("keep")).unwrap();
        std::fs::create_dir_all(root.join("mask/deep")).unwrap();
    }
    std::fs::write(lower.join("mask/deep/old"), b"old").unwrap();
    std::fs::write(upper.join("mask/deep/new"), b"new").unwrap();
    std::fs::write(upper.join("keep/new"), b"new").unwrap();
    // Directories get the same time on both sides (else a second boundary between the two trees'
    // writes makes `keep` and the root differ in mtime too, and the test flaky).
    let fixed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for root in [&lower, &upper] {
        for d in ["keep", "mask/deep", "mask", ""] {
            std::fs::File::open(root.join(d))
                .unwrap()
                .set_modified(fixed)
                .unwrap();
        }
    }
    let mut opts = DiffOptions::default();
    opts.exclude = vec!["mask".into()];
    let diff = compute(&DirTree::new(&lower), &upper, &opts).unwrap();
    let paths: Vec<String> = diff
        .changes()
        .iter()
        .map(|c| c.path.display().to_string())
        .collect();
    assert_eq!(paths, ["keep/new"]);
}

/// Writes the layer of `diff` as a plain tar in memory.
fn layer_bytes(diff: &hoist::diff::Diff) -> hoist::Result<Vec<u8>> {
    let mut out = Vec::new();
    hoist::diff::write_layer(diff, &mut out, &tar_opts())?;
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const SECRET: &[u8] = b"HOST-SECRET-DATA";

#[test]
fn a_file_swapped_for_a_symlink_after_the_walk_is_never_read() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper, host) = (
        t.path().join("l"),
        t.path().join("u"),
        t.path().join("host"),
    );
    fs::create_dir_all(&lower).unwrap();
    fs::write(host.with_extension("secret"), SECRET).unwrap();
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("f"), SECRET).unwrap();
    write(&upper.join("f"), "container-data!!");
    write(&upper.join("d/f"), "container-data!!");
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    // The file itself becomes a symlink to a host file of the same size.
    fs::remove_file(upper.join("f")).unwrap();
    symlink(host.with_extension("secret"), upper.join("f")).unwrap();
    let err = layer_bytes(&diff).unwrap_err().to_string();
    assert!(err.contains("symlink") && err.contains("/u/f"), "{err}");
    // A directory on its path becomes a symlink to a host directory.
    fs::remove_file(upper.join("f")).unwrap();
    write(&upper.join("f"), "container-data!!");
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    fs::rename(upper.join("d"), t.path().join("d-moved")).unwrap();
    symlink(&host, upper.join("d")).unwrap();
    let err = layer_bytes(&diff).unwrap_err().to_string();
    assert!(err.contains("no longer a directory"), "{err}");
    // Another file of the same size put in its place is not the inode the diff saw.
    fs::remove_file(upper.join("d")).unwrap();
    fs::rename(t.path().join("d-moved"), upper.join("d")).unwrap();
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    fs::copy(host.join("f"), t.path().join("same-size")).unwrap();
    fs::rename(t.path().join("same-size"), upper.join("f")).unwrap();
    let err = layer_bytes(&diff).unwrap_err().to_string();
    assert!(err.contains("replaced"), "{err}");
}

#[test]
fn a_racing_symlink_swap_never_puts_a_host_file_in_the_layer() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = (t.path().join("l"), t.path().join("u"));
    fs::create_dir_all(&lower).unwrap();
    let secret = t.path().join("secret");
    fs::write(&secret, SECRET).unwrap();
    for i in 0..8 {
        write(&upper.join(format!("f{i}")), "container-data!!");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, upper, secret) = (stop.clone(), upper.clone(), secret.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let target = upper.join(format!("f{}", n % 8));
                let tmp = upper.join(format!(".tmp{n}"));
                if n.is_multiple_of(2) {
                    symlink(&secret, &tmp).unwrap();
                } else {
                    fs::write(&tmp, "container-data!!").unwrap();
                }
                fs::rename(&tmp, &target).unwrap();
                n += 1;
            }
        })
    };
    let mut written = 0;
    for _ in 0..300 {
        let Ok(diff) = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()) else {
            continue;
        };
        if let Ok(bytes) = layer_bytes(&diff) {
            written += 1;
            assert!(!contains(&bytes, SECRET), "a host file went into the layer");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    eprintln!("{written} of 300 layers written while racing");
}

#[test]
fn names_that_would_be_whiteouts_are_refused() {
    let file = |u: &Path, p: &str| write(&u.join(p), "x");
    let dir = |u: &Path, p: &str| fs::create_dir_all(u.join(p)).unwrap();
    for (make, name) in [
        (file as fn(&Path, &str), "etc/.wh.hostname"),
        (dir, ".wh.usr"),
        (file, "dir1/.wh..wh..opq"),
    ] {
        let (_t, lower, upper) = trees();
        make(&upper, name);
        let err = compute(&DirTree::new(&lower), &upper, &DiffOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains(".wh."), "{err}");
        // Left out with an exclusion, the tree is fine.
        let mut opts = DiffOptions::default();
        opts.exclude = vec![PathBuf::from(name)];
        assert!(compute(&DirTree::new(&lower), &upper, &opts).is_ok());
    }
}

#[test]
fn hardlinked_symlinks_fifos_and_files_stay_hardlinks() {
    let (t, lower, upper) = trees();
    symlink("a.txt", upper.join("s1")).unwrap();
    // link(2) makes a second name for the symlink itself (std does not follow it on Linux).
    fs::hard_link(upper.join("s1"), upper.join("s2")).unwrap();
    sh(&format!("mkfifo '{}'", upper.join("p1").display()));
    fs::hard_link(upper.join("p1"), upper.join("p2")).unwrap();
    fs::hard_link(upper.join("keep.txt"), upper.join("keep-2.txt")).unwrap();
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    let plan = diff.plan();
    for (link, target) in [("s2", "s1"), ("p2", "p1"), ("keep.txt", "keep-2.txt")] {
        assert!(
            plan.contains(&LayerEntry::Hardlink {
                path: PathBuf::from(link),
                target: PathBuf::from(target),
            }),
            "{link} -> {target}: {plan:?}"
        );
    }
    let out = t.path().join("layer.tar");
    write_layer_file(&diff, &out, &tar_opts()).unwrap();
    let entries = read_tar(&fs::read(&out).unwrap());
    let s2 = entries.iter().find(|e| e.0 == "s2").unwrap();
    assert_eq!((s2.1, s2.2.as_deref()), (tar::EntryType::Link, Some("s1")));
}

#[test]
fn a_change_to_the_root_itself_is_the_dot_slash_entry() {
    let (t, lower, upper) = trees();
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    assert!(diff.is_empty(), "{:?}", diff.changes());
    fs::set_permissions(&upper, fs::Permissions::from_mode(0o700)).unwrap();
    xattr::set(&upper, "user.root", b"1").unwrap();
    let diff = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()).unwrap();
    match kind_of(&diff.changes(), ".") {
        Some(ChangeKind::Modified(r)) => assert!(r.mode && r.xattrs && !r.mtime, "{r:?}"),
        other => panic!("{other:?}"),
    }
    let out = t.path().join("layer.tar");
    write_layer_file(&diff, &out, &tar_opts()).unwrap();
    let entries = read_tar(&fs::read(&out).unwrap());
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, "./");
    assert!(
        entries[0]
            .6
            .contains(&("SCHILY.xattr.user.root".to_string(), b"1".to_vec()))
    );
}

#[test]
fn a_directory_swapped_for_a_symlink_during_the_walk_never_lists_the_host() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper, host) = (
        t.path().join("l"),
        t.path().join("u"),
        t.path().join("host"),
    );
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&host).unwrap();
    for i in 0..50 {
        symlink("HOST-TARGET", host.join(format!("host-{i}"))).unwrap();
    }
    for i in 0..4 {
        for j in 0..50 {
            write(&upper.join(format!("d{i}/f{j}")), "x");
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, upper, host) = (stop.clone(), upper.clone(), host.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let d = upper.join(format!("d{}", n % 4));
                let aside = upper.join(format!("aside{}", n % 4));
                // d becomes a symlink to the host directory, then a directory again.
                fs::rename(&d, &aside).unwrap();
                symlink(&host, &d).unwrap();
                std::thread::yield_now();
                fs::remove_file(&d).unwrap();
                fs::rename(&aside, &d).unwrap();
                n += 1;
            }
        })
    };
    let mut walked = 0;
    for _ in 0..300 {
        if let Ok(diff) = compute(&DirTree::new(&lower), &upper, &DiffOptions::default()) {
            walked += 1;
            for c in diff.changes() {
                assert!(
                    !c.path.to_string_lossy().contains("host-"),
                    "the walk listed the host directory: {}",
                    c.path.display()
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    eprintln!("{walked} of 300 walks finished while racing");
}

#[test]
fn full_hash_hashes_even_files_whose_inode_and_ctime_match() {
    let (_t, _lower, upper) = trees();
    let mut state = record(&upper);
    // A record whose digest no longer matches a file it says is untouched (as after restoring the
    // tree onto another filesystem that reused the inode and ctime).
    for (p, e) in &mut state.entries {
        if p == Path::new("a.txt") {
            e.digest = Some(hoist::Digest::sha256(b"something else").to_string());
        }
    }
    let quick = compute(&state, &upper, &DiffOptions::default()).unwrap();
    assert!(quick.is_empty(), "{:?}", quick.changes());
    let mut opts = DiffOptions::default();
    opts.full_hash = true;
    let full = compute(&state, &upper, &opts).unwrap();
    match kind_of(&full.changes(), "a.txt") {
        Some(ChangeKind::Modified(r)) => assert!(r.content),
        other => panic!("{other:?}"),
    }
}

#[test]
fn overlay_whiteouts_in_the_upper_tree_become_layer_whiteouts() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        eprintln!("skipped: mknod and trusted.* xattrs need root");
        return;
    }
    let (_t, lower, upper) = trees();
    // As overlayfs records it: b.txt deleted (a 0/0 character device), dir1 made opaque with one
    // new file; dir2 was opaque already in the lower tree and only gains a file.
    xattr::set(lower.join("dir2"), "trusted.overlay.opaque", b"y").unwrap();
    xattr::set(upper.join("dir2"), "trusted.overlay.opaque", b"y").unwrap();
    fs::remove_file(upper.join("b.txt")).unwrap();
    sh(&format!("mknod '{}' c 0 0", upper.join("b.txt").display()));
    xattr::set(upper.join("dir1"), "trusted.overlay.opaque", b"y").unwrap();
    write(&upper.join("dir1/new"), "new");
    write(&upper.join("dir2/more"), "more");
    let mut opts = DiffOptions::default();
    opts.overlay_whiteouts = true;
    let plan = compute(&DirTree::new(&lower), &upper, &opts)
        .unwrap()
        .plan();
    let has = |e: &LayerEntry| plan.contains(e);
    assert!(has(&LayerEntry::Whiteout {
        path: PathBuf::from("b.txt")
    }));
    assert!(has(&LayerEntry::Opaque {
        dir: PathBuf::from("dir1")
    }));
    assert!(
        !has(&LayerEntry::Opaque {
            dir: PathBuf::from("dir2")
        }),
        "{plan:?}"
    );
    for e in &plan {
        if let LayerEntry::Write { path, meta } = e {
            assert_ne!(
                meta.file_type,
                hoist::diff::FileType::CharDevice,
                "{path:?}"
            );
            assert!(
                !meta
                    .xattrs
                    .keys()
                    .any(|k| k.to_string_lossy().starts_with("trusted.overlay")),
                "{path:?}"
            );
        }
    }
    // The opaque directory's unchanged contents are written again (x, sub/y), so they survive.
    for p in ["dir1/x", "dir1/sub/y", "dir1/new"] {
        assert!(
            plan.iter()
                .any(|e| matches!(e, LayerEntry::Write { path, .. } if path == Path::new(p))),
            "{p}: {plan:?}"
        );
    }
    // Without the option, the device is what it is.
    let plain = compute(&DirTree::new(&lower), &upper, &DiffOptions::default())
        .unwrap()
        .plan();
    assert!(!plain.contains(&LayerEntry::Whiteout {
        path: PathBuf::from("b.txt")
    }));
}
