//! Test images built with umoci (and converted with skopeo), never downloaded.

use std::path::Path;

use super::{run_ok, sh};

/// Builds a two-layer image with umoci into the layout `layout` under `tag`:
/// layer 1 has files, a directory, a symlink, a hardlink and an executable; layer 2 modifies a file,
/// deletes one and adds another. The config has Env, Labels, Cmd and an author.
pub fn build_two_layer(layout: &Path, tag: &str) {
    let l = layout.display().to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path().display().to_string();
    run_ok(&mut sh(&format!(
        r#"
        [ -d "{l}" ] || umoci init --layout "{l}"
        umoci new --image "{l}:{tag}"
        umoci unpack --rootless --image "{l}:{tag}" "{w}/b"
        R="{w}/b/rootfs"
        mkdir -p "$R/etc" "$R/usr/bin" "$R/data/sub"
        echo "hello from hoist tests" > "$R/etc/motd"
        printf '#!/bin/sh\necho hi\n' > "$R/usr/bin/hi"; chmod 755 "$R/usr/bin/hi"
        head -c 300000 /dev/urandom > "$R/data/blob.bin"
        echo doomed > "$R/data/sub/gone.txt"
        ln -s ../etc/motd "$R/data/motd-link"
        ln "$R/etc/motd" "$R/data/motd-hard"
        umoci repack --image "{l}:{tag}" "{w}/b"
        umoci config --image "{l}:{tag}" --config.env "PATH=/usr/bin:/bin" --config.env "HOIST_TEST=1" \
            --config.label "org.example.label=yes" --config.cmd /usr/bin/hi --author "hoist tests" \
            --os linux --architecture amd64
        rm -rf "{w}/b"
        umoci unpack --rootless --image "{l}:{tag}" "{w}/b2"
        R="{w}/b2/rootfs"
        echo "changed" >> "$R/etc/motd"
        rm "$R/data/sub/gone.txt"
        echo new > "$R/data/new.txt"
        umoci repack --image "{l}:{tag}" "{w}/b2"
        "#
    )));
}

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
