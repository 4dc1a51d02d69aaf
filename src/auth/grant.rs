//! `Grant`: what a successful introspection says about a token, in the form the later stages
//! need. Identity header values are prepared once, when the grant enters the cache, so that a
//! cache hit adds headers without formatting anything.

use http::HeaderValue;
use std::time::SystemTime;

/// Header values for the identity headers, ready to insert.
#[derive(Debug, Clone, Default)]
pub struct IdentityValues {
    pub subject: Option<HeaderValue>,
    pub client_id: Option<HeaderValue>,
    /// Space-separated scopes; present (possibly empty) on every grant.
    pub scopes: Option<HeaderValue>,
}

/// What the token is bound to (sender constraint).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Binding {
    /// A bearer token: whoever holds it may use it.
    #[default]
    None,
    /// DPoP-bound (RFC 9449): the RFC 7638 thumbprint of the only key whose proofs count.
    Dpop(Box<str>),
    /// DPoP-bound, key not learned yet (Authlete said a proof was expected). A grant with this
    /// binding authorizes nothing.
    DpopKeyUnknown,
}

/// An active token's facts.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: Option<Box<str>>,
    pub client_id: Option<Box<str>>,
    pub scopes: Box<[Box<str>]>,
    pub expires_at: Option<SystemTime>,
    pub identity: IdentityValues,
    pub binding: Binding,
    /// RFC 8705 `x5t#S256` of the client certificate the token is bound to, if any.
    pub certificate: Option<Box<str>>,
}

impl Grant {
    pub fn new(
        subject: Option<String>,
        client_id: Option<String>,
        scopes: Vec<String>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        let identity = IdentityValues {
            subject: subject.as_deref().map(header_value),
            client_id: client_id.as_deref().map(header_value),
            scopes: Some(header_value(&scopes.join(" "))),
        };
        Self {
            subject: subject.map(Into::into),
            client_id: client_id.map(Into::into),
            scopes: scopes.into_iter().map(Into::into).collect(),
            expires_at,
            identity,
            binding: Binding::None,
            certificate: None,
        }
    }

    pub fn with_certificate(mut self, thumbprint: Option<String>) -> Self {
        self.certificate = thumbprint.filter(|t| !t.is_empty()).map(Into::into);
        self
    }

    /// What the cache remembers about a token known to be DPoP-bound before any proof from its
    /// key was accepted: no identity, no scopes.
    pub fn dpop_bound_marker() -> Self {
        Self::new(None, None, Vec::new(), None).with_binding(Binding::DpopKeyUnknown)
    }

    pub fn with_binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| **s == *scope)
    }
}

/// Identity values come from the authorization server, not from us: percent-encode anything
/// outside visible ASCII and space so that no value can break header framing.
fn header_value(raw: &str) -> HeaderValue {
    if let Ok(v) = HeaderValue::from_str(raw)
        && raw.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%')
    {
        return v;
    }
    let mut encoded = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_safe_header_values() {
        let g = Grant::new(
            Some("al\r\nice".into()),
            Some("café".into()),
            vec!["a".into(), "b".into()],
            None,
        );
        assert_eq!(g.identity.subject.as_ref().unwrap(), "al%0D%0Aice");
        assert_eq!(g.identity.client_id.as_ref().unwrap(), "caf%C3%A9");
        assert_eq!(g.identity.scopes.as_ref().unwrap(), "a b");
        assert!(g.has_scope("a") && !g.has_scope("A"));
    }
}
