//! Pull an image into a local OCI layout, then unpack it into a directory (rootless: ownership is
//! recorded, not applied, so it runs without root).
//!
//! ```sh
//! cargo run --example pull_and_unpack -- docker://localhost:5000/hello:v1 /tmp/layout /tmp/rootfs
//! ```

use std::path::Path;
use std::process::ExitCode;

use hoist::{CopyOptions, OpenOptions, TransportRef, UnpackOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, layout, dir] = args.as_slice() else {
        eprintln!("usage: pull_and_unpack SOURCE-REF LAYOUT-DIR ROOTFS-DIR");
        eprintln!("  e.g. pull_and_unpack oci:testdata/hello:latest /tmp/layout /tmp/rootfs");
        return ExitCode::from(2);
    };
    match run(source, layout, Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(source: &str, layout: &str, dir: &Path) -> hoist::Result<()> {
    let opts = OpenOptions::default();
    // 1. Pull: copy the image (every blob verified as it streams) into a local layout.
    let local: TransportRef = format!("oci:{layout}:pulled").parse()?;
    let src = hoist::open_source(&source.parse()?, &opts)?;
    let dst = hoist::open_destination(&local, &opts)?;
    let copied = hoist::copy(src.as_ref(), dst.as_ref(), &CopyOptions::default())?;
    println!("pulled {} into {local}", copied.digest);

    // 2. Unpack the local copy: layers applied in order, each verified against its diff_id.
    let src = hoist::open_source(&local, &opts)?;
    let mut unpack = UnpackOptions::default();
    unpack.apply.rootless = true;
    let report = hoist::unpack(src.as_ref(), dir, &unpack)?;
    println!(
        "unpacked {} layer(s), {} entries, into {}",
        report.layers,
        report.entries,
        report.rootfs.display()
    );
    Ok(())
}
