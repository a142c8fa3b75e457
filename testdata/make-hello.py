#!/usr/bin/env python3
"""Builds testdata/hello: a small two-layer OCI image layout (tag `latest`) from the project's own files.

Deterministic (fixed mtimes, owners and gzip headers), stdlib only, under 1 MB, so the README's first
command works on a fresh machine with nothing but Rust and Python. Layer 1 holds the library's sources
under /src, a directory, a symlink and a hardlink; layer 2 deletes one file with a whiteout, hides a
directory's earlier contents with an opaque whiteout and adds a file.

usage: python3 testdata/make-hello.py [OUTPUT_DIR]   (default: testdata/hello)
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "testdata", "hello")
MTIME = 1700000000


def info(name, kind=tarfile.REGTYPE, size=0, mode=0o644, **kw):
    t = tarfile.TarInfo(name)
    t.type, t.size, t.mode, t.mtime = kind, size, mode, MTIME
    t.uid = t.gid = 0
    t.uname = t.gname = "root"
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def layer(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for t, data in entries:
            tar.addfile(t, io.BytesIO(data) if data is not None else None)
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9) as z:
        z.write(tar_bytes)
    return tar_bytes, gz.getvalue()


def put(blob):
    d = hashlib.sha256(blob).hexdigest()
    with open(os.path.join(OUT, "blobs", "sha256", d), "wb") as f:
        f.write(blob)
    return "sha256:" + d


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "blobs", "sha256"))
    src_dir = os.path.join(ROOT, "crates", "hoist", "src")
    files = sorted(f for f in os.listdir(src_dir) if f.endswith(".rs"))
    l1 = [(info("src", tarfile.DIRTYPE, mode=0o755), None), (info("etc", tarfile.DIRTYPE, mode=0o755), None)]
    motd = b"hello from hoist\n"
    l1.append((info("etc/motd", size=len(motd)), motd))
    for f in files:
        data = open(os.path.join(src_dir, f), "rb").read()
        l1.append((info("src/" + f, size=len(data)), data))
    l1.append((info("src/lib-link.rs", tarfile.SYMTYPE, linkname="lib.rs", mode=0o777), None))
    l1.append((info("etc/motd.hard", tarfile.LNKTYPE, linkname="etc/motd"), None))
    hello = b"#!/bin/sh\necho hello from hoist\n"
    l1.append((info("hello", size=len(hello), mode=0o755), hello))
    l1.append((info("cache", tarfile.DIRTYPE, mode=0o755), None))
    old = b"stale\n"
    l1.append((info("cache/old", size=len(old)), old))
    new = b"fresh\n"
    l2 = [
        (info("src", tarfile.DIRTYPE, mode=0o755), None),
        (info("src/.wh." + files[0], size=0), b""),
        (info("cache", tarfile.DIRTYPE, mode=0o755), None),
        (info("cache/.wh..wh..opq", size=0), b""),
        (info("cache/new", size=len(new)), new),
    ]
    layers, diff_ids = [], []
    for entries in (l1, l2):
        tar_bytes, gz = layer(entries)
        diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
    config = json.dumps({
        "created": "2023-11-14T22:13:20Z",
        "author": "hoist testdata",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
            "Cmd": ["/hello"],
            "WorkingDir": "/src",
            "Labels": {"org.opencontainers.image.title": "hoist hello"},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "testdata/make-hello.py"}] * 2,
    }, separators=(",", ":")).encode()
    # The image is the same on every machine architecture: it only holds text files.
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
        "layers": layers,
    }, separators=(",", ":")).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }]}
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    with open(os.path.join(OUT, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    print(OUT)


main()
