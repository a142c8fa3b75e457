//! An index of the regular-file members of an uncompressed tar file, built in one pass without reading
//! member contents, so archive transports can stream any member by seeking to it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Where one member's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Offset of the data in the file.
    pub offset: u64,
    /// Size of the data.
    pub size: u64,
}

/// The regular files of a tar, by normalised name (no leading `./`), and its symlinks (name to link
/// target), which [`TarIndex::resolve`] follows.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
    links: HashMap<String, String>,
}

/// The most symlinks [`TarIndex::resolve`] follows for one name (so a loop ends).
pub const MAX_LINK_HOPS: usize = 8;

/// Normalises a member name: strips `./` prefixes and a trailing `/`.
pub fn normalise(name: &str) -> &str {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("./") {
        n = rest;
    }
    n.trim_end_matches('/')
}

/// `target` as seen from the directory of member `link`, normalised; `None` when it is absolute or
/// climbs above the archive's root.
fn join_inside(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') || target.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl TarIndex {
    /// Reads the headers of the tar at `path` (member data is skipped by seeking). At most
    /// `limits.max_entries` members; long-name and PAX headers are bounded (see
    /// [`crate::tar_headers`]).
    pub fn build(path: &Path, limits: &crate::limits::Limits) -> Result<Self> {
        let max_members = limits.max_entries;
        // An archive is read by seeking: a FIFO is refused at once rather than waited on.
        let file = crate::durable::open_regular(path, false)
            .ctx(|| format!("opening archive {}", path.display()))?;
        let what = format!("archive {}", path.display());
        let mut archive =
            tar::Archive::new(crate::tar_headers::HeaderGuard::new(file, limits, &what));
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        let bad = |e: std::io::Error| {
            crate::error::from_io(e, || format!("reading archive {}", path.display()))
        };
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            if members.len() as u64 >= max_members {
                return Err(Error::LimitExceeded {
                    what: format!("archive {} member count", path.display()),
                    limit: max_members.to_string(),
                    option: "--max-entries".into(),
                });
            }
            let kind = entry.header().entry_type();
            if kind.is_symlink() {
                let (Ok(name), Some(Ok(target))) = (
                    std::str::from_utf8(&entry.path_bytes()).map(|n| normalise(n).to_string()),
                    entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8(t.into_owned())),
                ) else {
                    continue;
                };
                members.remove(&name);
                links.insert(name, target);
                continue;
            }
            if !(kind.is_file() || kind == tar::EntryType::Continuous) {
                continue;
            }
            let name_bytes = entry.path_bytes();
            let Ok(name) = std::str::from_utf8(&name_bytes) else {
                continue;
            };
            links.remove(normalise(name));
            let member = Member {
                offset: entry.raw_file_position(),
                size: entry.size(),
            };
            members.insert(normalise(name).to_string(), member);
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            links,
        })
    }

    /// The regular-file member `name` stands for: itself, or the member its symlink (and theirs, at
    /// most [`MAX_LINK_HOPS`]) points to, as `docker save` links a layer two images share
    /// (`<id2>/layer.tar -> ../<id1>/layer.tar`). A link target is taken relative to the link's
    /// directory and must stay inside the archive. `Ok(None)`: no such member.
    pub fn resolve(&self, name: &str) -> Result<Option<String>> {
        let mut current = normalise(name).to_string();
        for _ in 0..=MAX_LINK_HOPS {
            if self.members.contains_key(&current) {
                return Ok(Some(current));
            }
            let Some(target) = self.links.get(&current) else {
                return Ok(None);
            };
            current = join_inside(&current, target).ok_or_else(|| {
                self.bad_link(
                    name,
                    format!("symlink {current} -> {target} leaves the archive"),
                )
            })?;
        }
        Err(self.bad_link(
            name,
            format!("more than {MAX_LINK_HOPS} symlinks to follow (a loop?)"),
        ))
    }

    fn bad_link(&self, name: &str, reason: String) -> Error {
        Error::invalid_document(
            format!("archive {}", self.path.display()),
            format!("member {name}: {reason}"),
        )
    }

    /// The member called `name`, if it is a regular file.
    pub fn get(&self, name: &str) -> Option<Member> {
        self.members.get(normalise(name)).copied()
    }

    /// Names of all regular-file members.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a member for streaming (a fresh file handle, so several members can be read at once).
    pub fn open(&self, name: &str) -> Result<std::io::Take<File>> {
        let m = self.get(name).ok_or_else(|| Error::NotFound {
            reference: name.to_string(),
            location: format!("archive {}", self.path.display()),
            hint: String::new(),
        })?;
        let mut f = crate::durable::open_regular(&self.path, false)
            .ctx(|| format!("opening archive {}", self.path.display()))?;
        f.seek(SeekFrom::Start(m.offset))
            .ctx(|| format!("seeking to {name} in {}", self.path.display()))?;
        Ok(f.take(m.size))
    }

    /// Reads a small member whole, refusing more than `max` bytes.
    pub fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let m = self.get(name).ok_or_else(|| Error::NotFound {
            reference: name.to_string(),
            location: format!("archive {}", self.path.display()),
            hint: String::new(),
        })?;
        if m.size > max {
            return Err(Error::LimitExceeded {
                what: format!("{name} in {} ({} bytes)", self.path.display(), m.size),
                limit: crate::limits::human_bytes(max),
                option: "--max-manifest-size".into(),
            });
        }
        let mut buf = Vec::with_capacity(m.size as usize);
        self.open(name)?
            .read_to_end(&mut buf)
            .ctx(|| format!("reading {name} from {}", self.path.display()))?;
        if buf.len() as u64 != m.size {
            return Err(Error::SizeMismatch {
                what: format!("{name} in {} (truncated archive?)", self.path.display()),
                expected: m.size,
                actual: buf.len() as u64,
            });
        }
        Ok(buf)
    }
}
