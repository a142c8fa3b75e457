//! The `docker-archive:` transport: the tarballs `docker save` writes and `docker load` reads.
//!
//! Reading understands both layouts `docker save` has emitted: the classic one (`manifest.json` with
//! `Config`, `RepoTags`, `Layers`; `<id>/layer.tar`, legacy `json`/`VERSION`, `repositories`) and the
//! newer one with an OCI layout inside (`oci-layout`, `index.json`, `blobs/sha256/...` beside
//! `manifest.json`). Both are read through `manifest.json`, as skopeo does. The tar is indexed once and
//! members are streamed from their offsets; nothing is extracted. The image is presented as the Docker
//! schema 2 manifest skopeo synthesises, byte for byte: config by its sha256, each layer with the
//! config's diff_id as digest, the uncompressed size, and skopeo's (historical) gzip layer media type.
//! The bytes of every layer are therefore checked against the diff_id by the verified reader that
//! carries them; the copy engine sniffs the real compression, so the lying media type is fixed whenever
//! a manifest is converted. A layer member that is itself compressed is decompressed while it streams.
//!
//! Writing streams one tar: the config as `<hex>.json`, each layer as `<diff_id hex>.tar` (uncompressed:
//! [`Destination::layer_policy`] asks the copy engine to decompress, through a temp file, because a tar
//! header needs the size before the data), then `manifest.json` with `RepoTags` (the destination's
//! `NAME:TAG`, then any additional tags, as skopeo's `--additional-tag`). The tar is a temp file
//! beside the target, fsynced and renamed into place on commit. The legacy `repositories` file and
//! `<id>/json` directories are not written: `docker load` (since 1.10) and skopeo read `manifest.json`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::blob::read_full;
use crate::compress::{self, Compression};
use crate::convert::Format;
use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, IoContext, Result, from_io};
use crate::limits::Limits;
use crate::media_type::{self, Kind};
use crate::reference::{ArchiveSelector, ImageName};

use super::tar_index::TarIndex;
use super::{BlobReader, Destination, LayerPolicy, Source, VerifiedStream};

/// One entry of `manifest.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Where a blob of the selected image lives in the archive.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    compression: Compression,
}

/// Reads one image from a `docker save` tarball (plain or gzip-compressed).
#[derive(Debug)]
pub struct DockerArchiveSource {
    path: PathBuf,
    selector: Option<ArchiveSelector>,
    index: TarIndex,
    /// The decompressed copy of a gzip-compressed archive (deleted on drop).
    _decompressed: Option<crate::durable::TempFile>,
    manifest: Document,
    repo_tags: Vec<String>,
    all_tags: Vec<String>,
    blobs: HashMap<Digest, Member>,
    limits: Limits,
}

fn bad_archive(path: &Path, reason: impl Into<String>) -> Error {
    Error::invalid_document(format!("docker-archive {}", path.display()), reason)
}

/// Member names that could mean something outside the archive are refused: no absolute paths, no `..`.
fn check_member_name(path: &Path, name: &str) -> Result<()> {
    if name.starts_with('/') || name.split('/').any(|c| c == "..") || name.contains('\0') {
        return Err(bad_archive(
            path,
            format!("member name {name:?} escapes the archive (absolute or with '..')"),
        ));
    }
    Ok(())
}

/// The name `docker` shows for an image name (`busybox:latest`, `example.com/a/b:t`).
pub(crate) fn familiar_name(name: &ImageName) -> String {
    let repo = if name.domain == crate::reference::DOCKER_HUB_DOMAIN {
        name.repository
            .strip_prefix("library/")
            .unwrap_or(&name.repository)
            .to_string()
    } else {
        format!("{}/{}", name.domain, name.repository)
    };
    match &name.tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    }
}

impl DockerArchiveSource {
    /// Indexes the archive at `path` and resolves `selector` (needed when it holds several images).
    pub fn open(path: &Path, selector: Option<ArchiveSelector>, limits: Limits) -> Result<Self> {
        let mut file = crate::durable::open_regular(path, false)
            .ctx(|| format!("opening {}", path.display()))?;
        let mut magic = [0u8; compress::ARCHIVE_MAGIC_LEN];
        let n = crate::blob::read_full(&mut file, &mut magic)
            .ctx(|| format!("reading {}", path.display()))?;
        // gzip, zstd, xz and bzip2 cannot seek: a `docker save | gzip` (or xz, bzip2, zstd) archive is
        // decompressed once into a temp file, which is then indexed and streamed from like a plain
        // archive.
        let decompressed = match compress::sniff_archive(&magic[..n]) {
            compress::ArchiveCompression::Layer(Compression::None) => None,
            c => {
                file.seek(SeekFrom::Start(0))
                    .ctx(|| format!("reading {}", path.display()))?;
                let mut tmp = crate::durable::TempFile::new_in(&std::env::temp_dir())?;
                let compressed = file
                    .metadata()
                    .ctx(|| format!("reading {}", path.display()))?
                    .len();
                let dec = compress::archive_decoder(c, file)
                    .ctx(|| format!("decompressing {} ({})", path.display(), c.as_str()))?;
                // Bounded: a small compressed archive must not fill $TMPDIR.
                let mut dec = compress::ExpansionLimit::new(
                    dec,
                    compressed,
                    &limits,
                    format!("docker-archive {}", path.display()),
                );
                std::io::copy(&mut dec, tmp.as_file_mut()).map_err(|e| {
                    from_io(e, || {
                        format!("decompressing {} ({})", path.display(), c.as_str())
                    })
                })?;
                Some(tmp)
            }
        };
        let tar_path = decompressed.as_ref().map_or(path, |t| t.path());
        let index = TarIndex::build(tar_path, &limits)?;
        let len = std::fs::metadata(tar_path)
            .ctx(|| format!("reading {}", path.display()))?
            .len();
        let names: Vec<String> = index.names().map(str::to_string).collect();
        for name in &names {
            check_member_name(path, name)?;
            if let Some(m) = index.get(name)
                && m.offset.saturating_add(m.size) > len
            {
                return Err(bad_archive(
                    path,
                    format!("truncated archive: member {name} ends past the end of the file"),
                ));
            }
        }

        let manifest_json = index
            .read_small("manifest.json", limits.max_document_size)
            .map_err(|e| match e {
                Error::NotFound { .. } => bad_archive(
                    path,
                    "no manifest.json (not a docker save archive, or one older than Docker 1.10)",
                ),
                other => other,
            })?;
        let items: Vec<ManifestItem> = serde_json::from_slice(&manifest_json)
            .map_err(|e| bad_archive(path, format!("manifest.json: {e}")))?;
        let all_tags: Vec<String> = items
            .iter()
            .flat_map(|i| i.repo_tags.clone().unwrap_or_default())
            .collect();
        let item = select(path, &items, selector.as_ref())?.clone();

        check_member_name(path, &item.config)?;
        let config_member = index
            .resolve(&item.config)?
            .unwrap_or_else(|| item.config.clone());
        let config_bytes = index
            .read_small(&config_member, limits.max_document_size)
            .map_err(|e| match e {
                Error::NotFound { .. } => bad_archive(
                    path,
                    format!("config {} named by manifest.json is missing", item.config),
                ),
                other => other,
            })?;
        let config_digest = Digest::sha256(&config_bytes);
        let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| {
            Error::invalid_document(format!("config {}", item.config), e.to_string())
        })?;
        let diff_ids: Vec<Digest> = config
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|d| {
                        d.as_str()
                            .ok_or_else(|| {
                                Error::invalid_document(
                                    format!("config {}", item.config),
                                    "a diff_id is not a string",
                                )
                            })
                            .and_then(Digest::parse)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        if diff_ids.len() != item.layers.len() {
            return Err(bad_archive(
                path,
                format!(
                    "manifest.json lists {} layers but config {} has {} diff_ids",
                    item.layers.len(),
                    item.config,
                    diff_ids.len()
                ),
            ));
        }

        let mut blobs = HashMap::new();
        blobs.insert(
            config_digest.clone(),
            Member {
                name: config_member,
                compression: Compression::None,
            },
        );
        let mut layers = Vec::new();
        for (layer, diff_id) in item.layers.iter().zip(&diff_ids) {
            check_member_name(path, layer)?;
            // `docker save` stores a layer shared by two images once and links the second to it.
            let Some(member) = index
                .resolve(layer)?
                .and_then(|name| index.get(&name).map(|m| (name, m)))
            else {
                return Err(bad_archive(
                    path,
                    format!("layer {layer} named by manifest.json is missing from the archive"),
                ));
            };
            let (layer, member) = (&member.0, member.1);
            let mut prefix = [0u8; 4];
            let k = read_full(&mut index.open(layer)?, &mut prefix)
                .ctx(|| format!("reading {layer} in {}", path.display()))?;
            let compression = compress::sniff(&prefix[..k]);
            let size = match compression {
                Compression::None => member.size,
                // As skopeo does: the blob is the decompressed layer, so its size must be counted.
                c => {
                    let dec = compress::decoder(c, index.open(layer)?)
                        .ctx(|| format!("decompressing {layer} in {}", path.display()))?;
                    let what = format!("{layer} in {}", path.display());
                    let mut dec = compress::ExpansionLimit::new(dec, member.size, &limits, &what);
                    std::io::copy(&mut dec, &mut std::io::sink())
                        .map_err(|e| from_io(e, || format!("decompressing {what}")))?
                }
            };
            blobs.insert(
                diff_id.clone(),
                Member {
                    name: layer.clone(),
                    compression,
                },
            );
            layers.push((size, diff_id.clone()));
        }
        let manifest = synthesize_manifest(config_bytes.len() as u64, &config_digest, &layers)?;
        Ok(DockerArchiveSource {
            path: path.to_path_buf(),
            selector,
            index,
            _decompressed: decompressed,
            manifest,
            repo_tags: item.repo_tags.unwrap_or_default(),
            all_tags,
            blobs,
            limits,
        })
    }

    /// The `RepoTags` of the selected image.
    pub fn repo_tags(&self) -> &[String] {
        &self.repo_tags
    }
}

/// The manifest skopeo presents for a docker-archive image, with Go's struct key order.
fn synthesize_manifest(
    config_size: u64,
    config: &Digest,
    layers: &[(u64, Digest)],
) -> Result<Document> {
    let desc = |mt: &str, size: u64, digest: &Digest| {
        let mut d = Map::new();
        d.insert("mediaType".into(), Value::from(mt));
        d.insert("size".into(), Value::from(size));
        d.insert("digest".into(), Value::from(digest.to_string()));
        Value::Object(d)
    };
    let mut m = Map::new();
    m.insert("schemaVersion".into(), Value::from(2));
    m.insert("mediaType".into(), Value::from(media_type::DOCKER_MANIFEST));
    m.insert(
        "config".into(),
        desc(media_type::DOCKER_CONFIG, config_size, config),
    );
    m.insert(
        "layers".into(),
        Value::Array(
            layers
                .iter()
                .map(|(size, d)| desc(media_type::DOCKER_LAYER_GZIP, *size, d))
                .collect(),
        ),
    );
    let bytes = serde_json::to_vec(&Value::Object(m))
        .map_err(|e| Error::Other(format!("serialising manifest: {e}")))?;
    Document::new(media_type::DOCKER_MANIFEST, bytes)
}

fn select<'a>(
    path: &Path,
    items: &'a [ManifestItem],
    selector: Option<&ArchiveSelector>,
) -> Result<&'a ManifestItem> {
    let choices = || {
        let list: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let tags = it.repo_tags.clone().unwrap_or_default();
                if tags.is_empty() {
                    format!("@{i} (untagged)")
                } else {
                    format!("@{i} ({})", tags.join(", "))
                }
            })
            .collect();
        format!("; the archive holds: {}", list.join("; "))
    };
    let location = format!("docker-archive {}", path.display());
    match selector {
        None => match items {
            [one] => Ok(one),
            [] => Err(bad_archive(path, "manifest.json lists no images")),
            _ => Err(Error::NotFound {
                reference: "a single image (several present, pick one with :NAME:TAG or @INDEX)"
                    .into(),
                location,
                hint: choices(),
            }),
        },
        Some(ArchiveSelector::Index(i)) => items.get(*i).ok_or_else(|| Error::NotFound {
            reference: format!("image @{i}"),
            location,
            hint: choices(),
        }),
        Some(ArchiveSelector::Name(name)) => {
            let mut tagged = items.iter().filter(|it| {
                it.repo_tags
                    .iter()
                    .flatten()
                    .any(|t| ImageName::parse(t).is_ok_and(|n| &n == name))
            });
            let first = tagged.next().ok_or_else(|| Error::NotFound {
                reference: familiar_name(name),
                location,
                hint: choices(),
            })?;
            // Two images under one name: neither can be the one meant (as a layout's ambiguous tag).
            if let Some(other) = tagged.find(|it| it.config != first.config) {
                return Err(bad_archive(
                    path,
                    format!(
                        "{} is ambiguous: manifest.json gives it to both {} and {}",
                        familiar_name(name),
                        first.config,
                        other.config
                    ),
                ));
            }
            Ok(first)
        }
    }
}

fn selector_text(selector: &Option<ArchiveSelector>) -> String {
    match selector {
        None => String::new(),
        Some(ArchiveSelector::Index(i)) => format!(":@{i}"),
        Some(ArchiveSelector::Name(n)) => format!(":{}", familiar_name(n)),
    }
}

impl Source for DockerArchiveSource {
    fn synthesises_layer_types(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        format!(
            "docker-archive:{}{}",
            self.path.display(),
            selector_text(&self.selector)
        )
    }

    fn root(&self) -> Result<Document> {
        Ok(self.manifest.clone())
    }

    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader<'_>> {
        let digest = digest_of(desc)?;
        let Some(member) = self.blobs.get(&digest) else {
            return Err(Error::BlobNotFound {
                digest,
                location: self.name(),
            });
        };
        let raw = self.index.open(&member.name)?;
        compress::decoder(member.compression, raw)
            .map_err(|e| from_io(e, || format!("decompressing {}", member.name)))
    }

    fn tags(&self) -> Result<Vec<String>> {
        Ok(self.all_tags.clone())
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Writes one image as a `docker save` tarball.
pub struct DockerArchiveDestination {
    target: PathBuf,
    repo_tag: Option<String>,
    additional_tags: Vec<String>,
    state: Mutex<Option<Writer>>,
}

struct Writer {
    out: crate::durable::Output,
    builder: tar::Builder<BufWriter<File>>,
    written: HashSet<Digest>,
}

impl std::fmt::Debug for DockerArchiveDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerArchiveDestination")
            .field("target", &self.target)
            .field("repo_tag", &self.repo_tag)
            .field("additional_tags", &self.additional_tags)
            .finish()
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o444);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn is_config(desc: &Descriptor) -> bool {
    matches!(
        media_type::kind(desc.media_type().as_ref()),
        Kind::Config { .. }
    )
}

impl DockerArchiveDestination {
    /// Prepares to write `path` (replaced whole on commit); a name selector becomes the `RepoTags`.
    pub fn create(path: &Path, selector: Option<ArchiveSelector>) -> Result<Self> {
        let repo_tag = match selector {
            None => None,
            Some(ArchiveSelector::Name(n)) => {
                if n.digest.is_some() {
                    return Err(Error::InvalidReference {
                        reference: format!("docker-archive:{}", path.display()),
                        reason: "a docker-archive destination takes NAME:TAG, not a digest".into(),
                    });
                }
                Some(familiar_name(&n))
            }
            Some(ArchiveSelector::Index(_)) => {
                return Err(Error::InvalidReference {
                    reference: format!("docker-archive:{}", path.display()),
                    reason: "a docker-archive destination takes NAME:TAG, not @INDEX".into(),
                });
            }
        };
        crate::durable::remove_stale(&crate::durable::scratch_dir_for(path)?)?;
        let out = crate::durable::Output::create(path)?;
        let file = out
            .file()
            .try_clone()
            .ctx(|| format!("opening {} for writing", path.display()))?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(DockerArchiveDestination {
            target: path.to_path_buf(),
            repo_tag,
            additional_tags: Vec::new(),
            state: Mutex::new(Some(Writer {
                out,
                builder,
                written: HashSet::new(),
            })),
        })
    }

    /// Adds `NAME:TAG`s to the image's `RepoTags` after the destination's own (skopeo's
    /// `--additional-tag`); each must name a tag, not a digest.
    pub fn with_additional_tags(mut self, tags: &[ImageName]) -> Result<Self> {
        for name in tags {
            if name.digest.is_some() || name.tag.is_none() {
                return Err(Error::InvalidReference {
                    reference: name.to_string(),
                    reason: "an additional tag must be NAME:TAG".into(),
                });
            }
            let familiar = familiar_name(name);
            if self.repo_tag.as_ref() != Some(&familiar)
                && !self.additional_tags.contains(&familiar)
            {
                self.additional_tags.push(familiar);
            }
        }
        Ok(self)
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(Error::Other(format!(
                "{} was already committed",
                self.target.display()
            ))),
        }
    }

    fn member_name(desc: &Descriptor) -> Result<String> {
        let d = digest_of(desc)?;
        Ok(if is_config(desc) {
            format!("{}.json", d.hex())
        } else {
            format!("{}.tar", d.hex())
        })
    }
}

/// A reader that yields `prefix` and then `rest`.
struct Prefixed<'a, R> {
    prefix: &'a [u8],
    rest: R,
}

impl<R: Read> Read for Prefixed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.prefix.is_empty() {
            let n = buf.len().min(self.prefix.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix = &self.prefix[n..];
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

impl Destination for DockerArchiveDestination {
    fn name(&self) -> String {
        match &self.repo_tag {
            Some(t) => format!("docker-archive:{}:{t}", self.target.display()),
            None => format!("docker-archive:{}", self.target.display()),
        }
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let d = digest_of(desc)?;
        self.with_writer(|w| Ok(w.written.contains(&d)))
    }

    fn put_blob(&self, desc: &Descriptor, stream: &mut VerifiedStream<'_>) -> Result<()> {
        let digest = digest_of(desc)?;
        let name = Self::member_name(desc)?;
        let what = || format!("writing {name} into {}", self.target.display());
        // Layers in a docker-archive are plain tars; the copy engine decompresses (see layer_policy).
        let mut prefix = [0u8; 4];
        let n = read_full(stream, &mut prefix).map_err(|e| from_io(e, what))?;
        if !is_config(desc) && compress::sniff(&prefix[..n]) != Compression::None {
            return Err(Error::Unsupported(format!(
                "layer {digest} is compressed; a docker-archive stores uncompressed layers"
            )));
        }
        self.with_writer(|w| {
            if w.written.contains(&digest) {
                return Ok(());
            }
            let mut reader = Prefixed {
                prefix: &prefix[..n],
                rest: &mut *stream,
            };
            w.builder
                .append_data(&mut header(desc.size()), &name, &mut reader)
                .map_err(|e| from_io(e, what))?;
            if !stream.is_verified() {
                stream.finish()?;
            }
            w.written.insert(digest);
            Ok(())
        })
    }

    fn put_document(&self, doc: &Document) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{} holds a single image, not an index (document {}); pick one platform",
            self.name(),
            doc.digest()
        )))
    }

    fn commit(&self, root: &Document) -> Result<()> {
        if !self.accepts(root.media_type()) {
            return Err(Error::Unsupported(format!(
                "{} stores Docker schema 2 manifests, not {}",
                self.name(),
                root.media_type()
            )));
        }
        let manifest = root.manifest()?;
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut w) = guard.take() else {
            return Err(Error::Other(format!(
                "{} was already committed",
                self.target.display()
            )));
        };
        let mut layers = Vec::new();
        for desc in std::iter::once(manifest.config()).chain(manifest.layers()) {
            let d = digest_of(desc)?;
            if !w.written.contains(&d) {
                return Err(Error::BlobNotFound {
                    digest: d,
                    location: format!("{} (it was never written)", self.name()),
                });
            }
            if !is_config(desc) {
                layers.push(Self::member_name(desc)?);
            }
        }
        let item = ManifestItem {
            config: Self::member_name(manifest.config())?,
            repo_tags: Some(
                self.repo_tag
                    .iter()
                    .chain(&self.additional_tags)
                    .cloned()
                    .collect(),
            ),
            layers,
        };
        let bytes = serde_json::to_vec(&[item])
            .map_err(|e| Error::Other(format!("serialising manifest.json: {e}")))?;
        let ctx = || format!("writing {}", self.target.display());
        w.builder
            .append_data(&mut header(bytes.len() as u64), "manifest.json", &bytes[..])
            .ctx(ctx)?;
        let buf = w.builder.into_inner().ctx(ctx)?;
        buf.into_inner()
            .map_err(|e| Error::io(ctx(), e.into_error()))?
            .flush()
            .ctx(ctx)?;
        w.out.commit()
    }

    fn accepts(&self, media_type: &str) -> bool {
        media_type == media_type::DOCKER_MANIFEST
    }

    fn native_format(&self) -> Option<Format> {
        Some(Format::DockerV2S2)
    }

    fn layer_policy(&self) -> LayerPolicy {
        LayerPolicy::Uncompressed
    }
}
