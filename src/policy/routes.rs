//! The compiled route table. First match wins, in file order; no match is denied (404).
//! Matching uses the same `NormalizedPath` that is forwarded, so what is authorized is exactly
//! what the upstream receives.
//!
//! Path patterns are segment-wise: a literal segment matches itself, `*` matches exactly one
//! segment, and `**` (last segment only) matches zero or more segments, so `/orders/**`
//! covers `/orders`, `/orders/` and everything below, but not `/ordersX`.

use crate::path::NormalizedPath;
use http::Method;
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

/// Routes in file order.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// The first route matching the request. `host` is the request's host name, lower-cased
    /// or not, without port.
    pub fn find(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &NormalizedPath,
    ) -> Option<(usize, &Route)> {
        // A linear scan in file order *is* the contract (first match wins). A prefix index can
        // come later if large tables need it.
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(method, host, path))
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
