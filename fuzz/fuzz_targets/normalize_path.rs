//! `NormalizedPath::parse` on arbitrary input: never panics, and whatever it accepts is
//! canonical (absolute, no dot or empty segments, no encoded separator, NUL or `;`) and its own
//! normal form.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::path::NormalizedPath;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = NormalizedPath::parse(input) else {
        return;
    };
    let out = path.as_str();
    let lower = out.to_ascii_lowercase();
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    for forbidden in [
        "//", "/./", "/../", "\\", ";", "#", "?", "%2f", "%5c", "%00",
    ] {
        assert!(!lower.contains(forbidden), "{input:?} -> {out:?}");
    }
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{input:?} -> {out:?}"
    );
    let again = NormalizedPath::parse(out).expect("a normalized path parses");
    assert_eq!(again.as_str(), out, "not idempotent for {input:?}");
});
