//! The only place where a refusal becomes a response: status, `WWW-Authenticate`, JSON body,
//! `Cache-Control: no-store`, and the outcome label for metrics and the access log. One
//! exhaustive `match`, no catch-all arm, so a new error variant cannot be forgotten.
//!
//! Challenges follow RFC 6750 section 3: no `error` attribute when no credentials were sent
//! (section 3.1), `invalid_request` → 400, `invalid_token` → 401, `insufficient_scope` → 403 with
//! the route's required scopes. Descriptions are fixed strings: nothing from the request, and
//! never the token, is echoed.

use crate::auth::{AuthError, CredentialError, Scheme};
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
    #[error("request target too long")]
    UriTooLong,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("method not implemented")]
    MethodNotImplemented,
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
#[derive(Default)]
pub struct Context<'a> {
    /// The matched route's required scopes, space-separated (for `insufficient_scope`).
    pub required_scopes: Option<&'a str>,
    /// The accepted DPoP algorithms (`ES256 PS256 …`) when DPoP is enabled.
    pub dpop_algs: Option<&'a str>,
    /// The scheme the client used, once a credential was parsed.
    pub presented: Option<Scheme>,
}

/// Which challenge a refusal carries.
enum Challenge {
    None,
    /// No credentials: every supported scheme, no error (RFC 6750 section 3.1, RFC 9449 7.2).
    Bare,
    /// An error in the scheme the client used (or Bearer when it is unknown).
    Error(&'static str),
    /// An error that only the DPoP scheme can express.
    DpopError(&'static str),
}

struct Shape {
    status: StatusCode,
    challenge: Challenge,
    body_error: &'static str,
    description: &'static str,
    outcome: &'static str,
}

fn shape(rejection: &Rejection) -> Shape {
    use AuthError as A;
    use Challenge as Ch;
    use CredentialError as C;
    use StatusCode as S;
    let s = |status, challenge, body_error, description, outcome| Shape {
        status,
        challenge,
        body_error,
        description,
        outcome,
    };
    match rejection {
        Rejection::BadPath(_) => s(
            S::BAD_REQUEST,
            Ch::None,
            "invalid_request",
            "the request path is not acceptable",
            "bad_request",
        ),
        Rejection::BadRequest(why) => s(
            S::BAD_REQUEST,
            Ch::None,
            "invalid_request",
            why,
            "bad_request",
        ),
        Rejection::NoRoute => s(
            S::NOT_FOUND,
            Ch::None,
            "not_found",
            "no route matches this request",
            "no_route",
        ),
        Rejection::UriTooLong => s(
            S::URI_TOO_LONG,
            Ch::None,
            "invalid_request",
            "the request target is too long",
            "bad_request",
        ),
        Rejection::MethodNotImplemented => s(
            S::NOT_IMPLEMENTED,
            Ch::None,
            "invalid_request",
            "this method is not implemented",
            "bad_request",
        ),
        Rejection::MethodNotAllowed => s(
            S::METHOD_NOT_ALLOWED,
            Ch::None,
            "invalid_request",
            "this method is not allowed",
            "bad_request",
        ),
        Rejection::Auth(A::Credential(C::Missing | C::UnsupportedScheme)) => s(
            S::UNAUTHORIZED,
            Ch::Bare,
            "unauthorized",
            "this resource requires an access token",
            "missing_token",
        ),
        Rejection::Auth(A::Credential(C::Multiple)) => {
            let d = "more than one Authorization header";
            s(
                S::BAD_REQUEST,
                Ch::Error("invalid_request"),
                "invalid_request",
                d,
                "invalid_request",
            )
        }
        Rejection::Auth(A::Credential(C::Malformed)) => {
            let d = "the Authorization header is malformed";
            s(
                S::BAD_REQUEST,
                Ch::Error("invalid_request"),
                "invalid_request",
                d,
                "invalid_request",
            )
        }
        Rejection::Auth(A::Credential(C::TooLong)) => {
            let d = "the access token is too long";
            s(
                S::BAD_REQUEST,
                Ch::Error("invalid_request"),
                "invalid_request",
                d,
                "invalid_request",
            )
        }
        Rejection::Auth(A::InvalidToken) => {
            let d = "the access token is invalid, expired or revoked";
            s(
                S::UNAUTHORIZED,
                Ch::Error("invalid_token"),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::BindingRequired) => {
            let d = "the access token is sender-constrained and was presented without its proof";
            s(
                S::UNAUTHORIZED,
                Ch::Error("invalid_token"),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::DpopProof(_)) => {
            let d = "the DPoP proof is invalid";
            s(
                S::UNAUTHORIZED,
                Ch::DpopError("invalid_dpop_proof"),
                "invalid_dpop_proof",
                d,
                "invalid_dpop_proof",
            )
        }
        Rejection::Auth(A::DpopProofMissing) => {
            let d = "the DPoP scheme needs exactly one DPoP proof header";
            s(
                S::UNAUTHORIZED,
                Ch::DpopError("invalid_dpop_proof"),
                "invalid_dpop_proof",
                d,
                "invalid_dpop_proof",
            )
        }
        Rejection::Auth(A::DpopRefusedByServer) => {
            let d = "the authorization server refused the DPoP proof";
            s(
                S::UNAUTHORIZED,
                Ch::DpopError("invalid_dpop_proof"),
                "invalid_dpop_proof",
                d,
                "invalid_dpop_proof",
            )
        }
        Rejection::Auth(A::UseDpopNonce) => {
            let d =
                "the authorization server requires a DPoP nonce; retry with the DPoP-Nonce value";
            s(
                S::UNAUTHORIZED,
                Ch::DpopError("use_dpop_nonce"),
                "use_dpop_nonce",
                d,
                "use_dpop_nonce",
            )
        }
        Rejection::Auth(A::DpopKeyMismatch) => {
            let d = "the DPoP proof key does not match the access token's binding";
            s(
                S::UNAUTHORIZED,
                Ch::DpopError("invalid_token"),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::NotDpopBound) => {
            let d = "the access token is not DPoP-bound; present it with the Bearer scheme";
            s(
                S::UNAUTHORIZED,
                Ch::DpopError("invalid_token"),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::CertificateMismatch) => {
            let d = "the access token is bound to another client certificate";
            s(
                S::UNAUTHORIZED,
                Ch::Error("invalid_token"),
                "invalid_token",
                d,
                "invalid_token",
            )
        }
        Rejection::Auth(A::Forbidden) => {
            let d = "the authorization server refused this token for this resource";
            s(
                S::FORBIDDEN,
                Ch::Error("insufficient_scope"),
                "insufficient_scope",
                d,
                "forbidden",
            )
        }
        Rejection::Auth(A::Unavailable(_)) => s(
            S::SERVICE_UNAVAILABLE,
            Ch::None,
            "temporarily_unavailable",
            "the token could not be validated; try again later",
            "introspection_unavailable",
        ),
        Rejection::Policy(PolicyError::InsufficientScope) => {
            let d = "the access token does not carry the scopes this resource requires";
            s(
                S::FORBIDDEN,
                Ch::Error("insufficient_scope"),
                "insufficient_scope",
                d,
                "insufficient_scope",
            )
        }
        Rejection::Forward(ForwardError::ClientBody) => s(
            S::BAD_REQUEST,
            Ch::None,
            "invalid_request",
            "the request body is malformed",
            "bad_request",
        ),
        Rejection::Forward(ForwardError::BodyTooLarge) => s(
            S::PAYLOAD_TOO_LARGE,
            Ch::None,
            "invalid_request",
            "the request body is larger than this route accepts",
            "body_too_large",
        ),
        Rejection::Forward(ForwardError::Unreachable) => s(
            S::BAD_GATEWAY,
            Ch::None,
            "bad_gateway",
            "the upstream could not be reached",
            "upstream_unreachable",
        ),
        Rejection::Forward(ForwardError::Timeout) => s(
            S::GATEWAY_TIMEOUT,
            Ch::None,
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
    let error_params = |code: &str| {
        let mut p = format!(
            r#", error="{code}", error_description="{}""#,
            shape.description
        );
        if code == "insufficient_scope"
            && let Some(scopes) = ctx.required_scopes.filter(|s| !s.is_empty())
        {
            // Scope tokens were validated at config load (no '"' or '\'), so quoting is safe.
            p.push_str(&format!(r#", scope="{scopes}""#));
        }
        p
    };
    let bearer_bare = r#"Bearer realm="tokengate""#.to_owned();
    let dpop_bare = ctx
        .dpop_algs
        .map(|algs| format!(r#"DPoP realm="tokengate", algs="{algs}""#));
    let challenges: Vec<String> = match shape.challenge {
        Challenge::None => Vec::new(),
        Challenge::Bare => std::iter::once(bearer_bare).chain(dpop_bare).collect(),
        // RFC 9449 section 7.2: the error goes in the scheme the client used; the other scheme
        // is offered without error information.
        Challenge::Error(code) if ctx.presented == Some(Scheme::Dpop) => {
            let algs = ctx.dpop_algs.unwrap_or("");
            vec![format!(
                r#"DPoP realm="tokengate"{}, algs="{algs}""#,
                error_params(code)
            )]
        }
        Challenge::Error(code) => std::iter::once(format!("{bearer_bare}{}", error_params(code)))
            .chain(dpop_bare)
            .collect(),
        Challenge::DpopError(code) => {
            let algs = ctx.dpop_algs.unwrap_or("");
            vec![format!(
                r#"DPoP realm="tokengate"{}, algs="{algs}""#,
                error_params(code)
            )]
        }
    };
    for challenge in challenges {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            h.append(header::WWW_AUTHENTICATE, v);
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
        let r = reject(&CredentialError::Missing.into(), &Context::default());
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
                ..Context::default()
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
            &Context::default(),
        );
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn dpop_enabled_offers_both_schemes_and_puts_proof_errors_in_dpop() {
        let ctx = Context {
            dpop_algs: Some("ES256 EdDSA"),
            ..Context::default()
        };
        let r = reject(&CredentialError::Missing.into(), &ctx);
        let all: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(
            all,
            [
                r#"Bearer realm="tokengate""#,
                r#"DPoP realm="tokengate", algs="ES256 EdDSA""#
            ]
        );
        let presented = Context {
            presented: Some(Scheme::Dpop),
            ..ctx
        };
        let r = reject(
            &AuthError::DpopProof(crate::auth::dpop::ProofError::Replay).into(),
            &presented,
        );
        assert_eq!(r.status(), 401);
        let c = challenge(&r);
        assert!(
            c.starts_with(r#"DPoP realm="tokengate", error="invalid_dpop_proof""#)
                && c.ends_with(r#"algs="ES256 EdDSA""#),
            "{c}"
        );
        let r = reject(&AuthError::DpopKeyMismatch.into(), &presented);
        assert!(challenge(&r).starts_with(r#"DPoP realm="tokengate", error="invalid_token""#));
        // A Bearer-scheme error keeps the error in Bearer and offers DPoP plainly (RFC 9449 7.2).
        let bearer = Context {
            presented: Some(Scheme::Bearer),
            ..presented
        };
        let r = reject(&AuthError::InvalidToken.into(), &bearer);
        let all: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(all[0].starts_with(r#"Bearer realm="tokengate", error="invalid_token""#));
        assert_eq!(all[1], r#"DPoP realm="tokengate", algs="ES256 EdDSA""#);
    }

    #[test]
    fn malformed_credentials_are_invalid_request() {
        for e in [
            CredentialError::Malformed,
            CredentialError::Multiple,
            CredentialError::TooLong,
        ] {
            let r = reject(&e.into(), &Context::default());
            assert_eq!(r.status(), 400);
            assert!(challenge(&r).contains(r#"error="invalid_request""#));
        }
    }
}
