//! Helpers for the `unpack` tests: a multi-layer image built with umoci (deletions, an opaque
//! directory, hardlinks, symlinks, xattrs, setuid/setgid/sticky modes, fifos, owners), and the one
//! description of a tree the tests compare trees with (unpack vs umoci, repack and diff round trips).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{run_ok, sh};

/// Builds a three-layer image with umoci into `layout:tag`:
/// 1. files with owners, setuid/setgid/sticky modes, `user.*` xattrs, a fifo, symlinks (relative and
///    absolute), a hardlink pair, nested directories;
/// 2. deletions (a file and a whole directory), a file replaced by a directory and the reverse, a
///    hardlink to a file of layer 1, changed content and modes;
/// 3. a raw layer (added with `umoci raw add-layer`) with an opaque directory marker that hides
///    layer 1's content of that directory while keeping what layer 3 puts there.
pub fn build_complex(layout: &Path, tag: &str) {
    let l = layout.display().to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path().display().to_string();
    run_ok(&mut sh(&format!(
        r#"
        [ -d "{l}" ] || umoci init --layout "{l}"
        umoci new --image "{l}:{tag}"
        umoci unpack --image "{l}:{tag}" "{w}/b"
        R="{w}/b/rootfs"
        mkdir -p "$R/etc" "$R/usr/bin" "$R/srv/opq/sub" "$R/var/gone/deeper" "$R/tmp" "$R/home/app"
        echo "motd" > "$R/etc/motd"
        printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' > "$R/etc/passwd"
        printf '#!/bin/sh\necho hi\n' > "$R/usr/bin/hi"; chmod 4755 "$R/usr/bin/hi"
        echo sgid > "$R/usr/bin/sg"; chmod 2711 "$R/usr/bin/sg"
        chmod 1777 "$R/tmp"
        echo owned > "$R/home/app/file"; chown -R 1000:1000 "$R/home/app"
        echo grp > "$R/etc/grp-only"; chown 0:42 "$R/etc/grp-only"
        echo x > "$R/etc/xattr"; setfattr_py() {{ python3 -c "import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())" "$@"; }}
        setfattr_py "$R/etc/xattr" user.foo bar
        setfattr_py "$R/srv" user.dir yes
        mkfifo "$R/srv/fifo"; chmod 640 "$R/srv/fifo"
        ln -s ../etc/motd "$R/srv/rel-link"
        ln -s /etc/motd "$R/srv/abs-link"
        ln -s /nonexistent "$R/srv/dangling"
        echo lower > "$R/srv/opq/lower"; echo deep > "$R/srv/opq/sub/deep"
        echo gone > "$R/var/gone/deeper/f"; echo gone2 > "$R/var/file-gone"
        echo a > "$R/srv/hard-a"; ln "$R/srv/hard-a" "$R/srv/hard-b"
        echo will-be-dir > "$R/srv/f2d"; mkdir "$R/srv/d2f"; echo c > "$R/srv/d2f/child"
        head -c 200000 /dev/urandom > "$R/srv/random.bin"
        umoci repack --image "{l}:{tag}" "{w}/b"
        umoci config --image "{l}:{tag}" --config.cmd /usr/bin/hi --config.workingdir /srv --config.user app \
            --os linux --architecture amd64
        rm -rf "{w}/b"
        umoci unpack --image "{l}:{tag}" "{w}/b2"
        R="{w}/b2/rootfs"
        rm -rf "$R/var/gone" "$R/var/file-gone"
        rm "$R/srv/f2d"; mkdir "$R/srv/f2d"; echo in > "$R/srv/f2d/in"
        rm -rf "$R/srv/d2f"; echo now-file > "$R/srv/d2f"
        ln "$R/etc/motd" "$R/srv/motd-hard"
        echo more >> "$R/srv/random.bin"
        chmod 600 "$R/etc/motd"
        umoci repack --image "{l}:{tag}" "{w}/b2"
        mkdir -p "{w}/l3/srv/opq/sub"
        echo new > "{w}/l3/srv/opq/new"
        : > "{w}/l3/srv/opq/.wh..wh..opq"
        echo newdeep > "{w}/l3/srv/opq/sub/newdeep"
        tar --numeric-owner --owner=0 --group=0 -C "{w}/l3" -cf "{w}/l3.tar" srv
        umoci raw add-layer --image "{l}:{tag}" "{w}/l3.tar"
        "#
    )));
}

/// One path of a tree, as compared between unpackers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `file`, `dir`, `symlink`, `fifo`, `char`, `block`, `other`.
    pub kind: &'static str,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Size of a regular file.
    pub size: u64,
    /// sha256 of a regular file's content.
    pub digest: Option<String>,
    /// A symlink's target.
    pub link: Option<PathBuf>,
    /// Extended attributes (values hex).
    pub xattrs: BTreeMap<String, String>,
    /// Owner (compared only where asked).
    pub owner: (u32, u32),
    /// Modification time of non-directories.
    pub mtime: Option<i64>,
}

/// A tree: every path with its [`Node`], and the hardlink groups (sets of paths sharing an inode).
pub struct Tree {
    /// By relative path.
    pub nodes: BTreeMap<PathBuf, Node>,
    /// Groups of two or more paths that are one file.
    pub links: BTreeSet<BTreeSet<PathBuf>>,
}

/// Describes the tree at `root`.
pub fn describe(root: &Path) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<u64, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let ft = m.file_type();
            let rel = p.strip_prefix(root).expect("prefix").to_path_buf();
            let kind = if ft.is_file() {
                "file"
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else {
                "other"
            };
            let mut xattrs = BTreeMap::new();
            if kind != "symlink" {
                for n in xattr::list(&p).expect("listxattr") {
                    let v = xattr::get(&p, &n).expect("getxattr").unwrap_or_default();
                    let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                    xattrs.insert(n.to_string_lossy().into_owned(), hex);
                }
            }
            if kind == "file" && m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().insert(rel.clone());
            }
            nodes.insert(
                rel,
                Node {
                    kind,
                    mode: m.mode() & 0o7777,
                    size: if kind == "file" { m.len() } else { 0 },
                    digest: (kind == "file").then(|| {
                        hoist::Digest::sha256(&std::fs::read(&p).expect("read")).to_string()
                    }),
                    link: (kind == "symlink").then(|| std::fs::read_link(&p).expect("readlink")),
                    xattrs,
                    owner: (m.uid(), m.gid()),
                    mtime: (kind != "dir").then(|| m.mtime()),
                },
            );
        }
    }
    let links = inodes.into_values().filter(|g| g.len() > 1).collect();
    Tree { nodes, links }
}

/// Asserts that two trees are the same (owners compared when `owners`), listing every difference.
pub fn assert_same(hoist: &Tree, umoci: &Tree, owners: bool) {
    assert_same_as(("hoist", hoist), ("umoci", umoci), owners);
}

/// [`assert_same`] for any two trees, each named in the differences it lists.
pub fn assert_same_as((an, a): (&str, &Tree), (bn, b): (&str, &Tree), owners: bool) {
    let mut diffs = Vec::new();
    for (p, x) in &a.nodes {
        match b.nodes.get(p) {
            None => diffs.push(format!("only in {an}: {}", p.display())),
            Some(y) => {
                let mut x = x.clone();
                let mut y = y.clone();
                if !owners {
                    x.owner = (0, 0);
                    y.owner = (0, 0);
                }
                if x != y {
                    diffs.push(format!("{}:\n  {an} {x:?}\n  {bn} {y:?}", p.display()));
                }
            }
        }
    }
    for p in b.nodes.keys() {
        if !a.nodes.contains_key(p) {
            diffs.push(format!("only in {bn}: {}", p.display()));
        }
    }
    if a.links != b.links {
        diffs.push(format!(
            "hardlink groups differ: {an} {:?} {bn} {:?}",
            a.links, b.links
        ));
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}
