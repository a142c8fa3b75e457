#!/usr/bin/env bash
# Builds the benchmark images with umoci and skopeo (Debian packages), from this machine's own files.
# Nothing is downloaded.
#
#   benches/make-images.sh OUTDIR [quick|default]
#
# Each image is built under a temporary name and renamed when complete, so an interrupted build is
# redone next time and a finished one is never rebuilt. bench.py keys OUTDIR on RECIPE_VERSION and on
# this file's hash, so changing a recipe builds a fresh set.
#
# Images (all tagged `bench`; OCI layouts unless named otherwise):
#   small                    one gzip layer of ~5 MB of /usr/bin
#   multi                    5 layers: small files, deletions (whiteouts), a directory replaced, a file
#                            replaced by a symlink, hardlinks, symlinks (relative, absolute, dangling),
#                            user.* xattrs, long and non-ASCII names, 16 MiB random + 16 MiB text
#   large                    ~300 MB of /usr/lib and /usr/share in 4 layers, plus a layer of deletions
#                            (a different mix of files on another machine, but of the same size)
#   large-zstd               large with zstd layers (skopeo --dest-compress-format zstd)
#   small.docker.tar         small as docker-archive
#   large.docker.tar         large as docker-archive
#   large.oci.tar            large as oci-archive
#   NAME.layers/N.tar        the uncompressed layers of each OCI layout above (for `tar -x` and sizes)
set -euo pipefail

RECIPE_VERSION=1

out=${1:?usage: make-images.sh OUTDIR [quick|default]}
set_name=${2:-default}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { printf 'make-images: %s\n' "$*" >&2; }

# Copies regular files and symlinks under ROOTS into DEST, in sorted path order, skipping any that would
# take the total past BUDGET_MB megabytes; keeps their paths, modes and links.
copy_budget() {
  local dest=$1 budget_mb=$2; shift 2
  local list="$work/list.$$"
  # Hardlinked files (e.g. Mesa's dri drivers) are stored once in a layer: count their bytes once.
  find "$@" \( -type f -o -type l \) -printf '%s\t%i\t%p\n' 2>/dev/null | LC_ALL=C sort -t$'\t' -k3 |
    awk -F'\t' -v budget=$((budget_mb * 1024 * 1024)) '
      { size = ($2 in seen) ? 0 : $1 }
      sum + size <= budget { sum += size; seen[$2] = 1; print substr($3, 2) }' > "$list"
  tar --no-recursion -C / -cf - -T "$list" | tar -C "$dest" -xf -
  rm -f "$list"
}

# new_image LAYOUT: an empty image and a bundle to fill (prints the rootfs path).
new_image() {
  local layout=$1
  umoci init --layout "$layout"
  umoci new --image "$layout:bench"
  umoci unpack --rootless --image "$layout:bench" "$work/bundle" >/dev/null
}

# layer LAYOUT COMMENT: commits the bundle's changes as one layer and keeps the bundle current.
layer() {
  umoci repack --refresh-bundle --history.comment "$2" --image "$1:bench" "$work/bundle"
}

finish_image() {
  local layout=$1 name=$2
  umoci config --image "$layout:bench" --os linux --architecture amd64 \
    --config.env PATH=/usr/bin:/bin --config.cmd /bin/sh --config.label "org.hoist.bench=$name" \
    --author "hoist benches"
  umoci gc --layout "$layout"
  chmod -R u+w "$work/bundle" 2>/dev/null || true
  rm -rf "$work/bundle"
}

# layers_of NAME: decompresses each layer of the `bench` image into NAME.layers/N.tar.
layers_of() {
  local name=$1 dir="$out/$1.layers"
  [ -e "$dir/.complete" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir.tmp"
  python3 - "$out/$name" "$dir.tmp" <<'EOF'
import json, subprocess, sys
layout, dest = sys.argv[1], sys.argv[2]
def blob(d):
    a, h = d["digest"].split(":", 1)
    return f"{layout}/blobs/{a}/{h}"
index = json.load(open(f"{layout}/index.json"))
desc = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "bench")
manifest = json.load(open(blob(desc)))
for i, l in enumerate(manifest["layers"]):
    tool = ["zstd", "-dc"] if "zstd" in l["mediaType"] else ["gzip", "-dc"]
    with open(f"{dest}/{i}.tar", "wb") as f:
        subprocess.run(tool + [blob(l)], stdout=f, check=True)
EOF
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
}

build_small() {
  local l="$work/small"
  new_image "$l"
  local r="$work/bundle/rootfs"
  mkdir -p "$r/usr/bin" "$r/etc"
  copy_budget "$r" 5 /usr/bin
  echo "hoist bench small" > "$r/etc/motd"
  layer "$l" "small: /usr/bin"
  finish_image "$l" small
  mv "$l" "$out/small"
}

build_multi() {
  local l="$work/multi"
  new_image "$l"
  local r="$work/bundle/rootfs"

  # 1: a tree of small files, an executable, links of every kind, xattrs.
  mkdir -p "$r/etc" "$r/usr/bin" "$r/srv/data" "$r/srv/keep" "$r/srv/replace-dir" "$r/var/empty"
  for i in $(seq 1 400); do printf 'file %d\n%s\n' "$i" "$(seq 1 $((i % 50)))" > "$r/srv/data/f$i.txt"; done
  for i in $(seq 1 50); do echo "keep $i" > "$r/srv/keep/k$i"; done
  for i in $(seq 1 20); do echo "old $i" > "$r/srv/replace-dir/o$i"; done
  printf '#!/bin/sh\necho hi\n' > "$r/usr/bin/hi" && chmod 755 "$r/usr/bin/hi"
  echo "motd" > "$r/etc/motd"
  ln -s ../etc/motd "$r/srv/motd-rel"
  ln -s /etc/motd "$r/srv/motd-abs"
  ln -s /nowhere/at/all "$r/srv/dangling"
  ln "$r/etc/motd" "$r/srv/motd-hard1"
  ln "$r/etc/motd" "$r/srv/motd-hard2"
  echo "to become a link" > "$r/srv/becomes-link"
  python3 - "$r" <<'EOF'
import os, sys
r = sys.argv[1]
for i in range(1, 21):
    os.setxattr(f"{r}/srv/data/f{i}.txt", "user.hoist.bench", f"value {i}".encode())
os.setxattr(f"{r}/usr/bin/hi", "user.hoist.note", b"\x00\x01binary\xff")
os.setxattr(f"{r}/srv/keep", "user.hoist.dir", b"a directory xattr")
EOF
  layer "$l" "multi 1: files, links, xattrs"

  # 2: deletions (whiteouts), modifications, additions.
  for i in $(seq 1 400 | awk 'NR % 3 == 0'); do rm "$r/srv/data/f$i.txt"; done
  for i in $(seq 1 400 | awk 'NR % 7 == 0 && NR % 3 != 0'); do echo changed >> "$r/srv/data/f$i.txt"; done
  for i in $(seq 1 30); do echo "new $i" > "$r/srv/data/n$i.txt"; done
  rm "$r/srv/motd-hard2"
  layer "$l" "multi 2: deletions and changes"

  # 3: a directory deleted and recreated with other content, a file replaced by a symlink, new hardlinks.
  rm -rf "$r/srv/replace-dir" && mkdir "$r/srv/replace-dir"
  for i in $(seq 1 5); do echo "new $i" > "$r/srv/replace-dir/n$i"; done
  rm "$r/srv/becomes-link" && ln -s data/f1.txt "$r/srv/becomes-link"
  rm -rf "$r/var/empty"
  for i in $(seq 1 10); do ln "$r/srv/keep/k$i" "$r/srv/keep/h$i"; done
  layer "$l" "multi 3: replaced directory, links"

  # 4: large files: incompressible and compressible.
  head -c $((16 * 1024 * 1024)) /dev/urandom > "$r/srv/random.bin"
  find /usr/share/doc -name 'copyright' -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 cat |
    head -c $((16 * 1024 * 1024)) > "$r/srv/text.txt"
  layer "$l" "multi 4: large files"

  # 5: modes, empty files, long and non-ASCII names.
  chmod 600 "$r/etc/motd"
  chmod 4755 "$r/usr/bin/hi"
  : > "$r/srv/empty"
  long="$r/srv/$(printf 'd%.0s' $(seq 1 60))/$(printf 'e%.0s' $(seq 1 60))"
  mkdir -p "$long" && echo deep > "$long/$(printf 'f%.0s' $(seq 1 120)).txt"
  echo "ünïcödé" > "$r/srv/名前-ünïcödé.txt"
  layer "$l" "multi 5: modes, names"

  finish_image "$l" multi
  mv "$l" "$out/multi"
}

build_large() {
  local l="$work/large"
  new_image "$l"
  local r="$work/bundle/rootfs"
  copy_budget "$r" 100 /usr/lib/x86_64-linux-gnu
  layer "$l" "large 1: /usr/lib/x86_64-linux-gnu"
  copy_budget "$r" 30 /usr/share/doc
  copy_budget "$r" 25 /usr/share/locale
  copy_budget "$r" 25 /usr/share/man
  layer "$l" "large 2: /usr/share docs"
  copy_budget "$r" 45 /usr/lib/python3.11
  copy_budget "$r" 15 /usr/share/perl
  layer "$l" "large 3: python and perl"
  copy_budget "$r" 35 /usr/lib/gcc
  copy_budget "$r" 15 /usr/share/vim
  layer "$l" "large 4: gcc, vim"
  # 5: deletions across the earlier layers, and a few changes.
  find "$r/usr/share/doc" -mindepth 1 -maxdepth 1 -type d -name '[a-f]*' -exec rm -rf {} + || true
  find "$r/usr/lib" -name '__pycache__' -type d -prune -exec rm -rf {} + || true
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -name '[a-d]*' -exec rm -rf {} + || true
  mkdir -p "$r/usr/share/vim" && echo "changed" > "$r/usr/share/vim/changed-by-hoist-bench.txt"
  layer "$l" "large 5: deletions"
  finish_image "$l" large
  mv "$l" "$out/large"
}

want() { [ ! -e "$out/$1" ]; }

if want small; then log "small"; build_small; fi
if want multi; then log "multi"; build_multi; fi
if want small.docker.tar; then
  log "small.docker.tar"
  skopeo copy -q "oci:$out/small:bench" "docker-archive:$work/small.docker.tar:bench/small:bench"
  mv "$work/small.docker.tar" "$out/small.docker.tar"
fi
layers_of small
layers_of multi

if [ "$set_name" = default ]; then
  if want large; then log "large (~300 MB of /usr)"; build_large; fi
  if want large-zstd; then
    log "large-zstd"
    skopeo copy -q --dest-compress --dest-compress-format zstd "oci:$out/large:bench" "oci:$work/large-zstd:bench"
    mv "$work/large-zstd" "$out/large-zstd"
  fi
  if want large.docker.tar; then
    log "large.docker.tar"
    skopeo copy -q "oci:$out/large:bench" "docker-archive:$work/large.docker.tar:bench/large:bench"
    mv "$work/large.docker.tar" "$out/large.docker.tar"
  fi
  if want large.oci.tar; then
    log "large.oci.tar"
    skopeo copy -q "oci:$out/large:bench" "oci-archive:$work/large.oci.tar:bench"
    mv "$work/large.oci.tar" "$out/large.oci.tar"
  fi
  layers_of large
  layers_of large-zstd
fi
log "images ready in $out"
