//! A tokio application calling hoist. hoist's API is blocking, so async code hands each call to
//! `tokio::task::spawn_blocking` (or a thread of its own) and awaits it; several copies can run at
//! once this way. (A call made directly on an async worker also works, it does not panic, but it
//! blocks that worker until it is done.)
//!
//! ```sh
//! cargo run --example from_async -- oci:testdata/hello:latest oci:/tmp/async-copy:v1
//! ```

use std::process::ExitCode;

use hoist::{CopyOptions, CopyReport, OpenOptions};

/// Copies `source` to `dest` on tokio's blocking pool.
async fn copy(source: String, dest: String) -> hoist::Result<CopyReport> {
    tokio::task::spawn_blocking(move || {
        let opts = OpenOptions::default();
        let src = hoist::open_source(&source.parse()?, &opts)?;
        let dst = hoist::open_destination(&dest.parse()?, &opts)?;
        hoist::copy(src.as_ref(), dst.as_ref(), &CopyOptions::default())
    })
    .await
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, dest] = args.as_slice() else {
        eprintln!("usage: from_async SOURCE-REF DEST-REF");
        eprintln!("  e.g. from_async oci:testdata/hello:latest oci:/tmp/async-copy:v1");
        return ExitCode::from(2);
    };
    // What #[tokio::main] builds.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(copy(source.clone(), dest.clone())) {
        Ok(report) => {
            println!("copied {} to {dest}", report.digest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
