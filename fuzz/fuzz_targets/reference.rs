//! Fuzzes transport references and image names: never panics, and what parses prints back to
//! something that parses to the same value.
#![no_main]

use hoist::reference::{ImageName, TransportRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = TransportRef::parse(text) {
        let again = TransportRef::parse(&r.to_string()).expect("a printed reference parses");
        assert_eq!(again, r, "{text:?} -> {r}");
    }
    if let Ok(n) = ImageName::parse(text) {
        let again = ImageName::parse(&n.to_string()).expect("a printed name parses");
        assert_eq!(again, n);
        assert!(!n.repository.contains(".."));
    }
});
