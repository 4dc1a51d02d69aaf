//! Prometheus metrics (DESIGN.md section 5). Every label value comes from configuration names
//! or a closed enum in this crate, never from request data, so cardinality is bounded by the
//! config file and no token, path or header can reach a label.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub introspection_requests_total: IntCounterVec,
    pub introspection_duration_seconds: Histogram,
    pub token_cache_hits_total: IntCounter,
    pub token_cache_misses_total: IntCounter,
    pub token_cache_entries: IntGauge,
    pub dpop_rejections_total: IntCounterVec,
    pub upstream_responses_total: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // Registration only fails on a duplicate or malformed name, which these constants are
        // not; a failure here is a bug caught by the first test that starts a gateway.
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let requests_total = counter_vec(
            "tokengate_requests_total",
            "Requests by route and outcome.",
            &["route", "outcome"],
        );
        let introspection_requests_total = counter_vec(
            "tokengate_introspection_requests_total",
            "Introspection calls by result.",
            &["result"],
        );
        let dpop_rejections_total = counter_vec(
            "tokengate_dpop_rejections_total",
            "DPoP proofs rejected, by reason.",
            &["reason"],
        );
        let upstream_responses_total = counter_vec(
            "tokengate_upstream_responses_total",
            "Upstream responses by status class.",
            &["upstream", "class"],
        );
        let request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tokengate_request_duration_seconds",
                "Request latency as seen by the gateway.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_duration_seconds.clone()))
            .expect("unique metric");
        let introspection_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tokengate_introspection_duration_seconds",
                "Introspection call latency.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(introspection_duration_seconds.clone()))
            .expect("unique metric");
        let int_counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let token_cache_hits_total = int_counter(
            "tokengate_token_cache_hits_total",
            "Token lookups answered by the cache.",
        );
        let token_cache_misses_total = int_counter(
            "tokengate_token_cache_misses_total",
            "Token lookups that needed introspection.",
        );
        let token_cache_entries = IntGauge::new(
            "tokengate_token_cache_entries",
            "Entries in the token cache (positive and negative).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(token_cache_entries.clone()))
            .expect("unique metric");
        Self {
            registry,
            requests_total,
            request_duration_seconds,
            introspection_requests_total,
            introspection_duration_seconds,
            token_cache_hits_total,
            token_cache_misses_total,
            token_cache_entries,
            dpop_rejections_total,
            upstream_responses_total,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `class` label values of `upstream_responses_total`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in `STATUS_CLASSES` of a status code's class.
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}
