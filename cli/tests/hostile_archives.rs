//! Hostile archives: tar extension headers that declare gigabytes, and compressed archives that
//! expand without end, must be refused cleanly and in bounded memory and disk (as skopeo refuses them),
//! never read whole. Each runs `hoist` with its address space capped (`ulimit -v`), so a reader that
//! buffers the header dies instead of answering.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;

use common::hoist_bin;

/// Address-space cap for the child, in KiB: far above what hoist needs, far below the headers.
const AS_LIMIT_KIB: u64 = 1536 * 1024;

/// A GNU header of `kind` declaring `size` bytes (the `tar` crate's own header writer).
fn header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A tar file holding one extension header of `size` bytes whose data is a hole (zeros on read,
/// nothing on disk), then a file and the end of the archive.
fn sparse_archive(path: &Path, kind: tar::EntryType, size: u64) {
    let mut f = File::create(path).unwrap();
    f.write_all(&header(kind, "././@LongLink", size)).unwrap();
    let data_end = 512 + size.div_ceil(512) * 512;
    f.set_len(data_end).unwrap();
    let mut rest = header(tar::EntryType::Regular, "index.json", 0);
    rest.resize(512 + 1024, 0);
    use std::os::unix::fs::FileExt;
    f.write_all_at(&rest, data_end).unwrap();
}

/// Runs `hoist ARGS` under the address-space cap; returns (success, stderr).
fn hoist_capped(args: &[&str]) -> (bool, String) {
    let mut script = format!("ulimit -v {AS_LIMIT_KIB}; exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(hoist_bin())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_some(),
        "hoist was killed ({}): {stderr}",
        out.status
    );
    (out.status.success(), stderr)
}

#[test]
fn a_gigabyte_gnu_long_name_in_an_oci_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, what) in [
        (tar::EntryType::GNULongName, "GNU long name"),
        (tar::EntryType::GNULongLink, "GNU long link"),
    ] {
        let archive = dir.path().join("a.tar");
        sparse_archive(&archive, kind, 3 << 30);
        let (ok, stderr) =
            hoist_capped(&["inspect", &format!("oci-archive:{}", archive.display())]);
        assert!(!ok);
        assert!(stderr.contains(what), "{stderr}");
        assert!(stderr.contains("--max-path-length"), "{stderr}");
    }
}

#[test]
fn a_gigabyte_pax_header_in_a_docker_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
        let archive = dir.path().join("a.tar");
        sparse_archive(&archive, kind, 3 << 30);
        let (ok, stderr) =
            hoist_capped(&["inspect", &format!("docker-archive:{}", archive.display())]);
        assert!(!ok);
        assert!(
            stderr.contains("PAX header of 3221225472 bytes"),
            "{stderr}"
        );
    }
}

#[test]
fn a_zstd_docker_archive_expanding_without_end_stops_at_the_ratio_limit() {
    if !common::require_tool("zstd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let head = dir.path().join("head");
    // A long name header declaring 1 GiB, then 1 GiB of zeros: a few hundred KiB compressed.
    std::fs::write(&head, header(tar::EntryType::GNULongName, "x", 1 << 30)).unwrap();
    let archive = dir.path().join("a.tar.zst");
    common::run_ok(&mut common::sh(&format!(
        "{{ cat '{}'; head -c 1073741824 /dev/zero; }} | zstd -q -3 > '{}'",
        head.display(),
        archive.display()
    )));
    let compressed = std::fs::metadata(&archive).unwrap().len();
    assert!(compressed < 1 << 20, "{compressed}");
    let out = common::hoist(&["inspect", &format!("docker-archive:{}", archive.display())])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--max-compression-ratio"), "{stderr}");
    // The temp file is gone, and it never held the whole expansion.
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn xz_and_bzip2_docker_archives_expanding_without_end_stop_at_the_ratio_limit() {
    for tool in ["xz", "bzip2"] {
        if !common::require_tool(tool) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let head = dir.path().join("head");
        // A long name header declaring 256 MiB, then 256 MiB of zeros: well past 1000x plus the grace.
        std::fs::write(&head, header(tar::EntryType::GNULongName, "x", 256 << 20)).unwrap();
        let archive = dir.path().join("a.tar.c");
        common::run_ok(&mut common::sh(&format!(
            "{{ cat '{}'; head -c 268435456 /dev/zero; }} | {tool} -c > '{}'",
            head.display(),
            archive.display()
        )));
        let compressed = std::fs::metadata(&archive).unwrap().len();
        assert!(compressed < 1 << 20, "{tool}: {compressed}");
        let out = common::hoist(&["inspect", &format!("docker-archive:{}", archive.display())])
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tool}: {stderr}");
        assert!(
            stderr.contains("--max-compression-ratio"),
            "{tool}: {stderr}"
        );
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "{tool}");
    }
}
