//! The record of an unpacked tree: what image it came from and an mtree-like listing of every path,
//! so that a later diff can compute changes without reading the layers again.
//!
//! # Format (version 1)
//!
//! A JSON-lines file (`hoist-state.json` beside `rootfs/` in a bundle; for a plain unpack, the file
//! `--state` names, outside the tree). The first line is a [`StateHeader`] object with `"format":
//! "hoist-unpack-state"` and `"version": 1`; every following line is one [`StateEntry`], in path order
//! (component-wise, as a sorted directory walk yields them). Paths, link targets and xattr names are
//! strings in which a backslash is written `\\` and a byte that is not part of valid UTF-8 is written
//! `\xHH`; xattr values are lowercase hex. `mode` holds the permission bits with setuid, setgid and
//! sticky (decimal in JSON); owners are the image's ids (for a rootless unpack, those recorded in
//! `user.rootlesscontainers`). Readers must ignore fields they do not know; a change that old readers
//! would misread increments `version`.
//!
//! A state is input like any other: [`UnpackState::load`] checks every field it reads back (digests,
//! `rootfs` one of the two layouts hoist writes, paths relative without `..`, a source reference that
//! parses), so a record edited by hand or by a container cannot steer `repack` outside the tree.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diff::{DirTree, Entries, FileType, LowerContent, LowerTree, Meta, map_owner_back};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, IoContext, Result};
use crate::owner::IdMap;

/// The `format` value of a state file.
pub const STATE_FORMAT: &str = "hoist-unpack-state";
/// The current version of the state format.
pub const STATE_VERSION: u32 = 1;
/// The `format` of a state record made from umoci's metadata (never saved as such: its times have
/// only seconds, as go-mtree's `tar_time`, so only seconds are compared).
pub const MTREE_FORMAT: &str = "umoci-mtree";

/// The first line of a state file: where the tree came from and how it was unpacked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateHeader {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// [`STATE_VERSION`] when written by this hoist.
    pub version: u32,
    /// The manifest digest the tree was unpacked from.
    pub manifest: String,
    /// The reference it was unpacked from, as written on the command line (`oci:PATH:TAG`), when known:
    /// `repack` writes the new image back there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The config digest.
    pub config: String,
    /// Every layer's (compressed) digest, bottom first.
    pub layers: Vec<String>,
    /// Every layer's diff_id, bottom first.
    pub diff_ids: Vec<String>,
    /// `rootfs` for a bundle (the tree is `rootfs/` beside the state file), `.` for a plain unpack (the
    /// tree is the directory given to `repack`); nothing else is accepted.
    pub rootfs: String,
    /// True when ownership was recorded rather than applied.
    pub rootless: bool,
    /// How whiteouts were handled (`apply` or `overlay`).
    pub whiteout_format: String,
    /// Device nodes that were not created (rootless), by path.
    #[serde(default)]
    pub skipped_devices: Vec<String>,
    /// Number of entry lines that follow.
    pub entries: u64,
    /// The `--uid-map` ranges of the unpack, each `[container, host, size]`: the tree's owners are
    /// host ids, and `repack` maps them back. Entries record the image's ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<[u32; 3]>,
    /// The `--gid-map` ranges, as `uid_map`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<[u32; 3]>,
    /// The root directory itself (path `.`): its mode, owner and xattrs, so `repack` writes a change
    /// to them as the layer's `./` entry. Absent in older records (not compared then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<StateEntry>,
}

impl StateHeader {
    /// The recorded uid maps.
    pub fn uid_maps(&self) -> Vec<IdMap> {
        to_maps(&self.uid_map)
    }
    /// The recorded gid maps.
    pub fn gid_maps(&self) -> Vec<IdMap> {
        to_maps(&self.gid_map)
    }
    /// The OCI layout the tree was unpacked from and the tag it was named by, when its `source` is
    /// an `oci:` layout: the one source `repack` writes back into (a layout is the one transport
    /// umoci's repack model has). `None` for any other source, or none recorded.
    pub fn source_layout(&self) -> Option<(PathBuf, Option<String>)> {
        match self
            .source
            .as_deref()
            .map(crate::reference::TransportRef::parse)
        {
            Some(Ok(crate::reference::TransportRef::Oci { path, reference })) => {
                let tag = match reference {
                    Some(crate::reference::LayoutRef::Tag(t)) => Some(t),
                    _ => None,
                };
                Some((path, tag))
            }
            _ => None,
        }
    }
}

fn to_maps(v: &[[u32; 3]]) -> Vec<IdMap> {
    v.iter()
        .map(|[container, host, size]| IdMap {
            container: *container,
            host: *host,
            size: *size,
        })
        .collect()
}

/// The `[container, host, size]` form of maps, for a [`StateHeader`].
pub fn from_maps(maps: &[IdMap]) -> Vec<[u32; 3]> {
    maps.iter().map(|m| [m.container, m.host, m.size]).collect()
}

/// One path of the tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateEntry {
    /// Relative path (escaped as the module documentation says).
    pub path: String,
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo` or `socket`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner in the image.
    pub uid: u32,
    /// Group in the image.
    pub gid: u32,
    /// Size of a regular file.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub mtime_nsec: u32,
    /// A regular file's content digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A symlink's target (escaped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A device's major and minor numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// Extended attributes: escaped name -> hex value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// Hardlink group: the same number for every path of one file with more than one link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// Number of links, when more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlink: Option<u64>,
    /// A regular file's inode number and status change time (seconds, nanoseconds) when the record
    /// was made: while both still match, the file was not rewritten, so `repack` need not hash it.
    /// Absent (older records): the file is hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<(u64, i64, u32)>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero32(v: &u32) -> bool {
    *v == 0
}

/// Escapes bytes for a state string: `\` -> `\\`, invalid UTF-8 bytes -> `\xHH`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Reverses [`escape`].
pub fn unescape(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::Other(format!("malformed escaped string in state file: {s:?}"));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 4;
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "file",
        FileType::Dir => "dir",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

fn type_of(name: &str) -> Result<FileType> {
    Ok(match name {
        "file" => FileType::Regular,
        "dir" => FileType::Dir,
        "symlink" => FileType::Symlink,
        "char" => FileType::CharDevice,
        "block" => FileType::BlockDevice,
        "fifo" => FileType::Fifo,
        "socket" => FileType::Socket,
        other => {
            return Err(Error::Other(format!(
                "unknown entry type {other:?} in state file"
            )));
        }
    })
}

impl StateEntry {
    /// Builds an entry from a path and its metadata.
    pub fn from_meta(path: &Path, meta: &Meta, digest: Option<&Digest>) -> StateEntry {
        let multi = meta
            .inode
            .filter(|(_, _, n)| *n > 1 && meta.file_type != FileType::Dir);
        StateEntry {
            path: escape(path.as_os_str().as_bytes()),
            kind: type_name(meta.file_type).into(),
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            size: meta.size,
            mtime: meta.mtime,
            mtime_nsec: meta.mtime_nsec,
            digest: digest.map(|d| d.to_string()),
            link: meta
                .link_target
                .as_ref()
                .map(|t| escape(t.as_os_str().as_bytes())),
            device: meta.device,
            xattrs: meta
                .xattrs
                .iter()
                .map(|(k, v)| (escape(k.as_bytes()), hex::encode(v)))
                .collect(),
            inode: multi.map(|(_, ino, _)| ino),
            nlink: multi.map(|(_, _, n)| n),
            stat: match (meta.file_type, meta.inode, meta.ctime) {
                (FileType::Regular, Some((_, ino, _)), Some((sec, nsec))) => Some((ino, sec, nsec)),
                _ => None,
            },
        }
    }

    /// The path as bytes.
    pub fn path_bytes(&self) -> Result<Vec<u8>> {
        unescape(&self.path)
    }

    /// The metadata, as the diff engine compares it.
    pub fn meta(&self) -> Result<Meta> {
        let mut xattrs = BTreeMap::new();
        for (k, v) in &self.xattrs {
            let value = hex::decode(v)
                .map_err(|_| Error::Other(format!("bad xattr value in state for {}", self.path)))?;
            xattrs.insert(OsString::from_vec(unescape(k)?), value);
        }
        Ok(Meta {
            file_type: type_of(&self.kind)?,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            mtime: self.mtime,
            mtime_nsec: self.mtime_nsec,
            link_target: match &self.link {
                Some(l) => Some(PathBuf::from(OsString::from_vec(unescape(l)?))),
                None => None,
            },
            device: self.device,
            xattrs,
            inode: self.inode.map(|i| (0, i, self.nlink.unwrap_or(1))),
            ctime: None,
        })
    }
}

/// A loaded (or freshly built) state record: the header and every entry in path order.
#[derive(Debug, Clone)]
pub struct UnpackState {
    /// Where the tree came from.
    pub header: StateHeader,
    /// The entries, sorted by path (component-wise).
    pub entries: Vec<(PathBuf, StateEntry)>,
}

impl UnpackState {
    /// Lists the tree at `rootfs` (never following symlinks), taking file digests from `digests`
    /// (by device and inode, as recorded while writing) and hashing any file it lacks. Top-level names
    /// in `exclude` (hoist's own files) are left out.
    pub fn scan(
        mut header: StateHeader,
        rootfs: &Path,
        digests: &HashMap<(u64, u64), Digest>,
        exclude: &[&[u8]],
    ) -> Result<UnpackState> {
        let tree = DirTree::new(rootfs);
        let (uid_map, gid_map) = (header.uid_maps(), header.gid_maps());
        // Ids outside the maps (the root hoist created, say) are recorded as they are.
        let (root, _) = map_owner_back(
            tree.root_meta()?
                .ok_or_else(|| Error::Other("no root".into()))?,
            &uid_map,
            &gid_map,
        );
        header.root = Some(StateEntry::from_meta(Path::new("."), &root, None));
        let mut entries = Vec::new();
        for item in tree.entries()? {
            let (path, meta) = item?;
            let (meta, _) = map_owner_back(meta, &uid_map, &gid_map);
            let top = path
                .components()
                .next()
                .map(|c| c.as_os_str().as_bytes().to_vec())
                .unwrap_or_default();
            if exclude.contains(&top.as_slice()) {
                continue;
            }
            let digest = if meta.file_type == FileType::Regular {
                let known = meta
                    .inode
                    .and_then(|(dev, ino, _)| digests.get(&(dev, ino)));
                Some(match known {
                    Some(d) => d.clone(),
                    None => hash_file(rootfs, &path, Some(&meta))?,
                })
            } else {
                None
            };
            let e = StateEntry::from_meta(&path, &meta, digest.as_ref());
            entries.push((path, e));
        }
        header.entries = entries.len() as u64;
        Ok(UnpackState { header, entries })
    }

    /// Writes the state to `path` atomically (temporary file, fsync, rename).
    ///
    /// `named_by_user`: the path came from the user (`--state FILE`), so an existing symlink, FIFO or
    /// device there is written through, as every output a user names; otherwise (a bundle's
    /// `hoist-state.json`) the file is always replaced, never followed.
    pub fn save(&self, path: &Path, named_by_user: bool) -> Result<()> {
        let what = || format!("writing {}", path.display());
        let mode = crate::durable::DEFAULT_MODE;
        let out = if named_by_user {
            crate::durable::Output::create_with(path, mode, None)?
        } else {
            crate::durable::Output::replace(path, mode, None)?
        };
        {
            let mut w = BufWriter::new(out.file());
            let line = serde_json::to_vec(&self.header)
                .map_err(|e| Error::Other(format!("serialising state: {e}")))?;
            w.write_all(&line).ctx(what)?;
            w.write_all(b"\n").ctx(what)?;
            for (_, e) in &self.entries {
                let line = serde_json::to_vec(e)
                    .map_err(|e| Error::Other(format!("serialising state: {e}")))?;
                w.write_all(&line).ctx(what)?;
                w.write_all(b"\n").ctx(what)?;
            }
            w.flush().ctx(what)?;
        }
        out.commit()
    }

    /// Reads a state file, checking its format and version.
    pub fn load(path: &Path) -> Result<UnpackState> {
        let what = || format!("reading {}", path.display());
        let f = crate::durable::open_regular(path, false).ctx(what)?;
        let mut lines = BufReader::new(f).lines();
        let bad =
            |why: String| Error::invalid_document(format!("state file {}", path.display()), why);
        let first = lines
            .next()
            .ok_or_else(|| bad("it is empty".into()))?
            .ctx(what)?;
        let header: StateHeader =
            serde_json::from_str(&first).map_err(|e| bad(format!("bad header: {e}")))?;
        if header.format != STATE_FORMAT {
            return Err(bad(format!(
                "format is {:?}, not {STATE_FORMAT:?}",
                header.format
            )));
        }
        if header.version != STATE_VERSION {
            return Err(bad(format!(
                "version {} is not supported (this hoist reads version {STATE_VERSION})",
                header.version
            )));
        }
        let mut entries = Vec::new();
        for (n, line) in lines.enumerate() {
            let line = line.ctx(what)?;
            if line.is_empty() {
                continue;
            }
            let e: StateEntry =
                serde_json::from_str(&line).map_err(|err| bad(format!("line {}: {err}", n + 2)))?;
            let p = PathBuf::from(OsString::from_vec(e.path_bytes()?));
            entries.push((p, e));
        }
        if entries.len() as u64 != header.entries {
            return Err(bad(format!(
                "the header announces {} entries but {} follow (truncated?)",
                header.entries,
                entries.len()
            )));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let state = UnpackState { header, entries };
        state.validate().map_err(bad)?;
        Ok(state)
    }

    /// Checks every field a reader relies on: digests, `rootfs`, the whiteout format, the source
    /// reference, and that every path is relative and plain (no `..`, `.`, `/` or empty component)
    /// and listed once.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let h = &self.header;
        for (what, d) in [("manifest", &h.manifest), ("config", &h.config)]
            .into_iter()
            .chain(h.layers.iter().map(|d| ("layers", d)))
            .chain(h.diff_ids.iter().map(|d| ("diff_ids", d)))
        {
            Digest::parse(d).map_err(|e| format!("{what}: {e}"))?;
        }
        if h.layers.len() != h.diff_ids.len() {
            return Err(format!(
                "{} layers but {} diff_ids",
                h.layers.len(),
                h.diff_ids.len()
            ));
        }
        if h.rootfs != "rootfs" && h.rootfs != "." {
            return Err(format!(
                "rootfs is {:?}; hoist writes only \"rootfs\" (bundle) or \".\" (plain tree)",
                h.rootfs
            ));
        }
        if h.whiteout_format != "apply" && h.whiteout_format != "overlay" {
            return Err(format!("unknown whiteout_format {:?}", h.whiteout_format));
        }
        if let Some(src) = &h.source {
            if let Err(e) = crate::reference::TransportRef::parse(src) {
                return Err(format!("source {src:?}: {e}"));
            }
            // Repack writes into this layout: it must name one place, wherever repack runs.
            if let Some((path, _)) = h.source_layout()
                && (!path.is_absolute() || !plain_components(&path))
            {
                return Err(format!(
                    "source {src:?}: an oci: layout must be an absolute path without `..`"
                ));
            }
        }
        for maps in [&h.uid_map, &h.gid_map] {
            if maps.iter().any(|[_, _, size]| *size == 0) {
                return Err("an id map of size 0".into());
            }
        }
        if let Some(root) = &h.root {
            let m = root.meta().map_err(|e| format!("root: {e}"))?;
            if root.path != "." || m.file_type != FileType::Dir {
                return Err("root must be the directory \".\"".into());
            }
        }
        for d in &h.skipped_devices {
            if !plain_relative(Path::new(d)) {
                return Err(format!(
                    "skipped device path {d:?} is not a plain relative path"
                ));
            }
        }
        for (i, (p, e)) in self.entries.iter().enumerate() {
            if !plain_relative(p) {
                return Err(format!(
                    "entry path {:?} is not a plain relative path (no `..`, `.`, `/`)",
                    e.path
                ));
            }
            if i > 0 && self.entries[i - 1].0 == *p {
                return Err(format!("entry path {:?} is listed twice", e.path));
            }
            e.meta()
                .map_err(|err| format!("entry {:?}: {err}", e.path))?;
            if let Some(d) = &e.digest {
                Digest::parse(d).map_err(|err| format!("entry {:?}: {err}", e.path))?;
            }
        }
        Ok(())
    }

    /// The entry for `path`.
    pub fn get(&self, path: &Path) -> Option<&StateEntry> {
        self.entries
            .binary_search_by(|(p, _)| p.as_path().cmp(path))
            .ok()
            .map(|i| &self.entries[i].1)
    }
}

/// True when every component of `p` is a normal name (no root, `.` or `..`).
fn plain_components(p: &Path) -> bool {
    p.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::RootDir
        )
    })
}

/// True when `p` is non-empty, relative, and made of normal names only.
fn plain_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// The sha256 of the file `rel` of the tree at `rootfs`, read through the confined opener (checked
/// against `meta` from the walk, when given): the one content hash of an unpacked tree's files.
pub(crate) fn hash_file(rootfs: &Path, rel: &Path, meta: Option<&Meta>) -> Result<Digest> {
    let path = &rootfs.join(rel);
    let mut f = crate::diff::open_in_tree(rootfs, rel, meta)?;
    let mut h = Algorithm::Sha256.hasher();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f
            .read(&mut buf)
            .ctx(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

impl LowerTree for UnpackState {
    fn entries(&self) -> Result<Entries<'_>> {
        Ok(Box::new(
            self.entries.iter().map(|(p, e)| Ok((p.clone(), e.meta()?))),
        ))
    }

    fn lookup(&self, path: &Path) -> Result<Option<Meta>> {
        self.get(path).map(StateEntry::meta).transpose()
    }

    fn unchanged_file(&self, path: &Path, upper: &Meta) -> bool {
        let now = match (upper.inode, upper.ctime) {
            (Some((_, ino, _)), Some((sec, nsec))) => (ino, sec, nsec),
            _ => return false,
        };
        self.get(path).and_then(|e| e.stat) == Some(now)
    }

    fn root_meta(&self) -> Result<Option<Meta>> {
        self.header.root.as_ref().map(StateEntry::meta).transpose()
    }

    fn mtime_nanos(&self) -> bool {
        // A record made from umoci's mtree has go-mtree's `tar_time`: seconds only.
        self.header.format != MTREE_FORMAT
    }

    fn content(&self, path: &Path) -> Result<LowerContent<'_>> {
        match self.get(path).and_then(|e| e.digest.as_deref()) {
            Some(d) => Ok(LowerContent::Digest(Digest::parse(d)?)),
            None => Ok(LowerContent::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for b in [
            &b"plain/path"[..],
            b"back\\slash",
            b"bad\xff\xfename",
            b"\\x41",
        ] {
            assert_eq!(unescape(&escape(b)).unwrap(), b);
        }
        assert_eq!(escape(b"a\xffb"), "a\\xffb");
        assert!(unescape("\\q").is_err());
    }
}
