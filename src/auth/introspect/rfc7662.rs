//! Generic OAuth 2.0 Token Introspection (RFC 7662): a form POST with `token` and
//! `token_type_hint=access_token`, authenticated with HTTP Basic (RFC 7662 section 2.1). The
//! answer's `active` member is the verdict; `scope` is space-separated; `exp` is in seconds.

use super::transport_reason;
use crate::auth::cache::Verdict;
use crate::auth::{AccessToken, AuthError, Binding, Grant};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Clone)]
pub struct Rfc7662Settings {
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for Rfc7662Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rfc7662Settings {{ endpoint: {:?}, client_id: {:?}, client_secret: <redacted> }}",
            self.endpoint, self.client_id
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Rfc7662Response {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub exp: Option<i64>,
    pub cnf: Option<Confirmation>,
}

/// RFC 7800 confirmation claim; `jkt` per RFC 9449 section 6.2.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Confirmation {
    pub jkt: Option<String>,
    /// RFC 8705 section 3.1.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

pub(super) async fn introspect(
    http: &reqwest::Client,
    settings: &Rfc7662Settings,
    token: &AccessToken,
) -> Result<Verdict, AuthError> {
    let body = format!(
        "token={}&token_type_hint=access_token",
        form_encode(token.expose())
    );
    let response = http
        .post(&settings.endpoint)
        .basic_auth(
            form_encode(&settings.client_id),
            Some(form_encode(&settings.client_secret)),
        )
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| AuthError::Unavailable(transport_reason(&e)))?;
    if !response.status().is_success() {
        tracing::warn!(
            http_status = response.status().as_u16(),
            "RFC 7662 introspection call failed"
        );
        return Err(AuthError::Unavailable(
            "authorization server answered an error",
        ));
    }
    let body: Rfc7662Response = response
        .json()
        .await
        .map_err(|_| AuthError::Unavailable("introspection response unreadable"))?;
    Ok(classify(body))
}

pub(crate) fn classify(body: Rfc7662Response) -> Verdict {
    if !body.active {
        return Verdict::Refused {
            error: AuthError::InvalidToken,
            remember: true,
        };
    }
    let scopes = body
        .scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let expires_at = body
        .exp
        .filter(|s| *s > 0)
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s.unsigned_abs()));
    let cnf = body.cnf.unwrap_or_default();
    let binding = match cnf.jkt {
        Some(jkt) => Binding::Dpop(jkt.into()),
        None => Binding::None,
    };
    Verdict::Active(Arc::new(
        Grant::new(body.sub, body.client_id, scopes, expires_at)
            .with_binding(binding)
            .with_certificate(cnf.x5t_s256),
    ))
}

/// `application/x-www-form-urlencoded` encoding (RFC 6749 appendix B, used for Basic too).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_response_becomes_grant_with_seconds_expiry() {
        let body: Rfc7662Response = serde_json::from_str(
            r#"{"active":true,"scope":"a b","sub":"u","client_id":"c","exp":1700000000}"#,
        )
        .unwrap();
        let Verdict::Active(g) = classify(body) else {
            panic!()
        };
        assert!(g.has_scope("a") && g.has_scope("b"));
        assert_eq!(
            g.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn inactive_is_refused() {
        let body: Rfc7662Response = serde_json::from_str(r#"{"active":false}"#).unwrap();
        assert!(matches!(
            classify(body),
            Verdict::Refused {
                error: AuthError::InvalidToken,
                remember: true
            }
        ));
    }

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(form_encode("a+b/c= d"), "a%2Bb%2Fc%3D+d");
    }
}
