//! The compiled route table. First match wins, in file order; no match is denied (404).
//! Matching uses the same `NormalizedPath` that is forwarded, so what is authorized is exactly
//! what the upstream receives.
//!
//! Path patterns are segment-wise: a literal segment matches itself, `*` matches exactly one
//! segment, and `**` (last segment only) matches zero or more segments, so `/orders/**`
//! covers `/orders`, `/orders/` and everything below, but not `/ordersX`.

use crate::path::NormalizedPath;
use http::Method;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    AnyOne,
}

/// A compiled path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Box<[Segment]>,
    /// `**` at the end.
    open_tail: bool,
    source: Box<str>,
}

/// Why a path glob was refused at config load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("must start with '/'")]
    NotAbsolute,
    #[error("'**' is allowed only as the last segment")]
    InnerDoubleStar,
    #[error("'*' must be a whole segment")]
    PartialWildcard,
    #[error("must be a normalized path (no '.', '..', '//', '%', ';' or '\\')")]
    NotNormalized,
}

impl PathPattern {
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let Some(rest) = source.strip_prefix('/') else {
            return Err(PatternError::NotAbsolute);
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut open_tail = false;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            match *part {
                "**" if last => open_tail = true,
                "**" => return Err(PatternError::InnerDoubleStar),
                "*" => segments.push(Segment::AnyOne),
                p if p.contains('*') => return Err(PatternError::PartialWildcard),
                "" if !last => return Err(PatternError::NotNormalized),
                "." | ".." => return Err(PatternError::NotNormalized),
                p if p.contains(['%', ';', '\\']) => return Err(PatternError::NotNormalized),
                p => segments.push(Segment::Literal(p.into())),
            }
        }
        Ok(Self {
            segments: segments.into(),
            open_tail,
            source: source.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal first segment, when the pattern has one (`/orders/**` → `orders`). A
    /// pattern with only `**` or a leading `*` has none and can match any first segment.
    fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(l)) => Some(l),
            _ => None,
        }
    }

    pub fn matches(&self, path: &NormalizedPath) -> bool {
        let mut actual = path.segments();
        for expected in self.segments.iter() {
            let Some(segment) = actual.next() else {
                return false;
            };
            match expected {
                Segment::AnyOne => {}
                Segment::Literal(l) if **l == *segment => {}
                Segment::Literal(_) => return false,
            }
        }
        self.open_tail || actual.next().is_none()
    }

    /// True when every path that `other` matches is also matched by `self`. Used at load time
    /// to refuse a route that an earlier one makes unreachable.
    pub fn covers(&self, other: &PathPattern) -> bool {
        if other.open_tail && !self.open_tail {
            return false;
        }
        if self.open_tail {
            if other.segments.len() < self.segments.len() {
                return false;
            }
        } else if other.segments.len() != self.segments.len() {
            return false;
        }
        self.segments
            .iter()
            .zip(other.segments.iter())
            .all(|(mine, theirs)| match (mine, theirs) {
                (Segment::AnyOne, _) => true,
                (Segment::Literal(a), Segment::Literal(b)) => a == b,
                (Segment::Literal(_), Segment::AnyOne) => false,
            })
    }
}

/// What a route demands of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Public,
    /// A valid token carrying all of these scopes.
    Protected {
        scopes: Box<[String]>,
    },
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    /// Lower-case host name without port; `None` matches any host.
    pub host: Option<Box<str>>,
    pub path: PathPattern,
    /// `None` matches every method.
    pub methods: Option<Box<[Method]>>,
    /// Index into the snapshot's upstream list.
    pub upstream: usize,
    pub access: Access,
    pub forward_token: bool,
    /// Overrides the global request body limit.
    pub max_body_bytes: Option<u64>,
}

impl Route {
    fn matches(&self, method: &Method, host: Option<&str>, path: &NormalizedPath) -> bool {
        if let Some(methods) = &self.methods
            && !methods.contains(method)
        {
            return false;
        }
        if let Some(expected) = &self.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(expected) => {}
                _ => return false,
            }
        }
        self.path.matches(path)
    }

    /// True when every request that `later` matches is matched by `self` first.
    pub fn shadows(&self, later: &Route) -> bool {
        let hosts = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (Some(_), None) => false,
        };
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => theirs.iter().all(|m| mine.contains(m)),
            (Some(_), None) => false,
        };
        hosts && methods && self.path.covers(&later.path)
    }
}

/// Routes in file order, with an index by first path segment.
///
/// First match wins, in file order; that is the contract. To keep lookups cheap with large
/// tables, routes are indexed by the literal first segment of their pattern: a request only
/// scans the routes filed under its own first segment plus those whose pattern starts with a
/// wildcard, merged back into file order. Hand-written because the merge is two sorted index
/// lists and a general router would change the first-match semantics.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Route indexes (ascending) by literal first segment.
    by_first_segment: HashMap<Box<str>, Vec<usize>>,
    /// Route indexes (ascending) whose first segment is a wildcard (`*` or `**`).
    wildcard: Vec<usize>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut by_first_segment: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        let mut wildcard = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            match route.path.first_literal() {
                Some(segment) => by_first_segment.entry(segment.into()).or_default().push(i),
                None => wildcard.push(i),
            }
        }
        Self {
            routes,
            by_first_segment,
            wildcard,
        }
    }

    /// The first route matching the request. `host` is the request's host name, lower-cased
    /// or not, without port.
    pub fn find(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &NormalizedPath,
    ) -> Option<(usize, &Route)> {
        let first = path.segments().next().unwrap_or("");
        let filed: &[usize] = self.by_first_segment.get(first).map_or(&[], Vec::as_slice);
        let (mut a, mut b) = (filed.iter().peekable(), self.wildcard.iter().peekable());
        loop {
            // Merge the two ascending lists so that candidates are tried in file order.
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return None,
            };
            let index = *next?;
            let route = &self.routes[index];
            if route.matches(method, host, path) {
                return Some((index, route));
            }
        }
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NormalizedPath {
        NormalizedPath::parse(s).unwrap()
    }

    #[test]
    fn globs_match_segment_wise() {
        let g = PathPattern::parse("/orders/**").unwrap();
        assert!(g.matches(&p("/orders")));
        assert!(g.matches(&p("/orders/")));
        assert!(g.matches(&p("/orders/1/items")));
        assert!(!g.matches(&p("/ordersX")));
        assert!(!g.matches(&p("/")));
        let one = PathPattern::parse("/users/*/profile").unwrap();
        assert!(one.matches(&p("/users/42/profile")));
        assert!(!one.matches(&p("/users/profile")));
        assert!(!one.matches(&p("/users/42/profile/x")));
        let exact = PathPattern::parse("/health").unwrap();
        assert!(exact.matches(&p("/health")));
        assert!(!exact.matches(&p("/health/")));
        assert!(!exact.matches(&p("/healthz")));
        let root = PathPattern::parse("/**").unwrap();
        assert!(root.matches(&p("/")) && root.matches(&p("/a/b")));
    }

    fn route(name: &str, path: &str, methods: Option<&[Method]>) -> Route {
        Route {
            name: name.into(),
            host: None,
            path: PathPattern::parse(path).unwrap(),
            methods: methods.map(|m| m.to_vec().into_boxed_slice()),
            upstream: 0,
            access: Access::Public,
            forward_token: false,
            max_body_bytes: None,
        }
    }

    #[test]
    fn index_keeps_first_match_in_file_order() {
        let table = RouteTable::new(vec![
            route("wild-get", "/*/special", Some(&[Method::GET])),
            route("orders", "/orders/**", None),
            route("catch-all", "/**", None),
            route("users", "/users/*", None),
        ]);
        let name = |m: Method, p: &str| {
            table
                .find(&m, None, &NormalizedPath::parse(p).unwrap())
                .map(|(_, r)| &*r.name)
        };
        assert_eq!(name(Method::GET, "/orders/special"), Some("wild-get"));
        assert_eq!(name(Method::POST, "/orders/special"), Some("orders"));
        assert_eq!(name(Method::GET, "/orders"), Some("orders"));
        assert_eq!(name(Method::GET, "/users/1"), Some("catch-all"));
        assert_eq!(name(Method::GET, "/"), Some("catch-all"));
        let no_catch_all = RouteTable::new(vec![
            route("users", "/users/*", None),
            route("root", "/", None),
        ]);
        let find = |p: &str| {
            no_catch_all
                .find(&Method::GET, None, &NormalizedPath::parse(p).unwrap())
                .map(|(i, _)| i)
        };
        assert_eq!(find("/users/7"), Some(0));
        assert_eq!(find("/"), Some(1));
        assert_eq!(find("/other"), None);
    }

    #[test]
    fn indexed_lookup_agrees_with_a_linear_scan() {
        let patterns = [
            "/a/**", "/*/b", "/a/b", "/**", "/b/*", "/", "/a", "/*", "/c/*/d", "/b/**",
        ];
        let methods = [None, Some(&[Method::GET][..]), Some(&[Method::POST][..])];
        let paths = [
            "/", "/a", "/a/", "/a/b", "/b", "/b/b", "/b/x/y", "/c/1/d", "/c", "/z/b", "/a/b/c",
        ];
        // Several tables: every rotation of the pattern list, with rotating methods.
        for shift in 0..patterns.len() {
            let routes: Vec<Route> = (0..patterns.len())
                .map(|i| {
                    route(
                        &format!("r{i}"),
                        patterns[(i + shift) % patterns.len()],
                        methods[i % 3],
                    )
                })
                .collect();
            let linear: Vec<(String, String)> = paths
                .iter()
                .flat_map(|p| [Method::GET, Method::POST].map(|m| (m, *p)))
                .map(|(m, p)| {
                    let np = NormalizedPath::parse(p).unwrap();
                    let hit = routes
                        .iter()
                        .find(|r| r.matches(&m, None, &np))
                        .map(|r| r.name.to_string());
                    (format!("{m} {p}"), hit.unwrap_or_default())
                })
                .collect();
            let table = RouteTable::new(routes);
            for (key, expected) in linear {
                let (m, p) = key.split_once(' ').unwrap();
                let np = NormalizedPath::parse(p).unwrap();
                let got = table
                    .find(&Method::from_bytes(m.as_bytes()).unwrap(), None, &np)
                    .map(|(_, r)| r.name.to_string());
                assert_eq!(got.unwrap_or_default(), expected, "shift {shift}: {key}");
            }
        }
    }

    #[test]
    fn bad_globs_are_refused() {
        assert_eq!(PathPattern::parse("orders"), Err(PatternError::NotAbsolute));
        assert_eq!(
            PathPattern::parse("/**/x"),
            Err(PatternError::InnerDoubleStar)
        );
        assert_eq!(
            PathPattern::parse("/a*"),
            Err(PatternError::PartialWildcard)
        );
        assert_eq!(
            PathPattern::parse("/a/../b"),
            Err(PatternError::NotNormalized)
        );
        assert_eq!(
            PathPattern::parse("/a//b"),
            Err(PatternError::NotNormalized)
        );
    }

    #[test]
    fn coverage_between_patterns() {
        let c = |a: &str, b: &str| {
            PathPattern::parse(a)
                .unwrap()
                .covers(&PathPattern::parse(b).unwrap())
        };
        assert!(c("/**", "/anything/**"));
        assert!(c("/orders/**", "/orders/*/items"));
        assert!(c("/orders/*", "/orders/1"));
        assert!(!c("/orders/*", "/orders/**"));
        assert!(!c("/orders/1", "/orders/*"));
        assert!(!c("/a/**", "/b"));
        assert!(c("/a", "/a"));
    }
}
