//! Authentication failures, classified by who caused them. `respond.rs` turns each into a
//! response; nothing here builds one.

use super::CredentialError;
use super::dpop::ProofError;

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
    /// The DPoP proof failed a local check (RFC 9449 section 4.3): `invalid_dpop_proof`.
    #[error(transparent)]
    DpopProof(#[from] ProofError),
    /// The DPoP scheme was used without exactly one `DPoP` header.
    #[error("the DPoP scheme needs exactly one DPoP proof header")]
    DpopProofMissing,
    /// The authorization server refused the proof (e.g. Authlete A065309-A065313).
    #[error("the authorization server refused the DPoP proof")]
    DpopRefusedByServer,
    /// The authorization server requires a (fresh) DPoP nonce (RFC 9449 section 9).
    #[error("the authorization server requires a DPoP nonce")]
    UseDpopNonce,
    /// The proof is valid but signed by a key other than the one the token is bound to
    /// (RFC 9449 Figure 16: `invalid_token`).
    #[error("the DPoP proof key does not match the token's binding")]
    DpopKeyMismatch,
    /// A token that is not DPoP-bound was presented with the DPoP scheme (standards DP-04).
    #[error("the access token is not DPoP-bound")]
    NotDpopBound,
    /// The token is bound to a client certificate other than the one presented (RFC 8705
    /// section 3: `invalid_token`).
    #[error("the client certificate does not match the token's binding")]
    CertificateMismatch,
    /// The authorization server refused the token for this request for a reason other than
    /// scope (e.g. subject or authentication context).
    #[error("the authorization server refused the token")]
    Forbidden,
    /// The introspection backend could not give a verdict: fail closed (503).
    #[error("introspection unavailable: {0}")]
    Unavailable(&'static str),
}
