//! `Grant`: what a successful introspection says about a token, in the form the later stages
//! need. Identity header values are prepared once, when the grant enters the cache, so that a
//! cache hit adds headers without formatting anything.
//!
//! A grant lives in the token cache for as long as its token may be served, so its size is
//! the cache's size: the three identity values are slices of one shared buffer, and the raw
//! strings they came from are not kept (issue 5: 100,000 cached tokens in under 100 MiB).

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;
use std::borrow::Cow;
use std::time::SystemTime;

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
    /// Header-safe forms (see `header_safe`) of the subject and client id.
    subject: Option<HeaderValue>,
    client_id: Option<HeaderValue>,
    /// The scopes, each made header-safe with spaces escaped too, joined by single spaces.
    scopes: HeaderValue,
    pub expires_at: Option<SystemTime>,
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
        let subject = subject.as_deref().map(|s| header_safe(s, false));
        let client_id = client_id.as_deref().map(|s| header_safe(s, false));
        let scopes: Vec<Cow<'_, str>> = scopes.iter().map(|s| header_safe(s, true)).collect();
        let parts = [subject.as_deref(), client_id.as_deref()];
        let capacity = parts.iter().flatten().map(|p| p.len()).sum::<usize>()
            + scopes.iter().map(|s| s.len() + 1).sum::<usize>();
        let mut buffer = BytesMut::with_capacity(capacity);
        let mut ranges = [0..0, 0..0, 0..0];
        for (range, part) in ranges.iter_mut().zip(parts) {
            let start = buffer.len();
            buffer.put_slice(part.unwrap_or("").as_bytes());
            *range = start..buffer.len();
        }
        let start = buffer.len();
        for (i, scope) in scopes.iter().enumerate() {
            if i > 0 {
                buffer.put_u8(b' ');
            }
            buffer.put_slice(scope.as_bytes());
        }
        ranges[2] = start..buffer.len();
        let buffer: Bytes = buffer.freeze();
        let value = |range: std::ops::Range<usize>| {
            // Every byte is visible ASCII or a space (header_safe), so this cannot fail.
            HeaderValue::from_maybe_shared(buffer.slice(range))
                .unwrap_or_else(|_| HeaderValue::from_static(""))
        };
        let [subject_range, client_range, scopes_range] = ranges;
        Self {
            subject: subject.is_some().then(|| value(subject_range)),
            client_id: client_id.is_some().then(|| value(client_range)),
            scopes: value(scopes_range),
            expires_at,
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

    /// Whether the token carries `scope` (exact, case-sensitive comparison).
    pub fn has_scope(&self, scope: &str) -> bool {
        let wanted = header_safe(scope, true);
        !wanted.is_empty() && self.scopes_str().split(' ').any(|s| s == wanted)
    }

    /// The subject as sent upstream (header-safe form).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The client id as sent upstream (header-safe form).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_ref().and_then(|v| v.to_str().ok())
    }

    pub fn subject_value(&self) -> Option<&HeaderValue> {
        self.subject.as_ref()
    }

    pub fn client_id_value(&self) -> Option<&HeaderValue> {
        self.client_id.as_ref()
    }

    /// Space-separated scopes; present (possibly empty) on every grant.
    pub fn scopes_value(&self) -> &HeaderValue {
        &self.scopes
    }

    fn scopes_str(&self) -> &str {
        self.scopes.to_str().unwrap_or("")
    }
}

/// Identity values come from the authorization server, not from us: percent-encode anything
/// outside visible ASCII and space (and `%` itself, so the encoding stays reversible) so that
/// no value can break header framing. In a scope, a space is encoded too: it separates scopes
/// in the joined value.
fn header_safe(raw: &str, escape_space: bool) -> Cow<'_, str> {
    let keep = |b: u8| (0x21..0x7f).contains(&b) && b != b'%' || (b == b' ' && !escape_space);
    if raw.bytes().all(keep) {
        return Cow::Borrowed(raw);
    }
    let mut encoded = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if keep(b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(encoded)
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
        assert_eq!(g.subject_value().unwrap(), "al%0D%0Aice");
        assert_eq!(g.subject(), Some("al%0D%0Aice"));
        assert_eq!(g.client_id_value().unwrap(), "caf%C3%A9");
        assert_eq!(g.scopes_value(), "a b");
        assert!(g.has_scope("a") && g.has_scope("b") && !g.has_scope("A"));
        assert!(!g.has_scope("a b") && !g.has_scope(""));
    }

    #[test]
    fn a_space_inside_a_scope_cannot_forge_two_scopes() {
        let g = Grant::new(None, None, vec!["read write".into(), "50%".into()], None);
        assert_eq!(g.scopes_value(), "read%20write 50%25");
        assert!(!g.has_scope("read") && !g.has_scope("write"));
        assert!(g.has_scope("read write") && g.has_scope("50%"));
        assert_eq!(g.subject(), None);
        assert_eq!(g.client_id(), None);
    }

    #[test]
    fn no_scopes_is_an_empty_value() {
        let g = Grant::new(Some("s".into()), None, Vec::new(), None);
        assert_eq!(g.scopes_value(), "");
        assert!(!g.has_scope(""));
        assert_eq!(g.subject(), Some("s"));
    }
}
