//! Reading a directory tree for diffing: a sorted walk through directory descriptors that never
//! follows a symlink (even one swapped in while it runs), the metadata of each entry (`statat`,
//! extended attributes), the one opener for file contents ([`open_in_tree`]), and umoci's rootless
//! ownership record.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{Entries, FileType, LowerContent, LowerTree, Meta};
use crate::error::{Error, IoContext, Result};
use crate::owner::{ROOTLESS_XATTR, RootlessOwner, parse_rootless};

/// Xattrs that never go into a layer: the rootless record (it is turned back into the owner) and the
/// host's SELinux label.
const SKIPPED_XATTRS: &[&str] = &[ROOTLESS_XATTR, "security.selinux"];

/// A plain directory as a [`LowerTree`] (and the walker for the upper side of every diff).
#[derive(Debug, Clone)]
pub struct DirTree {
    root: PathBuf,
}

impl DirTree {
    /// A tree rooted at `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        DirTree {
            root: root.as_ref().to_path_buf(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// An entry of the tree whose mode shut its unprivileged owner out, opened for the owner while hoist
/// reads it (as umoci's rootless walk does): dropping it gives the entry its own mode back.
struct Unlocked {
    node: std::os::fd::OwnedFd,
    mode: u32,
    shown: String,
    restored: bool,
}

impl Unlocked {
    /// Opens `node` (an `O_PATH` descriptor of a directory or regular file, `st` its stat) to its owner
    /// when the owner is this unprivileged process and `node`'s mode lacks what reading it needs
    /// (`r-x` for a directory, `r--` for a file). `None` when nothing needs doing or cannot be done
    /// (another owner, root, no `/proc`): the read then fails with the system's own error.
    fn open_up(
        node: &std::os::fd::OwnedFd,
        st: &rustix::fs::Stat,
        shown: &Path,
    ) -> Result<Option<Unlocked>> {
        let need = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => 0o500,
            rustix::fs::FileType::RegularFile => 0o400,
            _ => return Ok(None),
        };
        let euid = rustix::process::geteuid();
        if st.st_mode & need == need
            || euid.is_root()
            || st.st_uid != euid.as_raw()
            || !proc_fd_available()
        {
            return Ok(None);
        }
        let node = node
            .try_clone()
            .ctx(|| format!("opening {}", shown.display()))?;
        let mode = st.st_mode & 0o7777;
        // Through /proc/self/fd, the chmod reaches the inode this O_PATH descriptor names (never a
        // symlink swapped in since); fchmod does not take an O_PATH descriptor.
        let via = format!("/proc/self/fd/{}", node.as_raw_fd());
        std::fs::set_permissions(
            &via,
            std::os::unix::fs::PermissionsExt::from_mode(mode | need),
        )
        .ctx(|| format!("opening the mode of {} to read it", shown.display()))?;
        Ok(Some(Unlocked {
            node,
            mode,
            shown: shown.display().to_string(),
            restored: false,
        }))
    }

    /// Gives the entry its own mode back, reporting a failure.
    fn restore(mut self) -> Result<()> {
        self.restored = true;
        self.chmod_back()
    }

    fn chmod_back(&self) -> Result<()> {
        let via = format!("/proc/self/fd/{}", self.node.as_raw_fd());
        std::fs::set_permissions(
            &via,
            std::os::unix::fs::PermissionsExt::from_mode(self.mode),
        )
        .ctx(|| format!("restoring the mode of {}", self.shown))
    }
}

impl Drop for Unlocked {
    fn drop(&mut self) {
        // On an error path: restore as well as possible (the error being returned matters more).
        if !self.restored {
            let _ = self.chmod_back();
        }
    }
}

/// Opens the regular file `rel` below `root` for reading without following any symlink: every
/// directory on the way is opened relative to the previous one with `O_NOFOLLOW | O_DIRECTORY`, the
/// file itself with `O_NOFOLLOW` (and `O_NONBLOCK`, so a FIFO put in its place cannot block). When
/// `expect` is given, the opened inode must be the one the walk saw: same device and inode, a regular
/// file of the same size. So a file swapped for a symlink (or anything else) between the walk and the
/// read is an error, never a host file in a layer. This is the one opener for content read from a
/// tree being diffed, repacked or recorded.
pub(crate) fn open_in_tree(root: &Path, rel: &Path, expect: Option<&Meta>) -> Result<fs::File> {
    use rustix::fs::{Mode, OFlags, openat};
    let shown = || root.join(rel).display().to_string();
    let fail = |why: String| Error::Other(format!("{}: {why}", shown()));
    let names: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(n) => Ok(n),
            _ => Err(fail("not a plain relative path".into())),
        })
        .collect::<Result<_>>()?;
    let Some((last, dirs)) = names.split_last() else {
        return Err(fail("not a file".into()));
    };
    let mut dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("opening {}", root.display()), e.into()))?;
    let changed = |what: &str| {
        fail(format!(
            "{what} since the tree was scanned (changed while hoist read it?); run again"
        ))
    };
    // Directories (and the file) shut to their unprivileged owner are opened to it for the open
    // alone, then given their modes back.
    let mut unlocked = Vec::new();
    let mut walked = PathBuf::new();
    for name in dirs {
        dir = openat(
            &dir,
            *name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP => {
                changed("a directory on its path is no longer a directory")
            }
            e => Error::io(format!("opening {}", shown()), e.into()),
        })?;
        walked.push(name);
        let st = rustix::fs::fstat(&dir)
            .map_err(|e| Error::io(format!("reading {}", shown()), e.into()))?;
        unlocked.extend(Unlocked::open_up(&dir, &st, &root.join(&walked))?);
    }
    let open_file = || {
        openat(
            &dir,
            *last,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let opened = match open_file() {
        Err(rustix::io::Errno::ACCESS) => {
            let node = openat(
                &dir,
                *last,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io(format!("opening {}", shown()), e.into()))?;
            let st = rustix::fs::fstat(&node)
                .map_err(|e| Error::io(format!("reading {}", shown()), e.into()))?;
            match Unlocked::open_up(&node, &st, &root.join(rel))? {
                Some(u) => {
                    let opened = open_file();
                    u.restore()?;
                    opened
                }
                None => Err(rustix::io::Errno::ACCESS),
            }
        }
        other => other,
    };
    for u in unlocked.into_iter().rev() {
        u.restore()?;
    }
    let fd = opened.map_err(|e| match e {
        rustix::io::Errno::LOOP => changed("it became a symlink"),
        e => Error::io(format!("opening {}", shown()), e.into()),
    })?;
    let st =
        rustix::fs::fstat(&fd).map_err(|e| Error::io(format!("reading {}", shown()), e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(changed("it is no longer a regular file"));
    }
    if let Some(m) = expect {
        if let Some((dev, ino, _)) = m.inode
            && (st.st_dev, st.st_ino) != (dev, ino)
        {
            return Err(changed("it was replaced by another file"));
        }
        if u64::try_from(st.st_size).ok() != Some(m.size) {
            return Err(changed("its size changed"));
        }
    }
    Ok(fs::File::from(fd))
}

/// Lists the tree at `root` in path order (names compared as bytes, a directory's contents right
/// after it) without ever following a symlink: every directory is read through a descriptor opened
/// relative to its parent's with `O_NOFOLLOW | O_DIRECTORY` and checked to be the inode listed, and
/// each entry's metadata comes from `statat(AT_SYMLINK_NOFOLLOW)` on the parent's descriptor, its
/// xattrs from an `O_PATH` descriptor of that same inode. So a directory swapped for a symlink while
/// the walk runs makes it fail, never list (or take metadata from) what the link points at.
fn walk_fd(root: &Path, out: &mut Vec<(PathBuf, Meta)>) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("opening {}", root.display()), e.into()))?;
    walk_dir(root, fd, PathBuf::new(), out)
}

fn walk_dir(
    root: &Path,
    dir: std::os::fd::OwnedFd,
    rel: PathBuf,
    out: &mut Vec<(PathBuf, Meta)>,
) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let shown = |name: &[u8]| {
        root.join(&rel)
            .join(std::ffi::OsStr::from_bytes(name))
            .display()
            .to_string()
    };
    let mut names: Vec<Vec<u8>> = Vec::new();
    let listing = rustix::fs::Dir::read_from(&dir)
        .map_err(|e| Error::io(format!("walking {}", shown(b"")), e.into()))?;
    for entry in listing {
        let entry = entry.map_err(|e| Error::io(format!("walking {}", shown(b"")), e.into()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    for name in names {
        let os = std::ffi::OsStr::from_bytes(&name);
        let path = rel.join(os);
        let full = root.join(&path);
        let st = rustix::fs::statat(&dir, os, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(format!("reading metadata of {}", full.display()), e.into()))?;
        let ident = (st.st_dev, st.st_ino);
        let file_type = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::RegularFile => FileType::Regular,
            rustix::fs::FileType::Directory => FileType::Dir,
            rustix::fs::FileType::Symlink => FileType::Symlink,
            rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
            rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
            rustix::fs::FileType::Fifo => FileType::Fifo,
            _ => FileType::Socket,
        };
        let changed = || {
            Error::Other(format!(
                "{} changed while the tree was walked; run again",
                full.display()
            ))
        };
        let (link_target, xattr_source) = if file_type == FileType::Symlink {
            let target = rustix::fs::readlinkat(&dir, os, Vec::new())
                .map_err(|e| Error::io(format!("reading symlink {}", full.display()), e.into()))?;
            (
                Some(PathBuf::from(std::ffi::OsString::from_vec(
                    target.into_bytes(),
                ))),
                None,
            )
        } else {
            // O_PATH opens any type without side effects (a device is not opened for I/O).
            let node = rustix::fs::openat(
                &dir,
                os,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io(format!("opening {}", full.display()), e.into()))?;
            let now = rustix::fs::fstat(&node)
                .map_err(|e| Error::io(format!("reading {}", full.display()), e.into()))?;
            if (now.st_dev, now.st_ino) != ident {
                return Err(changed());
            }
            (None, Some(node))
        };
        let xattr_path = xattr_source
            .as_ref()
            .filter(|_| proc_fd_available())
            .map(|fd| PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())));
        // An entry shut to its unprivileged owner is opened to it while it is read (its directory
        // walked); `st` keeps its own mode, which is what the layer records.
        let unlocked = match &xattr_source {
            Some(node) => Unlocked::open_up(node, &st, &full)?,
            None => None,
        };
        let (xattrs, rootless) = read_xattrs(&full, xattr_path.as_deref())?;
        let meta = Meta {
            file_type,
            mode: st.st_mode & 0o7777,
            uid: rootless.uid.unwrap_or(st.st_uid),
            gid: rootless.gid.unwrap_or(st.st_gid),
            size: if file_type == FileType::Regular {
                u64::try_from(st.st_size).unwrap_or(0)
            } else {
                0
            },
            mtime: st.st_mtime,
            mtime_nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            link_target,
            device: matches!(file_type, FileType::CharDevice | FileType::BlockDevice)
                .then(|| (libc::major(st.st_rdev), libc::minor(st.st_rdev))),
            xattrs,
            inode: Some((st.st_dev, st.st_ino, st.st_nlink)),
            ctime: Some((st.st_ctime, u32::try_from(st.st_ctime_nsec).unwrap_or(0))),
        };
        out.push((path.clone(), meta));
        if file_type == FileType::Dir {
            let sub = rustix::fs::openat(
                &dir,
                os,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP => changed(),
                e => Error::io(format!("walking {}", full.display()), e.into()),
            })?;
            let now = rustix::fs::fstat(&sub)
                .map_err(|e| Error::io(format!("walking {}", full.display()), e.into()))?;
            if (now.st_dev, now.st_ino) != ident {
                return Err(changed());
            }
            walk_dir(root, sub, path, out)?;
        }
        if let Some(u) = unlocked {
            u.restore()?;
        }
    }
    Ok(())
}

/// True when `/proc/self/fd` can name descriptors (procfs mounted); otherwise xattrs are read by path.
fn proc_fd_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// The xattrs that belong in a layer and the rootless owner record, read through `via` (a
/// `/proc/self/fd` path of an `O_PATH` descriptor, followed to its inode) or, without it, from
/// `full` itself (never following a final symlink); errors name `full`.
fn read_xattrs(
    full: &Path,
    via: Option<&Path>,
) -> Result<(BTreeMap<OsString, Vec<u8>>, RootlessOwner)> {
    let mut xattrs = BTreeMap::new();
    let mut rootless = RootlessOwner::default();
    let listed = match via {
        Some(p) => xattr::list_deref(p),
        None => xattr::list(full),
    };
    let names = match listed {
        Ok(n) => n.collect::<Vec<OsString>>(),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
        Err(e) => {
            return Err(Error::io(
                format!("listing xattrs of {}", full.display()),
                e,
            ));
        }
    };
    for name in names {
        let value = match via {
            Some(p) => xattr::get_deref(p, &name),
            None => xattr::get(full, &name),
        }
        .ctx(|| format!("reading xattrs of {}", full.display()))?;
        let Some(value) = value else {
            continue;
        };
        if name.as_bytes() == ROOTLESS_XATTR.as_bytes() {
            rootless = parse_rootless(&value)
                .map_err(|e| Error::Other(format!("{}: {e}", full.display())))?;
        }
        if SKIPPED_XATTRS
            .iter()
            .any(|s| s.as_bytes() == name.as_bytes())
        {
            continue;
        }
        xattrs.insert(name, value);
    }
    Ok((xattrs, rootless))
}

/// Reads the metadata of `full` (never following a symlink), reporting errors against `full`.
pub(crate) fn read_meta(full: &Path) -> Result<Meta> {
    let m = fs::symlink_metadata(full).ctx(|| format!("reading metadata of {}", full.display()))?;
    meta_from(full, &m)
}

fn meta_from(full: &Path, m: &fs::Metadata) -> Result<Meta> {
    let ft = m.file_type();
    let file_type = if ft.is_file() {
        FileType::Regular
    } else if ft.is_dir() {
        FileType::Dir
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else if ft.is_fifo() {
        FileType::Fifo
    } else {
        FileType::Socket
    };
    let link_target = if file_type == FileType::Symlink {
        Some(fs::read_link(full).ctx(|| format!("reading symlink {}", full.display()))?)
    } else {
        None
    };
    let device = matches!(file_type, FileType::CharDevice | FileType::BlockDevice).then(|| {
        let rdev = m.rdev();
        (libc::major(rdev), libc::minor(rdev))
    });
    // Symlinks carry no user.* xattrs on Linux, and listing them can fail on some filesystems.
    let (xattrs, rootless) = if file_type == FileType::Symlink {
        (BTreeMap::new(), RootlessOwner::default())
    } else {
        read_xattrs(full, None)?
    };
    Ok(Meta {
        file_type,
        mode: m.mode() & 0o7777,
        uid: rootless.uid.unwrap_or(m.uid()),
        gid: rootless.gid.unwrap_or(m.gid()),
        size: if file_type == FileType::Regular {
            m.size()
        } else {
            0
        },
        mtime: m.mtime(),
        mtime_nsec: u32::try_from(m.mtime_nsec()).unwrap_or(0),
        link_target,
        device,
        xattrs,
        inode: Some((m.dev(), m.ino(), m.nlink())),
        ctime: Some((m.ctime(), u32::try_from(m.ctime_nsec()).unwrap_or(0))),
    })
}

impl LowerTree for DirTree {
    fn entries(&self) -> Result<Entries<'_>> {
        let root_meta = fs::symlink_metadata(&self.root)
            .ctx(|| format!("reading directory {}", self.root.display()))?;
        if !root_meta.is_dir() {
            return Err(Error::Other(format!(
                "{} is not a directory",
                self.root.display()
            )));
        }
        let mut out = Vec::new();
        walk_fd(&self.root, &mut out)?;
        Ok(Box::new(out.into_iter().map(Ok)))
    }

    fn lookup(&self, path: &Path) -> Result<Option<Meta>> {
        let full = self.root.join(path);
        match fs::symlink_metadata(&full) {
            Ok(m) => Ok(Some(meta_from(&full, &m)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", full.display()), e)),
        }
    }

    fn root_meta(&self) -> Result<Option<Meta>> {
        read_meta(&self.root).map(Some)
    }

    fn content(&self, path: &Path) -> Result<LowerContent<'_>> {
        let f = open_in_tree(&self.root, path, None)?;
        Ok(LowerContent::Reader(Box::new(f)))
    }
}
