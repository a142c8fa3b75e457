//! Fuzzes the `docker-archive:` reader: `manifest.json` parsing, image selection (none, `@N`, `NAME:TAG`),
//! member names, configs and diff_ids, and layer members (plain or compressed), through
//! `DockerArchiveSource::open` on a tar written from the input (or the input itself as the archive file).
//! Never panics; an archive that opens yields a manifest that parses, and every blob it names opens and
//! reads to its end (errors are fine, a blob that the manifest names but the source cannot find is not).
#![no_main]

use std::io::Read;

use hoist::Limits;
use hoist::reference::{ArchiveSelector, ImageName};
use hoist::transport::Source;
use hoist::transport::docker_archive::DockerArchiveSource;
use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;

mod scratch;

/// Member names the input picks from: plausible ones and hostile ones.
const NAMES: &[&str] = &[
    "config.json",
    "abc.json",
    "abc/layer.tar",
    "def/layer.tar",
    "l.tar",
    "./l.tar",
    "l.tar/",
    "blobs/sha256/aa",
    "../escape.tar",
    "/etc/passwd",
    "a/../../b",
    "manifest.json",
    "",
];

const TAGS: &[&str] = &[
    "busybox:latest",
    "example.com/a/b:t",
    "hello:v1",
    "UPPER:case",
    "a@sha256:0000",
    ":",
    "",
];

fn name<'a>(u: &mut Unstructured<'a>) -> AResult<String> {
    if u.ratio(1, 8)? {
        return u.arbitrary::<String>();
    }
    Ok(u.choose(NAMES)?.to_string())
}

/// A config JSON whose diff_ids are the sha256 of some members (or anything).
fn config(u: &mut Unstructured, members: &[(String, Vec<u8>)]) -> AResult<Vec<u8>> {
    if u.ratio(1, 6)? {
        let n = u.int_in_range(0..=64)?;
        return Ok(u.bytes(n)?.to_vec());
    }
    let mut ids = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let id = match u.int_in_range(0..=3)? {
            0 if !members.is_empty() => {
                let (_, data) = u.choose(members)?;
                serde_json::Value::from(hoist::Digest::sha256(data).to_string())
            }
            1 => serde_json::Value::from(u.arbitrary::<String>()?),
            2 => serde_json::Value::from(u.arbitrary::<u32>()?),
            _ => serde_json::Value::from(hoist::Digest::sha256(b"").to_string()),
        };
        ids.push(id);
    }
    let v = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ids}
    });
    Ok(serde_json::to_vec(&v).unwrap_or_default())
}

/// `manifest.json`: a list of items naming members, or raw bytes.
fn manifest(u: &mut Unstructured) -> AResult<Vec<u8>> {
    if u.ratio(1, 6)? {
        let n = u.int_in_range(0..=128)?;
        return Ok(u.bytes(n)?.to_vec());
    }
    let mut items = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let mut layers = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            layers.push(serde_json::Value::from(name(u)?));
        }
        let tags: serde_json::Value = match u.int_in_range(0..=2)? {
            0 => serde_json::Value::Null,
            1 => serde_json::Value::from(vec![u.choose(TAGS)?.to_string()]),
            _ => serde_json::Value::from(vec![
                u.choose(TAGS)?.to_string(),
                u.choose(TAGS)?.to_string(),
            ]),
        };
        items.push(serde_json::json!({"Config": name(u)?, "RepoTags": tags, "Layers": layers}));
    }
    Ok(serde_json::to_vec(&items).unwrap_or_default())
}

fn member_data(u: &mut Unstructured) -> AResult<Vec<u8>> {
    let n = u.int_in_range(0..=64)?;
    let mut data = u.bytes(n)?.to_vec();
    match u.int_in_range(0..=5)? {
        // A gzip or zstd magic in front: the reader tries to decompress what follows.
        0 => data.splice(0..0, [0x1f, 0x8b, 0x08, 0x00]).for_each(drop),
        1 => data.splice(0..0, [0x28, 0xb5, 0x2f, 0xfd]).for_each(drop),
        _ => {}
    }
    Ok(data)
}

/// The archive's bytes: a tar of `manifest.json`, a config and layers (or the raw input).
fn archive(u: &mut Unstructured) -> AResult<Vec<u8>> {
    if u.ratio(1, 8)? {
        return Ok(u.bytes(u.len())?.to_vec());
    }
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        members.push((name(u)?, member_data(u)?));
    }
    let cfg = config(u, &members)?;
    members.push((name(u)?, cfg));
    if u.ratio(7, 8)? {
        members.push(("manifest.json".into(), manifest(u)?));
    }
    let mut b = tar::Builder::new(Vec::new());
    for (n, data) in &members {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        let raw = n.as_bytes();
        let old = h.as_old_mut();
        let k = raw.len().min(old.name.len());
        old.name[..k].copy_from_slice(&raw[..k]);
        h.set_cksum();
        if b.append(&h, &data[..]).is_err() {
            break;
        }
    }
    Ok(b.into_inner().unwrap_or_default())
}

fn selector(u: &mut Unstructured) -> AResult<Option<ArchiveSelector>> {
    Ok(match u.int_in_range(0..=2)? {
        0 => None,
        1 => Some(ArchiveSelector::Index(u.int_in_range(0..=4)?)),
        _ => ImageName::parse(u.choose(TAGS)?)
            .ok()
            .map(ArchiveSelector::Name),
    })
}

/// The archive file, rewritten each iteration.
fn file() -> std::path::PathBuf {
    scratch::dir("docker-archive").join("archive.tar")
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(sel) = selector(&mut u) else { return };
    let Ok(bytes) = archive(&mut u) else { return };
    let path = &file();
    std::fs::write(path, &bytes).expect("writing the archive");
    let mut limits = Limits::default();
    limits.max_document_size = 64 << 10;
    limits.max_entries = 1000;
    let Ok(src) = DockerArchiveSource::open(path, sel, limits) else {
        return;
    };
    let root = src.root().expect("an opened archive has a manifest");
    let manifest = root.manifest().expect("the synthesised manifest parses");
    let _ = src.tags();
    for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let mut r = match src.open_blob(desc) {
            Ok(r) => r,
            Err(hoist::Error::BlobNotFound { .. }) => {
                panic!(
                    "the manifest names {} but the archive cannot find it",
                    desc.digest()
                )
            }
            Err(_) => continue,
        };
        let mut sink = Vec::new();
        let _ = (&mut r).take(1 << 20).read_to_end(&mut sink);
    }
});
