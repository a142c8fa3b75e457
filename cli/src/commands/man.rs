//! `hoist man`: man pages generated from the CLI definition (clap_mangen): `hoist.1` and one
//! `hoist-VERB.1` per verb, printed (the main page) or written to a directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// Arguments of `hoist man`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  hoist man | man -l -\n  hoist man --dir /usr/local/share/man/man1"
)]
pub struct Args {
    /// Write hoist.1 and hoist-VERB.1 for every verb into this directory instead of printing hoist.1.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs `hoist man`.
pub fn run(args: Args, cmd: clap::Command) -> Result<ExitCode> {
    let Some(dir) = args.dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut pages = vec![("hoist".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("hoist-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        hoist::output::write_file(&path, &out)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
