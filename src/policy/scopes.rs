//! Scope enforcement (RFC 6750 section 3.1 `insufficient_scope`). Scopes are checked locally
//! against the cached grant, so one introspection serves every route.

use super::routes::Access;
use crate::auth::Grant;

/// The grant does not satisfy the route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the token lacks a required scope")]
    InsufficientScope,
}

/// Every scope the route requires must be present in the grant (case-sensitive, RFC 6749
/// section 3.3).
pub fn authorize(access: &Access, grant: &Grant) -> Result<(), PolicyError> {
    match access {
        Access::Public => Ok(()),
        Access::Protected { scopes } => {
            if scopes.iter().all(|s| grant.has_scope(s)) {
                Ok(())
            } else {
                Err(PolicyError::InsufficientScope)
            }
        }
    }
}
