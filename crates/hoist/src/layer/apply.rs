//! Applying layer entries to a root: whiteouts and opaque directories, replacing files by directories
//! and the reverse, hard and symbolic links, devices and fifos, owners, modes, xattrs and times, and
//! the rootless ownership record.
//!
//! Semantics follow the OCI image-spec "Applying changesets": a later entry replaces an earlier one at
//! the same path (a directory over a directory merges), `.wh.NAME` removes `NAME` from lower layers and
//! `.wh..wh..opq` hides every lower-layer child of its directory while keeping what the same layer adds.
//! Directory modes and times are applied at the end, children first, so later writes do not disturb
//! them and read-only directories can still be filled.
//! The applier makes every decision; a [`Target`] carries them out (a directory on disk, or the
//! in-memory tree of an export), so unpack and export share one implementation of these semantics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

use rustix::fs::FileType;
use rustix::io::Errno;

use super::disk::DiskTarget;
use super::root::{self, Resolver, join, show, split_last};
use super::target::{DirMeta, Op, Target};
use super::{EntryHead, EntryKind, Msg};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::owner::IdMap;

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

/// How layers are applied to a directory (the options of the unpack applier).
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

/// The file being written.
struct OpenFile<F> {
    file: F,
    head: Box<EntryHead>,
    rel: Vec<u8>,
}

/// Applies layer entries to a [`Target`] (a directory on disk by default), one [`Msg`] at a time.
pub struct Applier<T: Target = DiskTarget> {
    t: T,
    opts: ApplyOptions,
    layer: String,
    /// Paths written by the current layer, and their ancestors (kept by an opaque whiteout).
    written: HashSet<Vec<u8>>,
    dirs: BTreeMap<Vec<u8>, DirMeta>,
    current: Option<OpenFile<T::File>>,
    /// The current regular-file entry is not written (a whiteout): its data is dropped.
    skipping: bool,
    report: ApplyReport,
}

impl Applier<DiskTarget> {
    /// An applier writing into the existing directory `target`.
    pub fn new(target: &Path, opts: ApplyOptions) -> Result<Applier> {
        let disk = DiskTarget::open(target, &opts)?;
        Ok(Applier::with_target(disk, opts))
    }

    /// Content digests of the regular files written, by (device, inode).
    pub fn digests(&self) -> &HashMap<(u64, u64), Digest> {
        self.t.digests()
    }

    /// Directories (relative path, image mode) [`Self::finish`] left open to their owner because the
    /// image's mode would lock an unprivileged owner out; children first.
    pub fn locked_dirs(&self) -> &[(Vec<u8>, u32)] {
        self.t.locked_dirs()
    }

    /// Gives the directories of [`Self::locked_dirs`] their image modes. Call once, after the last
    /// read of the tree (an unprivileged process cannot list them afterwards).
    pub fn restore_modes(&mut self) -> Result<()> {
        self.t.restore_modes()
    }
}

impl<T: Target> Applier<T> {
    /// An applier carrying its decisions out on `target`.
    pub fn with_target(target: T, opts: ApplyOptions) -> Applier<T> {
        let mut opts = opts;
        if !target.privileged() {
            opts.rootless = true;
        }
        Applier {
            t: target,
            opts,
            layer: "layer".into(),
            written: HashSet::new(),
            dirs: BTreeMap::new(),
            current: None,
            skipping: false,
            report: ApplyReport::default(),
        }
    }

    /// True when ownership, devices and privileged xattrs are applied.
    pub fn privileged(&self) -> bool {
        self.t.privileged()
    }

    /// The target, to change (between messages).
    pub fn target_mut(&mut self) -> &mut T {
        &mut self.t
    }

    /// The target, once the applier is done.
    pub fn into_target(self) -> T {
        self.t
    }

    /// What was done so far.
    pub fn report(&self) -> &ApplyReport {
        &self.report
    }

    fn op(&mut self) -> (&mut T, Op<'_>) {
        (
            &mut self.t,
            Op {
                layer: &self.layer,
                report: &mut self.report,
            },
        )
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
                self.t.location(),
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
    fn parent(&mut self, rel: &[u8]) -> Result<(T::Dir, Vec<u8>)> {
        let mut created: Vec<Vec<u8>> = Vec::new();
        let r = self
            .t
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
        let (t, op) = self.op();
        t.root_meta(head, op)?;
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
            self.t
                .mknod_at(&parent, &name, EntryKind::CharDevice, 0, (0, 0))
                .map_err(|e| self.io(&victim, "creating the overlay whiteout for", e.into()))?;
            self.mark_written(&victim);
            return Ok(());
        }
        if self.written.contains(&victim) {
            // A whiteout only hides lower layers; this layer's own entry stays.
            return Ok(());
        }
        let parent = match self.t.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(());
            }
            Err(e) => return Err(self.io(rel, "resolving", e)),
        };
        self.t
            .remove_all_at(&parent, target)
            .map_err(|e| self.io(&victim, "removing", e))?;
        self.t.invalidate();
        self.forget_below(&victim);
        Ok(())
    }

    fn opaque(&mut self, dir: &[u8], rel: &[u8]) -> Result<()> {
        if self.opts.whiteout == WhiteoutFormat::Overlay {
            let (parent, name) = if dir.is_empty() {
                (
                    self.t
                        .open_dir(b"")
                        .map_err(|e| self.io(rel, "opening", e))?,
                    b".".to_vec(),
                )
            } else {
                let (p, n) = self.parent(dir)?;
                if self.t.kind_at(&p, &n).is_err() {
                    self.t
                        .mkdir_at(&p, &n)
                        .map_err(|e| self.io(dir, "creating", e.into()))?;
                }
                (p, n)
            };
            let (t, op) = self.op();
            t.mark_opaque(&parent, &name, dir, op)?;
            self.mark_written(rel);
            return Ok(());
        }
        let fd = match self.t.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(());
            }
            Err(e) => return Err(self.io(rel, "resolving", e)),
        };
        let dir = dir.to_vec();
        self.clear_unwritten(&fd, &dir)
            .map_err(|e| self.io(&dir, "clearing opaque directory", e))?;
        self.t.invalidate();
        Ok(())
    }

    /// Removes every child of the directory `fd` (at `rel`) that the current layer did not write,
    /// descending into the directories it did write.
    fn clear_unwritten(&mut self, fd: &T::Dir, rel: &[u8]) -> io::Result<()> {
        for n in self.t.children(fd)? {
            let child = join(rel, &n);
            if self.written.contains(&child) {
                if self.t.kind_at(fd, &n)? == FileType::Directory {
                    let sub = self.t.child_dir(fd, &n)?;
                    self.clear_unwritten(&sub, &child)?;
                }
            } else {
                self.t.remove_all_at(fd, &n)?;
                self.forget_below(&child);
            }
        }
        Ok(())
    }

    /// Removes whatever is at `name` so that a new entry can take its place.
    fn remove_existing(&mut self, parent: &T::Dir, name: &[u8], rel: &[u8]) -> Result<()> {
        self.t
            .remove_all_at(parent, name)
            .map_err(|e| self.io(rel, "replacing", e))?;
        self.t.invalidate();
        self.forget_below(rel);
        Ok(())
    }

    fn start_file(&mut self, rel: Vec<u8>, head: Box<EntryHead>) -> Result<()> {
        let (parent, name) = self.parent(&rel)?;
        let file = match self.t.create_at(&parent, &name) {
            Ok(f) => f,
            Err(Errno::EXIST) => {
                self.remove_existing(&parent, &name, &rel)?;
                self.t
                    .create_at(&parent, &name)
                    .map_err(|e| self.io(&rel, "creating", e.into()))?
            }
            Err(e) => return Err(self.io(&rel, "creating", e.into())),
        };
        self.mark_written(&rel);
        self.current = Some(OpenFile { file, head, rel });
        Ok(())
    }

    fn data(&mut self, buf: &[u8]) -> Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Err(Error::Other(format!("{}: data outside a file", self.layer)));
        };
        let res = self.t.write(&mut cur.file, buf, cur.head.sparse);
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
        let OpenFile { file, head, rel } = cur;
        let (t, op) = self.op();
        t.end_file(file, &rel, &head, op)
    }

    fn directory(&mut self, rel: Vec<u8>, head: &EntryHead) -> Result<()> {
        let rel = match self.opts.keep_dirlinks {
            true => self.dirlink_target(rel)?,
            false => rel,
        };
        let (parent, name) = self.parent(&rel)?;
        let mut merged = false;
        match self.t.mkdir_at(&parent, &name) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let kind = self
                    .t
                    .kind_at(&parent, &name)
                    .map_err(|e| self.io(&rel, "reading", e.into()))?;
                if kind != FileType::Directory {
                    self.remove_existing(&parent, &name, &rel)?;
                    self.t
                        .mkdir_at(&parent, &name)
                        .map_err(|e| self.io(&rel, "creating", e.into()))?;
                } else {
                    merged = true;
                }
            }
            Err(e) => return Err(self.io(&rel, "creating", e.into())),
        }
        self.mark_written(&rel);
        let (t, op) = self.op();
        t.dir_meta(&parent, &name, &rel, head, merged, op)?;
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
        match self.t.kind_at(&parent, &name) {
            Ok(FileType::Symlink) => {}
            _ => return Ok(rel),
        }
        let target = match self.t.resolve_path(&rel) {
            Ok(t) if !t.is_empty() && self.t.open_dir(&t).is_ok() => t,
            // Dangling, a loop, or not a directory: replaced, as without the option.
            _ => return Ok(rel),
        };
        self.mark_written(&rel);
        Ok(target)
    }

    fn symlink(&mut self, rel: Vec<u8>, head: &EntryHead) -> Result<()> {
        let target = head.link.clone().unwrap_or_default();
        if target.is_empty() || target.contains(&0) {
            return Err(self.unsafe_entry(&rel, "symlink with an empty or NUL-containing target"));
        }
        let (parent, name) = self.parent(&rel)?;
        match self.t.symlink_at(&target, &parent, &name) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.remove_existing(&parent, &name, &rel)?;
                self.t
                    .symlink_at(&target, &parent, &name)
                    .map_err(|e| self.io(&rel, "creating symlink", e.into()))?;
            }
            Err(e) => return Err(self.io(&rel, "creating symlink", e.into())),
        }
        self.mark_written(&rel);
        let (t, op) = self.op();
        t.node_meta(&parent, &name, &rel, head, true, op)
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
        let tparent = match self.t.open_dir(tdir) {
            Ok(fd) => fd,
            Err(e) => {
                return Err(self.unsafe_entry(
                    &rel,
                    format!("hardlink target {} cannot be found: {e}", show(&target)),
                ));
            }
        };
        let (parent, name) = self.parent(&rel)?;
        match self.t.link_at(&tparent, tname, &parent, &name) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                // Linking a path to the file it already is: nothing to do.
                if self.t.same_file(&tparent, tname, &parent, &name) {
                    self.mark_written(&rel);
                    return Ok(());
                }
                self.remove_existing(&parent, &name, &rel)?;
                self.t
                    .link_at(&tparent, tname, &parent, &name)
                    .map_err(|e| self.hardlink_err(&rel, &target, e))?;
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
        if head.kind != EntryKind::Fifo && !self.t.privileged() {
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
        let mknod = |t: &mut T| t.mknod_at(&parent, &name, head.kind, head.mode, head.device);
        match mknod(&mut self.t) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.remove_existing(&parent, &name, &rel)?;
                mknod(&mut self.t).map_err(|e| self.io(&rel, "creating", e.into()))?;
            }
            Err(e) => return Err(self.io(&rel, "creating", e.into())),
        }
        self.mark_written(&rel);
        let (t, op) = self.op();
        t.node_meta(&parent, &name, &rel, head, false, op)
    }

    /// Applies the deferred directory modes and times (children before parents). Call once, after
    /// the last layer.
    pub fn finish(&mut self) -> Result<()> {
        if self.current.is_some() {
            return Err(Error::Other(format!("{}: file not finished", self.layer)));
        }
        let dirs = std::mem::take(&mut self.dirs);
        let (t, op) = self.op();
        t.finish(dirs, op)
    }
}
