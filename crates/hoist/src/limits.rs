//! Every size, depth and count limit hoist enforces, in one struct with safe defaults.
//!
//! Each field names the CLI option that raises it, so an exceeded limit can say how to get past it.

/// Limits applied while reading images. All are on by default; raise them for unusual images.
///
/// ```no_run
/// use hoist::Limits;
/// let mut limits = Limits::default();
/// limits.max_document_size = 1 << 20;
/// let opts = hoist::OpenOptions::default().with_limits(limits);
/// let src = hoist::open_source(&"oci:/tmp/layout:v1".parse()?, &opts)?;
/// # let _ = src;
/// # Ok::<(), hoist::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest manifest, index or config read into memory (`--max-manifest-size`, default 4 MiB).
    pub max_document_size: u64,
    /// Deepest nesting of indexes followed (`--max-index-depth`, default 8).
    pub max_index_depth: usize,
    /// Largest uncompressed size of one layer (`--max-layer-size`, default 64 GiB).
    pub max_layer_size: u64,
    /// Largest total bytes written by one unpack (`--max-size`, default 64 GiB).
    pub max_unpack_size: u64,
    /// Most tar entries in one layer (`--max-entries`, default 10 million).
    pub max_entries: u64,
    /// Longest path in a layer, in bytes (`--max-path-length`, default 4096).
    pub max_path_length: usize,
    /// Largest ratio of uncompressed to compressed layer bytes, checked past the first 64 MiB
    /// (`--max-compression-ratio`, default 1000).
    pub max_compression_ratio: u64,
    /// Largest registry error or token response body (`--max-response-size`, default 1 MiB).
    pub max_response_size: u64,
    /// Most pages of a registry's tag list followed (`--max-tag-pages`, default 10000).
    pub max_tag_pages: usize,
    /// Most tags read from a registry's tag list (`--max-tags`, default 1 million).
    pub max_tags: usize,
    /// Most referrers (OCI 1.1 subjects: signatures, SBOMs, attestations) listed for one manifest, and
    /// most copied by one `copy --referrers` (`--max-referrers`, default 1000).
    pub max_referrers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_size: 4 << 20,
            max_index_depth: 8,
            max_layer_size: 64 << 30,
            max_unpack_size: 64 << 30,
            max_entries: 10_000_000,
            max_path_length: 4096,
            max_compression_ratio: 1000,
            max_response_size: 1 << 20,
            max_tag_pages: 10_000,
            max_tags: 1_000_000,
            max_referrers: 1000,
        }
    }
}

/// Formats a byte count for messages (`4 MiB`, `123 bytes`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(5), "5 bytes");
        assert_eq!(human_bytes(4 << 20), "4 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 30), "64 GiB");
    }
}
