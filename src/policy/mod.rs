//! Routing and authorization policy: which route a request belongs to, and whether a grant
//! satisfies that route's requirement. Reads only value types (`NormalizedPath`, `Grant`).

mod routes;
mod scopes;

pub use routes::{Access, PathPattern, PatternError, Route, RouteTable};
pub use scopes::{PolicyError, authorize};
