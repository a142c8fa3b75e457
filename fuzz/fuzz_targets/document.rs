//! Fuzzes manifest, index and config parsing: never panics, and every descriptor of a document that
//! parses has a digest hoist accepts, except an index entry in an unregistered algorithm (that entry
//! is unusable, not the index, as skopeo treats it).
#![no_main]

use hoist::document::{Document, Parsed, parse_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = Document::detect(data.to_vec()) {
        assert_eq!(doc.bytes(), data);
        match doc.parse() {
            Ok(Parsed::Manifest(m)) => {
                hoist::descriptor::digest_of(m.config()).expect("validated by parse");
                for l in m.layers() {
                    hoist::descriptor::digest_of(l).expect("validated by parse");
                }
            }
            Ok(Parsed::Index(i)) => {
                for m in i.manifests() {
                    if hoist::descriptor::digest_of(m).is_err() {
                        assert!(
                            hoist::fuzzing::unregistered_algorithm(m.digest().as_ref()),
                            "an entry with a malformed digest was accepted"
                        );
                    }
                }
            }
            Err(_) => {}
        }
    }
    let _ = parse_config(data, &hoist::Digest::sha256(data));
});
