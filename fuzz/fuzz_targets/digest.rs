//! Fuzzes digest parsing: never panics; whatever parses is lowercase hex of the algorithm's length (so it
//! is always a safe file name) and prints back to the input.
#![no_main]

use hoist::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(text) {
        assert_eq!(d.to_string(), text);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert!(
            d.hex()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
});
