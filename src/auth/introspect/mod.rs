//! The introspection client: one pooled HTTP client, a per-call timeout, and a fail-closed
//! classification of every answer. Backends: Authlete's native API (v3 and v2) and generic
//! RFC 7662. Never logs the token; never sends it anywhere but the configured backend.

mod authlete;
mod rfc7662;

pub use authlete::{AuthleteApi, AuthleteSettings};
pub use rfc7662::Rfc7662Settings;

use super::cache::Verdict;
use super::{AccessToken, AuthError, Binding, Grant};
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
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: &'a str,
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

    /// The verdict for a token presented with a DPoP proof, learning the token's binding.
    ///
    /// Authlete's native API does not return `cnf.jkt`, so the binding is learned in two steps,
    /// each at most once per token (the result is cached): a plain call tells whether the token
    /// is bound at all (a bound token answers A065308); only then is the proof sent, and when
    /// Authlete accepts it, the proof's key becomes the token's cached binding. An unbound token
    /// therefore never becomes bound to whatever key first presents it (standards DP-04).
    /// RFC 7662 backends return `cnf.jkt` in one call.
    pub async fn introspect_with_proof(
        &self,
        token: &AccessToken,
        proof: &PresentedProof<'_>,
        client_certificate: Option<&str>,
    ) -> Result<Verdict, AuthError> {
        let plain = self.introspect(token, client_certificate).await?;
        if !matches!(self.backend, Backend::Authlete(_)) {
            return Ok(plain);
        }
        match plain {
            Verdict::Refused {
                error: AuthError::BindingRequired,
                ..
            } => match self.call(token, Some(proof), client_certificate).await? {
                Verdict::Active(grant) => {
                    let bound = Grant::clone(&grant).with_binding(Binding::Dpop(proof.jkt.into()));
                    Ok(Verdict::Active(Arc::new(bound)))
                }
                refused => Ok(refused),
            },
            other => Ok(other),
        }
    }

    /// One introspection call, with the connection's client certificate (PEM) when there is
    /// one (RFC 8705). Any failure to obtain a verdict is `AuthError::Unavailable`.
    pub async fn introspect(
        &self,
        token: &AccessToken,
        client_certificate: Option<&str>,
    ) -> Result<Verdict, AuthError> {
        self.call(token, None, client_certificate).await
    }

    async fn call(
        &self,
        token: &AccessToken,
        proof: Option<&PresentedProof<'_>>,
        client_certificate: Option<&str>,
    ) -> Result<Verdict, AuthError> {
        let started = Instant::now();
        let call = async {
            match &self.backend {
                Backend::Authlete(settings) => {
                    authlete::introspect(&self.http, settings, token, proof, client_certificate)
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
