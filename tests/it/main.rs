//! Integration tests: the real gateway, the Authlete emulator and an echo upstream on
//! `127.0.0.1:0`, talking real HTTP. One binary, grouped by area; names state the claim.

mod admin;
mod bearer;
mod cache;
mod config_files;
mod dpop;
mod fail_closed;
mod forwarding;
mod idle;
mod process;
mod rfc7662;
mod routing;
mod smoke;
mod support;
mod threats;
mod tls;
mod upstream_pool;
