//! Applying layer entries to a root: whiteouts and opaque directories, replacing files by directories
//! and the reverse, hard and symbolic links, devices and fifos, owners, modes, xattrs and times, and
//! the rootless ownership record.
//!
//! Semantics follow the OCI image-spec "Applying changesets": a later entry replaces an earlier one at
//! the same path (a directory over a directory merges), `.wh.NAME` removes `NAME` from lower layers and
//! `.wh..wh..opq` hides every lower-layer child of its directory while keeping what the same layer adds.
//! Directory modes and times are applied at the end, children first, so later writes do not disturb
//! them and read-only directories can still be filled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::root::{self, Resolver, Root, join, show, split_last};
use super::{EntryHead, EntryKind, IdMap, Msg, map_id};
use crate::diff::ROOTLESS_XATTR;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhiteoutFormat {
    /// Apply them: remove what they name (the default).
    #[default]
    Apply,
    /// Keep them as overlayfs markers: a 0/0 character device for `.wh.NAME`, the
    /// `trusted.overlay.opaque=y` xattr for an opaque directory (for layered snapshotters).
    Overlay,
}

/// Options of an [`Applier`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Do not apply ownership, devices or `security.*`/`trusted.*` xattrs; record owners in
    /// `user.rootlesscontainers` instead (as umoci does). Forced when not running as root.
    pub rootless: bool,
    /// uid mappings (image -> host), applied as root; identity when empty.
    pub uid_map: Vec<IdMap>,
    /// gid mappings.
    pub gid_map: Vec<IdMap>,
    /// How whiteouts are handled.
    pub whiteout: WhiteoutFormat,
    /// Force a path resolver (tests force the userspace walk); the best available when `None`.
    pub resolver: Option<Resolver>,
    /// Top-level names a layer may not write (hoist's own bookkeeping files in a plain unpack).
    pub reserved: Vec<Vec<u8>>,
    /// A directory entry whose path is a symlink to a directory (inside the root) is applied to that
    /// directory and the symlink kept, as `umoci unpack --keep-dirlinks` (tar's
    /// `--keep-directory-symlink`); otherwise the symlink is replaced by the directory.
    pub keep_dirlinks: bool,
}

/// Deferred metadata of a directory.
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: (i64, u32),
}

/// The file being written.
struct OpenFile {
    file: File,
    head: Box<EntryHead>,
    rel: Vec<u8>,
    hasher: Hasher,
    offset: u64,
}

/// What an applier did, for reports.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Entries applied (whiteouts included).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Device nodes not created (rootless): an empty regular file stands in each place.
    pub skipped_devices: Vec<String>,
    /// Xattrs that the filesystem refused (name and path), e.g. `user.*` on tmpfs.
    pub skipped_xattrs: u64,
}

/// Applies layer entries to a root, one [`Msg`] at a time.
pub struct Applier {
    root: Root,
    opts: ApplyOptions,
    privileged: bool,
    layer: String,
    /// Paths written by the current layer, and their ancestors (kept by an opaque whiteout).
    written: HashSet<Vec<u8>>,
    dirs: BTreeMap<Vec<u8>, DirMeta>,
    digests: HashMap<(u64, u64), Digest>,
    current: Option<OpenFile>,
    /// The current regular-file entry is not written (a whiteout): its data is dropped.
    skipping: bool,
    report: ApplyReport,
    /// Directories whose mode shuts their (unprivileged) owner out, children first: [`Self::finish`]
    /// leaves them open to the owner so the tree can still be listed, [`Self::restore_modes`] closes
    /// them (umoci does the same).
    locked: Vec<(Vec<u8>, u32)>,
}

fn io_err(e: Errno) -> io::Error {
    e.into()
}

fn ts(t: (i64, u32)) -> Timespec {
    Timespec {
        tv_sec: t.0,
        tv_nsec: t.1.into(),
    }
}

/// Encodes umoci's `user.rootlesscontainers` record: uid and gid, with NoopID for 0 (the owner the
/// unprivileged user stands for).
pub fn encode_rootless(uid: u32, gid: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let noop = |id: u32| if id == 0 { u32::MAX } else { id };
    let mut out = Vec::with_capacity(12);
    out.push(0x08);
    varint(&mut out, noop(uid).into());
    out.push(0x10);
    varint(&mut out, noop(gid).into());
    out
}

impl Applier {
    /// An applier writing into the existing directory `target`.
    pub fn new(target: &Path, opts: ApplyOptions) -> Result<Applier> {
        let root = Root::open(target, opts.resolver)?;
        let privileged = !opts.rootless && rustix::process::geteuid().is_root();
        let mut opts = opts;
        if !privileged {
            opts.rootless = true;
        }
        Ok(Applier {
            root,
            opts,
            privileged,
            layer: "layer".into(),
            written: HashSet::new(),
            dirs: BTreeMap::new(),
            digests: HashMap::new(),
            current: None,
            skipping: false,
            report: ApplyReport::default(),
            locked: Vec::new(),
        })
    }

    /// True when ownership, devices and privileged xattrs are applied.
    pub fn privileged(&self) -> bool {
        self.privileged
    }

    /// The root being written.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Content digests of the regular files written, by (device, inode).
    pub fn digests(&self) -> &HashMap<(u64, u64), Digest> {
        &self.digests
    }

    /// What was done so far.
    pub fn report(&self) -> &ApplyReport {
        &self.report
    }

    /// Directories (relative path, image mode) [`Self::finish`] left open to their owner because the
    /// image's mode would lock an unprivileged owner out; children first.
    pub fn locked_dirs(&self) -> &[(Vec<u8>, u32)] {
        &self.locked
    }

    /// Gives the directories of [`Self::locked_dirs`] their image modes. Call once, after the last
    /// read of the tree (an unprivileged process cannot list them afterwards).
    pub fn restore_modes(&mut self) -> Result<()> {
        for (rel, mode) in std::mem::take(&mut self.locked) {
            let (dir, name) = split_last(&rel);
            let parent = self
                .root
                .open_dir(dir)
                .map_err(|e| self.io(&rel, "resolving", e))?;
            rustix::fs::chmodat(
                &parent,
                OsStr::from_bytes(name),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(|e| self.io(&rel, "setting the mode of", e.into()))?;
        }
        Ok(())
    }

    fn unsafe_entry(&self, path: &[u8], reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            path: show(path),
            layer: self.layer.clone(),
            reason: reason.into(),
        }
    }

    fn io(&self, path: &[u8], what: &str, e: io::Error) -> Error {
        Error::io(
            format!(
                "{what} {} in {} ({})",
                show(path),
                self.root.path().display(),
                self.layer
            ),
            e,
        )
    }

    /// Normalises an entry path: `/` and `./` prefixes and `.` components dropped; `..` refused.
    fn normalise(&self, raw: &[u8]) -> Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        for c in root::split(raw) {
            match c {
                b"." => {}
                b".." => {
                    return Err(self.unsafe_entry(raw, "the path contains `..`"));
                }
                c => {
                    if c.contains(&0) {
                        return Err(self.unsafe_entry(raw, "the path contains a NUL byte"));
                    }
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(c);
                }
            }
        }
        Ok(out)
    }

    /// Handles one message.
    pub fn apply(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::LayerStart(name) => {
                self.layer = name;
                self.written.clear();
                Ok(())
            }
            Msg::Entry(head) => {
                self.report.entries += 1;
                let regular = head.kind == EntryKind::Regular;
                self.entry(head)?;
                // A regular-file entry that opened no file (a whiteout) still has data to skip.
                self.skipping = regular && self.current.is_none();
                Ok(())
            }
            Msg::Data(_) if self.skipping => Ok(()),
            Msg::EndFile if self.skipping => {
                self.skipping = false;
                Ok(())
            }
            Msg::Data(buf) => self.data(&buf),
            Msg::EndFile => self.end_file(),
            Msg::LayerEnd => {
                if self.current.is_some() {
                    return Err(Error::Other(format!("{}: file not finished", self.layer)));
                }
                self.written.clear();
                Ok(())
            }
        }
    }

    fn mark_written(&mut self, rel: &[u8]) {
        let mut p: &[u8] = rel;
        loop {
            if !self.written.insert(p.to_vec()) {
                return;
            }
            match p.iter().rposition(|b| *b == b'/') {
                Some(i) => p = &p[..i],
                None => return,
            }
        }
    }

    fn forget_below(&mut self, rel: &[u8]) {
        self.dirs.remove(rel);
        let mut lo = rel.to_vec();
        lo.push(b'/');
        let mut hi = rel.to_vec();
        hi.push(b'/' + 1);
        let doomed: Vec<Vec<u8>> = self.dirs.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.dirs.remove(&k);
        }
    }

    /// The parent of `rel`, creating missing directories (recorded as 0755 root-owned).
    fn parent(&mut self, rel: &[u8]) -> Result<(std::rc::Rc<OwnedFd>, Vec<u8>)> {
        let mut created: Vec<Vec<u8>> = Vec::new();
        let r = self
            .root
            .parent(rel, &mut |path: &[u8]| created.push(path.to_vec()));
        for c in created {
            self.mark_written(&c);
        }
        r.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTDIR) {
                self.unsafe_entry(rel, "a parent of this path is not a directory")
            } else {
                self.io(rel, "resolving the parent of", e)
            }
        })
    }

    fn entry(&mut self, head: Box<EntryHead>) -> Result<()> {
        if self.current.is_some() {
            return Err(Error::Other(format!("{}: file not finished", self.layer)));
        }
        let rel = self.normalise(&head.path)?;
        if rel.is_empty() {
            return self.root_entry(&head);
        }
        if !self.opts.reserved.is_empty()
            && !rel.contains(&b'/')
            && self.opts.reserved.contains(&rel)
        {
            return Err(self.unsafe_entry(&rel, "the name is reserved for hoist's own records"));
        }
        let (dir, name) = split_last(&rel);
        if let Some(target) = name.strip_prefix(b".wh.") {
            return self.whiteout(dir, target, &rel);
        }
        match head.kind {
            EntryKind::Regular => self.start_file(rel, head),
            EntryKind::Dir => self.directory(rel, &head),
            EntryKind::Symlink => self.symlink(rel, &head),
            EntryKind::Hardlink => self.hardlink(rel, &head),
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                self.special(rel, &head)
            }
        }
    }

    fn root_entry(&mut self, head: &EntryHead) -> Result<()> {
        if head.kind != EntryKind::Dir {
            return Err(self.unsafe_entry(
                &head.path,
                format!(
                    "it would make the root of the tree a {:?} instead of a directory",
                    head.kind
                ),
            ));
        }
        let fd = self
            .root
            .open_dir(b"")
            .map_err(|e| self.io(b".", "opening", e))?;
        self.owner_at(fd.as_fd(), b".", head, true)?;
        // Its xattrs too (and the rootless owner record), on a readable descriptor of the root.
        let node = self.open_node(&fd, b".", b".")?;
        self.xattrs_fd(node.as_fd(), b".", head)?;
        self.dirs.insert(
            Vec::new(),
            DirMeta {
                mode: head.mode,
                mtime: head.mtime,
            },
        );
        Ok(())
    }

    fn whiteout(&mut self, dir: &[u8], target: &[u8], rel: &[u8]) -> Result<()> {
        if target == b".wh..opq" {
            return self.opaque(dir, rel);
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(self.unsafe_entry(rel, "a whiteout must name a file"));
        }
        let victim = join(dir, target);
        if self.opts.whiteout == WhiteoutFormat::Overlay {
            let (parent, name) = self.parent(&victim)?;
            self.remove_existing(&parent, &name, &victim)?;
            rustix::fs::mknodat(
                &*parent,
                OsStr::from_bytes(&name),
                FileType::CharacterDevice,
                Mode::empty(),
                0,
            )
            .map_err(|e| self.io(&victim, "creating the overlay whiteout for", e.into()))?;
            self.mark_written(&victim);
            return Ok(());
        }
        if self.written.contains(&victim) {
            // A whiteout only hides lower layers; this layer's own entry stays.
            return Ok(());
        }
        let parent = match self.root.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(());
            }
            Err(e) => return Err(self.io(rel, "resolving", e)),
        };
        root::remove_all_at(parent.as_fd(), target).map_err(|e| self.io(&victim, "removing", e))?;
        self.root.invalidate();
        self.forget_below(&victim);
        Ok(())
    }

    fn opaque(&mut self, dir: &[u8], rel: &[u8]) -> Result<()> {
        if self.opts.whiteout == WhiteoutFormat::Overlay {
            let (parent, name) = if dir.is_empty() {
                (
                    std::rc::Rc::new(
                        self.root
                            .open_dir(b"")
                            .map_err(|e| self.io(rel, "opening", e))?,
                    ),
                    b".".to_vec(),
                )
            } else {
                let (p, n) = self.parent(dir)?;
                if rustix::fs::statat(&*p, OsStr::from_bytes(&n), AtFlags::SYMLINK_NOFOLLOW)
                    .is_err()
                {
                    rustix::fs::mkdirat(&*p, OsStr::from_bytes(&n), Mode::from_raw_mode(0o755))
                        .map_err(|e| self.io(dir, "creating", e.into()))?;
                }
                (p, n)
            };
            let fd = self.open_node(&parent, &name, dir)?;
            rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|e| self.io(dir, "marking opaque", e.into()))?;
            self.mark_written(rel);
            return Ok(());
        }
        let fd = match self.root.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(());
            }
            Err(e) => return Err(self.io(rel, "resolving", e)),
        };
        let dir = dir.to_vec();
        self.clear_unwritten(fd.as_fd(), &dir)
            .map_err(|e| self.io(&dir, "clearing opaque directory", e))?;
        self.root.invalidate();
        Ok(())
    }

    /// Removes every child of the directory `fd` (at `rel`) that the current layer did not write,
    /// descending into the directories it did write.
    fn clear_unwritten(&mut self, fd: BorrowedFd<'_>, rel: &[u8]) -> io::Result<()> {
        let listing = rustix::fs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(&listing)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        for n in names {
            let child = join(rel, &n);
            if self.written.contains(&child) {
                let os = OsStr::from_bytes(&n);
                let st = rustix::fs::statat(fd, os, AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let sub = rustix::fs::openat(
                        fd,
                        os,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    self.clear_unwritten(sub.as_fd(), &child)?;
                }
            } else {
                root::remove_all_at(fd, &n)?;
                self.forget_below(&child);
            }
        }
        Ok(())
    }

    /// Removes whatever is at `name` so that a new entry can take its place.
    fn remove_existing(&mut self, parent: &OwnedFd, name: &[u8], rel: &[u8]) -> Result<()> {
        root::remove_all_at(parent.as_fd(), name).map_err(|e| self.io(rel, "replacing", e))?;
        self.root.invalidate();
        self.forget_below(rel);
        Ok(())
    }

    fn start_file(&mut self, rel: Vec<u8>, head: Box<EntryHead>) -> Result<()> {
        let (parent, name) = self.parent(&rel)?;
        let os = OsStr::from_bytes(&name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&*parent, os, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.remove_existing(&parent, &name, &rel)?;
                rustix::fs::openat(&*parent, os, flags, Mode::from_raw_mode(0o600))
                    .map_err(|e| self.io(&rel, "creating", e.into()))?
            }
            Err(e) => return Err(self.io(&rel, "creating", e.into())),
        };
        self.mark_written(&rel);
        self.current = Some(OpenFile {
            file: File::from(fd),
            head,
            rel,
            hasher: Algorithm::Sha256.hasher(),
            offset: 0,
        });
        Ok(())
    }

    fn data(&mut self, buf: &[u8]) -> Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Err(Error::Other(format!("{}: data outside a file", self.layer)));
        };
        cur.hasher.update(buf);
        let res = if cur.head.sparse {
            // Leave all-zero 4 KiB blocks as holes; the final length is set in end_file.
            let mut res = Ok(());
            for (i, block) in buf.chunks(4096).enumerate() {
                if block.iter().all(|b| *b == 0) {
                    continue;
                }
                if let Err(e) = cur.file.write_all_at(block, cur.offset + (i as u64) * 4096) {
                    res = Err(e);
                    break;
                }
            }
            res
        } else {
            cur.file.write_all(buf)
        };
        cur.offset += buf.len() as u64;
        self.report.bytes += buf.len() as u64;
        if let Err(e) = res {
            let rel = cur.rel.clone();
            return Err(self.io(&rel, "writing", e));
        }
        Ok(())
    }

    fn end_file(&mut self) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Err(Error::Other(format!("{}: end of no file", self.layer)));
        };
        let OpenFile {
            file,
            head,
            rel,
            hasher,
            offset,
        } = cur;
        if head.sparse {
            file.set_len(offset)
                .map_err(|e| self.io(&rel, "sizing", e))?;
        }
        let st = rustix::fs::fstat(&file).map_err(|e| self.io(&rel, "reading", e.into()))?;
        self.digests.insert((st.st_dev, st.st_ino), hasher.finish());
        let fd = file.as_fd();
        self.owner_fd(fd, &rel, &head)?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(head.mode))
            .map_err(|e| self.io(&rel, "setting the mode of", e.into()))?;
        self.xattrs_fd(fd, &rel, &head)?;
        let times = Timestamps {
            last_access: ts(head.mtime),
            last_modification: ts(head.mtime),
        };
        rustix::fs::futimens(fd, &times)
            .map_err(|e| self.io(&rel, "setting times of", e.into()))?;
        Ok(())
    }

    fn directory(&mut self, rel: Vec<u8>, head: &EntryHead) -> Result<()> {
        let rel = match self.opts.keep_dirlinks {
            true => self.dirlink_target(rel)?,
            false => rel,
        };
        let (parent, name) = self.parent(&rel)?;
        let os = OsStr::from_bytes(&name);
        let mut merged = false;
        match rustix::fs::mkdirat(&*parent, os, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&*parent, os, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io(&rel, "reading", e.into()))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.remove_existing(&parent, &name, &rel)?;
                    rustix::fs::mkdirat(&*parent, os, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.io(&rel, "creating", e.into()))?;
                } else {
                    merged = true;
                }
            }
            Err(e) => return Err(self.io(&rel, "creating", e.into())),
        }
        self.mark_written(&rel);
        let fd = self.open_node(&parent, &name, &rel)?;
        if merged {
            self.clear_xattrs(fd.as_fd(), &rel, head)?;
        }
        self.owner_fd(fd.as_fd(), &rel, head)?;
        self.xattrs_fd(fd.as_fd(), &rel, head)?;
        self.dirs.insert(
            rel,
            DirMeta {
                mode: head.mode,
                mtime: head.mtime,
            },
        );
        Ok(())
    }

    /// For `keep_dirlinks`: when `rel` is a symlink that resolves (inside the root) to a directory,
    /// that directory's path (the symlink is marked written, so an opaque whiteout keeps it);
    /// otherwise `rel` itself.
    fn dirlink_target(&mut self, rel: Vec<u8>) -> Result<Vec<u8>> {
        let (parent, name) = self.parent(&rel)?;
        match rustix::fs::statat(
            &*parent,
            OsStr::from_bytes(&name),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {}
            _ => return Ok(rel),
        }
        let target = match self.root.resolve_path(&rel) {
            Ok(t) if !t.is_empty() && self.root.open_dir(&t).is_ok() => t,
            // Dangling, a loop, or not a directory: replaced, as without the option.
            _ => return Ok(rel),
        };
        self.mark_written(&rel);
        Ok(target)
    }

    /// Opens a directory entry (never following a symlink) for fd-based metadata calls.
    fn open_node(&self, parent: &OwnedFd, name: &[u8], rel: &[u8]) -> Result<OwnedFd> {
        rustix::fs::openat(
            parent,
            OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io(rel, "opening", e.into()))
    }

    fn symlink(&mut self, rel: Vec<u8>, head: &EntryHead) -> Result<()> {
        let target = head.link.clone().unwrap_or_default();
        if target.is_empty() || target.contains(&0) {
            return Err(self.unsafe_entry(&rel, "symlink with an empty or NUL-containing target"));
        }
        let (parent, name) = self.parent(&rel)?;
        let os = OsStr::from_bytes(&name);
        let t = OsStr::from_bytes(&target);
        match rustix::fs::symlinkat(t, &*parent, os) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.remove_existing(&parent, &name, &rel)?;
                rustix::fs::symlinkat(t, &*parent, os)
                    .map_err(|e| self.io(&rel, "creating symlink", e.into()))?;
            }
            Err(e) => return Err(self.io(&rel, "creating symlink", e.into())),
        }
        self.mark_written(&rel);
        self.finish_node(&parent, &name, &rel, head, true)
    }

    fn hardlink(&mut self, rel: Vec<u8>, head: &EntryHead) -> Result<()> {
        let raw = head.link.clone().unwrap_or_default();
        let target = self
            .normalise(&raw)
            .map_err(|_| self.unsafe_entry(&rel, "hardlink target contains `..`"))?;
        if target.is_empty() {
            return Err(self.unsafe_entry(&rel, "hardlink to the root directory"));
        }
        if target == rel {
            return Ok(());
        }
        let (tdir, tname) = split_last(&target);
        let tparent = match self.root.open_dir(tdir) {
            Ok(fd) => fd,
            Err(e) => {
                return Err(self.unsafe_entry(
                    &rel,
                    format!("hardlink target {} cannot be found: {e}", show(&target)),
                ));
            }
        };
        let (parent, name) = self.parent(&rel)?;
        let os = OsStr::from_bytes(&name);
        let link = |p: &OwnedFd| {
            rustix::fs::linkat(&tparent, OsStr::from_bytes(tname), p, os, AtFlags::empty())
        };
        match link(&parent) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                // Linking a path to the file it already is: nothing to do.
                let a = rustix::fs::statat(
                    &tparent,
                    OsStr::from_bytes(tname),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
                let b = rustix::fs::statat(&*parent, os, AtFlags::SYMLINK_NOFOLLOW);
                if let (Ok(a), Ok(b)) = (a, b)
                    && (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
                {
                    self.mark_written(&rel);
                    return Ok(());
                }
                self.remove_existing(&parent, &name, &rel)?;
                link(&parent).map_err(|e| self.hardlink_err(&rel, &target, e))?;
            }
            Err(e) => return Err(self.hardlink_err(&rel, &target, e)),
        }
        self.mark_written(&rel);
        Ok(())
    }

    fn hardlink_err(&self, rel: &[u8], target: &[u8], e: Errno) -> Error {
        match e {
            Errno::NOENT => self.unsafe_entry(
                rel,
                format!("hardlink target {} does not exist", show(target)),
            ),
            Errno::PERM => self.unsafe_entry(
                rel,
                format!("hardlink target {} is a directory", show(target)),
            ),
            e => self.io(rel, "creating hardlink", e.into()),
        }
    }

    fn special(&mut self, rel: Vec<u8>, head: &EntryHead) -> Result<()> {
        let ft = match head.kind {
            EntryKind::Fifo => FileType::Fifo,
            EntryKind::CharDevice => FileType::CharacterDevice,
            _ => FileType::BlockDevice,
        };
        if ft != FileType::Fifo && !self.privileged {
            // As umoci: a rootless unpack cannot create the node, so an empty regular file with the
            // entry's mode, owner record and time takes its place (the trees match).
            self.report.skipped_devices.push(show(&rel));
            let mut file = Box::new(head.clone());
            file.kind = EntryKind::Regular;
            file.size = 0;
            file.sparse = false;
            self.start_file(rel, file)?;
            return self.end_file();
        }
        let (parent, name) = self.parent(&rel)?;
        let os = OsStr::from_bytes(&name);
        let dev = rustix::fs::makedev(head.device.0, head.device.1);
        let mode = Mode::from_raw_mode(head.mode & 0o777);
        match rustix::fs::mknodat(&*parent, os, ft, mode, dev) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.remove_existing(&parent, &name, &rel)?;
                rustix::fs::mknodat(&*parent, os, ft, mode, dev)
                    .map_err(|e| self.io(&rel, "creating", e.into()))?;
            }
            Err(e) => return Err(self.io(&rel, "creating", e.into())),
        }
        self.mark_written(&rel);
        self.finish_node(&parent, &name, &rel, head, false)
    }

    /// Owner, mode, xattrs and times of a node that is not opened (symlinks, fifos, devices).
    fn finish_node(
        &mut self,
        parent: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        head: &EntryHead,
        is_symlink: bool,
    ) -> Result<()> {
        let os = OsStr::from_bytes(name);
        self.owner_at(parent.as_fd(), name, head, false)?;
        if !is_symlink {
            rustix::fs::chmodat(parent, os, Mode::from_raw_mode(head.mode), AtFlags::empty())
                .map_err(|e| self.io(rel, "setting the mode of", e.into()))?;
        }
        // Metadata of a node that cannot be opened goes through its parent's /proc link, which
        // lsetxattr does not follow at the last component.
        let proc = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(parent));
        let mut path = proc.into_bytes();
        path.extend_from_slice(name);
        let path = OsStr::from_bytes(&path);
        let mut names: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (n, v) in &head.xattrs {
            if self.xattr_allowed(n) && !(is_symlink && n.starts_with(b"user.")) {
                names.push((n.clone(), v.clone()));
            }
        }
        if !self.privileged && !is_symlink && (head.uid != 0 || head.gid != 0) {
            names.push((
                ROOTLESS_XATTR.as_bytes().to_vec(),
                encode_rootless(head.uid, head.gid),
            ));
        }
        for (n, v) in names {
            if let Err(e) =
                rustix::fs::lsetxattr(path, OsStr::from_bytes(&n), &v, XattrFlags::empty())
            {
                self.xattr_failed(rel, &n, e)?;
            }
        }
        let times = Timestamps {
            last_access: ts(head.mtime),
            last_modification: ts(head.mtime),
        };
        rustix::fs::utimensat(parent, os, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io(rel, "setting times of", e.into()))?;
        Ok(())
    }

    fn xattr_allowed(&self, name: &[u8]) -> bool {
        if name == ROOTLESS_XATTR.as_bytes() && !self.privileged {
            return false;
        }
        self.privileged || !(name.starts_with(b"security.") || name.starts_with(b"trusted."))
    }

    fn xattr_failed(&mut self, rel: &[u8], name: &[u8], e: Errno) -> Result<()> {
        match e {
            Errno::NOTSUP | Errno::PERM => {
                tracing::debug!(
                    "{}: could not set xattr {} on {}: {e}",
                    self.layer,
                    show(name),
                    show(rel)
                );
                self.report.skipped_xattrs += 1;
                Ok(())
            }
            e => Err(self.io(rel, &format!("setting xattr {} on", show(name)), io_err(e))),
        }
    }

    /// Removes the xattrs of an existing directory that the new entry for it does not carry: a later
    /// layer's entry replaces the directory's metadata, xattrs included (as umoci does).
    fn clear_xattrs(&mut self, fd: BorrowedFd<'_>, rel: &[u8], head: &EntryHead) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        let n = match rustix::fs::flistxattr(fd, &mut buf) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(self.io(rel, "listing xattrs of", e.into())),
        };
        let names: Vec<Vec<u8>> = buf[..n]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        for name in names {
            let keep = head.xattrs.iter().any(|(k, _)| *k == name)
                || !self.xattr_allowed(&name) && name != ROOTLESS_XATTR.as_bytes();
            if keep {
                continue;
            }
            match rustix::fs::fremovexattr(fd, OsStr::from_bytes(&name)) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => self.xattr_failed(rel, &name, e)?,
            }
        }
        Ok(())
    }

    fn xattrs_fd(&mut self, fd: BorrowedFd<'_>, rel: &[u8], head: &EntryHead) -> Result<()> {
        for (n, v) in &head.xattrs {
            if !self.xattr_allowed(n) {
                continue;
            }
            if let Err(e) = rustix::fs::fsetxattr(fd, OsStr::from_bytes(n), v, XattrFlags::empty())
            {
                self.xattr_failed(rel, n, e)?;
            }
        }
        if !self.privileged && (head.uid != 0 || head.gid != 0) {
            let v = encode_rootless(head.uid, head.gid);
            if let Err(e) = rustix::fs::fsetxattr(fd, ROOTLESS_XATTR, &v, XattrFlags::empty()) {
                self.xattr_failed(rel, ROOTLESS_XATTR.as_bytes(), e)?;
            }
        }
        Ok(())
    }

    fn host_ids(&self, rel: &[u8], head: &EntryHead) -> Result<(u32, u32)> {
        let uid = map_id(&self.opts.uid_map, head.uid).ok_or_else(|| {
            self.unsafe_entry(
                rel,
                format!("uid {} is outside the --uid-map ranges", head.uid),
            )
        })?;
        let gid = map_id(&self.opts.gid_map, head.gid).ok_or_else(|| {
            self.unsafe_entry(
                rel,
                format!("gid {} is outside the --gid-map ranges", head.gid),
            )
        })?;
        Ok((uid, gid))
    }

    fn owner_fd(&self, fd: BorrowedFd<'_>, rel: &[u8], head: &EntryHead) -> Result<()> {
        if !self.privileged {
            return Ok(());
        }
        let (uid, gid) = self.host_ids(rel, head)?;
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| self.io(rel, "changing the owner of", e.into()))
    }

    fn owner_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        head: &EntryHead,
        is_root: bool,
    ) -> Result<()> {
        if !self.privileged {
            return Ok(());
        }
        let (uid, gid) = self.host_ids(name, head)?;
        let flags = if is_root {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        rustix::fs::chownat(
            parent,
            OsStr::from_bytes(name),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            flags,
        )
        .map_err(|e| self.io(name, "changing the owner of", e.into()))
    }

    /// Applies the deferred directory modes and times (children before parents). Call once, after
    /// the last layer.
    pub fn finish(&mut self) -> Result<()> {
        if self.current.is_some() {
            return Err(Error::Other(format!("{}: file not finished", self.layer)));
        }
        let dirs = std::mem::take(&mut self.dirs);
        // Without root, a directory its owner cannot read and enter could not be listed (the state
        // record) once its mode is set: it gets its mode when the caller is done with the tree.
        let euid_root = rustix::process::geteuid().is_root();
        for (rel, meta) in dirs.iter().rev() {
            let times = Timestamps {
                last_access: ts(meta.mtime),
                last_modification: ts(meta.mtime),
            };
            let mode = Mode::from_raw_mode(meta.mode);
            if rel.is_empty() {
                let fd = rustix::fs::openat(
                    self.root.fd(),
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io(b".", "opening", e.into()))?;
                rustix::fs::fchmod(&fd, mode)
                    .map_err(|e| self.io(b".", "setting the mode of", e.into()))?;
                rustix::fs::futimens(&fd, &times)
                    .map_err(|e| self.io(b".", "setting times of", e.into()))?;
                continue;
            }
            let (dir, name) = split_last(rel);
            let parent = match self.root.open_dir(dir) {
                Ok(fd) => fd,
                Err(e) => return Err(self.io(rel, "resolving", e)),
            };
            let os = OsStr::from_bytes(name);
            // The path may have been replaced by a non-directory since; then its record is stale.
            match rustix::fs::statat(&parent, os, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            let mode = if !euid_root && meta.mode & 0o700 != 0o700 {
                self.locked.push((rel.clone(), meta.mode));
                Mode::from_raw_mode(meta.mode | 0o700)
            } else {
                mode
            };
            rustix::fs::chmodat(&parent, os, mode, AtFlags::empty())
                .map_err(|e| self.io(rel, "setting the mode of", e.into()))?;
            rustix::fs::utimensat(&parent, os, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.io(rel, "setting times of", e.into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::parse_rootless;

    #[test]
    fn rootless_record_matches_umoci() {
        // umoci writes 08e807 10d00f for 1000:2000 and NoopID for 0.
        assert_eq!(hex::encode(encode_rootless(1000, 2000)), "08e80710d00f");
        assert_eq!(hex::encode(encode_rootless(0, 5)), "08ffffffff0f1005");
        let o = parse_rootless(&encode_rootless(7, 0)).unwrap();
        assert_eq!((o.uid, o.gid), (Some(7), None));
    }
}
