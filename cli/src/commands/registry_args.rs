//! Registry flags with skopeo's names, shared by the verbs that talk to registries, and their
//! translation into [`OpenOptions`]. Verbs flatten [`CopyRegistryArgs`] (two ends) or
//! [`RegistryArgs`] (one image) into their own arguments.

use std::path::PathBuf;
use std::time::Duration;

use hoist::transport::{Credentials, OpenOptions};

/// Parses `--creds USER[:PASSWORD]` (the password never appears in `Debug` output).
pub fn parse_creds(text: &str) -> Result<Credentials, String> {
    Credentials::parse(text).map_err(|e| e.to_string())
}

/// clap's parser of `--creds`: [`parse_creds`], with an error that does not echo the value (clap's
/// own message for a refused value quotes it, password and all).
#[derive(Clone, Copy, Debug)]
pub struct CredsParser;

impl clap::builder::TypedValueParser for CredsParser {
    type Value = Credentials;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Credentials, clap::Error> {
        let name = arg.and_then(clap::Arg::get_long).unwrap_or("creds");
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --{name}: {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("not valid UTF-8".into()))?;
        parse_creds(text).map_err(refuse)
    }
}

/// Parses `--registry-timeout` seconds (fractions allowed, more than zero).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 1e9) {
        return Err(format!("{text:?}: the timeout must be more than 0 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Registry flags every registry verb shares, whichever end they apply to.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// The auth file to read credentials from (default: $REGISTRY_AUTH_FILE, else
    /// $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json,
    /// ~/.docker/config.json, ~/.dockercfg and the credential helpers they name).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
    /// The registries.conf to read (mirrors, locations, blocked and insecure registries) instead of
    /// $CONTAINERS_REGISTRIES_CONF or the default files.
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// Retries on connection errors, 429 and 5xx answers (default 3).
    #[arg(long, value_name = "N")]
    pub retry_times: Option<u32>,
    /// Seconds to wait for a registry to connect, to answer a request, or to send the next bytes of a
    /// body, before the attempt fails as timed out (default 300); a body must also bring at least
    /// 1 KiB a second over each such window.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub registry_timeout: Option<Duration>,
}

/// Registry flags of a verb that reads one image (`inspect`, `verify`, `unpack`, `list-tags`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Verify the registry's TLS certificate; `--tls-verify=false` also allows plain http.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// A directory of extra CA certificates (`*.crt`) to trust.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials for the registry, `USER[:PASSWORD]` (default: from the auth files).
    #[arg(long, value_name = "USER:PASSWORD", value_parser = CredsParser)]
    pub creds: Option<Credentials>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl RegistryArgs {
    /// `base` with these flags applied.
    pub fn apply(&self, mut base: OpenOptions) -> OpenOptions {
        base.tls_verify = self.tls_verify;
        base.cert_dir = self.cert_dir.clone();
        base.creds = self.creds.clone();
        base.authfile = self.connection.authfile.clone();
        base.registries_conf = self.connection.registries_conf.clone();
        base.retry_times = self.connection.retry_times;
        base.timeout = self.connection.registry_timeout;
        base
    }
}

/// Registry flags of `copy`: one set for each end.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CopyRegistryArgs {
    /// Verify the source registry's TLS certificate; `=false` also allows plain http.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub src_tls_verify: Option<bool>,
    /// Verify the destination registry's TLS certificate; `=false` also allows plain http.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dest_tls_verify: Option<bool>,
    /// A directory of extra CA certificates (`*.crt`) for the source registry.
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// A directory of extra CA certificates (`*.crt`) for the destination registry.
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
    /// Credentials for the source registry, `USER[:PASSWORD]`.
    #[arg(long, value_name = "USER:PASSWORD", value_parser = CredsParser)]
    pub src_creds: Option<Credentials>,
    /// Credentials for the destination registry, `USER[:PASSWORD]`.
    #[arg(long, value_name = "USER:PASSWORD", value_parser = CredsParser)]
    pub dest_creds: Option<Credentials>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl CopyRegistryArgs {
    /// Options for opening the source.
    pub fn source(&self, base: OpenOptions) -> OpenOptions {
        let mut o = RegistryArgs {
            tls_verify: self.src_tls_verify,
            cert_dir: self.src_cert_dir.clone(),
            creds: self.src_creds.clone(),
            connection: self.connection.clone(),
        }
        .apply(base);
        o.tls_verify_flag = Some("--src-tls-verify".into());
        o
    }

    /// Options for opening the destination.
    pub fn destination(&self, base: OpenOptions) -> OpenOptions {
        let mut o = RegistryArgs {
            tls_verify: self.dest_tls_verify,
            cert_dir: self.dest_cert_dir.clone(),
            creds: self.dest_creds.clone(),
            connection: self.connection.clone(),
        }
        .apply(base);
        o.tls_verify_flag = Some("--dest-tls-verify".into());
        o
    }
}
