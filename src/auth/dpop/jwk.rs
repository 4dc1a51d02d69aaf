//! Public JWKs in DPoP proofs: algorithm allow-list, key checks, RFC 7638 thumbprints, and a
//! cache of parsed keys by thumbprint so that a client's second proof does not re-parse its key.
//!
//! Never accepts a private or symmetric key (RFC 9449 section 4.3 check 7), never `none` or an
//! HMAC algorithm (section 4.2), and requires the curve to match the algorithm (RFC 7518 3.4).

use aws_lc_rs::signature::{self as sig, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};
use std::sync::Arc;

/// JWS algorithms tokengate can verify for DPoP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    ES256,
    ES384,
    ES512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    EdDSA,
}

impl Alg {
    pub const DEFAULT_ALLOWED: [Alg; 5] =
        [Alg::ES256, Alg::ES384, Alg::PS256, Alg::RS256, Alg::EdDSA];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "EdDSA" => Alg::EdDSA,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::EdDSA => "EdDSA",
        }
    }
}

/// Why a proof's key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the jwk contains private key material")]
    Private,
    #[error("the jwk does not fit the algorithm")]
    WrongType,
    #[error("the jwk is malformed")]
    Malformed,
}

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, KeyError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or(KeyError::Malformed)
}

fn decode(value: &str) -> Result<Vec<u8>, KeyError> {
    B64.decode(value).map_err(|_| KeyError::Malformed)
}

/// The RFC 7638 thumbprint (base64url SHA-256 of the required members, sorted, no spaces) and
/// the key material, after checking that the key is public and fits `alg`.
pub struct CheckedJwk {
    pub thumbprint: String,
    material: Material,
}

enum Material {
    Ec { curve_len: usize, point: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

pub fn check(jwk: &Map<String, Value>, alg: Alg) -> Result<CheckedJwk, KeyError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(KeyError::Private);
    }
    let kty = member(jwk, "kty")?;
    let (canonical, material) = match (kty, alg) {
        ("EC", Alg::ES256 | Alg::ES384 | Alg::ES512) => {
            let (want_crv, len) = match alg {
                Alg::ES256 => ("P-256", 32),
                Alg::ES384 => ("P-384", 48),
                _ => ("P-521", 66),
            };
            let crv = member(jwk, "crv")?;
            if crv != want_crv {
                return Err(KeyError::WrongType);
            }
            let (x_text, y_text) = (member(jwk, "x")?, member(jwk, "y")?);
            let (x, y) = (decode(x_text)?, decode(y_text)?);
            if x.len() != len || y.len() != len {
                return Err(KeyError::Malformed);
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let canonical =
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x_text}","y":"{y_text}"}}"#);
            (
                canonical,
                Material::Ec {
                    curve_len: len,
                    point,
                },
            )
        }
        ("RSA", Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512) => {
            let (n_text, e_text) = (member(jwk, "n")?, member(jwk, "e")?);
            let (n, e) = (decode(n_text)?, decode(e_text)?);
            // RSA keys under 2048 bits are refused (aws-lc-rs' 2048..8192 parameter range).
            if n.len() < 256 || e.is_empty() {
                return Err(KeyError::WrongType);
            }
            let canonical = format!(r#"{{"e":"{e_text}","kty":"RSA","n":"{n_text}"}}"#);
            (canonical, Material::Rsa { n, e })
        }
        ("OKP", Alg::EdDSA) => {
            let crv = member(jwk, "crv")?;
            if crv != "Ed25519" {
                return Err(KeyError::WrongType);
            }
            if jwk.contains_key("y") {
                return Err(KeyError::Malformed);
            }
            let x_text = member(jwk, "x")?;
            let x = decode(x_text)?;
            if x.len() != 32 {
                return Err(KeyError::Malformed);
            }
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_text}"}}"#);
            (canonical, Material::Ed25519 { x })
        }
        _ => return Err(KeyError::WrongType),
    };
    // Members were checked to be base64url (decode succeeded), so no JSON escaping is needed.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    Ok(CheckedJwk {
        thumbprint: B64.encode(digest.as_ref()),
        material,
    })
}

impl CheckedJwk {
    /// Builds the verification key (the costly step the key cache saves).
    pub fn parse(&self, alg: Alg) -> Result<Arc<ParsedPublicKey>, KeyError> {
        let key = match (&self.material, alg) {
            (Material::Ec { point, curve_len }, _) => {
                let algorithm: &'static sig::EcdsaVerificationAlgorithm = match curve_len {
                    32 => &sig::ECDSA_P256_SHA256_FIXED,
                    48 => &sig::ECDSA_P384_SHA384_FIXED,
                    _ => &sig::ECDSA_P521_SHA512_FIXED,
                };
                ParsedPublicKey::new(algorithm, point)
            }
            (Material::Rsa { n, e }, alg) => {
                let params: &'static sig::RsaParameters = match alg {
                    Alg::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                    _ => &sig::RSA_PSS_2048_8192_SHA512,
                };
                sig::RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .to_parsed_public_key(params)
            }
            (Material::Ed25519 { x }, _) => ParsedPublicKey::new(&sig::ED25519, x),
        };
        key.map(Arc::new).map_err(|_| KeyError::Malformed)
    }
}

/// The members [`check`] reads besides the private ones: its verdict is a function of these
/// texts and the algorithm alone, when each is absent or a string and no private member is.
const KEY_MEMBERS: [&str; 6] = ["kty", "crv", "x", "y", "n", "e"];

/// A key that passed [`check`] and was parsed, with the member texts it was made from.
pub struct CachedKey {
    alg: Alg,
    members: [Option<Box<str>>; 6],
    /// RFC 7638 thumbprint.
    pub thumbprint: String,
    pub key: Arc<ParsedPublicKey>,
}

/// Checked and parsed keys, by a keyed hash of (algorithm, member texts), so that a client's
/// next proof skips base64 decoding, the thumbprint hash and the key parse. A hit is compared
/// member by member with the entry, never trusted on the hash alone. Bounded; a miss only
/// costs a check and a parse.
pub struct KeyCache {
    keyer: std::hash::RandomState,
    keys: moka::sync::Cache<u64, Arc<CachedKey>>,
}

impl KeyCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            keyer: std::hash::RandomState::new(),
            keys: moka::sync::Cache::builder().max_capacity(capacity).build(),
        }
    }

    /// [`check`] then [`CheckedJwk::parse`], through the cache.
    pub fn get_or_check(
        &self,
        alg: Alg,
        jwk: &Map<String, Value>,
    ) -> Result<Arc<CachedKey>, KeyError> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(KeyError::Private);
        }
        let mut texts: [Option<&str>; 6] = [None; 6];
        let mut cacheable = true;
        for (text, name) in texts.iter_mut().zip(KEY_MEMBERS) {
            match jwk.get(name) {
                None => {}
                Some(Value::String(s)) => *text = Some(s),
                Some(_) => cacheable = false,
            }
        }
        let hash = cacheable.then(|| {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = self.keyer.build_hasher();
            alg.hash(&mut h);
            texts.hash(&mut h);
            h.finish()
        });
        if let Some(hit) = hash.and_then(|h| self.keys.get(&h)) {
            if hit.alg == alg
                && hit
                    .members
                    .iter()
                    .zip(texts)
                    .all(|(cached, text)| cached.as_deref() == text)
            {
                return Ok(hit);
            }
        }
        let checked = check(jwk, alg)?;
        let key = checked.parse(alg)?;
        let entry = Arc::new(CachedKey {
            alg,
            members: texts.map(|t| t.map(Box::from)),
            thumbprint: checked.thumbprint,
            key,
        });
        if let Some(hash) = hash {
            self.keys.insert(hash, entry.clone());
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn key_cache_hits_only_the_same_members_and_rechecks_private_ones() {
        let ec = r#""kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA""#;
        let cache = KeyCache::new(100);
        let first = cache
            .get_or_check(Alg::ES256, &obj(&format!("{{{ec}}}")))
            .unwrap();
        assert_eq!(
            first.thumbprint,
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        let again = cache
            .get_or_check(Alg::ES256, &obj(&format!("{{{ec},\"kid\":\"x\"}}")))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a cache hit");
        // The cached verdict never covers what the member texts do not decide.
        assert_eq!(
            cache
                .get_or_check(Alg::ES256, &obj(&format!("{{{ec},\"d\":\"AA\"}}")))
                .err(),
            Some(KeyError::Private)
        );
        assert_eq!(
            cache
                .get_or_check(Alg::ES384, &obj(&format!("{{{ec}}}")))
                .err(),
            Some(KeyError::WrongType)
        );
        let other_y = ec.replace("9VE4", "8VE4");
        let other = cache.get_or_check(Alg::ES256, &obj(&format!("{{{other_y}}}")));
        assert!(other.map_or(true, |k| !Arc::ptr_eq(&k, &first)));
        assert_eq!(
            cache
                .get_or_check(
                    Alg::ES256,
                    &obj(&format!(
                        "{{{}}}",
                        ec.replace(r#""kty":"EC""#, r#""kty":1"#)
                    ))
                )
                .err(),
            Some(KeyError::Malformed)
        );
    }

    #[test]
    fn rfc7638_rsa_vector() {
        let jwk = obj(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        );
        let checked = check(&jwk, Alg::RS256).unwrap();
        assert_eq!(
            checked.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_and_mismatched_keys_are_refused() {
        let ec = r#""kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA""#;
        assert_eq!(
            check(&obj(&format!("{{{ec},\"d\":\"AA\"}}")), Alg::ES256).err(),
            Some(KeyError::Private)
        );
        assert_eq!(
            check(&obj(&format!("{{{ec}}}")), Alg::ES384).err(),
            Some(KeyError::WrongType)
        );
        assert_eq!(
            check(&obj(&format!("{{{ec}}}")), Alg::RS256).err(),
            Some(KeyError::WrongType)
        );
        assert_eq!(
            check(&obj(r#"{"kty":"oct","k":"AAAA"}"#), Alg::ES256).err(),
            Some(KeyError::Private)
        );
        assert!(check(&obj(&format!("{{{ec}}}")), Alg::ES256).is_ok());
    }

    #[test]
    fn rfc9449_example_key_thumbprint_ignores_member_order() {
        // The public key of RFC 9449's examples, members in a different order than canonical.
        let jwk = obj(
            r#"{"y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","crv":"P-256","kty":"EC"}"#,
        );
        assert_eq!(
            check(&jwk, Alg::ES256).unwrap().thumbprint,
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }
}
