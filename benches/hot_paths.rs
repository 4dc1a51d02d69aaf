//! Criterion benches of the per-request hot functions, each next to a simpler baseline where
//! one exists, so a regression shows as a ratio rather than an absolute number:
//! - path canonicalization (a canonical path, a path needing work) vs copying the string;
//! - route lookup with 10, 100 and 1000 routes (first-match scan) vs the first route matching;
//! - `Authorization` parsing vs a bare `split_once(' ')`;
//! - token hashing plus a warm cache hit vs the hash alone;
//! - request header preparation (hop-by-hop strip, identity strip, forwarding and identity
//!   headers) vs cloning the header map.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tokengate::auth::{CacheSettings, Credential, Grant, TokenCache, TokenHash, Verdict};
use tokengate::config::Config;
use tokengate::path::NormalizedPath;
use tokengate::proxy::headers;

fn paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("path");
    for (name, raw) in [
        ("canonical", "/orders/12345/items/67"),
        ("needs_work", "/orders/./12345//items/%36%37/../67"),
    ] {
        g.bench_with_input(BenchmarkId::new("normalize", name), raw, |b, raw| {
            b.iter(|| NormalizedPath::parse(black_box(raw)).expect("valid"))
        });
        g.bench_with_input(
            BenchmarkId::new("baseline_to_owned", name),
            raw,
            |b, raw| b.iter(|| black_box(raw).to_owned()),
        );
    }
    g.finish();
}

fn config_with_routes(n: usize) -> Config {
    let mut routes = String::new();
    for i in 0..n {
        routes.push_str(&format!(
            "  - name: r{i}\n    path: /service{i}/**\n    methods: [GET]\n    upstream: app\n    scopes: [s{i}]\n"
        ));
    }
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nintrospection:\n  authlete:\n    base_url: \"http://127.0.0.1:1\"\n    service_id: \"1\"\n    access_token: \"t\"\nupstreams:\n  app:\n    url: \"http://127.0.0.1:2\"\nroutes:\n{routes}"
    );
    Config::from_yaml(&yaml, "bench.yaml", |_| None).expect("config")
}

fn routes(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for n in [10usize, 100, 1000] {
        let config = config_with_routes(n);
        let last = NormalizedPath::parse(&format!("/service{}/x/y", n - 1)).expect("path");
        let first = NormalizedPath::parse("/service0/x/y").expect("path");
        g.bench_with_input(BenchmarkId::new("last_route", n), &n, |b, _| {
            b.iter(|| {
                config
                    .routes
                    .find(black_box(&Method::GET), None, black_box(&last))
                    .expect("match")
            })
        });
        g.bench_with_input(BenchmarkId::new("baseline_first_route", n), &n, |b, _| {
            b.iter(|| {
                config
                    .routes
                    .find(black_box(&Method::GET), None, black_box(&first))
                    .expect("match")
            })
        });
    }
    g.finish();
}

fn credentials(c: &mut Criterion) {
    let value = b"Bearer VFGsNK-5sXiqterdaR7b5QbRX9VTwVCQB87jbr2_xAI";
    let mut g = c.benchmark_group("credential");
    g.bench_function("parse", |b| {
        b.iter(|| Credential::parse(black_box(value), 4096).expect("valid"))
    });
    g.bench_function("baseline_split_once", |b| {
        b.iter(|| {
            let s = std::str::from_utf8(black_box(value)).expect("ascii");
            s.split_once(' ').map(|(_, t)| t.to_owned())
        })
    });
    g.finish();
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let cache = TokenCache::new(&CacheSettings {
        max_entries: 100_000,
        max_ttl: Duration::from_secs(300),
        negative_ttl: Duration::from_secs(5),
        negative_max_entries: 10_000,
    });
    let token = "VFGsNK-5sXiqterdaR7b5QbRX9VTwVCQB87jbr2_xAI";
    let key = TokenHash::for_backend(b"authlete:bench", token);
    let grant = Arc::new(Grant::new(
        Some("alice".into()),
        Some("1001".into()),
        vec!["orders.read".into()],
        None,
    ));
    rt.block_on(async {
        let g = grant.clone();
        let _ = cache
            .get_or_introspect(key, || async move { Ok(Verdict::Active(g)) })
            .await;
    });
    let mut g = c.benchmark_group("token_cache");
    g.bench_function("hash_and_hit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let key = TokenHash::for_backend(b"authlete:bench", black_box(token));
                let (r, _) = cache
                    .get_or_introspect(key, || async { unreachable!("warm cache") })
                    .await;
                r.expect("hit")
            })
        })
    });
    g.bench_function("baseline_hash_only", |b| {
        b.iter(|| TokenHash::for_backend(b"authlete:bench", black_box(token)))
    });
    g.finish();
}

fn header_preparation(c: &mut Criterion) {
    let config = config_with_routes(1);
    let mut request = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        (
            "authorization",
            "Bearer VFGsNK-5sXiqterdaR7b5QbRX9VTwVCQB87jbr2_xAI",
        ),
        ("x-request-id", "0123456789abcdef"),
    ] {
        request.insert(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    let grant = Grant::new(
        Some("alice".into()),
        Some("1001".into()),
        vec!["orders.read".into()],
        None,
    );
    let ip = HeaderValue::from_static("10.1.2.3");
    let host = HeaderValue::from_static("api.example.com");
    let mut g = c.benchmark_group("headers");
    g.bench_function("prepare", |b| {
        b.iter(|| {
            let mut h = request.clone();
            headers::strip_hop_by_hop(&mut h, false, true, Some(&config.identity_headers));
            h.remove(http::header::AUTHORIZATION);
            let peer = headers::Peer {
                ip: &ip,
                trusted: false,
                proto: "http",
                host: Some(&host),
            };
            headers::set_forwarding(&mut h, &peer);
            headers::add_identity(&mut h, &config.identity_headers, &grant);
            h
        })
    });
    g.bench_function("baseline_clone", |b| b.iter(|| black_box(&request).clone()));
    g.finish();
}

criterion_group!(
    benches,
    paths,
    routes,
    credentials,
    cache,
    header_preparation
);
criterion_main!(benches);
