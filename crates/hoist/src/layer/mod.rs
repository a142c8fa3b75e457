//! Layer application: turning tar layers into a directory tree, safely.
//!
//! The work is split in two so that decompression and hashing run beside the filesystem writes:
//! [`parse_layer`] reads a (decompressed) tar stream with the `tar` crate used as a parser only and
//! emits [`Msg`]s (an entry's metadata, its data in chunks); [`apply::Applier`] receives them and does
//! every filesystem write itself, confined to the target by [`root::Root`]. [`state`] records what was
//! unpacked. `crate::unpack` connects the two halves with a bounded channel.

pub mod apply;
pub mod disk;
pub mod memtree;
pub(crate) mod read;
pub mod root;
mod sparse;
pub mod state;
pub mod stream;
pub mod target;

use std::io::Read;

use crate::error::{Error, Result, from_io};
use crate::limits::Limits;

pub use apply::{Applier, ApplyOptions, WhiteoutFormat};
pub use root::Resolver;
pub use state::{StateEntry, UnpackState};
pub use stream::LayerStream;

/// The kind of a layer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (data follows as [`Msg::Data`], then [`Msg::EndFile`]).
    Regular,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier path.
    Hardlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

/// The metadata of one layer entry, with PAX and GNU extensions already applied.
#[derive(Debug, Clone)]
pub struct EntryHead {
    /// The path as written in the layer (raw bytes, not yet checked).
    pub path: Vec<u8>,
    /// The kind.
    pub kind: EntryKind,
    /// Symlink target or hardlink target (raw bytes).
    pub link: Option<Vec<u8>>,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Owner in the image.
    pub uid: u32,
    /// Group in the image.
    pub gid: u32,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, u32),
    /// Size of a regular file's content.
    pub size: u64,
    /// Device numbers (major, minor).
    pub device: (u32, u32),
    /// Extended attributes from PAX `SCHILY.xattr.*` records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// True for GNU sparse files: all-zero blocks are left as holes.
    pub sparse: bool,
}

/// A message from the layer reader to the applier.
#[derive(Debug)]
pub enum Msg {
    /// A new layer starts; the name is used in messages.
    LayerStart(String),
    /// An entry.
    Entry(Box<EntryHead>),
    /// A chunk of the current regular file.
    Data(Vec<u8>),
    /// The current regular file is complete.
    EndFile,
    /// The layer is complete and verified.
    LayerEnd,
}

/// Counters kept by the reader across layers, for the limits that span an unpack.
#[derive(Debug, Default)]
pub struct ReadTotals {
    /// Bytes of file content seen in all layers so far.
    pub content_bytes: u64,
}

/// How many bytes of file data go in one [`Msg::Data`].
const CHUNK: usize = 256 << 10;

fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    let digits: String = frac.chars().take(9).collect();
    if !digits.is_empty() {
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    if secs < 0 && nanos > 0 {
        // -1.5 means 1.5 seconds before the epoch.
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

/// Reads one uncompressed tar layer and sends its entries to `send`. Enforces the entry, path-length
/// and total-size limits; `layer` names the layer in errors. The tar end-of-archive marker ends the
/// read: the caller drains whatever follows (so that the layer's diff_id covers it).
pub fn parse_layer<R: Read>(
    reader: R,
    layer: &str,
    limits: &Limits,
    totals: &mut ReadTotals,
    send: &mut dyn FnMut(Msg) -> Result<()>,
) -> Result<R> {
    let mut archive =
        tar::Archive::new(crate::tar_headers::HeaderGuard::new(reader, limits, layer));
    let read_err = |e: std::io::Error| from_io(e, || format!("reading {layer}"));
    let mut count: u64 = 0;
    {
        let entries = archive.entries().map_err(read_err)?;
        for entry in entries {
            let mut entry = entry.map_err(read_err)?;
            count += 1;
            if count > limits.max_entries {
                return Err(Error::LimitExceeded {
                    what: format!("number of entries in {layer}"),
                    limit: limits.max_entries.to_string(),
                    option: "--max-entries".into(),
                });
            }
            let mut path = entry.path_bytes().into_owned();
            if path.len() > limits.max_path_length {
                return Err(Error::LimitExceeded {
                    what: format!(
                        "path of {} bytes in {layer} ({}...)",
                        path.len(),
                        root::show(&path[..64.min(path.len())])
                    ),
                    limit: format!("{} bytes", limits.max_path_length),
                    option: "--max-path-length".into(),
                });
            }
            let header = entry.header();
            let et = header.entry_type();
            let kind = match et {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => EntryKind::Regular,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::Hardlink,
                tar::EntryType::Char => EntryKind::CharDevice,
                tar::EntryType::Block => EntryKind::BlockDevice,
                tar::EntryType::Fifo => EntryKind::Fifo,
                other => {
                    tracing::warn!(
                        "{layer}: skipping entry {} of unsupported tar type {:?}",
                        root::show(&path),
                        other
                    );
                    continue;
                }
            };
            let bad_header = |what: &str, e: std::io::Error| Error::UnsafeEntry {
                path: root::show(&path),
                layer: layer.to_string(),
                reason: format!("unreadable {what} in the tar header: {e}"),
            };
            // An empty numeric field (all NULs or spaces) reads as 0, as GNU tar and Go do.
            let old = header.as_old();
            let lenient = |r: std::io::Result<u64>, raw: &[u8], what: &str| match r {
                Ok(v) => Ok(v),
                Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
                Err(e) => Err(bad_header(what, e)),
            };
            let mode = lenient(header.mode().map(u64::from), &old.mode, "mode")? as u32 & 0o7777;
            let uid = lenient(header.uid(), &old.uid, "uid")?;
            let gid = lenient(header.gid(), &old.gid, "gid")?;
            let to32 = |v: u64, what: &str| {
                u32::try_from(v).map_err(|_| Error::UnsafeEntry {
                    path: root::show(&path),
                    layer: layer.to_string(),
                    reason: format!("{what} {v} does not fit 32 bits"),
                })
            };
            let (uid, gid) = (to32(uid, "uid")?, to32(gid, "gid")?);
            let mut mtime = (
                i64::try_from(lenient(header.mtime(), &old.mtime, "mtime")?).unwrap_or(0),
                0u32,
            );
            let device = match kind {
                EntryKind::CharDevice | EntryKind::BlockDevice => (
                    header
                        .device_major()
                        .map_err(|e| bad_header("device major", e))?
                        .unwrap_or(0),
                    header
                        .device_minor()
                        .map_err(|e| bad_header("device minor", e))?
                        .unwrap_or(0),
                ),
                _ => (0, 0),
            };
            let mut sparse = et.is_gnu_sparse();
            let link = match kind {
                EntryKind::Symlink | EntryKind::Hardlink => Some(
                    entry
                        .link_name_bytes()
                        .map(|c| c.into_owned())
                        .ok_or_else(|| Error::UnsafeEntry {
                            path: root::show(&path),
                            layer: layer.to_string(),
                            reason: "link without a target".into(),
                        })?,
                ),
                _ => None,
            };
            let mut xattrs = Vec::new();
            let mut pax_sparse = sparse::PaxSparse::default();
            if let Some(exts) = entry.pax_extensions().map_err(read_err)? {
                for ext in exts {
                    let ext = ext.map_err(read_err)?;
                    let key = ext.key_bytes();
                    if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    } else if key == b"mtime"
                        && let Some(t) = parse_pax_time(ext.value_bytes())
                    {
                        mtime = t;
                    } else if let Some(k) = key.strip_prefix(b"GNU.sparse.") {
                        pax_sparse.record(k, ext.value_bytes());
                    }
                }
            }
            let mut size = if kind == EntryKind::Regular {
                entry.size()
            } else {
                0
            };
            // A PAX sparse file (GNU tar's formats 0.0, 0.1 and 1.0): its real name and size, and
            // the map of its data (1.0 keeps the map at the start of the data).
            let mut sparse_map = None;
            if kind == EntryKind::Regular && pax_sparse.is_sparse() {
                let shown = root::show(&path);
                let bad = |reason: String| Error::UnsafeEntry {
                    path: shown.clone(),
                    layer: layer.to_string(),
                    reason,
                };
                let (name, real) = pax_sparse.header().map_err(bad)?;
                if let Some(name) = name {
                    path = name;
                }
                if path.len() > limits.max_path_length {
                    return Err(Error::LimitExceeded {
                        what: format!("path of {} bytes in {layer}", path.len()),
                        limit: format!("{} bytes", limits.max_path_length),
                        option: "--max-path-length".into(),
                    });
                }
                let map = pax_sparse
                    .map(&mut entry, size, real)
                    .map_err(|e| match e {
                        sparse::MapError::Io(e) => read_err(e),
                        sparse::MapError::Bad(r) => bad(r),
                    })?;
                size = real;
                sparse = true;
                sparse_map = Some(map);
            }
            // Refuse before writing when the declared size alone passes the limit (sparse files
            // can declare terabytes of holes).
            if totals.content_bytes.saturating_add(size) > limits.max_unpack_size {
                return Err(Error::LimitExceeded {
                    what: format!(
                        "total unpacked size (at {} in {layer}, {} bytes)",
                        root::show(&path),
                        size
                    ),
                    limit: crate::limits::human_bytes(limits.max_unpack_size),
                    option: "--max-size".into(),
                });
            }
            send(Msg::Entry(Box::new(EntryHead {
                path,
                kind,
                link,
                mode,
                uid,
                gid,
                mtime,
                size,
                device,
                xattrs,
                sparse,
            })))?;
            if let Some(map) = sparse_map {
                let mut chunks = sparse::Expand::new(&mut entry, map, size);
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let n = crate::blob::read_full(&mut chunks, &mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    totals.content_bytes += n as u64;
                    if totals.content_bytes > limits.max_unpack_size {
                        return Err(Error::LimitExceeded {
                            what: format!("total unpacked size (at {layer})"),
                            limit: crate::limits::human_bytes(limits.max_unpack_size),
                            option: "--max-size".into(),
                        });
                    }
                    buf.truncate(n);
                    send(Msg::Data(buf))?;
                }
                send(Msg::EndFile)?;
            } else if kind == EntryKind::Regular {
                let mut remaining = size;
                loop {
                    // Size buffers by what is left, so small files cost small allocations; sparse
                    // entries may expand past their stored size, so they read until the end.
                    let want = if remaining > 0 {
                        usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK)
                    } else if sparse {
                        CHUNK
                    } else {
                        break;
                    };
                    let mut buf = vec![0u8; want];
                    let mut filled = 0;
                    while filled < want {
                        match entry.read(&mut buf[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(read_err(e)),
                        }
                    }
                    if filled == 0 {
                        break;
                    }
                    remaining = remaining.saturating_sub(filled as u64);
                    totals.content_bytes += filled as u64;
                    if totals.content_bytes > limits.max_unpack_size {
                        return Err(Error::LimitExceeded {
                            what: format!("total unpacked size (at {layer})"),
                            limit: crate::limits::human_bytes(limits.max_unpack_size),
                            option: "--max-size".into(),
                        });
                    }
                    buf.truncate(filled);
                    send(Msg::Data(buf))?;
                    if filled < want {
                        break;
                    }
                }
                send(Msg::EndFile)?;
            }
        }
    }
    Ok(archive.into_inner().into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-file layer read by `parse_layer` into an applier (was the function's doc example
    /// before the module became crate-private).
    #[test]
    fn parse_layer_feeds_an_applier() -> Result<()> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "hi.txt", &b"hi\n"[..])
            .unwrap();
        let tar = tar.into_inner().unwrap();

        let target = tempfile::tempdir().unwrap();
        let opts = ApplyOptions {
            rootless: true,
            ..Default::default()
        };
        let mut applier = Applier::new(target.path(), opts)?;
        let mut totals = ReadTotals::default();
        parse_layer(
            &tar[..],
            "layer 1",
            &Limits::default(),
            &mut totals,
            &mut |msg| applier.apply(msg),
        )?;
        applier.finish()?;
        assert_eq!(
            std::fs::read(target.path().join("hi.txt")).unwrap(),
            b"hi\n"
        );
        Ok(())
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"7"), Some((7, 0)));
    }
}
