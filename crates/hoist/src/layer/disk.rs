//! The on-disk [`Target`]: a directory confined by [`Root`], written with `*at` system calls that never
//! follow the last component; owners (through the id maps, or umoci's rootless record), modes,
//! xattrs and times applied as the entries say.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::apply::ApplyOptions;
use super::root::{self, Root, show, split_last};
use super::target::{DirMeta, Op, Target};
use super::{EntryHead, EntryKind};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use crate::owner::{IdMap, ROOTLESS_XATTR, encode_rootless, map_id};

/// A regular file being written on disk.
pub struct DiskFile {
    file: File,
    hasher: Hasher,
    offset: u64,
}

/// A directory on disk as an applier's target.
pub struct DiskTarget {
    root: Root,
    privileged: bool,
    uid_map: Vec<IdMap>,
    gid_map: Vec<IdMap>,
    digests: HashMap<(u64, u64), Digest>,
    /// Directories whose mode shuts their (unprivileged) owner out, children first.
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

impl DiskTarget {
    /// The existing directory `target`; `opts` says whether owners are applied (root, not rootless)
    /// and through which id maps, and which resolver confines paths.
    pub fn open(target: &Path, opts: &ApplyOptions) -> Result<DiskTarget> {
        Ok(DiskTarget {
            root: Root::open(target, opts.resolver)?,
            privileged: !opts.rootless && rustix::process::geteuid().is_root(),
            uid_map: opts.uid_map.clone(),
            gid_map: opts.gid_map.clone(),
            digests: HashMap::new(),
            locked: Vec::new(),
        })
    }

    /// Content digests of the regular files written, by (device, inode).
    pub fn digests(&self) -> &HashMap<(u64, u64), Digest> {
        &self.digests
    }

    /// Directories (relative path, image mode) [`Target::finish`] left open to their owner.
    pub fn locked_dirs(&self) -> &[(Vec<u8>, u32)] {
        &self.locked
    }

    fn io(&self, path: &[u8], what: &str, layer: &str, e: io::Error) -> Error {
        Error::io(
            format!(
                "{what} {} in {} ({layer})",
                show(path),
                self.root.path().display(),
            ),
            e,
        )
    }

    /// Gives the directories of [`Self::locked_dirs`] their image modes.
    pub fn restore_modes(&mut self) -> Result<()> {
        for (rel, mode) in std::mem::take(&mut self.locked) {
            let (dir, name) = split_last(&rel);
            let parent = self
                .root
                .open_dir(dir)
                .map_err(|e| self.io(&rel, "resolving", "finishing", e))?;
            rustix::fs::chmodat(
                &parent,
                OsStr::from_bytes(name),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(|e| self.io(&rel, "setting the mode of", "finishing", e.into()))?;
        }
        Ok(())
    }

    /// Opens a directory entry (never following a symlink) for fd-based metadata calls.
    fn open_node(&self, parent: &OwnedFd, name: &[u8], rel: &[u8], layer: &str) -> Result<OwnedFd> {
        rustix::fs::openat(
            parent,
            OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io(rel, "opening", layer, e.into()))
    }

    fn xattr_allowed(&self, name: &[u8]) -> bool {
        if name == ROOTLESS_XATTR.as_bytes() && !self.privileged {
            return false;
        }
        self.privileged || !(name.starts_with(b"security.") || name.starts_with(b"trusted."))
    }

    fn xattr_failed(&self, rel: &[u8], name: &[u8], e: Errno, op: &mut Op<'_>) -> Result<()> {
        match e {
            Errno::NOTSUP | Errno::PERM => {
                tracing::debug!(
                    "{}: could not set xattr {} on {}: {e}",
                    op.layer,
                    show(name),
                    show(rel)
                );
                op.report.skipped_xattrs += 1;
                Ok(())
            }
            e => Err(self.io(
                rel,
                &format!("setting xattr {} on", show(name)),
                op.layer,
                io_err(e),
            )),
        }
    }

    /// Removes the xattrs of an existing directory that the new entry for it does not carry: a later
    /// layer's entry replaces the directory's metadata, xattrs included (as umoci does).
    fn clear_xattrs(
        &self,
        fd: BorrowedFd<'_>,
        rel: &[u8],
        head: &EntryHead,
        op: &mut Op<'_>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        let n = match rustix::fs::flistxattr(fd, &mut buf) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(self.io(rel, "listing xattrs of", op.layer, e.into())),
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
                Err(e) => self.xattr_failed(rel, &name, e, op)?,
            }
        }
        Ok(())
    }

    fn xattrs_fd(
        &self,
        fd: BorrowedFd<'_>,
        rel: &[u8],
        head: &EntryHead,
        op: &mut Op<'_>,
    ) -> Result<()> {
        for (n, v) in &head.xattrs {
            if !self.xattr_allowed(n) {
                continue;
            }
            if let Err(e) = rustix::fs::fsetxattr(fd, OsStr::from_bytes(n), v, XattrFlags::empty())
            {
                self.xattr_failed(rel, n, e, op)?;
            }
        }
        if !self.privileged && (head.uid != 0 || head.gid != 0) {
            let v = encode_rootless(head.uid, head.gid);
            if let Err(e) = rustix::fs::fsetxattr(fd, ROOTLESS_XATTR, &v, XattrFlags::empty()) {
                self.xattr_failed(rel, ROOTLESS_XATTR.as_bytes(), e, op)?;
            }
        }
        Ok(())
    }

    fn host_ids(&self, rel: &[u8], head: &EntryHead, op: &Op<'_>) -> Result<(u32, u32)> {
        let uid = map_id(&self.uid_map, head.uid).ok_or_else(|| {
            op.unsafe_entry(
                rel,
                format!("uid {} is outside the --uid-map ranges", head.uid),
            )
        })?;
        let gid = map_id(&self.gid_map, head.gid).ok_or_else(|| {
            op.unsafe_entry(
                rel,
                format!("gid {} is outside the --gid-map ranges", head.gid),
            )
        })?;
        Ok((uid, gid))
    }

    fn owner_fd(
        &self,
        fd: BorrowedFd<'_>,
        rel: &[u8],
        head: &EntryHead,
        op: &Op<'_>,
    ) -> Result<()> {
        if !self.privileged {
            return Ok(());
        }
        let (uid, gid) = self.host_ids(rel, head, op)?;
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| self.io(rel, "changing the owner of", op.layer, e.into()))
    }

    fn owner_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        head: &EntryHead,
        is_root: bool,
        op: &Op<'_>,
    ) -> Result<()> {
        if !self.privileged {
            return Ok(());
        }
        let (uid, gid) = self.host_ids(name, head, op)?;
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
        .map_err(|e| self.io(name, "changing the owner of", op.layer, e.into()))
    }
}

impl Target for DiskTarget {
    type Dir = Rc<OwnedFd>;
    type File = DiskFile;

    fn location(&self) -> String {
        self.root.path().display().to_string()
    }

    fn privileged(&self) -> bool {
        self.privileged
    }

    fn invalidate(&mut self) {
        self.root.invalidate();
    }

    fn open_dir(&mut self, rel: &[u8]) -> io::Result<Self::Dir> {
        self.root.open_dir(rel).map(Rc::new)
    }

    fn parent(
        &mut self,
        rel: &[u8],
        created: &mut dyn FnMut(&[u8]),
    ) -> io::Result<(Self::Dir, Vec<u8>)> {
        self.root.parent(rel, created)
    }

    fn resolve_path(&mut self, rel: &[u8]) -> io::Result<Vec<u8>> {
        self.root.resolve_path(rel)
    }

    fn kind_at(&mut self, dir: &Self::Dir, name: &[u8]) -> std::result::Result<FileType, Errno> {
        rustix::fs::statat(&**dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    fn same_file(&mut self, a: &Self::Dir, an: &[u8], b: &Self::Dir, bn: &[u8]) -> bool {
        let a = rustix::fs::statat(&**a, OsStr::from_bytes(an), AtFlags::SYMLINK_NOFOLLOW);
        let b = rustix::fs::statat(&**b, OsStr::from_bytes(bn), AtFlags::SYMLINK_NOFOLLOW);
        matches!((a, b), (Ok(a), Ok(b)) if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
    }

    fn remove_all_at(&mut self, dir: &Self::Dir, name: &[u8]) -> io::Result<()> {
        root::remove_all_at(dir.as_fd(), name)
    }

    fn children(&mut self, dir: &Self::Dir) -> io::Result<Vec<Vec<u8>>> {
        let listing = rustix::fs::openat(
            &**dir,
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
        Ok(names)
    }

    fn child_dir(&mut self, dir: &Self::Dir, name: &[u8]) -> io::Result<Self::Dir> {
        Ok(Rc::new(rustix::fs::openat(
            &**dir,
            OsStr::from_bytes(name),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?))
    }

    fn mkdir_at(&mut self, dir: &Self::Dir, name: &[u8]) -> std::result::Result<(), Errno> {
        rustix::fs::mkdirat(&**dir, OsStr::from_bytes(name), Mode::from_raw_mode(0o700))
    }

    fn create_at(&mut self, dir: &Self::Dir, name: &[u8]) -> std::result::Result<DiskFile, Errno> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            &**dir,
            OsStr::from_bytes(name),
            flags,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(DiskFile {
            file: File::from(fd),
            hasher: Algorithm::Sha256.hasher(),
            offset: 0,
        })
    }

    fn symlink_at(
        &mut self,
        target: &[u8],
        dir: &Self::Dir,
        name: &[u8],
    ) -> std::result::Result<(), Errno> {
        rustix::fs::symlinkat(OsStr::from_bytes(target), &**dir, OsStr::from_bytes(name))
    }

    fn link_at(
        &mut self,
        tdir: &Self::Dir,
        tname: &[u8],
        dir: &Self::Dir,
        name: &[u8],
    ) -> std::result::Result<(), Errno> {
        rustix::fs::linkat(
            &**tdir,
            OsStr::from_bytes(tname),
            &**dir,
            OsStr::from_bytes(name),
            AtFlags::empty(),
        )
    }

    fn mknod_at(
        &mut self,
        dir: &Self::Dir,
        name: &[u8],
        kind: EntryKind,
        mode: u32,
        device: (u32, u32),
    ) -> std::result::Result<(), Errno> {
        let ft = match kind {
            EntryKind::Fifo => FileType::Fifo,
            EntryKind::CharDevice => FileType::CharacterDevice,
            _ => FileType::BlockDevice,
        };
        rustix::fs::mknodat(
            &**dir,
            OsStr::from_bytes(name),
            ft,
            Mode::from_raw_mode(mode & 0o777),
            rustix::fs::makedev(device.0, device.1),
        )
    }

    fn write(&mut self, cur: &mut DiskFile, buf: &[u8], sparse: bool) -> io::Result<()> {
        cur.hasher.update(buf);
        let res = if sparse {
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
        res
    }

    fn end_file(&mut self, cur: DiskFile, rel: &[u8], head: &EntryHead, op: Op<'_>) -> Result<()> {
        let mut op = op;
        let DiskFile {
            file,
            hasher,
            offset,
        } = cur;
        if head.sparse {
            file.set_len(offset)
                .map_err(|e| self.io(rel, "sizing", op.layer, e))?;
        }
        let st =
            rustix::fs::fstat(&file).map_err(|e| self.io(rel, "reading", op.layer, e.into()))?;
        self.digests.insert((st.st_dev, st.st_ino), hasher.finish());
        let fd = file.as_fd();
        self.owner_fd(fd, rel, head, &op)?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(head.mode))
            .map_err(|e| self.io(rel, "setting the mode of", op.layer, e.into()))?;
        self.xattrs_fd(fd, rel, head, &mut op)?;
        let times = Timestamps {
            last_access: ts(head.mtime),
            last_modification: ts(head.mtime),
        };
        rustix::fs::futimens(fd, &times)
            .map_err(|e| self.io(rel, "setting times of", op.layer, e.into()))?;
        Ok(())
    }

    fn root_meta(&mut self, head: &EntryHead, op: Op<'_>) -> Result<()> {
        let mut op = op;
        let fd = self
            .root
            .open_dir(b"")
            .map_err(|e| self.io(b".", "opening", op.layer, e))?;
        self.owner_at(fd.as_fd(), b".", head, true, &op)?;
        // Its xattrs too (and the rootless owner record), on a readable descriptor of the root.
        let node = self.open_node(&fd, b".", b".", op.layer)?;
        self.xattrs_fd(node.as_fd(), b".", head, &mut op)
    }

    fn dir_meta(
        &mut self,
        dir: &Self::Dir,
        name: &[u8],
        rel: &[u8],
        head: &EntryHead,
        merged: bool,
        op: Op<'_>,
    ) -> Result<()> {
        let mut op = op;
        let fd = self.open_node(dir, name, rel, op.layer)?;
        if merged {
            self.clear_xattrs(fd.as_fd(), rel, head, &mut op)?;
        }
        self.owner_fd(fd.as_fd(), rel, head, &op)?;
        self.xattrs_fd(fd.as_fd(), rel, head, &mut op)
    }

    fn node_meta(
        &mut self,
        parent: &Self::Dir,
        name: &[u8],
        rel: &[u8],
        head: &EntryHead,
        is_symlink: bool,
        op: Op<'_>,
    ) -> Result<()> {
        let mut op = op;
        let os = OsStr::from_bytes(name);
        self.owner_at(parent.as_fd(), name, head, false, &op)?;
        if !is_symlink {
            rustix::fs::chmodat(
                &**parent,
                os,
                Mode::from_raw_mode(head.mode),
                AtFlags::empty(),
            )
            .map_err(|e| self.io(rel, "setting the mode of", op.layer, e.into()))?;
        }
        // Metadata of a node that cannot be opened goes through its parent's /proc link, which
        // lsetxattr does not follow at the last component.
        let proc = format!(
            "/proc/self/fd/{}/",
            std::os::fd::AsRawFd::as_raw_fd(&**parent)
        );
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
                self.xattr_failed(rel, &n, e, &mut op)?;
            }
        }
        let times = Timestamps {
            last_access: ts(head.mtime),
            last_modification: ts(head.mtime),
        };
        rustix::fs::utimensat(&**parent, os, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io(rel, "setting times of", op.layer, e.into()))?;
        Ok(())
    }

    fn mark_opaque(&mut self, dir: &Self::Dir, name: &[u8], rel: &[u8], op: Op<'_>) -> Result<()> {
        let fd = self.open_node(dir, name, rel, op.layer)?;
        rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
            .map_err(|e| self.io(rel, "marking opaque", op.layer, e.into()))
    }

    fn finish(&mut self, dirs: BTreeMap<Vec<u8>, DirMeta>, op: Op<'_>) -> Result<()> {
        let layer = op.layer;
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
                .map_err(|e| self.io(b".", "opening", layer, e.into()))?;
                rustix::fs::fchmod(&fd, mode)
                    .map_err(|e| self.io(b".", "setting the mode of", layer, e.into()))?;
                rustix::fs::futimens(&fd, &times)
                    .map_err(|e| self.io(b".", "setting times of", layer, e.into()))?;
                continue;
            }
            let (dir, name) = split_last(rel);
            let parent = match self.root.open_dir(dir) {
                Ok(fd) => fd,
                Err(e) => return Err(self.io(rel, "resolving", layer, e)),
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
                .map_err(|e| self.io(rel, "setting the mode of", layer, e.into()))?;
            rustix::fs::utimensat(&parent, os, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.io(rel, "setting times of", layer, e.into()))?;
        }
        Ok(())
    }
}
