//! Writing a [`Diff`] as a layer blob: tar entries in plan order (PAX records for long names, large ids
//! and xattrs), through a hashing writer for the diff_id, a compressor, and a hashing writer for the blob
//! digest. Memory stays flat: file contents stream from the upper tree.
//!
//! Output depends only on the trees and the options: entries are in path order, owner names are left
//! empty, timestamps are whole seconds (optionally clamped or fixed), and compression output does not
//! depend on the number of threads. With [`MtimePolicy::Clamp`] or [`MtimePolicy::Fixed`] two runs over
//! trees with the same content give the same bytes.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Diff, FileType, LayerEntry, Meta};
use crate::cancel::CancelToken;
use crate::compress::{self, EncodeOptions};
use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result, from_io};
use crate::media_type::{self, Compression};
use crate::progress::{Event, Sink, StepWriter, emit};

/// How entry modification times are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtimePolicy {
    /// As found in the upper tree (whole seconds).
    #[default]
    Keep,
    /// Times later than this (seconds since the epoch) are written as this: `SOURCE_DATE_EPOCH`.
    Clamp(i64),
    /// Every entry gets this time.
    Fixed(i64),
}

impl MtimePolicy {
    fn apply(self, mtime: i64) -> u64 {
        let t = match self {
            MtimePolicy::Keep => mtime,
            MtimePolicy::Clamp(e) => mtime.min(e),
            MtimePolicy::Fixed(t) => t,
        };
        t.clamp(0, MAX_OCTAL_11) as u64
    }
}

/// Options for writing a layer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// Compression level (gzip 1-9, zstd 1-22); `None` for the default.
    pub level: Option<u32>,
    /// Entry modification times.
    pub mtime: MtimePolicy,
    /// Write every entry with this owner instead of its own.
    pub uid: Option<u32>,
    /// Write every entry with this group instead of its own.
    pub gid: Option<u32>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            level: None,
            mtime: MtimePolicy::Keep,
            uid: None,
            gid: None,
        }
    }
}

/// A written layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the blob as written (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    /// The compression used.
    pub compression: Compression,
}

impl LayerBlob {
    /// The OCI layer media type for this blob.
    pub fn media_type(&self) -> &'static str {
        media_type::oci_layer(self.compression)
    }

    /// A descriptor pointing at this blob.
    pub fn descriptor(&self) -> crate::descriptor::Descriptor {
        crate::descriptor::new_descriptor(self.media_type(), &self.digest, self.size)
    }
}

const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: i64 = 0o77777777777;
const NAME_LEN: usize = 100;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Streams the layer for `diff` into `out` (which is flushed, not synced). Returns its digests.
///
/// The tar is built on a scoped thread and flows through a pipe into [`compress::encode`], the one
/// encoder the crate has (block-parallel gzip, multithreaded zstd), so building and compressing overlap.
pub fn write_layer<W: Write + Send>(diff: &Diff, out: W, opts: &LayerOptions) -> Result<LayerBlob> {
    write_layer_reporting(diff, out, opts, &None)
}

/// [`write_layer`], reporting to `progress` an [`Event::Step`] with the estimated tar size, then
/// [`Event::StepProgress`] as the tar is built.
pub fn write_layer_reporting<W: Write + Send>(
    diff: &Diff,
    out: W,
    opts: &LayerOptions,
    progress: &Option<Sink>,
) -> Result<LayerBlob> {
    write_layer_into(diff, out, None, opts, progress, &CancelToken::default())
}

/// [`write_layer_reporting`] into `out`, the file at `dest` (named by a failure to write it).
pub(crate) fn write_layer_into<W: Write + Send>(
    diff: &Diff,
    out: W,
    dest: Option<&Path>,
    opts: &LayerOptions,
    progress: &Option<Sink>,
    cancel: &CancelToken,
) -> Result<LayerBlob> {
    let plan = diff.plan();
    diff.check_owners(&plan)?;
    if progress.is_some() {
        emit(
            progress,
            Event::Step {
                name: format!(
                    "writing the layer ({} {})",
                    plan.len(),
                    if plan.len() == 1 { "entry" } else { "entries" }
                ),
                total: Some(estimate_tar_size(&plan)),
            },
        );
    }
    let what = || match dest {
        Some(p) => format!("the layer into {}", p.display()),
        None => "the layer".into(),
    };
    encode_layer(out, opts, progress, &what, |tar_side| {
        let mut builder = tar::Builder::new(tar_side);
        for entry in diff.markers() {
            cancel.check()?;
            append_entry(&mut builder, diff, entry, None, opts)?;
        }
        for entry in plan {
            cancel.check()?;
            append_entry(&mut builder, diff, &entry, diff.prefix(), opts)?;
        }
        builder
            .finish()
            .map_err(|e| from_io(e, || "finishing the layer tar".into()))
    })
}

/// The one pipeline that makes a layer blob (append, repack, diff, flatten): `produce` writes the
/// uncompressed tar on its own thread, hashed for the diff_id as it goes; the tar reaches the
/// compressor as whole blocks moved through an in-process pipe ([`compress::block_pipe`]), so
/// building and compressing overlap on every core; the blob is hashed for its digest as `out`
/// receives it. `what` names the blob in an error ("the layer into PATH").
pub(crate) fn encode_layer<W: Write + Send>(
    out: W,
    opts: &LayerOptions,
    progress: &Option<Sink>,
    what: &(dyn Fn() -> String + Sync),
    produce: impl FnOnce(&mut dyn Write) -> Result<()> + Send,
) -> Result<LayerBlob> {
    let encode = EncodeOptions {
        compression: opts.compression,
        level: opts.level.map(|l| l as i32),
        threads: 0,
    };
    let (writer, blocks) = compress::block_pipe(&encode);
    let mut blob_side = HashingWriter::new(out, Algorithm::Sha256);
    let (produced, encoded) = std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<(Digest, u64)> {
            let mut tar_side =
                HashingWriter::new(StepWriter::new(writer, progress.clone()), Algorithm::Sha256);
            produce(&mut tar_side)?;
            let (metered, diff_id, tar_size) = tar_side.finish();
            metered
                .into_inner()
                .finish()
                .map_err(|e| from_io(e, || format!("writing {}", what())))?;
            Ok((diff_id, tar_size))
        });
        // When encoding fails, its end of the pipe is gone and the producer's next write fails too.
        let encoded = compress::encode_blocks(&encode, blocks, &mut blob_side);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(Error::Other(format!(
                "the tar builder of {} panicked",
                what()
            )))
        });
        (produced, encoded)
    });
    // The first error of either stage is the one reported: an encoder that failed (a full disk)
    // stopped taking blocks, so the producer's error is then only its consequence; a producer that
    // failed ended the input early, which the encoder reports as UnexpectedEof.
    let (diff_id, tar_size) = match (produced, encoded) {
        (Err(e), Err(enc)) if enc.kind() == io::ErrorKind::UnexpectedEof => return Err(e),
        (_, Err(e)) => return Err(from_io(e, || format!("compressing {}", what()))),
        (produced, Ok(_)) => produced?,
    };
    let (mut out, digest, size) = blob_side.finish();
    out.flush().ctx(|| format!("writing {}", what()))?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size,
        tar_size,
        compression: opts.compression,
    })
}

/// About how many bytes the tar of `plan` takes: a header per entry, file contents in 512-byte
/// blocks, the two end blocks (PAX records for long names and xattrs come on top).
fn estimate_tar_size(plan: &[LayerEntry]) -> u64 {
    let content: u64 = plan
        .iter()
        .map(|e| match e {
            LayerEntry::Write { meta, .. } if meta.file_type == super::FileType::Regular => {
                meta.size.div_ceil(512) * 512
            }
            _ => 0,
        })
        .sum();
    content + 512 * plan.len() as u64 + 1024
}

/// Writes the layer for `diff` to the file `path` by [`crate::durable::Output`]'s rule: a temp file
/// beside it, fsynced, renamed into place (a FIFO, device or symlink is written through).
pub fn write_layer_file(diff: &Diff, path: &Path, opts: &LayerOptions) -> Result<LayerBlob> {
    let out = crate::durable::Output::create(path)?;
    let file = out
        .file()
        .try_clone()
        .ctx(|| format!("opening {} for writing", path.display()))?;
    let blob = write_layer_into(diff, file, Some(path), opts, &None, &CancelToken::default())?;
    out.commit()?;
    Ok(blob)
}

/// A PAX record: `"%d %s=%s\n"`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A reader of exactly `size` bytes from a file that may change while it is read.
struct Exact<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while it was being written into the layer",
                    self.path.display()
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Writes one header (with a PAX header before it when needed) and its data.
#[allow(clippy::too_many_arguments)]
fn append_raw<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &[u8],
    kind: tar::EntryType,
    meta: Option<&Meta>,
    link: Option<&[u8]>,
    size: u64,
    data: &mut dyn Read,
    opts: &LayerOptions,
) -> Result<()> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    let header = entry_header(name, kind, meta, link, size, opts)?;
    let out = builder.get_mut();
    out.write_all(&header)
        .map_err(|e| from_io(e, || format!("writing the header of {}", shown())))?;
    let len = copy_data(data, out)
        .map_err(|e| from_io(e, || format!("writing {} into the layer", shown())))?;
    pad(out, len).map_err(|e| from_io(e, || format!("writing {} into the layer", shown())))
}

/// Copies an entry's data through a reused 256 KiB buffer per thread (`io::copy`'s 8 KiB one made
/// a read system call per 8 KiB of every file).
fn copy_data(data: &mut dyn Read, out: &mut dyn Write) -> io::Result<u64> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 << 10]);
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut total = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
    })
}

/// Writes the zeros that complete an entry's data of `len` bytes to a 512-byte block.
pub(crate) fn pad(out: &mut dyn Write, len: u64) -> io::Result<()> {
    let rest = (512 - len % 512) % 512;
    out.write_all(&[0u8; 512][..rest as usize])
}

/// The header blocks of one tar entry (a PAX extended header with its records first, when a long
/// name, a large id or size, or xattrs need one), to be followed by `size` bytes of data and
/// [`pad`]ding: the one tar entry writer, behind layers and exports. Whole-second times as
/// `opts.mtime` says; owner names empty.
pub(crate) fn entry_header(
    name: &[u8],
    kind: tar::EntryType,
    meta: Option<&Meta>,
    link: Option<&[u8]>,
    size: u64,
    opts: &LayerOptions,
) -> Result<Vec<u8>> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    let mut bytes = Vec::with_capacity(512);
    let mut pax = Vec::new();
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    let (mode, uid, gid, mtime) = match meta {
        Some(m) => (
            m.mode,
            opts.uid.unwrap_or(m.uid),
            opts.gid.unwrap_or(m.gid),
            opts.mtime.apply(m.mtime),
        ),
        None => (
            0o644,
            opts.uid.unwrap_or(0),
            opts.gid.unwrap_or(0),
            opts.mtime.apply(0),
        ),
    };
    header.set_mode(mode);
    header.set_mtime(mtime);
    for (key, id, setter) in [
        (
            "uid",
            uid,
            tar::Header::set_uid as fn(&mut tar::Header, u64),
        ),
        ("gid", gid, tar::Header::set_gid),
    ] {
        if u64::from(id) > MAX_OCTAL_7 {
            pax_record(&mut pax, key.as_bytes(), id.to_string().as_bytes());
            setter(&mut header, 0);
        } else {
            setter(&mut header, u64::from(id));
        }
    }
    if size > MAX_OCTAL_11 as u64 {
        pax_record(&mut pax, b"size", size.to_string().as_bytes());
        header.set_size(0);
    } else {
        header.set_size(size);
    }
    {
        let old = header.as_old_mut();
        if name.len() > NAME_LEN {
            pax_record(&mut pax, b"path", name);
        }
        set_bytes(&mut old.name, name);
        if let Some(link) = link {
            if link.len() > NAME_LEN {
                pax_record(&mut pax, b"linkpath", link);
            }
            set_bytes(&mut old.linkname, link);
        }
    }
    if let Some((major, minor)) = meta.and_then(|m| m.device) {
        header
            .set_device_major(major)
            .and_then(|_| header.set_device_minor(minor))
            .map_err(|e| Error::io(format!("device numbers of {}", shown()), e))?;
    }
    if let Some(m) = meta {
        for (k, v) in &m.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k.as_bytes());
            if key.contains(&b'=') {
                return Err(Error::Other(format!(
                    "{}: xattr name {:?} contains '=', which a PAX record cannot carry",
                    shown(),
                    k
                )));
            }
            pax_record(&mut pax, &key, v);
        }
    }
    if !pax.is_empty() {
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        let mut xname = b"PaxHeaders/".to_vec();
        xname.extend_from_slice(&name[name.len().saturating_sub(NAME_LEN - 11)..]);
        set_bytes(&mut x.as_old_mut().name, &xname);
        x.set_mode(0o644);
        x.set_mtime(mtime);
        x.set_size(pax.len() as u64);
        x.set_cksum();
        bytes.extend_from_slice(x.as_bytes());
        bytes.extend_from_slice(&pax);
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    }
    header.set_cksum();
    bytes.extend_from_slice(header.as_bytes());
    Ok(bytes)
}

fn path_bytes(path: &Path, dir: bool) -> Vec<u8> {
    let mut b = path.as_os_str().as_bytes().to_vec();
    if dir {
        b.push(b'/');
    }
    b
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    diff: &Diff,
    entry: &LayerEntry,
    prefix: Option<&Path>,
    opts: &LayerOptions,
) -> Result<()> {
    let upper = diff.upper_root();
    let empty = &mut io::empty();
    // The name in the layer: under `prefix` when the tree is placed below the image root.
    let placed = |p: &Path| match prefix {
        Some(pre) if p == Path::new(".") || p.as_os_str().is_empty() => pre.to_path_buf(),
        Some(pre) => pre.join(p),
        None => p.to_path_buf(),
    };
    match entry {
        LayerEntry::Whiteout { path } => {
            let name = path
                .file_name()
                .ok_or_else(|| Error::Other(format!("cannot white out {}", path.display())))?;
            let mut wh = WHITEOUT.as_bytes().to_vec();
            wh.extend_from_slice(name.as_bytes());
            let full = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => {
                    placed(p).join(std::ffi::OsStr::from_bytes(&wh))
                }
                _ if prefix.is_some() => {
                    placed(Path::new("")).join(std::ffi::OsStr::from_bytes(&wh))
                }
                _ => PathBuf::from(std::ffi::OsStr::from_bytes(&wh)),
            };
            append_raw(
                builder,
                &path_bytes(&full, false),
                tar::EntryType::Regular,
                None,
                None,
                0,
                empty,
                opts,
            )
        }
        LayerEntry::Opaque { dir } => append_raw(
            builder,
            &path_bytes(&placed(dir).join(OPAQUE), false),
            tar::EntryType::Regular,
            None,
            None,
            0,
            empty,
            opts,
        ),
        LayerEntry::Hardlink { path, target } => {
            // The metadata the diff computed (owners mapped back), not a second look at the tree.
            let meta = diff.upper_meta(path).cloned().ok_or_else(|| {
                Error::Other(format!("{}: a hardlink not in the diff", path.display()))
            })?;
            append_raw(
                builder,
                &path_bytes(&placed(path), false),
                tar::EntryType::Link,
                Some(&meta),
                Some(&path_bytes(&placed(target), false)),
                0,
                empty,
                opts,
            )
        }
        LayerEntry::Write { path, meta } => {
            let name = path_bytes(&placed(path), meta.file_type == FileType::Dir);
            match meta.file_type {
                FileType::Regular => {
                    // Never following a symlink, and only the very inode the diff saw.
                    let file = super::walk::open_in_tree(upper, path, Some(meta))?;
                    let mut data = Exact {
                        inner: file,
                        left: meta.size,
                        path: upper.join(path),
                    };
                    append_raw(
                        builder,
                        &name,
                        tar::EntryType::Regular,
                        Some(meta),
                        None,
                        meta.size,
                        &mut data,
                        opts,
                    )
                }
                FileType::Symlink => {
                    let target = meta
                        .link_target
                        .as_ref()
                        .map(|t| t.as_os_str().as_bytes().to_vec())
                        .unwrap_or_default();
                    append_raw(
                        builder,
                        &name,
                        tar::EntryType::Symlink,
                        Some(meta),
                        Some(&target),
                        0,
                        empty,
                        opts,
                    )
                }
                other => {
                    let kind = match other {
                        FileType::Dir => tar::EntryType::Directory,
                        FileType::CharDevice => tar::EntryType::Char,
                        FileType::BlockDevice => tar::EntryType::Block,
                        FileType::Fifo => tar::EntryType::Fifo,
                        // Sockets are filtered out by the plan; tar has no type for them.
                        _ => return Ok(()),
                    };
                    append_raw(builder, &name, kind, Some(meta), None, 0, empty, opts)
                }
            }
        }
    }
}
