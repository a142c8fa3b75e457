//! Exporting an image's filesystem as one tar stream (as `crane export`): the tree an unpack would
//! make, without making it on disk.
//!
//! Two passes over the layers, each through the one verified layer pipeline of unpack
//! (`stream_layers`: size, digest, diff_id, limits). The first drives the unpack
//! applier (`layer::Applier`) over an in-memory tree (`layer::MemTree`): the same decisions on whiteouts,
//! opaque directories, replacements, links and confinement, recording only metadata and, for each
//! regular file that survives, which entry of which layer holds its content. Then the tar is
//! written: directories (parents first), the surviving files' contents streamed from the second pass
//! bottom layer first, then symlinks, fifos and devices, then every further name of a hardlinked
//! node as a hardlink to the name written first. Every hardlink follows its target, so the stream
//! extracts with `tar -x`; memory holds entry metadata per path, never file contents. The root
//! directory is written as `./` when a layer had an entry for it (its mode, owner and time).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use crate::diff::writer::{LayerOptions, entry_header, pad};
use crate::diff::{FileType, Meta};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, from_io};
use crate::image::{Image, resolve};
use crate::layer::memtree::{MemNode, MemTree, NodeId};
use crate::layer::read::{Position, image_tree, stream_layers};
use crate::layer::{EntryKind, Msg};
use crate::limits::Limits;
use crate::platform::Platform;
use crate::progress::{Event, Sink, emit};
use crate::transport::Source;

/// Options of [`export`] (built with `ExportOptions::default()` and field assignments: more may come).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// The platform to choose from an index (the host's when `None`).
    pub platform: Option<Platform>,
    /// Limits; the source's limits when `None` (`--max-size`, `--max-entries`, ... as unpack's).
    pub limits: Option<Limits>,
    /// Where progress events go: a plan, then each layer of the second (writing) pass as a blob.
    pub progress: Option<Sink>,
    /// Stops the export from another thread: it fails with [`crate::Error::Cancelled`], and a FILE
    /// output is left as it was (temp file removed). Never cancelled by default.
    pub cancel: crate::cancel::CancelToken,
}

/// What an export wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportReport {
    /// The manifest exported.
    pub manifest: Digest,
    /// Number of layers read.
    pub layers: usize,
    /// Tar entries written.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Writes the filesystem of the image of `source` to `out` as one uncompressed tar stream.
///
/// ```no_run
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let mut out = std::fs::File::create("/tmp/rootfs.tar")?;
/// let report = hoist::export(src.as_ref(), &mut out, &hoist::ExportOptions::default())?;
/// println!("{} entries, {} bytes of content", report.entries, report.bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn export(
    source: &dyn Source,
    out: &mut dyn Write,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let image = resolve(source, opts.platform.as_ref())?;
    export_image(source, &image, out, opts)
}

/// [`export`] into the file `path`, written by [`crate::durable::Output`]'s rule: a temp file renamed
/// into place when it is complete (nothing is left at `path` after a failure), or a FIFO, symlink or
/// device such as `/dev/stdout` written through.
pub fn export_to_path(
    source: &dyn Source,
    path: &Path,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let image = resolve(source, opts.platform.as_ref())?;
    let mut output = crate::durable::Output::create(path)?;
    let report = export_image(source, &image, &mut output, opts)?;
    output.commit()?;
    Ok(report)
}

/// What the tar holds, decided from the tree before anything is written.
struct Plan {
    dirs: Vec<(Vec<u8>, NodeId)>,
    /// Regular files by (layer, entry): the path written with the content.
    files: HashMap<(usize, u64), (Vec<u8>, NodeId)>,
    others: Vec<(Vec<u8>, NodeId)>,
    /// Further names of a node: (path, the first name's path, node).
    links: Vec<(Vec<u8>, Vec<u8>, NodeId)>,
}

fn plan(tree: &MemTree) -> Result<Plan> {
    let mut first: HashMap<NodeId, Vec<u8>> = HashMap::new();
    let mut plan = Plan {
        dirs: Vec::new(),
        files: HashMap::new(),
        others: Vec::new(),
        links: Vec::new(),
    };
    for (path, id) in tree.paths() {
        let node = tree.node(id);
        if node.kind == EntryKind::Dir {
            plan.dirs.push((path, id));
            continue;
        }
        if let Some(target) = first.get(&id) {
            plan.links.push((path, target.clone(), id));
            continue;
        }
        first.insert(id, path.clone());
        match node.kind {
            EntryKind::Regular => {
                let source = node.source.ok_or_else(|| {
                    Error::Other(format!(
                        "export: {} has no source entry",
                        crate::layer::root::show(&path)
                    ))
                })?;
                plan.files.insert(source, (path, id));
            }
            _ => plan.others.push((path, id)),
        }
    }
    Ok(plan)
}

/// The metadata a node is written with (a parent directory no entry named: 0755, root, time 0).
fn meta_of(node: &MemNode) -> Meta {
    let file_type = match node.kind {
        EntryKind::Regular | EntryKind::Hardlink => FileType::Regular,
        EntryKind::Dir => FileType::Dir,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::Fifo => FileType::Fifo,
    };
    let head = node.head.as_deref();
    Meta {
        file_type,
        mode: head.map_or(0o755, |h| h.mode),
        uid: head.map_or(0, |h| h.uid),
        gid: head.map_or(0, |h| h.gid),
        size: head.map_or(0, |h| h.size),
        mtime: head.map_or(0, |h| h.mtime.0),
        mtime_nsec: head.map_or(0, |h| h.mtime.1),
        link_target: None,
        device: matches!(node.kind, EntryKind::CharDevice | EntryKind::BlockDevice)
            .then(|| head.map_or((0, 0), |h| h.device)),
        xattrs: head
            .map(|h| {
                h.xattrs
                    .iter()
                    .map(|(k, v)| (OsString::from_vec(k.clone()), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        inode: None,
        ctime: None,
    }
}

/// Writes the tar stream of what the layers read as tar entries.
struct TarOut<'a> {
    out: BufWriter<&'a mut dyn Write>,
    opts: LayerOptions,
    entries: u64,
    bytes: u64,
}

impl TarOut<'_> {
    fn header(
        &mut self,
        path: &[u8],
        kind: tar::EntryType,
        meta: &Meta,
        link: Option<&[u8]>,
        size: u64,
    ) -> Result<()> {
        let mut name = path.to_vec();
        if kind == tar::EntryType::Directory {
            name.push(b'/');
        }
        let bytes = entry_header(&name, kind, Some(meta), link, size, &self.opts)?;
        self.entries += 1;
        self.write(&bytes)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| from_io(e, || "writing the export".into()))
    }

    fn node(&mut self, path: &[u8], node: &MemNode) -> Result<()> {
        let meta = meta_of(node);
        let (kind, link) = match node.kind {
            EntryKind::Dir => (tar::EntryType::Directory, None),
            EntryKind::Symlink => (tar::EntryType::Symlink, Some(&node.link[..])),
            EntryKind::CharDevice => (tar::EntryType::Char, None),
            EntryKind::BlockDevice => (tar::EntryType::Block, None),
            EntryKind::Fifo => (tar::EntryType::Fifo, None),
            EntryKind::Regular | EntryKind::Hardlink => {
                return Err(Error::Other(format!(
                    "export: {} is a regular file written without its content",
                    crate::layer::root::show(path)
                )));
            }
        };
        self.header(path, kind, &meta, link, 0)
    }
}

/// The regular file whose content is being copied from the second pass.
struct Copying {
    path: Vec<u8>,
    left: u64,
    size: u64,
}

/// Exports an already resolved image (see [`export`]).
pub fn export_image(
    source: &dyn Source,
    image: &Image,
    out: &mut dyn Write,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    write_tar(source, image, out, opts, &LayerOptions::default())
}

/// [`export_image`] with the entries' times and owners written as `layer` says (flatten's
/// `SOURCE_DATE_EPOCH`, `--uid`, `--gid`); its compression is not used (the stream is plain tar).
pub(crate) fn write_tar(
    source: &dyn Source,
    image: &Image,
    out: &mut dyn Write,
    opts: &ExportOptions,
    layer: &LayerOptions,
) -> Result<ExportReport> {
    let limits = opts
        .limits
        .clone()
        .unwrap_or_else(|| source.limits().clone());
    if image.config.is_none() {
        return Err(Error::UnsupportedMediaType {
            media_type: image.manifest.config().media_type().to_string(),
            what: format!(
                "the config of {} (not a container image, nothing to export)",
                image.digest()
            ),
        });
    }
    let (layers, diff_ids) = image.layers_with_diff_ids()?;
    let n = layers.len();
    let names = crate::layer::read::layer_names(&layers);

    // Pass 1: the unpack applier's decisions, on a tree of metadata.
    let tree = image_tree(source, &layers, &names, &diff_ids, &limits, &opts.cancel)?;
    let mut plan = plan(&tree)?;

    // Then the tar: directories, the files' contents bottom layer first, the other nodes, the links.
    let mut tar = TarOut {
        out: BufWriter::with_capacity(1 << 20, out),
        opts: layer.clone(),
        entries: 0,
        bytes: 0,
    };
    // The root's own entry when a layer had one (its mode, owner, time), as `./`.
    let root = tree.node(tree.root());
    if root.head.is_some() {
        tar.node(b".", root)?;
    }
    for (path, id) in &plan.dirs {
        tar.node(path, tree.node(*id))?;
    }
    emit(
        &opts.progress,
        Event::Plan {
            blobs: n,
            bytes: layers.iter().map(|d| d.size()).sum(),
        },
    );
    let mut pos = Position::default();
    let mut copying: Option<Copying> = None;
    stream_layers(
        source,
        &layers,
        &names,
        &diff_ids,
        &limits,
        &opts.progress,
        &opts.cancel,
        |msg| {
            let at = pos.step(&msg);
            match msg {
                Msg::Entry(head) => {
                    let Some((path, id)) = at.and_then(|k| plan.files.remove(&k)) else {
                        return Ok(());
                    };
                    let meta = meta_of(tree.node(id));
                    if meta.size != head.size {
                        return Err(Error::Other(format!(
                            "export: {} changed size between the two reads of its layer",
                            crate::layer::root::show(&path)
                        )));
                    }
                    tar.header(&path, tar::EntryType::Regular, &meta, None, head.size)?;
                    copying = Some(Copying {
                        path,
                        left: head.size,
                        size: head.size,
                    });
                    Ok(())
                }
                Msg::Data(buf) => {
                    let Some(c) = copying.as_mut() else {
                        return Ok(());
                    };
                    let len = buf.len() as u64;
                    if len > c.left {
                        return Err(Error::Other(format!(
                            "export: {} has more data than its header says",
                            crate::layer::root::show(&c.path)
                        )));
                    }
                    c.left -= len;
                    tar.bytes += len;
                    tar.write(&buf)
                }
                Msg::EndFile => {
                    let Some(c) = copying.take() else {
                        return Ok(());
                    };
                    if c.left != 0 {
                        return Err(Error::Other(format!(
                            "export: {} ended {} bytes short",
                            crate::layer::root::show(&c.path),
                            c.left
                        )));
                    }
                    pad(&mut tar.out, c.size)
                        .map_err(|e| from_io(e, || "writing the export".into()))
                }
                Msg::LayerStart(_) | Msg::LayerEnd => Ok(()),
            }
        },
    )?;
    if let Some(((layer, entry), (path, _))) = plan.files.iter().next() {
        return Err(Error::Other(format!(
            "export: the content of {} (entry {entry} of layer {}) was not found in the second read",
            crate::layer::root::show(path),
            layer + 1
        )));
    }
    for (path, id) in &plan.others {
        tar.node(path, tree.node(*id))?;
    }
    for (path, target, id) in std::mem::take(&mut plan.links) {
        let meta = meta_of(tree.node(id));
        tar.header(&path, tar::EntryType::Link, &meta, Some(&target), 0)?;
    }
    // The end of the archive: two zero blocks.
    tar.write(&[0u8; 1024])?;
    let (entries, bytes) = (tar.entries, tar.bytes);
    tar.out
        .into_inner()
        .map_err(|e| from_io(e.into_error(), || "writing the export".into()))?
        .flush()
        .ctx(|| "writing the export".into())?;
    Ok(ExportReport {
        manifest: image.digest().clone(),
        layers: n,
        entries,
        bytes,
    })
}
