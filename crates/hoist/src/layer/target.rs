//! What an [`Applier`](super::Applier) writes into: the filesystem operations it needs, confined to a
//! root. The applier decides (path normalisation, whiteouts, opaque directories, what replaces what,
//! hard and symbolic links, parents to create); a target only carries those decisions out.
//!
//! Two targets exist: [`DiskTarget`](super::disk::DiskTarget), a directory on disk confined by
//! [`Root`](super::Root) (unpack), and [`MemTree`](super::memtree::MemTree), a tree of entry metadata
//! in memory (export, which then streams the surviving file contents from the layers).
//!
//! Paths are normalised and relative (`""` is the root). The primitive operations report failures as
//! [`Errno`]s with the meaning the `*at` system calls give them (`EXIST`, `NOENT`, `NOTDIR`, `PERM`),
//! so the applier's decisions are the same whichever target carries them out.

use std::collections::BTreeMap;
use std::io;

use rustix::fs::FileType;
use rustix::io::Errno;

use super::{EntryHead, EntryKind};
use crate::error::{Error, Result};

use super::apply::ApplyReport;

/// Deferred metadata of a directory (applied by [`Target::finish`], children first).
#[derive(Debug, Clone, Copy)]
pub struct DirMeta {
    /// Permission bits.
    pub mode: u32,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, u32),
}

/// The context of one metadata operation: the layer (for messages) and the report to count in.
pub struct Op<'a> {
    /// The layer being applied, named in messages.
    pub layer: &'a str,
    /// What the applier did so far.
    pub report: &'a mut ApplyReport,
}

impl Op<'_> {
    /// An unsafe-entry error for `path`.
    pub fn unsafe_entry(&self, path: &[u8], reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            path: super::root::show(path),
            layer: self.layer.to_string(),
            reason: reason.into(),
        }
    }
}

/// The operations an [`Applier`](super::Applier) carries its decisions out with.
pub trait Target {
    /// A resolved directory.
    type Dir: Clone;
    /// A regular file being written.
    type File;

    /// Where the target is, for messages (`in /some/dir`).
    fn location(&self) -> String;
    /// True when owners, devices and privileged xattrs are kept as the image has them.
    fn privileged(&self) -> bool;
    /// Forgets cached lookups; called after anything was removed or replaced.
    fn invalidate(&mut self);
    /// The directory at `rel`, following symlinks only inside the root (`NOENT`, `NOTDIR` as the
    /// kernel gives them).
    fn open_dir(&mut self, rel: &[u8]) -> io::Result<Self::Dir>;
    /// The parent directory of `rel` (resolved inside the root) and the last component; missing
    /// parents are created (mode 0755, owner root) and reported through `created`.
    fn parent(
        &mut self,
        rel: &[u8],
        created: &mut dyn FnMut(&[u8]),
    ) -> io::Result<(Self::Dir, Vec<u8>)>;
    /// The path `rel` names once every symlink on it is followed inside the root.
    fn resolve_path(&mut self, rel: &[u8]) -> io::Result<Vec<u8>>;
    /// The type of `name` in `dir`, not following it.
    fn kind_at(&mut self, dir: &Self::Dir, name: &[u8]) -> std::result::Result<FileType, Errno>;
    /// True when `an` in `a` and `bn` in `b` are one file (a hardlink pair).
    fn same_file(&mut self, a: &Self::Dir, an: &[u8], b: &Self::Dir, bn: &[u8]) -> bool;
    /// Removes `name` in `dir` and everything below it (nothing when it is missing).
    fn remove_all_at(&mut self, dir: &Self::Dir, name: &[u8]) -> io::Result<()>;
    /// The names in `dir`.
    fn children(&mut self, dir: &Self::Dir) -> io::Result<Vec<Vec<u8>>>;
    /// The directory `name` in `dir`, not following a symlink.
    fn child_dir(&mut self, dir: &Self::Dir, name: &[u8]) -> io::Result<Self::Dir>;
    /// Creates the directory `name` in `dir` (`EXIST` when something is there).
    fn mkdir_at(&mut self, dir: &Self::Dir, name: &[u8]) -> std::result::Result<(), Errno>;
    /// Creates the regular file `name` in `dir` for writing (`EXIST` when something is there).
    fn create_at(&mut self, dir: &Self::Dir, name: &[u8])
    -> std::result::Result<Self::File, Errno>;
    /// Creates the symlink `name` in `dir` pointing at `target`.
    fn symlink_at(
        &mut self,
        target: &[u8],
        dir: &Self::Dir,
        name: &[u8],
    ) -> std::result::Result<(), Errno>;
    /// Links `name` in `dir` to the file `tname` in `tdir` (`NOENT` when it is missing, `PERM` when it
    /// is a directory).
    fn link_at(
        &mut self,
        tdir: &Self::Dir,
        tname: &[u8],
        dir: &Self::Dir,
        name: &[u8],
    ) -> std::result::Result<(), Errno>;
    /// Creates a fifo or device node.
    fn mknod_at(
        &mut self,
        dir: &Self::Dir,
        name: &[u8],
        kind: EntryKind,
        mode: u32,
        device: (u32, u32),
    ) -> std::result::Result<(), Errno>;
    /// Writes the next chunk of a regular file (`sparse`: all-zero blocks may stay holes).
    fn write(&mut self, file: &mut Self::File, buf: &[u8], sparse: bool) -> io::Result<()>;
    /// Finishes a regular file: its owner, mode, xattrs and times from `head`.
    fn end_file(
        &mut self,
        file: Self::File,
        rel: &[u8],
        head: &EntryHead,
        op: Op<'_>,
    ) -> Result<()>;
    /// The metadata of the root directory's own entry (its mode and time come with [`Self::finish`]).
    fn root_meta(&mut self, head: &EntryHead, op: Op<'_>) -> Result<()>;
    /// The owner and xattrs of the directory `name` in `dir` (`merged`: it existed, and xattrs the
    /// new entry does not carry go).
    fn dir_meta(
        &mut self,
        dir: &Self::Dir,
        name: &[u8],
        rel: &[u8],
        head: &EntryHead,
        merged: bool,
        op: Op<'_>,
    ) -> Result<()>;
    /// The metadata of a node that is not opened: a symlink, fifo or device.
    fn node_meta(
        &mut self,
        dir: &Self::Dir,
        name: &[u8],
        rel: &[u8],
        head: &EntryHead,
        is_symlink: bool,
        op: Op<'_>,
    ) -> Result<()>;
    /// Marks a directory opaque the overlayfs way (`trusted.overlay.opaque=y`).
    fn mark_opaque(&mut self, dir: &Self::Dir, name: &[u8], rel: &[u8], op: Op<'_>) -> Result<()>;
    /// Applies the deferred directory modes and times (children before parents), once, at the end.
    fn finish(&mut self, dirs: BTreeMap<Vec<u8>, DirMeta>, op: Op<'_>) -> Result<()>;
}
