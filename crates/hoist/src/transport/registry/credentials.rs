//! Registry credentials as skopeo, podman and docker keep them: the `auths` map of containers'
//! `auth.json` and Docker's `config.json`, and the credential helpers those files name
//! (`credHelpers`, `credsStore`, run by [`super::helper`]); read in containers-auth.json(5)'s order
//! and written by `hoist login` / `hoist logout`.
//!
//! Lookup order: `--authfile`, else `$REGISTRY_AUTH_FILE`, alone when given (as containers/image
//! does: no other file is read); otherwise `${XDG_RUNTIME_DIR}/containers/auth.json` (without
//! `XDG_RUNTIME_DIR`, `/run/containers/UID/auth.json`), `${XDG_CONFIG_HOME:-$HOME/.config}/
//! containers/auth.json`, `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`) and the
//! legacy `~/.dockercfg`. In each file, a `credHelpers` entry for the registry names the helper to
//! ask; else the `auths` entry whose key is the longest prefix of `HOST/REPOSITORY` (`host/ns/repo`
//! over `host/ns` over `host`; `docker.io`, `index.docker.io`, `registry-1.docker.io` and
//! `https://index.docker.io/v1/` are one registry); else the `credsStore` helper. The first file
//! that gives credentials wins. Passwords never appear in messages.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::{Error, IoContext, Result};
use crate::reference::{DOCKER_HUB_DOMAIN, DOCKER_HUB_REGISTRY};
use crate::transport::Credentials;

/// Where credentials are looked for and written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFiles {
    /// `--authfile`: when set, the only file read, and the one written.
    pub explicit: Option<PathBuf>,
    /// `$REGISTRY_AUTH_FILE`: when set (and no `--authfile`), the only file read and written.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$DOCKER_CONFIG`.
    pub docker_config: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// The user id, for `/run/containers/UID/auth.json`.
    pub uid: u32,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Credentials found, and where (for `-v`; never the secret).
#[derive(Debug, Clone)]
pub struct Found {
    /// The credentials.
    pub creds: Credentials,
    /// The file, and the helper when one gave them.
    pub source: String,
}

impl AuthFiles {
    /// The files named by the environment, with `explicit` (`--authfile`) first.
    pub fn from_env(explicit: Option<PathBuf>) -> Self {
        AuthFiles {
            explicit,
            registry_auth_file: env_path("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: env_path("XDG_RUNTIME_DIR"),
            xdg_config_home: env_path("XDG_CONFIG_HOME"),
            docker_config: env_path("DOCKER_CONFIG"),
            home: env_path("HOME"),
            uid: rustix::process::getuid().as_raw(),
        }
    }

    /// The files to read, in order.
    pub fn read_order(&self) -> Vec<PathBuf> {
        if let Some(p) = self.explicit.as_ref().or(self.registry_auth_file.as_ref()) {
            return vec![p.clone()];
        }
        let mut v = Vec::new();
        v.push(match &self.xdg_runtime_dir {
            Some(d) => d.join("containers/auth.json"),
            None => PathBuf::from(format!("/run/containers/{}/auth.json", self.uid)),
        });
        let config = self
            .xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")));
        v.extend(config.map(|c| c.join("containers/auth.json")));
        let docker = self
            .docker_config
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".docker")));
        v.extend(docker.map(|d| d.join("config.json")));
        v.extend(self.home.as_ref().map(|h| h.join(".dockercfg")));
        v
    }

    /// The file `login` writes and `logout` edits: the first of the read order.
    pub fn write_target(&self) -> Result<PathBuf> {
        self.read_order().into_iter().next().ok_or_else(|| {
            Error::Other(
                "no auth file: pass --authfile, or set REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR or HOME"
                    .into(),
            )
        })
    }

    /// The credentials for `registry` (a host, with port) and `repository`, if any file has them.
    #[cfg(test)]
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Credentials>> {
        Ok(self.find(registry, repository)?.map(|f| f.creds))
    }

    /// [`AuthFiles::lookup`], saying where the credentials came from.
    pub fn find(&self, registry: &str, repository: &str) -> Result<Option<Found>> {
        for path in self.read_order() {
            if let Some(f) = find_in_file(&path, registry, repository)? {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    /// The credential helper `login` and `logout` go through for `registry`, and the file that
    /// names it: the first file of the read order with a `credHelpers` entry for the registry or
    /// a `credsStore` (as `docker login` does with its config).
    pub fn helper_for(&self, registry: &str) -> Result<Option<(String, PathBuf)>> {
        for path in self.read_order() {
            if let Some(json) = read_json(&path)?
                && let Some(h) = helper_in(&json, normal_registry(registry))
            {
                return Ok(Some((h.0, path)));
            }
        }
        Ok(None)
    }
}

/// The server URL a helper knows a registry by: Docker Hub's is `https://index.docker.io/v1/`.
pub fn helper_server(registry: &str) -> String {
    if normal_registry(registry) == DOCKER_HUB_DOMAIN {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// The helper `json` names for `registry` (normalised), and whether it is its `credsStore`.
fn helper_in(json: &Value, registry: &str) -> Option<(String, bool)> {
    if let Some(map) = json.get("credHelpers").and_then(Value::as_object) {
        for (k, v) in map {
            if key_host(k) == registry
                && let Some(name) = v.as_str().filter(|n| !n.is_empty())
            {
                return Some((name.to_string(), false));
            }
        }
    }
    json.get("credsStore")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(|n| (n.to_string(), true))
}

/// The keys under which Docker Hub's credentials may be stored.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_DOMAIN.to_string(),
        other => other.to_string(),
    }
}

fn normal_registry(registry: &str) -> &str {
    if registry == DOCKER_HUB_REGISTRY || registry == "index.docker.io" {
        DOCKER_HUB_DOMAIN
    } else {
        registry
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    // A FIFO or device is refused at once (never waited on); a symlink to a file is read through.
    let read = |path: &Path| -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut crate::durable::open_regular(path, false)?, &mut bytes)?;
        Ok(bytes)
    };
    let bytes = match read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::io(
                format!("reading auth file {}", path.display()),
                e,
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Value::Object(Map::new())));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::Other(format!(
            "auth file {} is not valid JSON: {e}",
            path.display()
        ))
    })
}

fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<Credentials>> {
    let bad =
        |why: &str| Error::Other(format!("auth file {}: entry {key:?} {why}", path.display()));
    if let Some(auth) = entry.get("auth").and_then(Value::as_str)
        && !auth.is_empty()
    {
        let raw = STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("has an \"auth\" that is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("has an \"auth\" that is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("has an \"auth\" that is not user:password"))?;
        return Ok(Some(Credentials::new(user, pass)));
    }
    if let Some(t) = entry.get("identitytoken").and_then(Value::as_str)
        && !t.is_empty()
    {
        return Ok(Some(Credentials::new(
            super::helper::IDENTITY_TOKEN_USER,
            t,
        )));
    }
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        return Ok(Some(Credentials::new(u, p)));
    }
    Ok(None)
}

/// Reads the credentials for `registry`/`repository` from one file (`None` if absent or no entry).
#[cfg(test)]
pub fn lookup_in_file(
    path: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    Ok(find_in_file(path, registry, repository)?.map(|f| f.creds))
}

/// One file's credentials for `registry`/`repository`: its `credHelpers` helper, else its `auths`
/// entry, else its `credsStore` helper.
fn find_in_file(path: &Path, registry: &str, repository: &str) -> Result<Option<Found>> {
    let Some(json) = read_json(path)? else {
        return Ok(None);
    };
    let registry = normal_registry(registry);
    let from_helper = |name: &str, what: &str| -> Result<Option<Found>> {
        let creds = super::helper::get(name, &helper_server(registry))?;
        Ok(creds.map(|creds| Found {
            creds,
            source: format!(
                "credential helper docker-credential-{name} ({what} in {})",
                path.display()
            ),
        }))
    };
    let helper = helper_in(&json, registry);
    if let Some((name, false)) = &helper {
        return from_helper(name, "credHelpers");
    }
    // `~/.dockercfg` is the `auths` map itself.
    let legacy = path.file_name().is_some_and(|n| n == ".dockercfg");
    let auths = if legacy {
        json.as_object()
    } else {
        json.get("auths").and_then(Value::as_object)
    };
    if let Some(auths) = auths {
        let full = format!("{registry}/{repository}");
        let mut best: Option<(usize, &str, &Value)> = None;
        for (key, entry) in auths {
            let k = key_host(key);
            // The registry, the repository itself, or a namespace of it (ending at a `/`).
            let matches = k == registry
                || k == full
                || (full.starts_with(&k)
                    && full.as_bytes().get(k.len()) == Some(&b'/')
                    && k.starts_with(registry));
            if matches && best.is_none_or(|(len, _, _)| k.len() > len) {
                best = Some((k.len(), key.as_str(), entry));
            }
        }
        if let Some((_, key, entry)) = best
            && let Some(creds) = decode_entry(path, key, entry)?
        {
            return Ok(Some(Found {
                creds,
                source: format!("{} (entry {key:?})", path.display()),
            }));
        }
    }
    if let Some((name, true)) = &helper {
        // A default store whose program is missing (a config copied from Docker Desktop) leaves
        // the registry anonymous rather than failing every pull; skopeo ignores credsStore.
        if !super::helper::installed(name) {
            tracing::warn!(
                "{}: credsStore {name:?} names docker-credential-{name}, which is not on PATH;                  going on without it",
                path.display()
            );
            return Ok(None);
        }
        return from_helper(name, "credsStore");
    }
    Ok(None)
}

/// Creates the auth file's directory if needed (0700) and takes the lock beside the file, held
/// around a read-modify-write so concurrent logins and logouts all land.
fn lock_auth_file(path: &Path) -> Result<crate::durable::FileLock> {
    let dir = crate::durable::dir_of(path);
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir)
            .ctx(|| format!("creating directory {}", dir.display()))?;
    }
    crate::durable::lock_beside(path)
}

/// Writes the auth file by [`crate::durable`]'s rule (a symlink is written through), a new file
/// with mode 0600: credentials stay private.
fn write_json_atomic(path: &Path, value: &Value) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Other(format!("serialising auth file: {e}")))?;
    bytes.push(b'\n');
    crate::durable::write_file_with(path, &bytes, crate::durable::PRIVATE_MODE, None)
}

/// Stores `creds` for `registry` in `path` (keeping every other entry and key of the file).
pub fn store(path: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let _lock = lock_auth_file(path)?;
    let mut json = read_json(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let obj = json.as_object_mut().ok_or_else(|| {
        Error::Other(format!("auth file {} is not a JSON object", path.display()))
    })?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let auths = auths.as_object_mut().ok_or_else(|| {
        Error::Other(format!(
            "auth file {}: \"auths\" is not an object",
            path.display()
        ))
    })?;
    let encoded = STANDARD.encode(format!("{}:{}", creds.username, creds.password));
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::String(encoded));
    auths.insert(normal_registry(registry).to_string(), Value::Object(entry));
    write_json_atomic(path, &json)
}

/// Removes the entries for `registry` from `path`; returns whether there was one.
pub fn remove(path: &Path, registry: &str) -> Result<bool> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(false);
    }
    let _lock = lock_auth_file(path)?;
    let Some(mut json) = read_json(path)? else {
        return Ok(false);
    };
    let registry = normal_registry(registry);
    let Some(auths) = json.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| key_host(k) != registry);
    if auths.len() == before {
        return Ok(false);
    }
    write_json_atomic(path, &json)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_file_that_is_a_fifo_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = lookup_in_file(&path, "h:1", "r").unwrap_err().to_string();
        assert!(e.contains("auth.json") && e.contains("FIFO"), "{e}");
    }

    #[test]
    fn reads_base64_auth_and_prefers_the_longest_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let a = STANDARD.encode("alice:secret");
        let b = STANDARD.encode("bob:other:colon");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://quay.io":{{"auth":"{a}"}},"quay.io/team":{{"auth":"{b}"}}}}}}"#
            ),
        )
        .unwrap();
        let c = lookup_in_file(&path, "quay.io", "other/app")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "secret")
        );
        let c = lookup_in_file(&path, "quay.io", "team/app")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "other:colon")
        );
        assert!(lookup_in_file(&path, "ghcr.io", "x").unwrap().is_none());
        // A prefix must end at a path separator: `quay.io/teamx` is not under `quay.io/team`.
        let c = lookup_in_file(&path, "quay.io", "teamx/app")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "alice");
    }

    #[test]
    fn docker_hub_keys_are_one_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let a = STANDARD.encode("u:p");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{a}"}}}}}}"#),
        )
        .unwrap();
        assert!(
            lookup_in_file(&path, DOCKER_HUB_REGISTRY, "library/busybox")
                .unwrap()
                .is_some()
        );
        assert!(remove(&path, DOCKER_HUB_REGISTRY).unwrap());
        assert!(
            lookup_in_file(&path, DOCKER_HUB_REGISTRY, "library/busybox")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn store_keeps_other_keys_and_lookup_order_is_skopeos() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("run");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        let docker = home.join(".docker/config.json");
        std::fs::write(
            &docker,
            format!(
                r#"{{"credsStore":"none","auths":{{"r.example:5000":{{"auth":"{}"}}}}}}"#,
                STANDARD.encode("docker:pw")
            ),
        )
        .unwrap();
        let files = AuthFiles {
            xdg_runtime_dir: Some(xdg.clone()),
            home: Some(home.clone()),
            ..AuthFiles::default()
        };
        let c = files.lookup("r.example:5000", "a/b").unwrap().unwrap();
        assert_eq!(c.username, "docker");

        let target = files.write_target().unwrap();
        assert_eq!(target, xdg.join("containers/auth.json"));
        store(&target, "r.example:5000", &Credentials::new("xdg", "pw2")).unwrap();
        let c = files.lookup("r.example:5000", "a/b").unwrap().unwrap();
        assert_eq!(
            c.username, "xdg",
            "the XDG file comes before ~/.docker/config.json"
        );

        store(&docker, "other:1", &Credentials::new("o", "p")).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&docker).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "none");
        assert!(v["auths"]["r.example:5000"].is_object());
        assert!(v["auths"]["other:1"].is_object());

        assert!(remove(&target, "r.example:5000").unwrap());
        assert!(!remove(&target, "r.example:5000").unwrap());
        let c = files.lookup("r.example:5000", "a/b").unwrap().unwrap();
        assert_eq!(c.username, "docker");

        let explicit = AuthFiles {
            explicit: Some(dir.path().join("none.json")),
            ..files
        };
        assert!(explicit.lookup("r.example:5000", "a/b").unwrap().is_none());
    }

    #[test]
    fn malformed_auth_is_a_clear_error_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, r#"{"auths":{"h:1":{"auth":"!!notbase64"}}}"#).unwrap();
        let err = lookup_in_file(&path, "h:1", "r").unwrap_err().to_string();
        assert!(err.contains("not base64") && err.contains("h:1"), "{err}");
        assert!(!err.contains("notbase64"), "{err}");
    }

    /// The password of every test entry: distinctive, so that a check for it cannot match a temp path.
    const SECRET: &str = "s3cret-Pa55word";

    fn entry(user: &str) -> String {
        format!(
            r#"{{"auth":"{}"}}"#,
            STANDARD.encode(format!("{user}:{SECRET}"))
        )
    }

    #[test]
    fn read_order_is_containers_auth_json_5() {
        let files = AuthFiles {
            xdg_config_home: Some("/cfg".into()),
            docker_config: Some("/dc".into()),
            home: Some("/h".into()),
            uid: 1000,
            ..AuthFiles::default()
        };
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            files.read_order(),
            [
                p("/run/containers/1000/auth.json"),
                p("/cfg/containers/auth.json"),
                p("/dc/config.json"),
                p("/h/.dockercfg")
            ]
        );
        let files = AuthFiles {
            xdg_runtime_dir: Some("/run/user/7".into()),
            home: Some("/h".into()),
            ..AuthFiles::default()
        };
        assert_eq!(
            files.read_order(),
            [
                p("/run/user/7/containers/auth.json"),
                p("/h/.config/containers/auth.json"),
                p("/h/.docker/config.json"),
                p("/h/.dockercfg")
            ]
        );
        // REGISTRY_AUTH_FILE, like --authfile, is read alone.
        let only = AuthFiles {
            registry_auth_file: Some("/ra.json".into()),
            ..files.clone()
        };
        assert_eq!(only.read_order(), [p("/ra.json")]);
        let explicit = AuthFiles {
            explicit: Some("/x.json".into()),
            ..only
        };
        assert_eq!(explicit.read_order(), [p("/x.json")]);
    }

    #[test]
    fn every_file_of_the_order_is_read_with_repository_keys_and_hub_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".config/containers")).unwrap();
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        std::fs::write(
            home.join(".config/containers/auth.json"),
            format!(
                r#"{{"auths":{{"r.example/ns":{},"r.example/ns/repo":{},"docker.io/library":{}}}}}"#,
                entry("ns"),
                entry("repo"),
                entry("hub-lib")
            ),
        )
        .unwrap();
        std::fs::write(
            home.join(".docker/config.json"),
            format!(
                r#"{{"auths":{{"r.example":{},"https://index.docker.io/v1/":{}}}}}"#,
                entry("host"),
                entry("hub")
            ),
        )
        .unwrap();
        std::fs::write(
            home.join(".dockercfg"),
            format!(r#"{{"old.example":{}}}"#, entry("legacy")),
        )
        .unwrap();
        let files = AuthFiles {
            xdg_runtime_dir: Some(dir.path().join("run")),
            home: Some(home.clone()),
            ..AuthFiles::default()
        };
        let user = |reg: &str, repo: &str| {
            files
                .find(reg, repo)
                .unwrap()
                .map(|f| (f.creds.username, f.source))
        };
        assert_eq!(user("r.example", "ns/repo").unwrap().0, "repo");
        assert_eq!(user("r.example", "ns/other").unwrap().0, "ns");
        let (u, source) = user("r.example", "else/x").unwrap();
        assert_eq!(u, "host");
        assert!(source.contains(".docker/config.json"), "{source}");
        assert!(!source.contains(SECRET), "{source}");
        assert_eq!(
            user(DOCKER_HUB_REGISTRY, "library/busybox").unwrap().0,
            "hub-lib"
        );
        assert_eq!(user("index.docker.io", "me/app").unwrap().0, "hub");
        assert_eq!(user("old.example", "a/b").unwrap().0, "legacy");
        assert!(user("none.example", "a").is_none());
    }

    #[test]
    fn identity_tokens_are_kept_as_refresh_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"r.example":{"auth":"","identitytoken":"refresh-me"}}}"#,
        )
        .unwrap();
        let c = lookup_in_file(&path, "r.example", "a").unwrap().unwrap();
        assert_eq!(c.username, super::super::helper::IDENTITY_TOKEN_USER);
        assert_eq!(c.password, "refresh-me");
    }

    #[test]
    fn helpers_know_docker_hub_by_its_v1_url_and_cred_helpers_win_over_creds_store() {
        assert_eq!(helper_server("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(
            helper_server(DOCKER_HUB_REGISTRY),
            "https://index.docker.io/v1/"
        );
        assert_eq!(helper_server("r.example:5000"), "r.example:5000");
        let json: Value = serde_json::from_str(
            r#"{"credsStore":"desktop","credHelpers":{"https://r.example:5000":"ecr-login"}}"#,
        )
        .unwrap();
        assert_eq!(
            helper_in(&json, "r.example:5000"),
            Some(("ecr-login".to_string(), false))
        );
        assert_eq!(
            helper_in(&json, "other.example"),
            Some(("desktop".to_string(), true))
        );
    }
}
