//! Authentication failures, classified by who caused them. `respond.rs` turns each into a
//! response; nothing here builds one.

use super::CredentialError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// Unknown, expired, revoked or otherwise inactive (RFC 6750 `invalid_token`).
    #[error("the access token is not active")]
    InvalidToken,
    /// The token is sender-constrained (DPoP or certificate bound) and was presented without
    /// the proof its binding requires (RFC 9449 section 7.2, RFC 8705 section 3).
    #[error("the access token is sender-constrained")]
    BindingRequired,
    /// The authorization server refused the token for this request for a reason other than
    /// scope (e.g. subject or authentication context).
    #[error("the authorization server refused the token")]
    Forbidden,
    /// The introspection backend could not give a verdict: fail closed (503).
    #[error("introspection unavailable: {0}")]
    Unavailable(&'static str),
}
