//! The limits of reading an image's layers into a tree (`unpack`, `export`): one set of flags, so the
//! two verbs cannot disagree on a bound or its spelling.

use anyhow::{Context, Result};
use hoist::{Limits, Source};

/// `--max-size`, `--max-layer-size`, `--max-entries`, `--max-path-length`,
/// `--max-compression-ratio`.
#[derive(clap::Args, Debug)]
pub struct ApplyLimitArgs {
    /// Most bytes of file content in total (K, M, G, T suffixes).
    #[arg(long, value_parser = super::parse_size, default_value = "64G")]
    max_size: u64,
    /// Most uncompressed bytes in one layer.
    #[arg(long, value_parser = super::parse_size, default_value = "64G")]
    max_layer_size: u64,
    /// Most entries in one layer.
    #[arg(long, default_value_t = 10_000_000)]
    max_entries: u64,
    /// Longest path in a layer, in bytes.
    #[arg(long, default_value_t = 4096)]
    max_path_length: usize,
    /// Largest ratio of uncompressed to compressed bytes in a layer (past its first 64 MiB).
    #[arg(long, default_value_t = 1000)]
    max_compression_ratio: u64,
}

impl ApplyLimitArgs {
    /// The global limits with these flags applied.
    pub fn limits(&self) -> Limits {
        let mut limits = super::limits();
        limits.max_unpack_size = self.max_size;
        limits.max_layer_size = self.max_layer_size;
        limits.max_entries = self.max_entries;
        limits.max_path_length = self.max_path_length;
        limits.max_compression_ratio = self.max_compression_ratio;
        limits
    }

    /// Opens the image `image` with these limits (and the registry flags); returns them too.
    pub fn open(
        &self,
        image: &str,
        registry: &super::registry_args::RegistryArgs,
    ) -> Result<(Box<dyn Source>, Limits)> {
        let limits = self.limits();
        let open = registry
            .apply(super::open_options())
            .with_limits(limits.clone());
        let source = hoist::open_source(&super::parse_ref(image)?, &open)
            .with_context(|| format!("opening {image}"))?;
        Ok((source, limits))
    }
}
