//! Editing an image in a layout: a new config (fields set as `umoci config` does, layers appended with
//! their diff_ids and history), a new manifest pointing at it, and a tag moved atomically.
//!
//! Config and manifest are edited as JSON values, so fields hoist does not know survive. New blobs and
//! the tag are written under the layout's writer lock, last of all the `index.json` swap; the previous
//! manifest stays in the layout (reachable by digest) until `gc`.
//!
//! ```no_run
//! use hoist::config_edit::{ConfigChanges, ImageEdit};
//! use hoist::layout::Layout;
//! use hoist::reference::LayoutRef;
//! let layout = Layout::open("/tmp/layout")?;
//! let mut edit = ImageEdit::open(&layout, Some(&LayoutRef::Tag("v1".into())))?;
//! let mut changes = ConfigChanges::default();
//! changes.env = vec!["A=1".into()];
//! edit.apply(&changes)?;
//! edit.add_history(ImageEdit::history_entry(None, "hoist config", None, true));
//! let new = edit.commit(Some("v2"))?;
//! println!("{}", new.digest());
//! # Ok::<(), hoist::Error>(())
//! ```

use serde_json::{Map, Value, json};

use crate::descriptor::{Descriptor, digest_of, new_descriptor};
use crate::diff::LayerBlob;
use crate::digest::Digest;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::layout::{Layout, REF_NAME};
use crate::media_type::{self, Kind};
use crate::reference::LayoutRef;

/// A field of the config that `--clear` can empty (umoci's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearField {
    /// `config.labels`
    Labels,
    /// `config.env`
    Env,
    /// `config.entrypoint`
    Entrypoint,
    /// `config.cmd`
    Cmd,
    /// `config.exposedports`
    ExposedPorts,
    /// `config.volume`
    Volumes,
    /// `manifest.annotations`
    ManifestAnnotations,
}

impl ClearField {
    /// Parses umoci's `--clear` names (`config.env`, `config.labels`, ...).
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "config.labels" => ClearField::Labels,
            "config.env" => ClearField::Env,
            "config.entrypoint" => ClearField::Entrypoint,
            "config.cmd" => ClearField::Cmd,
            "config.exposedports" => ClearField::ExposedPorts,
            "config.volume" | "config.volumes" => ClearField::Volumes,
            "manifest.annotations" => ClearField::ManifestAnnotations,
            other => {
                return Err(Error::Other(format!(
                    "cannot clear {other:?}: known fields are config.labels, config.env, \
                     config.entrypoint, config.cmd, config.exposedports, config.volume, \
                     manifest.annotations"
                )));
            }
        })
    }
}

/// Changes to an image config, applied in this order: clears, then every field given.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConfigChanges {
    /// Fields emptied first.
    pub clear: Vec<ClearField>,
    /// `KEY=VALUE` entries; an existing `KEY` is replaced in place, a new one appended.
    pub env: Vec<String>,
    /// Replaces `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// Sets `User`.
    pub user: Option<String>,
    /// Sets `WorkingDir`.
    pub working_dir: Option<String>,
    /// Sets `StopSignal`.
    pub stop_signal: Option<String>,
    /// `KEY=VALUE` labels added or replaced.
    pub labels: Vec<String>,
    /// Ports added to `ExposedPorts` (`80`, `80/tcp`, `53/udp`; no protocol means tcp).
    pub exposed_ports: Vec<String>,
    /// Paths added to `Volumes`.
    pub volumes: Vec<String>,
    /// Sets the top-level `author`.
    pub author: Option<String>,
    /// Sets the top-level `created` (RFC 3339).
    pub created: Option<String>,
    /// Sets `os`.
    pub os: Option<String>,
    /// Sets `architecture`.
    pub architecture: Option<String>,
    /// `KEY=VALUE` manifest annotations added or replaced.
    pub manifest_annotations: Vec<String>,
}

fn split_kv<'a>(what: &str, text: &'a str) -> Result<(&'a str, &'a str)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(Error::Other(format!(
            "{what} {text:?} is not KEY=VALUE with a non-empty KEY"
        ))),
    }
}

/// Checks an RFC 3339 timestamp (`2024-01-02T03:04:05Z`, optional fraction, `Z` or `±HH:MM`).
pub fn check_rfc3339(text: &str) -> Result<()> {
    let bad = || {
        Error::Other(format!(
            "{text:?} is not an RFC 3339 time like 2024-01-02T03:04:05Z"
        ))
    };
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return Err(bad());
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => Ok(()),
        [b'+' | b'-', ..]
            if b.len() == i + 6
                && digits(i + 1..i + 3)
                && b[i + 3] == b':'
                && digits(i + 4..i + 6) =>
        {
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

fn object<'a>(v: &'a mut Value, key: &str, what: &str) -> Result<&'a mut Map<String, Value>> {
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::invalid_document(what, "not a JSON object"))?;
    let slot = obj.entry(key).or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
        .ok_or_else(|| Error::invalid_document(what, format!("{key} is not an object")))
}

impl ConfigChanges {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.clear.is_empty()
            && self.env.is_empty()
            && self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.user.is_none()
            && self.working_dir.is_none()
            && self.stop_signal.is_none()
            && self.labels.is_empty()
            && self.exposed_ports.is_empty()
            && self.volumes.is_empty()
            && self.author.is_none()
            && self.created.is_none()
            && self.os.is_none()
            && self.architecture.is_none()
            && self.manifest_annotations.is_empty()
    }

    /// Applies the changes to a config (and the manifest, for annotations), both as JSON values.
    pub fn apply(&self, config: &mut Value, manifest: &mut Value) -> Result<()> {
        const WHAT: &str = "image config";
        for c in &self.clear {
            let key = match c {
                ClearField::Labels => "Labels",
                ClearField::Env => "Env",
                ClearField::Entrypoint => "Entrypoint",
                ClearField::Cmd => "Cmd",
                ClearField::ExposedPorts => "ExposedPorts",
                ClearField::Volumes => "Volumes",
                ClearField::ManifestAnnotations => {
                    if let Some(m) = manifest.as_object_mut() {
                        m.remove("annotations");
                    }
                    continue;
                }
            };
            object(config, "config", WHAT)?.remove(key);
        }
        if let Some(c) = &self.created {
            check_rfc3339(c)?;
        }
        let top = config
            .as_object_mut()
            .ok_or_else(|| Error::invalid_document(WHAT, "not a JSON object"))?;
        for (key, value) in [
            ("author", &self.author),
            ("created", &self.created),
            ("os", &self.os),
            ("architecture", &self.architecture),
        ] {
            if let Some(v) = value {
                top.insert(key.into(), Value::String(v.clone()));
            }
        }
        let cfg = object(config, "config", WHAT)?;
        for (key, value) in [
            ("User", &self.user),
            ("WorkingDir", &self.working_dir),
            ("StopSignal", &self.stop_signal),
        ] {
            if let Some(v) = value {
                cfg.insert(key.into(), Value::String(v.clone()));
            }
        }
        for (key, value) in [("Entrypoint", &self.entrypoint), ("Cmd", &self.cmd)] {
            if let Some(v) = value {
                cfg.insert(key.into(), json!(v));
            }
        }
        if !self.env.is_empty() {
            let env = cfg.entry("Env").or_insert_with(|| json!([]));
            if env.is_null() {
                *env = json!([]);
            }
            let list = env
                .as_array_mut()
                .ok_or_else(|| Error::invalid_document(WHAT, "config.Env is not an array"))?;
            for e in &self.env {
                let (k, _) = split_kv("environment variable", e)?;
                let prefix = format!("{k}=");
                match list
                    .iter_mut()
                    .find(|x| x.as_str().is_some_and(|s| s.starts_with(&prefix) || s == k))
                {
                    Some(slot) => *slot = Value::String(e.clone()),
                    None => list.push(Value::String(e.clone())),
                }
            }
        }
        if !self.labels.is_empty() {
            let map = map_field(cfg, "Labels", WHAT)?;
            for l in &self.labels {
                let (k, v) = split_kv("label", l)?;
                map.insert(k.into(), Value::String(v.into()));
            }
        }
        if !self.exposed_ports.is_empty() {
            let map = map_field(cfg, "ExposedPorts", WHAT)?;
            for p in &self.exposed_ports {
                map.insert(normalise_port(p)?, json!({}));
            }
        }
        if !self.volumes.is_empty() {
            let map = map_field(cfg, "Volumes", WHAT)?;
            for v in &self.volumes {
                if v.is_empty() {
                    return Err(Error::Other("a volume path cannot be empty".into()));
                }
                map.insert(v.clone(), json!({}));
            }
        }
        if !self.manifest_annotations.is_empty() {
            let map = object(manifest, "annotations", "manifest")?;
            for a in &self.manifest_annotations {
                let (k, v) = split_kv("annotation", a)?;
                map.insert(k.into(), Value::String(v.into()));
            }
        }
        Ok(())
    }
}

fn map_field<'a>(
    cfg: &'a mut Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a mut Map<String, Value>> {
    let slot = cfg.entry(key).or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
        .ok_or_else(|| Error::invalid_document(what, format!("config.{key} is not an object")))
}

/// `80` -> `80/tcp`; checks the number and protocol.
fn normalise_port(p: &str) -> Result<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let ok_num = num.parse::<u16>().is_ok()
        || num
            .split_once('-')
            .is_some_and(|(a, b)| a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok());
    if !ok_num || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(Error::Other(format!(
            "exposed port {p:?} is not PORT[/tcp|/udp|/sctp]"
        )));
    }
    Ok(format!("{num}/{proto}"))
}

/// An image of a layout being edited: its manifest and config as JSON values, plus layer blobs waiting
/// to be stored. Nothing reaches the layout until [`ImageEdit::commit`].
pub struct ImageEdit {
    layout: Layout,
    /// The tag it was opened by, if any (checked again under the lock at commit).
    opened_tag: Option<String>,
    base: Descriptor,
    manifest_media_type: String,
    manifest: Value,
    config: Value,
    pending: Vec<(crate::durable::TempFile, Digest)>,
}

impl ImageEdit {
    /// Opens the image `reference` names in `layout` (`None`: the only one). It must be an image
    /// manifest with an image config; an index is refused with a hint.
    pub fn open(layout: &Layout, reference: Option<&LayoutRef>) -> Result<Self> {
        let base = layout.resolve(reference)?;
        let doc = layout.read_document(&base)?;
        match doc.kind() {
            Kind::Manifest { .. } => {}
            Kind::Index { .. } => {
                return Err(Error::Unsupported(format!(
                    "{} is an index; name one of its manifests with @DIGEST to edit it",
                    doc.digest()
                )));
            }
            _ => {
                return Err(Error::UnsupportedMediaType {
                    media_type: doc.media_type().to_string(),
                    what: format!("{}: not an image manifest", doc.digest()),
                });
            }
        }
        let parsed = doc.manifest()?;
        let config_desc = parsed.config();
        if !matches!(
            media_type::kind(config_desc.media_type().as_ref()),
            Kind::Config { .. }
        ) {
            return Err(Error::UnsupportedMediaType {
                media_type: config_desc.media_type().to_string(),
                what: format!("config of {}: not an image config", doc.digest()),
            });
        }
        let config_bytes = layout.read_small_blob(config_desc)?;
        let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| {
            Error::invalid_document(format!("config {}", config_desc.digest()), e.to_string())
        })?;
        let manifest: Value = serde_json::from_slice(doc.bytes()).map_err(|e| {
            Error::invalid_document(format!("manifest {}", doc.digest()), e.to_string())
        })?;
        Ok(ImageEdit {
            layout: layout.clone(),
            opened_tag: match reference {
                Some(LayoutRef::Tag(t)) => Some(t.clone()),
                _ => None,
            },
            base,
            manifest_media_type: doc.media_type().to_string(),
            manifest,
            config,
            pending: Vec::new(),
        })
    }

    /// The descriptor of the image as opened.
    pub fn base(&self) -> &Descriptor {
        &self.base
    }

    /// The config being edited.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The config being edited, mutably.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    /// Applies `changes` to the config (and manifest annotations).
    pub fn apply(&mut self, changes: &ConfigChanges) -> Result<()> {
        changes.apply(&mut self.config, &mut self.manifest)
    }

    /// A `history` entry: `created` (now when `None`), `created_by`, optional `author`, and
    /// `empty_layer` for edits that add no layer.
    pub fn history_entry(
        created: Option<&str>,
        created_by: &str,
        author: Option<&str>,
        empty_layer: bool,
    ) -> Value {
        let mut h = Map::new();
        h.insert(
            "created".into(),
            Value::String(created.map(str::to_string).unwrap_or_else(now_rfc3339)),
        );
        h.insert("created_by".into(), Value::String(created_by.into()));
        if let Some(a) = author {
            h.insert("author".into(), Value::String(a.into()));
        }
        if empty_layer {
            h.insert("empty_layer".into(), Value::Bool(true));
        }
        Value::Object(h)
    }

    /// Appends an entry to the config's `history`.
    pub fn add_history(&mut self, entry: Value) {
        if let Some(top) = self.config.as_object_mut() {
            let h = top.entry("history").or_insert_with(|| json!([]));
            if !h.is_array() {
                *h = json!([]);
            }
            if let Some(a) = h.as_array_mut() {
                a.push(entry);
            }
        }
    }

    /// Appends a layer: its descriptor to the manifest, its diff_id to `rootfs.diff_ids`. The blob is
    /// taken from `tmp` (a temp file inside the layout, fully written) and stored at commit.
    pub fn add_layer(&mut self, blob: &LayerBlob, tmp: crate::durable::TempFile) -> Result<()> {
        let desc = serde_json::to_value(blob.descriptor())
            .map_err(|e| Error::Other(format!("serialising a layer descriptor: {e}")))?;
        let layers = self
            .manifest
            .as_object_mut()
            .ok_or_else(|| Error::invalid_document("manifest", "not a JSON object"))?
            .entry("layers")
            .or_insert_with(|| json!([]));
        layers
            .as_array_mut()
            .ok_or_else(|| Error::invalid_document("manifest", "layers is not an array"))?
            .push(desc);
        let rootfs = object(&mut self.config, "rootfs", "image config")?;
        rootfs
            .entry("type")
            .or_insert_with(|| Value::String("layers".into()));
        let ids = rootfs.entry("diff_ids").or_insert_with(|| json!([]));
        if ids.is_null() {
            *ids = json!([]);
        }
        ids.as_array_mut()
            .ok_or_else(|| {
                Error::invalid_document("image config", "rootfs.diff_ids is not an array")
            })?
            .push(Value::String(blob.diff_id.to_string()));
        self.pending.push((tmp, blob.digest.clone()));
        Ok(())
    }

    /// Stores the pending layers, the new config and manifest, and points `tag` at the manifest (an
    /// untagged `index.json` entry when `None`), all under the layout's writer lock. Fails, writing no
    /// tag, when the tag the image was opened by moved meanwhile. Returns the new manifest.
    pub fn commit(self, tag: Option<&str>) -> Result<Document> {
        if let Some(t) = tag {
            crate::reference::check_tag(t, crate::reference::TagGrammar::LayoutRefName)?;
        }
        let config_bytes = serde_json::to_vec(&self.config)
            .map_err(|e| Error::Other(format!("serialising the config: {e}")))?;
        let config_desc = self
            .manifest
            .get("config")
            .ok_or_else(|| Error::invalid_document("manifest", "no config"))?;
        let config_media_type = config_desc
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(media_type::OCI_CONFIG)
            .to_string();
        let config_digest = Digest::sha256(&config_bytes);
        let mut manifest =
            crate::document::with_media_type(self.manifest, &self.manifest_media_type);
        if let Some(c) = manifest.get_mut("config").and_then(Value::as_object_mut) {
            c.insert("digest".into(), Value::String(config_digest.to_string()));
            c.insert("size".into(), json!(config_bytes.len()));
            c.insert("mediaType".into(), Value::String(config_media_type));
        }
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Other(format!("serialising the manifest: {e}")))?;
        let doc = Document::new(&self.manifest_media_type, manifest_bytes)?;
        doc.manifest()?;

        let _lock = self.layout.lock()?;
        if let Some(t) = &self.opened_tag {
            let now = self.layout.resolve(Some(&LayoutRef::Tag(t.clone())))?;
            if digest_of(&now)? != digest_of(&self.base)? {
                return Err(Error::Other(format!(
                    "tag {t:?} moved to {} while the image was being edited; nothing was changed",
                    now.digest()
                )));
            }
        }
        for (tmp, digest) in self.pending {
            self.layout.persist(tmp, &digest)?;
        }
        self.layout.write_bytes(&config_bytes)?;
        self.layout.write_bytes(doc.bytes())?;
        let mut desc = new_descriptor(doc.media_type(), doc.digest(), doc.size());
        if let Some(p) = self.base.platform() {
            desc.set_platform(Some(p.clone()));
        }
        // Keep the opened entry's other annotations, not its ref name.
        if let Some(a) = self.base.annotations() {
            let mut a = a.clone();
            a.remove(REF_NAME);
            if !a.is_empty() {
                desc.set_annotations(Some(a));
            }
        }
        self.layout.set_tag(tag, &desc)?;
        Ok(doc)
    }

    /// The layout being edited.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        check_rfc3339(&rfc3339(1_700_000_000)).unwrap();
        check_rfc3339("2024-01-02T03:04:05.123+02:00").unwrap();
        assert!(check_rfc3339("2024-01-02 03:04:05").is_err());
        assert!(check_rfc3339("yesterday").is_err());
    }

    #[test]
    fn changes_edit_known_fields_and_keep_unknown_ones() {
        let mut config = json!({"architecture":"amd64","x-extra":{"b":1},"config":{"Env":["PATH=/bin","A=0"],"Labels":{"old":"1"}}});
        let mut manifest = json!({"schemaVersion":2});
        let ch = ConfigChanges {
            env: vec!["A=1".into(), "B=2".into()],
            labels: vec!["new=2".into()],
            exposed_ports: vec!["80".into(), "53/udp".into()],
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]),
            clear: vec![ClearField::Labels],
            manifest_annotations: vec!["k=v".into()],
            ..Default::default()
        };
        ch.apply(&mut config, &mut manifest).unwrap();
        assert_eq!(config["config"]["Env"], json!(["PATH=/bin", "A=1", "B=2"]));
        assert_eq!(config["config"]["Labels"], json!({"new":"2"}));
        assert_eq!(
            config["config"]["ExposedPorts"],
            json!({"80/tcp":{}, "53/udp":{}})
        );
        assert_eq!(config["config"]["Cmd"], json!(["/bin/sh", "-c", "true"]));
        assert_eq!(config["x-extra"], json!({"b":1}));
        assert_eq!(manifest["annotations"]["k"], "v");
        let bad = ConfigChanges {
            env: vec!["=x".into()],
            ..Default::default()
        };
        assert!(bad.apply(&mut config, &mut manifest).is_err());
        assert!(normalise_port("http").is_err());
    }
}
