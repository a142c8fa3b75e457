//! List the tags of an OCI image layout and describe the image each one names.
//!
//! ```sh
//! cargo run --example inspect_layout -- testdata/hello
//! ```

use std::process::ExitCode;

use hoist::OpenOptions;
use hoist::layout::Layout;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: inspect_layout LAYOUT-DIR");
        eprintln!("  e.g. inspect_layout testdata/hello");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str) -> hoist::Result<()> {
    let layout = Layout::open(path)?;
    for (tag, desc) in layout.tags()? {
        println!("tag {tag}: {} {}", desc.media_type(), desc.digest());
        let src = hoist::open_source(
            &format!("oci:{path}:{tag}").parse()?,
            &OpenOptions::default(),
        )?;
        // From an index, resolve picks the host's platform (pass Some(&platform) for another).
        let image = hoist::image::resolve(src.as_ref(), None)?;
        let inspection = hoist::inspect(&image, src.root()?.digest(), None, vec![tag.clone()]);
        print!("{}", hoist::inspect::to_text(&inspection));
    }
    Ok(())
}
