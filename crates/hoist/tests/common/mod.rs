//! Helpers shared by the library's integration tests.

use std::io::Write;
use std::path::Path;

use hoist::Digest;
use hoist::descriptor::new_descriptor;
use hoist::layout::Layout;
use hoist::media_type;

/// Writes a one-layer image (a file `hello.txt`) to a new layout at `path`, tag `v1`.
#[allow(dead_code)] // not every test file uses it
pub fn write_image(path: &Path) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "hello.txt", &b"hello\n"[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let layout = Layout::create(path).unwrap();
    let ld = layout.write_bytes(&layer).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": hoist::Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&tar).to_string()]}
    }))
    .unwrap();
    let cd = layout.write_bytes(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": media_type::OCI_LAYER_GZIP, "digest": ld.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let md = layout.write_bytes(&manifest).unwrap();
    let desc = new_descriptor(media_type::OCI_MANIFEST, &md, manifest.len() as u64);
    layout.set_tag(Some("v1"), &desc).unwrap();
}
