//! Layer compression: sniffing, and streaming decoders for gzip (all members), zstd and plain tar.
//!
//! Decoders read the compressed stream to its true end; callers still drain the underlying verified
//! reader afterwards, so the blob digest always covers every byte of the blob and never more.

use std::io::{BufReader, Read};

pub use crate::media_type::Compression;

/// Detects compression from the first bytes of a stream (gzip and zstd magic numbers).
pub fn sniff(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A streaming decoder for `compression` over `reader`.
pub fn decoder<'a>(
    compression: Compression,
    reader: impl Read + Send + 'a,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 << 10,
            reader,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(
            BufReader::with_capacity(256 << 10, reader),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn multi_member_gzip_reads_every_member() {
        let mut all = Vec::new();
        for part in [b"hello ".as_slice(), b"world"] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            all.extend(e.finish().unwrap());
        }
        assert_eq!(sniff(&all), Compression::Gzip);
        let mut out = String::new();
        decoder(Compression::Gzip, &all[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn zstd_round_trip_and_sniff() {
        let z = zstd::encode_all(&b"layer bytes"[..], 3).unwrap();
        assert_eq!(sniff(&z), Compression::Zstd);
        let mut out = Vec::new();
        decoder(Compression::Zstd, &z[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"layer bytes");
        assert_eq!(sniff(b"ustar"), Compression::None);
    }
}
