//! GNU tar's PAX sparse formats, as GNU tar restores them: 0.0 (`GNU.sparse.offset`/`numbytes`
//! records), 0.1 (`GNU.sparse.map`) and 1.0 (`GNU.sparse.major=1`, `minor=0`, the map as decimal
//! lines at the start of the data, padded to 512 bytes). The entry's ustar name
//! (`GNUSparseFile.N/name`) is a placeholder: the file is `GNU.sparse.name` (or the PAX path), of
//! `GNU.sparse.realsize` (or `GNU.sparse.size`) bytes, holes reading as zeros.

use std::io::{self, Read};

/// Most map entries accepted (GNU tar writes one per data region).
const MAX_REGIONS: usize = 1 << 20;

/// The `GNU.sparse.*` records of one entry.
#[derive(Debug, Default)]
pub(crate) struct PaxSparse {
    major: Option<Vec<u8>>,
    minor: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    realsize: Option<Vec<u8>>,
    size: Option<Vec<u8>>,
    map: Option<Vec<u8>>,
    offsets: Vec<Vec<u8>>,
    numbytes: Vec<Vec<u8>>,
}

/// Why a sparse map could not be read.
pub(crate) enum MapError {
    Io(io::Error),
    Bad(String),
}

fn number(what: &str, v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "PAX sparse {what} {:?} is not a number",
                String::from_utf8_lossy(v)
            )
        })
}

impl PaxSparse {
    /// Takes one record (`key` without its `GNU.sparse.` prefix).
    pub(crate) fn record(&mut self, key: &[u8], value: &[u8]) {
        let v = Some(value.to_vec());
        match key {
            b"major" => self.major = v,
            b"minor" => self.minor = v,
            b"name" => self.name = v,
            b"realsize" => self.realsize = v,
            b"size" => self.size = v,
            b"map" => self.map = v,
            b"offset" => self.offsets.push(value.to_vec()),
            b"numbytes" => self.numbytes.push(value.to_vec()),
            _ => {}
        }
    }

    fn v1(&self) -> bool {
        self.major.as_deref() == Some(b"1") && self.minor.as_deref() == Some(b"0")
    }

    /// True when the records describe a sparse file.
    pub(crate) fn is_sparse(&self) -> bool {
        self.v1() || self.map.is_some() || !self.offsets.is_empty()
    }

    /// The real name (when recorded) and size.
    pub(crate) fn header(&self) -> Result<(Option<Vec<u8>>, u64), String> {
        let size = match (&self.realsize, &self.size) {
            (Some(v), _) => number("realsize", v)?,
            (None, Some(v)) => number("size", v)?,
            (None, None) => return Err("PAX sparse file without its real size".into()),
        };
        Ok((self.name.clone(), size))
    }

    /// The data regions (offset, length), reading a 1.0 map from the start of `data` (whose stored
    /// size is `stored`). Checks that the regions are in order, inside `real` bytes, and that their
    /// lengths add up to the data that follows the map.
    pub(crate) fn map(
        &self,
        data: &mut impl Read,
        stored: u64,
        real: u64,
    ) -> Result<Vec<(u64, u64)>, MapError> {
        let bad = |s: String| MapError::Bad(s);
        let mut numbers: Vec<u64> = Vec::new();
        let mut map_bytes = 0u64;
        if self.v1() {
            let mut line = Vec::new();
            let mut count: Option<u64> = None;
            let mut byte = [0u8; 1];
            loop {
                if count.is_some_and(|c| numbers.len() as u64 == c * 2) {
                    break;
                }
                match data.read(&mut byte) {
                    Ok(0) => return Err(bad("PAX sparse map ends early".into())),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(MapError::Io(e)),
                }
                map_bytes += 1;
                if byte[0] != b'\n' {
                    if line.len() >= 20 {
                        return Err(bad("PAX sparse map has a number too long".into()));
                    }
                    line.push(byte[0]);
                    continue;
                }
                let n = number("map entry", &line).map_err(bad)?;
                line.clear();
                match count {
                    None if n as usize > MAX_REGIONS => {
                        return Err(bad(format!("PAX sparse map of {n} regions")));
                    }
                    None => count = Some(n),
                    Some(_) => numbers.push(n),
                }
            }
            // The map is padded to a 512-byte block.
            let pad = (512 - map_bytes % 512) % 512;
            let skipped = io::copy(&mut data.take(pad), &mut io::sink()).map_err(MapError::Io)?;
            if skipped != pad {
                return Err(bad("PAX sparse map ends early".into()));
            }
            map_bytes += pad;
        } else if let Some(map) = &self.map {
            for part in map.split(|&b| b == b',').filter(|p| !p.is_empty()) {
                if numbers.len() >= 2 * MAX_REGIONS {
                    return Err(bad("PAX sparse map too long".into()));
                }
                numbers.push(number("map entry", part).map_err(bad)?);
            }
        } else {
            if self.offsets.len() != self.numbytes.len() {
                return Err(bad("PAX sparse offsets and numbytes do not pair up".into()));
            }
            for (o, n) in self.offsets.iter().zip(&self.numbytes) {
                numbers.push(number("offset", o).map_err(bad)?);
                numbers.push(number("numbytes", n).map_err(bad)?);
            }
        }
        if !numbers.len().is_multiple_of(2) {
            return Err(bad("PAX sparse map has an odd number of entries".into()));
        }
        let mut regions = Vec::with_capacity(numbers.len() / 2);
        let (mut end, mut total) = (0u64, 0u64);
        for pair in numbers.chunks(2) {
            let (off, len) = (pair[0], pair[1]);
            let stop = off
                .checked_add(len)
                .filter(|&s| off >= end && s <= real)
                .ok_or_else(|| bad(format!("PAX sparse region {off}+{len} is out of order or past the file's {real} bytes")))?;
            end = stop;
            total += len;
            regions.push((off, len));
        }
        if map_bytes.checked_add(total) != Some(stored) {
            return Err(bad(format!(
                "PAX sparse regions hold {total} bytes but the entry stores {}",
                stored.saturating_sub(map_bytes)
            )));
        }
        Ok(regions)
    }
}

/// The file a sparse entry stands for: its regions' data at their offsets, zeros between, `real`
/// bytes in all.
pub(crate) struct Expand<'r, R> {
    data: &'r mut R,
    regions: std::vec::IntoIter<(u64, u64)>,
    /// Current (offset, length) being read, and how much of it is left.
    current: Option<(u64, u64)>,
    pos: u64,
    real: u64,
}

impl<'r, R: Read> Expand<'r, R> {
    pub(crate) fn new(data: &'r mut R, regions: Vec<(u64, u64)>, real: u64) -> Self {
        Expand {
            data,
            regions: regions.into_iter(),
            current: None,
            pos: 0,
            real,
        }
    }
}

impl<R: Read> Read for Expand<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos >= self.real || buf.is_empty() {
                return Ok(0);
            }
            let (off, left) = match self.current {
                Some(c) => c,
                None => match self.regions.next() {
                    Some(r) => {
                        self.current = Some(r);
                        r
                    }
                    None => (self.real, 0),
                },
            };
            if self.pos < off {
                // A hole.
                let n = ((off - self.pos).min(buf.len() as u64)) as usize;
                buf[..n].fill(0);
                self.pos += n as u64;
                return Ok(n);
            }
            if left == 0 {
                self.current = None;
                if off >= self.real {
                    return Ok(0);
                }
                continue;
            }
            let want = (left.min(buf.len() as u64)) as usize;
            let n = self.data.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "sparse file data ends early",
                ));
            }
            self.pos += n as u64;
            self.current = Some((self.pos, left - n as u64));
            return Ok(n);
        }
    }
}
