//! Property tests for the parsers that read hostile input: the path normalizer, the
//! `Authorization` parser, the DPoP proof verifier and the config loader. None of them may
//! panic on any input; the normalizer's output is canonical and idempotent; the credential
//! parser accepts exactly the RFC 6750 `b64token` shape. Case counts are bounded so that the
//! whole file runs in a few seconds; `fuzz/` has the open-ended versions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::prelude::*;
use std::time::Duration;
use tokengate::auth::dpop::{Alg, DpopSettings, NonceMode, ProofTarget, Verifier};
use tokengate::auth::{Credential, Scheme};
use tokengate::config::Config;
use tokengate::path::NormalizedPath;

// ---------------------------------------------------------------------------------------------
// NormalizedPath

/// Pieces that exercise every rule of the normalizer: dot segments in every spelling, encoded
/// and double-encoded separators in both hex cases, overlong UTF-8, forbidden characters.
fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_~-]{1,6}",
        2 => Just("/".to_owned()),
        2 => Just("..".to_owned()),
        2 => Just(".".to_owned()),
        1 => prop::sample::select(vec![
            "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%00", "%25", "%252e", "%252F", "%255c",
            "%41", "%7e", "%3F", "%3b", "%20", "%c3%a9", "%C0%AE", "%c0%af", "%e0%80%ae", "%ff",
            "%", "%2", "%zz", ";", "\\", "#", "?", "*", "@", ":", "é", "\u{0}", "\r\n", " ",
        ])
        .prop_map(str::to_owned),
    ]
}

fn hostile_path() -> impl Strategy<Value = String> {
    prop::collection::vec(path_piece(), 0..24).prop_map(|pieces| format!("/{}", pieces.concat()))
}

/// Every property a normalized path promises (DESIGN.md 3.1).
fn assert_canonical(input: &str, out: &str) -> Result<(), TestCaseError> {
    let lower = out.to_ascii_lowercase();
    prop_assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    for forbidden in [
        "//", "/./", "/../", "\\", ";", "#", "?", "%2f", "%5c", "%00", "%252e", "%252f", "%255c",
    ] {
        prop_assert!(
            !lower.contains(forbidden),
            "{input:?} -> {out:?} contains {forbidden}"
        );
    }
    prop_assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{input:?} -> {out:?}"
    );
    prop_assert!(out.is_ascii(), "{input:?} -> {out:?}");
    // Escapes are well-formed and upper-case (RFC 3986 6.2.2.1).
    let bytes = out.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            prop_assert!(
                hex.len() == 2 && hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')),
                "{input:?} -> {out:?}"
            );
        }
    }
    // Idempotent: the output is its own normal form.
    let again = NormalizedPath::parse(out);
    prop_assert_eq!(again.as_ref().map(NormalizedPath::as_str), Ok(out));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalized_path_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = NormalizedPath::parse(&s);
        let _ = NormalizedPath::parse(&format!("/{s}"));
    }

    #[test]
    fn normalized_path_output_is_canonical_and_idempotent(input in hostile_path()) {
        if let Ok(path) = NormalizedPath::parse(&input) {
            assert_canonical(&input, path.as_str())?;
        }
    }

    #[test]
    fn normalized_path_output_is_canonical_for_arbitrary_absolute_strings(s in any::<String>()) {
        let input = format!("/{s}");
        if let Ok(path) = NormalizedPath::parse(&input) {
            assert_canonical(&input, path.as_str())?;
        }
    }

    #[test]
    fn plain_paths_are_returned_unchanged(
        segments in prop::collection::vec("[a-zA-Z0-9_~-][a-zA-Z0-9._~-]{0,8}", 0..8),
        trailing in any::<bool>(),
    ) {
        let mut input = format!("/{}", segments.join("/"));
        if trailing && !segments.is_empty() {
            input.push('/');
        }
        let path = NormalizedPath::parse(&input);
        prop_assert_eq!(path.as_ref().map(NormalizedPath::as_str), Ok(input.as_str()));
    }
}

// ---------------------------------------------------------------------------------------------
// Credential

const MAX_TOKEN: usize = 64;

/// An independent statement of the accepted shape: `Bearer`/`DPoP` (any case), one or more
/// spaces, then `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` of at most
/// `MAX_TOKEN` bytes (RFC 6750 2.1, RFC 9449 7.1).
fn reference_parse(value: &[u8]) -> Option<(Scheme, String)> {
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Scheme::Bearer,
        "dpop" => Scheme::Dpop,
        _ => return None,
    };
    let token = rest.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let ok = !body.is_empty()
        && token.len() <= MAX_TOKEN
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c));
    ok.then(|| (scheme, token.to_owned()))
}

fn scheme_spelling() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["bearer", "dpop"]), any::<u64>()).prop_map(|(name, mask)| {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> i & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

fn b64token() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9._~+/-]{1,60}", 0..3usize)
        .prop_map(|(body, pad)| format!("{body}{}", "=".repeat(pad)))
}

fn valid_authorization() -> impl Strategy<Value = (String, String)> {
    (scheme_spelling(), 1..4usize, b64token()).prop_map(|(scheme, spaces, token)| {
        (format!("{scheme}{}{token}", " ".repeat(spaces)), token)
    })
}

/// A valid value with one byte inserted, replaced or removed somewhere.
fn near_miss() -> impl Strategy<Value = Vec<u8>> {
    (
        valid_authorization(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0..3u8,
    )
        .prop_map(|((value, _), at, byte, kind)| {
            let mut bytes = value.into_bytes();
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => bytes[i] = byte,
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => bytes.push(byte),
            }
            bytes
        })
}

fn check_against_reference(value: &[u8]) -> Result<(), TestCaseError> {
    let parsed = Credential::parse(value, MAX_TOKEN)
        .ok()
        .map(|c| (c.scheme, c.token.expose().to_owned()));
    prop_assert_eq!(
        parsed,
        reference_parse(value),
        "{:?}",
        String::from_utf8_lossy(value)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn credential_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Credential::parse(&bytes, MAX_TOKEN);
        let _ = Credential::parse(&bytes, 0);
    }

    #[test]
    fn every_bearer_or_dpop_b64token_parses_to_the_same_token((value, token) in valid_authorization()) {
        let credential = Credential::parse(value.as_bytes(), MAX_TOKEN);
        prop_assert!(credential.is_ok(), "{value:?}: {credential:?}");
        if let Ok(c) = credential {
            prop_assert_eq!(c.token.expose(), token.as_str());
            let expected = if value.to_ascii_lowercase().starts_with("bearer") {
                Scheme::Bearer
            } else {
                Scheme::Dpop
            };
            prop_assert_eq!(c.scheme, expected);
        }
    }

    #[test]
    fn credential_parse_accepts_exactly_the_b64token_shape(value in near_miss()) {
        check_against_reference(&value)?;
    }

    #[test]
    fn credential_parse_agrees_with_the_reference_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        check_against_reference(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------------------
// DPoP verifier

fn verifier() -> Verifier {
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
}

fn verify(proof: &str) -> bool {
    let path = NormalizedPath::parse("/orders/1").expect("path");
    let target = ProofTarget {
        method: "GET",
        origin: "https://api.example.com",
        path: &path,
        access_token: "token",
        now: 1_700_000_000,
    };
    verifier().verify(proof, &target).is_ok()
}

/// A base64url segment: of random bytes, or of JSON that looks like a JWS header or payload
/// (so that the verifier gets past decoding into the key and claim checks).
fn segment() -> impl Strategy<Value = String> {
    let b64_value = prop::collection::vec(any::<u8>(), 0..70).prop_map(|b| B64.encode(b));
    let jwk = (
        prop::sample::select(vec!["EC", "RSA", "OKP", "oct", ""]),
        prop::sample::select(vec!["P-256", "P-384", "P-521", "Ed25519", "X25519", ""]),
        b64_value.clone(),
        b64_value.clone(),
        prop::option::of(b64_value.clone()),
    )
        .prop_map(|(kty, crv, x, y, d)| {
            let mut jwk =
                serde_json::json!({"kty": kty, "crv": crv, "x": x, "y": y, "n": x, "e": "AQAB"});
            if let Some(d) = d {
                jwk["d"] = d.into();
            }
            jwk
        });
    let header = (
        prop::sample::select(vec!["dpop+jwt", "application/dpop+jwt", "JWT", ""]),
        prop::sample::select(vec![
            "ES256", "ES384", "RS256", "PS256", "EdDSA", "none", "HS256",
        ]),
        jwk,
    )
        .prop_map(|(typ, alg, jwk)| {
            serde_json::json!({"typ": typ, "alg": alg, "jwk": jwk}).to_string()
        });
    let claims = (
        any::<i64>(),
        "[ -~]{0,300}",
        prop::sample::select(vec!["GET", "get", "POST"]),
    )
        .prop_map(|(iat, text, htm)| {
            serde_json::json!({
                "jti": text, "htm": htm, "htu": "https://api.example.com/orders/1",
                "iat": iat, "ath": B64.encode(text.as_bytes()),
            })
            .to_string()
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|b| B64.encode(b)),
        header.prop_map(|h| B64.encode(h)),
        claims.prop_map(|c| B64.encode(c)),
        "[A-Za-z0-9_=+/-]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dpop_verifier_never_panics_or_accepts_arbitrary_strings(s in any::<String>()) {
        prop_assert!(!verify(&s));
    }

    #[test]
    fn dpop_verifier_never_panics_or_accepts_arbitrary_segments(
        segments in prop::collection::vec(segment(), 1..5),
    ) {
        prop_assert!(!verify(&segments.join(".")));
    }
}

// ---------------------------------------------------------------------------------------------
// Config

const EXAMPLE: &str = include_str!("../config/tokengate.example.yaml");

/// Every variable set to "x" (which fails `base_url` validation early in compilation).
fn load(text: &str) {
    let _ = Config::from_yaml(text, "fuzz.yaml", |_| Some("x".to_owned()));
}

/// A realistic environment, so that a mutated file gets through to the later compile steps.
fn realistic_env(name: &str) -> Option<String> {
    match name {
        "AUTHLETE_BASE_URL" => Some("https://us.authlete.com".to_owned()),
        "AUTHLETE_SERVICE_ID" => Some("1000000001".to_owned()),
        _ => Some("x".to_owned()),
    }
}

fn load_realistic(text: &str) {
    let _ = Config::from_yaml(text, "fuzz.yaml", realistic_env);
}

/// One edit of the example config: the kinds of damage a hand-edited file suffers.
fn mutated_example() -> impl Strategy<Value = String> {
    let lines: Vec<&'static str> = EXAMPLE.lines().collect();
    let count = lines.len();
    (
        0..7u8,
        0..count,
        0..count,
        prop::sample::select(vec![
            "${",
            "${X",
            "${X:-",
            "}",
            ":",
            "- ",
            "  ",
            "\t",
            "\"",
            "'",
            "#",
            "[",
            "{",
            "&a",
            "*a",
            "!!binary",
            "~",
            "null",
            "-1",
            "99999999999999999999",
            "0.0.0.0/0",
            "/",
            "**",
            "é",
            "\u{0}",
            "\r",
            "---",
            "...",
            "? ",
            "|",
            ">",
        ]),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(kind, a, b, text, at)| {
            let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            match kind {
                0 => {
                    lines.remove(a);
                }
                1 => {
                    let line = lines[a].clone();
                    lines.insert(b, line);
                }
                2 => lines.swap(a, b),
                3 => {
                    let line = &mut lines[a];
                    let i = at.index(line.len() + 1);
                    let i = (0..=i)
                        .rev()
                        .find(|i| line.is_char_boundary(*i))
                        .unwrap_or(0);
                    line.insert_str(i, text);
                }
                4 => {
                    let line = &mut lines[a];
                    if let Some(i) = line.find(|c: char| !c.is_whitespace()) {
                        line.insert(i, ' ');
                    }
                }
                5 => {
                    lines.truncate(a);
                }
                _ => {
                    let line = &mut lines[a];
                    if let Some((key, _)) = line.split_once(": ") {
                        *line = format!("{key}: {text}");
                    }
                }
            }
            lines.join("\n")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn config_from_yaml_never_panics_on_arbitrary_text(s in any::<String>()) {
        load(&s);
    }

    #[test]
    fn config_from_yaml_never_panics_on_mutated_examples(text in mutated_example()) {
        load(&text);
        load_realistic(&text);
    }

    #[test]
    fn config_from_yaml_never_panics_on_stacked_mutations(
        first in mutated_example(),
        cut in any::<prop::sample::Index>(),
    ) {
        // Half of one mutated file followed by the whole example: duplicate keys, odd nesting.
        let i = cut.index(first.len() + 1);
        let i = (0..=i).rev().find(|i| first.is_char_boundary(*i)).unwrap_or(0);
        let text = format!("{}\n{EXAMPLE}", &first[..i]);
        load(&text);
        load_realistic(&text);
    }
}

#[test]
fn the_unmutated_example_loads() {
    // Anchors the mutations: they start from a file that is valid in a realistic environment.
    let config = Config::from_yaml(EXAMPLE, "example.yaml", realistic_env);
    assert!(config.is_ok(), "{:?}", config.err());
}
