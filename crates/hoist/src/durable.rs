//! Local files by path: the one way hoist writes a file, its temp files, and opening a local file
//! for reading.
//!
//! - **Writing** ([`Output`], [`write_file`]): a regular file or a new path is written to a temp file
//!   in the same directory, fsynced, renamed into place, and the directory fsynced, so a reader sees
//!   the old file or the whole new one. A path that exists and is not a regular file (a symlink, a
//!   FIFO, a character device such as `/dev/stdout`) is written through, streaming, and stays what
//!   it is. New files get mode `0666` less the umask (0644 by default), as skopeo's do; auth files
//!   ask for `0600`. That rule is for paths the user names; a file hoist names inside a directory it
//!   manages (a layout's `index.json`, a `dir:` blob, an unpack's state file) is always replaced by
//!   rename ([`Output::replace`]), so a symlink planted there never sends a write outside the tree.
//! - **Temp files** ([`TempFile`], [`TempDir`]) are named [`TEMP_PREFIX`]`*`. A live temp file is
//!   `flock`ed by its writer, so [`remove_stale`] (run by the next writer of a layout or of an
//!   archive's directory, and by `gc`) removes only the ones no live process owns. Their names
//!   carry the pid and the directories they are made in are registered, so
//!   [`remove_temp_files_on_signals`] can delete this process's own when SIGINT or SIGTERM ends it.
//! - **Signals**: [`remove_temp_files_on_signals`] makes SIGINT/SIGTERM remove those temp files and
//!   end the process; `cancel::cancel_on_signals` makes the first one cancel a `CancelToken` instead, so
//!   the running operation stops at its next check and unwinds, with the immediate end as the
//!   fallback on a second signal or when the operation does not stop within a grace period.
//! - **Reading** ([`open_regular`]): opened with `O_NONBLOCK` (a FIFO cannot hang the open) and
//!   accepted only when it is a regular file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

use crate::error::{Error, IoContext, Result};
/// The directory a file written at `path` lands in (`.` for a bare file name): where its temp file
/// goes, so the final rename stays on one filesystem.
pub fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Prefix of hoist's temp files and directories; stale ones are removed by `gc` and the next writer.
pub const TEMP_PREFIX: &str = ".hoist-tmp-";

/// The mode new files are created with, before the umask: 0644 with the usual umask 022.
pub const DEFAULT_MODE: u32 = 0o666;
/// The mode of files that hold secrets (auth files), before the umask.
pub const PRIVATE_MODE: u32 = 0o600;

/// Directories this process is making temp files in, with how many makers each (the signal
/// thread removes this process's temp entries there).
static LIVE: Mutex<BTreeMap<PathBuf, usize>> = Mutex::new(BTreeMap::new());

/// The name prefix of this process's temp files and directories: [`TEMP_PREFIX`] and the pid, so
/// the signal thread can tell its own from other processes' in a shared directory.
fn own_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// Keeps a directory in [`LIVE`] while a temp file or directory of this process may be in it. Taken
/// before the temp entry is created, so no entry exists unregistered.
#[derive(Debug)]
struct Registration(PathBuf);

impl Registration {
    fn new(dir: &Path) -> Self {
        *LIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(dir.to_path_buf())
            .or_insert(0) += 1;
        Registration(dir.to_path_buf())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.0);
            }
        }
    }
}

/// Removes this process's temp files and directories (the process is about to die). Holds [`LIVE`]
/// to the end, so no new temp entry is started; a second pass catches what a running writer
/// recreated meanwhile (`create_dir_all` inside a staging directory).
fn remove_live() {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = own_prefix();
    for pass in 0..2 {
        if pass == 1 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for dir in live.keys() {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_name().to_string_lossy().starts_with(&prefix) {
                    continue;
                }
                let path = e.path();
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {
                        let _ = fs::remove_dir_all(&path);
                    }
                    Ok(_) => {
                        let _ = fs::remove_file(&path);
                    }
                    Err(_) => {}
                }
            }
        }
    }
    // Keep the lock: the caller ends the process.
    std::mem::forget(live);
}

/// The owner new files in `dir` should get: the directory's, when running as root and the directory
/// belongs to someone else (umoci keeps a layout's owner the same way); `None` otherwise.
pub fn owner_for(dir: &Path) -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let m = fs::metadata(dir).ok()?;
    (m.uid() != 0 || m.gid() != 0).then_some((m.uid(), m.gid()))
}

fn chown_file(file: &File, owner: Option<(u32, u32)>, what: &Path) -> Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))
            .ctx(|| format!("giving {} to uid {uid}", what.display()))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents; each directory created gets `owner` (see [`owner_for`]).
pub fn create_dir_all(dir: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let ctx = || format!("creating {}", dir.display());
    let Some((uid, gid)) = owner else {
        return fs::create_dir_all(dir).ctx(ctx);
    };
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    for p in missing.into_iter().rev() {
        match fs::create_dir(p) {
            Ok(()) => std::os::unix::fs::chown(p, Some(uid), Some(gid)).ctx(ctx)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(ctx(), e)),
        }
    }
    Ok(())
}

/// Fsyncs a directory, so a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}

/// A temp file named [`TEMP_PREFIX`]`*`, `flock`ed while it lives (so the stale-file cleaner, `remove_stale`, leaves it
/// alone), registered for removal on SIGINT/SIGTERM, and deleted on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    tmp: tempfile::NamedTempFile,
    _live: Registration,
}

impl TempFile {
    /// A new temp file in `dir` with mode [`DEFAULT_MODE`] less the umask.
    pub fn new_in(dir: &Path) -> Result<Self> {
        Self::with_mode(dir, DEFAULT_MODE)
    }

    /// A new temp file in `dir` with `mode` less the umask.
    pub fn with_mode(dir: &Path, mode: u32) -> Result<Self> {
        let ctx = || format!("creating a temp file in {}", dir.display());
        for _ in 0..8 {
            let live = Registration::new(dir);
            let tmp = tempfile::Builder::new()
                .prefix(&own_prefix())
                .permissions(Permissions::from_mode(mode))
                .tempfile_in(dir)
                .ctx(ctx)?;
            // A cleaner may have taken it for stale between its creation and the lock: it holds
            // the lock while it looks (the lock is taken: EWOULDBLOCK), or has removed the name
            // (it is gone or another file's). Either way a fresh one is made.
            match flock(tmp.as_file(), FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(e) => return Err(Error::io(ctx(), e.into())),
            }
            if same_file(tmp.as_file(), tmp.path()) {
                return Ok(TempFile { tmp, _live: live });
            }
        }
        Err(Error::Other(format!(
            "{}: another process kept removing the new temp file",
            ctx()
        )))
    }

    /// The temp file's path.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The open file.
    pub fn as_file(&self) -> &File {
        self.tmp.as_file()
    }

    /// The open file, mutably.
    pub fn as_file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Opens the temp file again (a new file offset) for reading.
    pub fn reopen(&self) -> io::Result<File> {
        self.tmp.reopen()
    }

    /// Fsyncs the file, gives it `owner` (the directory's owner, for a root caller in another user's layout), renames it to `dest` (same directory
    /// or filesystem) and fsyncs `dest`'s directory.
    pub fn persist(self, dest: &Path, owner: Option<(u32, u32)>) -> Result<()> {
        self.as_file()
            .sync_all()
            .ctx(|| format!("syncing {}", dest.display()))?;
        chown_file(self.as_file(), owner, dest)?;
        let TempFile { tmp, _live } = self;
        tmp.persist(dest)
            .map_err(|e| Error::io(format!("renaming into {}", dest.display()), e.error))?;
        sync_dir(&dir_of(dest))
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_file_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_file_mut().flush()
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A temp directory named [`TEMP_PREFIX`]`*`, `flock`ed while it lives (so [`remove_stale`] leaves
/// it alone), registered for removal on SIGINT/SIGTERM and removed on drop. A layout staged in it
/// goes in a subdirectory: the layout's own writer lock is an `flock` on its directory, which would
/// conflict with this one.
#[derive(Debug)]
pub struct TempDir {
    // Field order: the lock is released after the directory is removed.
    dir: tempfile::TempDir,
    _lock: File,
    _live: Registration,
}

impl TempDir {
    /// A new temp directory in `parent`.
    pub fn new_in(parent: &Path) -> Result<Self> {
        let ctx = || format!("creating a staging directory in {}", parent.display());
        for _ in 0..8 {
            let live = Registration::new(parent);
            let dir = tempfile::Builder::new()
                .prefix(&own_prefix())
                .tempdir_in(parent)
                .ctx(ctx)?;
            let lock = File::open(dir.path()).ctx(ctx)?;
            // As for a temp file: a cleaner may have taken it between its creation and the lock.
            match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(e) => return Err(Error::io(ctx(), e.into())),
            }
            if same_file(&lock, dir.path()) {
                return Ok(TempDir {
                    dir,
                    _lock: lock,
                    _live: live,
                });
            }
        }
        Err(Error::Other(format!(
            "{}: another process kept removing it",
            ctx()
        )))
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the temp files and directories named [`TEMP_PREFIX`]`*` in `dir` that no live process
/// holds (a live one is `flock`ed by its writer); returns how many were removed. Entries that are
/// symlinks, or that cannot be opened or removed, are left alone.
pub fn remove_stale(dir: &Path) -> Result<usize> {
    find_stale(dir, true).map(|v| v.len())
}

/// The stale temp files and directories of `dir`, as [`remove_stale`] finds them; removed when
/// `remove` (each while its lock is held), only listed otherwise.
pub fn find_stale(dir: &Path, remove: bool) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() && !meta.is_file() {
            continue;
        }
        let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() || !same_file(&f, &path) {
            continue;
        }
        if !remove {
            removed.push(path);
            continue;
        }
        let gone = if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        // Best effort: another user's leftover in a shared directory (sticky /tmp) may not be ours
        // to remove, and must not fail this run.
        match gone {
            Ok(()) => removed.push(path),
            Err(e) => tracing::debug!("leaving {}: {e}", path.display()),
        }
    }
    Ok(removed)
}

/// True when [`Output::create`] would write `target` through (it exists and is a symlink, FIFO,
/// device or socket), false for a regular file or a new path; a directory is an error.
pub fn writes_through(target: &Path) -> Result<bool> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_file() => Ok(false),
        Ok(m) if m.is_dir() => Err(Error::io(
            format!("writing {}", target.display()),
            io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"),
        )),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("checking {}", target.display()), e)),
    }
}

/// The directory for scratch files of an output to `target`: beside it for a regular file or a new
/// path, else (`/dev/stdout`, a FIFO, a symlink) the system temp directory.
pub fn scratch_dir_for(target: &Path) -> Result<PathBuf> {
    Ok(if writes_through(target)? {
        std::env::temp_dir()
    } else {
        dir_of(target)
    })
}

/// A file being written to a path by the rule of this module: a temp file renamed over the target on
/// [`Output::commit`] when the target is a regular file or absent, else the target itself opened for
/// writing (a FIFO, device or symlink is written through and stays what it is). Dropped uncommitted,
/// the temp file is removed and the target is untouched.
#[derive(Debug)]
pub struct Output {
    target: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Temp {
        tmp: TempFile,
        owner: Option<(u32, u32)>,
    },
    Through(File),
}

impl Output {
    /// Starts writing `target` with mode [`DEFAULT_MODE`] less the umask.
    pub fn create(target: &Path) -> Result<Output> {
        Self::create_with(target, DEFAULT_MODE, None)
    }

    /// Starts writing `target`, a file hoist names inside a directory it manages: always a temp file
    /// renamed over it on commit (a symlink or FIFO there is replaced, never followed).
    pub fn replace(target: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<Output> {
        Ok(Output {
            target: target.to_path_buf(),
            kind: Kind::Temp {
                tmp: TempFile::with_mode(&dir_of(target), mode)?,
                owner,
            },
        })
    }

    /// Starts writing `target`: a new file gets `mode` less the umask, and `owner` when given.
    pub fn create_with(target: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<Output> {
        if !writes_through(target)? {
            return Self::replace(target, mode, owner);
        }
        let kind = {
            // Opening a FIFO for writing waits for its reader, as any writer of a FIFO does.
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(target)
                .ctx(|| format!("opening {} for writing", target.display()))?;
            Kind::Through(f)
        };
        Ok(Output {
            target: target.to_path_buf(),
            kind,
        })
    }

    /// The file being written.
    pub fn file(&self) -> &File {
        match &self.kind {
            Kind::Temp { tmp, .. } => tmp.as_file(),
            Kind::Through(f) => f,
        }
    }

    /// The path being written.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Finishes: a temp file is fsynced and renamed over the target (directory fsynced); a target
    /// written through is fsynced when it is a regular file.
    pub fn commit(self) -> Result<()> {
        match self.kind {
            Kind::Temp { tmp, owner } => tmp.persist(&self.target, owner),
            Kind::Through(f) => {
                if f.metadata().is_ok_and(|m| m.is_file()) {
                    f.sync_all()
                        .ctx(|| format!("syncing {}", self.target.display()))?;
                }
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

/// Writes `bytes` to `target` by the rule of [`Output`] (mode [`DEFAULT_MODE`] less the umask).
pub fn write_file(target: &Path, bytes: &[u8]) -> Result<()> {
    write_file_with(target, bytes, DEFAULT_MODE, None)
}

/// Writes `bytes` to `target`, a file hoist names inside a directory it manages (see
/// [`Output::replace`]): temp file, fsync, rename, fsync the directory.
pub fn replace_file(target: &Path, bytes: &[u8], owner: Option<(u32, u32)>) -> Result<()> {
    let mut out = Output::replace(target, DEFAULT_MODE, owner)?;
    out.write_all(bytes)
        .ctx(|| format!("writing {}", target.display()))?;
    out.commit()
}

/// Writes `bytes` to `target` by the rule of [`Output`], a new file with `mode` and `owner`.
pub fn write_file_with(
    target: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let mut out = Output::create_with(target, mode, owner)?;
    out.write_all(bytes)
        .ctx(|| format!("writing {}", target.display()))?;
    out.commit()
}

/// An exclusive `flock` on the file `PATH.lock` beside `path`, held until dropped: it serialises the
/// read-modify-write of `path` between processes (a lock on `path` itself would be lost when the file
/// is replaced by rename).
#[derive(Debug)]
#[cfg_attr(not(feature = "registry"), allow(dead_code))] // used by the registry transport only
pub struct FileLock {
    _file: File,
}

/// Blocks until the lock beside `path` is held (see [`FileLock`]); the lock file is created if missing.
#[cfg_attr(not(feature = "registry"), allow(dead_code))] // used by the registry transport only
pub fn lock_beside(path: &Path) -> Result<FileLock> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(DEFAULT_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&lock_path)
        .ctx(|| format!("opening lock file {}", lock_path.display()))?;
    flock(&file, FlockOperation::LockExclusive)
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e.into()))?;
    Ok(FileLock { _file: file })
}

/// Opens a local file for reading without hanging on a FIFO (`O_NONBLOCK`, cleared once open) and
/// only if it is a regular file; `nofollow` refuses a symlink at the last component. A file of
/// another kind is an `InvalidInput` error saying what it is.
pub fn open_regular(path: &Path, nofollow: bool) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {}, not a regular file", path.display(), kind_of(ft)),
        ));
    }
    // SAFETY: F_GETFL/F_SETFL on a descriptor this function owns.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
    Ok(f)
}

/// What a file type is, for messages: "a FIFO", "a directory", "a device", "a socket", "a symlink".
pub fn kind_of(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "a regular file"
    }
}

/// The write end of the pipe the signal handler wakes the signal thread through.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// What the first SIGINT/SIGTERM does when set ([`on_first_signal`]; `cancel::cancel_on_signals`
/// cancels a token): run this action and give the operation this long to stop. Unset, the first
/// signal ends the process at once.
static ON_SIGNAL: Mutex<Option<FirstSignal>> = Mutex::new(None);

/// The action of the first signal and the grace after it.
type FirstSignal = (std::sync::Arc<dyn Fn() + Send + Sync>, Duration);

/// The signal that ran the action of [`on_first_signal`], 0 before one did.
static CANCELLED_BY: AtomicI32 = AtomicI32::new(0);

/// Makes sure the handler and its thread are installed once, whichever function asks first.
static INSTALLED: Mutex<bool> = Mutex::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; the descriptor is the pipe set up before the handler.
    unsafe {
        libc::write(
            SIGNAL_PIPE.load(Ordering::Relaxed),
            (&byte as *const u8).cast(),
            1,
        );
    }
}

/// Reads the next signal number from the pipe, waiting at most `timeout` (forever when `None`);
/// `None` when none came in time or the pipe failed.
fn next_signal(read_fd: libc::c_int, timeout: Option<Duration>) -> Option<libc::c_int> {
    if let Some(t) = timeout {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            let mut fd = libc::pollfd {
                fd: read_fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd on the pipe this thread owns.
            let n = unsafe { libc::poll(&mut fd, 1, ms) };
            if n > 0 {
                break;
            }
            if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return None;
            }
        }
    }
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte from the pipe this thread owns into a local.
        let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return Some(libc::c_int::from(byte));
        }
        if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
}

/// The signal thread: waits for a signal; runs the registered action and waits out its grace
/// (or a second signal) when [`on_first_signal`] set one; then removes the live temp files and
/// dies of the signal.
fn signal_thread(read_fd: libc::c_int) {
    let Some(mut sig) = next_signal(read_fd, None) else {
        return;
    };
    let registered = ON_SIGNAL.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some((action, grace)) = registered {
        CANCELLED_BY.store(sig, Ordering::SeqCst);
        action();
        // The operation unwinds and the process ends by die_of_signal; this thread only acts
        // when it does not in time, or when the user insists.
        match next_signal(read_fd, Some(grace)) {
            Some(again) => {
                tracing::warn!(
                    "second signal ({}): ending at once (temp files removed)",
                    signal_name(again)
                );
                sig = again;
            }
            None => tracing::warn!(
                "still running {grace:?} after {}: ending at once (temp files removed)",
                signal_name(sig)
            ),
        }
    }
    die_of_signal(sig)
}

/// Installs the SIGINT/SIGTERM handler and its thread, once.
fn install_handler() -> Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if *installed {
        return Ok(());
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: a valid array of two descriptors for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io(
            "creating the signal pipe".to_string(),
            io::Error::last_os_error(),
        ));
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    let read_fd = fds[0];
    std::thread::Builder::new()
        .name("hoist-signals".into())
        .spawn(move || signal_thread(read_fd))
        .ctx(|| "starting the signal thread".to_string())?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only calls write(2); the action struct is zeroed and filled.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    *installed = true;
    Ok(())
}

/// On SIGINT or SIGTERM, removes this process's live temp files and directories, then dies of the
/// signal (a thread does the work; the handler only writes to a pipe). Call once, early in `main`;
/// calling it again (or after `cancel::cancel_on_signals`) changes nothing.
pub fn remove_temp_files_on_signals() -> Result<()> {
    install_handler()
}

/// From now on the first SIGINT or SIGTERM runs `action` (`cancel::cancel_on_signals`: cancel a
/// token) instead of ending the process, and a second signal, or `grace` passing without the process
/// ending, does what [`remove_temp_files_on_signals`] does. Installs the handler if
/// [`remove_temp_files_on_signals`] has not; a later call replaces the action.
pub(crate) fn on_first_signal(
    action: std::sync::Arc<dyn Fn() + Send + Sync>,
    grace: Duration,
) -> Result<()> {
    install_handler()?;
    *ON_SIGNAL.lock().unwrap_or_else(|p| p.into_inner()) = Some((action, grace));
    Ok(())
}

/// The signal (`libc::SIGINT`, `libc::SIGTERM`) that cancelled the token given to
/// `cancel::cancel_on_signals`, if one has.
pub fn cancelled_by_signal() -> Option<libc::c_int> {
    match CANCELLED_BY.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The name of a signal for messages: `SIGINT`, `SIGTERM`, `SIGPIPE`, else `signal N`.
pub fn signal_name(sig: libc::c_int) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        n => format!("signal {n}"),
    }
}

/// Removes this process's live temp files and directories, then ends the process by `sig` with its
/// default action (so a shell or service manager sees death by that signal, and a shell script
/// stops), as Unix tools do after cleaning up on a signal. Falls back to exiting with `128 + sig`
/// should the signal not end the process.
pub fn die_of_signal(sig: libc::c_int) -> ! {
    remove_live();
    // SAFETY: restoring the default action and raising the signal ends the process by it (the
    // signal is unblocked in the calling thread first, so it is delivered at once).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn mkfifo(path: &Path) {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
    }

    fn umask_mode(mode: u32) -> u32 {
        // SAFETY: umask(2) only swaps the process mask; the old one is put back at once.
        let old = unsafe { libc::umask(0o022) };
        unsafe { libc::umask(old) };
        mode & !(old as u32)
    }

    #[test]
    fn new_files_get_0666_less_the_umask() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_file(&p, b"x").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, umask_mode(0o666));
        assert_ne!(mode, 0o600, "tempfile's 0600 leaked through");
    }

    #[test]
    fn a_symlink_target_is_written_through_and_stays_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        fs::write(&real, b"old").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new content").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new content");
    }

    #[test]
    fn replace_never_follows_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let state = t.path().join(".hoist-state.json");
        std::os::unix::fs::symlink(&outside, &state).unwrap();
        replace_file(&state, b"state", None).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&state).unwrap().is_file());
        assert_eq!(fs::read(&state).unwrap(), b"state");
    }

    #[test]
    fn a_fifo_target_is_written_through() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        mkfifo(&fifo);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write_file(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn open_regular_refuses_a_fifo_without_hanging() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("index.json");
        mkfifo(&fifo);
        let e = open_regular(&fifo, true).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(e.to_string().contains("index.json"), "{e}");
    }

    #[test]
    fn remove_stale_skips_what_it_cannot_remove() {
        if !rustix::process::geteuid().is_root() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI runs as root"
            );
            eprintln!("SKIPPED: needs root to mount a tmpfs");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        // A mount point cannot be removed (EBUSY): it stands for another user's leftover in /tmp.
        let busy = t.path().join(format!("{TEMP_PREFIX}busy"));
        fs::create_dir(&busy).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&busy)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "mount failed under CI"
            );
            eprintln!("SKIPPED: mounting a tmpfs failed");
            return;
        }
        let dead = t.path().join(format!("{TEMP_PREFIX}dead"));
        fs::write(&dead, b"x").unwrap();
        let result = remove_stale(t.path());
        let _ = std::process::Command::new("umount").arg(&busy).status();
        assert_eq!(result.unwrap(), 1);
        assert!(!dead.exists());
    }

    #[test]
    fn remove_stale_keeps_live_temp_files_and_removes_dead_ones() {
        let t = tempfile::tempdir().unwrap();
        let live = TempFile::new_in(t.path()).unwrap();
        let dead = t.path().join(format!("{TEMP_PREFIX}dead"));
        fs::write(&dead, b"left by a killed run").unwrap();
        let dead_dir = t.path().join(format!("{TEMP_PREFIX}staging"));
        fs::create_dir(&dead_dir).unwrap();
        fs::write(dead_dir.join("x"), b"x").unwrap();
        let other = t.path().join("keep-me");
        fs::write(&other, b"not ours").unwrap();
        assert_eq!(remove_stale(t.path()).unwrap(), 2);
        assert!(live.path().exists());
        assert!(!dead.exists() && !dead_dir.exists());
        assert!(other.exists());
    }
}
