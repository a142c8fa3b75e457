//! Verify every document and blob of an image (sizes, digests, layers' diff_ids) and report every
//! problem found; exits 1 when there is any.
//!
//! ```sh
//! cargo run --example verify_report -- oci:testdata/hello:latest
//! ```

use std::process::ExitCode;

use hoist::{OpenOptions, VerifyOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference] = args.as_slice() else {
        eprintln!("usage: verify_report IMAGE-REF");
        eprintln!("  e.g. verify_report oci:testdata/hello:latest");
        return ExitCode::from(2);
    };
    let opened = reference
        .parse()
        .and_then(|r| hoist::open_source(&r, &OpenOptions::default()));
    let src = match opened {
        Ok(src) => src,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // verify never stops at the first problem: the report lists them all.
    let report = hoist::verify(src.as_ref(), &VerifyOptions::default());
    println!(
        "{}: {} document(s), {} blob(s), {} bytes checked",
        report.source, report.documents, report.blobs, report.bytes
    );
    for p in &report.problems {
        println!("problem: {}: {}", p.subject, p.message);
    }
    if report.is_ok() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s)", report.problems.len());
        ExitCode::FAILURE
    }
}
