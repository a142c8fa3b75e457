//! The in-memory [`Target`]: a tree of entry metadata, no file contents. An
//! [`Applier`](super::Applier) over it makes the same decisions an unpack makes on disk (whiteouts,
//! opaque directories, replacements, links, symlinks followed inside the root), and the tree then
//! says which entry of which layer each surviving regular file came from, so an export can stream
//! the survivors' contents from the layers in a second pass. Memory is per path, never per byte.
//!
//! Symlinks in parent paths are followed as [`Root`](super::Root) follows them: inside the root,
//! absolute targets restarting at the root, `..` stopping at the root, at most 40 links.

use std::collections::{BTreeMap, VecDeque};
use std::io;

use rustix::fs::FileType;
use rustix::io::Errno;

use super::root::split;
use super::target::{DirMeta, Op, Target};
use super::{EntryHead, EntryKind};
use crate::error::{Error, Result};

/// Most symlinks followed while resolving one path (as the kernel and [`super::Root`]).
const MAX_SYMLINKS: usize = 40;

/// The index of a node in a [`MemTree`] (an inode: hardlinked names share one).
pub type NodeId = usize;

/// One node (inode) of a [`MemTree`].
#[derive(Debug, Clone)]
pub struct MemNode {
    /// The kind (never [`EntryKind::Hardlink`]: a hardlink is a second name of a node).
    pub kind: EntryKind,
    /// The metadata of the entry that made the node, `None` for a parent directory created because
    /// an entry below it needed it (mode 0755, owner root).
    pub head: Option<Box<EntryHead>>,
    /// A symlink's target.
    pub link: Vec<u8>,
    /// A directory's children by name.
    pub children: BTreeMap<Vec<u8>, NodeId>,
    /// A regular file's content: (layer index, entry index in that layer), as set by
    /// [`MemTree::set_position`] when the file was created.
    pub source: Option<(usize, u64)>,
}

impl MemNode {
    fn new(kind: EntryKind) -> MemNode {
        MemNode {
            kind,
            head: None,
            link: Vec::new(),
            children: BTreeMap::new(),
            source: None,
        }
    }

    fn file_type(&self) -> FileType {
        match self.kind {
            EntryKind::Regular | EntryKind::Hardlink => FileType::RegularFile,
            EntryKind::Dir => FileType::Directory,
            EntryKind::Symlink => FileType::Symlink,
            EntryKind::CharDevice => FileType::CharacterDevice,
            EntryKind::BlockDevice => FileType::BlockDevice,
            EntryKind::Fifo => FileType::Fifo,
        }
    }
}

/// A tree of entry metadata in memory (see the module documentation).
#[derive(Debug, Clone)]
pub struct MemTree {
    nodes: Vec<MemNode>,
    at: (usize, u64),
}

impl Default for MemTree {
    fn default() -> Self {
        MemTree::new()
    }
}

impl MemTree {
    /// An empty tree: a root directory.
    pub fn new() -> MemTree {
        MemTree {
            nodes: vec![MemNode::new(EntryKind::Dir)],
            at: (0, 0),
        }
    }

    /// Records where the next entry comes from: layer `layer`, entry `entry` of it (a regular file
    /// created now keeps this as its [`MemNode::source`]).
    pub fn set_position(&mut self, layer: usize, entry: u64) {
        self.at = (layer, entry);
    }

    /// The root directory's node.
    pub fn root(&self) -> NodeId {
        0
    }

    /// The node `id`.
    pub fn node(&self, id: NodeId) -> &MemNode {
        &self.nodes[id]
    }

    fn add(
        &mut self,
        dir: NodeId,
        name: &[u8],
        node: MemNode,
    ) -> std::result::Result<NodeId, Errno> {
        if self.nodes[dir].children.contains_key(name) {
            return Err(Errno::EXIST);
        }
        let id = self.nodes.len();
        self.nodes.push(node);
        self.nodes[dir].children.insert(name.to_vec(), id);
        Ok(id)
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> std::result::Result<NodeId, Errno> {
        self.nodes[dir]
            .children
            .get(name)
            .copied()
            .ok_or(Errno::NOENT)
    }

    /// The directory at `rel`, symlinks followed inside the root.
    fn walk(&self, rel: &[u8]) -> io::Result<NodeId> {
        let mut stack: Vec<NodeId> = Vec::new();
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
            let cur = stack.last().copied().unwrap_or(0);
            let id = self.child(cur, &c)?;
            match self.nodes[id].kind {
                EntryKind::Dir => stack.push(id),
                EntryKind::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = &self.nodes[id].link;
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for part in split(target).collect::<Vec<_>>().into_iter().rev() {
                        pending.push_front(part.to_vec());
                    }
                }
                _ => return Err(Errno::NOTDIR.into()),
            }
        }
        Ok(stack.last().copied().unwrap_or(0))
    }

    fn set_head(&mut self, dir: NodeId, name: &[u8], head: &EntryHead) -> Result<()> {
        let id = self
            .child(dir, name)
            .map_err(|e| Error::io("recording an entry", e.into()))?;
        self.nodes[id].head = Some(Box::new(head.clone()));
        Ok(())
    }

    /// The path `rel` names once every symlink on it, the last component's too, is followed inside
    /// the root (the one rule of [`super::root::resolve_confined`]).
    fn resolved(&self, rel: &[u8]) -> io::Result<Vec<u8>> {
        super::root::resolve_confined(
            rel,
            |path| self.walk(path),
            |dir, name| {
                Ok(match self.child(*dir, name) {
                    Ok(id) if self.nodes[id].kind == EntryKind::Symlink => {
                        Some(self.nodes[id].link.clone())
                    }
                    _ => None,
                })
            },
        )
    }

    /// The node a process inside the unpacked tree reaches when it opens `rel`: every symlink on the
    /// path, the last component's too, followed inside the root. `None` when nothing is there (or a
    /// symlink loop).
    pub fn lookup(&self, rel: &[u8]) -> Option<NodeId> {
        let path = self.resolved(rel).ok()?;
        if path.is_empty() {
            return Some(self.root());
        }
        let (dir, name) = super::root::split_last(&path);
        let dir = self.walk(dir).ok()?;
        self.child(dir, name).ok()
    }

    /// Every path of the tree with its node, parents before children, names in byte order.
    pub fn paths(&self) -> Vec<(Vec<u8>, NodeId)> {
        let mut out = Vec::new();
        let mut stack: Vec<(Vec<u8>, NodeId)> = vec![(Vec::new(), 0)];
        while let Some((path, id)) = stack.pop() {
            let mut kids: Vec<(Vec<u8>, NodeId)> = Vec::new();
            for (name, child) in &self.nodes[id].children {
                let p = super::root::join(&path, name);
                kids.push((p, *child));
            }
            for (p, child) in kids.into_iter().rev() {
                stack.push((p, child));
            }
            if !path.is_empty() {
                out.push((path, id));
            }
        }
        out
    }
}

impl Target for MemTree {
    type Dir = NodeId;
    type File = NodeId;

    fn location(&self) -> String {
        "the exported tree".into()
    }

    fn privileged(&self) -> bool {
        true
    }

    fn invalidate(&mut self) {}

    fn open_dir(&mut self, rel: &[u8]) -> io::Result<NodeId> {
        self.walk(rel)
    }

    fn parent(
        &mut self,
        rel: &[u8],
        created: &mut dyn FnMut(&[u8]),
    ) -> io::Result<(NodeId, Vec<u8>)> {
        let (dir, name) = super::root::split_last(rel);
        let id = match self.walk(dir) {
            Ok(id) => id,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let mut fd = 0;
                let mut prefix: Vec<u8> = Vec::new();
                for c in split(dir) {
                    if !prefix.is_empty() {
                        prefix.push(b'/');
                    }
                    prefix.extend_from_slice(c);
                    match self.walk(&prefix) {
                        Ok(next) => fd = next,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                            fd = self.add(fd, c, MemNode::new(EntryKind::Dir))?;
                            created(&prefix);
                        }
                        Err(e) => return Err(e),
                    }
                }
                fd
            }
            Err(e) => return Err(e),
        };
        Ok((id, name.to_vec()))
    }

    fn resolve_path(&mut self, rel: &[u8]) -> io::Result<Vec<u8>> {
        self.resolved(rel)
    }

    fn kind_at(&mut self, dir: &NodeId, name: &[u8]) -> std::result::Result<FileType, Errno> {
        self.child(*dir, name).map(|id| self.nodes[id].file_type())
    }

    fn same_file(&mut self, a: &NodeId, an: &[u8], b: &NodeId, bn: &[u8]) -> bool {
        matches!((self.child(*a, an), self.child(*b, bn)), (Ok(x), Ok(y)) if x == y)
    }

    fn remove_all_at(&mut self, dir: &NodeId, name: &[u8]) -> io::Result<()> {
        self.nodes[*dir].children.remove(name);
        Ok(())
    }

    fn children(&mut self, dir: &NodeId) -> io::Result<Vec<Vec<u8>>> {
        Ok(self.nodes[*dir].children.keys().cloned().collect())
    }

    fn child_dir(&mut self, dir: &NodeId, name: &[u8]) -> io::Result<NodeId> {
        let id = self.child(*dir, name)?;
        if self.nodes[id].kind != EntryKind::Dir {
            return Err(Errno::NOTDIR.into());
        }
        Ok(id)
    }

    fn mkdir_at(&mut self, dir: &NodeId, name: &[u8]) -> std::result::Result<(), Errno> {
        self.add(*dir, name, MemNode::new(EntryKind::Dir)).map(drop)
    }

    fn create_at(&mut self, dir: &NodeId, name: &[u8]) -> std::result::Result<NodeId, Errno> {
        let mut node = MemNode::new(EntryKind::Regular);
        node.source = Some(self.at);
        self.add(*dir, name, node)
    }

    fn symlink_at(
        &mut self,
        target: &[u8],
        dir: &NodeId,
        name: &[u8],
    ) -> std::result::Result<(), Errno> {
        let mut node = MemNode::new(EntryKind::Symlink);
        node.link = target.to_vec();
        self.add(*dir, name, node).map(drop)
    }

    fn link_at(
        &mut self,
        tdir: &NodeId,
        tname: &[u8],
        dir: &NodeId,
        name: &[u8],
    ) -> std::result::Result<(), Errno> {
        let id = self.child(*tdir, tname)?;
        if self.nodes[id].kind == EntryKind::Dir {
            return Err(Errno::PERM);
        }
        if self.nodes[*dir].children.contains_key(name) {
            return Err(Errno::EXIST);
        }
        self.nodes[*dir].children.insert(name.to_vec(), id);
        Ok(())
    }

    fn mknod_at(
        &mut self,
        dir: &NodeId,
        name: &[u8],
        kind: EntryKind,
        _mode: u32,
        _device: (u32, u32),
    ) -> std::result::Result<(), Errno> {
        self.add(*dir, name, MemNode::new(kind)).map(drop)
    }

    fn write(&mut self, _file: &mut NodeId, _buf: &[u8], _sparse: bool) -> io::Result<()> {
        Ok(())
    }

    fn end_file(&mut self, file: NodeId, _rel: &[u8], head: &EntryHead, _op: Op<'_>) -> Result<()> {
        self.nodes[file].head = Some(Box::new(head.clone()));
        Ok(())
    }

    fn root_meta(&mut self, head: &EntryHead, _op: Op<'_>) -> Result<()> {
        self.nodes[0].head = Some(Box::new(head.clone()));
        Ok(())
    }

    fn dir_meta(
        &mut self,
        dir: &NodeId,
        name: &[u8],
        _rel: &[u8],
        head: &EntryHead,
        _merged: bool,
        _op: Op<'_>,
    ) -> Result<()> {
        // A later entry for a directory replaces its metadata, xattrs included.
        self.set_head(*dir, name, head)
    }

    fn node_meta(
        &mut self,
        dir: &NodeId,
        name: &[u8],
        _rel: &[u8],
        head: &EntryHead,
        _is_symlink: bool,
        _op: Op<'_>,
    ) -> Result<()> {
        self.set_head(*dir, name, head)
    }

    fn mark_opaque(&mut self, _dir: &NodeId, _name: &[u8], _rel: &[u8], _op: Op<'_>) -> Result<()> {
        Err(Error::Unsupported(
            "overlay whiteouts are an on-disk format; an export applies whiteouts".into(),
        ))
    }

    fn finish(&mut self, _dirs: BTreeMap<Vec<u8>, DirMeta>, _op: Op<'_>) -> Result<()> {
        // Directory modes and times are the nodes' own metadata.
        Ok(())
    }
}
