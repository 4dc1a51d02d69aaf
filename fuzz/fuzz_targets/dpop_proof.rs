//! The DPoP proof verifier on arbitrary proof strings: never panics, and never accepts one
//! (the fuzzer cannot sign, so every input must be refused).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use tokengate::auth::dpop::{Alg, DpopSettings, NonceMode, ProofTarget, Verifier};
use tokengate::path::NormalizedPath;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        Verifier::new(DpopSettings {
            nonce: NonceMode::None,
            algs: vec![
                Alg::ES256,
                Alg::ES384,
                Alg::ES512,
                Alg::RS256,
                Alg::PS256,
                Alg::EdDSA,
            ],
            max_age: Duration::from_secs(60),
            clock_skew: Duration::from_secs(5),
            max_proof_bytes: 8192,
            max_jti_bytes: 256,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = NormalizedPath::parse("/orders/1") else {
        return;
    };
    let target = ProofTarget {
        method: "GET",
        origin: "https://api.example.com",
        path: &path,
        access_token: "token",
        now: 1_700_000_000,
    };
    assert!(verifier().verify(proof, &target).is_err());
});
