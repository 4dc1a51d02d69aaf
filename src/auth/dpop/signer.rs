//! Making DPoP proofs: a small client-side signer used by the demo (`tokengate dpop-proof`),
//! the tests and the benches. Keys are generated with aws-lc-rs; nothing here is used to verify.

use super::jwk::Alg;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

enum Key {
    Ec(EcdsaKeyPair, &'static str),
    Ed(Ed25519KeyPair),
    Rsa(Box<aws_lc_rs::rsa::KeyPair>),
}

/// A key pair that signs DPoP proofs with one algorithm.
pub struct ProofSigner {
    alg: Alg,
    key: Key,
    jwk: Value,
}

/// The claims of one proof; `None` leaves a claim out (for hostile tests).
#[derive(Debug, Clone, Default)]
pub struct ProofClaims {
    pub htm: Option<String>,
    pub htu: Option<String>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    pub ath_token: Option<String>,
    pub nonce: Option<String>,
}

impl ProofClaims {
    /// Typical claims for `method url` presenting `token` at time `iat`, with a random `jti`.
    pub fn new(method: &str, url: &str, token: Option<&str>, iat: i64) -> Self {
        Self {
            htm: Some(method.into()),
            htu: Some(url.into()),
            iat: Some(iat),
            jti: Some(random_jti()),
            ath_token: token.map(str::to_owned),
            nonce: None,
        }
    }
}

/// 16 random bytes, base64url.
pub fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    B64.encode(bytes)
}

/// base64url(SHA-256(token)): the `ath` claim.
pub fn ath(token: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

impl ProofSigner {
    /// A fresh key for `alg` (ES256, ES384, ES512, EdDSA, RS*/PS* with 2048-bit RSA).
    pub fn generate(alg: Alg) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let rng = SystemRandom::new();
        let (key, jwk) = match alg {
            Alg::ES256 | Alg::ES384 | Alg::ES512 => {
                let (signing, crv, len): (&'static sig::EcdsaSigningAlgorithm, _, _) = match alg {
                    Alg::ES256 => (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
                    Alg::ES384 => (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
                    _ => (&sig::ECDSA_P521_SHA512_FIXED_SIGNING, "P-521", 66),
                };
                let pair = EcdsaKeyPair::generate(signing)?;
                let point = pair.public_key().as_ref().to_vec();
                let jwk = json!({"kty":"EC","crv":crv,"x":B64.encode(&point[1..1 + len]),"y":B64.encode(&point[1 + len..])});
                (Key::Ec(pair, crv), jwk)
            }
            Alg::EdDSA => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .map_err(|_| aws_lc_rs::error::Unspecified)?;
                let jwk =
                    json!({"kty":"OKP","crv":"Ed25519","x":B64.encode(pair.public_key().as_ref())});
                (Key::Ed(pair), jwk)
            }
            _ => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
                let components: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> =
                    pair.public_key().into();
                let jwk = json!({"kty":"RSA","n":B64.encode(&components.n),"e":B64.encode(&components.e)});
                (Key::Rsa(Box::new(pair)), jwk)
            }
        };
        Ok(Self { alg, key, jwk })
    }

    /// An ES256 signer from a PKCS#8 document (what [`Self::generate_es256_pkcs8`] returns).
    pub fn es256_from_pkcs8(pkcs8: &[u8]) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)?;
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty":"EC","crv":"P-256","x":B64.encode(&point[1..33]),"y":B64.encode(&point[33..])});
        Ok(Self {
            alg: Alg::ES256,
            key: Key::Ec(pair, "P-256"),
            jwk,
        })
    }

    /// A new ES256 key as a PKCS#8 document, for storing in a file.
    pub fn generate_es256_pkcs8() -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )?;
        Ok(doc.as_ref().to_vec())
    }

    /// The parsed public key (for benchmarks that isolate the signature check).
    pub fn verification_key(
        &self,
    ) -> Result<std::sync::Arc<aws_lc_rs::signature::ParsedPublicKey>, super::KeyError> {
        let jwk = self.jwk.as_object().cloned().unwrap_or_default();
        super::jwk::check(&jwk, self.alg)?.parse(self.alg)
    }

    /// The public JWK embedded in proofs.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// RFC 7638 thumbprint of the public key (what a DPoP-bound token's `jkt` holds).
    pub fn thumbprint(&self) -> String {
        let canonical = match &self.key {
            Key::Ec(_, crv) => format!(
                r#"{{"crv":"{crv}","kty":"EC","x":{},"y":{}}}"#,
                self.jwk["x"], self.jwk["y"]
            ),
            Key::Ed(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, self.jwk["x"]),
            Key::Rsa(_) => format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                self.jwk["e"], self.jwk["n"]
            ),
        };
        B64.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
        )
    }

    /// Signs a proof with the standard header (`typ` dpop+jwt, this signer's `alg` and `jwk`).
    pub fn sign(&self, claims: &ProofClaims) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg.name(), "jwk": self.jwk});
        self.sign_with_header(&header, claims)
    }

    /// Signs with an arbitrary header (hostile tests: wrong typ, private jwk, another key…).
    pub fn sign_with_header(&self, header: &Value, claims: &ProofClaims) -> String {
        let mut payload = serde_json::Map::new();
        if let Some(v) = &claims.jti {
            payload.insert("jti".into(), json!(v));
        }
        if let Some(v) = &claims.htm {
            payload.insert("htm".into(), json!(v));
        }
        if let Some(v) = &claims.htu {
            payload.insert("htu".into(), json!(v));
        }
        if let Some(v) = claims.iat {
            payload.insert("iat".into(), json!(v));
        }
        if let Some(t) = &claims.ath_token {
            payload.insert("ath".into(), json!(ath(t)));
        }
        if let Some(v) = &claims.nonce {
            payload.insert("nonce".into(), json!(v));
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(Value::Object(payload).to_string())
        );
        format!(
            "{input}.{}",
            B64.encode(self.raw_signature(input.as_bytes()))
        )
    }

    fn raw_signature(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Ec(pair, _) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Key::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            Key::Rsa(pair) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match self.alg {
                    Alg::RS256 => &sig::RSA_PKCS1_SHA256,
                    Alg::RS384 => &sig::RSA_PKCS1_SHA384,
                    Alg::RS512 => &sig::RSA_PKCS1_SHA512,
                    Alg::PS256 => &sig::RSA_PSS_SHA256,
                    Alg::PS384 => &sig::RSA_PSS_SHA384,
                    _ => &sig::RSA_PSS_SHA512,
                };
                let mut out = vec![0u8; pair.public_modulus_len()];
                match pair.sign(padding, &rng, message, &mut out) {
                    Ok(()) => out,
                    Err(_) => Vec::new(),
                }
            }
        }
    }
}
