//! Build an image from nothing: an empty image for the host's platform, one layer holding a
//! directory (placed under a path in the image, owned by root, with fixed times so the same tree
//! gives the same digest), a config edit, written to any destination.
//!
//! ```sh
//! cargo run --example image_from_dir -- ./site /srv/www oci:/tmp/built:v1
//! ```

use std::path::Path;
use std::process::ExitCode;

use hoist::config_edit::ConfigChanges;
use hoist::diff::{LayerOptions, MtimePolicy};
use hoist::{CopyOptions, ImageBuilder, OpenOptions, Platform};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, at, dest] = args.as_slice() else {
        eprintln!("usage: image_from_dir DIR PATH-IN-IMAGE DEST-REF");
        eprintln!("  e.g. image_from_dir ./site /srv/www oci:/tmp/built:v1");
        return ExitCode::from(2);
    };
    match build(Path::new(dir), Path::new(at), dest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build(dir: &Path, at: &Path, dest: &str) -> hoist::Result<()> {
    let mut builder = ImageBuilder::empty(&Platform::host())?;
    // Reproducible: every entry owned by root, every time set to the same instant.
    let mut layer = LayerOptions::default();
    layer.uid = Some(0);
    layer.gid = Some(0);
    layer.mtime = MtimePolicy::Fixed(1_700_000_000);
    let blob = builder.add_dir(dir, Some(at), &layer)?;
    println!("layer {} ({} bytes)", blob.digest, blob.size);

    let mut changes = ConfigChanges::default();
    changes.working_dir = Some(at.display().to_string());
    changes.cmd = Some(vec!["/bin/sh".into()]);
    builder.edit_config(&changes)?;

    let dst = hoist::open_destination(&dest.parse()?, &OpenOptions::default())?;
    let report = builder.write(dst.as_ref(), &CopyOptions::default())?;
    println!("wrote {} to {}", report.digest, dst.name());
    Ok(())
}
