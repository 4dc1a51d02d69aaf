//! Cache abuse (peers.md 3c and 3e 16-23): a flood of junk tokens can neither evict a good
//! entry nor grow memory without bound, and a verdict belongs to the authorization server that
//! gave it.
//!
//! Already covered elsewhere: case-flipped tokens are distinct entries, scopes re-checked per
//! route on a hit, expiry, TTLs and single-flight (cache.rs, bearer.rs).

use super::*;
use crate::support::{Options, config_yaml};
use futures_util::StreamExt;
use tokengate::config::Config;
use tokengate::demo::emulator::{Emulator, EmulatorConfig};

/// Resident memory of this process (the gateway runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The harness's configuration with other cache bounds, for `ReloadHandle::reload`.
fn with_cache_bounds(h: &Harness, max_entries: u64, negative_max_entries: u64) -> Config {
    let yaml = config_yaml(h.emulator_addr, h.upstream_addr, &Options::default()).replace(
        "    max_entries: 1000\n",
        &format!(
            "    max_entries: {max_entries}\n    negative_max_entries: {negative_max_entries}\n"
        ),
    );
    assert!(yaml.contains("negative_max_entries"), "{yaml}");
    Config::from_yaml(&yaml, "flood.yaml", |_| None).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_token_flood_neither_evicts_a_good_token_nor_grows_memory_without_bound() {
    const JUNK: usize = 3000;
    let h = Harness::start().await;
    // Small stores make an eviction, if junk could cause one, certain.
    h.reload
        .reload(with_cache_bounds(&h, 10, 50))
        .expect("reload");
    let good = h.token("alice", &["orders.read"]);
    assert_eq!(h.get("/orders/1", Some(&good)).await.status(), 200);
    assert_eq!(h.introspections(), 1);
    let rss_before = rss_kib();
    let statuses: Vec<u16> = futures_util::stream::iter(0..JUNK)
        .map(|i| {
            let request = h
                .client
                .get(h.url("/orders/1"))
                .bearer_auth(format!("junk-{i:05}-{}", "x".repeat(40)))
                .send();
            async move { request.await.expect("request").status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(h.introspections(), 1 + JUNK as u64);
    // This bounds memory, not speed: 3000 junk tokens are a few hundred KiB of cache at most;
    // a per-token leak of 45 KiB or more would cross the bound. The margin is wide because
    // other tests run in the same process at the same time.
    let growth = rss_kib().saturating_sub(rss_before);
    assert!(
        growth < 128 * 1024,
        "RSS grew by {growth} KiB during the flood"
    );
    let gateway = h.reload.current();
    gateway.cache().sync().await;
    assert!(
        gateway.cache().entry_count() <= 10 + 50,
        "{} entries",
        gateway.cache().entry_count()
    );
    // The good token is still served from its entry.
    assert_eq!(h.get("/orders/2", Some(&good)).await.status(), 200);
    assert_eq!(h.introspections(), 1 + JUNK as u64);
    assert_eq!(h.upstream.request_count(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn verdicts_from_one_authlete_service_are_never_served_for_another() {
    // CVE-2026-33496: a cache key without the introspection endpoint let a token valid at one
    // authorization server pass routes that trust another.
    let h = Harness::start().await;
    let other = Emulator::new(EmulatorConfig {
        service_id: "2000000002".into(),
        ..EmulatorConfig::default()
    });
    let other_addr = other.clone().spawn().await.expect("second emulator");
    let only_here = h.token("alice", &["orders.read"]);
    let only_there = other.add_token(spec("bob", &["orders.read"], 3600));
    assert_eq!(h.get("/orders/1", Some(&only_here)).await.status(), 200);
    assert_eq!(h.get("/orders/1", Some(&only_there)).await.status(), 401);
    assert_eq!((h.introspections(), other.introspection_calls()), (2, 0));

    let yaml = config_yaml(other_addr, h.upstream_addr, &Options::default())
        .replace("service_id: \"1000000001\"", "service_id: \"2000000002\"");
    assert!(yaml.contains("2000000002"));
    let there = Config::from_yaml(&yaml, "other.yaml", |_| None).expect("config");
    h.reload.reload(there).expect("reload");
    // Neither the positive nor the negative verdict of the first service is reused.
    assert_eq!(h.get("/orders/1", Some(&only_here)).await.status(), 401);
    assert_eq!(h.get("/orders/1", Some(&only_there)).await.status(), 200);
    assert_eq!((h.introspections(), other.introspection_calls()), (2, 2));

    let back = Config::from_yaml(
        &config_yaml(h.emulator_addr, h.upstream_addr, &Options::default()),
        "back.yaml",
        |_| None,
    )
    .expect("config");
    h.reload.reload(back).expect("reload");
    assert_eq!(h.get("/orders/1", Some(&only_here)).await.status(), 200);
    assert_eq!(h.get("/orders/1", Some(&only_there)).await.status(), 401);
    assert_eq!((h.introspections(), other.introspection_calls()), (4, 2));
    assert_eq!(h.upstream.request_count(), 3);
    h.shutdown().await;
}
