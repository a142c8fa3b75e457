//! Garbage collection: blobs that no chain of descriptors from `index.json` reaches are removed.

use std::collections::HashSet;
use std::fs;

use crate::descriptor::{Descriptor, digest_of};
use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::media_type::{self, Kind};

use super::Layout;

/// What a garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Blobs kept.
    pub kept: usize,
    /// Leftover temp files removed.
    pub temp_files_removed: usize,
}

/// Every blob digest reachable from `index.json` (documents that cannot be read are kept, not walked).
pub fn reachable(layout: &Layout) -> Result<HashSet<Digest>> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Descriptor> = layout.index()?.manifests().clone();
    while let Some(desc) = stack.pop() {
        let digest = digest_of(&desc)?;
        if !seen.insert(digest) {
            continue;
        }
        match media_type::kind(desc.media_type().as_ref()) {
            Kind::Manifest { .. } => {
                if let Ok(m) = layout.read_document(&desc).and_then(|d| d.manifest()) {
                    stack.push(m.config().clone());
                    stack.extend(m.layers().iter().cloned());
                    stack.extend(m.subject().iter().cloned());
                }
            }
            Kind::Index { .. } => {
                if let Ok(i) = layout.read_document(&desc).and_then(|d| d.index()) {
                    stack.extend(i.manifests().iter().cloned());
                    stack.extend(i.subject().iter().cloned());
                }
            }
            _ => {}
        }
    }
    Ok(seen)
}

pub(super) fn collect(layout: &Layout) -> Result<GcReport> {
    let keep = reachable(layout)?;
    let mut report = GcReport::default();
    let blobs = layout.root().join("blobs");
    for alg in [
        crate::digest::Algorithm::Sha256,
        crate::digest::Algorithm::Sha512,
    ] {
        let dir = blobs.join(alg.as_str());
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::Error::io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(digest) = Digest::parse(&format!("{}:{name}", alg.as_str())) else {
                continue;
            };
            if keep.contains(&digest) {
                report.kept += 1;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(entry.path()).ctx(|| format!("removing {}", entry.path().display()))?;
            report.bytes_freed += size;
            report.removed.push(digest);
        }
    }
    // Temp files that a live writer holds (a repack writing its layer without the layout lock) are
    // locked and left alone.
    report.temp_files_removed += crate::durable::remove_stale(layout.root())?;
    report.removed.sort();
    Ok(report)
}
