//! Micro-benchmarks of the library's hot paths (divan): digest verification while streaming
//! (`VerifiedReader` against a bare sha256), gzip layer decoding, tar entry reading, and document
//! parsing (`Document::detect` + `manifest()` / `index()`).
//!
//! Run with `cargo bench -p hoist-oci --bench hot_paths`; the end-to-end suite is `benches/run.sh`.

use std::io::{Read, Write};

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use hoist::Digest;
use hoist::VerifiedReader;
use hoist::compress::{Compression, decoder};
use hoist::document::Document;

fn main() {
    divan::main();
}

/// The blob size of the streaming benchmarks.
const BLOB: usize = 64 << 20;
/// The read buffer the copy engine and `io::copy` use.
const BUF: usize = 256 << 10;

/// Deterministic, mildly compressible bytes (not all zeros, which would flatter every codec).
fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|i| {
            if i % 4 == 0 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
            }
            // Half the bytes are noise, half are text-like, so gzip gets a realistic ratio.
            if (i / 4096) % 2 == 0 {
                (state >> 32) as u8
            } else {
                b"layer of text "[i % 14]
            }
        })
        .collect()
}

/// Reads `r` to its end through a fixed buffer, returning the byte count.
fn drain(mut r: impl Read, buf: &mut [u8]) -> usize {
    let mut total = 0;
    loop {
        match r.read(buf) {
            Ok(0) => return total,
            Ok(n) => {
                black_box(&buf[..n]);
                total += n;
            }
            Err(e) => panic!("benchmark input failed to read: {e}"),
        }
    }
}

/// sha256 of 64 MiB in one call: the floor for verification.
#[divan::bench(sample_count = 10)]
fn sha256_64mib(bencher: Bencher) {
    let data = payload(BLOB);
    bencher
        .counter(BytesCount::new(BLOB))
        .bench(|| Digest::sha256(black_box(&data)));
}

/// A verified read of a 64 MiB blob through a 256 KiB buffer (size and digest checked at the end).
#[divan::bench(sample_count = 10)]
fn verified_read_64mib(bencher: Bencher) {
    let data = payload(BLOB);
    let digest = Digest::sha256(&data);
    let mut buf = vec![0u8; BUF];
    bencher.counter(BytesCount::new(BLOB)).bench_local(|| {
        let mut reader = VerifiedReader::new(&data[..], digest.clone(), BLOB as u64, "bench blob");
        assert_eq!(drain(&mut reader, &mut buf), BLOB);
        assert!(reader.is_verified());
    });
}

/// Decoding a gzip layer of 16 MiB (uncompressed) with the decoder verify and unpack use.
#[divan::bench(sample_count = 10)]
fn gzip_decode_16mib(bencher: Bencher) {
    let raw = payload(16 << 20);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&raw).expect("gzip into memory");
    let gz = enc.finish().expect("gzip into memory");
    let mut buf = vec![0u8; BUF];
    bencher.counter(BytesCount::new(raw.len())).bench_local(|| {
        let d = decoder(Compression::Gzip, &gz[..]).expect("decoder");
        assert_eq!(drain(d, &mut buf), raw.len());
    });
}

/// Reading every entry (header and content) of a tar of 2,000 small files: the parsing half of
/// applying a layer.
#[divan::bench(sample_count = 20)]
fn tar_entries_2000(bencher: Bencher) {
    const FILES: usize = 2000;
    let mut builder = tar::Builder::new(Vec::new());
    let content = payload(3000);
    for i in 0..FILES {
        let mut header = tar::Header::new_gnu();
        header.set_size((i % 3000) as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(
                &mut header,
                format!("usr/share/doc/pkg{}/file{i}.txt", i % 97),
                &content[..i % 3000],
            )
            .expect("tar into memory");
    }
    let archive = builder.into_inner().expect("tar into memory");
    let mut buf = vec![0u8; 64 << 10];
    bencher.counter(ItemsCount::new(FILES)).bench_local(|| {
        let mut ar = tar::Archive::new(&archive[..]);
        let mut n = 0;
        for entry in ar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            black_box(entry.path().expect("path"));
            drain(&mut entry, &mut buf);
            n += 1;
        }
        assert_eq!(n, FILES);
    });
}

/// An OCI manifest of `layers` gzip layers with an annotation each, as registries serve them.
fn manifest_json(layers: usize) -> Vec<u8> {
    let layer = |i: usize| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{:064x}","size":{},"annotations":{{"org.example.layer":"{i}"}}}}"#,
            i + 1,
            1000 + i * 7919
        )
    };
    let layers: Vec<String> = (0..layers).map(layer).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{:064x}","size":1469}},"layers":[{}],"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
        0xc0f1_u64,
        layers.join(",")
    )
    .into_bytes()
}

/// An OCI index of `n` platform manifests.
fn index_json(n: usize) -> Vec<u8> {
    let arches = [
        "amd64", "arm64", "arm", "ppc64le", "s390x", "386", "riscv64", "mips64le",
    ];
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{:064x}","size":{},"platform":{{"architecture":"{}","os":"linux"}}}}"#,
                i + 100,
                500 + i,
                arches[i % arches.len()]
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

/// `Document::detect` (digest, probe, media type) then `manifest()`, for manifests of 1..50 layers.
#[divan::bench(args = [1, 10, 50])]
fn manifest_detect_and_parse(bencher: Bencher, layers: usize) {
    let bytes = manifest_json(layers);
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench_local(|| {
            let doc = Document::detect(black_box(bytes.clone())).expect("valid manifest");
            let manifest = doc.manifest().expect("valid manifest");
            assert_eq!(manifest.layers().len(), layers);
        });
}

/// `Document::detect` then `index()` for an index of 8 platforms.
#[divan::bench]
fn index_detect_and_parse(bencher: Bencher) {
    let bytes = index_json(8);
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench_local(|| {
            let doc = Document::detect(black_box(bytes.clone())).expect("valid index");
            assert_eq!(doc.index().expect("valid index").manifests().len(), 8);
        });
}
