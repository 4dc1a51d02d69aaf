//! DPoP proof verification at the resource (RFC 9449 section 4.3 and section 7), done locally
//! on every request: single well-formed compact JWS, `typ` `dpop+jwt`, allow-listed asymmetric
//! `alg`, public `jwk` matching the algorithm, signature, `htm`, `htu` (scheme, host and path
//! of the external URL, query and fragment ignored), `iat` window, `ath`, then the `jti` replay
//! check, which is recorded only after everything else passed so that a forged proof cannot
//! burn a legitimate `jti`. Binding (thumbprint = the token's `jkt`) is the caller's check.
//!
//! Must never panic on input, never log a proof, and never trust a key it has not verified.

mod jwk;
mod replay;
mod signer;

pub use jwk::{Alg, KeyCache, KeyError};
pub use replay::ReplayStore;
pub use signer::{ProofClaims, ProofSigner, ath, random_jti};

use crate::path::NormalizedPath;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// Who enforces DPoP nonces (RFC 9449 section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonceMode {
    /// No nonces: proofs are checked locally, the key binding is cached.
    #[default]
    None,
    /// The authorization server (Authlete) issues and checks nonces: every DPoP request is
    /// also sent to it with `dpopNonceRequired`, and its `dpopNonce` is passed to the client.
    Authlete,
}

/// Settings compiled from `dpop:` in the config.
#[derive(Debug, Clone)]
pub struct DpopSettings {
    pub nonce: NonceMode,
    pub algs: Vec<Alg>,
    pub max_age: Duration,
    pub clock_skew: Duration,
    pub max_proof_bytes: usize,
    pub max_jti_bytes: usize,
}

impl DpopSettings {
    /// `ES256 ES384 …` for the `algs` challenge parameter.
    pub fn algs_list(&self) -> String {
        self.algs
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why a proof was refused; `reason()` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the DPoP proof is not a well-formed JWS")]
    Malformed,
    #[error("the DPoP proof is too large")]
    TooLarge,
    #[error("the DPoP proof has the wrong typ")]
    Type,
    #[error("the DPoP proof uses an algorithm that is not allowed")]
    Algorithm,
    #[error("the DPoP proof key is not acceptable: {0}")]
    Key(KeyError),
    #[error("the DPoP proof signature does not verify")]
    Signature,
    #[error("the DPoP proof lacks a required claim")]
    MissingClaim,
    #[error("the DPoP proof htm does not match the request method")]
    Method,
    #[error("the DPoP proof htu does not match the request URL")]
    Url,
    #[error("the DPoP proof is too old or from the future")]
    Time,
    #[error("the DPoP proof ath does not match the access token")]
    TokenHash,
    #[error("the DPoP proof was already used")]
    Replay,
}

impl ProofError {
    /// Every variant (with a representative key error), for pre-registering metric labels.
    pub const ALL: [ProofError; 12] = [
        ProofError::Malformed,
        ProofError::TooLarge,
        ProofError::Type,
        ProofError::Algorithm,
        ProofError::Key(KeyError::Malformed),
        ProofError::Signature,
        ProofError::MissingClaim,
        ProofError::Method,
        ProofError::Url,
        ProofError::Time,
        ProofError::TokenHash,
        ProofError::Replay,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            ProofError::Malformed => "malformed",
            ProofError::TooLarge => "too_large",
            ProofError::Type => "typ",
            ProofError::Algorithm => "alg",
            ProofError::Key(_) => "jwk",
            ProofError::Signature => "signature",
            ProofError::MissingClaim => "missing_claim",
            ProofError::Method => "htm",
            ProofError::Url => "htu",
            ProofError::Time => "iat",
            ProofError::TokenHash => "ath",
            ProofError::Replay => "replay",
        }
    }
}

/// A proof that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's key (compare with the token's `jkt`).
    pub jkt: String,
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Map<String, Value>>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<Value>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// What the request looks like from outside: the proof must have been made for it.
pub struct ProofTarget<'a> {
    pub method: &'a str,
    /// `scheme://host[:port]` as the client addressed the gateway, normalized.
    pub origin: &'a str,
    pub path: &'a NormalizedPath,
    pub access_token: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

pub struct Verifier {
    settings: DpopSettings,
    keys: KeyCache,
    replay: ReplayStore,
}

impl Verifier {
    pub fn new(settings: DpopSettings) -> Self {
        // A proof can pass the time check until max_age + clock_skew after its iat.
        let window = settings.max_age + settings.clock_skew;
        Self {
            settings,
            keys: KeyCache::new(10_000),
            replay: ReplayStore::new(window, 1_000_000),
        }
    }

    pub fn settings(&self) -> &DpopSettings {
        &self.settings
    }

    pub fn verify(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
    ) -> Result<VerifiedProof, ProofError> {
        if proof.len() > self.settings.max_proof_bytes {
            return Err(ProofError::TooLarge);
        }
        let mut parts = proof.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed);
        };
        let header: Header = decode_json(h64)?;
        let claims: Claims = decode_json(p64)?;
        let signature = B64.decode(s64).map_err(|_| ProofError::Malformed)?;
        if signature.is_empty() {
            return Err(ProofError::Malformed);
        }
        // RFC 7515 section 4.1.9: media types are case-insensitive; `application/` may be omitted.
        let typ = header.typ.as_deref().ok_or(ProofError::Type)?;
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case("dpop+jwt") {
            return Err(ProofError::Type);
        }
        if header.crit.is_some() {
            // No extensions are understood, so none may be critical (RFC 7515 section 4.1.11).
            return Err(ProofError::Malformed);
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(Alg::parse)
            .ok_or(ProofError::Algorithm)?;
        if !self.settings.algs.contains(&alg) {
            return Err(ProofError::Algorithm);
        }
        let jwk = header.jwk.as_ref().ok_or(ProofError::MissingClaim)?;
        let key = self.keys.get_or_check(alg, jwk).map_err(ProofError::Key)?;
        let signing_input = &proof[..h64.len() + 1 + p64.len()];
        key.key
            .verify_sig(signing_input.as_bytes(), &signature)
            .map_err(|_| ProofError::Signature)?;

        let (Some(jti), Some(htm), Some(htu), Some(iat), Some(ath)) = (
            claims.jti.as_deref(),
            claims.htm.as_deref(),
            claims.htu.as_deref(),
            claims.iat.as_ref(),
            claims.ath.as_deref(),
        ) else {
            return Err(ProofError::MissingClaim);
        };
        if jti.is_empty() || jti.len() > self.settings.max_jti_bytes {
            return Err(ProofError::Malformed);
        }
        // Methods are case-sensitive (RFC 9110 section 9.1).
        if htm != target.method {
            return Err(ProofError::Method);
        }
        if !htu_matches(htu, target.origin, target.path) {
            return Err(ProofError::Url);
        }
        let iat = iat.as_i64().ok_or(ProofError::Malformed)?;
        let max_age = self.settings.max_age.as_secs() as i64;
        let skew = self.settings.clock_skew.as_secs() as i64;
        if iat > target.now + skew || iat < target.now - max_age - skew {
            return Err(ProofError::Time);
        }
        let expected_ath =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, target.access_token.as_bytes());
        if B64.decode(ath).ok().as_deref() != Some(expected_ath.as_ref()) || ath.contains('=') {
            return Err(ProofError::TokenHash);
        }
        if !self.replay.first_use(&key.thumbprint, jti, iat, target.now) {
            return Err(ProofError::Replay);
        }
        Ok(VerifiedProof {
            jkt: key.thumbprint.clone(),
            nonce: claims.nonce,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, ProofError> {
    let bytes = B64.decode(part).map_err(|_| ProofError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ProofError::Malformed)
}

/// Compares a proof's `htu` with the request's external URL: scheme and host case-insensitive,
/// default port dropped, path normalized the same way the request path was; query and fragment
/// ignored (RFC 9449 section 4.3 check 9, RFC 3986 section 6.2).
pub fn htu_matches(htu: &str, origin: &str, path: &NormalizedPath) -> bool {
    let htu = htu.split(['#', '?']).next().unwrap_or("");
    let Some((scheme, rest)) = htu.split_once("://") else {
        return false;
    };
    let (authority, raw_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Ok(proof_path) = NormalizedPath::parse(raw_path) else {
        return false;
    };
    canonical_origin(scheme, authority).is_some_and(|o| o == origin) && proof_path == *path
}

/// `scheme://host[:port]`, lower-cased, default port removed; `None` if unusable.
pub fn canonical_origin(scheme: &str, authority: &str) -> Option<String> {
    let scheme = scheme.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let host = authority.strip_suffix(default_port).unwrap_or(&authority);
    let host = host.strip_suffix(':').unwrap_or(host);
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests;
