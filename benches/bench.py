#!/usr/bin/env python3
"""hoist's benchmark driver: times hoist against skopeo/umoci on the same images in the same run.

Run it through benches/run.sh (which builds hoist in release mode first). Standard library only.

For every (operation, image) case it runs a warm-up of each side, then N timed runs alternating hoist
and its peer, each into a fresh directory, and reports the median wall time, the spread, the peak RSS
(GNU time's %M), the ratio peer/hoist (> 1 means hoist is faster) and hoist's throughput. A hoist
command that fails with "not implemented" (or clap's "unrecognized subcommand") is reported as
`unsupported`; the peer is still timed, so the target is known. Results go to stdout as a table and to
benches/results/latest.json.
"""

import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE_IMAGES = REPO / "benches" / "make-images.sh"
RESULTS = REPO / "benches" / "results" / "latest.json"
TIME = "/usr/bin/time"
TIMEOUT = 600  # seconds for one command; a hung tool fails its case rather than the suite

# Which images each set builds and benchmarks (make-images.sh builds the matching set).
SETS = {
    "quick": ["small", "multi", "small.docker.tar"],
    "default": ["small", "multi", "small.docker.tar", "large", "large-zstd", "large.docker.tar", "large.oci.tar"],
}

# hoist's stderr when a verb, transport or flag does not exist yet.
UNSUPPORTED = re.compile(
    r"not implemented|unrecognized subcommand|unexpected argument|unsupported transport", re.I
)


class Op:
    """One operation: hoist's command, the closest peer's, and what the bytes of MB/s are."""

    def __init__(self, name, images, hoist, peer_name, peer, basis, note="", registry=None, repack=False,
                 peer_cannot=None, append=False, own_layout=False, rootfs=False, gc=False):
        self.name = name
        self.images = images  # in preference order; only those in the chosen set run
        self.hoist = hoist  # argv template (str.format over the case's fields)
        self.peer_name = peer_name
        self.peer = peer
        self.basis = basis  # "blobs": bytes stored (compressed); "tar": uncompressed layer bytes
        self.note = note
        self.registry = registry  # None, "push" or "pull"
        self.repack = repack
        self.append = append  # a fresh copy of the image's layout as {layout}, ~100 MB of files as {adddir}
        self.own_layout = own_layout or append  # a fresh copy of the image's layout as {layout}
        self.peer_cannot = peer_cannot or {}  # image -> why the peer cannot do it (shown, not timed)
        self.rootfs = rootfs  # the image unpacked once by umoci (untimed) as {rootfs}
        self.gc = gc  # a fresh hard-linked copy of a layout holding the image and its repacks as {layout}


OPS = [
    Op("copy oci->oci", ["small", "multi", "large", "large-zstd"],
       ["{hoist}", "copy", "-q", "oci:{src}:bench", "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "oci:{src}:bench", "oci:{dst}:bench"], "blobs",
       "both copy every blob (hoist clones it where the filesystem can reflink, not on this ext4) and verify it"),
    Op("copy oci->oci --link", ["small", "multi", "large", "large-zstd"],
       ["{hoist}", "copy", "-q", "--link", "oci:{src}:bench", "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "oci:{src}:bench", "oci:{dst}:bench"], "blobs",
       "hoist --link verifies and hard-links blobs between layouts on one filesystem (as here); skopeo copies them"),
    Op("copy oci-archive->oci", ["large.oci.tar"],
       ["{hoist}", "copy", "-q", "oci-archive:{src}:bench", "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "oci-archive:{src}:bench", "oci:{dst}:bench"], "blobs"),
    Op("copy docker-archive->oci", ["small.docker.tar", "large.docker.tar"],
       ["{hoist}", "copy", "-q", "docker-archive:{src}", "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "docker-archive:{src}", "oci:{dst}:bench"], "blobs",
       "docker-archive layers are uncompressed; both sides must gzip them for the OCI layout"),
    Op("copy docker-archive->oci none", ["large.docker.tar"],
       ["{hoist}", "copy", "-q", "--dest-compress-format", "none", "docker-archive:{src}", "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "--dest-oci-accept-uncompressed-layers", "docker-archive:{src}",
                  "oci:{dst}:bench"], "blobs",
       "layers kept uncompressed (their digests are the diff_ids): hashing and writing only"),
    Op("copy oci->oci gzip->zstd", ["large"],
       ["{hoist}", "copy", "-q", "--dest-compress-format", "zstd", "oci:{src}:bench", "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "--dest-compress-format", "zstd", "oci:{src}:bench",
                  "oci:{dst}:bench"], "tar",
       "every layer inflated and compressed again as zstd (level 3 on both sides)"),
    Op("copy oci->registry", ["small", "large"],
       ["{hoist}", "copy", "-q", "--dest-tls-verify=false", "oci:{src}:bench", "docker://{sink}/{repo}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:{src}:bench",
                  "docker://{sink}/{repo}:bench"], "blobs",
       "docker-registry on 127.0.0.1, storage emptied before each run, so every blob is uploaded",
       registry="push"),
    Op("copy registry->oci", ["small", "large"],
       ["{hoist}", "copy", "-q", "--src-tls-verify=false", "docker://{source}/bench/{image}:bench",
        "oci:{dst}:bench"],
       "skopeo", ["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://{source}/bench/{image}:bench",
                  "oci:{dst}:bench"], "blobs",
       "docker-registry on 127.0.0.1", registry="pull"),
    Op("copy registry->oci --referrers", ["large"],
       ["{hoist}", "copy", "-q", "--referrers", "--src-tls-verify=false", "docker://{source}/bench/{image}:bench",
        "oci:{dst}:bench"],
       "hoist-plain", ["{hoist}", "copy", "-q", "--src-tls-verify=false", "docker://{source}/bench/{image}:bench",
                       "oci:{dst}:bench"], "blobs",
       "the cost of --referrers on an image without referrers, against hoist's own plain copy (the peer"
       " column): docker-registry 2.8 has no referrers API, so one 404 probe and the fallback tag's GET",
       registry="pull"),
    Op("unpack", ["small", "multi", "large", "large-zstd"],
       ["{hoist}", "unpack", "--rootless", "oci:{src}:bench", "{dst}"],
       "umoci", ["umoci", "unpack", "--rootless", "--image", "{src}:bench", "{dst}"], "tar",
       "umoci also writes an mtree manifest of the rootfs",
       peer_cannot={"large-zstd": "umoci 0.4.7 cannot read zstd layers"}),
    Op("verify", ["small", "multi", "large", "large-zstd"],
       ["{hoist}", "verify", "oci:{src}:bench"],
       "oci-image-tool", ["oci-image-tool", "validate", "--type", "image", "--ref", "name=bench", "{src}"], "blobs",
       "oci-image-tool validate checks documents and blob digests only; hoist also decompresses every"
       " layer to check its diff_id (no tool does that alone: this is the closest peer)",
       peer_cannot={"large-zstd": "oci-image-tool 1.0.0-rc1 does not know the zstd layer media type"}),
    Op("runtime-config", ["small", "large"],
       ["{hoist}", "runtime-config", "oci:{src}:bench", "{dst}"],
       "umoci", ["umoci", "raw", "runtime-config", "--image", "{src}:bench", "{dst}"], "tar",
       "hoist reads /etc/passwd and /etc/group from the layers, top first, stopping below the one that"
       " decides both (each read to its end and verified), nothing unpacked; umoci without --rootfs reads no"
       " user database (it needs an unpacked rootfs for that); large has no /etc/passwd: every layer is read"),
    Op("runtime-config --rootfs", ["small", "large"],
       ["{hoist}", "runtime-config", "--rootfs", "{rootfs}", "oci:{src}:bench", "{dst}"],
       "umoci", ["umoci", "raw", "runtime-config", "--rootfs", "{rootfs}", "--image", "{src}:bench", "{dst}"],
       "tar", "both read /etc/passwd and /etc/group from a rootfs umoci unpacked (untimed); no layer is read",
       rootfs=True),
    Op("gc", ["large"],
       ["{hoist}", "gc", "oci:{layout}"],
       "umoci", ["umoci", "gc", "--layout", "{layout}"], "blobs",
       "a layout holding the image and two repacks of it (umoci, one file changed each), one repack"
       " untagged so its manifest, config and layer are garbage; a fresh hard-linked copy each run",
       gc=True),
    Op("repack", ["multi", "large"],
       ["{hoist}", "repack", "{hbundle}", "--dest", "oci:{layout}", "--tag", "bench-repack"],
       "umoci", ["umoci", "repack", "--image", "{layout}:bench-repack", "{bundle}"], "tar",
       "the image's files packed as one gzip layer over an empty base image, into a fresh copy of its layout;"
       " each side repacks a bundle it unpacked itself (hoist's state record, umoci's mtree)",
       repack=True),
    Op("append", ["large", "multi"],
       ["{hoist}", "append", "oci:{layout}:bench", "{adddir}:/opt/add"],
       "umoci", ["umoci", "insert", "--rootless", "--image", "{layout}:bench", "{adddir}", "/opt/add"], "tar",
       "~100 MB of this machine's /usr/share files added as one gzip layer under /opt/add onto the image,"
       " in place in a fresh copy of its layout (umoci insert; hoist append without --base)",
       append=True),
    Op("config edit", ["small", "large"],
       ["{hoist}", "config", "--image", "oci:{layout}:bench", "--config.env", "BENCH=1"],
       "umoci", ["umoci", "config", "--image", "{layout}:bench", "--config.env", "BENCH=1"], "blobs",
       "one environment variable set, a new config and manifest written and the tag moved, in place in a"
       " fresh copy of the image's layout; no layer is read",
       own_layout=True),
    Op("flatten", ["large"],
       ["{hoist}", "flatten", "oci:{layout}:bench", "oci:{layout}:flat"],
       "umoci", ["sh", "-ec", "mkdir -p {dst} && umoci unpack --rootless --image {layout}:bench {dst}/b"
                 " && tar -C {dst}/b/rootfs -cf {dst}/l.tar . && umoci new --image {layout}:flat"
                 " && umoci raw add-layer --image {layout}:flat {dst}/l.tar"], "tar",
       "every layer applied and the tree written back as one gzip layer, in a fresh copy of the image's"
       " layout; crane-free peer: umoci unpack, tar of the rootfs, umoci new + raw add-layer",
       own_layout=True),
]

# The machine's limits: the floor any tool's time rests on. Peer-less; MB/s of uncompressed bytes except
# for sha256 (stored bytes hashed).
LIMITS = [
    # openssl uses the CPU's SHA extensions where it has them (as hoist's sha2 does); coreutils does not.
    ("sha256 (openssl)", ["large", "multi"], "blobs",
     lambda info, dst: ["openssl", "dgst", "-sha256"] + info["layer_blobs"]),
    ("sha256sum", ["large", "multi"], "blobs", lambda info, dst: ["sha256sum"] + info["layer_blobs"]),
    ("gzip -dc", ["large", "multi"], "tar",
     lambda info, dst: ["sh", "-c", 'for f; do gzip -dc "$f"; done >/dev/null', "sh"] + info["layer_blobs"]),
    ("zstd -dc", ["large-zstd"], "tar",
     lambda info, dst: ["sh", "-c", 'for f; do zstd -qdc "$f"; done >/dev/null', "sh"] + info["layer_blobs"]),
    # The floor of a copy between layouts that shares no inode (no reflinks on ext4): the bytes copied
    # (coreutils cp: copy_file_range) and each file fsynced, as hoist and skopeo do.
    ("cp + fsync", ["large", "multi"], "blobs",
     lambda info, dst: ["sh", "-c", 'd=$1; shift; mkdir "$d"; cp -- "$@" "$d" && sync -- "$d"/*', "sh", dst]
     + info["layer_blobs"]),
    ("tar -x", ["large", "multi"], "tar",
     lambda info, dst: ["sh", "-c", 'd=$1; shift; mkdir "$d"; for f; do tar -C "$d" -xf "$f"; done', "sh", dst]
     + info["layer_tars"]),
]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def recipe_key():
    """The cache key: make-images.sh's RECIPE_VERSION and a hash of the file, so any edit rebuilds."""
    text = MAKE_IMAGES.read_bytes()
    m = re.search(rb"^RECIPE_VERSION=(\S+)", text, re.M)
    version = m.group(1).decode() if m else "0"
    return f"images-v{version}-{hashlib.sha256(text).hexdigest()[:10]}"


def blob_path(layout, desc):
    algo, hexd = desc["digest"].split(":", 1)
    return str(Path(layout) / "blobs" / algo / hexd)


def image_info(cache, name):
    """Sizes and paths of an image in the cache (archives borrow the layers of the layout they came from)."""
    path = cache / name
    if name.endswith(".tar"):
        base = image_info(cache, name.split(".")[0])
        return dict(base, path=str(path), blob_bytes=path.stat().st_size)
    index = json.loads((path / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "bench")
    manifest = json.loads(Path(blob_path(path, desc)).read_text())
    layers = [blob_path(path, l) for l in manifest["layers"]]
    tars = sorted((cache / f"{name}.layers").glob("*.tar"), key=lambda p: int(p.stem))
    return {
        "path": str(path),
        "layer_blobs": layers,
        "layer_tars": [str(t) for t in tars],
        "blob_bytes": desc["size"] + manifest["config"]["size"] + sum(l["size"] for l in manifest["layers"]),
        "tar_bytes": sum(t.stat().st_size for t in tars),
        "layers": len(layers),
    }


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry serving a temp directory on a free loopback port; stopped by PID."""

    def __init__(self, workdir, name):
        self.root = workdir / f"registry-{name}"
        self.root.mkdir()
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.addr}\n"
        )
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "log", "wb"))
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"bench: docker-registry did not start; see {self.root / 'log'}")
            time.sleep(0.1)

    def empty(self):
        """Removes every repository and blob (no cache is configured, so the registry forgets them)."""
        shutil.rmtree(self.root / "storage", ignore_errors=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_timed(argv, rss_file):
    """Runs argv under GNU time; returns (seconds, peak RSS in KiB, returncode, stderr)."""
    start = time.perf_counter()
    try:
        p = subprocess.run([TIME, "-f", "%M", "-o", str(rss_file), "--"] + argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT)
        code, err = p.returncode, p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        code, err = -1, f"timed out after {TIMEOUT}s"
    elapsed = time.perf_counter() - start
    rss = None
    try:
        lines = [l for l in rss_file.read_text().splitlines() if l.strip()]
        rss = int(lines[-1])
    except (OSError, ValueError, IndexError):
        pass
    return elapsed, rss, code, err


def first_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Command exited")]
    return lines[0][:160] if lines else ""


class Side:
    """The samples of one tool on one case."""

    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.samples = []
        self.rss = []
        self.status = "ok"  # ok | unsupported | error
        self.message = ""
        self.out_bytes = None  # bytes of blobs the side wrote (local layouts), from its warm-up run
        self.kept = None  # gc: the blobs left after its warm-up run

    def record(self, warmup, elapsed, rss, code, err):
        if code != 0:
            unsupported = [l.strip() for l in err.splitlines() if UNSUPPORTED.search(l)]
            if unsupported:
                self.status, self.message = "unsupported", unsupported[0][:160]
            else:
                self.status, self.message = "error", first_line(err) or f"exit code {code}"
            return False
        if rss is not None:
            self.rss.append(rss)
        if not warmup:
            self.samples.append(elapsed)
        return True

    def median(self):
        return statistics.median(self.samples) if self.samples and self.status == "ok" else None

    def spread(self):
        """Half the range of the samples, relative to the median."""
        m = self.median()
        if not m or len(self.samples) < 2:
            return None
        return (max(self.samples) - min(self.samples)) / 2 / m

    def to_json(self):
        return {
            "tool": self.name,
            "command": self.argv,
            "status": self.status,
            "message": self.message,
            "samples_s": [round(s, 4) for s in self.samples],
            "median_s": self.median(),
            "spread": self.spread(),
            "peak_rss_kib": max(self.rss) if self.rss else None,
            "out_bytes": self.out_bytes,
        }


class Bench:
    def __init__(self, args):
        self.args = args
        self.cache = Path(args.cache).expanduser().resolve() / recipe_key()
        self.hoist = str(Path(args.hoist).resolve())
        self.workdir = None
        self.registries = {}
        self.rows = []
        self.seq = 0

    # -- set-up -------------------------------------------------------------------------------------------

    def build_images(self):
        t0 = time.monotonic()
        log(f"images: {self.cache} ({self.args.set} set)")
        stale = [str(p) for p in self.cache.parent.glob("images-*") if p != self.cache]
        if stale:
            log(f"image sets of older recipes (delete them to free space): {' '.join(stale)}")
        subprocess.run(["bash", str(MAKE_IMAGES), str(self.cache), self.args.set], check=True)
        return time.monotonic() - t0

    def fresh(self, label):
        """A path that does not exist yet, in the run directory (on the cache's filesystem)."""
        self.seq += 1
        return self.workdir / f"{self.seq:04d}-{re.sub(r'[^A-Za-z0-9.]+', '-', label)}"

    def registry(self, name):
        if name not in self.registries:
            self.registries[name] = Registry(self.workdir, name)
            log(f"docker-registry ({name}) on {self.registries[name].addr}")
        return self.registries[name]

    def cleanup(self):
        for r in self.registries.values():
            r.stop()
        self.registries = {}
        if self.workdir and self.workdir.exists():
            # Deleting ~100k files takes a while on this ext4: leave it to a detached process. Only this
            # run's directory and those of runs that ended a day ago: another bench running at the same
            # time (several engineers share the cache) keeps its own.
            day_ago = time.time() - 86400
            stale = [str(p) for p in self.cache.parent.glob("runs-*")
                     if p == self.workdir or p.stat().st_mtime < day_ago]
            if self.args.keep:
                log(f"kept run directories in {self.workdir}")
                return
            subprocess.Popen(["rm", "-rf"] + stale, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.workdir = None

    # -- cases --------------------------------------------------------------------------------------------

    def selected(self, name):
        # "--only OP" selects names containing OP; "--only 'OP$'" only the name OP itself.
        return not self.args.only or any(o[:-1].lower() == name.lower() if o.endswith("$")
                                         else o.lower() in name.lower() for o in self.args.only)

    def images_for(self, wanted):
        have = SETS[self.args.set]
        return [i for i in wanted if i in have]

    def prepare_repack(self, image, info):
        """An empty base image and, for each side, a bundle of it (unpacked by that side, so it carries
        its own record of the base) whose rootfs holds `image`'s files (built once)."""
        base = self.workdir / f"repack-{image}"
        layout, bundle, tmp = base / "layout", base / "bundle", base / "tmp"
        hbundle, htmp = base / "hbundle", base / "htmp"
        base.mkdir()
        quiet = {"stdout": subprocess.DEVNULL, "check": True}
        subprocess.run(["umoci", "init", "--layout", str(layout)], **quiet)
        subprocess.run(["umoci", "new", "--image", f"{layout}:bench-repack"], **quiet)
        subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:bench-repack", str(bundle)], **quiet)
        subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{info['path']}:bench", str(tmp)], **quiet)
        subprocess.run([self.hoist, "unpack", "-q", "--rootless", "--bundle", f"oci:{layout}:bench-repack",
                        str(hbundle)], **quiet)
        subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{info['path']}:bench", str(htmp)], **quiet)
        for src, dst in ((tmp, bundle), (htmp, hbundle)):
            for entry in (src / "rootfs").iterdir():
                entry.rename(dst / "rootfs" / entry.name)
        return layout, bundle, hbundle

    def prepare_rootfs(self, image, info):
        """The image unpacked once by umoci (rootless), for the operations that read a rootfs."""
        bundle = self.workdir / f"rootfs-{image}"
        if not bundle.exists():
            subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{info['path']}:bench", str(bundle)],
                           stdout=subprocess.DEVNULL, check=True)
        return bundle / "rootfs"

    def prepare_gc(self, image, info):
        """A copy of the image's layout with two umoci repacks of it (tags r1 and r2), r1 untagged."""
        layout = self.workdir / f"gc-{image}"
        if layout.exists():
            return layout
        quiet = {"stdout": subprocess.DEVNULL, "check": True}
        subprocess.run(["cp", "-al", str(info["path"]), str(layout)], check=True)
        (layout / "index.json").unlink()
        shutil.copy2(Path(info["path"]) / "index.json", layout / "index.json")
        for tag in ("r1", "r2"):
            bundle = self.workdir / f"gc-{image}-{tag}"
            subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:bench", str(bundle)], **quiet)
            (bundle / "rootfs" / f"changed-{tag}").write_text(tag)
            subprocess.run(["umoci", "repack", "--image", f"{layout}:{tag}", str(bundle)], **quiet)
            shutil.rmtree(bundle, ignore_errors=True)
        subprocess.run(["umoci", "rm", "--image", f"{layout}:r1"], **quiet)
        return layout

    def prepare_append(self):
        """~100 MB of real files (this machine's /usr/share), built once per run."""
        add = self.workdir / "append-files"
        if add.exists():
            return add
        total = 0
        for root, _dirs, files in os.walk("/usr/share"):
            for name in sorted(files):
                src = Path(root) / name
                if total > 100 << 20 or src.is_symlink() or not src.is_file():
                    continue
                dst = add / src.relative_to("/usr/share")
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, dst)
                except OSError:
                    continue
                total += dst.stat().st_size
            if total > 100 << 20:
                break
        return add

    def run_case(self, op, image, info):
        fields = {"hoist": self.hoist, "src": info["path"], "image": image}
        if op.registry == "push":
            fields["sink"] = self.registry("sink").addr
        if op.registry == "pull":
            source = self.registry("source")
            fields["source"] = source.addr
            log(f"  pushing {image} to the source registry (untimed)")
            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{info['path']}:bench",
                            f"docker://{source.addr}/bench/{image}:bench"], check=True)
        base_layout = bundle = None
        if op.repack:
            log(f"  preparing the repack bundle of {image} (untimed)")
            base_layout, bundle, hbundle = self.prepare_repack(image, info)
            fields["bundle"], fields["hbundle"] = str(bundle), str(hbundle)

        if op.append:
            log("  preparing the files to append (untimed)")
            fields["adddir"] = str(self.prepare_append())

        if op.rootfs:
            log(f"  unpacking {image} with umoci for its rootfs (untimed)")
            fields["rootfs"] = str(self.prepare_rootfs(image, info))
        gc_layout = None
        if op.gc:
            log(f"  preparing a layout of {image} and its repacks (untimed)")
            gc_layout = self.prepare_gc(image, info)

        sides = [Side("hoist", op.hoist), Side(op.peer_name, op.peer)]
        if image in op.peer_cannot:
            sides[1].status, sides[1].message = "unsupported", op.peer_cannot[image]
        written = []  # copies into a layout: what the previous run wrote, removed before the next
        for i in range(self.args.runs + 1):
            warmup = i == 0
            for side in sides:
                if side.status != "ok":
                    continue
                f = dict(fields, dst=self.fresh(f"{op.name}-{image}-{side.name}-{i}"),
                         repo=f"bench/{image}-{side.name}-{i}")
                # Untimed: a copy writes into page-cache memory recycled from the previous run's output,
                # as on any machine that has been up a while. On this VM, memory touched for the first
                # time costs ~2 ms per MiB written (dd of 300 MB: 0.17-0.79 s into new memory, 0.05 s
                # into recycled), which would dominate an operation that only writes. A handful of big
                # files: none of ext4's slowness with many files created right after many deleted.
                while written:
                    shutil.rmtree(written.pop(), ignore_errors=True)
                if op.name.startswith("copy") and "oci:{dst}:bench" in side.argv:
                    written.append(f["dst"])
                if op.registry == "push":
                    self.registries["sink"].empty()
                if op.repack:
                    f["layout"] = self.fresh(f"layout-{image}-{side.name}-{i}")
                    subprocess.run(["cp", "-al", str(base_layout), str(f["layout"])], check=True)
                if op.gc:
                    f["layout"] = self.fresh(f"gc-{image}-{side.name}-{i}")
                    subprocess.run(["cp", "-al", str(gc_layout), str(f["layout"])], check=True)
                    (Path(f["layout"]) / "index.json").unlink()
                    shutil.copy2(gc_layout / "index.json", Path(f["layout"]) / "index.json")
                if op.own_layout:
                    f["layout"] = self.fresh(f"layout-{image}-{side.name}-{i}")
                    subprocess.run(["cp", "-al", str(info["path"]), str(f["layout"])], check=True)
                    # Its own index.json: a tool rewriting it in place must not touch the cached image.
                    (Path(f["layout"]) / "index.json").unlink()
                    shutil.copy2(Path(info["path"]) / "index.json", Path(f["layout"]) / "index.json")
                argv = [a.format(**f) for a in side.argv]
                # Untimed: the previous run's dirty pages go to disk now, not during (and charged to)
                # this run's own writes and fsyncs.
                os.sync()
                elapsed, rss, code, err = run_timed(argv, self.workdir / "rss")
                if side.record(warmup, elapsed, rss, code, err) and warmup:
                    self.check_output(op, image, side, f)
        if op.gc and all(s.status == "ok" for s in sides) and sides[0].kept != sides[1].kept:
            sides[0].status = "error"
            sides[0].message = (f"kept {len(sides[0].kept)} blobs, {op.peer_name} {len(sides[1].kept)}: "
                                "they must remove the same garbage")
        return sides

    def check_output(self, op, image, side, fields):
        """Checks (untimed) that a side wrote a valid image, so a fast wrong answer cannot look good."""
        dst = fields["dst"]
        if op.gc:
            # What is left, compared between the sides after both warm-ups (run_case).
            side.kept = sorted(p.name for p in (Path(fields["layout"]) / "blobs").rglob("*") if p.is_file())
            return
        if "oci:{dst}:bench" not in side.argv:
            return  # no layout written
        blobs = Path(dst) / "blobs"
        side.out_bytes = sum(f.stat().st_size for f in blobs.rglob("*") if f.is_file())
        if "zstd" in image or "zstd" in side.argv:
            return  # oci-image-tool 1.0.0-rc1 cannot read zstd layers
        p = subprocess.run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=bench", str(dst)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            side.status = "error"
            side.message = "wrote an invalid image: " + first_line(p.stderr + p.stdout)

    def add_row(self, op_name, image, info, basis, sides, note, peer_name):
        hoist, peer = sides[0], sides[1] if len(sides) > 1 else None
        nbytes = info["tar_bytes"] if basis == "tar" else info["blob_bytes"]
        hm = hoist.median()
        pm = peer.median() if peer else None
        row = {
            "operation": op_name,
            "image": image,
            "bytes": nbytes,
            "bytes_basis": "uncompressed layers" if basis == "tar" else "stored blobs",
            "hoist": hoist.to_json(),
            "peer": peer.to_json() if peer else None,
            "ratio": (pm / hm) if hm and pm else None,
            "mb_per_s": (nbytes / 1e6 / hm) if hm else None,
            "note": note,
        }
        self.rows.append(row)
        print_row(row, peer_name)

    def run(self):
        started = time.monotonic()
        image_seconds = self.build_images()
        self.workdir = Path(tempfile.mkdtemp(prefix="runs-", dir=self.cache.parent))
        infos = {}

        def info(name):
            if name not in infos:
                infos[name] = image_info(self.cache, name)
            return infos[name]

        print_header()
        for op in OPS:
            if not self.selected(op.name):
                continue
            for image in self.images_for(op.images):
                log(f"{op.name} {image}")
                sides = self.run_case(op, image, info(image))
                self.add_row(op.name, image, info(image), op.basis, sides, op.note, op.peer_name)
        for name, images, basis, argv in LIMITS:
            if not self.selected("limit " + name):
                continue
            for image in self.images_for(images)[:1]:
                log(f"limit {name} {image}")
                side = Side(name, None)
                for i in range(self.args.runs + 1):
                    cmd = argv(info(image), str(self.fresh(f"limit-{name}-{i}")))
                    os.sync()
                    side.argv = cmd[:3] + ["..."] if len(cmd) > 4 else cmd
                    elapsed, rss, code, err = run_timed(cmd, self.workdir / "rss")
                    if not side.record(i == 0, elapsed, rss, code, err):
                        break
                self.add_row("limit: " + name, image, info(image), basis, [side],
                             "the machine's floor for this work", "")
        for r in self.registries.values():
            r.stop()

        wall = time.monotonic() - started
        t0 = os.environ.get("HOIST_BENCH_T0")
        total = time.time() - float(t0) if t0 else None
        print_footer(self.rows, wall, total)
        report = {
            "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "hoist_commit": git_describe(),
            "set": self.args.set,
            "runs": self.args.runs,
            "warmups": 1,
            "machine": machine(),
            "image_build_seconds": round(image_seconds, 1),
            "bench_seconds": round(wall, 1),
            "total_seconds": round(total, 1) if total else None,
            "cache": str(self.cache),
            "images": {k: {kk: vv for kk, vv in v.items() if kk not in ("layer_blobs", "layer_tars")}
                       for k, v in infos.items()},
            "results": self.rows,
        }
        out = Path(self.args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {out}")
        return 1 if any(r["hoist"]["status"] == "error" or (r["peer"] and r["peer"]["status"] == "error")
                        for r in self.rows) else 0


# -- output --------------------------------------------------------------------------------------------------

COLS = [("operation", 30), ("image", 16), ("hoist s", 16), ("peer", 14), ("peer s", 14), ("ratio", 7),
        ("MB/s", 7), ("RSS MB h/p", 12), ("size h/p", 9)]


def fmt_time(side):
    if side is None:
        return ""
    if side["status"] != "ok":
        return side["status"]
    m, s = side["median_s"], side["spread"]
    return f"{m:.3f}" + (f" ±{s * 100:.0f}%" if s is not None else "")


def fmt_rss(side):
    return f"{side['peak_rss_kib'] / 1024:.0f}" if side and side.get("peak_rss_kib") else "-"


def print_header():
    print(" ".join(name.ljust(w) for name, w in COLS))
    print(" ".join("-" * w for _, w in COLS), flush=True)


def fmt_size(h, p):
    """hoist's output size against the peer's, as a signed percentage (local layouts only)."""
    if not p or not h.get("out_bytes") or not p.get("out_bytes"):
        return ""
    return f"{(h['out_bytes'] / p['out_bytes'] - 1) * 100:+.1f}%"


def print_row(row, peer_name):
    h, p = row["hoist"], row["peer"]
    cells = [
        row["operation"], row["image"], fmt_time(h), peer_name if p else "", fmt_time(p),
        f"{row['ratio']:.2f}x" if row["ratio"] else "-",
        f"{row['mb_per_s']:.0f}" if row["mb_per_s"] else "-",
        f"{fmt_rss(h)}/{fmt_rss(p)}" if p else fmt_rss(h),
        fmt_size(h, p),
    ]
    print(" ".join(str(c).ljust(w) for c, (_, w) in zip(cells, COLS)), flush=True)


def print_footer(rows, wall, total):
    print()
    print("hoist s / peer s: median wall seconds (± half the range, relative); ratio = peer / hoist, > 1 means"
          " hoist is faster;")
    print("MB/s = hoist's (or the limit's) throughput over the stored blobs (copy, verify, sha256sum) or the"
          " uncompressed layers (unpack, repack, gzip, zstd, tar); RSS = peak resident set, MB;")
    print("size h/p = bytes of blobs hoist wrote against the peer's, for copies into a layout.")
    notes = {}
    for r in rows:
        if r["note"] and not r["operation"].startswith("limit"):
            notes.setdefault(r["operation"], r["note"])
    for op, note in notes.items():
        print(f"  {op}: {note}")
    problems = [(r, side) for r in rows for side in (r["hoist"], r["peer"]) if side and side["status"] != "ok"]
    if problems:
        print()
        for r, side in problems:
            print(f"  {side['status']}: {side['tool']} {r['operation']} {r['image']}: {side['message']}")
    print()
    print(f"benchmarks took {wall:.0f}s" + (f"; {total:.0f}s including the release build" if total else ""))


def git_describe():
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine():
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for tool, flag in [("skopeo", "--version"), ("umoci", "--version"), ("oci-image-tool", "--version")]:
        try:
            versions[tool] = subprocess.run([tool, flag], capture_output=True, text=True).stdout.strip()
        except OSError:
            versions[tool] = None
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "tools": versions}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hoist", default=str(REPO / "target" / "release" / "hoist"), help="the hoist binary")
    parser.add_argument("--cache", default=os.environ.get("HOIST_BENCH_CACHE", "~/.cache/hoist-bench"),
                        help="where images are built once (default $HOIST_BENCH_CACHE or ~/.cache/hoist-bench)")
    parser.add_argument("--quick", dest="set", action="store_const", const="quick", default="default",
                        help="small images only (no ~300 MB image)")
    parser.add_argument("--only", action="append", metavar="OP",
                        help="run operations whose name contains OP (repeatable): copy, registry, unpack, verify,"
                             " repack, limit, ...")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side after one warm-up (default 3)")
    parser.add_argument("--json", default=str(RESULTS), help="where to write the JSON report")
    parser.add_argument("--keep", action="store_true", help="keep the run directories (for inspection)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for tool in ["skopeo", "umoci", "oci-image-tool", "docker-registry", TIME, "zstd", "openssl"]:
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (apt-get install skopeo umoci oci-image-tool docker-registry"
                         " time zstd openssl)")
    if not os.access(args.hoist, os.X_OK):
        parser.error(f"{args.hoist} is not an executable (run benches/run.sh, which builds it)")

    bench = Bench(args)
    atexit.register(bench.cleanup)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        return bench.run()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
