//! OCI runtime bundles: the runtime-spec `config.json` generated from an image config, as umoci does,
//! so that `runc run` can start an unpacked image.
//!
//! The image decides args (`Entrypoint` + `Cmd`), environment, working directory, user and annotations;
//! everything else is the runtime-spec default (oci-spec's, which follows runc's `runc spec`), or its
//! rootless variant. Image paths (`WorkingDir`) are cleaned lexically so they cannot point above `/`,
//! user names are looked up in the rootfs's `/etc/passwd` and `/etc/group` through [`Root`], never
//! following a symlink out of the rootfs, and `Volumes` are not turned into mounts (as in umoci).

use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Process, Spec, User};

use crate::error::{Error, Result};
use crate::layer::root::{Root, lexical_clean};

/// Most bytes read from `/etc/passwd` or `/etc/group`.
const MAX_DB: u64 = 4 << 20;

/// Builds the runtime config for an image unpacked at `rootfs` (the bundle's `rootfs/`).
///
/// ```no_run
/// use std::path::Path;
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let image = hoist::image::resolve(src.as_ref(), None)?;
/// let config = image.config.as_ref().expect("an image config");
/// let rootfs = Path::new("/tmp/bundle/rootfs");
/// let spec = hoist::bundle::runtime_config(config, rootfs, true, &image.digest().to_string())?;
/// hoist::bundle::write_config(&spec, Path::new("/tmp/bundle"))?; // what `UnpackOptions::bundle` does
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn runtime_config(
    config: &ImageConfiguration,
    rootfs: &Path,
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
    let mut env: Vec<String> = c.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    let cwd = c.working_dir().clone().unwrap_or_default();
    let cwd = format!(
        "/{}",
        String::from_utf8_lossy(&lexical_clean(cwd.as_bytes()))
    );
    process.set_cwd(PathBuf::from(cwd));
    let user = c.user().clone().unwrap_or_default();
    process.set_user(resolve_user(&user, rootfs)?);
    spec.set_process(Some(process));

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
    annotations.insert(
        "org.opencontainers.image.manifest.digest".into(),
        manifest_digest.to_string(),
    );
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Resolves an image `User` (`uid`, `uid:gid`, `name`, `name:group`) to numeric ids, looking names
/// up inside the rootfs.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<User> {
    let mut u = User::default();
    if user.is_empty() {
        return Ok(u);
    }
    let (name, group) = match user.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (user, None),
    };
    let root = Root::open(rootfs, None)?;
    let passwd = root.read_file(b"etc/passwd", MAX_DB)?;
    let lookup_passwd = |name: &str| -> Option<(u32, u32)> {
        let text = String::from_utf8_lossy(passwd.as_deref()?).into_owned();
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    };
    let (uid, mut gid) = match name.parse::<u32>() {
        Ok(n) => (n, lookup_passwd_by_uid(passwd.as_deref(), n).unwrap_or(0)),
        Err(_) => lookup_passwd(name).ok_or_else(|| {
            Error::Other(format!(
                "image user {name:?} is not in the image's /etc/passwd"
            ))
        })?,
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = root.read_file(b"etc/group", MAX_DB)?;
                let text =
                    String::from_utf8_lossy(groups.as_deref().unwrap_or_default()).into_owned();
                text.lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok())?
                    })
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "image group {g:?} is not in the image's /etc/group"
                        ))
                    })?
            }
        };
    }
    u.set_uid(uid);
    u.set_gid(gid);
    Ok(u)
}

fn lookup_passwd_by_uid(passwd: Option<&[u8]>, uid: u32) -> Option<u32> {
    let text = String::from_utf8_lossy(passwd?).into_owned();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[3].parse().ok())?
    })
}

/// Writes `spec` as `config.json` in `bundle` (by [`crate::durable::replace_file`]: temporary file,
/// fsync, rename).
pub fn write_config(spec: &Spec, bundle: &Path) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(spec)
        .map_err(|e| Error::Other(format!("serialising the runtime config: {e}")))?;
    crate::durable::replace_file(&bundle.join("config.json"), &bytes, None)
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
}
