//! `inspect`: the fields `skopeo inspect` prints, computed from a resolved image.

use serde::Serialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::image::Image;

/// An image's history matched to its layers, as `umoci stat` shows it.
pub use crate::stat::{HistoryRow, history};

/// One layer as `skopeo inspect` lists it in `LayersData`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerData {
    /// Media type.
    #[serde(rename = "MIMEType")]
    pub mime_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Annotations, when the descriptor has any.
    pub annotations: Option<serde_json::Map<String, Value>>,
}

/// What `hoist inspect` prints, field for field as `skopeo inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspection {
    /// The image name, for transports that have one (registries, docker-archive tags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Digest of the root document (the index, when the reference names one).
    pub digest: Digest,
    /// Tags of the repository (registries) or of the image (archives).
    pub repo_tags: Vec<String>,
    /// `created` of the config.
    pub created: Option<String>,
    /// `docker_version` of a Docker config, empty otherwise.
    pub docker_version: String,
    /// `config.Labels`.
    pub labels: Option<serde_json::Map<String, Value>>,
    /// `architecture`.
    pub architecture: String,
    /// `os`.
    pub os: String,
    /// `variant`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Layer digests.
    pub layers: Vec<String>,
    /// Layers with media type and size.
    pub layers_data: Vec<LayerData>,
    /// `config.Env`.
    pub env: Option<Vec<String>>,
}

/// Builds the inspection of `image`; `root_digest` is the digest of what the reference named.
///
/// ```no_run
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &hoist::OpenOptions::default())?;
/// let image = hoist::image::resolve(src.as_ref(), None)?;
/// let inspection = hoist::inspect(&image, src.root()?.digest(), None, Vec::new());
/// print!("{}", hoist::inspect::to_text(&inspection));
/// # Ok::<(), hoist::Error>(())
/// ```
pub fn inspect(
    image: &Image,
    root_digest: &Digest,
    name: Option<String>,
    repo_tags: Vec<String>,
) -> Inspection {
    let config: Value = serde_json::from_slice(&image.config_bytes).unwrap_or(Value::Null);
    let s = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let inner = config.get("config").cloned().unwrap_or(Value::Null);
    let layers = image.manifest.layers();
    Inspection {
        name,
        digest: root_digest.clone(),
        repo_tags,
        created: s(&config, "created"),
        docker_version: s(&config, "docker_version").unwrap_or_default(),
        labels: inner.get("Labels").and_then(Value::as_object).cloned(),
        architecture: s(&config, "architecture").unwrap_or_default(),
        os: s(&config, "os").unwrap_or_default(),
        variant: s(&config, "variant"),
        layers: layers.iter().map(|l| l.digest().to_string()).collect(),
        layers_data: layers
            .iter()
            .map(|l| LayerData {
                mime_type: l.media_type().to_string(),
                digest: l.digest().to_string(),
                size: l.size(),
                annotations: l.annotations().as_ref().map(|a| {
                    let mut sorted: Vec<_> = a.iter().collect();
                    sorted.sort();
                    sorted
                        .into_iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect()
                }),
            })
            .collect(),
        env: inner.get("Env").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        }),
    }
}

/// Renders an inspection as `key: value` lines for `--format text`.
pub fn to_text(i: &Inspection) -> String {
    let mut out = String::new();
    if let Some(n) = &i.name {
        out.push_str(&format!("Name:          {n}\n"));
    }
    out.push_str(&format!("Digest:        {}\n", i.digest));
    if !i.repo_tags.is_empty() {
        out.push_str(&format!("RepoTags:      {}\n", i.repo_tags.join(", ")));
    }
    if let Some(c) = &i.created {
        out.push_str(&format!("Created:       {c}\n"));
    }
    if !i.docker_version.is_empty() {
        out.push_str(&format!("DockerVersion: {}\n", i.docker_version));
    }
    let platform = match &i.variant {
        Some(v) => format!("{}/{}/{v}", i.os, i.architecture),
        None => format!("{}/{}", i.os, i.architecture),
    };
    out.push_str(&format!("Platform:      {platform}\n"));
    if let Some(labels) = &i.labels {
        out.push_str("Labels:\n");
        for (k, v) in labels {
            out.push_str(&format!("  {k}={}\n", v.as_str().unwrap_or(&v.to_string())));
        }
    }
    if let Some(env) = &i.env {
        out.push_str("Env:\n");
        for e in env {
            out.push_str(&format!("  {e}\n"));
        }
    }
    out.push_str("Layers:\n");
    for l in &i.layers_data {
        out.push_str(&format!(
            "  {}  {:>12}  {}\n",
            l.digest, l.size, l.mime_type
        ));
    }
    out
}
