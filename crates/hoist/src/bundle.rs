//! OCI runtime bundles: the runtime-spec `config.json` generated from an image config, as umoci and
//! the image-spec's `conversion.md` make it, so that `runc run` can start an unpacked image.
//!
//! The image decides args (`Entrypoint` + `Cmd`), environment (on top of `PATH`/`TERM` defaults, with
//! `HOME` from the user's `/etc/passwd` entry), working directory, user (with `additionalGids` from
//! `/etc/group`), `Volumes` (tmpfs mounts, as umoci) and the conversion.md annotations (including
//! `org.opencontainers.image.exposedPorts`); everything else is the runtime-spec default (oci-spec's,
//! which follows runc's `runc spec`), or its rootless variant. Image paths (`WorkingDir`) are cleaned
//! lexically so they cannot point above `/`. The user database ([`UserDb`]) comes either from an
//! unpacked rootfs, read through the confined `layer::Root` (never following a symlink out of it), or straight from the
//! image's layers through the unpacker's verified layer reader, without unpacking anything: top layer
//! first, stopping below the layer where both files are known ([`UserDb::from_image`]).
//!
//! As umoci (`oci/config/convert/runtime.go`, runc's `GetExecUser`), the user database is consulted for
//! every image user, the empty one (root) and numeric ones included: a matching `/etc/passwd` entry
//! gives `HOME` and, when the image's `User` names no group, the supplementary groups. So no image
//! config can be answered without it; only an image without layers reads none.

use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Mount, Process, Spec, User};

use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::root::{Root, join, lexical_clean, split_last};
use crate::layer::{EntryKind, Msg};
use crate::limits::Limits;
use crate::transport::Source;

/// Most bytes read from `/etc/passwd` or `/etc/group`.
const MAX_DB: u64 = 4 << 20;

/// The default `PATH` when the image sets none (runc's and umoci's).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The paths of the user database, relative to the root.
const DB_FILES: [&[u8]; 2] = [b"etc/passwd", b"etc/group"];

/// An image's `/etc/passwd` and `/etc/group` (either may be absent).
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    /// The contents of `/etc/passwd`.
    pub passwd: Option<Vec<u8>>,
    /// The contents of `/etc/group`.
    pub group: Option<Vec<u8>>,
}

/// An image user resolved against a [`UserDb`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups: every `/etc/group` entry that lists the user (only when the image's
    /// `User` names no group, as runc and umoci do).
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, when the user has an entry there.
    pub home: Option<String>,
}

impl UserDb {
    /// Reads the database of an unpacked rootfs, resolving paths inside it.
    pub fn from_rootfs(rootfs: &Path) -> Result<UserDb> {
        let root = Root::open(rootfs, None)?;
        Ok(UserDb {
            passwd: root.read_file(DB_FILES[0], MAX_DB)?,
            group: root.read_file(DB_FILES[1], MAX_DB)?,
        })
    }

    /// Reads the database from an image's layers, top layer first, stopping as soon as both files are
    /// known: found in a layer, or hidden below it by a whiteout, an opaque directory or a
    /// non-directory replacing `/etc`. Nothing is written.
    ///
    /// What is verified: every layer that is opened is read to its end through the unpacker's layer
    /// reader and checked (compressed digest and size, diff_id) before anything read from it is used,
    /// so every byte that decides the answer is verified. Layers below the one that decided it are not
    /// read at all (their contents cannot change the answer), so a damaged lower layer is not
    /// detected here: `hoist verify` checks them all. A `/etc/passwd` or `/etc/group` that is a
    /// symlink or hardlink (or an `/etc` that is a symlink) is resolved as the unpacked tree would
    /// resolve it: the tree is built in memory from every layer (as [`crate::export()`] does). As
    /// the image-spec says, a whiteout hides only what lies below its layer, not the same layer's files.
    pub fn from_image(source: &dyn Source, image: &Image, limits: &Limits) -> Result<UserDb> {
        let (layers, diff_ids) = image.layers_with_diff_ids()?;
        let names = crate::layer::read::layer_names(&layers);
        // Each file: None while unknown, Some(contents or None for absent) once decided.
        let mut decided: [Option<Option<Vec<u8>>>; 2] = [None, None];
        let mut totals = crate::layer::ReadTotals::default();
        for i in (0..layers.len()).rev() {
            let name = &names[i];
            let mut scan = LayerScan::default();
            crate::layer::read::read_layer_with(
                source,
                &layers[i],
                name,
                &diff_ids[i],
                limits,
                &mut totals,
                &None,
                &crate::cancel::CancelToken::default(),
                &mut |msg| scan.take(msg),
            )?;
            // The layer was read to its end and verified: its answer may be used.
            for (f, d) in decided.iter_mut().enumerate() {
                if d.is_none() {
                    if let Some(own) = scan.own[f].take() {
                        if scan.linked[f] {
                            // A link may lead into any layer: resolve it on the whole tree.
                            return UserDb::from_image_tree(source, image, limits);
                        }
                        *d = Some(own);
                    } else if scan.hidden[f] {
                        *d = Some(None);
                    }
                }
            }
            if decided.iter().all(Option::is_some) {
                break;
            }
        }
        let [passwd, group] = decided;
        Ok(UserDb {
            passwd: passwd.flatten(),
            group: group.flatten(),
        })
    }

    /// The database as the unpacked tree holds it, for an image whose `/etc/passwd`, `/etc/group` or
    /// `/etc` is a link: the tree an unpack makes is built in memory by the unpack applier
    /// ([`crate::export`]'s first pass: every layer read and verified), each file is looked up with
    /// its symlinks followed inside the root (as [`UserDb::from_rootfs`] does on disk), and the
    /// contents come from the one layer entry that holds them (only those layers are read again).
    fn from_image_tree(source: &dyn Source, image: &Image, limits: &Limits) -> Result<UserDb> {
        let (layers, diff_ids) = image.layers_with_diff_ids()?;
        let names = crate::layer::read::layer_names(&layers);
        let cancel = crate::cancel::CancelToken::default();
        let tree =
            crate::layer::read::image_tree(source, &layers, &names, &diff_ids, limits, &cancel)?;
        // Per file, the (layer, entry) holding its contents; a file that resolves to nothing or to
        // something other than a regular file is absent, as on disk.
        let mut wanted: [Option<(usize, u64)>; 2] = [None, None];
        for (f, path) in DB_FILES.iter().enumerate() {
            let Some(node) = tree.lookup(path).map(|id| tree.node(id)) else {
                continue;
            };
            if node.kind != EntryKind::Regular {
                continue;
            }
            if let Some(size) = node.head.as_ref().map(|h| h.size)
                && size > MAX_DB
            {
                return Err(Error::Other(format!(
                    "the image's /{} is {size} bytes, more than the {MAX_DB} read",
                    String::from_utf8_lossy(path),
                )));
            }
            wanted[f] = node.source;
        }
        let mut found: [Option<Vec<u8>>; 2] = [None, None];
        let mut read: Vec<usize> = wanted.iter().flatten().map(|w| w.0).collect();
        read.dedup();
        let mut totals = crate::layer::ReadTotals::default();
        for layer in read {
            // Entries numbered as the tree numbered them (one layer: layer 0 of this read).
            let mut pos = crate::layer::read::Position::default();
            let mut current: Vec<usize> = Vec::new();
            crate::layer::read::read_layer_with(
                source,
                &layers[layer],
                &names[layer],
                &diff_ids[layer],
                limits,
                &mut totals,
                &None,
                &cancel,
                &mut |msg| {
                    let at = pos.step(&msg);
                    match msg {
                        Msg::Entry(_) => {
                            let here = at.map(|(_, entry)| (layer, entry));
                            current = (0..2)
                                .filter(|&f| here.is_some() && wanted[f] == here)
                                .collect();
                            for &f in &current {
                                found[f] = Some(Vec::new());
                            }
                        }
                        Msg::Data(chunk) => {
                            for &f in &current {
                                if let Some(b) = found[f].as_mut() {
                                    b.extend_from_slice(&chunk);
                                }
                            }
                        }
                        Msg::EndFile | Msg::LayerEnd | Msg::LayerStart(_) => current.clear(),
                    }
                    Ok(())
                },
            )?;
        }
        let [passwd, group] = found;
        Ok(UserDb { passwd, group })
    }

    /// Resolves an image `User` (`uid`, `uid:gid`, `name`, `name:group`, empty for root) as runc's
    /// `GetExecUser` does: a name must be in `/etc/passwd` (a group name in `/etc/group`); a number
    /// need not be.
    pub fn resolve(&self, user: &str) -> Result<ExecUser> {
        let (name, group) = match user.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (user, None),
        };
        let passwd = lines(self.passwd.as_deref());
        // The empty user is root: its entry is the first with uid 0 (runc's `GetExecUser`, so umoci
        // sets root's HOME and supplementary groups too).
        let entry = passwd.iter().find(|f| {
            f.len() >= 6
                && if name.is_empty() {
                    f[2].parse::<u32>().ok() == Some(0)
                } else if let Ok(n) = name.parse::<u32>() {
                    f[2].parse::<u32>().ok() == Some(n)
                } else {
                    f[0] == name
                }
        });
        let mut out = ExecUser::default();
        match (entry, name.parse::<u32>()) {
            (Some(f), _) => {
                out.uid = f[2].parse().map_err(|_| bad_db("passwd", &f.join(":")))?;
                out.gid = f[3].parse().map_err(|_| bad_db("passwd", &f.join(":")))?;
                out.home = Some(f[5].clone());
            }
            (None, Ok(n)) => out.uid = n,
            (None, Err(_)) if name.is_empty() => {}
            (None, Err(_)) => {
                return Err(Error::Other(format!(
                    "image user {name:?} is not in the image's /etc/passwd"
                )));
            }
        }
        let groups = lines(self.group.as_deref());
        match group {
            Some(g) => {
                out.gid = match g.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => groups
                        .iter()
                        .find(|f| f.len() >= 3 && f[0] == g)
                        .and_then(|f| f[2].parse().ok())
                        .ok_or_else(|| {
                            Error::Other(format!(
                                "image group {g:?} is not in the image's /etc/group"
                            ))
                        })?,
                }
            }
            None => {
                if let Some(user_name) = entry.map(|f| f[0].as_str()) {
                    for f in &groups {
                        if f.len() >= 4
                            && f[3].split(',').any(|m| m.trim() == user_name)
                            && let Ok(gid) = f[2].parse::<u32>()
                            && !out.additional_gids.contains(&gid)
                        {
                            out.additional_gids.push(gid);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn bad_db(file: &str, line: &str) -> Error {
    Error::Other(format!(
        "the image's /etc/{file} has a malformed entry {line:?}"
    ))
}

/// The `:`-separated fields of each non-comment line.
fn lines(text: Option<&[u8]>) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(text.unwrap_or_default());
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// What one layer says about `/etc/passwd` and `/etc/group`, from its messages in tar order (a later
/// entry of the same path replaces an earlier one, as when the layer is applied).
#[derive(Default)]
struct LayerScan {
    /// Per file: `None` when the layer has no entry for it; `Some(Some(contents))` for a regular file;
    /// `Some(None)` when the layer makes it absent (a link, a directory or a device there, or a
    /// non-directory at one of its parents).
    own: [Option<Option<Vec<u8>>>; 2],
    /// Per file: a whiteout or opaque directory of this layer hides it in the layers below.
    hidden: [bool; 2],
    /// Per file: this layer puts a link where it is (a symlink or hardlink at it, a symlink at a
    /// parent), which only the whole tree can resolve.
    linked: [bool; 2],
    /// The file whose data is arriving.
    current: Option<usize>,
}

impl LayerScan {
    fn take(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Entry(head) => {
                self.current = None;
                let path = lexical_clean(&head.path);
                let (parent, base) = split_last(&path);
                // The database files at or below `p`.
                let under = |p: &[u8]| {
                    DB_FILES.map(|f| {
                        p.is_empty()
                            || f == p
                            || (f.starts_with(p) && f.get(p.len()) == Some(&b'/'))
                    })
                };
                if base == b".wh..wh..opq" {
                    for (h, u) in self.hidden.iter_mut().zip(under(parent)) {
                        *h |= u;
                    }
                } else if let Some(name) = base.strip_prefix(b".wh.") {
                    for (h, u) in self.hidden.iter_mut().zip(under(&join(parent, name))) {
                        *h |= u;
                    }
                } else if !path.is_empty() {
                    let exact = DB_FILES.iter().position(|f| *f == path.as_slice());
                    match exact {
                        Some(i) if head.kind == EntryKind::Regular => {
                            self.linked[i] = false;
                            if head.size > MAX_DB {
                                return Err(Error::Other(format!(
                                    "the image's /{} is {} bytes, more than the {MAX_DB} read",
                                    String::from_utf8_lossy(DB_FILES[i]),
                                    head.size
                                )));
                            }
                            self.own[i] = Some(Some(Vec::new()));
                            self.current = Some(i);
                        }
                        Some(i) => {
                            self.own[i] = Some(None);
                            self.linked[i] =
                                matches!(head.kind, EntryKind::Symlink | EntryKind::Hardlink);
                        }
                        // A directory at a parent (`/etc`) keeps what is below it.
                        None if head.kind == EntryKind::Dir => {}
                        None => {
                            let linked = head.kind == EntryKind::Symlink;
                            for ((o, l), u) in self
                                .own
                                .iter_mut()
                                .zip(self.linked.iter_mut())
                                .zip(under(&path))
                            {
                                if u {
                                    *o = Some(None);
                                    *l = linked;
                                }
                            }
                        }
                    }
                }
            }
            Msg::Data(chunk) => {
                if let Some(Some(f)) = self.current.and_then(|i| self.own[i].as_mut()) {
                    f.extend_from_slice(&chunk);
                }
            }
            Msg::EndFile | Msg::LayerEnd | Msg::LayerStart(_) => self.current = None,
        }
        Ok(())
    }
}

/// Refuses an image whose OS is not `linux`: the runtime config hoist writes (namespaces, mounts,
/// capabilities) is Linux's, as umoci's, which refuses the same ("unsupported OS").
pub fn check_os(config: &ImageConfiguration) -> Result<()> {
    let os = config.os().to_string();
    if os != "linux" {
        return Err(Error::Unsupported(format!(
            "the image's OS is {os:?}: a runtime bundle's config.json is made for linux images only"
        )));
    }
    Ok(())
}

/// Builds the runtime config for an image whose user database is `users` (read from the bundle's
/// `rootfs/` or from the layers).
///
/// ```no_run
/// use std::path::Path;
/// use hoist::bundle::UserDb;
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let image = hoist::image::resolve(src.as_ref(), None)?;
/// let config = image.config.as_ref().expect("an image config");
/// let users = UserDb::from_rootfs(Path::new("/tmp/bundle/rootfs"))?;
/// let spec = hoist::bundle::runtime_config(config, &users, true, &image.digest().to_string())?;
/// hoist::bundle::write_config(&spec, Path::new("/tmp/bundle"))?; // what `UnpackOptions::bundle` does
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn runtime_config(
    config: &ImageConfiguration,
    users: &UserDb,
    rootless: bool,
    manifest_digest: &str,
) -> Result<Spec> {
    check_os(config)?;
    let mut spec = if rootless {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        Spec::rootless(uid, gid)
    } else {
        Spec::default()
    };
    if !rootless
        && let Some(resources) = spec
            .linux_mut()
            .as_mut()
            .and_then(|l| l.resources_mut().as_mut())
    {
        // Every device denied first (runc then allows its defaults), as `runc spec` and umoci write
        // it: oci-spec's default leaves the device cgroup list empty.
        let mut deny = oci_spec::runtime::LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".into()));
        resources.set_devices(Some(vec![deny]));
    }
    spec.set_version("1.0.2".into());
    spec.set_hostname(Some("hoist".into()));
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(false));
    spec.set_root(Some(root));

    let c = config.config().clone().unwrap_or_default();
    let mut process = Process::default();
    process.set_terminal(Some(true));
    let mut args: Vec<String> = c.entrypoint().clone().unwrap_or_default();
    args.extend(c.cmd().clone().unwrap_or_default());
    if !args.is_empty() {
        process.set_args(Some(args));
    }
    // The defaults first, then the image's variables (replacing a default of the same name in place,
    // as umoci), then HOME from /etc/passwd.
    let mut env: Vec<String> = vec![DEFAULT_PATH.into(), "TERM=xterm".into()];
    let set = |env: &mut Vec<String>, var: String| {
        let key = var.split('=').next().unwrap_or_default().to_string();
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key.as_str()))
        {
            Some(slot) => *slot = var,
            None => env.push(var),
        }
    };
    for var in c.env().clone().unwrap_or_default() {
        set(&mut env, var);
    }
    let user = users.resolve(c.user().as_deref().unwrap_or_default())?;
    if let Some(home) = &user.home {
        set(&mut env, format!("HOME={home}"));
    }
    process.set_env(Some(env));
    let cwd = c.working_dir().clone().unwrap_or_default();
    let cwd = format!(
        "/{}",
        String::from_utf8_lossy(&lexical_clean(cwd.as_bytes()))
    );
    process.set_cwd(PathBuf::from(cwd));
    let mut u = User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    // A rootless container maps one group: runc refuses supplementary groups there (umoci leaves
    // them out too).
    if !user.additional_gids.is_empty() && !rootless {
        u.set_additional_gids(Some(user.additional_gids.clone()));
    }
    process.set_user(u);
    spec.set_process(Some(process));

    // Volumes become tmpfs mounts (umoci's; conversion.md leaves the kind to the implementation).
    let mut volumes: Vec<&String> = c.volumes().iter().flatten().collect();
    volumes.sort();
    if !volumes.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for v in volumes {
            let dest = format!("/{}", String::from_utf8_lossy(&lexical_clean(v.as_bytes())));
            let mut m = Mount::default();
            m.set_destination(PathBuf::from(dest));
            m.set_typ(Some("tmpfs".into()));
            m.set_source(Some(PathBuf::from("none")));
            m.set_options(Some(
                ["rw", "nosuid", "nodev", "noexec", "relatime"]
                    .map(String::from)
                    .to_vec(),
            ));
            mounts.push(m);
        }
        spec.set_mounts(Some(mounts));
    }

    let mut annotations = std::collections::HashMap::new();
    if let Some(labels) = c.labels() {
        for (k, v) in labels {
            annotations.insert(k.clone(), v.clone());
        }
    }
    annotations.insert(
        "org.opencontainers.image.os".into(),
        config.os().to_string(),
    );
    annotations.insert(
        "org.opencontainers.image.architecture".into(),
        config.architecture().to_string(),
    );
    if let Some(a) = config.author() {
        annotations.insert("org.opencontainers.image.author".into(), a.clone());
    }
    if let Some(t) = config.created() {
        annotations.insert("org.opencontainers.image.created".into(), t.clone());
    }
    if let Some(s) = c.stop_signal() {
        annotations.insert("org.opencontainers.image.stopSignal".into(), s.clone());
    }
    let mut ports: Vec<&String> = c.exposed_ports().iter().flatten().collect();
    ports.sort();
    if !ports.is_empty() {
        annotations.insert(
            "org.opencontainers.image.exposedPorts".into(),
            ports
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    annotations.insert(
        "org.opencontainers.image.manifest.digest".into(),
        manifest_digest.to_string(),
    );
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Options of [`image_runtime_config`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeConfigOptions {
    /// The rootless variant (a user namespace mapping the current user), as a rootless bundle's.
    pub rootless: bool,
    /// An unpacked rootfs to read `/etc/passwd` and `/etc/group` from (umoci's `--rootfs`), confined
    /// to it; no layer is read. `root.path` is then its last component, as umoci writes it. Without
    /// it they come from the image's layers ([`UserDb::from_image`]) and `root.path` is `rootfs`.
    pub rootfs: Option<PathBuf>,
    /// Limits of the layer reader; the source's when `None`.
    pub limits: Option<Limits>,
}

/// The runtime config of an already resolved image, without unpacking it (`hoist runtime-config`,
/// umoci's `raw runtime-config`): the user database from [`RuntimeConfigOptions::rootfs`] or from the
/// layers.
///
/// ```no_run
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let image = hoist::image::resolve(src.as_ref(), None)?;
/// let mut o = hoist::bundle::RuntimeConfigOptions::default();
/// o.rootfs = Some("/tmp/bundle/rootfs".into());
/// let spec = hoist::bundle::image_runtime_config(src.as_ref(), &image, &o)?;
/// std::io::Write::write_all(&mut std::io::stdout(), &hoist::bundle::to_json(&spec)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn image_runtime_config(
    source: &dyn Source,
    image: &Image,
    opts: &RuntimeConfigOptions,
) -> Result<Spec> {
    let Some(config) = image.config.as_ref() else {
        return Err(Error::UnsupportedMediaType {
            media_type: image.manifest.config().media_type().to_string(),
            what: format!(
                "the config of {} (not a container image, nothing to run)",
                image.digest()
            ),
        });
    };
    let users = match &opts.rootfs {
        Some(dir) => UserDb::from_rootfs(dir)?,
        None => {
            let limits = opts
                .limits
                .clone()
                .unwrap_or_else(|| source.limits().clone());
            UserDb::from_image(source, image, &limits)?
        }
    };
    let mut spec = runtime_config(config, &users, opts.rootless, &image.digest().to_string())?;
    if let Some(name) = opts.rootfs.as_deref().and_then(Path::file_name) {
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(PathBuf::from(name));
        spec.set_root(Some(root));
    }
    Ok(spec)
}

/// Resolves an image `User` (`uid`, `uid:gid`, `name`, `name:group`) to numeric ids (and
/// supplementary groups), looking names up inside the rootfs.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<User> {
    let resolved = UserDb::from_rootfs(rootfs)?.resolve(user)?;
    let mut u = User::default();
    u.set_uid(resolved.uid);
    u.set_gid(resolved.gid);
    if !resolved.additional_gids.is_empty() {
        u.set_additional_gids(Some(resolved.additional_gids));
    }
    Ok(u)
}

/// `spec` as pretty JSON with a stable order (annotations by key, capabilities sorted; oci-spec
/// keeps both in hash containers), ending in a newline.
pub fn to_json(spec: &Spec) -> Result<Vec<u8>> {
    let ser = |e: serde_json::Error| Error::Other(format!("serialising the runtime config: {e}"));
    let mut v = serde_json::to_value(spec).map_err(ser)?;
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
    }
    if let Some(a) = v.get_mut("annotations").and_then(|a| a.as_object_mut()) {
        a.sort_keys();
    }
    let mut bytes = serde_json::to_vec_pretty(&v).map_err(ser)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `spec` as `config.json` in `bundle` (by the one durable write, `durable::replace_file`: temporary file,
/// fsync, rename).
pub fn write_config(spec: &Spec, bundle: &Path) -> Result<()> {
    crate::durable::replace_file(&bundle.join("config.json"), &to_json(spec)?, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_inside_the_rootfs() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("rootfs");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let u = resolve_user("app", &r).unwrap();
        assert_eq!((u.uid(), u.gid()), (1000, 1001));
        let u = resolve_user("app:staff", &r).unwrap();
        assert_eq!((u.uid(), u.gid()), (1000, 50));
        let u = resolve_user("1000", &r).unwrap();
        assert_eq!((u.uid(), u.gid()), (1000, 1001));
        assert!(resolve_user("nobody-here", &r).is_err());
        // A passwd symlinked to the host's is resolved inside the rootfs, where it is absent.
        std::fs::remove_file(r.join("etc/passwd")).unwrap();
        std::fs::write(t.path().join("passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(t.path().join("passwd"), r.join("etc/passwd")).unwrap();
        assert!(resolve_user("evil", &r).is_err());
    }

    fn entry(path: &str, kind: EntryKind, size: u64) -> Msg {
        Msg::Entry(Box::new(crate::layer::EntryHead {
            path: path.as_bytes().to_vec(),
            kind,
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: (0, 0),
            size,
            device: (0, 0),
            xattrs: Vec::new(),
            sparse: false,
        }))
    }

    fn file(db: &mut LayerScan, path: &str, data: &str) {
        db.take(entry(path, EntryKind::Regular, data.len() as u64))
            .unwrap();
        db.take(Msg::Data(data.as_bytes().to_vec())).unwrap();
        db.take(Msg::EndFile).unwrap();
    }

    #[test]
    fn a_layer_scan_follows_its_entries_and_whiteouts() {
        let mut db = LayerScan::default();
        file(&mut db, "./etc/passwd", "a:x:1:1::/a:/bin/sh\n");
        file(&mut db, "/etc/group", "g:x:5:a\n");
        file(&mut db, "etc/other", "x");
        assert!(matches!(db.own, [Some(Some(_)), Some(Some(_))]));
        // A whiteout hides what is below, never the same layer's file.
        db.take(entry("etc/.wh.group", EntryKind::Regular, 0))
            .unwrap();
        assert_eq!(db.hidden, [false, true]);
        assert!(matches!(db.own[1], Some(Some(_))));
        let mut db = LayerScan::default();
        db.take(entry("etc/.wh..wh..opq", EntryKind::Regular, 0))
            .unwrap();
        assert_eq!(db.hidden, [true, true]);
        assert_eq!(db.own, [None, None]);
        let mut db = LayerScan::default();
        db.take(entry(".wh.etc", EntryKind::Regular, 0)).unwrap();
        assert_eq!(db.hidden, [true, true]);
        // A later entry of the same path replaces an earlier one; a directory at /etc changes
        // nothing, a symlink there removes both; a link at the file is absent.
        let mut db = LayerScan::default();
        file(&mut db, "etc/passwd", "a:x:1:1::/a:/bin/sh\n");
        db.take(entry("etc", EntryKind::Dir, 0)).unwrap();
        assert!(matches!(db.own[0], Some(Some(_))));
        db.take(entry("etc", EntryKind::Symlink, 0)).unwrap();
        assert_eq!(db.own, [Some(None), Some(None)]);
        file(&mut db, "etc/passwd", "a:x:1:1::/home/a:/bin/sh\n");
        db.take(entry("etc/group", EntryKind::Symlink, 0)).unwrap();
        assert_eq!(db.own[1], Some(None));
        assert_eq!(db.hidden, [false, false]);
        let users = UserDb {
            passwd: db.own[0].take().flatten(),
            group: Some(b"g:x:5:b,a\nh:x:6:b\n".to_vec()),
        };
        let u = users.resolve("a").unwrap();
        assert_eq!(
            u,
            ExecUser {
                uid: 1,
                gid: 1,
                additional_gids: vec![5],
                home: Some("/home/a".into())
            }
        );
        // A named group means no supplementary groups; an unknown uid has no home.
        assert!(users.resolve("a:h").unwrap().additional_gids.is_empty());
        assert_eq!(users.resolve("42").unwrap().home, None);
        assert_eq!(users.resolve("").unwrap().uid, 0);
        // Too large a file is refused before it is read.
        let mut db = LayerScan::default();
        assert!(
            db.take(entry("etc/passwd", EntryKind::Regular, MAX_DB + 1))
                .is_err()
        );
    }

    #[test]
    fn the_empty_user_is_roots_entry() {
        let users = UserDb {
            passwd: Some(b"toor:x:0:0::/toor:/bin/sh\nroot:x:0:0::/root:/bin/sh\n".to_vec()),
            group: Some(b"wheel:x:10:toor\n".to_vec()),
        };
        let u = users.resolve("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_deref()), (0, 0, Some("/toor")));
        assert_eq!(u.additional_gids, vec![10]);
        assert_eq!(UserDb::default().resolve("").unwrap(), ExecUser::default());
    }
}
