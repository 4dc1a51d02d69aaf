use super::*;
use serde_json::json;

const GOLDEN_PROOF: &str = concat!(
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNo",
    "UklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERW",
    "clUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19",
    ".",
    "eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxl",
    "Lm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0Ji",
    "MHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9",
    ".",
    "2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
);
const GOLDEN_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
const GOLDEN_IAT: i64 = 1_562_262_618;

fn settings() -> DpopSettings {
    DpopSettings {
        nonce: NonceMode::None,
        algs: Alg::DEFAULT_ALLOWED.to_vec(),
        max_age: Duration::from_secs(60),
        clock_skew: Duration::from_secs(5),
        max_proof_bytes: 8192,
        max_jti_bytes: 256,
    }
}

fn path(p: &str) -> NormalizedPath {
    NormalizedPath::parse(p).unwrap()
}

struct Req {
    method: &'static str,
    origin: &'static str,
    path: NormalizedPath,
    token: String,
    now: i64,
}

impl Req {
    fn golden() -> Self {
        Req {
            method: "GET",
            origin: "https://resource.example.org",
            path: path("/protectedresource"),
            token: GOLDEN_TOKEN.into(),
            now: GOLDEN_IAT,
        }
    }
    fn local(token: &str, now: i64) -> Self {
        Req {
            method: "GET",
            origin: "https://api.example.com",
            path: path("/orders/1"),
            token: token.into(),
            now,
        }
    }
    fn target(&self) -> ProofTarget<'_> {
        ProofTarget {
            method: self.method,
            origin: self.origin,
            path: &self.path,
            access_token: &self.token,
            now: self.now,
        }
    }
}

#[test]
fn rfc9449_figure_13_proof_is_accepted_with_its_thumbprint() {
    let v = Verifier::new(settings());
    let proof = v.verify(GOLDEN_PROOF, &Req::golden().target()).unwrap();
    assert_eq!(proof.jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
}

#[test]
fn golden_proof_is_rejected_an_hour_later_and_on_replay() {
    let v = Verifier::new(settings());
    let mut late = Req::golden();
    late.now += 3600;
    assert_eq!(
        v.verify(GOLDEN_PROOF, &late.target()).unwrap_err(),
        ProofError::Time
    );
    assert!(v.verify(GOLDEN_PROOF, &Req::golden().target()).is_ok());
    assert_eq!(
        v.verify(GOLDEN_PROOF, &Req::golden().target()).unwrap_err(),
        ProofError::Replay
    );
}

#[test]
fn golden_proof_with_any_field_changed_is_rejected() {
    let v = Verifier::new(settings());
    let mut other_token = Req::golden();
    other_token.token.push('x');
    assert_eq!(
        v.verify(GOLDEN_PROOF, &other_token.target()).unwrap_err(),
        ProofError::TokenHash
    );
    let mut post = Req::golden();
    post.method = "POST";
    assert_eq!(
        v.verify(GOLDEN_PROOF, &post.target()).unwrap_err(),
        ProofError::Method
    );
    let mut elsewhere = Req::golden();
    elsewhere.path = path("/admin");
    assert_eq!(
        v.verify(GOLDEN_PROOF, &elsewhere.target()).unwrap_err(),
        ProofError::Url
    );
    // Flip one character of the signature.
    let tampered = GOLDEN_PROOF.replace("2oW9RP35", "2oW9RP36");
    assert_eq!(
        v.verify(&tampered, &Req::golden().target()).unwrap_err(),
        ProofError::Signature
    );
}

fn now() -> i64 {
    1_800_000_000
}

#[test]
fn every_allowed_algorithm_verifies() {
    let v = Verifier::new(DpopSettings {
        algs: vec![
            Alg::ES256,
            Alg::ES384,
            Alg::ES512,
            Alg::RS256,
            Alg::PS256,
            Alg::EdDSA,
        ],
        ..settings()
    });
    for alg in [
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::RS256,
        Alg::PS256,
        Alg::EdDSA,
    ] {
        let signer = ProofSigner::generate(alg).unwrap();
        let proof = signer.sign(&ProofClaims::new(
            "GET",
            "https://api.example.com/orders/1",
            Some("tok"),
            now(),
        ));
        let verified = v
            .verify(&proof, &Req::local("tok", now()).target())
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(verified.jkt, signer.thumbprint(), "{alg:?}");
    }
}

#[test]
fn hostile_proofs_are_rejected() {
    let v = Verifier::new(settings());
    let signer = ProofSigner::generate(Alg::ES256).unwrap();
    let other = ProofSigner::generate(Alg::ES256).unwrap();
    let good = || {
        ProofClaims::new(
            "GET",
            "https://api.example.com/orders/1",
            Some("tok"),
            now(),
        )
    };
    let req = Req::local("tok", now());
    let check = |proof: String| v.verify(&proof, &req.target()).unwrap_err();

    let header =
        |typ: &str, alg: &str, jwk: serde_json::Value| json!({"typ": typ, "alg": alg, "jwk": jwk});
    assert_eq!(
        check(signer.sign_with_header(&header("JWT", "ES256", signer.jwk().clone()), &good())),
        ProofError::Type
    );
    assert_eq!(
        check(signer.sign_with_header(&header("dpop+jwt", "none", signer.jwk().clone()), &good())),
        ProofError::Algorithm
    );
    assert_eq!(
        check(signer.sign_with_header(&header("dpop+jwt", "HS256", signer.jwk().clone()), &good())),
        ProofError::Algorithm
    );
    // Signed by one key, carrying another's public key.
    assert_eq!(
        check(signer.sign_with_header(&header("dpop+jwt", "ES256", other.jwk().clone()), &good())),
        ProofError::Signature
    );
    let mut private = signer.jwk().clone();
    private["d"] = json!("AAAA");
    assert_eq!(
        check(signer.sign_with_header(&header("dpop+jwt", "ES256", private), &good())),
        ProofError::Key(KeyError::Private)
    );
    assert_eq!(
        check(signer.sign_with_header(&header("dpop+jwt", "ES384", signer.jwk().clone()), &good())),
        ProofError::Key(KeyError::WrongType)
    );

    let mut c = good();
    c.htm = Some("DELETE".into());
    assert_eq!(check(signer.sign(&c)), ProofError::Method);
    let mut c = good();
    c.htu = Some("https://other.example/orders/1".into());
    assert_eq!(check(signer.sign(&c)), ProofError::Url);
    let mut c = good();
    c.ath_token = None;
    assert_eq!(check(signer.sign(&c)), ProofError::MissingClaim);
    let mut c = good();
    c.ath_token = Some("other".into());
    assert_eq!(check(signer.sign(&c)), ProofError::TokenHash);
    let mut c = good();
    c.iat = Some(now() - 3600);
    assert_eq!(check(signer.sign(&c)), ProofError::Time);
    let mut c = good();
    c.iat = Some(now() + 3600);
    assert_eq!(check(signer.sign(&c)), ProofError::Time);
    let mut c = good();
    c.iat = None;
    assert_eq!(check(signer.sign(&c)), ProofError::MissingClaim);
    let mut c = good();
    c.jti = Some("j".repeat(300));
    assert_eq!(check(signer.sign(&c)), ProofError::Malformed);

    // Payload swapped after signing.
    let proof = signer.sign(&good());
    let parts: Vec<&str> = proof.split('.').collect();
    let mut c = good();
    c.htm = Some("POST".into());
    let forged_payload = signer.sign(&c);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        forged_payload.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(check(forged), ProofError::Signature);

    for garbage in [
        "",
        "a.b",
        "a.b.c.d",
        "a.b.c",
        "....",
        &format!("{proof},{proof}"),
        &"x".repeat(9000),
    ] {
        assert!(v.verify(garbage, &req.target()).is_err(), "{garbage:.20}");
    }
}

#[test]
fn a_forged_proof_does_not_burn_the_jti() {
    let v = Verifier::new(settings());
    let signer = ProofSigner::generate(Alg::ES256).unwrap();
    let mut claims = ProofClaims::new(
        "GET",
        "https://api.example.com/orders/1",
        Some("tok"),
        now(),
    );
    claims.jti = Some("fixed".into());
    claims.htm = Some("POST".into());
    let req = Req::local("tok", now());
    assert_eq!(
        v.verify(&signer.sign(&claims), &req.target()).unwrap_err(),
        ProofError::Method
    );
    claims.htm = Some("GET".into());
    assert!(v.verify(&signer.sign(&claims), &req.target()).is_ok());
}

#[test]
fn htu_comparison_normalizes_scheme_host_port_and_ignores_query() {
    let p = path("/x");
    assert!(htu_matches(
        "https://API.example.com:443/x?y=1",
        "https://api.example.com",
        &p
    ));
    assert!(htu_matches(
        "HTTPS://api.example.com/x#frag",
        "https://api.example.com",
        &p
    ));
    assert!(htu_matches(
        "https://api.example.com/./x",
        "https://api.example.com",
        &p
    ));
    assert!(!htu_matches(
        "http://api.example.com/x",
        "https://api.example.com",
        &p
    ));
    assert!(!htu_matches(
        "https://api.example.com:8443/x",
        "https://api.example.com",
        &p
    ));
    assert!(!htu_matches(
        "https://api.example.com/X",
        "https://api.example.com",
        &p
    ));
    assert!(!htu_matches(
        "https://user@api.example.com/x",
        "https://api.example.com",
        &p
    ));
    assert!(!htu_matches("/x", "https://api.example.com", &p));
    assert_eq!(
        canonical_origin("http", "h:80").as_deref(),
        Some("http://h")
    );
}
