//! Authlete's native introspection API (research/authlete-introspection.md sections 1-3).
//!
//! v3: `POST {base}/api/{serviceId}/auth/introspection` with `Authorization: Bearer <service
//! access token>`; v2: `POST {base}/api/auth/introspection` with HTTP Basic `key:secret`. JSON
//! both ways. Authlete answers HTTP 200 for every verdict about the token, with the verdict in
//! `action`; a non-2xx status means the API call itself failed, which is unavailability (fail
//! closed), never a verdict. `scopes` are not sent: they are checked locally against the cached
//! grant, so one entry serves every route.

use super::transport_reason;
use crate::auth::cache::Verdict;
use crate::auth::{AccessToken, AuthError, Grant};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How tokengate authenticates to Authlete.
#[derive(Clone)]
pub enum AuthleteApi {
    V3 {
        service_id: String,
        access_token: String,
    },
    V2 {
        api_key: String,
        api_secret: String,
    },
}

impl AuthleteApi {
    /// Non-secret identity of the credential (service id or API key).
    pub fn principal(&self) -> &str {
        match self {
            AuthleteApi::V3 { service_id, .. } => service_id,
            AuthleteApi::V2 { api_key, .. } => api_key,
        }
    }
}

impl fmt::Debug for AuthleteApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthleteApi::V3 { service_id, .. } => write!(
                f,
                "V3 {{ service_id: {service_id:?}, access_token: <redacted> }}"
            ),
            AuthleteApi::V2 { api_key, .. } => {
                write!(f, "V2 {{ api_key: {api_key:?}, api_secret: <redacted> }}")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthleteSettings {
    /// The full introspection URL, built once at config load.
    pub endpoint: String,
    pub api: AuthleteApi,
}

impl AuthleteSettings {
    pub fn new(base_url: &str, api: AuthleteApi) -> Self {
        let base = base_url.trim_end_matches('/');
        let endpoint = match &api {
            AuthleteApi::V3 { service_id, .. } => {
                format!("{base}/api/{service_id}/auth/introspection")
            }
            AuthleteApi::V2 { .. } => format!("{base}/api/auth/introspection"),
        };
        Self { endpoint, api }
    }
}

/// The fields of Authlete's `IntrospectionResponse` that tokengate uses; unknown fields are
/// ignored and absent ones default, as Authlete's own SDKs do.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct IntrospectionResponse {
    pub result_code: Option<String>,
    pub action: Option<String>,
    pub client_id: Option<i64>,
    pub client_id_alias: Option<String>,
    pub client_id_alias_used: bool,
    pub subject: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Epoch milliseconds.
    pub expires_at: Option<i64>,
    /// RFC 8705 `x5t#S256` of the bound client certificate.
    pub certificate_thumbprint: Option<String>,
    pub dpop_nonce: Option<String>,
    pub response_content: Option<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IntrospectionRequest<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    htm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    htu: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_certificate: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_nonce_required: bool,
}

pub(super) async fn introspect(
    http: &reqwest::Client,
    settings: &AuthleteSettings,
    token: &AccessToken,
    proof: Option<&super::PresentedProof<'_>>,
    client_certificate: Option<&str>,
    nonce: &mut Option<String>,
) -> Result<Verdict, AuthError> {
    let request = http
        .post(&settings.endpoint)
        .header(http::header::ACCEPT, "application/json")
        .json(&IntrospectionRequest {
            token: token.expose(),
            dpop: proof.map(|p| p.proof),
            htm: proof.map(|p| p.htm),
            htu: proof.map(|p| p.htu),
            client_certificate,
            dpop_nonce_required: proof.is_some_and(|p| p.nonce_required),
        });
    let request = match &settings.api {
        AuthleteApi::V3 { access_token, .. } => request.bearer_auth(access_token),
        AuthleteApi::V2 {
            api_key,
            api_secret,
        } => request.basic_auth(api_key, Some(api_secret)),
    };
    let response = request
        .send()
        .await
        .map_err(|e| AuthError::Unavailable(transport_reason(&e)))?;
    let status = response.status();
    if !status.is_success() {
        // Authlete's API-level errors ({resultCode, resultMessage}): bad service credentials,
        // server errors. The client's token is not known to be bad, so this is not a 401.
        let body: IntrospectionResponse = response.json().await.unwrap_or_default();
        tracing::warn!(
            http_status = status.as_u16(),
            result_code = body.result_code.as_deref().unwrap_or("-"),
            "Authlete API call failed"
        );
        return Err(AuthError::Unavailable(
            "authorization server answered an error",
        ));
    }
    let body: IntrospectionResponse = response
        .json()
        .await
        .map_err(|_| AuthError::Unavailable("introspection response unreadable"))?;
    // RFC 9449 section 9: a nonce the server wants is passed to the client, on success and
    // on error alike.
    *nonce = body.dpop_nonce.clone();
    classify(body, SystemTime::now())
}

/// Maps Authlete's `action` (and, for binding failures, `resultCode`) to a verdict.
pub(crate) fn classify(
    body: IntrospectionResponse,
    _now: SystemTime,
) -> Result<Verdict, AuthError> {
    let code = body.result_code.as_deref().unwrap_or("");
    match body.action.as_deref() {
        Some("OK") => {
            let client_id = if body.client_id_alias_used {
                body.client_id_alias.clone()
            } else {
                body.client_id
                    .filter(|id| *id != 0)
                    .map(|id| id.to_string())
            };
            let expires_at = body
                .expires_at
                .filter(|ms| *ms > 0)
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs()));
            let grant = Grant::new(
                body.subject,
                client_id,
                body.scopes.unwrap_or_default(),
                expires_at,
            )
            .with_certificate(body.certificate_thumbprint);
            Ok(Verdict::Active(Arc::new(grant)))
        }
        // The nonce error has no documented result code; Authlete's challenge names it.
        Some("UNAUTHORIZED")
            if body
                .response_content
                .as_deref()
                .is_some_and(|c| c.contains(r#"error="use_dpop_nonce""#)) =>
        {
            Ok(Verdict::Refused {
                error: AuthError::UseDpopNonce,
                remember: false,
            })
        }
        Some("UNAUTHORIZED") => Ok(match code {
            // The token exists and is bound to a DPoP key (A065308: a proof was expected). That
            // is a property of the token, so it is cached as a marker grant that authorizes
            // nothing until a proof from the right key is accepted (gateway.rs).
            "A065308" => Verdict::Active(Arc::new(Grant::dpop_bound_marker())),
            // Bound to a client certificate this presentation lacks (A065304): depends on the
            // presentation, so it is never remembered against the legitimate holder.
            "A065304" => Verdict::Refused {
                error: AuthError::BindingRequired,
                remember: false,
            },
            // The certificate presented does not match the token's (A065305), or could not be
            // read: again a property of this presentation, never remembered.
            "A065305" | "A065306" | "A065307" => Verdict::Refused {
                error: AuthError::CertificateMismatch,
                remember: false,
            },
            // The proof sent with the token was refused: a property of this presentation only.
            "A065309" | "A065310" | "A065311" | "A065312" | "A065313" => Verdict::Refused {
                error: AuthError::DpopRefusedByServer,
                remember: false,
            },
            _ => Verdict::Refused {
                error: AuthError::InvalidToken,
                remember: true,
            },
        }),
        // tokengate sends no scopes or subject, so FORBIDDEN is unexpected; refuse, don't cache.
        Some("FORBIDDEN") => Ok(Verdict::Refused {
            error: AuthError::Forbidden,
            remember: false,
        }),
        // "The request does not contain a valid access token": the token itself is unusable.
        Some("BAD_REQUEST") => Ok(Verdict::Refused {
            error: AuthError::InvalidToken,
            remember: true,
        }),
        Some("INTERNAL_SERVER_ERROR") => Err(AuthError::Unavailable(
            "authorization server reported an internal error",
        )),
        _ => Err(AuthError::Unavailable(
            "introspection response has an unknown action",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> IntrospectionResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ok_maps_to_grant_with_millisecond_expiry() {
        let body = parse(
            r#"{"action":"OK","resultCode":"A056001","clientId":26478243745571,"subject":"john","scopes":["a","b"],"expiresAt":1640416873000,"type":"introspectionResponse"}"#,
        );
        let Ok(Verdict::Active(g)) = classify(body, SystemTime::now()) else {
            panic!("expected active")
        };
        assert_eq!(g.subject(), Some("john"));
        assert_eq!(g.client_id(), Some("26478243745571"));
        assert_eq!(
            g.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_640_416_873))
        );
        assert!(g.has_scope("b"));
    }

    #[test]
    fn alias_is_used_when_the_client_used_it() {
        let body = parse(
            r#"{"action":"OK","clientId":5,"clientIdAlias":"my-client","clientIdAliasUsed":true}"#,
        );
        let Ok(Verdict::Active(g)) = classify(body, SystemTime::now()) else {
            panic!()
        };
        assert_eq!(g.client_id(), Some("my-client"));
    }

    #[test]
    fn every_action_is_classified() {
        let c = |j: &str| classify(parse(j), SystemTime::now());
        assert!(matches!(
            c(r#"{"action":"UNAUTHORIZED","resultCode":"A057302"}"#),
            Ok(Verdict::Refused {
                error: AuthError::InvalidToken,
                remember: true
            })
        ));
        // A DPoP-bound token without a proof: cached as a marker that authorizes nothing.
        match c(r#"{"action":"UNAUTHORIZED","resultCode":"A065308"}"#) {
            Ok(Verdict::Active(g)) => assert_eq!(g.binding, crate::auth::Binding::DpopKeyUnknown),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c(r#"{"action":"UNAUTHORIZED","resultCode":"A065304"}"#),
            Ok(Verdict::Refused {
                error: AuthError::BindingRequired,
                remember: false
            })
        ));
        assert!(matches!(
            c(r#"{"action":"UNAUTHORIZED","resultCode":"A065305"}"#),
            Ok(Verdict::Refused {
                error: AuthError::CertificateMismatch,
                remember: false
            })
        ));
        assert!(matches!(
            c(
                r#"{"action":"UNAUTHORIZED","resultCode":"A065314","responseContent":"DPoP error=\"use_dpop_nonce\",error_description=\"x\""}"#
            ),
            Ok(Verdict::Refused {
                error: AuthError::UseDpopNonce,
                remember: false
            })
        ));
        assert!(matches!(
            c(r#"{"action":"FORBIDDEN"}"#),
            Ok(Verdict::Refused {
                error: AuthError::Forbidden,
                remember: false
            })
        ));
        assert!(matches!(
            c(r#"{"action":"BAD_REQUEST"}"#),
            Ok(Verdict::Refused {
                error: AuthError::InvalidToken,
                ..
            })
        ));
        assert!(matches!(
            c(r#"{"action":"INTERNAL_SERVER_ERROR"}"#),
            Err(AuthError::Unavailable(_))
        ));
        assert!(matches!(
            c(r#"{"action":"SOMETHING_NEW"}"#),
            Err(AuthError::Unavailable(_))
        ));
        assert!(matches!(
            c(r#"{"resultCode":"A001202"}"#),
            Err(AuthError::Unavailable(_))
        ));
    }

    #[test]
    fn endpoints_follow_api_version() {
        let v3 = AuthleteSettings::new(
            "https://us.authlete.com/",
            AuthleteApi::V3 {
                service_id: "123".into(),
                access_token: "t".into(),
            },
        );
        assert_eq!(
            v3.endpoint,
            "https://us.authlete.com/api/123/auth/introspection"
        );
        let v2 = AuthleteSettings::new(
            "https://api.authlete.com",
            AuthleteApi::V2 {
                api_key: "k".into(),
                api_secret: "s".into(),
            },
        );
        assert_eq!(
            v2.endpoint,
            "https://api.authlete.com/api/auth/introspection"
        );
        assert!(!format!("{:?}", v3.api).contains("\"t\""));
    }
}
