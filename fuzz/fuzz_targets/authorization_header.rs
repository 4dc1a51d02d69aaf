//! `Credential::parse` on arbitrary `Authorization` values: never panics, and an accepted token
//! is a non-empty RFC 6750 `b64token` within the length limit, found verbatim in the value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::auth::Credential;

const MAX_TOKEN_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(credential) = Credential::parse(data, MAX_TOKEN_BYTES) else {
        return;
    };
    let token = credential.token.expose();
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
    let body = token.trim_end_matches('=');
    assert!(!body.is_empty());
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    );
    assert!(data.ends_with(token.as_bytes()));
});
