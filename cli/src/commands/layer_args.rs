//! Flags shared by the verbs that write a layer (`diff`, `repack`): compression, reproducibility and
//! the history entry.

use hoist::append::AppendOptions;
use hoist::diff::{LayerOptions, MtimePolicy};
use hoist::media_type::Compression;

/// Layer compression chosen on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressArg {
    /// Plain tar.
    None,
    /// gzip, compressed in parallel blocks (any gzip reader decodes it).
    Gzip,
    /// zstd, multithreaded.
    Zstd,
}

impl From<CompressArg> for Compression {
    fn from(c: CompressArg) -> Self {
        match c {
            CompressArg::None => Compression::None,
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::Zstd => Compression::Zstd,
        }
    }
}

/// How a layer is written and recorded.
#[derive(clap::Args, Debug, Clone)]
pub struct LayerArgs {
    /// Compression (default: gzip; for `diff -o`, from the output's extension).
    #[arg(long, value_enum)]
    pub compress: Option<CompressArg>,
    /// Compression level (gzip 1-9, zstd 1-22).
    #[arg(long)]
    pub level: Option<u32>,
    /// Clamp entry times to this many seconds since the epoch, for reproducible layers.
    #[arg(long, env = "SOURCE_DATE_EPOCH", conflicts_with = "mtime")]
    pub source_date_epoch: Option<i64>,
    /// Give every entry this modification time (seconds since the epoch).
    #[arg(long)]
    pub mtime: Option<i64>,
    /// Write every entry with this owner.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Write every entry with this group.
    #[arg(long)]
    pub gid: Option<u32>,
    /// `created` of the history entry and of the config (RFC 3339; default: the
    /// --source-date-epoch or --mtime time, else now).
    #[arg(long = "history.created", value_parser = parse_created)]
    pub history_created: Option<String>,
    /// `created_by` of the history entry.
    #[arg(long = "history.created_by")]
    pub history_created_by: Option<String>,
    /// `author` of the history entry.
    #[arg(long = "history.author")]
    pub history_author: Option<String>,
    /// `comment` of the history entry.
    #[arg(long = "history.comment", alias = "history-comment")]
    pub history_comment: Option<String>,
    /// Do not add a history entry.
    #[arg(long)]
    pub no_history: bool,
}

impl LayerArgs {
    /// How entry times are written.
    pub fn mtime_policy(&self) -> MtimePolicy {
        match (self.source_date_epoch, self.mtime) {
            (_, Some(t)) => MtimePolicy::Fixed(t),
            (Some(e), None) => MtimePolicy::Clamp(e),
            (None, None) => MtimePolicy::Keep,
        }
    }

    /// The layer options, with `default` compression when none was asked for.
    pub fn layer_options(&self, default: Compression) -> LayerOptions {
        let mut o = LayerOptions::default();
        o.compression = self.compress.map(Into::into).unwrap_or(default);
        o.level = self.level;
        o.mtime = self.mtime_policy();
        o.uid = self.uid;
        o.gid = self.gid;
        o
    }

    /// Options for appending the layer to an image under `tag` (the history entry's time is the epoch
    /// or fixed time when one was given, so reproducible runs give the same config).
    pub fn append_options(&self, tag: Option<String>) -> AppendOptions {
        let created = match self.mtime_policy() {
            _ if self.history_created.is_some() => self.history_created.clone(),
            MtimePolicy::Fixed(t) | MtimePolicy::Clamp(t) => Some(hoist::config_edit::rfc3339(t)),
            MtimePolicy::Keep => None,
        };
        let mut o = AppendOptions::default();
        o.layer = self.layer_options(Compression::Gzip);
        o.tag = tag;
        o.created = created;
        o.created_by = self.history_created_by.clone();
        o.author = self.history_author.clone();
        o.comment = self.history_comment.clone();
        o.no_history = self.no_history;
        o.cancel = super::cancel_token();
        o
    }
}

/// Checks a `--history.created` time is RFC 3339.
fn parse_created(text: &str) -> Result<String, String> {
    hoist::config_edit::check_rfc3339(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}
