//! Copy an image between any two transports, printing a line per blob as the copy goes.
//!
//! ```sh
//! cargo run --example copy_with_progress -- oci:testdata/hello:latest oci-archive:/tmp/hello.tar
//! ```

use std::process::ExitCode;

use hoist::{CopyOptions, Event, OpenOptions, Sink};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, dest] = args.as_slice() else {
        eprintln!("usage: copy_with_progress SOURCE-REF DEST-REF");
        eprintln!("  e.g. copy_with_progress oci:testdata/hello:latest oci:/tmp/copy:v1");
        return ExitCode::from(2);
    };
    match run(source, dest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(source: &str, dest: &str) -> hoist::Result<()> {
    let opts = OpenOptions::default();
    let src = hoist::open_source(&source.parse()?, &opts)?;
    let dst = hoist::open_destination(&dest.parse()?, &opts)?;
    // Events arrive from the copy's worker threads: the callback must be Send + Sync and cheap.
    let progress = Sink::new(|event| match event {
        Event::Plan { blobs, bytes } => println!("plan: {blobs} blob(s), {bytes} bytes"),
        Event::BlobDone { digest, size, how } => println!("{how:?}: {digest} ({size} bytes)"),
        _ => {}
    });
    let mut copy = CopyOptions::default();
    copy.progress = Some(progress);
    let report = hoist::copy(src.as_ref(), dst.as_ref(), &copy)?;
    println!(
        "copied {} ({}): {} blob(s) streamed, {} linked, {} already there",
        report.digest,
        report.media_type,
        report.blobs_copied,
        report.blobs_linked,
        report.blobs_skipped
    );
    Ok(())
}
