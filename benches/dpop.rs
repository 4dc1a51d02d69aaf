//! DPoP proof verification per algorithm (RFC 9449 section 4.3, every check including the replay
//! store), next to the bare signature verification it is built on, so the overhead of the JOSE
//! checks, thumbprint and key cache is visible as a ratio.
//!
//! Each proof is single-use (jti), so proofs are signed before the timed loop (`iter_custom`).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokengate::auth::dpop::{Alg, DpopSettings, ProofClaims, ProofSigner, ProofTarget, Verifier};
use tokengate::path::NormalizedPath;

const URL: &str = "https://api.example.com/orders/1";
const TOKEN: &str = "bench-access-token-0123456789";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn settings(alg: Alg) -> DpopSettings {
    DpopSettings {
        nonce: tokengate::auth::dpop::NonceMode::None,
        algs: vec![alg],
        max_age: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(5),
        max_proof_bytes: 16_384,
        max_jti_bytes: 256,
    }
}

fn bench_alg(c: &mut Criterion, alg: Alg) {
    let signer = ProofSigner::generate(alg).expect("key");
    let path = NormalizedPath::parse("/orders/1").expect("path");
    let mut group = c.benchmark_group(format!("dpop/{}", alg.name()));
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    group.bench_function("verify_proof", |b| {
        let verifier = Verifier::new(settings(alg));
        b.iter_custom(|iters| {
            let issued = now();
            let proofs: Vec<String> = (0..iters)
                .map(|_| signer.sign(&ProofClaims::new("GET", URL, Some(TOKEN), issued)))
                .collect();
            let start = Instant::now();
            for proof in &proofs {
                let target = ProofTarget {
                    method: "GET",
                    origin: "https://api.example.com",
                    path: &path,
                    access_token: TOKEN,
                    now: issued,
                };
                black_box(verifier.verify(black_box(proof), &target).expect("valid"));
            }
            start.elapsed()
        });
    });
    // Baseline: the same proof's signature checked with a key parsed once, nothing else.
    let proof = signer.sign(&ProofClaims::new("GET", URL, Some(TOKEN), now()));
    let (input, signature) = proof.rsplit_once('.').expect("jws");
    let signature = base64_decode(signature);
    let key = signer.verification_key().expect("key");
    group.bench_function("signature_only_baseline", |b| {
        b.iter(|| {
            key.verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .expect("verifies")
        })
    });
    group.finish();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64")
}

fn dpop(c: &mut Criterion) {
    for alg in [Alg::ES256, Alg::ES384, Alg::PS256, Alg::RS256, Alg::EdDSA] {
        bench_alg(c, alg);
    }
}

criterion_group!(benches, dpop);
criterion_main!(benches);
