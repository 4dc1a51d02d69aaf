//! The introspection client: one pooled HTTP client, a per-call timeout, and a fail-closed
//! classification of every answer. Backends: Authlete's native API (v3 and v2) and generic
//! RFC 7662. Never logs the token; never sends it anywhere but the configured backend.

mod authlete;
mod rfc7662;

pub use authlete::{AuthleteApi, AuthleteSettings};
pub use rfc7662::Rfc7662Settings;

use super::cache::Verdict;
use super::{AccessToken, AuthError};
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which backend answers introspection calls.
#[derive(Debug, Clone)]
pub enum Backend {
    Authlete(AuthleteSettings),
    Rfc7662(Rfc7662Settings),
}

impl Backend {
    /// Identifies the backend (endpoint and credential), so that a reload that points at
    /// another backend starts with an empty cache.
    pub fn identity(&self) -> String {
        match self {
            Backend::Authlete(a) => format!("authlete:{}:{}", a.endpoint, a.api.principal()),
            Backend::Rfc7662(r) => format!("rfc7662:{}:{}", r.endpoint, r.client_id),
        }
    }
}

/// A DPoP proof that already passed local verification, with the request facts Authlete needs
/// to check it again (`htm`, `htu`).
pub struct PresentedProof<'a> {
    pub proof: &'a str,
    pub htm: &'a str,
    pub htu: &'a str,
    /// Ask the server to enforce its DPoP nonce (`dpopNonceRequired`).
    pub nonce_required: bool,
}

pub struct Introspector {
    backend: Backend,
    http: reqwest::Client,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Result label values of `tokengate_introspection_requests_total`.
fn result_label(verdict: &Result<Verdict, AuthError>) -> &'static str {
    match verdict {
        Ok(Verdict::Active(_)) => "active",
        Ok(Verdict::Refused { .. }) => "inactive",
        Err(_) => "error",
    }
}

impl Introspector {
    pub fn new(
        backend: Backend,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            backend,
            http,
            timeout,
            metrics,
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Sends a DPoP proof (already verified locally) to the authorization server with the
    /// token. Used when the token is known to be DPoP-bound but its key is not yet cached, and,
    /// in `dpop.nonce: authlete` mode, on every DPoP request. Never cached by itself: the caller
    /// records the binding it learns. Also returns the server's `dpopNonce`, if any.
    pub async fn introspect_proof(
        &self,
        token: &AccessToken,
        proof: &PresentedProof<'_>,
        client_certificate: Option<&str>,
    ) -> (Result<Verdict, AuthError>, Option<String>) {
        let mut nonce = None;
        let verdict = self
            .call(token, Some(proof), client_certificate, &mut nonce)
            .await;
        (verdict, nonce)
    }

    /// One introspection call, with the connection's client certificate (PEM) when there is
    /// one (RFC 8705). Any failure to obtain a verdict is `AuthError::Unavailable`.
    pub async fn introspect(
        &self,
        token: &AccessToken,
        client_certificate: Option<&str>,
    ) -> Result<Verdict, AuthError> {
        self.call(token, None, client_certificate, &mut None).await
    }

    async fn call(
        &self,
        token: &AccessToken,
        proof: Option<&PresentedProof<'_>>,
        client_certificate: Option<&str>,
        nonce: &mut Option<String>,
    ) -> Result<Verdict, AuthError> {
        let started = Instant::now();
        let call = async {
            match &self.backend {
                Backend::Authlete(settings) => {
                    authlete::introspect(
                        &self.http,
                        settings,
                        token,
                        proof,
                        client_certificate,
                        nonce,
                    )
                    .await
                }
                Backend::Rfc7662(settings) => {
                    rfc7662::introspect(&self.http, settings, token).await
                }
            }
        };
        // reqwest's own timeout covers the request; this one also bounds body reading.
        let verdict = match tokio::time::timeout(self.timeout, call).await {
            Ok(v) => v,
            Err(_) => Err(AuthError::Unavailable("introspection timed out")),
        };
        self.metrics
            .introspection_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .introspection_requests_total
            .with_label_values(&[result_label(&verdict)])
            .inc();
        if let Err(AuthError::Unavailable(why)) = &verdict {
            tracing::warn!(reason = why, "introspection failed; failing closed");
        }
        verdict
    }
}

/// Maps a transport error to a fixed reason (the error's text may contain the URL, which is
/// fine, but never the token; still, fixed strings keep log lines predictable).
fn transport_reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "introspection timed out"
    } else if e.is_connect() {
        "introspection endpoint unreachable"
    } else if e.is_decode() || e.is_body() {
        "introspection response unreadable"
    } else {
        "introspection request failed"
    }
}
