//! umoci's bundle metadata beside hoist's, so a bundle hoist unpacks can be repacked by
//! `umoci repack`: `umoci.json` (where the tree came from, as a descriptor walk) and the go-mtree
//! manifest `ALG_HEX.mtree` of the rootfs with umoci's keywords (`size,type,uid,gid,mode,link,
//! nlink,tar_time,sha256digest,xattr`), in go-mtree's hierarchy format with its `vis` encoding of
//! names. The manifest is made from the state record hoist scanned right after the unpack (file
//! digests included, so nothing is read again), plus an `lstat` of each path for the sizes and link
//! counts umoci's walk reports.
//!
//! It is written only for privileged bundles without id maps: there the tree's owners are the
//! image's, as umoci's own unpack leaves them.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use crate::error::{IoContext, Result};
use crate::image::Image;
use crate::layer::state::{StateEntry, UnpackState, unescape};

/// umoci's metadata file in a bundle.
pub const UMOCI_JSON: &str = "umoci.json";

/// The keywords umoci 0.4 records.
const KEYWORDS: &str = "size,type,uid,gid,mode,link,nlink,tar_time,sha256digest,xattr";

/// Writes `umoci.json` and the mtree manifest into `bundle` for the tree `bundle/rootfs` that
/// `state` describes, unpacked from `image`.
pub fn write_bundle_meta(bundle: &Path, image: &Image, state: &UnpackState) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    let mut walk = Vec::new();
    if let Some(index) = &image.index_doc {
        walk.push(serde_json::to_value(index.descriptor()).unwrap_or_default());
    }
    walk.push(serde_json::to_value(image.manifest_doc.descriptor()).unwrap_or_default());
    let meta = json!({
        "umoci_version": "2",
        "from_descriptor_path": {"descriptor_walk": walk},
        "map_options": {"uid_mappings": null, "gid_mappings": null, "rootless": false},
        "whiteout_mode": 0,
    });
    let digest = image.digest();
    let mut text = format!(
        "#          user: root\n#          tree: {}\n#      keywords: {KEYWORDS}\n\n",
        rootfs.display()
    );
    // The root, then each directory's files and subdirectories in path order.
    let root_line = line(&rootfs, Path::new(""), b".", state.header.root.as_ref())?;
    text.push_str("# .\n");
    text.push_str(&root_line);
    let mut open: Vec<PathBuf> = Vec::new();
    // Entries are in path order, a directory's contents right after it; but mtree wants a
    // directory's files before its subdirectories, so each directory is emitted as a block.
    let entries: Vec<(&PathBuf, &StateEntry)> = state.entries.iter().map(|(p, e)| (p, e)).collect();
    emit_dir(&rootfs, Path::new(""), &entries, &mut text, &mut open)?;
    text.push_str("..\n");
    let name = format!("{}_{}.mtree", digest.algorithm().as_str(), digest.hex());
    crate::durable::replace_file(&bundle.join(name), text.as_bytes(), None)?;
    let mut bytes = serde_json::to_vec(&meta).unwrap_or_default();
    bytes.push(b'\n');
    crate::durable::replace_file(&bundle.join(UMOCI_JSON), &bytes, None)
}

/// Emits the children of `dir` (files first, then each subdirectory as a block ending in `..`).
fn emit_dir(
    rootfs: &Path,
    dir: &Path,
    entries: &[(&PathBuf, &StateEntry)],
    text: &mut String,
    open: &mut Vec<PathBuf>,
) -> Result<()> {
    let children: Vec<&(&PathBuf, &StateEntry)> = entries
        .iter()
        .filter(|(p, _)| p.parent() == Some(dir))
        .collect();
    for (p, e) in children.iter().filter(|(_, e)| e.kind != "dir") {
        let name = p.file_name().unwrap_or_default().as_bytes();
        text.push_str("    ");
        text.push_str(&line(rootfs, p, name, Some(e))?);
    }
    for (p, e) in children.iter().filter(|(_, e)| e.kind == "dir") {
        let name = p.file_name().unwrap_or_default().as_bytes();
        let _ = writeln!(
            text,
            "\n# {}",
            String::from_utf8_lossy(&vis(p.as_os_str().as_bytes()))
        );
        text.push_str(&line(rootfs, p, name, Some(e))?);
        let below: Vec<(&PathBuf, &StateEntry)> = entries
            .iter()
            .filter(|(q, _)| q.starts_with(p) && q != p)
            .copied()
            .collect();
        open.push(p.to_path_buf());
        emit_dir(rootfs, p, &below, text, open)?;
        open.pop();
        text.push_str("..\n");
    }
    Ok(())
}

/// One mtree entry line for `rel` (named `name`), from its state entry and an `lstat`.
fn line(rootfs: &Path, rel: &Path, name: &[u8], entry: Option<&StateEntry>) -> Result<String> {
    let path = if rel.as_os_str().is_empty() {
        rootfs.to_path_buf()
    } else {
        rootfs.join(rel)
    };
    let st = std::fs::symlink_metadata(&path).ctx(|| format!("reading {}", path.display()))?;
    let ft = st.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "link"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_socket() {
        "socket"
    } else {
        "file"
    };
    let mode = st.mode() & 0o7777;
    let mut out = String::from_utf8_lossy(&vis(name)).into_owned();
    let _ = write!(
        out,
        " size={} type={kind} uid={} gid={} mode={} nlink={} tar_time={}.000000000",
        st.size(),
        st.uid(),
        st.gid(),
        if mode == 0 {
            "0".into()
        } else {
            format!("0{mode:o}")
        },
        st.nlink(),
        st.mtime()
    );
    if ft.is_symlink() {
        let target = std::fs::read_link(&path).ctx(|| format!("reading {}", path.display()))?;
        let _ = write!(
            out,
            " link={}",
            String::from_utf8_lossy(&vis(target.as_os_str().as_bytes()))
        );
    }
    if ft.is_file() {
        let hex = match entry.and_then(|e| e.digest.as_deref()) {
            Some(d) if d.starts_with("sha256:") => d["sha256:".len()..].to_string(),
            _ => {
                use std::io::Read;
                let mut f = crate::diff::open_in_tree(rootfs, rel, None)?;
                let mut h = crate::digest::Algorithm::Sha256.hasher();
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = f
                        .read(&mut buf)
                        .ctx(|| format!("reading {}", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finish().hex().to_string()
            }
        };
        let _ = write!(out, " sha256digest={hex}");
    }
    if let Some(e) = entry {
        for (k, v) in &e.xattrs {
            let key = unescape(k)?;
            let value = hex::decode(v).unwrap_or_default();
            let _ = write!(
                out,
                " xattr.{}={}",
                String::from_utf8_lossy(&vis(&key)),
                base64::engine::general_purpose::STANDARD.encode(value)
            );
        }
    }
    out.push('\n');
    Ok(out)
}

/// go-mtree's `vis` encoding of a name (`VIS_WHITE | VIS_OCTAL | VIS_GLOB`): a backslash is `\\`,
/// anything but plain printable characters, and the glob characters `*?[#`, is `\ooo`.
pub fn vis(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'*' | b'?' | b'[' | b'#' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            0x21..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_go_mtree_does() {
        // From umoci's own manifest of such names.
        assert_eq!(vis(b"a dir"), b"a\\040dir");
        assert_eq!(vis(b"f*?[#x"), b"f\\052\\077\\133\\043x");
        assert_eq!(vis(b"nl\tx\\y"), b"nl\\011x\\\\y");
        assert_eq!(vis("é".as_bytes()), b"\\303\\251");
    }
}
