//! Bounded tar extension headers, for every tar hoist reads (layers and archives).
//!
//! The `tar` crate reads a GNU long name (`L`), long link (`K`) or PAX (`x`) header whole into memory,
//! whatever size it declares, so a hostile archive can make a reader allocate gigabytes. [`HeaderGuard`]
//! sits under the parser and follows the archive's structure in step with it (headers, GNU sparse
//! extension blocks, the PAX `size` override), refusing an extension header larger than its cap before
//! a byte of its data is read: a long name or link beyond `--max-path-length`, a PAX header beyond
//! [`MAX_PAX_HEADER`] (Go's `archive/tar`, and so skopeo and containerd, refuse past 1 MiB too). After
//! the end-of-archive block it passes bytes through unchanged.

use std::io::{self, Read, Seek, SeekFrom};

use crate::error::{Error, to_io};
use crate::limits::{Limits, human_bytes};

/// Largest PAX extended header (`x` or `g`) accepted, as Go's `archive/tar`.
pub const MAX_PAX_HEADER: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// Follows a tar stream's headers beneath a parser and refuses oversized extension headers.
pub struct HeaderGuard<R> {
    inner: R,
    /// Logical position: bytes handed to the reader so far.
    pos: u64,
    /// Where the next header (or GNU sparse extension block) starts.
    next: u64,
    /// A header block read ahead, not yet handed out, and how much of it was.
    block: [u8; BLOCK as usize],
    served: usize,
    filled: usize,
    /// The next block is a GNU sparse extension block; its data of this size follows the last one.
    sparse_data: Option<u64>,
    /// The data of a PAX `x` header being collected (it applies its `size` to the next entry),
    /// from this offset.
    pax: Option<(u64, Vec<u8>)>,
    /// The collected PAX header waiting for the entry it describes.
    pending_pax: Option<Vec<u8>>,
    /// The end of the archive (or something the parser itself will refuse) was reached.
    done: bool,
    max_name: u64,
    what: String,
}

impl<R> HeaderGuard<R> {
    /// Guards `inner`; `what` names the archive or layer in errors.
    pub fn new(inner: R, limits: &Limits, what: &str) -> Self {
        HeaderGuard {
            inner,
            pos: 0,
            next: 0,
            block: [0; BLOCK as usize],
            served: 0,
            filled: 0,
            sparse_data: None,
            pax: None,
            pending_pax: None,
            done: false,
            // The name and its terminating NUL.
            max_name: limits.max_path_length as u64 + 1,
            what: what.to_string(),
        }
    }

    /// The reader beneath, positioned after the last byte handed out.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn too_big(&self, kind: &str, size: u64, limit: u64, option: &str) -> io::Error {
        to_io(Error::LimitExceeded {
            what: format!(
                "{kind} header of {size} bytes at offset {} of {}",
                self.pos, self.what
            ),
            limit: human_bytes(limit),
            option: option.into(),
        })
    }

    /// Looks at the block that starts at `self.next` and sets where the next one is.
    fn inspect(&mut self, len: usize) -> io::Result<()> {
        let start = self.next;
        let b = &self.block;
        if len < BLOCK as usize {
            self.done = true; // truncated: the parser reports it
            return Ok(());
        }
        if let Some(size) = self.sparse_data {
            // A GNU sparse extension block: 21 entries, then `isextended`.
            if b[504] == 0 {
                self.sparse_data = None;
                self.next = start + BLOCK + round_up(size);
            } else {
                self.next = start + BLOCK;
            }
            return Ok(());
        }
        if b.iter().all(|&x| x == 0) {
            self.done = true; // the end-of-archive block
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(b);
        let sum: u32 = b[..148]
            .iter()
            .chain(&b[156..])
            .map(|&x| u32::from(x))
            .sum::<u32>()
            + 8 * 32;
        if header.cksum().ok() != Some(sum) {
            self.done = true; // the parser refuses the header
            return Ok(());
        }
        let Ok(mut size) = header.entry_size() else {
            self.done = true;
            return Ok(());
        };
        let kind = b[156];
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let recognised = header.as_gnu().is_some() || header.as_ustar().is_some();
        // Collected PAX data of the previous `x` header.
        if let Some((_, data)) = self.pax.take() {
            self.pending_pax = Some(data);
        }
        if recognised && matches!(kind, b'L' | b'K') && size > self.max_name {
            let name = if kind == b'L' {
                "GNU long name"
            } else {
                "GNU long link"
            };
            return Err(self.too_big(name, size, self.max_name, "--max-path-length"));
        }
        if matches!(kind, b'x' | b'g') && size > MAX_PAX_HEADER {
            return Err(to_io(Error::Other(format!(
                "{}: PAX header of {size} bytes at offset {} is larger than {}; refused, as Go's \
                 archive/tar (skopeo, containerd) refuses it",
                self.what,
                self.pos,
                human_bytes(MAX_PAX_HEADER)
            ))));
        }
        if !extension && let Some(s) = self.pending_pax.as_deref().and_then(pax_size) {
            size = s;
        }
        if recognised && kind == b'x' {
            self.pax = Some((start + BLOCK, Vec::with_capacity(size as usize)));
        } else if !(recognised && matches!(kind, b'L' | b'K')) {
            // The parser hands this entry out: a PAX header applies to it and no further.
            self.pending_pax = None;
        }
        if kind == b'S' && header.as_gnu().is_some_and(|g| g.is_extended()) {
            self.sparse_data = Some(size);
            self.next = start + BLOCK;
        } else {
            self.next = start + BLOCK + round_up(size);
        }
        Ok(())
    }
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK).saturating_mul(BLOCK)
}

/// The PAX `size` record, read as the `tar` crate reads it.
fn pax_size(data: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.served < self.filled {
            let n = (self.filled - self.served).min(buf.len());
            buf[..n].copy_from_slice(&self.block[self.served..self.served + n]);
            self.served += n;
            self.pos += n as u64;
            return Ok(n);
        }
        if self.done {
            let n = self.inner.read(buf)?;
            self.pos += n as u64;
            return Ok(n);
        }
        if self.pos == self.next {
            let len = crate::blob::read_full(&mut self.inner, &mut self.block)?;
            self.filled = len;
            self.served = 0;
            self.inspect(len)?;
            return self.read(buf);
        }
        // Data: never read past the next header unseen.
        let room = self.next.saturating_sub(self.pos);
        let want = (buf.len() as u64).min(room).max(1) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if let Some((from, data)) = &mut self.pax
            && self.pos >= *from
            && self.pos - *from == data.len() as u64
        {
            data.extend_from_slice(&buf[..n]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for HeaderGuard<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let to = match to {
            SeekFrom::Current(d) => SeekFrom::Start(
                self.pos
                    .checked_add_signed(d)
                    .ok_or_else(|| io::Error::other("seek out of range"))?,
            ),
            other => other,
        };
        let pos = self.inner.seek(to)?;
        self.served = 0;
        self.filled = 0;
        self.pos = pos;
        if pos > self.next && !self.done {
            // The parser only seeks to the next header; anything else is not a tar we follow.
            tracing::debug!("{}: seek past a header, no longer followed", self.what);
            self.done = true;
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(kind: tar::EntryType, size: usize) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size as u64);
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.resize(512 + size.div_ceil(512) * 512, b'a');
        let mut f = tar::Header::new_gnu();
        f.set_path("file").unwrap();
        f.set_size(0);
        f.set_cksum();
        v.extend_from_slice(f.as_bytes());
        v.resize(v.len() + 1024, 0);
        v
    }

    fn names(data: &[u8], limits: &Limits) -> io::Result<Vec<usize>> {
        let mut a = tar::Archive::new(HeaderGuard::new(data, limits, "test"));
        let mut out = Vec::new();
        for e in a.entries()? {
            out.push(e?.path_bytes().len());
        }
        Ok(out)
    }

    #[test]
    fn long_names_are_capped_by_the_path_limit() {
        let limits = Limits::default();
        assert_eq!(
            names(&archive(tar::EntryType::GNULongName, 4000), &limits).unwrap(),
            vec![4000]
        );
        let err = names(&archive(tar::EntryType::GNULongName, 5000), &limits).unwrap_err();
        assert!(err.to_string().contains("--max-path-length"), "{err}");
        let err = names(&archive(tar::EntryType::GNULongLink, 5000), &limits).unwrap_err();
        assert!(err.to_string().contains("GNU long link"), "{err}");
    }

    #[test]
    fn seeking_over_member_data_keeps_the_guard_in_step() {
        // A member whose data the index seeks over, then an oversized long name.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(10_000);
        b.append_data(&mut h, "blob", &[1u8; 10_000][..]).unwrap();
        let mut data = b.into_inner().unwrap();
        data.truncate(data.len() - 1024);
        data.extend(archive(tar::EntryType::GNULongName, 5000));
        let guard = HeaderGuard::new(io::Cursor::new(data), &Limits::default(), "test");
        let mut a = tar::Archive::new(guard);
        let err = a
            .entries_with_seek()
            .unwrap()
            .map(|e| e.map(|_| ()))
            .collect::<io::Result<Vec<()>>>()
            .unwrap_err();
        assert!(err.to_string().contains("--max-path-length"), "{err}");
    }

    #[test]
    fn pax_headers_are_capped_and_their_size_followed() {
        let limits = Limits::default();
        let err = names(&archive(tar::EntryType::XHeader, 2 << 20), &limits).unwrap_err();
        assert!(err.to_string().contains("PAX header"), "{err}");
        // A PAX size override moves the next header: the guard follows it, so the oversized long
        // name after an entry whose ustar size (0) is overridden (600) is still seen.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_pax_extensions([("size", b"600".as_slice())])
            .unwrap();
        b.append_data(&mut h, "a", &[7u8; 600][..]).unwrap();
        let mut data = b.into_inner().unwrap();
        data.truncate(data.len() - 1024); // the end-of-archive blocks
        let mut fixed = data.clone();
        fixed.extend(archive(tar::EntryType::GNULongName, 4000));
        assert_eq!(names(&fixed, &limits).unwrap(), vec![1, 4000]);
        data.extend(archive(tar::EntryType::GNULongName, 5000));
        let err = names(&data, &limits).unwrap_err();
        assert!(err.to_string().contains("--max-path-length"), "{err}");
    }
}
