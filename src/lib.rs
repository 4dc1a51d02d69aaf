//! tokengate: a reverse proxy that turns an HTTP API into an OAuth 2.0 protected resource.

pub mod demo;
