//! Helpers for the diff and config tests: a layout whose base image holds a given tree (built with
//! umoci), and a comparison of two trees that looks at content, modes, links and xattrs.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{run_ok, sh};

/// Builds `layout:tag` with umoci whose single layer holds the contents of `tree` (owners and modes
/// kept: the tests run as root, so no --rootless).
pub fn image_from_tree(layout: &Path, tag: &str, tree: &Path) {
    let work = tempfile::tempdir().expect("tempdir");
    let (l, w, t) = (layout.display(), work.path().display(), tree.display());
    run_ok(&mut sh(&format!(
        r#"
        [ -d "{l}" ] || umoci init --layout "{l}"
        umoci new --image "{l}:{tag}"
        umoci unpack --image "{l}:{tag}" "{w}/b" >/dev/null
        cp -a "{t}/." "{w}/b/rootfs/"
        umoci repack --image "{l}:{tag}" "{w}/b"
        umoci config --image "{l}:{tag}" --os linux --architecture amd64
        "#
    )));
}

/// Everything about a tree that a layer should carry: per path, kind, mode, owner, content digest or
/// link target, xattrs; plus which paths share an inode.
pub fn describe(root: &Path) -> (BTreeMap<String, String>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            let what = if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!(
                    "link {}",
                    std::fs::read_link(&p).expect("readlink").display()
                )
            } else {
                if m.nlink() > 1 {
                    inodes.entry(m.ino()).or_default().push(rel.clone());
                }
                format!(
                    "file {}",
                    hoist::Digest::sha256(&std::fs::read(&p).expect("read"))
                )
            };
            let xattrs: Vec<String> = if m.file_type().is_symlink() {
                Vec::new()
            } else {
                xattr_list(&p)
            };
            out.insert(
                rel,
                format!(
                    "{what} mode={:o} owner={}:{} xattrs={xattrs:?}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
        }
    }
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    groups.sort();
    (out, groups)
}

fn xattr_list(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = xattr::list(p)
        .map(|names| {
            names
                .filter(|n| n.to_string_lossy().starts_with("user."))
                .map(|n| {
                    let value = xattr::get(p, &n).ok().flatten().unwrap_or_default();
                    format!(
                        "{}={}",
                        n.to_string_lossy(),
                        String::from_utf8_lossy(&value)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
