//! containers-registries.conf(5), version 2: where a registry really is (`location`), whether it
//! is `blocked` or `insecure`, and the mirrors pulls try first.
//!
//! Files, as containers/image reads them: `--registries-conf FILE` alone when given, else
//! `$CONTAINERS_REGISTRIES_CONF` alone when set, else `$HOME/.config/containers/registries.conf`
//! when it exists or `/etc/containers/registries.conf`, then the drop-ins
//! `/etc/containers/registries.conf.d/*.conf` and `$HOME/.config/containers/registries.conf.d/*.conf`
//! in name order; a later `[[registry]]` with the same `prefix` replaces an earlier one. Short-name
//! settings (`unqualified-search-registries`, aliases) are not used: a short name always means
//! Docker Hub.
//!
//! A `[[registry]]` applies to the images under its `prefix` (`host`, `host/ns`, `*.example.com`;
//! the longest match wins); `location` replaces that prefix. A pull tries each `[[registry.mirror]]`
//! in order (`pull-from-mirror`: `all`, `digest-only`, `tag-only`; `mirror-by-digest-only` on the
//! registry), then the location itself; a push goes to the location only.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::ImageName;

/// The environment variable naming the one registries.conf to read.
pub const ENV: &str = "CONTAINERS_REGISTRIES_CONF";

#[derive(Debug, Default, Deserialize)]
struct ConfFile {
    #[serde(default)]
    registry: Vec<Registry>,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Registry {
    /// The images it applies to (default: `location`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Where they really are.
    #[serde(default)]
    pub location: Option<String>,
    /// Plain http and unverified TLS are allowed.
    #[serde(default)]
    pub insecure: bool,
    /// Pulls and pushes are refused.
    #[serde(default)]
    pub blocked: bool,
    /// Mirrors are used only for pulls by digest.
    #[serde(default)]
    pub mirror_by_digest_only: bool,
    /// The mirrors, in order.
    #[serde(default)]
    pub mirror: Vec<Mirror>,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Mirror {
    /// Where the mirror is (`host[:port][/path]`).
    pub location: String,
    /// Plain http and unverified TLS are allowed for this mirror.
    #[serde(default)]
    pub insecure: bool,
    /// `all` (default), `digest-only` or `tag-only`.
    #[serde(default)]
    pub pull_from_mirror: Option<String>,
}

/// The registries.conf in force, with the files it came from.
#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    entries: Vec<(Registry, PathBuf)>,
}

/// One place an image may be read from or written to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The image name there.
    pub name: ImageName,
    /// TLS verification is off (`insecure = true`).
    pub insecure: bool,
    /// `Some(location)` for a mirror.
    pub mirror: Option<String>,
}

fn drop_ins(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl RegistriesConf {
    /// The files to read: `explicit` (`--registries-conf`), else [`ENV`], else the defaults.
    pub fn files(explicit: Option<&Path>) -> Vec<PathBuf> {
        if let Some(p) = explicit {
            return vec![p.to_path_buf()];
        }
        if let Some(p) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
            return vec![PathBuf::from(p)];
        }
        let user = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".config/containers"));
        let mut v = Vec::new();
        match &user {
            Some(u) if u.join("registries.conf").exists() => v.push(u.join("registries.conf")),
            _ => v.push(PathBuf::from("/etc/containers/registries.conf")),
        }
        v.extend(drop_ins(Path::new("/etc/containers/registries.conf.d")));
        if let Some(u) = &user {
            v.extend(drop_ins(&u.join("registries.conf.d")));
        }
        v
    }

    /// Reads the files; a missing default file is skipped, a missing named one (`explicit`,
    /// [`ENV`]) is an error.
    pub fn load(explicit: Option<&Path>) -> Result<RegistriesConf> {
        let named = explicit.is_some() || std::env::var_os(ENV).is_some_and(|v| !v.is_empty());
        let mut conf = RegistriesConf::default();
        for path in Self::files(explicit) {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("reading registries.conf {}", path.display()),
                        e,
                    ));
                }
            };
            conf.add(&path, &text)?;
        }
        Ok(conf)
    }

    /// Adds one file's `[[registry]]` tables (a same `prefix` replaces an earlier table).
    pub fn add(&mut self, path: &Path, text: &str) -> Result<()> {
        let file: ConfFile = toml::from_str(text).map_err(|e| {
            Error::Other(format!(
                "registries.conf {} is not valid: {}",
                path.display(),
                e.message()
            ))
        })?;
        for r in file.registry {
            let prefix = r.prefix.clone().or_else(|| r.location.clone());
            let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
                return Err(Error::Other(format!(
                    "registries.conf {}: a [[registry]] has neither prefix nor location",
                    path.display()
                )));
            };
            if r.prefix.as_deref().is_some_and(|p| p.starts_with("*.")) && r.location.is_some() {
                return Err(Error::Other(format!(
                    "registries.conf {}: the wildcard prefix {prefix:?} cannot have a location",
                    path.display()
                )));
            }
            self.entries
                .retain(|(e, _)| e.prefix.as_ref().or(e.location.as_ref()) != Some(&prefix));
            let mut r = r;
            r.prefix = Some(prefix);
            self.entries.push((r, path.to_path_buf()));
        }
        Ok(())
    }

    /// The table for `name` (the longest matching prefix) and its file.
    fn matching(&self, name: &ImageName) -> Option<&(Registry, PathBuf)> {
        let host = &name.domain;
        let full = format!("{host}/{}", name.repository);
        self.entries
            .iter()
            .filter(|(r, _)| {
                let p = r.prefix.as_deref().unwrap_or("");
                if let Some(suffix) = p.strip_prefix('*') {
                    return host.ends_with(suffix);
                }
                full == p || (full.starts_with(p) && full.as_bytes().get(p.len()) == Some(&b'/'))
            })
            .max_by_key(|(r, _)| r.prefix.as_deref().map_or(0, str::len))
    }

    /// Where `name` is read from (`pull`) or written to, in the order to try: the mirrors a pull
    /// may use, then the location. A blocked registry is an error naming the file.
    pub fn endpoints(&self, name: &ImageName, pull: bool) -> Result<Vec<Endpoint>> {
        let Some((r, path)) = self.matching(name) else {
            return Ok(vec![Endpoint {
                name: name.clone(),
                insecure: false,
                mirror: None,
            }]);
        };
        let prefix = r.prefix.as_deref().unwrap_or("");
        if r.blocked {
            return Err(Error::Other(format!(
                "{}/{} is blocked by registries.conf {} ([[registry]] prefix {prefix:?})",
                name.domain,
                name.repository,
                path.display()
            )));
        }
        let full = format!("{}/{}", name.domain, name.repository);
        let rewrite = |location: &str| -> Result<ImageName> {
            let rest = if prefix.starts_with('*') {
                full.as_str()
            } else {
                &full[prefix.len()..]
            };
            let text = if prefix.starts_with('*') {
                rest.to_string()
            } else {
                format!("{location}{rest}")
            };
            let mut n = ImageName::parse(&text).map_err(|e| {
                Error::Other(format!(
                    "registries.conf {}: {location:?} does not make an image name for {full}: {e}",
                    path.display()
                ))
            })?;
            n.tag = name.tag.clone();
            n.digest = name.digest.clone();
            Ok(n)
        };
        let mut out = Vec::new();
        if pull {
            let by_digest = name.digest.is_some();
            for m in &r.mirror {
                let allowed = match m.pull_from_mirror.as_deref().unwrap_or("all") {
                    "digest-only" => by_digest,
                    "tag-only" => !by_digest,
                    _ => !r.mirror_by_digest_only || by_digest,
                };
                if allowed {
                    out.push(Endpoint {
                        name: rewrite(&m.location)?,
                        insecure: m.insecure,
                        mirror: Some(m.location.clone()),
                    });
                }
            }
        }
        let location = r.location.as_deref().unwrap_or(prefix);
        out.push(Endpoint {
            name: if r.location.is_some() {
                rewrite(location)?
            } else {
                name.clone()
            },
            insecure: r.insecure,
            mirror: None,
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> RegistriesConf {
        let mut c = RegistriesConf::default();
        c.add(Path::new("test.conf"), text).unwrap();
        c
    }

    #[test]
    fn prefixes_locations_mirrors_and_blocks() {
        let c = conf(
            r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "example.com/team"
location = "mirror.internal:5000/team-copy"
insecure = true
[[registry.mirror]]
location = "m1.local/a"
[[registry.mirror]]
location = "m2.local"
pull-from-mirror = "digest-only"
[[registry]]
location = "bad.example"
blocked = true
"#,
        );
        let n = ImageName::parse("example.com/team/app:v1").unwrap();
        let e = c.endpoints(&n, true).unwrap();
        let names: Vec<String> = e
            .iter()
            .map(|e| format!("{}/{}", e.name.domain, e.name.repository))
            .collect();
        assert_eq!(
            names,
            ["m1.local/a/app", "mirror.internal:5000/team-copy/app"]
        );
        assert_eq!(e[0].name.tag.as_deref(), Some("v1"));
        assert!(e[1].insecure && !e[0].insecure);
        // A push goes to the location only.
        assert_eq!(c.endpoints(&n, false).unwrap().len(), 1);
        // Other namespaces are untouched.
        let other = ImageName::parse("example.com/teamx/app").unwrap();
        assert_eq!(c.endpoints(&other, true).unwrap()[0].name, other);
        let err = c
            .endpoints(&ImageName::parse("bad.example/x").unwrap(), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("blocked") && err.contains("test.conf"),
            "{err}"
        );
    }

    #[test]
    fn invalid_toml_is_a_clear_error() {
        let mut c = RegistriesConf::default();
        let e = c
            .add(Path::new("x.conf"), "[[registry]\nprefix=")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.conf") && e.contains("not valid"), "{e}");
    }
}
