//! Authentication: credential syntax, token hashing, introspection with its cache, and the
//! `Grant` value that later stages read. Knows nothing about routes; the order of the steps
//! belongs to `gateway.rs`.

mod cache;
mod credential;
pub mod dpop;
mod error;
mod grant;
pub mod introspect;
mod token_hash;

pub use cache::{CacheSettings, Source, TokenCache, Verdict, positive_ttl};
pub use credential::{AccessToken, Credential, CredentialError, Scheme};
pub use error::AuthError;
pub use grant::{Binding, Grant};
pub use token_hash::TokenHash;
