//! The bytes of one blob on their way up: read from the verified stream in pieces, with the last
//! stretch kept so that an upload that failed half-way can resume where the registry stopped.
//!
//! Memory is the resume window plus one piece, whatever the blob's size. A registry that reports
//! holding less than the window reaches back is not resumed (the caller says so).

use std::collections::VecDeque;
use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

/// A blob's bytes in pieces, rewindable within a window.
pub struct Feed<'a, R> {
    source: &'a mut R,
    /// The blob's declared size: reaching it, the source is read once more so that a verifying
    /// source checks its digest before the last piece is handed out.
    size: u64,
    piece: usize,
    window: u64,
    /// Pieces already read, contiguous, ending at `read`.
    kept: VecDeque<Bytes>,
    /// The offset of the first kept byte.
    kept_from: u64,
    /// Bytes read from the source.
    read: u64,
    /// The next byte to hand out.
    pos: u64,
}

impl<'a, R: Read> Feed<'a, R> {
    /// A feed reading `source` (of `size` bytes) in pieces of `piece` bytes, keeping at least the
    /// last `window` bytes.
    pub fn new(source: &'a mut R, size: u64, piece: usize, window: u64) -> Self {
        Feed {
            source,
            size,
            piece: piece.max(1),
            window,
            kept: VecDeque::new(),
            kept_from: 0,
            read: 0,
            pos: 0,
        }
    }

    /// The next piece, at most `max` bytes: kept bytes after a rewind, else new ones from the source.
    /// Empty at the end of the source.
    pub fn next(&mut self, max: u64) -> io::Result<Bytes> {
        let max = max.min(self.piece as u64) as usize;
        if max == 0 {
            return Ok(Bytes::new());
        }
        if self.pos < self.read {
            let mut start = self.kept_from;
            for p in &self.kept {
                let end = start + p.len() as u64;
                if self.pos < end {
                    let from = (self.pos - start) as usize;
                    let to = (from + max).min(p.len());
                    self.pos += (to - from) as u64;
                    return Ok(p.slice(from..to));
                }
                start = end;
            }
        }
        let mut buf = BytesMut::zeroed(max);
        let n = crate::blob::read_full(self.source, &mut buf)?;
        buf.truncate(n);
        if n > 0 && self.read + n as u64 == self.size {
            let mut probe = [0u8; 1];
            if self.source.read(&mut probe)? != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the blob is longer than its declared {} bytes", self.size),
                ));
            }
        }
        let piece = buf.freeze();
        if n > 0 {
            self.kept.push_back(piece.clone());
            self.read += n as u64;
            self.pos = self.read;
            self.trim();
        }
        Ok(piece)
    }

    /// Drops kept pieces no longer needed to reach `window` bytes back.
    fn trim(&mut self) {
        while let Some(front) = self.kept.front() {
            let len = front.len() as u64;
            if self.read - (self.kept_from + len) < self.window {
                break;
            }
            self.kept_from += len;
            self.kept.pop_front();
        }
    }

    /// Moves back (or forward, up to what was read) to offset `to`. Fails with the earliest offset
    /// still kept when `to` is further back than that.
    pub fn rewind(&mut self, to: u64) -> std::result::Result<(), u64> {
        if to < self.kept_from || to > self.read {
            return Err(self.kept_from);
        }
        self.pos = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn drain<R: Read>(f: &mut Feed<'_, R>, n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while (out.len() as u64) < n {
            let p = f.next(n - out.len() as u64).unwrap();
            assert!(!p.is_empty());
            out.extend_from_slice(&p);
        }
        out
    }

    #[test]
    fn pieces_respect_the_limit_and_the_end() {
        let d = data(10_000);
        let mut src = &d[..];
        let mut f = Feed::new(&mut src, 10_000, 4096, 8192);
        assert_eq!(f.next(100).unwrap().len(), 100);
        assert_eq!(f.next(u64::MAX).unwrap().len(), 4096);
        let rest = drain(&mut f, 10_000 - 4196);
        assert_eq!(rest, d[4196..]);
        assert!(f.next(10).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_source_fails_before_its_last_piece_is_handed_out() {
        let d = data(3000);
        let mut bad = d.clone();
        bad[10] ^= 1;
        let mut src =
            crate::blob::VerifiedReader::new(&bad[..], crate::Digest::sha256(&d), 3000, "blob");
        let mut f = Feed::new(&mut src, 3000, 1000, 5000);
        assert_eq!(f.next(3000).unwrap().len(), 1000);
        assert_eq!(f.next(2000).unwrap().len(), 1000);
        let err = f.next(1000).unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        // A source longer than declared fails the same way.
        let long = data(3001);
        let mut src = &long[..];
        let mut f = Feed::new(&mut src, 3000, 4096, 5000);
        assert!(f.next(3000).is_err());
    }

    #[test]
    fn rewinds_within_the_window_and_refuses_beyond_it() {
        let d = data(50_000);
        let mut src = &d[..];
        let mut f = Feed::new(&mut src, 50_000, 1000, 5000);
        let first = drain(&mut f, 20_000);
        assert_eq!(first, d[..20_000]);
        // 5000 bytes back are kept (whole pieces), 6000 are not.
        assert!(f.rewind(15_000).is_ok());
        assert_eq!(f.rewind(13_999), Err(15_000));
        // Rewound into the middle of a piece: the same bytes again, then new ones.
        f.rewind(15_500).unwrap();
        let again = drain(&mut f, 34_500);
        assert_eq!(again, d[15_500..]);
        assert!(f.rewind(50_001).is_err());
    }
}
