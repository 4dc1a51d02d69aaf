//! Raw file structures → validated `Config`. Every check that can be done once is done here,
//! so that the hot path only reads compiled values. Each error names its field path and, when
//! the value came from the file, its line and column.

use super::error::{ConfigError, Position};
use super::file::{FileAuth, FileConfig, FileDpop, FileRoute, FileUpstream, S};
use super::{Config, IdentityHeaders, IntrospectionSettings, Limits, Upstream};
use crate::auth::CacheSettings;
use crate::auth::dpop::{Alg, DpopSettings, NonceMode};
use crate::auth::introspect::{AuthleteApi, AuthleteSettings, Backend, Rfc7662Settings};
use crate::policy::{Access, PathPattern, Route, RouteTable};
use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

fn at<T>(s: &S<T>) -> Option<Position> {
    let l = s.referenced;
    (l.line() > 0).then(|| Position {
        line: l.line(),
        column: l.column(),
    })
}

fn err<T>(field: impl Into<String>, s: &S<T>, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(field, at(s), reason)
}

/// Header names the gateway owns or that carry framing; an identity header may not reuse them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "dpop",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "cookie",
];

pub(super) fn compile(raw: FileConfig, _file: &str) -> Result<Config, ConfigError> {
    let listen = socket_addr("listen", &raw.listen)?;
    let admin_listen = raw
        .admin_listen
        .as_ref()
        .map(|a| socket_addr("admin_listen", a))
        .transpose()?;
    let (tls, client_cert_header) = match &raw.tls {
        None => (None, None),
        Some(t) => {
            let f = &t.value;
            let compiled = crate::tls::server_config(
                std::path::Path::new(&f.cert_file),
                std::path::Path::new(&f.key_file),
                f.client_ca_file.as_deref().map(std::path::Path::new),
            )
            .map_err(|(field, reason)| err(field, t, reason))?;
            let header = match &f.client_cert_header {
                None => None,
                Some(h) => {
                    let name = HeaderName::from_bytes(h.value.as_bytes())
                        .map_err(|_| err("tls.client_cert_header", h, "not a valid header name"))?;
                    if raw.trusted_proxies.is_empty() {
                        return Err(err(
                            "tls.client_cert_header",
                            h,
                            "a forwarded certificate is only accepted from trusted_proxies; list them",
                        ));
                    }
                    Some(name)
                }
            };
            (Some(compiled), header)
        }
    };
    let dpop = match &raw.dpop {
        Some(d) if d.value.enabled => Some(dpop_settings(
            &d.value,
            raw.introspection.authlete.as_ref(),
        )?),
        _ => None,
    };
    let mut public_origin = None;
    if let Some(origin) = &raw.public_origin {
        let uri: Uri = origin
            .value
            .parse()
            .map_err(|_| err("public_origin", origin, "not a URL"))?;
        if uri.scheme().is_none()
            || uri.authority().is_none()
            || !matches!(uri.path(), "" | "/")
            || uri.query().is_some()
        {
            return Err(err(
                "public_origin",
                origin,
                "must be scheme://host[:port] with no path or query",
            ));
        }
        let (scheme, authority) = (
            uri.scheme_str().unwrap_or(""),
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
        );
        public_origin = Some(
            crate::auth::dpop::canonical_origin(scheme, authority).ok_or_else(|| {
                err(
                    "public_origin",
                    origin,
                    "must be an http or https origin without user information",
                )
            })?,
        );
    }
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, p)| trusted_proxy(&format!("trusted_proxies[{i}]"), p))
        .collect::<Result<Vec<_>, _>>()?;
    let introspection = introspection(&raw)?;
    let identity_headers = IdentityHeaders {
        subject: identity_header("identity_headers.subject", &raw.identity_headers.subject)?,
        client_id: identity_header(
            "identity_headers.client_id",
            &raw.identity_headers.client_id,
        )?,
        scopes: identity_header("identity_headers.scopes", &raw.identity_headers.scopes)?,
    };
    let names = [
        &identity_headers.subject,
        &identity_headers.client_id,
        &identity_headers.scopes,
    ];
    if names[0] == names[1] || names[0] == names[2] || names[1] == names[2] {
        return Err(ConfigError::new(
            "identity_headers",
            None,
            "the three identity headers must have different names",
        ));
    }
    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    let mut upstream_index = HashMap::new();
    for (name, u) in &raw.upstreams {
        upstream_index.insert(name.clone(), upstreams.len());
        upstreams.push(upstream(name, u)?);
    }
    if raw.routes.is_empty() {
        return Err(ConfigError::new(
            "routes",
            None,
            "at least one route is required (a request that matches none gets 404)",
        ));
    }
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let route = route(i, r, &upstream_index, &routes)?;
        routes.push(route);
    }
    Ok(Config {
        source: String::new(),
        listen,
        admin_listen,
        introspection,
        trusted_proxies,
        identity_headers,
        dpop,
        public_origin,
        tls,
        client_cert_header,
        limits: limits(&raw)?,
        workers: match raw.workers.value {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n <= 256 => n as usize,
            _ => {
                return Err(err(
                    "workers",
                    &raw.workers,
                    "must be between 0 (one per CPU) and 256",
                ));
            }
        },
        upstreams,
        routes: RouteTable::new(routes),
    })
}

fn dpop_settings<T>(d: &FileDpop, authlete: Option<&T>) -> Result<DpopSettings, ConfigError> {
    let algs = match &d.algs {
        None => Alg::DEFAULT_ALLOWED.to_vec(),
        Some(list) if list.value.is_empty() => {
            return Err(err("dpop.algs", list, "must list at least one algorithm"));
        }
        Some(list) => {
            let mut algs = Vec::new();
            for name in &list.value {
                let Some(alg) = Alg::parse(name) else {
                    return Err(err(
                        "dpop.algs",
                        list,
                        format!(
                            "`{name}` is not supported (asymmetric JWS algorithms only: ES256 ES384 ES512 RS256 RS384 RS512 PS256 PS384 PS512 EdDSA)"
                        ),
                    ));
                };
                algs.push(alg);
            }
            algs
        }
    };
    if !(1..=3600).contains(&d.max_age_secs.value) {
        return Err(err(
            "dpop.max_age_secs",
            &d.max_age_secs,
            "must be between 1 and 3600",
        ));
    }
    if d.clock_skew_secs.value > 300 {
        return Err(err(
            "dpop.clock_skew_secs",
            &d.clock_skew_secs,
            "must be at most 300",
        ));
    }
    if !(512..=65_536).contains(&d.max_proof_bytes.value) {
        return Err(err(
            "dpop.max_proof_bytes",
            &d.max_proof_bytes,
            "must be between 512 and 65536",
        ));
    }
    let nonce = match &d.nonce {
        None => NonceMode::None,
        Some(n) if n.value == "none" => NonceMode::None,
        Some(n) if n.value == "authlete" => {
            if authlete.is_none() {
                return Err(err(
                    "dpop.nonce",
                    n,
                    "`authlete` needs the authlete introspection backend",
                ));
            }
            NonceMode::Authlete
        }
        Some(n) => return Err(err("dpop.nonce", n, "must be `none` or `authlete`")),
    };
    Ok(DpopSettings {
        nonce,
        algs,
        max_age: Duration::from_secs(d.max_age_secs.value),
        clock_skew: Duration::from_secs(d.clock_skew_secs.value),
        max_proof_bytes: d.max_proof_bytes.value as usize,
        max_jti_bytes: 256,
    })
}

fn limits(raw: &FileConfig) -> Result<Limits, ConfigError> {
    let l = &raw.limits;
    let within = |field: &str, v: &S<u64>, range: std::ops::RangeInclusive<u64>| {
        if range.contains(&v.value) {
            Ok(v.value)
        } else {
            Err(err(
                format!("limits.{field}"),
                v,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    };
    Ok(Limits {
        max_token_bytes: within("max_token_bytes", &l.max_token_bytes, 16..=65_536)? as usize,
        // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
        max_header_bytes: within("max_header_bytes", &l.max_header_bytes, 8_192..=1_048_576)?
            as usize,
        max_uri_bytes: within("max_uri_bytes", &l.max_uri_bytes, 256..=65_534)? as usize,
        max_body_bytes: within("max_body_bytes", &l.max_body_bytes, 0..=u64::MAX)?,
        header_read_timeout: Duration::from_millis(within(
            "header_read_timeout_ms",
            &l.header_read_timeout_ms,
            100..=600_000,
        )?),
        max_connections: within("max_connections", &l.max_connections, 1..=1_000_000)? as usize,
        idle_timeout: Duration::from_millis(within(
            "idle_timeout_ms",
            &l.idle_timeout_ms,
            100..=3_600_000,
        )?),
    })
}

fn socket_addr(field: &str, s: &S<String>) -> Result<SocketAddr, ConfigError> {
    s.value.parse().map_err(|_| {
        err(
            field,
            s,
            format!("`{}` is not an address:port (e.g. 0.0.0.0:8080)", s.value),
        )
    })
}

fn trusted_proxy(field: &str, s: &S<String>) -> Result<IpNet, ConfigError> {
    let net: IpNet = s
        .value
        .parse()
        .or_else(|_| s.value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            err(
                field,
                s,
                format!("`{}` is not an IP address or CIDR block", s.value),
            )
        })?;
    if net.prefix_len() == 0 {
        return Err(err(
            field,
            s,
            "trusting every address would let any client forge X-Forwarded-*; list your proxies",
        ));
    }
    Ok(net)
}

fn identity_header(field: &str, s: &S<String>) -> Result<HeaderName, ConfigError> {
    let name = HeaderName::from_bytes(s.value.as_bytes()).map_err(|_| {
        err(
            field,
            s,
            format!("`{}` is not a valid header name", s.value),
        )
    })?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(err(
            field,
            s,
            format!("`{}` is reserved and cannot carry identity", s.value),
        ));
    }
    Ok(name)
}

fn http_url(field: &str, s: &S<String>) -> Result<Uri, ConfigError> {
    let uri: Uri = s
        .value
        .parse()
        .map_err(|_| err(field, s, format!("`{}` is not a URL", s.value)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(err(field, s, "must start with http:// or https://")),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(err(field, s, "has no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(err(field, s, "must not contain user information"));
    }
    if uri.query().is_some() {
        return Err(err(field, s, "must not have a query"));
    }
    Ok(uri)
}

fn introspection(raw: &FileConfig) -> Result<IntrospectionSettings, ConfigError> {
    let i = &raw.introspection;
    let backend = match (&i.authlete, &i.rfc7662) {
        (Some(_), Some(r)) => {
            return Err(err(
                "introspection.rfc7662",
                r,
                "configure either authlete or rfc7662, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                "introspection",
                None,
                "one of authlete or rfc7662 is required",
            ));
        }
        (Some(a), None) => {
            let a_val = &a.value;
            http_url("introspection.authlete.base_url", &a_val.base_url)?;
            let required = |field: &str, v: &Option<S<String>>| -> Result<String, ConfigError> {
                match v {
                    Some(s) if !s.value.is_empty() => Ok(s.value.clone()),
                    Some(s) => Err(err(
                        format!("introspection.authlete.{field}"),
                        s,
                        "must not be empty",
                    )),
                    None => Err(err(
                        format!("introspection.authlete.{field}"),
                        a,
                        format!("is required with api_version {}", a_val.api_version.value),
                    )),
                }
            };
            let api = match a_val.api_version.value {
                3 => {
                    let service_id = required("service_id", &a_val.service_id)?;
                    if let Some(id) = &a_val.service_id
                        && !service_id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        return Err(err(
                            "introspection.authlete.service_id",
                            id,
                            "must be a plain identifier (digits for Authlete)",
                        ));
                    }
                    AuthleteApi::V3 {
                        service_id,
                        access_token: required("access_token", &a_val.access_token)?,
                    }
                }
                2 => AuthleteApi::V2 {
                    api_key: required("api_key", &a_val.api_key)?,
                    api_secret: required("api_secret", &a_val.api_secret)?,
                },
                other => {
                    return Err(err(
                        "introspection.authlete.api_version",
                        &a_val.api_version,
                        format!("must be 2 or 3, not {other}"),
                    ));
                }
            };
            Backend::Authlete(AuthleteSettings::new(&a_val.base_url.value, api))
        }
        (None, Some(r)) => {
            http_url("introspection.rfc7662.endpoint", &r.value.endpoint)?;
            Backend::Rfc7662(Rfc7662Settings {
                endpoint: r.value.endpoint.value.clone(),
                client_id: r.value.client_id.clone(),
                client_secret: r.value.client_secret.clone(),
            })
        }
    };
    if !(1..=60_000).contains(&i.timeout_ms.value) {
        return Err(err(
            "introspection.timeout_ms",
            &i.timeout_ms,
            "must be between 1 and 60000",
        ));
    }
    let c = &i.cache;
    if c.max_entries.value == 0 {
        return Err(err(
            "introspection.cache.max_entries",
            &c.max_entries,
            "must be at least 1",
        ));
    }
    let negative_max_entries = match &c.negative_max_entries {
        Some(n) if n.value == 0 => {
            return Err(err(
                "introspection.cache.negative_max_entries",
                n,
                "must be at least 1",
            ));
        }
        Some(n) => n.value,
        None => (c.max_entries.value / 10).max(1_000),
    };
    Ok(IntrospectionSettings {
        backend,
        timeout: Duration::from_millis(i.timeout_ms.value),
        cache: CacheSettings {
            max_entries: c.max_entries.value,
            max_ttl: Duration::from_secs(c.max_ttl_secs),
            negative_ttl: Duration::from_secs(c.negative_ttl_secs),
            negative_max_entries,
        },
    })
}

fn upstream(name: &str, u: &FileUpstream) -> Result<Upstream, ConfigError> {
    let (url, timeout_ms) = (&u.url, &u.timeout_ms);
    let field = format!("upstreams.{name}.url");
    let uri = http_url(&field, url)?;
    let extra_roots = match &u.ca_file {
        None => Vec::new(),
        Some(path) => {
            if uri.scheme_str() != Some("https") {
                return Err(err(
                    format!("upstreams.{name}.ca_file"),
                    path,
                    "only applies to https upstreams",
                ));
            }
            crate::tls::read_ca_file(std::path::Path::new(&path.value))
                .map_err(|reason| err(format!("upstreams.{name}.ca_file"), path, reason))?
        }
    };
    if timeout_ms.value == 0 {
        return Err(err(
            format!("upstreams.{name}.timeout_ms"),
            timeout_ms,
            "must be at least 1",
        ));
    }
    let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
        return Err(err(field, url, "must be an absolute URL"));
    };
    Ok(Upstream {
        name: name.to_owned(),
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
        timeout: Duration::from_millis(timeout_ms.value),
        extra_roots,
        http2: u.http2,
    })
}

/// RFC 6750 section 3: scope tokens are `%x21 / %x23-5B / %x5D-7E` so they can be quoted in a
/// challenge; anything else could never be emitted legally.
fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn route(
    i: usize,
    r: &FileRoute,
    upstreams: &HashMap<String, usize>,
    earlier: &[Route],
) -> Result<Route, ConfigError> {
    let f = |field: &str| format!("routes[{i}].{field}");
    if r.name.value.is_empty()
        || !r
            .name
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(err(
            f("name"),
            &r.name,
            "must be non-empty and use only letters, digits, '-', '_' and '.'",
        ));
    }
    if let Some(previous) = earlier.iter().find(|e| *e.name == *r.name.value) {
        return Err(err(
            f("name"),
            &r.name,
            format!("duplicate route name `{}`", previous.name),
        ));
    }
    let path = PathPattern::parse(&r.path.value)
        .map_err(|e| err(f("path"), &r.path, format!("`{}`: {e}", r.path.value)))?;
    let host = match &r.host {
        Some(h) => {
            let lower = h.value.to_ascii_lowercase();
            let valid = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(err(
                    f("host"),
                    h,
                    "must be a host name without port or wildcard",
                ));
            }
            Some(lower.into_boxed_str())
        }
        None => None,
    };
    let methods = match &r.methods {
        None => None,
        Some(list) if list.value.is_empty() => {
            return Err(err(
                f("methods"),
                list,
                "omit the field to allow every method",
            ));
        }
        Some(list) => {
            let mut methods = Vec::with_capacity(list.value.len());
            for m in &list.value {
                let valid = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
                let method = Method::from_bytes(m.as_bytes()).ok().filter(|_| valid);
                let Some(method) = method else {
                    return Err(err(
                        f("methods"),
                        list,
                        format!("`{m}` is not an upper-case HTTP method"),
                    ));
                };
                methods.push(method);
            }
            Some(methods.into_boxed_slice())
        }
    };
    let Some(&upstream) = upstreams.get(&r.upstream.value) else {
        return Err(err(
            f("upstream"),
            &r.upstream,
            format!("unknown upstream `{}`", r.upstream.value),
        ));
    };
    for (j, s) in r.scopes.iter().enumerate() {
        if !valid_scope(&s.value) {
            return Err(err(
                format!("routes[{i}].scopes[{j}]"),
                s,
                "a scope may not be empty or contain spaces, '\"' or '\\'",
            ));
        }
    }
    let access = match r.auth {
        FileAuth::None if !r.scopes.is_empty() => {
            return Err(err(
                f("scopes"),
                &r.scopes[0],
                "scopes need `auth: required`",
            ));
        }
        FileAuth::None => Access::Public,
        FileAuth::Required => Access::Protected {
            scopes: r.scopes.iter().map(|s| s.value.clone()).collect(),
        },
    };
    let max_body_bytes = r.max_body_bytes.as_ref().map(|b| b.value);
    let route = Route {
        name: r.name.value.as_str().into(),
        host,
        path,
        methods,
        upstream,
        access,
        forward_token: r.forward_token,
        max_body_bytes,
    };
    if let Some(shadow) = earlier.iter().find(|e| e.shadows(&route)) {
        return Err(err(
            f("path"),
            &r.path,
            format!(
                "route `{}` can never match: every request it matches is taken by the earlier route `{}`",
                route.name, shadow.name
            ),
        ));
    }
    Ok(route)
}

/// The dotted field path (e.g. `routes[1].methods`) of the YAML node at `line`, worked out from
/// block-style indentation. Used to name the field in parser errors, which report only a
/// position; flow-style collections give a shorter (parent) path.
pub(super) fn field_path_at(text: &str, line: usize, _column: usize) -> String {
    enum Frame {
        Key(usize, String),
        Item(usize, usize),
    }
    let indent_of = |f: &Frame| match f {
        Frame::Key(i, _) | Frame::Item(i, _) => *i,
    };
    let mut stack: Vec<Frame> = Vec::new();
    for raw in text.lines().take(line) {
        let content = raw.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut indent = raw.len() - content.len();
        let mut rest = content;
        while let Some(after) = rest
            .strip_prefix("- ")
            .or_else(|| (rest == "-").then_some(""))
        {
            while stack.last().is_some_and(|f| match f {
                Frame::Key(i, _) => *i > indent,
                Frame::Item(i, _) => *i > indent,
            }) {
                stack.pop();
            }
            match stack.last_mut() {
                Some(Frame::Item(i, n)) if *i == indent => *n += 1,
                _ => stack.push(Frame::Item(indent, 0)),
            }
            let trimmed = after.trim_start_matches(' ');
            indent += 2 + (after.len() - trimmed.len());
            rest = trimmed;
        }
        if let Some((key, _)) = rest.split_once(':')
            && !key.is_empty()
            && !key.starts_with(['"', '\'', '{', '['])
            && !key.contains(' ')
        {
            while stack.last().is_some_and(|f| {
                indent_of(f) >= indent && matches!(f, Frame::Key(..))
                    || matches!(f, Frame::Item(i, _) if *i > indent)
            }) {
                stack.pop();
            }
            stack.push(Frame::Key(indent, key.to_owned()));
        }
    }
    let mut out = String::new();
    for frame in &stack {
        match frame {
            Frame::Key(_, k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Item(_, n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
