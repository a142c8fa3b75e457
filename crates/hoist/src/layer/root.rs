//! Filesystem operations confined to a root directory.
//!
//! Every path a layer names is resolved inside the root without ever leaving it: through
//! `openat2(RESOLVE_IN_ROOT)` where the kernel has it (Linux 5.6+), otherwise through an equivalent
//! component-by-component walk that opens each directory with `O_NOFOLLOW`, reads symlinks itself,
//! restarts absolute targets at the root and clamps `..` at the root. Only *parent directories* are
//! resolved this way; the final component of an entry is always handled with `*at` system calls that do
//! not follow it, so a symlink in the tree can redirect a path only to somewhere else inside the root.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// How paths are resolved inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (the kernel enforces confinement).
    Openat2,
    /// A userspace walk, one `O_NOFOLLOW` component at a time, with the same semantics.
    Walk,
}

impl Resolver {
    /// The best resolver this kernel offers (probed once per process).
    pub fn detect() -> Resolver {
        static DETECTED: OnceLock<Resolver> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            match rustix::fs::openat2(
                CWD,
                "/",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            ) {
                Ok(_) => Resolver::Openat2,
                Err(_) => Resolver::Walk,
            }
        })
    }
}

/// Most symlinks followed while resolving one path (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// A directory that all operations are confined to.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    resolver: Resolver,
    /// The most recently resolved parent directory (entries of a layer come grouped by directory).
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("path", &self.path)
            .field("resolver", &self.resolver)
            .finish()
    }
}

impl Root {
    /// Opens an existing directory as a root, with the given resolver (the best available when `None`).
    pub fn open(path: &Path, resolver: Option<Resolver>) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .ctx(|| format!("opening {}", path.display()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            resolver: resolver.unwrap_or_else(Resolver::detect),
            cache: None,
        })
    }

    /// The root's path on the host (for messages only: never used to reach entries).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory itself.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Forgets the cached parent directory; called whenever a directory is removed or replaced.
    pub fn invalidate(&mut self) {
        self.cache = None;
    }

    /// Opens the directory at `rel` (a normalised relative path, `""` for the root), following symlinks
    /// only inside the root. Returns an `O_PATH` descriptor.
    pub fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        if rel.is_empty() {
            return Ok(rustix::fs::openat(
                &self.fd,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        match self.resolver {
            Resolver::Openat2 => loop {
                match rustix::fs::openat2(
                    &self.fd,
                    OsStr::from_bytes(rel),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    // The kernel asks for a retry when a rename raced with the lookup.
                    Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                    other => return Ok(other?),
                }
            },
            Resolver::Walk => self.walk(rel),
        }
    }

    /// The userspace equivalent of `RESOLVE_IN_ROOT` for a directory.
    fn walk(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut pending: VecDeque<Vec<u8>> = split(rel).map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            let name = OsStr::from_bytes(&c);
            match rustix::fs::openat(
                cur,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => stack.push(fd),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let st = rustix::fs::statat(cur, name, AtFlags::SYMLINK_NOFOLLOW)?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        return Err(Errno::NOTDIR.into());
                    }
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(cur, name, Vec::new())?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for part in split(target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front(part.to_vec());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => self.open_dir(b""),
        }
    }

    /// The path inside the root that `rel` names once every symlink on it (the last component's too)
    /// is followed as [`Self::open_dir`] follows them: absolute targets restart at the root, `..`
    /// stops at the root. For `--keep-dirlinks`, which writes a directory entry through a symlink to a
    /// directory; what the result names is still reached through the confined resolvers.
    pub fn resolve_path(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        resolve_confined(
            rel,
            |path| self.open_dir(path),
            |dir, name| {
                let name = OsStr::from_bytes(name);
                match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                        let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
                        Ok(Some(target.into_bytes()))
                    }
                    Ok(_) | Err(Errno::NOENT) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            },
        )
    }

    /// The parent directory of `rel` (resolved inside the root) and the final component's name.
    /// Missing parent directories are created (mode 0755, owned by the caller) and reported through
    /// `created` (with their relative paths) so the caller can record them. Fails when a parent is not a directory.
    pub fn parent(
        &mut self,
        rel: &[u8],
        created: &mut dyn FnMut(&[u8]),
    ) -> io::Result<(Rc<OwnedFd>, Vec<u8>)> {
        let (dir, name) = split_last(rel);
        if let Some((p, fd)) = &self.cache
            && p == dir
        {
            return Ok((fd.clone(), name.to_vec()));
        }
        let fd = match self.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.make_dirs(dir, created)?,
            Err(e) => return Err(e),
        };
        let fd = Rc::new(fd);
        self.cache = Some((dir.to_vec(), fd.clone()));
        Ok((fd, name.to_vec()))
    }

    /// Creates every missing directory of `dir` (confined), returning the last one.
    fn make_dirs(&mut self, dir: &[u8], created: &mut dyn FnMut(&[u8])) -> io::Result<OwnedFd> {
        let mut fd = self.open_dir(b"")?;
        let mut prefix: Vec<u8> = Vec::new();
        for c in split(dir) {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(c);
            match self.open_dir(&prefix) {
                Ok(next) => fd = next,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // `fd` is the resolved parent: create the component there, never following it.
                    match rustix::fs::mkdirat(&fd, OsStr::from_bytes(c), Mode::from_raw_mode(0o755))
                    {
                        Ok(()) => created(&prefix),
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    fd = self.open_dir(&prefix)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(fd)
    }

    /// Reads a small file at `rel` inside the root (symlinks followed only inside the root), at most
    /// `max` bytes. `Ok(None)` when it does not exist.
    pub fn read_file(&self, rel: &[u8], max: u64) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let (dir, name) = split_last(rel);
        let what = || format!("reading {} in {}", show(rel), self.path.display());
        let opened = match self.resolver {
            Resolver::Openat2 => rustix::fs::openat2(
                &self.fd,
                OsStr::from_bytes(rel),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ),
            Resolver::Walk => self.walk_file(dir, name),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(Error::io(what(), e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(what(), e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(None);
        }
        let mut out = Vec::new();
        std::fs::File::from(fd)
            .take(max)
            .read_to_end(&mut out)
            .ctx(what)?;
        Ok(Some(out))
    }

    fn walk_file(&self, dir: &[u8], name: &[u8]) -> rustix::io::Result<OwnedFd> {
        let mut dir = dir.to_vec();
        let mut name = name.to_vec();
        for _ in 0..MAX_SYMLINKS {
            let parent = self
                .walk(&dir)
                .map_err(|e| Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)))?;
            let os = OsStr::from_bytes(&name);
            match rustix::fs::openat(
                &parent,
                os,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Err(Errno::LOOP) => {
                    let target = rustix::fs::readlinkat(&parent, os, Vec::new())?;
                    let mut full = if target.as_bytes().first() == Some(&b'/') {
                        Vec::new()
                    } else {
                        dir.clone()
                    };
                    if !full.is_empty() {
                        full.push(b'/');
                    }
                    full.extend_from_slice(target.as_bytes());
                    let norm = lexical_clean(&full);
                    let (d, n) = split_last(&norm);
                    dir = d.to_vec();
                    name = n.to_vec();
                    if name.is_empty() {
                        return Err(Errno::ISDIR);
                    }
                }
                other => return other,
            }
        }
        Err(Errno::LOOP)
    }
}

/// The non-empty components of a `/`-separated path.
pub fn split(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|b| *b == b'/').filter(|c| !c.is_empty())
}

/// Splits a normalised relative path into (parent, name); the parent of a top-level name is `""`.
pub fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// Cleans a path lexically: drops empty and `.` components, applies `..` (clamped at the top), and
/// removes any leading `/`. Used for paths that are resolved later inside a root anyway.
pub fn lexical_clean(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in split(path) {
        match c {
            b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join(&b'/')
}

/// A path's bytes for messages (lossy for non-UTF-8 names).
pub fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Joins a normalised parent and a name.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
    v.extend_from_slice(parent);
    if !parent.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

/// Removes `name` in `dir` and, when it is a directory, everything below it, without following any
/// symlink. Directories without write or search permission are made accessible first.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let os = OsStr::from_bytes(name);
    let st = match rustix::fs::statat(dir, os, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match rustix::fs::unlinkat(dir, os, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    clear_dir_at(dir, name, &mut |_| false)?;
    match rustix::fs::unlinkat(dir, os, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes every child of the directory `name` in `dir` for which `keep` is false (recursively).
/// `keep` receives the child's name.
pub fn clear_dir_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    keep: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let os = OsStr::from_bytes(name);
    let open = || {
        rustix::fs::openat(
            dir,
            os,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let fd = match open() {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            rustix::fs::chmodat(dir, os, Mode::from_raw_mode(0o700), AtFlags::empty())?;
            open()?
        }
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    if st.st_mode & 0o300 != 0o300 && rustix::process::geteuid().as_raw() != 0 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode((st.st_mode & 0o7777) | 0o700))?;
    }
    let mut names: Vec<Vec<u8>> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." || keep(n) {
            continue;
        }
        names.push(n.to_vec());
    }
    for n in names {
        remove_all_at(fd.as_fd(), &n)?;
    }
    Ok(())
}

/// The path inside a root that `rel` names once every symlink on it (the last component's too) is
/// followed: absolute targets restart at the root, `..` stops at the root, more than `MAX_SYMLINKS`
/// links is `ELOOP`. The one rule of `--keep-dirlinks` for every target a layer is applied to
/// ([`Root::resolve_path`] on disk, the export's in-memory tree): `open_dir` opens a directory by its
/// resolved path (`ENOENT` below a missing one: nothing there is a symlink), `link_at` says whether a
/// name in it is a symlink and to what.
pub(crate) fn resolve_confined<D>(
    rel: &[u8],
    open_dir: impl Fn(&[u8]) -> io::Result<D>,
    link_at: impl Fn(&D, &[u8]) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut pending: VecDeque<Vec<u8>> = split(rel).map(<[u8]>::to_vec).collect();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            names.pop();
            continue;
        }
        let dir = match open_dir(&names.join(&b'/')) {
            Ok(dir) => dir,
            // Below a missing directory nothing is a symlink.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                names.push(c);
                continue;
            }
            Err(e) => return Err(e),
        };
        match link_at(&dir, &c)? {
            Some(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP.into());
                }
                if target.first() == Some(&b'/') {
                    names.clear();
                }
                for part in split(&target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(part.to_vec());
                }
            }
            None => names.push(c),
        }
    }
    Ok(names.join(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_clean_clamps() {
        assert_eq!(lexical_clean(b"/../a/./b/../c"), b"a/c");
        assert_eq!(lexical_clean(b"../../"), b"");
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn both_resolvers_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../outside", root.join("up")).unwrap();
        std::os::unix::fs::symlink(t.path().join("outside"), root.join("host")).unwrap();
        for r in [Resolver::Walk, Resolver::detect()] {
            let root = Root::open(&root, Some(r)).unwrap();
            let id = |fd: &OwnedFd| {
                let s = rustix::fs::fstat(fd).unwrap();
                (s.st_dev, s.st_ino)
            };
            let real = id(&root.open_dir(b"real").unwrap());
            assert_eq!(id(&root.open_dir(b"abs").unwrap()), real);
            assert!(root.open_dir(b"abs/sub").is_ok());
            // `up` clamps at the root: "outside" is looked up inside the root, where it is absent.
            assert!(root.open_dir(b"up").is_err());
            // an absolute host path is taken relative to the root.
            assert!(root.open_dir(b"host").is_err());
            assert_eq!(id(&root.open_dir(b"../../real").unwrap()), real);
            // resolve_path names what open_dir reaches, never a path outside the root.
            assert_eq!(root.resolve_path(b"abs/sub").unwrap(), b"real/sub");
            assert_eq!(root.resolve_path(b"up").unwrap(), b"outside");
            assert_eq!(
                root.resolve_path(b"host/x").unwrap(),
                t.path()
                    .join("outside/x")
                    .strip_prefix("/")
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
            );
            assert_eq!(root.resolve_path(b"../../real/../abs").unwrap(), b"real");
        }
    }
}
