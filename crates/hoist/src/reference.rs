//! References: Docker image names (with Docker Hub normalisation) and transport references as skopeo
//! writes them (`oci:PATH[:TAG|@DIGEST]`, `oci-archive:`, `dir:`, `docker-archive:`, `docker://`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The registry host that Docker Hub's short name `docker.io` stands for in API calls.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// The canonical domain of Docker Hub in image names.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";

/// A Docker image name: `domain/repository[:tag][@digest]`, normalised
/// (`busybox` -> `docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// Registry domain, with port if any (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest, when pinned.
    pub digest: Option<Digest>,
}

fn invalid(reference: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        reference: without_credentials(reference).into_owned(),
        reason: reason.into(),
    }
}

/// Where the user info of `text` (`USER:PASSWORD@` before the host, as in a URL) ends, when there is
/// one: the last `@` whose remainder names a host (has a `/`, a `.` or `localhost` before any `:`, or
/// no `:`) rather than a digest (`app@sha256:...`).
fn credentials_end(text: &str) -> Option<usize> {
    let at = text.rfind('@')?;
    let rest = &text[at + 1..];
    let host = rest.split(':').next().unwrap_or("");
    let names_host =
        rest.contains('/') || !rest.contains(':') || host.contains('.') || host == "localhost";
    names_host.then_some(at)
}

/// `text` with the user info of a `USER:PASSWORD@HOST/...` reference replaced by `***`, for
/// messages: a password typed into a reference is never echoed. References to paths (`oci:`,
/// `oci-archive:`, `dir:`, `docker-archive:`) are left whole: an `@` in a path is not user info.
pub fn without_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    let is_path = ["oci:", "oci-archive:", "dir:", "docker-archive:"]
        .iter()
        .any(|t| text.starts_with(t));
    if is_path {
        return text.into();
    }
    match credentials_end(text) {
        Some(at) => {
            let start = text.find("://").map_or(0, |i| i + 3).min(at);
            format!("{}***{}", &text[..start], &text[at..]).into()
        }
        None => text.into(),
    }
}

/// The grammar a tag must follow where hoist reads it from a name or writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagGrammar {
    /// A registry tag, also the tag of a docker-archive `RepoTags` entry (distribution's grammar):
    /// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    Registry,
    /// An OCI layout's `org.opencontainers.image.ref.name` (image-spec's grammar): components of
    /// `[A-Za-z0-9]+` joined by one of `-._:@+` or by `--`, separated by `/`.
    LayoutRefName,
}

/// The longest layout ref name hoist accepts (the spec sets none; a name longer than a path is a mistake).
const MAX_REF_NAME: usize = 4096;

/// Checks `tag` against `grammar`: the one check every tag hoist writes (and every tag a registry
/// lists) goes through. The error names the tag and the grammar it breaks.
pub fn check_tag(tag: &str, grammar: TagGrammar) -> Result<()> {
    let (ok, rule) = match grammar {
        TagGrammar::Registry => (
            is_registry_tag(tag),
            "a tag is 1 to 128 of A-Z a-z 0-9 _ . - and does not start with . or -",
        ),
        TagGrammar::LayoutRefName => (
            tag.len() <= MAX_REF_NAME && !tag.is_empty() && tag.split('/').all(is_ref_component),
            "an OCI layout tag (org.opencontainers.image.ref.name) is letters and digits, joined by \
             one of - . _ : @ + or by --, with / between components",
        ),
    };
    if ok {
        return Ok(());
    }
    let shown = &tag[..tag.floor_char_boundary(128)];
    Err(invalid(shown, format!("invalid tag: {rule}")))
}

/// True for a valid registry tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` ([`TagGrammar::Registry`]).
pub fn is_valid_tag(tag: &str) -> bool {
    check_tag(tag, TagGrammar::Registry).is_ok()
}

fn is_registry_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `alphanum (separator alphanum)*` with `alphanum = [A-Za-z0-9]+`, `separator = [-._:@+] | --`.
fn is_ref_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        if b[i..].starts_with(b"--") {
            i += 2;
        } else if matches!(b[i], b'-' | b'.' | b'_' | b':' | b'@' | b'+') {
            i += 1;
        } else {
            return false;
        }
    }
}

/// True when an image name text names a tag or a digest (`app:v1`, `app@sha256:...`), not just a
/// repository (`app`, `localhost:5000/app`): skopeo's test for "a reference, not a repository".
pub fn names_tag_or_digest(text: &str) -> bool {
    text.contains('@')
        || text
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

fn is_valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    b.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
        && !c.contains("..")
        && !c.contains("___")
}

impl ImageName {
    /// Parses and normalises an image name as Docker does.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(invalid(text, "empty image name"));
        }
        if text.len() > 4096 {
            return Err(invalid(
                &text[..text.floor_char_boundary(64)],
                "image name too long",
            ));
        }
        if credentials_end(text).is_some() {
            return Err(invalid(
                text,
                "credentials cannot be part of a reference: pass them with --creds or store them \
                 with hoist login",
            ));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d)?)),
            None => (text, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !is_valid_tag(t)
        {
            return Err(invalid(text, format!("invalid tag {t:?}")));
        }
        let (domain, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB_DOMAIN.to_string()
        } else {
            domain
        };
        let repository = if domain == DOCKER_HUB_DOMAIN && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !repository.split('/').all(is_valid_path_component) {
            return Err(invalid(
                text,
                "repository must be lowercase letters, digits and separators (. _ -) between '/'",
            ));
        }
        if domain.len() + 1 + repository.len() > 255 {
            return Err(invalid(
                &text[..text.floor_char_boundary(64)],
                "a name (registry and repository) may have at most 255 characters",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageName {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// The host to send API requests to (`registry-1.docker.io` for Docker Hub).
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_HUB_DOMAIN {
            DOCKER_HUB_REGISTRY
        } else {
            &self.domain
        }
    }

    /// `domain/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The tag or digest to ask a registry for (digest wins).
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageName::parse(s)
    }
}

/// What names an image inside a layout or archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayoutRef {
    /// A tag (`org.opencontainers.image.ref.name`).
    Tag(String),
    /// A manifest or index digest.
    Digest(Digest),
    /// The N-th entry of `index.json` (skopeo's `@N` source index).
    Index(usize),
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutRef::Tag(t) => f.write_str(t),
            LayoutRef::Digest(d) => write!(f, "@{d}"),
            LayoutRef::Index(i) => write!(f, "@{i}"),
        }
    }
}

/// Which image of a docker-archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArchiveSelector {
    /// By `RepoTags` entry.
    Name(ImageName),
    /// By position in `manifest.json`.
    Index(usize),
}

/// A reference with its transport, as written on the command line.
///
/// ```
/// use hoist::TransportRef;
/// let r: TransportRef = "docker://localhost:5000/team/app:v1".parse()?;
/// assert_eq!(r.transport(), "docker");
/// let layout: TransportRef = "oci:/tmp/layout:latest".parse()?;
/// assert_eq!(layout.transport(), "oci");
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportRef {
    /// `oci:PATH[:TAG|@DIGEST]`: an OCI image layout directory.
    Oci {
        /// The layout directory.
        path: PathBuf,
        /// The image inside it; `None` means the only one.
        reference: Option<LayoutRef>,
    },
    /// `oci-archive:PATH[:TAG]`: a tar of an OCI image layout.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The image inside it.
        reference: Option<LayoutRef>,
    },
    /// `dir:PATH`: skopeo's directory format (`manifest.json`, `version`, blobs by hex digest).
    Dir {
        /// The directory.
        path: PathBuf,
    },
    /// `docker-archive:PATH[:NAME:TAG|@INDEX]`: a `docker save` tarball.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// The image inside it.
        selector: Option<ArchiveSelector>,
    },
    /// `docker://NAME`: an image in a registry.
    Docker(ImageName),
    /// `docker-daemon:NAME:TAG` or `docker-daemon:sha256:ID`: an image of the Docker daemon on
    /// `DOCKER_HOST` (skopeo's syntax).
    DockerDaemon(DaemonRef),
}

/// Which image of the Docker daemon (`docker-daemon:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DaemonRef {
    /// `NAME:TAG` (a tag is required, as skopeo requires it).
    Name(ImageName),
    /// `sha256:ID`: the image ID (its config digest); readable, not a destination.
    Id(Digest),
}

impl fmt::Display for DaemonRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonRef::Name(n) => write!(f, "{n}"),
            DaemonRef::Id(d) => write!(f, "{d}"),
        }
    }
}

fn parse_daemon(text: &str, rest: &str) -> Result<DaemonRef> {
    if rest.starts_with("sha256:") {
        return Ok(DaemonRef::Id(Digest::parse(rest)?));
    }
    if !names_tag_or_digest(rest) {
        return Err(invalid(
            text,
            "docker-daemon: takes NAME:TAG or sha256:ID (a tag is required)",
        ));
    }
    let name = ImageName::parse(rest)?;
    if name.digest.is_some() {
        return Err(invalid(
            text,
            "docker-daemon: takes NAME:TAG or sha256:ID, not NAME@DIGEST",
        ));
    }
    Ok(DaemonRef::Name(name))
}

fn split_layout(text: &str, rest: &str) -> Result<(PathBuf, Option<LayoutRef>)> {
    // `PATH@sha256:...` pins a digest; otherwise the first ':' ends the path.
    for alg in ["@sha256:", "@sha512:"] {
        if let Some(i) = rest.find(alg) {
            let path = rest[..i].strip_suffix(':').unwrap_or(&rest[..i]);
            let digest = Digest::parse(&rest[i + 1..])?;
            return Ok((nonempty_path(text, path)?, Some(LayoutRef::Digest(digest))));
        }
    }
    match rest.split_once(':') {
        None => Ok((nonempty_path(text, rest)?, None)),
        Some((path, "")) => Ok((nonempty_path(text, path)?, None)),
        Some((path, r)) => {
            let reference =
                if let Some(n) = r.strip_prefix('@') {
                    LayoutRef::Index(n.parse().map_err(|_| {
                        invalid(text, format!("{r:?} is neither @DIGEST nor @INDEX"))
                    })?)
                } else {
                    check_tag(r, TagGrammar::LayoutRefName).map_err(|e| match e {
                        Error::InvalidReference { reason, .. } => invalid(text, reason),
                        other => other,
                    })?;
                    LayoutRef::Tag(r.to_string())
                };
            Ok((nonempty_path(text, path)?, Some(reference)))
        }
    }
}

fn nonempty_path(text: &str, path: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(invalid(text, "missing path"));
    }
    Ok(PathBuf::from(path))
}

impl TransportRef {
    /// Parses `TRANSPORT:DETAILS` as skopeo does.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(rest) = text.strip_prefix("docker://") {
            return Ok(TransportRef::Docker(ImageName::parse(rest)?));
        }
        let (transport, rest) = text.split_once(':').ok_or_else(|| {
            invalid(
                text,
                "expected TRANSPORT:DETAILS (oci:, oci-archive:, dir:, docker-archive:, \
                 docker-daemon:, docker://)",
            )
        })?;
        match transport {
            "oci" => {
                let (path, reference) = split_layout(text, rest)?;
                Ok(TransportRef::Oci { path, reference })
            }
            "oci-archive" => {
                let (path, reference) = split_layout(text, rest)?;
                Ok(TransportRef::OciArchive { path, reference })
            }
            "dir" => Ok(TransportRef::Dir {
                path: nonempty_path(text, rest)?,
            }),
            "docker-archive" => {
                let (path, sel) = match rest.split_once(':') {
                    None => (rest, None),
                    Some((p, "")) => (p, None),
                    Some((p, s)) => {
                        let sel = if let Some(n) = s.strip_prefix('@') {
                            ArchiveSelector::Index(n.parse().map_err(|_| {
                                invalid(text, format!("@{n} is not an image index"))
                            })?)
                        } else {
                            ArchiveSelector::Name(ImageName::parse(s)?)
                        };
                        (p, Some(sel))
                    }
                };
                Ok(TransportRef::DockerArchive {
                    path: nonempty_path(text, path)?,
                    selector: sel,
                })
            }
            "docker-daemon" => Ok(TransportRef::DockerDaemon(parse_daemon(text, rest)?)),
            "docker" => Err(invalid(
                text,
                "the registry transport is written docker://HOST/REPO:TAG",
            )),
            other => Err(invalid(
                text,
                format!(
                    "unknown transport {other:?} (known: oci, oci-archive, dir, docker-archive, \
                     docker-daemon, docker)"
                ),
            )),
        }
    }

    /// The same reference with its path made absolute (against the current directory), so it can be
    /// recorded and used again from elsewhere.
    pub fn absolute(&self) -> TransportRef {
        let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        match self {
            TransportRef::Oci { path, reference } => TransportRef::Oci {
                path: abs(path),
                reference: reference.clone(),
            },
            TransportRef::OciArchive { path, reference } => TransportRef::OciArchive {
                path: abs(path),
                reference: reference.clone(),
            },
            TransportRef::Dir { path } => TransportRef::Dir { path: abs(path) },
            TransportRef::DockerArchive { path, selector } => TransportRef::DockerArchive {
                path: abs(path),
                selector: selector.clone(),
            },
            TransportRef::Docker(name) => TransportRef::Docker(name.clone()),
            TransportRef::DockerDaemon(r) => TransportRef::DockerDaemon(r.clone()),
        }
    }

    /// The directory of the whole OCI layout this reference names (`oci:PATH`, without a tag), for
    /// the verbs that work on a layout rather than an image; otherwise an error saying so for `what`
    /// (the verb or flag, as the user typed it).
    pub fn whole_layout(&self, what: &str) -> Result<&std::path::Path> {
        match self {
            TransportRef::Oci {
                path,
                reference: None,
            } => Ok(path),
            TransportRef::Oci { .. } => Err(Error::Unsupported(format!(
                "{what} works on a whole layout: write oci:PATH without a tag"
            ))),
            other => Err(Error::Unsupported(format!(
                "{what} works on OCI layouts (oci:PATH), not {}",
                other.transport()
            ))),
        }
    }

    /// The image name this reference gives the image, where it gives one (a registry's
    /// `docker://NAME`, a docker-archive's or the daemon's `NAME:TAG`): what `inspect` shows as `Name`.
    pub fn image_name(&self) -> Option<&ImageName> {
        match self {
            TransportRef::Docker(n)
            | TransportRef::DockerArchive {
                selector: Some(ArchiveSelector::Name(n)),
                ..
            }
            | TransportRef::DockerDaemon(DaemonRef::Name(n)) => Some(n),
            _ => None,
        }
    }

    /// The file of a transport that writes it whole, holding any number of images (an
    /// `oci-archive:` or `docker-archive:`), and whether `tag` (as [`Source::tags`] lists the
    /// archive's tags) names the image this reference names; `None` for every other transport.
    ///
    /// [`Source::tags`]: crate::transport::Source::tags
    pub fn archive_file(&self, tag: &str) -> Option<(&std::path::Path, bool)> {
        match self {
            TransportRef::OciArchive { path, reference } => Some((
                path,
                matches!(reference, Some(LayoutRef::Tag(t)) if t == tag),
            )),
            TransportRef::DockerArchive { path, selector } => {
                let named = match (selector, ImageName::parse(tag)) {
                    (Some(ArchiveSelector::Name(n)), Ok(t)) => {
                        n.name() == t.name() && n.tag == t.tag
                    }
                    _ => false,
                };
                Some((path, named))
            }
            _ => None,
        }
    }

    /// The reference with its image choice relaxed where a transport cannot open a file of several
    /// images without one (a docker-archive opens at its first image), for listing what the whole
    /// file or repository holds ([`crate::transport::list_tags`]); otherwise the reference as it is.
    pub fn any_image(&self) -> TransportRef {
        match self {
            TransportRef::DockerArchive {
                path,
                selector: None,
            } => TransportRef::DockerArchive {
                path: path.clone(),
                selector: Some(ArchiveSelector::Index(0)),
            },
            other => other.clone(),
        }
    }

    /// The same image pinned to the manifest `digest`, where the transport can name an image by
    /// manifest digest (an OCI layout, a registry); otherwise the reference as it is.
    pub fn pinned_to(&self, digest: &Digest) -> TransportRef {
        match self {
            TransportRef::Oci { path, .. } => TransportRef::Oci {
                path: path.clone(),
                reference: Some(LayoutRef::Digest(digest.clone())),
            },
            TransportRef::Docker(name) => TransportRef::Docker(ImageName {
                digest: Some(digest.clone()),
                tag: None,
                ..name.clone()
            }),
            other => other.clone(),
        }
    }

    /// A reference in the same repository as this one (a registry repository, the whole `oci:`
    /// layout): the image tagged `tag`, or with `None` the repository itself, naming no image (where
    /// referrers are written). This is how an image's neighbours are named: cosign's
    /// `sha256-<hex>.sig` tag beside it, its referrers, a new tag for an edited image. `None` for a
    /// transport that keeps no repository of tagged images (those whose
    /// [`TransportKind::repository`](crate::transport::TransportKind::repository) is false).
    pub fn in_same_repository(&self, tag: Option<&str>) -> Option<TransportRef> {
        match self {
            TransportRef::Oci { path, .. } => Some(TransportRef::Oci {
                path: path.clone(),
                reference: tag.map(|t| LayoutRef::Tag(t.to_string())),
            }),
            TransportRef::Docker(name) => Some(TransportRef::Docker(ImageName {
                tag: tag.map(str::to_string),
                digest: None,
                ..name.clone()
            })),
            _ => None,
        }
    }

    /// Where an edited copy of the image this reference names is written when no destination is
    /// given (`hoist config`, `diff --image`): with `tag`, the image tagged `tag` in the same
    /// repository ([`TransportRef::in_same_repository`]); without, the image's own tag there, or the
    /// repository untagged when the image is named by digest or index (a name the edited image
    /// cannot keep). A transport without a repository of tags is written as it is named, and
    /// refuses `tag`.
    pub fn edited_image(&self, tag: Option<&str>) -> Result<TransportRef> {
        let own_tag = match self {
            TransportRef::Oci {
                reference: Some(LayoutRef::Tag(t)),
                ..
            } => Some(t.as_str()),
            TransportRef::Docker(name) if name.digest.is_none() => name.tag.as_deref(),
            _ => None,
        };
        match (self.in_same_repository(tag.or(own_tag)), tag) {
            (Some(edited), Some(tag)) => {
                // The grammar of the repository's tags: a registry's, or a layout's ref names.
                let grammar = match self {
                    TransportRef::Docker(_) => TagGrammar::Registry,
                    _ => TagGrammar::LayoutRefName,
                };
                check_tag(tag, grammar)?;
                Ok(edited)
            }
            (Some(edited), None) => Ok(edited),
            (None, None) => Ok(self.clone()),
            (None, Some(tag)) => Err(Error::Unsupported(format!(
                "{self}: a new tag ({tag}) goes into a layout (oci:) or a registry repository \
                 (docker://), and {} has none: name the destination instead",
                self.transport()
            ))),
        }
    }

    /// The image in a registry this reference names (`docker://NAME`), the one transport whose
    /// images have a registry identity: what a signature names by default, what a policy's
    /// `signedIdentity` is matched against, and what a registry can be asked about with a `HEAD`.
    /// `None` for every other transport (a docker-archive's or the daemon's `NAME:TAG` is a name
    /// given to a local copy: see [`TransportRef::image_name`]).
    pub fn registry_image(&self) -> Option<&ImageName> {
        match self {
            TransportRef::Docker(name) => Some(name),
            _ => None,
        }
    }

    /// The scopes of containers-policy.json(5) this reference falls in under its transport's
    /// name ([`TransportRef::transport`]), most specific first, without the transport-wide `""`:
    /// for `docker`, `host/repo:tag`, `host/repo`, each parent namespace, `host`; for `oci`, the
    /// absolute layout path with `:tag`, the path, each parent directory. Other transports have no
    /// scopes hoist matches (only their `""` applies).
    pub fn policy_scopes(&self) -> Vec<String> {
        let mut scopes = Vec::new();
        match self {
            TransportRef::Docker(name) => {
                if let Some(tag) = &name.tag {
                    scopes.push(format!("{}:{tag}", name.name()));
                }
                let mut repo = name.name();
                loop {
                    scopes.push(repo.clone());
                    match repo.rfind('/') {
                        Some(i) => repo.truncate(i),
                        None => break,
                    }
                }
            }
            TransportRef::Oci { path, reference } => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                if let Some(LayoutRef::Tag(tag)) = reference {
                    scopes.push(format!("{}:{tag}", path.display()));
                }
                scopes.extend(path.ancestors().map(|p| p.display().to_string()));
            }
            _ => {}
        }
        scopes
    }

    /// The transport's name (`oci`, `docker`, ...).
    pub fn transport(&self) -> &'static str {
        match self {
            TransportRef::Oci { .. } => "oci",
            TransportRef::OciArchive { .. } => "oci-archive",
            TransportRef::Dir { .. } => "dir",
            TransportRef::DockerArchive { .. } => "docker-archive",
            TransportRef::Docker(_) => "docker",
            TransportRef::DockerDaemon(_) => "docker-daemon",
        }
    }
}

impl fmt::Display for TransportRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportRef::Oci { path, reference }
            | TransportRef::OciArchive { path, reference } => {
                write!(f, "{}:{}", self.transport(), path.display())?;
                match reference {
                    Some(LayoutRef::Tag(t)) => write!(f, ":{t}"),
                    // `PATH:@DIGEST` when the path itself ends in ':' (parsing drops one ':').
                    Some(LayoutRef::Digest(d)) if path.to_string_lossy().ends_with(':') => {
                        write!(f, ":@{d}")
                    }
                    Some(LayoutRef::Digest(d)) => write!(f, "@{d}"),
                    Some(LayoutRef::Index(i)) => write!(f, ":@{i}"),
                    None => Ok(()),
                }
            }
            TransportRef::Dir { path } => write!(f, "dir:{}", path.display()),
            TransportRef::DockerArchive { path, selector } => {
                write!(f, "docker-archive:{}", path.display())?;
                match selector {
                    Some(ArchiveSelector::Name(n)) => write!(f, ":{n}"),
                    Some(ArchiveSelector::Index(i)) => write!(f, ":@{i}"),
                    None => Ok(()),
                }
            }
            TransportRef::Docker(name) => write!(f, "docker://{name}"),
            TransportRef::DockerDaemon(r) => write!(f, "docker-daemon:{r}"),
        }
    }
}

impl FromStr for TransportRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TransportRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_grammars() {
        use TagGrammar::{LayoutRefName, Registry};
        for good in ["v1", "_x", "1.0-rc_2", &"a".repeat(128)] {
            check_tag(good, Registry).unwrap();
        }
        for bad in [
            "",
            ".abc",
            "-a",
            "a/b",
            "a:b",
            "small#frag",
            "../../x",
            &"a".repeat(129),
        ] {
            assert!(check_tag(bad, Registry).is_err(), "{bad}");
        }
        for good in [
            "v1",
            "1.0",
            "registry.example/app:v1",
            "a--b",
            "a+b@c",
            "localhost:5000/a/b:v1",
        ] {
            check_tag(good, LayoutRefName).unwrap();
        }
        for bad in [
            "", ".abc", "_x", "a/", "/a", "a//b", "a b", "a---b", "a.", "a#b", "é",
        ] {
            let err = check_tag(bad, LayoutRefName).unwrap_err().to_string();
            assert!(err.contains("invalid tag"), "{bad}: {err}");
        }
    }

    #[test]
    fn docker_hub_normalisation() {
        let n = ImageName::parse("busybox").unwrap();
        assert_eq!(n.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(n.registry_host(), "registry-1.docker.io");
        let n = ImageName::parse("user/app:1.0").unwrap();
        assert_eq!(n.to_string(), "docker.io/user/app:1.0");
        let n = ImageName::parse("localhost:5000/a/b").unwrap();
        assert_eq!(
            (n.domain.as_str(), n.repository.as_str()),
            ("localhost:5000", "a/b")
        );
        assert_eq!(n.tag.as_deref(), Some("latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let n = ImageName::parse(&format!("quay.io/x/y@{d}")).unwrap();
        assert_eq!(n.tag, None);
        assert_eq!(n.reference(), d);
        for bad in [
            "UPPER/case",
            "a//b",
            "x:bad tag",
            "",
            "a/b:-x",
            "docker.io/../x",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transport_references_as_skopeo_writes_them() {
        let r = TransportRef::parse("oci:/tmp/layout:v1").unwrap();
        assert_eq!(
            r,
            TransportRef::Oci {
                path: "/tmp/layout".into(),
                reference: Some(LayoutRef::Tag("v1".into()))
            }
        );
        let r = TransportRef::parse("oci:dir").unwrap();
        assert!(matches!(
            r,
            TransportRef::Oci {
                reference: None,
                ..
            }
        ));
        let d = format!("sha256:{}", "b".repeat(64));
        let r = TransportRef::parse(&format!("oci:dir@{d}")).unwrap();
        assert!(matches!(
            r,
            TransportRef::Oci {
                reference: Some(LayoutRef::Digest(_)),
                ..
            }
        ));
        // Found by the fuzzer: a path ending in ':' before a digest must print back to itself.
        let text = format!("oci-archive:x-archive::@{d}");
        let r = TransportRef::parse(&text).unwrap();
        assert_eq!(TransportRef::parse(&r.to_string()).unwrap(), r);
        assert_eq!(r.to_string(), text);
        let r = TransportRef::parse("docker://busybox").unwrap();
        assert_eq!(r.to_string(), "docker://docker.io/library/busybox:latest");
        let r = TransportRef::parse("docker-archive:x.tar:app:1").unwrap();
        assert!(matches!(
            r,
            TransportRef::DockerArchive {
                selector: Some(ArchiveSelector::Name(_)),
                ..
            }
        ));
        let r = TransportRef::parse("docker-archive:x.tar:@1").unwrap();
        assert!(matches!(
            r,
            TransportRef::DockerArchive {
                selector: Some(ArchiveSelector::Index(1)),
                ..
            }
        ));
        let r = TransportRef::parse("docker-daemon:app:1").unwrap();
        assert_eq!(r.transport(), "docker-daemon");
        assert_eq!(TransportRef::parse(&r.to_string()).unwrap(), r);
        let r = TransportRef::parse(&format!("docker-daemon:{d}")).unwrap();
        assert!(matches!(r, TransportRef::DockerDaemon(DaemonRef::Id(_))));
        assert_eq!(r.to_string(), format!("docker-daemon:{d}"));
        for bad in ["docker-daemon:app", &format!("docker-daemon:app@{d}")] {
            let err = TransportRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains("NAME:TAG or sha256:ID"), "{bad}: {err}");
        }
        let layout = TransportRef::parse("oci:/l").unwrap();
        assert_eq!(
            layout.whole_layout("gc").unwrap(),
            std::path::Path::new("/l")
        );
        let e = TransportRef::parse("oci:/l:v1")
            .unwrap()
            .whole_layout("gc")
            .unwrap_err();
        assert!(e.to_string().contains("without a tag"), "{e}");
        let e = TransportRef::parse("dir:/l")
            .unwrap()
            .whole_layout("gc")
            .unwrap_err();
        assert!(e.to_string().contains("not dir"), "{e}");
        assert_eq!(layout.image_name(), None);
        let named = TransportRef::parse("docker-daemon:app:1").unwrap();
        assert_eq!(named.image_name().unwrap().name(), "docker.io/library/app");
        let pinned = TransportRef::parse("docker://h.example/a:1")
            .unwrap()
            .pinned_to(&Digest::parse(&d).unwrap());
        assert_eq!(pinned.to_string(), format!("docker://h.example/a@{d}"));
        let pinned = TransportRef::parse("oci:/l:v1")
            .unwrap()
            .pinned_to(&Digest::parse(&d).unwrap());
        assert_eq!(pinned.to_string(), format!("oci:/l@{d}"));
        let archive = TransportRef::parse("docker-archive:/a.tar:a:1").unwrap();
        assert_eq!(archive.pinned_to(&Digest::parse(&d).unwrap()), archive);
        assert!(TransportRef::parse("nope:x").is_err());
        for bad in [
            "oci:x:.abc",
            "oci:x:a b",
            "oci-archive:x:-a",
            "oci:x:a/",
            "oci:x:a---b",
        ] {
            let err = TransportRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid tag"), "{bad}: {err}");
        }
        assert!(TransportRef::parse("oci:").is_err());
        assert!(TransportRef::parse("oci:x@sha256:../../etc").is_err());
    }

    #[test]
    fn an_edited_image_goes_to_its_own_tag_or_the_one_given_beside_it() {
        let d = format!("sha256:{}", "c".repeat(64));
        let edited = |r: &str, tag: Option<&str>| {
            TransportRef::parse(r)
                .unwrap()
                .edited_image(tag)
                .map(|e| e.to_string())
        };
        assert_eq!(edited("oci:/l:v1", None).unwrap(), "oci:/l:v1");
        assert_eq!(edited("oci:/l:v1", Some("v2")).unwrap(), "oci:/l:v2");
        assert_eq!(edited(&format!("oci:/l@{d}"), None).unwrap(), "oci:/l");
        assert_eq!(edited("oci:/l:@1", None).unwrap(), "oci:/l");
        assert_eq!(
            edited("docker://h.example/a:v1", Some("v2")).unwrap(),
            "docker://h.example/a:v2"
        );
        assert_eq!(
            edited(&format!("docker://h.example/a:v1@{d}"), None).unwrap(),
            "docker://h.example/a"
        );
        assert_eq!(
            edited("docker-archive:/x.tar:a:1", None).unwrap(),
            "docker-archive:/x.tar:docker.io/library/a:1"
        );
        let e = edited("oci-archive:/x.tar:v1", Some("v2")).unwrap_err();
        assert!(e.to_string().contains("oci-archive has none"), "{e}");
        for (image, bad) in [("docker://h.example/a:v1", "a:b"), ("oci:/l:v1", "a b")] {
            let e = edited(image, Some(bad)).unwrap_err();
            assert!(e.to_string().contains("invalid tag"), "{image} {bad}: {e}");
        }
        assert_eq!(
            edited("oci:/l:v1", Some("registry.example/app:v2")).unwrap(),
            "oci:/l:registry.example/app:v2"
        );
    }

    #[test]
    fn credentials_in_a_reference_are_refused_and_never_echoed() {
        for text in [
            "docker://me:pw-9z@host.example/x",
            "docker://me:pw-9z@localhost:5000/x:v1",
            "docker://me:pw-9z@host",
            "docker://me:p@w/-9z@host.example/x",
            "docker:me:pw-9z@host.example/x",
        ] {
            let e = TransportRef::parse(text).unwrap_err().to_string();
            assert!(!e.contains("pw-9z") && !e.contains("w/-9z"), "{text}: {e}");
            assert!(e.contains("***@"), "{text}: {e}");
        }
        let e = TransportRef::parse("docker://me:pw-9z@host.example/x").unwrap_err();
        assert!(e.to_string().contains("--creds"), "{e}");
        // A digest is not user info.
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(ImageName::parse(&format!("busybox@{d}")).is_ok());
        assert_eq!(
            without_credentials(&format!("x:v1@{d}")),
            format!("x:v1@{d}")
        );
        // A path with an @ is not user info, in messages either.
        let path = "oci:/tmp/a@b.example/layout:v1";
        assert_eq!(without_credentials(path), path);
        let e = TransportRef::parse("oci:/tmp/a@b.example/x:@zz").unwrap_err();
        assert!(e.to_string().contains("/tmp/a@b.example/x"), "{e}");
        // Nor is a transport typed wrongly a place to show one.
        let e = TransportRef::parse("me:pw-9z@host.example/x").unwrap_err();
        assert!(!e.to_string().contains("pw-9z"), "{e}");
    }
}
