//! Access-token extraction from `Authorization` (RFC 6750 section 2.1, RFC 9449 section 7.1).
//! Syntax only; no I/O. The token is never logged: `AccessToken` has a redacted `Debug`.
//!
//! Accepted: exactly one `Authorization` field whose scheme is `Bearer` or `DPoP` (case-
//! insensitive, RFC 9110 section 11.1), one or more spaces, then a `b64token`
//! (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`). A credential in the query
//! string or the body is not accepted (RFC 9700 section 4.9.3 discourages both).

use http::HeaderMap;
use http::header::AUTHORIZATION;
use std::fmt;

/// The access token as presented. Compared, hashed and sent to the introspection backend;
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Box<str>);

impl AccessToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// The authorization scheme the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    /// RFC 9449: the request must also carry a `DPoP` proof.
    Dpop,
}

/// A syntactically valid credential.
#[derive(Debug, Clone)]
pub struct Credential {
    pub scheme: Scheme,
    pub token: AccessToken,
}

/// Why no usable credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No `Authorization` field: 401 with a bare challenge (RFC 6750 section 3.1).
    #[error("no credentials")]
    Missing,
    /// A scheme tokengate does not accept (e.g. `Basic`): treated like no credentials.
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    #[error("more than one Authorization header")]
    Multiple,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("access token too long")]
    TooLong,
}

impl Credential {
    /// Extracts the single credential of a request.
    pub fn extract(headers: &HeaderMap, max_token_bytes: usize) -> Result<Self, CredentialError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(CredentialError::Missing);
        };
        if values.next().is_some() {
            return Err(CredentialError::Multiple);
        }
        Self::parse(value.as_bytes(), max_token_bytes)
    }

    /// Parses one `Authorization` value. Hand-written (no regex): it runs on every request.
    pub fn parse(value: &[u8], max_token_bytes: usize) -> Result<Self, CredentialError> {
        let scheme_end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
        let (scheme_name, rest) = value.split_at(scheme_end);
        let scheme = if scheme_name.eq_ignore_ascii_case(b"bearer") {
            Scheme::Bearer
        } else if scheme_name.eq_ignore_ascii_case(b"dpop") {
            Scheme::Dpop
        } else if !scheme_name.is_empty() && scheme_name.iter().all(|&b| is_tchar(b)) {
            return Err(CredentialError::UnsupportedScheme);
        } else {
            return Err(CredentialError::Malformed);
        };
        let token = trim_leading_spaces(rest);
        if token.len() == rest.len() || token.is_empty() {
            // No separator, or a scheme with nothing after it.
            return Err(CredentialError::Malformed);
        }
        if token.len() > max_token_bytes {
            return Err(CredentialError::TooLong);
        }
        if !is_b64token(token) {
            return Err(CredentialError::Malformed);
        }
        // is_b64token admitted ASCII only, so this conversion cannot fail.
        let token = std::str::from_utf8(token).map_err(|_| CredentialError::Malformed)?;
        Ok(Self {
            scheme,
            token: AccessToken(token.into()),
        })
    }
}

fn trim_leading_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

/// RFC 9110 `tchar`, for telling an unknown scheme from garbage.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6750 `b64token`: token characters, then only `=` padding.
fn is_b64token(token: &[u8]) -> bool {
    let body_end = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    let (body, padding) = token.split_at(body_end);
    !body.is_empty()
        && body.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
        && padding.iter().all(|&b| b == b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<Credential, CredentialError> {
        Credential::parse(v.as_bytes(), 4096)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer   abc"] {
            let c = parse(v).unwrap();
            assert_eq!(c.scheme, Scheme::Bearer);
            assert_eq!(c.token.expose(), "abc");
        }
        assert_eq!(parse("dpop abc").unwrap().scheme, Scheme::Dpop);
    }

    #[test]
    fn token_keeps_its_case_and_padding() {
        assert_eq!(
            parse("Bearer aB-._~+/9==").unwrap().token.expose(),
            "aB-._~+/9=="
        );
    }

    #[test]
    fn malformed_values_are_rejected() {
        for v in [
            "Bearer",
            "Bearer ",
            "Bearer abc def",
            "Bearer a,b",
            "Bearer a=b",
            "Bearer \"x\"",
            "Bea\"rer x",
            "Bearer =",
        ] {
            assert_eq!(parse(v).unwrap_err(), CredentialError::Malformed, "{v}");
        }
    }

    #[test]
    fn other_schemes_count_as_no_credentials() {
        assert_eq!(
            parse("Basic dXNlcjpwYXNz").unwrap_err(),
            CredentialError::UnsupportedScheme
        );
        assert_eq!(
            parse("Bearerabc").unwrap_err(),
            CredentialError::UnsupportedScheme
        );
    }

    #[test]
    fn token_length_limit_applies_before_syntax() {
        let long = format!("Bearer {}", "a".repeat(4097));
        assert_eq!(parse(&long).unwrap_err(), CredentialError::TooLong);
        let ok = format!("Bearer {}", "a".repeat(4096));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn two_authorization_fields_are_rejected() {
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, "Bearer a".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(
            Credential::extract(&h, 4096).unwrap_err(),
            CredentialError::Multiple
        );
        assert_eq!(
            Credential::extract(&HeaderMap::new(), 4096).unwrap_err(),
            CredentialError::Missing
        );
    }

    #[test]
    fn redacted_debug() {
        let c = parse("Bearer secret-token").unwrap();
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
