//! Synthetic images written with the hoist library itself: fast to make, any size, for tests that need
//! bulk (interrupted copies, concurrency) rather than realistic file trees.

use std::path::Path;

use hoist::layout::Layout;
use hoist::media_type;
use serde_json::json;

/// Deterministic pseudo-random bytes (xorshift), so a test's blobs differ per `seed` but not per run.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes an image of `layers` uncompressed layers of `layer_size` bytes each into the layout at `dir`
/// under `tag`. Layer contents are noise (copy and verify do not need valid tars). Returns the manifest
/// digest.
pub fn write_image(
    dir: &Path,
    tag: &str,
    layers: usize,
    layer_size: usize,
    seed: u64,
) -> hoist::Digest {
    let layout = Layout::create(dir).expect("create layout");
    let _lock = layout.lock().expect("lock");
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let bytes = noise(layer_size, seed * 1000 + i as u64);
        let d = layout.write_bytes(&bytes).expect("write layer");
        descs.push(json!({"mediaType": media_type::OCI_LAYER_TAR, "digest": d.to_string(), "size": bytes.len()}));
        diff_ids.push(d.to_string());
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [format!("SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .expect("json");
    let cd = layout.write_bytes(&config).expect("write config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": descs
    }))
    .expect("json");
    let doc = hoist::document::Document::new(media_type::OCI_MANIFEST, manifest).expect("doc");
    layout.write_bytes(doc.bytes()).expect("write manifest");
    layout.set_tag(Some(tag), &doc.descriptor()).expect("tag");
    doc.digest().clone()
}

/// Writes a one-layer image whose layer is a real (uncompressed) tar of `files` (path, content; parent
/// directories included) into the layout at `dir` under `tag`, for tests that unpack. Returns the
/// manifest digest.
pub fn write_tar_image(dir: &Path, tag: &str, files: &[(&str, &[u8])]) -> hoist::Digest {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in files {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_path_buf());
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, d, &[][..]).expect("tar dir");
    }
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).expect("tar file");
    }
    let tar = b.into_inner().expect("tar");
    let layout = Layout::create(dir).expect("create layout");
    let _lock = layout.lock().expect("lock");
    let ld = layout.write_bytes(&tar).expect("write layer");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [ld.to_string()]}
    }))
    .expect("json");
    let cd = layout.write_bytes(&config).expect("write config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": media_type::OCI_LAYER_TAR, "digest": ld.to_string(), "size": tar.len()}]
    }))
    .expect("json");
    let doc = hoist::document::Document::new(media_type::OCI_MANIFEST, manifest).expect("doc");
    layout.write_bytes(doc.bytes()).expect("write manifest");
    layout.set_tag(Some(tag), &doc.descriptor()).expect("tag");
    doc.digest().clone()
}
