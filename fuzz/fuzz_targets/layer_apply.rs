//! Fuzzes layer application: the input describes one to three layers of hostile tar entries (paths with
//! `..`, absolute paths, symlinks and hardlinks pointing out, whiteouts, opaque markers, files replacing
//! directories, long names in PAX records), written with raw tar headers so nothing is sanitised, and
//! applied rootless with hoist's parser and applier. Whatever the layers say, every write stays inside
//! the target: the target sits in a fresh directory beside a sentinel file and a sibling directory, and
//! afterwards that directory holds exactly those three, the sentinel is unchanged and the sibling is
//! empty. Errors are fine; an escape or a panic is a crash.
#![no_main]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hoist::Limits;
use hoist::fuzzing::{Applier, ApplyOptions, Msg, ReadTotals, Resolver, parse_layer};
use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;

mod scratch;

/// Path components the fuzzer picks from (hostile ones included), besides arbitrary bytes.
const COMPONENTS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"..",
    b".",
    b"",
    b"sentinel",
    b"sibling",
    b"target",
    b".wh.a",
    b".wh.b",
    b".wh..wh..opq",
    b".wh...",
    b".wh.",
    b"proc",
    b"self",
    // Longer than a ustar name field: only a PAX record carries it whole.
    b"a-very-long-directory-name-that-does-not-fit-the-one-hundred-bytes-of-a-ustar-name-field-at-all-x",
];

/// Link targets the fuzzer picks from, besides built paths.
const TARGETS: &[&[u8]] = &[
    b"/",
    b"..",
    b"../..",
    b"../sentinel",
    b"../sibling",
    b"/../sibling",
    b"/proc/self/cwd",
    b"/proc/self/root",
    b"../../../../../../tmp",
    b"a",
    b"a/b",
    b".",
];

fn component(u: &mut Unstructured) -> AResult<Vec<u8>> {
    if u.ratio(1, 8)? {
        let n = u.int_in_range(1..=6)?;
        return Ok(u.bytes(n)?.to_vec());
    }
    Ok(u.choose(COMPONENTS)?.to_vec())
}

fn path(u: &mut Unstructured) -> AResult<Vec<u8>> {
    let mut p = Vec::new();
    match u.int_in_range(0..=5)? {
        0 => p.extend_from_slice(b"/"),
        1 => p.extend_from_slice(b"./"),
        _ => {}
    }
    let n = u.int_in_range(1..=4)?;
    for i in 0..n {
        if i > 0 {
            p.push(b'/');
        }
        p.extend(component(u)?);
    }
    if u.ratio(1, 10)? {
        p.push(b'/');
    }
    Ok(p)
}

fn link_target(u: &mut Unstructured) -> AResult<Vec<u8>> {
    if u.ratio(1, 2)? {
        Ok(u.choose(TARGETS)?.to_vec())
    } else {
        path(u)
    }
}

/// A ustar header with `name` and `link` written raw (truncated to the fields' sizes).
fn raw_header(name: &[u8], link: &[u8], kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    let old = h.as_old_mut();
    let n = name.len().min(old.name.len());
    old.name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(old.linkname.len());
    old.linkname[..l].copy_from_slice(&link[..l]);
    h.set_cksum();
    h
}

/// Appends one PAX record (`LEN KEY=VALUE\n`, LEN counting itself).
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One layer's tar, built from the fuzz input.
fn layer(u: &mut Unstructured) -> AResult<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let entries = u.int_in_range(0..=12)?;
    for _ in 0..entries {
        let name = path(u)?;
        let mode = u.int_in_range(0..=0o7777)?;
        let (kind, link, data): (tar::EntryType, Vec<u8>, Vec<u8>) = match u.int_in_range(0..=7)? {
            0 | 1 => {
                let n = u.int_in_range(0..=64)?;
                (tar::EntryType::Regular, Vec::new(), u.bytes(n)?.to_vec())
            }
            2 => (tar::EntryType::Directory, Vec::new(), Vec::new()),
            3 | 4 => (tar::EntryType::Symlink, link_target(u)?, Vec::new()),
            5 => (tar::EntryType::Link, link_target(u)?, Vec::new()),
            6 => (tar::EntryType::Fifo, Vec::new(), Vec::new()),
            _ => (tar::EntryType::Char, Vec::new(), Vec::new()),
        };
        // Now and then the name and link travel in a PAX record (as long names do), with an xattr.
        if u.ratio(1, 6)? {
            let mut pax = Vec::new();
            pax_record(&mut pax, b"path", &name);
            if !link.is_empty() {
                pax_record(&mut pax, b"linkpath", &link);
            }
            pax_record(&mut pax, b"SCHILY.xattr.user.fuzz", b"1");
            let ph = raw_header(
                b"PaxHeaders/x",
                b"",
                tar::EntryType::XHeader,
                pax.len() as u64,
                0o644,
            );
            if b.append(&ph, &pax[..]).is_err() {
                break;
            }
        }
        let h = raw_header(&name, &link, kind, data.len() as u64, mode);
        if b.append(&h, &data[..]).is_err() {
            break;
        }
    }
    Ok(b.into_inner().unwrap_or_default())
}

fn scratch() -> &'static Path {
    scratch::dir("layer-apply")
}

const SENTINEL: &[u8] = b"do not touch";

/// Makes every directory below `dir` writable and searchable again (applied modes may be 0), then
/// removes it.
fn remove_tree(dir: &Path) {
    fn open_up(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(dir);
    let _ = fs::remove_dir_all(dir);
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("listing")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn apply(target: &Path, layers: &[Vec<u8>], resolver: Resolver) -> hoist::Result<()> {
    let mut limits = Limits::default();
    limits.max_unpack_size = 1 << 20;
    let mut opts = ApplyOptions::default();
    opts.rootless = true;
    opts.resolver = Some(resolver);
    let mut applier = Applier::new(target, opts)?;
    let mut totals = ReadTotals::default();
    for (i, tar) in layers.iter().enumerate() {
        applier.apply(Msg::LayerStart(format!("layer {i}")))?;
        parse_layer(
            &tar[..],
            &format!("layer {i}"),
            &limits,
            &mut totals,
            &mut |m| applier.apply(m),
        )?;
        applier.apply(Msg::LayerEnd)?;
    }
    applier.finish()
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let resolver = if u.ratio(1, 2).unwrap_or(false) {
        Resolver::Walk
    } else {
        Resolver::detect()
    };
    let n = u.int_in_range(1..=3).unwrap_or(1);
    let mut layers = Vec::new();
    for _ in 0..n {
        match layer(&mut u) {
            Ok(l) => layers.push(l),
            Err(_) => break,
        }
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let run: PathBuf = scratch().join(COUNTER.fetch_add(1, Ordering::Relaxed).to_string());
    let target = run.join("target");
    fs::create_dir_all(&target).expect("creating the target");
    fs::create_dir(run.join("sibling")).expect("creating the sibling");
    fs::write(run.join("sentinel"), SENTINEL).expect("writing the sentinel");

    let _ = apply(&target, &layers, resolver);

    assert_eq!(
        names(&run),
        ["sentinel", "sibling", "target"],
        "something was written beside the target"
    );
    let meta = fs::symlink_metadata(run.join("sentinel")).expect("sentinel");
    assert!(meta.is_file(), "the sentinel was replaced");
    assert_eq!(
        fs::read(run.join("sentinel")).expect("reading the sentinel"),
        SENTINEL,
        "the sentinel changed"
    );
    let sib = fs::symlink_metadata(run.join("sibling")).expect("sibling");
    assert!(sib.is_dir(), "the sibling was replaced");
    assert!(
        names(&run.join("sibling")).is_empty(),
        "something was written into the sibling"
    );
    assert_eq!(
        names(scratch()),
        [run.file_name().unwrap().to_string_lossy().into_owned()],
        "something was written beside the run directory"
    );
    remove_tree(&run);
});
