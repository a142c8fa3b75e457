//! Layer diffing: the change model (added, modified, deleted paths) between a lower tree and an upper
//! directory, and the plan of layer entries (files, whiteouts, opaque markers, hardlinks) that turns
//! those changes into an OCI layer.
//!
//! The lower side is anything that implements [`LowerTree`]: a plain directory ([`DirTree`]) today, the
//! record `unpack` keeps of what it unpacked later. The upper side is always a directory on disk, walked
//! in path order without following symlinks. [`write_layer`] streams a plan into a (compressed) layer blob.
//!
//! ```no_run
//! use hoist::diff::{compute, DirTree, DiffOptions, LayerOptions, write_layer_file};
//! let lower = DirTree::new("/tmp/lower");
//! let diff = compute(&lower, "/tmp/upper".as_ref(), &DiffOptions::default())?;
//! let layer = write_layer_file(&diff, "/tmp/layer.tar.gz".as_ref(), &LayerOptions::default())?;
//! println!("{} {}", layer.digest, layer.diff_id);
//! # Ok::<(), hoist::Error>(())
//! ```

mod walk;
pub(crate) mod writer;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The xattr in which a rootless unpack records an entry's image owner (read back by the diff).
pub use crate::owner::ROOTLESS_XATTR;
pub use walk::DirTree;
pub(crate) use walk::open_in_tree;
pub use writer::{
    LayerBlob, LayerOptions, MtimePolicy, write_layer, write_layer_file, write_layer_reporting,
};

use crate::blob::read_full;
use crate::digest::Digest;
use crate::error::Result;
use crate::owner::{IdMap, to_container};

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A unix socket (cannot be stored in a layer; skipped when writing).
    Socket,
}

/// The metadata of one entry, as compared between the trees and written into the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The kind of object.
    pub file_type: FileType,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner, after applying a rootless ownership record ([`ROOTLESS_XATTR`]) when there is one.
    pub uid: u32,
    /// Group, after applying a rootless ownership record.
    pub gid: u32,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// A symlink's target.
    pub link_target: Option<PathBuf>,
    /// A device's (major, minor) numbers.
    pub device: Option<(u32, u32)>,
    /// Extended attributes that belong in a layer, by name (the rootless record and
    /// `security.selinux` are left out, as umoci does).
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// (device, inode) and link count, where known: used to find hardlink groups in the upper tree.
    pub inode: Option<(u64, u64, u64)>,
    /// Status change time (seconds, nanoseconds), where known: with the inode, it tells whether a file
    /// was rewritten since a record was made (a process can set the mtime back, never the ctime).
    pub ctime: Option<(i64, u32)>,
}

/// Content of a lower file, for comparing with the upper one when all metadata agree.
pub enum LowerContent<'a> {
    /// The bytes themselves.
    Reader(Box<dyn Read + 'a>),
    /// Only a digest of the bytes is known (a state record).
    Digest(Digest),
    /// Nothing is known: the file counts as changed when its metadata agree.
    Unavailable,
}

/// Entries of a tree in path order, each a relative path with its metadata.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<(PathBuf, Meta)>> + 'a>;

/// The lower side of a diff: what the upper tree is compared against.
///
/// Paths are relative to the tree's root, without a leading `/` or `./`; the root itself is never an
/// entry. Implemented by [`DirTree`] for a plain directory.
pub trait LowerTree {
    /// Every entry below the root, in [`Path`] order (component-wise, so a directory's contents follow
    /// it directly).
    fn entries(&self) -> Result<Entries<'_>>;
    /// The metadata of one path, `None` when it is absent.
    fn lookup(&self, path: &Path) -> Result<Option<Meta>>;
    /// The content of a regular file, for content comparison.
    fn content(&self, path: &Path) -> Result<LowerContent<'_>>;
    /// The metadata of the root itself, when known: its mode, owner and xattrs are compared with the
    /// upper root's, and a change is written as the layer's `./` entry. `None` (the default): not
    /// compared.
    fn root_meta(&self) -> Result<Option<Meta>> {
        Ok(None)
    }
    /// True when the tree's modification times carry nanoseconds (a directory does; a tar-based record
    /// may only have seconds, and then only seconds are compared).
    fn mtime_nanos(&self) -> bool {
        true
    }
    /// True when the regular file `upper` describes is known to be the very file this tree recorded
    /// at `path`, untouched since (same inode and status change time, as git's index decides), so its
    /// content needs no comparison. The default, false, means "in doubt": the content is compared.
    fn unchanged_file(&self, _path: &Path, _upper: &Meta) -> bool {
        false
    }
}

/// What differs in a modified entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons {
    /// The kind of object changed (e.g. a directory replaced by a file).
    pub file_type: bool,
    /// The content (or size) of a regular file.
    pub content: bool,
    /// Permission bits.
    pub mode: bool,
    /// Owner or group.
    pub owner: bool,
    /// Extended attributes.
    pub xattrs: bool,
    /// Modification time.
    pub mtime: bool,
    /// A symlink's target.
    pub link_target: bool,
    /// A device's numbers.
    pub device: bool,
}

impl Reasons {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        *self == Reasons::default()
    }

    /// The names of what differs, e.g. `["mode", "mtime"]`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.file_type, "type"),
            (self.content, "content"),
            (self.mode, "mode"),
            (self.owner, "owner"),
            (self.xattrs, "xattrs"),
            (self.mtime, "mtime"),
            (self.link_target, "link"),
            (self.device, "device"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

/// How an entry changed between the trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the upper tree.
    Added,
    /// In both, different.
    Modified(Reasons),
    /// Only in the lower tree (only the topmost deleted path is listed; its contents go with it).
    Deleted,
}

/// One change, by path relative to the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path.
    pub path: PathBuf,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Options of [`compute`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Compare the content of every regular file whose metadata all agree, even one the lower tree
    /// knows to be untouched ([`LowerTree::unchanged_file`]). Without it, such files are still
    /// compared whenever that is in doubt (always, for a plain directory as the lower tree), so a
    /// same-size edit that kept the mtime is never missed.
    pub full_hash: bool,
    /// Paths (relative to the roots) left out on both sides, with everything below them: umoci's
    /// `--mask-path`.
    pub exclude: Vec<PathBuf>,
    /// The uid maps the upper tree was unpacked with (`unpack --uid-map`): its owners are host ids,
    /// mapped back to the image's ids before comparing and writing; an id outside them is an error.
    pub uid_map: Vec<IdMap>,
    /// The gid maps, as `uid_map`.
    pub gid_map: Vec<IdMap>,
    /// The upper tree keeps whiteouts as overlayfs does (`unpack --whiteout-format overlay`, or an
    /// overlay upper directory): a 0/0 character device is written as a `.wh.` whiteout and a
    /// directory's `trusted.overlay.opaque=y` as an opaque marker, never as a device or an xattr.
    pub overlay_whiteouts: bool,
}

/// The xattr overlayfs marks an opaque directory with.
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// True for a directory marked opaque the overlayfs way (`trusted.overlay.opaque=y`).
fn overlay_opaque(meta: &Meta) -> bool {
    meta.file_type == FileType::Dir
        && meta
            .xattrs
            .get(std::ffi::OsStr::new(OVERLAY_OPAQUE))
            .is_some_and(|v| v == b"y")
}

/// `meta` with its host owner mapped back to the image's ids through `uid_map`/`gid_map`, and
/// false when an id lies outside them (it is then kept as it is: fine for an entry that is not
/// written, such as the root hoist created, an error for one that is).
pub(crate) fn map_owner_back(mut meta: Meta, uid_map: &[IdMap], gid_map: &[IdMap]) -> (Meta, bool) {
    let (uid, gid) = (
        to_container(uid_map, meta.uid),
        to_container(gid_map, meta.gid),
    );
    meta.uid = uid.unwrap_or(meta.uid);
    meta.gid = gid.unwrap_or(meta.gid);
    (meta, uid.is_some() && gid.is_some())
}

/// The error for an entry to be written whose host owner has no id in the image.
fn unmapped_owner(full: &Path, meta: &Meta) -> crate::Error {
    crate::Error::Other(format!(
        "{}: owner {}:{} is outside the unpack's --uid-map/--gid-map ranges, so it has no id in \
         the image; chown it into them",
        full.display(),
        meta.uid,
        meta.gid
    ))
}

impl Diff {
    /// Refuses a plan that writes an entry whose host owner lies outside the id maps (owners
    /// outside them are fine where nothing is written, e.g. directories hoist made).
    pub(crate) fn check_owners(&self, plan: &[LayerEntry]) -> Result<()> {
        if self.unmapped.is_empty() {
            return Ok(());
        }
        for entry in plan {
            let (LayerEntry::Write { path, .. } | LayerEntry::Hardlink { path, .. }) = entry else {
                continue;
            };
            if self.unmapped.contains(path) {
                let meta = match entry {
                    LayerEntry::Write { meta, .. } => Some(meta),
                    _ => self.upper_meta(path),
                };
                return Err(match meta {
                    Some(m) => unmapped_owner(&self.upper_root.join(path), m),
                    None => crate::Error::Other(format!(
                        "{}: owner outside the id maps",
                        path.display()
                    )),
                });
            }
        }
        Ok(())
    }
}

/// The state of one upper entry after comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Unchanged,
    Added,
    Modified(Reasons),
}

#[derive(Debug, Clone)]
struct UpperEntry {
    path: PathBuf,
    meta: Meta,
    status: Status,
    /// The lower entry at this path was a directory too (so an opaque marker could apply).
    lower_dir: bool,
    /// The lower entry at this path was a directory marked opaque the overlayfs way.
    lower_overlay_opaque: bool,
}

/// The computed difference between a lower tree and an upper directory.
#[derive(Debug, Clone)]
pub struct Diff {
    upper_root: PathBuf,
    upper: Vec<UpperEntry>,
    deleted: Vec<PathBuf>,
    /// The upper root's metadata and what differs, when its mode, owner or xattrs changed.
    root: Option<(Meta, Reasons)>,
    /// Upper paths (`.` for the root) whose host owner lies outside the id maps: an error if written.
    unmapped: HashSet<PathBuf>,
    /// [`DiffOptions::overlay_whiteouts`].
    overlay: bool,
    /// Where in the image the upper tree's entries go ([`Diff::place_under`]); the root when `None`.
    prefix: Option<PathBuf>,
    /// Whiteouts and opaque markers asked for beside the tree's changes ([`Diff::add_whiteout`]).
    markers: Vec<LayerEntry>,
}

/// One entry of a layer, in the order it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEntry {
    /// Write the upper entry at `path` (a file's content is read from the upper tree).
    Write {
        /// The path.
        path: PathBuf,
        /// Its metadata.
        meta: Meta,
    },
    /// Write a hardlink at `path` to `target`, an earlier entry of the same layer.
    Hardlink {
        /// The link's path.
        path: PathBuf,
        /// The path it links to.
        target: PathBuf,
    },
    /// `.wh.NAME`: `path` is deleted.
    Whiteout {
        /// The deleted path.
        path: PathBuf,
    },
    /// `.wh..wh..opq` in directory `dir`: everything the lower layers had in it is hidden.
    Opaque {
        /// The directory.
        dir: PathBuf,
    },
}

/// A path of the image as a layer names it: relative, `.` components dropped, `..` refused.
fn image_path(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(crate::Error::Other(format!(
                    "{}: a path in the image must not contain '..'",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

fn marker_order(a: &LayerEntry, b: &LayerEntry) -> Ordering {
    let key = |e: &LayerEntry| match e {
        LayerEntry::Opaque { dir } => (dir.clone(), 0),
        LayerEntry::Whiteout { path } => (path.clone(), 1),
        _ => (PathBuf::new(), 2),
    };
    key(a).cmp(&key(b))
}

/// Computes the changes from `lower` to the directory `upper`.
///
/// ```no_run
/// use hoist::diff::{DirTree, LayerOptions, write_layer_file};
/// let lower = DirTree::new("/tmp/before");
/// let diff = hoist::diff(&lower, std::path::Path::new("/tmp/after"), &hoist::DiffOptions::default())?;
/// let layer = write_layer_file(&diff, std::path::Path::new("/tmp/layer.tar.gz"), &LayerOptions::default())?;
/// println!("{} changes; blob {} diff_id {}", diff.changes().len(), layer.digest, layer.diff_id);
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn compute(lower: &dyn LowerTree, upper: &Path, opts: &DiffOptions) -> Result<Diff> {
    let upper_tree = DirTree::new(upper);
    let nanos = lower.mtime_nanos();
    let kept = |item: &Result<(PathBuf, Meta)>| match item {
        Ok((path, _)) => !opts.exclude.iter().any(|x| path.starts_with(x)),
        Err(_) => true,
    };
    let mut lower_iter = lower.entries()?.filter(kept).peekable();
    let mut upper_items = upper_tree.entries()?.filter(kept).map(|item| {
        let (path, meta) = item?;
        let (meta, mapped) = map_owner_back(meta, &opts.uid_map, &opts.gid_map);
        Ok((path, meta, mapped))
    });
    let mut unmapped_paths = Vec::new();
    let upper_iter = std::iter::from_fn(|| {
        upper_items.next().map(|item| {
            item.map(|(path, meta, mapped)| {
                if !mapped {
                    unmapped_paths.push(path.clone());
                }
                (path, meta)
            })
        })
    });
    let mut upper_iter = upper_iter.peekable();
    let mut out = Diff {
        upper_root: upper.to_path_buf(),
        upper: Vec::new(),
        deleted: Vec::new(),
        root: None,
        unmapped: HashSet::new(),
        overlay: opts.overlay_whiteouts,
        prefix: None,
        markers: Vec::new(),
    };
    if let Some(lroot) = lower.root_meta()? {
        let (uroot, mapped) = map_owner_back(walk::read_meta(upper)?, &opts.uid_map, &opts.gid_map);
        let r = compare(&lroot, &uroot, nanos);
        let root_changes = Reasons {
            mode: r.mode,
            owner: r.owner,
            xattrs: r.xattrs,
            file_type: r.file_type,
            ..Reasons::default()
        };
        if !mapped {
            out.unmapped.insert(PathBuf::from("."));
        }
        if !root_changes.is_empty() {
            out.root = Some((uroot, root_changes));
        }
    }
    // A lower directory that was deleted or replaced by a non-directory: its lower contents need no
    // whiteouts of their own.
    let mut gone: Option<PathBuf> = None;
    loop {
        let order = match (lower_iter.peek(), upper_iter.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => return Err(take_err(&mut lower_iter)),
            (_, Some(Err(_))) => return Err(take_err(&mut upper_iter)),
            (Some(Ok((lp, _))), Some(Ok((up, _)))) => lp.cmp(up),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        if order != Ordering::Less
            && let Some(Ok((path, _))) = upper_iter.peek()
        {
            refuse_whiteout_name(upper, path)?;
        }
        match order {
            Ordering::Less => {
                let Some(Ok((path, meta))) = lower_iter.next() else {
                    unreachable!("peeked")
                };
                if gone.as_ref().is_some_and(|g| path.starts_with(g)) {
                    continue;
                }
                if meta.file_type == FileType::Dir {
                    gone = Some(path.clone());
                }
                out.deleted.push(path);
            }
            Ordering::Greater => {
                let Some(Ok((path, meta))) = upper_iter.next() else {
                    unreachable!("peeked")
                };
                out.upper.push(UpperEntry {
                    path,
                    meta,
                    status: Status::Added,
                    lower_dir: false,
                    lower_overlay_opaque: false,
                });
            }
            Ordering::Equal => {
                let (Some(Ok((path, lmeta))), Some(Ok((_, umeta)))) =
                    (lower_iter.next(), upper_iter.next())
                else {
                    unreachable!("peeked")
                };
                let mut reasons = compare(&lmeta, &umeta, nanos);
                if reasons.is_empty()
                    && umeta.file_type == FileType::Regular
                    && (opts.full_hash || !lower.unchanged_file(&path, &umeta))
                    && !same_content(lower, &upper_tree, &path, &umeta)?
                {
                    reasons.content = true;
                }
                if lmeta.file_type == FileType::Dir && umeta.file_type != FileType::Dir {
                    gone = Some(path.clone());
                }
                out.upper.push(UpperEntry {
                    lower_dir: lmeta.file_type == FileType::Dir,
                    lower_overlay_opaque: overlay_opaque(&lmeta),
                    path,
                    meta: umeta,
                    status: if reasons.is_empty() {
                        Status::Unchanged
                    } else {
                        Status::Modified(reasons)
                    },
                });
            }
        }
    }
    drop(upper_iter);
    out.unmapped.extend(unmapped_paths);
    Ok(out)
}

/// The prefix that makes a layer entry a whiteout.
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// Refuses an upper entry named `.wh.*`: in a layer it would delete a file (or hide a directory)
/// instead of being one, so the tree cannot be written as a layer (umoci refuses it too).
fn refuse_whiteout_name(upper: &Path, path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    match path.file_name() {
        Some(name) if name.as_bytes().starts_with(WHITEOUT_PREFIX) => {
            Err(crate::Error::Other(format!(
                "{}: a name starting with .wh. would be a whiteout in a layer, not a file; \
                 rename or remove it (or leave it out with a mask/exclude)",
                upper.join(path).display()
            )))
        }
        _ => Ok(()),
    }
}

fn take_err(it: &mut impl Iterator<Item = Result<(PathBuf, Meta)>>) -> crate::Error {
    match it.next() {
        Some(Err(e)) => e,
        _ => crate::Error::Other("tree walk failed".into()),
    }
}

/// What differs between a lower and an upper entry's metadata.
fn compare(l: &Meta, u: &Meta, nanos: bool) -> Reasons {
    let mut r = Reasons::default();
    if l.file_type != u.file_type {
        r.file_type = true;
        return r;
    }
    r.mode = l.mode != u.mode;
    r.owner = l.uid != u.uid || l.gid != u.gid;
    r.xattrs = l.xattrs != u.xattrs;
    r.mtime = l.mtime != u.mtime || (nanos && l.mtime_nsec != u.mtime_nsec);
    match u.file_type {
        FileType::Regular => r.content = l.size != u.size,
        FileType::Symlink => r.link_target = l.link_target != u.link_target,
        FileType::CharDevice | FileType::BlockDevice => r.device = l.device != u.device,
        _ => {}
    }
    r
}

/// Byte-compares (or digest-compares) a regular file present in both trees.
fn same_content(lower: &dyn LowerTree, upper: &DirTree, path: &Path, umeta: &Meta) -> Result<bool> {
    use crate::error::IoContext;
    let upath = upper.root().join(path);
    let open_upper = || walk::open_in_tree(upper.root(), path, Some(umeta));
    match lower.content(path)? {
        // Nothing to compare with: count it as changed, since writing an unchanged file again is
        // harmless and dropping a change is not.
        LowerContent::Unavailable => Ok(false),
        LowerContent::Digest(d) => {
            let mut w = crate::digest::HashingWriter::new(std::io::sink(), d.algorithm());
            std::io::copy(&mut open_upper()?, &mut w)
                .ctx(|| format!("reading {}", upath.display()))?;
            Ok(w.finish().1 == d)
        }
        LowerContent::Reader(mut l) => {
            let mut u = open_upper()?;
            let mut lb = vec![0u8; 64 << 10];
            let mut ub = vec![0u8; 64 << 10];
            loop {
                let n = read_full(&mut l, &mut lb)
                    .ctx(|| format!("reading lower {}", path.display()))?;
                let m =
                    read_full(&mut u, &mut ub).ctx(|| format!("reading {}", upath.display()))?;
                if n != m || lb[..n] != ub[..m] {
                    return Ok(false);
                }
                if n == 0 {
                    return Ok(true);
                }
            }
        }
    }
}

/// The hardlink group of an entry: (device, inode) of anything but a directory (or a socket, which a
/// layer cannot hold) with more than one link. Symlinks, FIFOs and devices can be hardlinked too,
/// and stay so.
fn link_key(meta: &Meta) -> Option<(u64, u64)> {
    match (meta.file_type, meta.inode) {
        (FileType::Dir | FileType::Socket, _) => None,
        (_, Some((dev, ino, nlink))) if nlink > 1 => Some((dev, ino)),
        _ => None,
    }
}

/// Tar bytes an entry of `meta` occupies (header plus padded content).
fn entry_cost(meta: &Meta) -> u64 {
    let data = if meta.file_type == FileType::Regular {
        meta.size.div_ceil(512) * 512
    } else {
        0
    };
    512 + data
}

impl Diff {
    /// The metadata of the upper entry at `path` (as compared and written: owners mapped back).
    pub(crate) fn upper_meta(&self, path: &Path) -> Option<&Meta> {
        self.upper
            .binary_search_by(|e| e.path.as_path().cmp(path))
            .ok()
            .map(|i| &self.upper[i].meta)
    }

    /// The upper directory the diff was computed for (where file contents are read from).
    pub fn upper_root(&self) -> &Path {
        &self.upper_root
    }

    /// Writes the upper tree's entries under `dir` in the image instead of at its root (as
    /// `umoci insert` places a directory). `dir` must be relative to the image root (a leading `/`
    /// is dropped) and must not contain `..`.
    pub fn place_under(&mut self, dir: &Path) -> Result<()> {
        self.prefix = Some(image_path(dir)?).filter(|p| !p.as_os_str().is_empty());
        Ok(())
    }

    /// Adds a whiteout of `path` (a path of the image, not of the upper tree): the layer deletes it.
    pub fn add_whiteout(&mut self, path: &Path) -> Result<()> {
        let path = image_path(path)?;
        if path.as_os_str().is_empty() {
            return Err(crate::Error::Other(
                "cannot white out the image root".into(),
            ));
        }
        self.markers.push(LayerEntry::Whiteout { path });
        self.markers.sort_by(marker_order);
        Ok(())
    }

    /// Adds an opaque marker in directory `dir` of the image: the layer hides everything the lower
    /// layers had in it.
    pub fn add_opaque(&mut self, dir: &Path) -> Result<()> {
        let dir = image_path(dir)?;
        self.markers.push(LayerEntry::Opaque { dir });
        self.markers.sort_by(marker_order);
        Ok(())
    }

    /// The directory of the image the upper tree is written under ([`Diff::place_under`]).
    pub fn prefix(&self) -> Option<&Path> {
        self.prefix.as_deref()
    }

    /// The whiteouts and opaque markers added with [`Diff::add_whiteout`] and [`Diff::add_opaque`],
    /// in the order they are written (before the tree's entries).
    pub fn markers(&self) -> &[LayerEntry] {
        &self.markers
    }

    /// True when the trees are the same.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
            && self.deleted.is_empty()
            && self.upper.iter().all(|e| e.status == Status::Unchanged)
    }

    /// Every change, in path order.
    pub fn changes(&self) -> Vec<Change> {
        let mut v: Vec<Change> = self
            .upper
            .iter()
            .filter_map(|e| match &e.status {
                Status::Unchanged => None,
                Status::Added => Some(Change {
                    path: e.path.clone(),
                    kind: ChangeKind::Added,
                }),
                Status::Modified(r) => Some(Change {
                    path: e.path.clone(),
                    kind: ChangeKind::Modified(*r),
                }),
            })
            .chain(self.deleted.iter().map(|p| Change {
                path: p.clone(),
                kind: ChangeKind::Deleted,
            }))
            .chain(self.root.iter().map(|(_, r)| Change {
                path: PathBuf::from("."),
                kind: ChangeKind::Modified(*r),
            }))
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Directories (present as directories in both trees) where one opaque marker plus re-adding the
    /// unchanged contents makes a smaller layer than one whiteout per deleted entry.
    fn opaque_dirs(&self) -> HashSet<PathBuf> {
        #[derive(Default)]
        struct Acc {
            unchanged: u64,
            direct_whiteouts: u64,
            best: u64,
            opaque: bool,
        }
        let mut acc: HashMap<&Path, Acc> = HashMap::new();
        for e in &self.upper {
            if e.meta.file_type == FileType::Dir && e.lower_dir {
                acc.entry(&e.path).or_default();
            }
        }
        if acc.is_empty() || self.deleted.is_empty() {
            return HashSet::new();
        }
        for e in &self.upper {
            if e.status != Status::Unchanged {
                continue;
            }
            let cost = entry_cost(&e.meta);
            for a in e.path.ancestors().skip(1) {
                if let Some(x) = acc.get_mut(a) {
                    x.unchanged += cost;
                }
            }
        }
        for d in &self.deleted {
            if let Some(x) = d.parent().and_then(|p| acc.get_mut(p)) {
                x.direct_whiteouts += 1;
            }
        }
        // Bottom-up: children sort after their parents, so reverse path order visits them first.
        let dirs: Vec<&Path> = self
            .upper
            .iter()
            .filter(|e| acc.contains_key(e.path.as_path()))
            .map(|e| e.path.as_path())
            .collect();
        let mut child_best: HashMap<&Path, u64> = HashMap::new();
        for d in dirs.iter().rev() {
            let x = acc.get_mut(d).expect("dir has an accumulator");
            let normal = 512 * x.direct_whiteouts + child_best.get(d).copied().unwrap_or(0);
            let opaque = 512 + x.unchanged;
            x.opaque = x.direct_whiteouts > 0 && opaque < normal;
            x.best = normal.min(opaque);
            let best = x.best;
            if let Some(p) = d.parent().filter(|p| acc.contains_key(p)) {
                *child_best.entry(p).or_default() += best;
            }
        }
        let mut chosen: HashSet<PathBuf> = HashSet::new();
        for d in dirs {
            if d.ancestors().skip(1).any(|a| chosen.contains(a)) {
                continue;
            }
            if acc.get(d).is_some_and(|x| x.opaque) {
                chosen.insert(d.to_path_buf());
            }
        }
        chosen
    }

    /// The layer entries for this diff, in the order they are written: path order, a whiteout at its
    /// deleted path's place, an opaque marker right after its directory, the second and later paths of
    /// a hardlink group as links to the first.
    pub fn plan(&self) -> Vec<LayerEntry> {
        let mut opaque = self.opaque_dirs();
        if self.overlay {
            // A directory newly marked opaque the overlayfs way hides everything the lower layers
            // had in it: an opaque marker, with its whole upper contents written again. One marked
            // so already at unpack needs nothing new (another marker would hide its contents).
            let nested = |p: &Path| p.ancestors().skip(1).any(|a| opaque.contains(a));
            let fresh: Vec<PathBuf> = self
                .upper
                .iter()
                .filter(|e| e.lower_dir && overlay_opaque(&e.meta) && !e.lower_overlay_opaque)
                .map(|e| e.path.clone())
                .filter(|p| !nested(p))
                .collect();
            opaque.extend(fresh);
        }
        let in_opaque = |p: &Path| p.ancestors().skip(1).any(|a| opaque.contains(a));
        let mut emit: Vec<bool> = self
            .upper
            .iter()
            .map(|e| {
                e.status != Status::Unchanged || opaque.contains(&e.path) || in_opaque(&e.path)
            })
            .collect();
        // Hardlink groups: when any path of a group is written, all are, so the link survives.
        let mut groups: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
        for (i, e) in self.upper.iter().enumerate() {
            if let Some(k) = link_key(&e.meta) {
                groups.entry(k).or_default().push(i);
            }
        }
        for members in groups.values() {
            if members.iter().any(|&i| emit[i]) {
                for &i in members {
                    emit[i] = true;
                }
            }
        }
        let mut first_of: HashMap<(u64, u64), &Path> = HashMap::new();
        let mut out = Vec::new();
        // The root itself, as `./`, first.
        if let Some((meta, _)) = &self.root {
            out.push(LayerEntry::Write {
                path: PathBuf::from("."),
                meta: meta.clone(),
            });
        }
        let mut deleted = self.deleted.iter().filter(|p| !in_opaque(p)).peekable();
        for (e, on) in self.upper.iter().zip(emit) {
            while let Some(d) = deleted.next_if(|d| **d < e.path) {
                out.push(LayerEntry::Whiteout { path: d.clone() });
            }
            if !on || e.meta.file_type == FileType::Socket {
                continue;
            }
            let key = link_key(&e.meta);
            if let Some(target) = key.and_then(|k| first_of.get(&k)) {
                out.push(LayerEntry::Hardlink {
                    path: e.path.clone(),
                    target: target.to_path_buf(),
                });
                continue;
            }
            let mut meta = e.meta.clone();
            if self.overlay && meta.file_type == FileType::CharDevice && meta.device == Some((0, 0))
            {
                // An overlayfs whiteout: it deletes what the lower tree had there (nothing to do
                // when the lower had nothing, or the same whiteout).
                if matches!(e.status, Status::Modified(_)) {
                    out.push(LayerEntry::Whiteout {
                        path: e.path.clone(),
                    });
                }
                continue;
            }
            if self.overlay && meta.file_type == FileType::Dir {
                // Carried by the opaque marker (when new), never as an xattr in the layer.
                meta.xattrs.remove(std::ffi::OsStr::new(OVERLAY_OPAQUE));
            }
            if let Some(k) = key {
                first_of.insert(k, &e.path);
            }
            out.push(LayerEntry::Write {
                path: e.path.clone(),
                meta,
            });
            if opaque.contains(&e.path) {
                out.push(LayerEntry::Opaque {
                    dir: e.path.clone(),
                });
            }
        }
        out.extend(deleted.map(|d| LayerEntry::Whiteout { path: d.clone() }));
        out
    }
}
