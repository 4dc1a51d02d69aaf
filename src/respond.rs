//! The only place where a refusal becomes a response: status, `WWW-Authenticate`, JSON body,
//! `Cache-Control: no-store`, and the outcome label for metrics and the access log. One
//! exhaustive `match`, no catch-all arm, so a new error variant cannot be forgotten.
//!
//! Challenges follow RFC 6750 section 3: no `error` attribute when no credentials were sent
//! (section 3.1), `invalid_request` → 400, `invalid_token` → 401, `insufficient_scope` → 403 with
//! the route's required scopes. Descriptions are fixed strings: nothing from the request, and
//! never the token, is echoed.

use crate::auth::{AuthError, CredentialError};
use crate::body::{Body, full};
use crate::path::PathError;
use crate::policy::PolicyError;
use crate::proxy::ForwardError;
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was not forwarded.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("bad request path: {0}")]
    BadPath(#[from] PathError),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("no route matches")]
    NoRoute,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl From<CredentialError> for Rejection {
    fn from(e: CredentialError) -> Self {
        Rejection::Auth(AuthError::Credential(e))
    }
}

/// Seconds a client should wait before retrying when introspection is unavailable.
const RETRY_AFTER_SECS: &str = "5";

/// What the response needs to know about the request beyond the error.
pub struct Context<'a> {
    /// The matched route's required scopes, space-separated (for `insufficient_scope`).
    pub required_scopes: Option<&'a str>,
}

struct Shape {
    status: StatusCode,
    /// (error code, description) for the challenge; `None` for a bare challenge.
    challenge: Option<Option<(&'static str, &'static str)>>,
    body_error: &'static str,
    description: &'static str,
    outcome: &'static str,
}

fn shape(rejection: &Rejection) -> Shape {
    use AuthError as A;
    use CredentialError as C;
    let s = |status, challenge, body_error, description, outcome| Shape {
        status,
        challenge,
        body_error,
        description,
        outcome,
    };
    match rejection {
        Rejection::BadPath(_) => s(
            StatusCode::BAD_REQUEST,
            None,
            "invalid_request",
            "the request path is not acceptable",
            "bad_request",
        ),
        Rejection::BadRequest(why) => s(
            StatusCode::BAD_REQUEST,
            None,
            "invalid_request",
            why,
            "bad_request",
        ),
        Rejection::NoRoute => s(
            StatusCode::NOT_FOUND,
            None,
            "not_found",
            "no route matches this request",
            "no_route",
        ),
        Rejection::Auth(A::Credential(C::Missing | C::UnsupportedScheme)) => s(
            StatusCode::UNAUTHORIZED,
            Some(None),
            "unauthorized",
            "this resource requires an access token",
            "missing_token",
        ),
        Rejection::Auth(A::Credential(C::Multiple)) => {
            let d = "more than one Authorization header";
            s(
                StatusCode::BAD_REQUEST,
                Some(Some(("invalid_request", d))),
                "invalid_request",
                d,
                "invalid_request",
            )
        }
        Rejection::Auth(A::Credential(C::Malformed)) => {
            let d = "the Authorization header is malformed";
            s(
                StatusCode::BAD_REQUEST,
                Some(Some(("invalid_request", d))),
                "invalid_request",
                d,
                "invalid_request",
            )
        }
        Rejection::Auth(A::Credential(C::TooLong)) => {
            let d = "the access token is too long";
            s(
                StatusCode::BAD_REQUEST,
                Some(Some(("invalid_request", d))),
                "invalid_request",
                d,
                "invalid_request",
            )
        }
        Rejection::Auth(A::InvalidToken) => {
            let d = "the access token is invalid, expired or revoked";
            s(
                StatusCode::UNAUTHORIZED,
                Some(Some(("invalid_token", d))),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::BindingRequired) => {
            let d = "the access token is sender-constrained and was presented without its proof";
            s(
                StatusCode::UNAUTHORIZED,
                Some(Some(("invalid_token", d))),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::Forbidden) => {
            let d = "the authorization server refused this token for this resource";
            s(
                StatusCode::FORBIDDEN,
                Some(Some(("insufficient_scope", d))),
                "insufficient_scope",
                d,
                "forbidden",
            )
        }
        Rejection::Auth(A::Unavailable(_)) => s(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "temporarily_unavailable",
            "the token could not be validated; try again later",
            "introspection_unavailable",
        ),
        Rejection::Policy(PolicyError::InsufficientScope) => {
            let d = "the access token does not carry the scopes this resource requires";
            s(
                StatusCode::FORBIDDEN,
                Some(Some(("insufficient_scope", d))),
                "insufficient_scope",
                d,
                "insufficient_scope",
            )
        }
        Rejection::Forward(ForwardError::Unreachable) => s(
            StatusCode::BAD_GATEWAY,
            None,
            "bad_gateway",
            "the upstream could not be reached",
            "upstream_unreachable",
        ),
        Rejection::Forward(ForwardError::Timeout) => s(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            "gateway_timeout",
            "the upstream did not answer in time",
            "upstream_timeout",
        ),
    }
}

/// The outcome label of a rejection (metrics, access log).
pub fn outcome(rejection: &Rejection) -> &'static str {
    shape(rejection).outcome
}

/// Builds the response for a rejection.
pub fn reject(rejection: &Rejection, ctx: &Context<'_>) -> Response<Body> {
    let shape = shape(rejection);
    let body = format!(
        r#"{{"error":"{}","error_description":"{}"}}"#,
        shape.body_error, shape.description
    );
    let mut response = Response::new(full(body));
    *response.status_mut() = shape.status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if shape.status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    if let Some(challenge) = shape.challenge {
        let mut value = String::from(r#"Bearer realm="tokengate""#);
        if let Some((code, description)) = challenge {
            value.push_str(&format!(
                r#", error="{code}", error_description="{description}""#
            ));
            if code == "insufficient_scope"
                && let Some(scopes) = ctx.required_scopes.filter(|s| !s.is_empty())
            {
                // Scope tokens were validated at config load (no '"' or '\'), so quoting is safe.
                value.push_str(&format!(r#", scope="{scopes}""#));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(r: &Response<Body>) -> &str {
        r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap()
    }

    #[test]
    fn missing_token_gets_a_bare_challenge() {
        let r = reject(
            &CredentialError::Missing.into(),
            &Context {
                required_scopes: None,
            },
        );
        assert_eq!(r.status(), 401);
        assert_eq!(challenge(&r), r#"Bearer realm="tokengate""#);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn insufficient_scope_names_the_required_scopes() {
        let r = reject(
            &PolicyError::InsufficientScope.into(),
            &Context {
                required_scopes: Some("orders.read orders.write"),
            },
        );
        assert_eq!(r.status(), 403);
        assert!(challenge(&r).contains(r#"error="insufficient_scope""#));
        assert!(challenge(&r).ends_with(r#"scope="orders.read orders.write""#));
    }

    #[test]
    fn unavailable_fails_closed_with_retry_after() {
        let r = reject(
            &Rejection::Auth(AuthError::Unavailable("x")),
            &Context {
                required_scopes: None,
            },
        );
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn malformed_credentials_are_invalid_request() {
        for e in [
            CredentialError::Malformed,
            CredentialError::Multiple,
            CredentialError::TooLong,
        ] {
            let r = reject(
                &e.into(),
                &Context {
                    required_scopes: None,
                },
            );
            assert_eq!(r.status(), 400);
            assert!(challenge(&r).contains(r#"error="invalid_request""#));
        }
    }
}
