//! Header hygiene for forwarded requests and returned responses.
//!
//! RFC 9110 section 7.6.1: "a proxy MUST parse the Connection header field before a message is
//! forwarded and, for each connection-option in this field, remove any header or trailer field(s)
//! from the message with the same name as the connection-option, and then remove the Connection
//! header field itself". The listed names are removed *before* tokengate adds its own headers,
//! so `Connection: X-Auth-Subject` cannot remove an identity header the gateway sets.

use crate::auth::Grant;
use crate::config::IdentityHeaders;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const KEEP_ALIVE: &str = "keep-alive";
const PROXY_CONNECTION: &str = "proxy-connection";
const CLOSE: HeaderName = HeaderName::from_static("close");

/// Headers that describe the client to the upstream; from an untrusted peer they are lies.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-url-scheme",
    "front-end-https",
];

/// Headers some frameworks and proxies read *instead of* the request line: a path or method
/// the gateway never authorized. Removed from every request, whoever sent it.
const OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-envoy-original-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes, in one pass over the header names, hop-by-hop fields (the fixed set and those named
/// in `Connection`), `Proxy`, path and method overrides, names containing `_`, the `identity`
/// headers when given (a client may not send them), and, when `drop_forwarding` is set (an
/// untrusted peer, or any response), every forwarding header. When `keep_upgrade` is set (a
/// WebSocket handshake), `Connection: upgrade` and `Upgrade` survive so the upstream sees the
/// handshake.
///
/// Hand-written as a single scan: matching each present name against the lists costs far less
/// than ~40 `HeaderMap::remove` calls by name, which profiling showed on every request.
pub fn strip_hop_by_hop(
    headers: &mut HeaderMap,
    keep_upgrade: bool,
    drop_forwarding: bool,
    identity: Option<&IdentityHeaders>,
) {
    let mut listed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',').map(str::trim) {
            // The common tokens: `keep-alive` is removed anyway, `close` names no field worth
            // parsing a name for (a field literally named `close` still goes).
            if name.eq_ignore_ascii_case(KEEP_ALIVE) {
                continue;
            }
            if name.eq_ignore_ascii_case("close") {
                listed.push(CLOSE);
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes())
                && !is_protected(&name)
                && !(keep_upgrade && name == header::UPGRADE)
            {
                listed.push(name);
            }
        }
    }
    let is_identity = |name: &HeaderName| {
        identity.is_some_and(|i| *name == i.subject || *name == i.client_id || *name == i.scopes)
    };
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let remove = match n {
            "connection" | "upgrade" => !keep_upgrade,
            "te"
            | "trailer"
            | "transfer-encoding"
            | "proxy-authorization"
            | "proxy-authenticate"
            | KEEP_ALIVE
            | PROXY_CONNECTION => true,
            // `Proxy` becomes HTTP_PROXY in CGI-style upstreams (httpoxy).
            "proxy" => true,
            // RFC 9110 section 17.10: servers that map header names to variables read
            // `X_Auth_Subject` as `X-Auth-Subject`. Names with `_` are dropped, as nginx does.
            n if n.contains('_') => true,
            n => {
                OVERRIDES.contains(&n)
                    || (drop_forwarding && FORWARDING.contains(&n))
                    || listed.contains(name)
                    || is_identity(name)
            }
        };
        if remove {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(&name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// A WebSocket upgrade request (RFC 6455 over RFC 9110 section 7.8): `Upgrade: websocket` *and*
/// `Connection: upgrade`. Only WebSocket is passed through: any other protocol (notably `h2c`,
/// which would let the client talk HTTP/2 straight to the upstream past every check) is treated
/// as an ordinary request and its `Upgrade` dropped as hop-by-hop.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let mut protocols = headers.get_all(header::UPGRADE).iter();
    let websocket_only = matches!(
        (protocols.next().and_then(|v| v.to_str().ok()), protocols.next()),
        (Some(p), None) if p.trim().eq_ignore_ascii_case("websocket")
    );
    websocket_only
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// `Connection` may not remove what the request's meaning depends on.
fn is_protected(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::AUTHORIZATION
        || name.as_str() == "dpop"
}

/// Sets the identity headers from a grant.
pub fn add_identity(headers: &mut HeaderMap, identity: &IdentityHeaders, grant: &Grant) {
    if let Some(v) = grant.subject_value() {
        headers.insert(identity.subject.clone(), v.clone());
    }
    if let Some(v) = grant.client_id_value() {
        headers.insert(identity.client_id.clone(), v.clone());
    }
    headers.insert(identity.scopes.clone(), grant.scopes_value().clone());
}

/// What the gateway knows about the client connection.
pub struct Peer<'a> {
    /// The peer's address, rendered once per connection (it is the whole X-Forwarded-For
    /// value for most requests, so the hot path only clones it).
    pub ip: &'a HeaderValue,
    pub trusted: bool,
    /// `http` or `https`: the listener's scheme.
    pub proto: &'static str,
    pub host: Option<&'a HeaderValue>,
}

/// Discards forwarding headers from an untrusted peer and writes fresh ones. From a trusted
/// proxy the existing chain is kept and the peer appended (X-Forwarded-For: real peer last).
pub fn set_forwarding(headers: &mut HeaderMap, peer: &Peer<'_>) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let xfh = HeaderName::from_static("x-forwarded-host");
    let mut chain = String::new();
    if peer.trusted {
        for v in headers.get_all(&xff) {
            if let Ok(v) = v.to_str() {
                if !chain.is_empty() {
                    chain.push_str(", ");
                }
                chain.push_str(v.trim());
            }
        }
    }
    // From an untrusted peer the forwarding headers were already dropped by
    // `strip_hop_by_hop(.., drop_forwarding = true)`.
    let keep_proto = peer.trusted && headers.contains_key(&xfp);
    let keep_host = peer.trusted && headers.contains_key(&xfh);
    if chain.is_empty() {
        headers.insert(xff, peer.ip.clone());
    } else {
        chain.push_str(", ");
        chain.push_str(peer.ip.to_str().unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&chain) {
            headers.insert(xff, v);
        }
    }
    if !keep_proto {
        headers.insert(xfp, HeaderValue::from_static(peer.proto));
    }
    if !keep_host && let Some(host) = peer.host {
        headers.insert(xfh, host.clone());
    }
}

/// Response side: hop-by-hop fields from the upstream are not the client's business, and
/// forwarding headers the upstream echoes would reveal internal addresses (RFC 7239 8.2).
pub fn strip_response(headers: &mut HeaderMap, keep_upgrade: bool) {
    strip_hop_by_hop(headers, keep_upgrade, true, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_listed_and_fixed_hop_by_hop_are_removed() {
        let mut h = map(&[
            (
                "connection",
                "close, x-secret, Keep-Alive, host, authorization",
            ),
            ("x-secret", "1"),
            ("close", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Bearer t"),
            ("host", "a"),
            ("authorization", "Bearer t"),
            ("x-keep", "1"),
        ]);
        strip_hop_by_hop(&mut h, false, false, None);
        assert!(
            h.get("x-secret").is_none() && h.get("keep-alive").is_none() && h.get("te").is_none()
        );
        assert!(h.get("connection").is_none() && h.get("proxy-authorization").is_none());
        assert!(h.get("close").is_none());
        assert!(
            h.get("host").is_some()
                && h.get("authorization").is_some()
                && h.get("x-keep").is_some()
        );
    }

    #[test]
    fn client_sent_identity_headers_are_removed_in_the_same_scan() {
        let identity = IdentityHeaders {
            subject: HeaderName::from_static("x-auth-subject"),
            client_id: HeaderName::from_static("x-auth-client-id"),
            scopes: HeaderName::from_static("x-auth-scopes"),
        };
        let mut h = map(&[
            ("x-auth-subject", "admin"),
            ("x-auth-subject", "root"),
            ("x-auth-client-id", "c"),
            ("x-auth-scopes", "all"),
            ("x-other", "1"),
        ]);
        strip_hop_by_hop(&mut h, false, false, Some(&identity));
        assert!(h.get("x-auth-subject").is_none() && h.get("x-auth-client-id").is_none());
        assert!(h.get("x-auth-scopes").is_none() && h.get("x-other").is_some());
        let mut response = map(&[("x-auth-subject", "kept")]);
        strip_hop_by_hop(&mut response, false, false, None);
        assert!(response.get("x-auth-subject").is_some());
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        let (ip, host) = (
            HeaderValue::from_static("10.0.0.9"),
            HeaderValue::from_static("api.example"),
        );
        let peer = Peer {
            ip: &ip,
            trusted: false,
            proto: "http",
            host: Some(&host),
        };
        strip_hop_by_hop(&mut h, false, true, None);
        set_forwarding(&mut h, &peer);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert!(h.get("forwarded").is_none() && h.get("x-real-ip").is_none());
    }

    #[test]
    fn trusted_proxy_chain_is_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
        ]);
        let ip = HeaderValue::from_static("10.0.0.9");
        let peer = Peer {
            ip: &ip,
            trusted: true,
            proto: "http",
            host: None,
        };
        set_forwarding(&mut h, &peer);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
