//! `hoist`: the command line over the hoist library. Parses arguments (clap derive) and dispatches to
//! one module per verb under `commands/`; no logic an embedder would want lives here.
//!
//! Exit codes: 0 success, 1 failure (including verification problems), 2 usage error or an image
//! that does not exist ([`output::exit_code`]).

mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// hoist: copy, inspect, verify and unpack OCI and Docker images.
#[derive(Parser, Debug)]
#[command(name = "hoist", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  hoist inspect oci:./layout:latest\n  hoist copy oci:./a:v1 oci:./b:v1\n  hoist verify --all oci:./layout"
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(flatten)]
    limits: commands::LimitArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show an image's metadata, as `skopeo inspect` does.
    Inspect(commands::inspect::Args),
    /// Check every blob's size and digest, every document, and every layer's diff_id.
    Verify(commands::verify::Args),
    /// Write a cosign-format key pair (encrypted private key, public key) for `sign`.
    GenerateKey(commands::sign::GenerateKeyArgs),
    /// Sign an image (cosign-compatible, stored as its `sha256-<hex>.sig` tag).
    Sign(commands::sign::SignArgs),
    /// List an image's referrers (signatures, SBOMs, attestations) as a tree, as `oras discover` does.
    Referrers(commands::referrers::Args),
    /// Attach an artifact (files) to an image as an OCI 1.1 referrer, as `oras attach` does.
    Attach(commands::attach::Args),
    /// Copy an image between transports, verifying every blob as it streams.
    Copy(Box<commands::copy::Args>),
    /// Copy many images (a repository's tags, a YAML list, a directory) as `skopeo sync` does.
    Sync(Box<commands::sync::Args>),
    /// List the tags of a layout or archive.
    #[command(alias = "ls")]
    Tags(commands::tags::Args),
    /// List the tags of a registry repository (with pagination), as `skopeo list-tags` does.
    #[cfg(feature = "registry")]
    ListTags(commands::list_tags::Args),
    /// List a registry's repositories (with pagination).
    #[cfg(feature = "registry")]
    Catalog(commands::catalog::Args),
    /// Check credentials against a registry and store them in the auth file.
    #[cfg(feature = "registry")]
    Login(commands::login::Args),
    /// Remove a registry's credentials from the auth file.
    #[cfg(feature = "registry")]
    Logout(commands::logout::Args),
    /// Delete an image's manifest (and so every tag on it), or one tag, from a registry or layout.
    Delete(commands::delete::Args),
    /// Give an image more tags without pulling it (registry or layout).
    Tag(commands::tag::Args),
    /// Print the digest of a manifest file, as `skopeo manifest-digest` does.
    ManifestDigest(commands::manifest_digest::Args),
    /// Get or put one blob by digest (registry or layout), verified as it streams.
    Blob(commands::blob::Args),
    /// Remove blobs of a layout that no tag or index entry reaches, stray files and dead temp files.
    Gc(commands::gc::Args),
    /// Write the changes between two directories as a layer (a file, or appended to an image).
    Diff(Box<commands::diff::Args>),
    /// Write an image with no layers (config for --platform), as `umoci new` does.
    New(commands::build::NewArgs),
    /// Add layers (directories, tarballs, whiteouts) onto a base image, as `crane append` does.
    Append(Box<commands::build::AppendArgs>),
    /// Squash an image's layers into one (whiteouts applied), as `crane flatten` does.
    Flatten(Box<commands::build::FlattenArgs>),
    /// Move an image's own layers from an old base image onto a new one, as `crane rebase` does.
    Rebase(Box<commands::build::RebaseArgs>),
    /// Make or edit a multi-platform index: create, add, remove.
    Index(Box<commands::index::Args>),
    /// Edit an image's config (env, entrypoint, cmd, labels, ...) as `umoci config` does.
    Config(Box<commands::config::Args>),
    /// Write an image's filesystem as one tar stream (to a file or stdout), as `crane export` does.
    Export(Box<commands::export::Args>),
    /// Unpack an image into a directory or an OCI runtime bundle, as `umoci unpack` does.
    Unpack(Box<commands::unpack::Args>),
    /// Turn the changes to an unpacked tree into a new layer and image, as `umoci repack` does.
    Repack(Box<commands::repack::Args>),
    /// Write the OCI runtime config.json of an image without unpacking it (umoci raw runtime-config).
    RuntimeConfig(Box<commands::runtime_config::Args>),
    /// Remove tags from a layout, as `umoci rm` does (blobs stay until `hoist gc`).
    Untag(commands::untag::Args),
    /// Show an image's history with each entry's layer, as `umoci stat` does.
    Stat(commands::stat::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(commands::completion::Args),
    /// Print or write man pages for hoist and each verb.
    Man(commands::man::Args),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rustls-platform-verifier logs refused certificates at ERROR; hoist reports them once, itself.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default},rustls_platform_verifier=off"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: in a log file or a pipe they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// True when stdout is a pipe whose reading end is closed (`hoist inspect ... | head`, after `head`
/// has read enough): poll reports an error condition on such a pipe and on nothing else.
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLERR != 0
}

/// Ends the process by SIGPIPE, quietly, as other Unix tools do when their reader has gone.
fn die_of_sigpipe() -> ! {
    hoist::durable::die_of_signal(libc::SIGPIPE)
}

/// After a SIGINT/SIGTERM cancelled the verb ([`commands::cancel_token`]): says so on stderr in one
/// line (after the verb's own error, if it failed of something else) and ends the process by that
/// signal, as Unix tools do once they have cleaned up, so that a shell shows status 128+N (130,
/// 143) and a script or service manager stops as it would for an uncaught signal.
fn end_cancelled(sig: i32, result: &anyhow::Result<ExitCode>) -> ! {
    let name = hoist::durable::signal_name(sig);
    match result {
        Err(err) if output::is_cancelled(err) => {
            eprintln!("hoist: cancelled by {name}: stopped before finishing, temp files removed");
        }
        Err(err) => {
            output::print_error(err);
            eprintln!("hoist: {name} received while failing; stopped, temp files removed");
        }
        Ok(_) => eprintln!("hoist: {name} received as the verb finished; it completed"),
    }
    hoist::durable::die_of_signal(sig)
}

/// SIGPIPE stays ignored (Rust's default), so that a registry closing a connection mid-request
/// is an error hoist handles (it retries or starts the upload again) rather than a signal that
/// kills it. A write to a closed stdout then fails with EPIPE instead: the error, or the panic of
/// a `println!`, is turned back into a quiet death by SIGPIPE when stdout's reader is gone.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_closed() {
            die_of_sigpipe();
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // Ctrl-C or a TERM removes the run's temp files (blobs half-written, archive staging) and ends
    // hoist; a verb that takes commands::cancel_token() is cancelled by the first one instead.
    if let Err(e) = hoist::durable::remove_temp_files_on_signals() {
        tracing::warn!("temp files will not be removed on SIGINT/SIGTERM: {e}");
    }
    commands::set_limits(&cli.limits);
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::GenerateKey(a) => commands::sign::run_generate_key(a),
        Command::Sign(a) => commands::sign::run_sign(a),
        Command::Referrers(a) => commands::referrers::run(a),
        Command::Attach(a) => commands::attach::run(a),
        Command::Copy(a) => commands::copy::run(*a),
        Command::Sync(a) => commands::sync::run(*a),
        Command::Tags(a) => commands::tags::run(a),
        Command::Gc(a) => commands::gc::run(a),
        Command::Delete(a) => commands::delete::run(a),
        Command::Tag(a) => commands::tag::run(a),
        Command::ManifestDigest(a) => commands::manifest_digest::run(a),
        Command::Blob(a) => commands::blob::run(a),
        #[cfg(feature = "registry")]
        Command::ListTags(a) => commands::list_tags::run(a),
        #[cfg(feature = "registry")]
        Command::Catalog(a) => commands::catalog::run(a),
        #[cfg(feature = "registry")]
        Command::Login(a) => commands::login::run(a),
        #[cfg(feature = "registry")]
        Command::Logout(a) => commands::logout::run(a),
        Command::Diff(a) => commands::diff::run(*a),
        Command::New(a) => commands::build::run_new(a),
        Command::Append(a) => commands::build::run_append(*a),
        Command::Flatten(a) => commands::build::run_flatten(*a),
        Command::Rebase(a) => commands::build::run_rebase(*a),
        Command::Index(a) => commands::index::run(*a),
        Command::Config(a) => commands::config::run(*a),
        Command::Export(a) => commands::export::run(*a),
        Command::Unpack(a) => commands::unpack::run(*a),
        Command::Repack(a) => commands::repack::run(*a),
        Command::RuntimeConfig(a) => commands::runtime_config::run(*a),
        Command::Untag(a) => commands::untag::run(a),
        Command::Stat(a) => commands::stat::run(a),
        Command::Completion(a) => commands::completion::run(a, Cli::command()),
        Command::Man(a) => commands::man::run(a, Cli::command()),
    };
    if let Some(sig) = hoist::durable::cancelled_by_signal() {
        end_cancelled(sig, &result);
    }
    match result {
        Ok(code) => code,
        Err(_) if stdout_closed() => die_of_sigpipe(),
        Err(err) => {
            output::print_error(&err);
            output::exit_code(&err)
        }
    }
}
