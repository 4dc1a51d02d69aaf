//! tokengate: a reverse proxy that turns an HTTP API into an OAuth 2.0 protected resource.
//!
//! The request flows one way through the modules: `server` → `gateway` (the pipeline:
//! `path` → `policy` → `auth` → `proxy`) → `respond` for refusals. `config` compiles the file
//! once; `app` wires and runs; `admin`/`metrics`/`telemetry` observe.

pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod idle;
pub mod metrics;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod respond;
pub mod server;
pub mod signals;
pub mod telemetry;
pub mod tls;
