use super::super::Config;
use super::field_path_at;

const BASE: &str = r#"
listen: "127.0.0.1:8080"
introspection:
  authlete:
    base_url: "http://127.0.0.1:9080"
    service_id: "1000000001"
    access_token: "t"
upstreams:
  app:
    url: "http://127.0.0.1:3000"
routes:
  - name: public
    path: /health
    auth: none
    upstream: app
  - name: orders
    path: /orders/**
    methods: [GET]
    upstream: app
    scopes: [orders.read]
"#;

fn load(text: &str) -> Result<Config, String> {
    Config::from_yaml(text, "t.yaml", |name| {
        (name == "SET").then(|| "value".to_owned())
    })
    .map_err(|e| e.to_string())
}

#[test]
fn minimal_config_compiles_with_defaults() {
    let c = load(BASE).unwrap();
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.identity_headers.subject.as_str(), "x-auth-subject");
    assert_eq!(c.limits.max_token_bytes, 4096);
    assert_eq!(c.introspection.timeout.as_millis(), 2000);
    assert_eq!(c.introspection.cache.max_entries, 100_000);
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let text = BASE.replace("    methods: [GET]", "    methds: [GET]");
    let e = load(&text).unwrap_err();
    assert!(e.starts_with("t.yaml:18:5: routes[1].methds:"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn unknown_top_level_field_is_refused() {
    let e = load(&format!("{BASE}colour: blue\n")).unwrap_err();
    assert!(e.contains("colour") && e.contains("unknown field"), "{e}");
}

#[test]
fn unknown_upstream_names_the_field_and_line() {
    let text = BASE.replace(
        "    upstream: app\n    scopes",
        "    upstream: nope\n    scopes",
    );
    let e = load(&text).unwrap_err();
    assert_eq!(
        e,
        "t.yaml:19:15: routes[1].upstream: unknown upstream `nope`"
    );
}

#[test]
fn duplicate_route_names_are_refused() {
    let text = BASE.replace("name: orders", "name: public");
    let e = load(&text).unwrap_err();
    assert!(
        e.contains("routes[1].name: duplicate route name `public`"),
        "{e}"
    );
}

#[test]
fn bad_glob_is_refused() {
    let text = BASE.replace("/orders/**", "/orders/**/x");
    let e = load(&text).unwrap_err();
    assert!(e.contains("routes[1].path") && e.contains("'**'"), "{e}");
}

#[test]
fn bad_urls_are_refused() {
    let e = load(&BASE.replace("http://127.0.0.1:3000", "ftp://x")).unwrap_err();
    assert!(
        e.contains("upstreams.app.url: must start with http:// or https://"),
        "{e}"
    );
    let e = load(&BASE.replace("http://127.0.0.1:9080", "not a url")).unwrap_err();
    assert!(e.contains("introspection.authlete.base_url"), "{e}");
}

#[test]
fn route_shadowed_by_an_earlier_one_is_refused() {
    let text = format!(
        "{BASE}  - name: late\n    path: /orders/*/items\n    methods: [GET]\n    upstream: app\n"
    );
    let e = load(&text).unwrap_err();
    assert!(
        e.contains("routes[2].path") && e.contains("taken by the earlier route `orders`"),
        "{e}"
    );
    // A different method is still reachable.
    let ok = format!(
        "{BASE}  - name: late\n    path: /orders/*/items\n    methods: [POST]\n    upstream: app\n"
    );
    assert!(load(&ok).is_ok());
}

#[test]
fn environment_variables_are_substituted_and_unset_ones_refused() {
    assert!(load(&BASE.replace("access_token: \"t\"", "access_token: \"${SET}\"")).is_ok());
    let e =
        load(&BASE.replace("access_token: \"t\"", "access_token: \"${UNSET_VAR}\"")).unwrap_err();
    assert!(e.contains("UNSET_VAR is not set"), "{e}");
    assert!(e.starts_with("t.yaml:7:"), "{e}");
    assert!(
        load(&BASE.replace(
            "access_token: \"t\"",
            "access_token: \"${UNSET_VAR:-dflt}\""
        ))
        .is_ok()
    );
}

#[test]
fn trusting_everyone_is_refused() {
    let e = load(&format!("{BASE}trusted_proxies: [\"0.0.0.0/0\"]\n")).unwrap_err();
    assert!(e.contains("trusted_proxies[0]"), "{e}");
    let e = load(&format!("{BASE}trusted_proxies: [\"::/0\"]\n")).unwrap_err();
    assert!(e.contains("trusted_proxies[0]"), "{e}");
    assert!(
        load(&format!(
            "{BASE}trusted_proxies: [\"10.0.0.0/8\", \"192.168.1.1\"]\n"
        ))
        .is_ok()
    );
}

#[test]
fn api_v2_needs_key_and_secret() {
    let v2 = BASE.replace(
        "    service_id: \"1000000001\"\n    access_token: \"t\"",
        "    api_version: 2\n    api_key: \"k\"",
    );
    let e = load(&v2).unwrap_err();
    assert!(
        e.contains("introspection.authlete.api_secret: is required with api_version 2"),
        "{e}"
    );
    let e = load(&BASE.replace("    service_id: \"1000000001\"\n", "    api_version: 4\n"))
        .unwrap_err();
    assert!(e.contains("api_version: must be 2 or 3"), "{e}");
}

#[test]
fn illegal_scope_and_identity_header_are_refused() {
    let e = load(&BASE.replace("scopes: [orders.read]", "scopes: ['a\"b']")).unwrap_err();
    assert!(e.contains("routes[1].scopes[0]"), "{e}");
    let e = load(&format!(
        "{BASE}identity_headers:\n  subject: Authorization\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("identity_headers.subject") && e.contains("reserved"),
        "{e}"
    );
}

#[test]
fn type_errors_carry_position_and_field() {
    let e = load(&BASE.replace("methods: [GET]", "methods: GET")).unwrap_err();
    assert!(
        e.starts_with("t.yaml:18:") && e.contains("routes[1].methods"),
        "{e}"
    );
    let e = load(&BASE.replace("methods: [GET]", "methods: [get]")).unwrap_err();
    assert!(e.contains("`get` is not an upper-case HTTP method"), "{e}");
}

#[test]
fn field_path_follows_block_indentation() {
    let text = "a:\n  b:\n    - x: 1\n      y: 2\n    - x: 3\nc: 4\n";
    assert_eq!(field_path_at(text, 2, 3), "a.b");
    assert_eq!(field_path_at(text, 4, 7), "a.b[0].y");
    assert_eq!(field_path_at(text, 5, 7), "a.b[1].x");
    assert_eq!(field_path_at(text, 6, 1), "c");
}

#[test]
fn dpop_settings_are_validated() {
    let c = load(&format!(
        "{BASE}dpop:\n  enabled: true\n  algs: [ES256, EdDSA]\n"
    ))
    .unwrap();
    assert_eq!(c.dpop.unwrap().algs_list(), "ES256 EdDSA");
    let e = load(&format!("{BASE}dpop:\n  enabled: true\n  algs: [HS256]\n")).unwrap_err();
    assert!(e.contains("dpop.algs") && e.contains("HS256"), "{e}");
    let e = load(&format!(
        "{BASE}dpop:\n  enabled: true\n  nonce: sometimes\n"
    ))
    .unwrap_err();
    assert!(e.contains("dpop.nonce"), "{e}");
    let rfc7662 = BASE.replace(
        "  authlete:\n    base_url: \"http://127.0.0.1:9080\"\n    service_id: \"1000000001\"\n    access_token: \"t\"\n",
        "  rfc7662:\n    endpoint: \"http://127.0.0.1:9080/introspect\"\n    client_id: c\n    client_secret: s\n",
    );
    assert!(load(&rfc7662).is_ok());
    let e = load(&format!(
        "{rfc7662}dpop:\n  enabled: true\n  nonce: authlete\n"
    ))
    .unwrap_err();
    assert!(e.contains("dpop.nonce") && e.contains("authlete"), "{e}");
    assert!(
        load(&format!("{BASE}dpop:\n  enabled: false\n"))
            .unwrap()
            .dpop
            .is_none()
    );
}
