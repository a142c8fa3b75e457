//! umoci's bundle metadata beside hoist's, so a bundle hoist unpacks can be repacked by
//! `umoci repack`: `umoci.json` (where the tree came from, as a descriptor walk) and the go-mtree
//! manifest `ALG_HEX.mtree` of the rootfs with umoci's keywords (`size,type,uid,gid,mode,link,
//! nlink,tar_time,sha256digest,xattr`), in go-mtree's hierarchy format with its `vis` encoding of
//! names. The manifest is made from the state record hoist scanned right after the unpack (file
//! digests included, so nothing is read again), plus an `lstat` of each path and its xattrs for what
//! umoci's walk reports (sizes, link counts, owners as they are on disk, the rootless owner record).
//!
//! It is written for bundles without id maps or overlay whiteouts; a rootless one says so in
//! `umoci.json` (the image's root mapped to the user who unpacked it), as `umoci unpack --rootless`.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use crate::descriptor::Descriptor;
use crate::diff::{FileType, Meta};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::Image;
use crate::layer::state::{STATE_VERSION, StateEntry, StateHeader, UnpackState};
use crate::layout::Layout;
use crate::reference::{LayoutRef, TransportRef};

/// umoci's metadata file in a bundle.
pub const UMOCI_JSON: &str = "umoci.json";

/// The keywords umoci 0.4 records.
const KEYWORDS: &str = "size,type,uid,gid,mode,link,nlink,tar_time,sha256digest,xattr";

/// Writes `umoci.json` and the mtree manifest into `bundle` for the tree `bundle/rootfs` that
/// `state` describes, unpacked from `image`.
pub fn write_bundle_meta(bundle: &Path, image: &Image, state: &UnpackState) -> Result<()> {
    let mut walk = Vec::new();
    if let Some(index) = &image.index_doc {
        walk.push(index.descriptor());
    }
    walk.push(image.manifest_doc.descriptor());
    write_meta(bundle, &walk, state)
}

/// After a `repack --refresh-bundle` of a bundle that has umoci's metadata: rewrites it for the
/// new image `manifest` (as `umoci repack --refresh-bundle` does), removing the old manifest's mtree.
pub fn refresh_bundle_meta(
    bundle: &Path,
    manifest: &Descriptor,
    state: &UnpackState,
) -> Result<()> {
    let old = std::fs::read_dir(bundle).ctx(|| format!("listing {}", bundle.display()))?;
    for e in old.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".mtree") && e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(e.path()).ctx(|| format!("removing {}", e.path().display()))?;
        }
    }
    write_meta(bundle, std::slice::from_ref(manifest), state)
}

fn write_meta(bundle: &Path, walk: &[Descriptor], state: &UnpackState) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    let walk: Vec<serde_json::Value> = walk
        .iter()
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .collect();
    let digest = walk
        .last()
        .and_then(|d| d["digest"].as_str())
        .map(Digest::parse)
        .transpose()?
        .ok_or_else(|| Error::Other("no manifest to describe".into()))?;
    // A rootless unpack maps the image's root to the user who ran it, as umoci's --rootless does.
    let map_options = if state.header.rootless {
        let (uid, gid) = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        json!({
            "uid_mappings": [{"containerID": 0, "hostID": uid, "size": 1}],
            "gid_mappings": [{"containerID": 0, "hostID": gid, "size": 1}],
            "rootless": true,
        })
    } else {
        json!({"uid_mappings": null, "gid_mappings": null, "rootless": false})
    };
    let meta = json!({
        "umoci_version": "2",
        "from_descriptor_path": {"descriptor_walk": walk},
        "map_options": map_options,
        "whiteout_mode": 0,
    });
    let mut text = format!(
        "#          user: root\n#          tree: {}\n#      keywords: {KEYWORDS}\n\n",
        rootfs.display()
    );
    // The root, then each directory's files and subdirectories in path order.
    let root_line = line(&rootfs, Path::new(""), b".", state.header.root.as_ref())?;
    text.push_str("# .\n");
    text.push_str(&root_line);
    // Entries are in path order, a directory's contents right after it; but mtree wants a
    // directory's files before its subdirectories, so each directory is emitted as a block.
    let entries: Vec<(&PathBuf, &StateEntry)> = state.entries.iter().map(|(p, e)| (p, e)).collect();
    emit_dir(&rootfs, Path::new(""), &entries, &mut text)?;
    text.push_str("..\n");
    let name = format!("{}_{}.mtree", digest.algorithm().as_str(), digest.hex());
    crate::durable::replace_file(&bundle.join(name), text.as_bytes(), None)?;
    let mut bytes = serde_json::to_vec(&meta).unwrap_or_default();
    bytes.push(b'\n');
    crate::durable::replace_file(&bundle.join(UMOCI_JSON), &bytes, None)
}

/// Emits the children of `dir`: its files, then each subdirectory as a block ending in `..`.
/// `entries` is exactly `dir`'s subtree in path order (component-wise, so each subdirectory's own
/// subtree follows it contiguously): every level scans its subtree once.
fn emit_dir(
    rootfs: &Path,
    dir: &Path,
    entries: &[(&PathBuf, &StateEntry)],
    text: &mut String,
) -> Result<()> {
    for (p, e) in entries {
        if p.parent() == Some(dir) && e.kind != "dir" {
            let name = p.file_name().unwrap_or_default().as_bytes();
            text.push_str("    ");
            text.push_str(&line(rootfs, p, name, Some(e))?);
        }
    }
    let mut i = 0;
    while i < entries.len() {
        let (p, e) = entries[i];
        if p.parent() != Some(dir) || e.kind != "dir" {
            i += 1;
            continue;
        }
        let end = entries[i + 1..]
            .iter()
            .position(|(q, _)| !q.starts_with(p))
            .map_or(entries.len(), |n| i + 1 + n);
        let name = p.file_name().unwrap_or_default().as_bytes();
        let _ = writeln!(
            text,
            "\n# {}",
            String::from_utf8_lossy(&vis(p.as_os_str().as_bytes()))
        );
        text.push_str(&line(rootfs, p, name, Some(e))?);
        emit_dir(rootfs, p, &entries[i + 1..end], text)?;
        text.push_str("..\n");
        i = end;
    }
    Ok(())
}

/// One mtree entry line for `rel` (named `name`), from its state entry and an `lstat`.
fn line(rootfs: &Path, rel: &Path, name: &[u8], entry: Option<&StateEntry>) -> Result<String> {
    let path = if rel.as_os_str().is_empty() {
        rootfs.to_path_buf()
    } else {
        rootfs.join(rel)
    };
    let st = std::fs::symlink_metadata(&path).ctx(|| format!("reading {}", path.display()))?;
    let ft = st.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "link"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_socket() {
        "socket"
    } else {
        "file"
    };
    let mode = st.mode() & 0o7777;
    let mut out = String::from_utf8_lossy(&vis(name)).into_owned();
    let _ = write!(
        out,
        " size={} type={kind} uid={} gid={} mode={} nlink={} tar_time={}.000000000",
        st.size(),
        st.uid(),
        st.gid(),
        if mode == 0 {
            "0".into()
        } else {
            format!("0{mode:o}")
        },
        st.nlink(),
        st.mtime()
    );
    if ft.is_symlink() {
        let target = std::fs::read_link(&path).ctx(|| format!("reading {}", path.display()))?;
        let _ = write!(
            out,
            " link={}",
            String::from_utf8_lossy(&vis(target.as_os_str().as_bytes()))
        );
    }
    if ft.is_file() {
        let hex = match entry.and_then(|e| e.digest.as_deref()) {
            Some(d) if d.starts_with("sha256:") => d["sha256:".len()..].to_string(),
            _ => crate::layer::state::hash_file(rootfs, rel, None)?
                .hex()
                .to_string(),
        };
        let _ = write!(out, " sha256digest={hex}");
    }
    // Every xattr, as go-mtree's walk lists them (the rootless owner record included).
    let names: Vec<std::ffi::OsString> = match xattr::list(&path) {
        Ok(n) => n.collect(),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
        Err(e) => {
            return Err(Error::io(
                format!("listing xattrs of {}", path.display()),
                e,
            ));
        }
    };
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for name in names {
        if let Some(value) =
            xattr::get(&path, &name).ctx(|| format!("reading xattrs of {}", path.display()))?
        {
            xattrs.push((name.as_bytes().to_vec(), value));
        }
    }
    xattrs.sort();
    for (key, value) in xattrs {
        let _ = write!(
            out,
            " xattr.{}={}",
            String::from_utf8_lossy(&vis(&key)),
            base64::engine::general_purpose::STANDARD.encode(value)
        );
    }
    out.push('\n');
    Ok(out)
}

/// go-mtree's `vis` encoding of a name (`VIS_WHITE | VIS_OCTAL | VIS_GLOB`): a backslash is `\\`,
/// anything but plain printable characters, and the glob characters `*?[#`, is `\ooo`.
pub fn vis(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'*' | b'?' | b'[' | b'#' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            0x21..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out
}

pub use crate::layer::state::MTREE_FORMAT;

/// Reads a bundle `umoci unpack` made (`umoci.json` and its mtree manifest, no hoist state) as a state
/// record for `repack`, whose image is in the layout `dest` (umoci does not record where it came
/// from). A rootless bundle's owners come from its `user.rootlesscontainers` records, as in a rootless
/// hoist bundle; bundles unpacked with other id maps, or with overlay whiteouts, are refused.
pub fn read_bundle_state(bundle: &Path, dest: &Path) -> Result<UnpackState> {
    let meta_path = bundle.join(UMOCI_JSON);
    let bad = |why: String| Error::Other(format!("{}: {why}", meta_path.display()));
    let bytes = crate::durable::open_regular(&meta_path, true)
        .and_then(|mut f| {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut f, 1 << 20), &mut v)?;
            Ok(v)
        })
        .ctx(|| format!("reading {}", meta_path.display()))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let opts = &meta["map_options"];
    // A rootless bundle maps only the image's root to the user (its owners are in the
    // user.rootlesscontainers records, read below); other mappings are refused.
    let rootless = opts["rootless"].as_bool() == Some(true);
    for k in ["uid_mappings", "gid_mappings"] {
        if !rootless && opts[k].as_array().is_some_and(|a| !a.is_empty()) {
            return Err(Error::Unsupported(format!(
                "{} was unpacked by umoci with id mappings ({k}); repack it with umoci",
                bundle.display()
            )));
        }
    }
    if meta["whiteout_mode"].as_u64().unwrap_or(0) != 0 {
        return Err(Error::Unsupported(format!(
            "{} was unpacked by umoci with overlayfs whiteouts; repack it with umoci",
            bundle.display()
        )));
    }
    let manifest = meta["from_descriptor_path"]["descriptor_walk"]
        .as_array()
        .and_then(|w| w.last())
        .and_then(|d| d["digest"].as_str())
        .ok_or_else(|| bad("no from_descriptor_path.descriptor_walk".into()))?;
    let manifest = Digest::parse(manifest)?;
    let layout = Layout::open(dest)?;
    let desc = layout.resolve(Some(&LayoutRef::Digest(manifest.clone())))?;
    let m = layout.read_document(&desc)?.manifest()?;
    let config_bytes = layout.read_small_blob(m.config())?;
    let config =
        crate::document::parse_config(&config_bytes, &Digest::try_from(m.config().digest())?)?;

    let mtree_path = bundle.join(format!(
        "{}_{}.mtree",
        manifest.algorithm().as_str(),
        manifest.hex()
    ));
    let text = crate::durable::open_regular(&mtree_path, true)
        .and_then(|mut f| {
            let mut v = String::new();
            std::io::Read::read_to_string(&mut f, &mut v)?;
            Ok(v)
        })
        .ctx(|| format!("reading {}", mtree_path.display()))?;
    let (root, mut entries) = parse_mtree(&text)
        .map_err(|why| Error::Other(format!("{}: {why}", mtree_path.display())))?;
    // umoci's keywords have no device numbers (so umoci never sees them change): take the tree's, so
    // that a device node is not written as changed either.
    let rootfs = bundle.join("rootfs");
    for (path, e) in entries.iter_mut() {
        if (e.kind == "char" || e.kind == "block")
            && let Ok(st) = std::fs::symlink_metadata(rootfs.join(path.as_path()))
        {
            let rdev = st.rdev();
            e.device = Some((libc::major(rdev), libc::minor(rdev)));
        }
    }
    let header = StateHeader {
        format: MTREE_FORMAT.into(),
        version: STATE_VERSION,
        manifest: manifest.to_string(),
        source: Some(
            TransportRef::Oci {
                path: std::path::absolute(dest).unwrap_or(dest.to_path_buf()),
                reference: Some(LayoutRef::Digest(manifest.clone())),
            }
            .to_string(),
        ),
        config: m.config().digest().to_string(),
        layers: m.layers().iter().map(|l| l.digest().to_string()).collect(),
        diff_ids: config.rootfs().diff_ids().clone(),
        rootfs: "rootfs".into(),
        rootless,
        whiteout_format: "apply".into(),
        skipped_devices: Vec::new(),
        entries: entries.len() as u64,
        uid_map: Vec::new(),
        gid_map: Vec::new(),
        root,
    };
    Ok(UnpackState { header, entries })
}

/// Undoes [`vis`] (and the other escapes go-mtree's `unvis` reads: `\s`, `\t`, `\n`, ...).
pub fn unvis(text: &str) -> std::result::Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let next = *b
            .get(i + 1)
            .ok_or_else(|| format!("{text:?} ends in a backslash"))?;
        match next {
            b'0'..=b'7' => {
                let digits: Vec<u8> = b[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| (b'0'..=b'7').contains(c))
                    .copied()
                    .collect();
                let v = u32::from_str_radix(std::str::from_utf8(&digits).unwrap_or("0"), 8)
                    .unwrap_or(0);
                out.push(u8::try_from(v).map_err(|_| format!("bad escape in {text:?}"))?);
                i += 1 + digits.len();
                continue;
            }
            b'\\' => out.push(b'\\'),
            b's' => out.push(b' '),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'a' => out.push(7),
            b'v' => out.push(11),
            b'f' => out.push(12),
            b'E' => out.push(27),
            _ => return Err(format!("unknown escape \\{} in {text:?}", next as char)),
        }
        i += 2;
    }
    Ok(out)
}

/// The root's entry and every other entry (path order) of a go-mtree hierarchy manifest.
type Parsed = (Option<StateEntry>, Vec<(PathBuf, StateEntry)>);

/// Parses go-mtree's hierarchy format (`/set`, `/unset`, `..`, full-path entries) into state entries.
fn parse_mtree(text: &str) -> std::result::Result<Parsed, String> {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let mut defaults: BTreeMap<String, String> = BTreeMap::new();
    let mut cwd: Vec<Vec<u8>> = Vec::new();
    let mut root = None;
    let mut entries = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("line {}", n + 1);
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first == "/set" {
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| format!("{}: {w:?}", at()))?;
                defaults.insert(k.into(), v.into());
            }
            continue;
        }
        if first == "/unset" {
            for w in words {
                if w == "all" {
                    defaults.clear();
                } else {
                    defaults.remove(w);
                }
            }
            continue;
        }
        if first == ".." {
            cwd.pop()
                .ok_or_else(|| format!("{}: `..` above the root", at()))?;
            continue;
        }
        let mut kw = defaults.clone();
        for w in words {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            kw.insert(k.into(), v.into());
        }
        let name = unvis(first).map_err(|e| format!("{}: {e}", at()))?;
        let full = name.contains(&b'/');
        let rel: Vec<u8> = if full {
            crate::layer::root::lexical_clean(&name)
        } else if name == b"." && cwd.is_empty() {
            Vec::new()
        } else {
            let mut p: Vec<u8> = cwd
                .iter()
                .filter(|c| c.as_slice() != b".")
                .fold(Vec::new(), |acc, c| crate::layer::root::join(&acc, c));
            p = crate::layer::root::join(&p, &name);
            p
        };
        let num = |k: &str| -> std::result::Result<u64, String> {
            kw.get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("{}: bad {k}={v}", at()))
                })
                .unwrap_or(Ok(0))
        };
        let file_type = match kw.get("type").map(String::as_str).unwrap_or("file") {
            "file" => FileType::Regular,
            "dir" => FileType::Dir,
            "link" => FileType::Symlink,
            "char" => FileType::CharDevice,
            "block" => FileType::BlockDevice,
            "fifo" => FileType::Fifo,
            "socket" => FileType::Socket,
            other => return Err(format!("{}: unknown type {other:?}", at())),
        };
        let mode = kw
            .get("mode")
            .map(|v| u32::from_str_radix(v, 8).map_err(|_| format!("{}: bad mode {v}", at())))
            .unwrap_or(Ok(0))?;
        let time = kw
            .get("tar_time")
            .or_else(|| kw.get("time"))
            .map(|v| {
                v.split('.')
                    .next()
                    .unwrap_or("0")
                    .parse::<i64>()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let mut xattrs = BTreeMap::new();
        let mut owner = crate::owner::RootlessOwner::default();
        for (k, v) in &kw {
            if let Some(name) = k.strip_prefix("xattr.") {
                let name = unvis(name).map_err(|e| format!("{}: {e}", at()))?;
                let value = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| format!("{}: bad xattr value", at()))?;
                // As the tree walk reads them: the rootless record gives the owner, and neither it
                // nor security.selinux belongs in a layer.
                if name == crate::owner::ROOTLESS_XATTR.as_bytes() {
                    owner = crate::owner::parse_rootless(&value)
                        .map_err(|e| format!("{}: {e}", at()))?;
                    continue;
                }
                if name == b"security.selinux" {
                    continue;
                }
                xattrs.insert(OsString::from_vec(name), value);
            }
        }
        let link_target = match kw.get("link") {
            Some(l) if file_type == FileType::Symlink => Some(PathBuf::from(OsString::from_vec(
                unvis(l).map_err(|e| format!("{}: {e}", at()))?,
            ))),
            _ => None,
        };
        let meta = Meta {
            file_type,
            mode: mode & 0o7777,
            uid: match owner.uid {
                Some(u) => u,
                None => u32::try_from(num("uid")?).map_err(|_| at())?,
            },
            gid: match owner.gid {
                Some(g) => g,
                None => u32::try_from(num("gid")?).map_err(|_| at())?,
            },
            size: if file_type == FileType::Regular {
                num("size")?
            } else {
                0
            },
            mtime: time,
            mtime_nsec: 0,
            link_target,
            device: None,
            xattrs,
            inode: None,
            ctime: None,
        };
        let digest = match kw.get("sha256digest").or_else(|| kw.get("sha256")) {
            Some(h) => {
                Some(Digest::parse(&format!("sha256:{h}")).map_err(|e| format!("{}: {e}", at()))?)
            }
            None => None,
        };
        let path = PathBuf::from(OsString::from_vec(rel.clone()));
        let entry = StateEntry::from_meta(&path, &meta, digest.as_ref());
        if rel.is_empty() {
            root = Some(entry);
        } else {
            entries.push((path, entry));
        }
        if file_type == FileType::Dir && !full {
            cwd.push(name);
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((root, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_go_mtree_does() {
        // From umoci's own manifest of such names.
        assert_eq!(vis(b"a dir"), b"a\\040dir");
        assert_eq!(vis(b"f*?[#x"), b"f\\052\\077\\133\\043x");
        assert_eq!(vis(b"nl\tx\\y"), b"nl\\011x\\\\y");
        assert_eq!(vis("é".as_bytes()), b"\\303\\251");
    }

    #[test]
    fn umocis_manifest_parses() {
        // umoci 0.4.7's manifest of a small tree (names that need escaping, a hardlink pair with an
        // xattr, a symlink, a fifo, nested directories).
        let text = "#      keywords: size,type,uid,gid,mode,link,nlink,tar_time,sha256digest,xattr\n\n\
# .\n/set type=file nlink=1 mode=0664 uid=0 gid=0\n\
. size=4096 type=dir mode=0755 nlink=3 tar_time=1795630357.000000000\n\
    ff size=0 type=fifo mode=0644 tar_time=1795630357.000000000\n\
    hard size=3 mode=0644 nlink=2 tar_time=1795630355.000000000 sha256digest=98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4 xattr.user.foo=YmFy\n\
    lnk size=8 type=link mode=0777 link=../a\\040dir tar_time=1795630355.000000000\n\
    nl\\011x\\\\y size=1 mode=0644 tar_time=1795630355.000000000 sha256digest=2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n\n\
# a dir\n\
a\\040dir size=4096 type=dir mode=0755 nlink=3 tar_time=1795630355.000000000\n\
    f\\052\\077\\133\\043x size=3 mode=0644 nlink=2 tar_time=1795630355.000000000 sha256digest=98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4\n\n\
# a dir/sub\n\
sub size=4096 type=dir mode=0711 nlink=2 tar_time=1795630355.000000000\n..\n..\n..\n";
        let (root, entries) = parse_mtree(text).unwrap();
        assert_eq!(root.unwrap().kind, "dir");
        let paths: Vec<String> = entries
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "a dir",
                "a dir/f*?[#x",
                "a dir/sub",
                "ff",
                "hard",
                "lnk",
                "nl\tx\\y"
            ]
        );
        let get = |p: &str| &entries.iter().find(|(q, _)| q == Path::new(p)).unwrap().1;
        assert_eq!(get("a dir/sub").mode, 0o711);
        assert_eq!(get("lnk").kind, "symlink");
        assert_eq!(get("ff").kind, "fifo");
        let hard = get("hard").meta().unwrap();
        assert_eq!((hard.mode, hard.size, hard.mtime), (0o644, 3, 1795630355));
        assert_eq!(hard.xattrs.values().next().unwrap(), b"bar");
        assert_eq!(
            get("lnk").meta().unwrap().link_target.unwrap(),
            Path::new("../a dir")
        );
        for name in [&b"a dir"[..], b"f*?[#x", b"nl\tx\\y", "é".as_bytes()] {
            assert_eq!(
                unvis(std::str::from_utf8(&vis(name)).unwrap()).unwrap(),
                name
            );
        }
        assert!(parse_mtree("..\n").is_err());
    }
}
