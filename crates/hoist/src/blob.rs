//! The verified blob reader: counts and hashes while streaming, and fails on a size or digest mismatch.
//!
//! It never returns a byte past the declared size, and reports the mismatch (with both digests) at the
//! point where the stream would otherwise end, so a consumer that reads to EOF has verified the blob.

use std::io::{self, Read};

use crate::descriptor::{Descriptor, digest_of};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result, from_io, to_io};

/// Fills `buf` from `r` as far as the stream goes (retrying interrupted reads); returns the bytes read,
/// short only at the end of the stream. Readers of network or decoder streams return a few KiB per
/// call: callers that want whole blocks (chunks, gzip blocks, sniffed prefixes) gather them here.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader that yields exactly `size` bytes of `inner` and checks them against `digest`.
///
/// Errors surface as [`io::Error`]s that wrap a hoist [`Error`] ([`Error::SizeMismatch`] or
/// [`Error::DigestMismatch`]); [`crate::error::from_io`] unwraps them.
///
/// ```
/// use std::io::Read;
/// use hoist::{Digest, VerifiedReader};
/// let data = b"hello";
/// let mut reader = VerifiedReader::new(&data[..], Digest::sha256(data), 5, "greeting");
/// let mut out = Vec::new();
/// reader.read_to_end(&mut out).expect("size and digest match");
/// assert!(reader.is_verified());
///
/// let mut bad = VerifiedReader::new(&b"jello"[..], Digest::sha256(data), 5, "greeting");
/// assert!(bad.read_to_end(&mut Vec::new()).is_err()); // the last read fails: digest mismatch
/// ```
pub struct VerifiedReader<R> {
    inner: R,
    expected: Digest,
    size: u64,
    read: u64,
    hasher: Option<Hasher>,
    what: String,
    verified: bool,
}

impl<R: Read> VerifiedReader<R> {
    /// Wraps `inner`, which should yield the blob with `digest` and `size`; `what` names it in errors.
    pub fn new(inner: R, digest: Digest, size: u64, what: impl Into<String>) -> Self {
        VerifiedReader {
            inner,
            hasher: Some(digest.algorithm().hasher()),
            expected: digest,
            size,
            read: 0,
            what: what.into(),
            verified: false,
        }
    }

    /// Wraps `inner` to be checked against a descriptor.
    pub fn for_descriptor(inner: R, desc: &Descriptor, what: impl Into<String>) -> Result<Self> {
        Ok(Self::new(inner, digest_of(desc)?, desc.size(), what))
    }

    /// The digest the blob must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// The size the blob must have.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes returned so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// True once the whole blob has been read and matched its digest.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// Reads (and discards) whatever is left, so the whole blob is verified.
    pub fn finish(&mut self) -> Result<()> {
        io::copy(self, &mut io::sink())
            .map_err(|e| from_io(e, || format!("reading {}", self.what)))?;
        Ok(())
    }

    fn check_end(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        // The blob must end exactly here: anything more is a size mismatch, not extra content.
        let mut probe = [0u8; 1];
        let extra = loop {
            match self.inner.read(&mut probe) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if extra != 0 {
            return Err(to_io(Error::SizeMismatch {
                what: self.what.clone(),
                expected: self.size,
                actual: self.size + extra as u64,
            }));
        }
        let actual = self
            .hasher
            .take()
            .map(Hasher::finish)
            .unwrap_or_else(|| self.expected.clone());
        if actual != self.expected {
            return Err(to_io(Error::DigestMismatch {
                what: self.what.clone(),
                expected: self.expected.clone(),
                actual,
            }));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.size - self.read;
        if remaining == 0 {
            self.check_end()?;
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(to_io(Error::SizeMismatch {
                what: self.what.clone(),
                expected: self.size,
                actual: self.read,
            }));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads a whole small blob into memory, verified, refusing more than `max` bytes.
pub fn read_verified_to_vec(
    inner: impl Read,
    desc: &Descriptor,
    max: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if desc.size() > max {
        return Err(Error::LimitExceeded {
            what: format!("{what} ({} bytes)", desc.size()),
            limit: crate::limits::human_bytes(max),
            option: "--max-manifest-size".into(),
        });
    }
    let mut reader = VerifiedReader::for_descriptor(inner, desc, what)?;
    let mut buf = Vec::with_capacity(desc.size() as usize);
    reader
        .read_to_end(&mut buf)
        .map_err(|e| from_io(e, || format!("reading {what}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut impl Read) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)
            .map_err(|e| from_io(e, || "t".into()))?;
        Ok(v)
    }

    #[test]
    fn good_blob_reads_and_verifies() {
        let data = b"hello world".to_vec();
        let mut r = VerifiedReader::new(&data[..], Digest::sha256(&data), 11, "blob");
        assert_eq!(read_all(&mut r).unwrap(), data);
        assert!(r.is_verified());
    }

    #[test]
    fn flipped_byte_names_both_digests() {
        let data = b"hello world".to_vec();
        let mut bad = data.clone();
        bad[3] ^= 1;
        let mut r = VerifiedReader::new(&bad[..], Digest::sha256(&data), 11, "blob X");
        let err = read_all(&mut r).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{msg}");
        assert!(msg.contains(&Digest::sha256(&data).to_string()), "{msg}");
        assert!(msg.contains(&Digest::sha256(&bad).to_string()), "{msg}");
        assert!(msg.contains("blob X"));
    }

    #[test]
    fn truncated_and_too_long_are_size_mismatches() {
        let data = b"hello world".to_vec();
        let mut r = VerifiedReader::new(&data[..5], Digest::sha256(&data), 11, "blob");
        assert!(matches!(
            read_all(&mut r),
            Err(Error::SizeMismatch { actual: 5, .. })
        ));

        let mut long = data.clone();
        long.extend_from_slice(b"EXTRA");
        let mut r = VerifiedReader::new(&long[..], Digest::sha256(&data), 11, "blob");
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert!(out.len() <= 11, "never returns bytes past the size");
        assert!(matches!(
            from_io(err, || "t".into()),
            Error::SizeMismatch { .. }
        ));
    }
}
