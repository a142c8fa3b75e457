//! OCI runtime bundles: the runtime-spec `config.json` generated from an image config, as umoci and
//! the image-spec's `conversion.md` make it, so that `runc run` can start an unpacked image.
//!
//! The image decides args (`Entrypoint` + `Cmd`), environment (on top of `PATH`/`TERM` defaults, with
//! `HOME` from the user's `/etc/passwd` entry), working directory, user (with `additionalGids` from
//! `/etc/group`), `Volumes` (tmpfs mounts, as umoci) and the conversion.md annotations (including
//! `org.opencontainers.image.exposedPorts`); everything else is the runtime-spec default (oci-spec's,
//! which follows runc's `runc spec`), or its rootless variant. Image paths (`WorkingDir`) are cleaned
//! lexically so they cannot point above `/`. The user database ([`UserDb`]) comes either from an
//! unpacked rootfs, read through [`Root`] (never following a symlink out of it), or straight from the
//! image's layers through the unpacker's verified layer reader, without unpacking anything.

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

    /// Reads the database from an image's layers, bottom first, applying whiteouts and replacements,
    /// without writing anything. Every layer is read through the unpacker's reader, so it is verified
    /// (digest, size and diff_id) as it streams. A `/etc/passwd` or `/etc/group` that is a symlink
    /// or hardlink is taken as absent (a link into another layer's file is not followed).
    pub fn from_image(source: &dyn Source, image: &Image, limits: &Limits) -> Result<UserDb> {
        let (layers, diff_ids) = image.layers_with_diff_ids()?;
        let n = layers.len();
        let names: Vec<String> = layers
            .iter()
            .enumerate()
            .map(|(i, d)| format!("layer {}/{n} {}", i + 1, crate::descriptor::describe(d)))
            .collect();
        let mut db = DbBuilder::default();
        let never = crate::cancel::CancelToken::default();
        crate::unpack::stream_layers(
            source,
            &layers,
            &names,
            &diff_ids,
            limits,
            &None,
            &never,
            |msg| db.take(msg),
        )?;
        Ok(UserDb {
            passwd: db.files[0].take(),
            group: db.files[1].take(),
        })
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
        let entry = passwd.iter().find(|f| {
            f.len() >= 6
                && if let Ok(n) = name.parse::<u32>() {
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

/// Follows `/etc/passwd` and `/etc/group` through a stream of layer messages.
#[derive(Default)]
struct DbBuilder {
    files: [Option<Vec<u8>>; 2],
    /// The file whose data is arriving.
    current: Option<usize>,
}

impl DbBuilder {
    fn take(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Entry(head) => {
                self.current = None;
                let path = lexical_clean(&head.path);
                let (parent, base) = split_last(&path);
                // Everything at or below `gone` is removed.
                let remove = |gone: &[u8], files: &mut [Option<Vec<u8>>; 2]| {
                    for (i, f) in DB_FILES.iter().enumerate() {
                        if gone.is_empty()
                            || *f == gone
                            || (f.starts_with(gone) && f.get(gone.len()) == Some(&b'/'))
                        {
                            files[i] = None;
                        }
                    }
                };
                if base == b".wh..wh..opq" {
                    remove(parent, &mut self.files);
                } else if let Some(name) = base.strip_prefix(b".wh.") {
                    remove(&join(parent, name), &mut self.files);
                } else if head.kind != EntryKind::Dir && !path.is_empty() {
                    remove(&path, &mut self.files);
                    if head.kind == EntryKind::Regular
                        && let Some(i) = DB_FILES.iter().position(|f| *f == path.as_slice())
                    {
                        if head.size > MAX_DB {
                            return Err(Error::Other(format!(
                                "the image's /{} is {} bytes, more than the {MAX_DB} read",
                                String::from_utf8_lossy(DB_FILES[i]),
                                head.size
                            )));
                        }
                        self.files[i] = Some(Vec::new());
                        self.current = Some(i);
                    }
                }
            }
            Msg::Data(chunk) => {
                if let Some(f) = self.current.and_then(|i| self.files[i].as_mut()) {
                    f.extend_from_slice(&chunk);
                }
            }
            Msg::EndFile | Msg::LayerEnd | Msg::LayerStart(_) => self.current = None,
        }
        Ok(())
    }
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
    let mut spec = if rootless {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        Spec::rootless(uid, gid)
    } else {
        Spec::default()
    };
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

/// Writes `spec` as `config.json` in `bundle` (by [`crate::durable::replace_file`]: temporary file,
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

    fn file(db: &mut DbBuilder, path: &str, data: &str) {
        db.take(entry(path, EntryKind::Regular, data.len() as u64))
            .unwrap();
        db.take(Msg::Data(data.as_bytes().to_vec())).unwrap();
        db.take(Msg::EndFile).unwrap();
    }

    #[test]
    fn the_database_follows_whiteouts_and_replacements() {
        let mut db = DbBuilder::default();
        file(&mut db, "./etc/passwd", "a:x:1:1::/a:/bin/sh\n");
        file(&mut db, "/etc/group", "g:x:5:a\n");
        file(&mut db, "etc/other", "x");
        assert!(db.files[0].is_some() && db.files[1].is_some());
        db.take(entry("etc/.wh.group", EntryKind::Regular, 0))
            .unwrap();
        assert!(db.files[0].is_some() && db.files[1].is_none());
        file(&mut db, "etc/group", "g:x:5:a\n");
        db.take(entry("etc/.wh..wh..opq", EntryKind::Regular, 0))
            .unwrap();
        assert!(db.files[0].is_none() && db.files[1].is_none());
        file(&mut db, "etc/passwd", "a:x:1:1::/a:/bin/sh\n");
        // /etc replaced by a symlink: both are gone; a directory entry for it changes nothing.
        db.take(entry("etc", EntryKind::Dir, 0)).unwrap();
        assert!(db.files[0].is_some());
        db.take(entry("etc", EntryKind::Symlink, 0)).unwrap();
        assert!(db.files[0].is_none());
        file(&mut db, "etc/passwd", "a:x:1:1::/a:/bin/sh\n");
        db.take(entry(".wh.etc", EntryKind::Regular, 0)).unwrap();
        assert!(db.files[0].is_none());
        file(&mut db, "etc/passwd", "a:x:1:1::/home/a:/bin/sh\n");
        file(&mut db, "etc/group", "g:x:5:b,a\nh:x:6:b\n");
        let users = UserDb {
            passwd: db.files[0].take(),
            group: db.files[1].take(),
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
        let mut db = DbBuilder::default();
        assert!(
            db.take(entry("etc/passwd", EntryKind::Regular, MAX_DB + 1))
                .is_err()
        );
    }
}
