//! Platforms: parsing `os/arch[/variant]`, normalising as containerd does, the host default, and choosing
//! manifests from an index.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};

use crate::error::{Error, Result};

/// An operating system, architecture and optional variant, normalised (`aarch64` -> `arm64`, `arm64`
/// without a variant -> `v8`).
///
/// ```
/// use hoist::Platform;
/// let wanted: Platform = "linux/arm64/v8".parse()?;
/// assert!(wanted.matches(&Platform::new("linux", "arm64", Some("v8"))));
/// println!("this host is {}", Platform::host());
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// e.g. `v7`, `v8`; `None` when the architecture has no variants.
    pub variant: Option<String>,
}

fn normalise_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(|v| v.to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".into(),
            Some(match variant.as_deref() {
                None | Some("8") => "v8".into(),
                Some(v) => v.to_string(),
            }),
        ),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => (
            "arm".into(),
            Some(match variant.as_deref() {
                None | Some("7") => "v7".into(),
                Some("5") => "v5".into(),
                Some("6") => "v6".into(),
                Some("8") => "v8".into(),
                Some(v) => v.to_string(),
            }),
        ),
        "i386" | "i686" | "386" => ("386".into(), variant),
        _ => (arch, variant),
    }
}

impl Platform {
    /// Builds a normalised platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalise_arch(architecture, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// The platform hoist runs on (always `linux` for the OS: images are Linux images).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// The platform of an index entry, normalised (`None` when the entry has none).
    pub fn of_descriptor(desc: &Descriptor) -> Option<Self> {
        desc.platform().as_ref().map(|p| {
            Platform::new(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
    }

    /// True when an entry of platform `other` can serve a request for `self`. A request without a
    /// variant matches any variant of its architecture except where the architecture's default
    /// variant is implied (`arm64` means `v8`).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant == other.variant || self.variant.is_none())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::Platform(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8"
            ))
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(bad()),
        }
    }
}

/// Chooses the entry of `index` for `wanted`: the first manifest whose platform matches. Entries
/// without a platform are skipped unless the index has only one entry.
pub fn select<'a>(index: &'a ImageIndex, wanted: &Platform) -> Result<&'a Descriptor> {
    let manifests = index.manifests();
    if let Some(d) = manifests
        .iter()
        .find(|d| Platform::of_descriptor(d).is_some_and(|p| wanted.matches(&p)))
    {
        return Ok(d);
    }
    if manifests.len() == 1 && manifests[0].platform().is_none() {
        return Ok(&manifests[0]);
    }
    let available: Vec<String> = manifests
        .iter()
        .filter_map(Platform::of_descriptor)
        .map(|p| p.to_string())
        .collect();
    Err(Error::Platform(format!(
        "no manifest for platform {wanted} in the index (it has: {}); choose one with --platform",
        if available.is_empty() {
            "no platforms".to_string()
        } else {
            available.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p: Platform = "linux/aarch64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "linux/arm".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        let p: Platform = "linux/x86_64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn matching_rules() {
        let arm7: Platform = "linux/arm/v7".parse().unwrap();
        let arm6: Platform = "linux/arm/v6".parse().unwrap();
        assert!(!arm7.matches(&arm6));
        let any_arm = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: None,
        };
        assert!(any_arm.matches(&arm6));
        assert!(Platform::host().os == "linux");
    }
}
