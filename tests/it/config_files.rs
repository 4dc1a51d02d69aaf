//! Every file shipped under `config/` is loaded by a test here, so that none of them can rot.
//! A new file makes `every_file_under_config_has_a_loader` fail until a loader is added below.

use http::Method;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokengate::config::Config;
use tokengate::demo::run::demo_config;
use tokengate::path::NormalizedPath;
use tokengate::policy::Access;

const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tokengate.example.yaml");

/// Files under `config/` (relative paths) and the test that loads each.
const COVERED: &[(&str, &str)] = &[
    ("demo.yaml", "demo_yaml_compiles_through_demo_config"),
    (
        "tokengate.example.yaml",
        "example_yaml_compiles_with_its_environment_variables",
    ),
];

/// The environment the example documents: the secrets it expects, nothing else (variables with
/// a `:-default` fall back to their default).
fn example_env(name: &str) -> Option<String> {
    match name {
        "AUTHLETE_SERVICE_ID" => Some("1000000001".into()),
        "AUTHLETE_ACCESS_TOKEN" => Some("example-service-access-token".into()),
        _ => None,
    }
}

fn load_example() -> Config {
    let text = std::fs::read_to_string(EXAMPLE)
        .unwrap_or_else(|e| panic!("config/tokengate.example.yaml must exist: {e}"));
    Config::from_yaml(&text, "config/tokengate.example.yaml", example_env)
        .unwrap_or_else(|e| panic!("the example does not load: {e}"))
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            out.push(path.strip_prefix(base).expect("under base").to_path_buf());
        }
    }
}

fn route_for<'a>(
    config: &'a Config,
    method: Method,
    host: Option<&str>,
    path: &str,
) -> Option<&'a str> {
    let path = NormalizedPath::parse(path).expect("valid path");
    config
        .routes
        .find(&method, host, &path)
        .map(|(_, r)| &*r.name)
}

#[test]
fn every_file_under_config_has_a_loader() {
    let base = Path::new(CONFIG_DIR);
    let mut found = Vec::new();
    files_under(base, base, &mut found);
    found.sort();
    for file in &found {
        let name = file.to_string_lossy();
        assert!(
            COVERED.iter().any(|(covered, _)| *covered == name),
            "config/{name} is not loaded by any test: add a loader to tests/it/config_files.rs"
        );
    }
    for (covered, test) in COVERED {
        assert!(
            base.join(covered).is_file(),
            "config/{covered} (loaded by {test}) is missing"
        );
    }
}

#[test]
fn demo_yaml_compiles_through_demo_config() {
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let config = demo_config(addr(18080), addr(19901), addr(19080), addr(13000))
        .unwrap_or_else(|e| panic!("config/demo.yaml does not load: {e}"));
    assert_eq!(config.listen, addr(18080));
    assert_eq!(config.admin_listen, Some(addr(19901)));
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.upstreams[0].authority.as_str(), "127.0.0.1:13000");
    let names: Vec<&str> = config.routes.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["health", "orders-read", "orders-write"]);
    // The routes the demo's curl lines rely on.
    assert_eq!(
        route_for(&config, Method::GET, None, "/health"),
        Some("health")
    );
    assert_eq!(
        route_for(&config, Method::GET, None, "/orders/42"),
        Some("orders-read")
    );
    assert_eq!(
        route_for(&config, Method::POST, None, "/orders"),
        Some("orders-write")
    );
    let health = config.routes.iter().next().expect("a route");
    assert_eq!(health.access, Access::Public);
}

#[test]
fn demo_yaml_on_disk_is_the_file_demo_config_embeds() {
    // `demo_config` embeds the file at build time; loading the file from disk with the same
    // variables must give the same route table.
    let text = std::fs::read_to_string(format!("{CONFIG_DIR}/demo.yaml")).expect("demo.yaml");
    let on_disk = Config::from_yaml(&text, "config/demo.yaml", |name| match name {
        "DEMO_LISTEN" => Some("127.0.0.1:18080".into()),
        "DEMO_ADMIN_LISTEN" => Some("127.0.0.1:19901".into()),
        "DEMO_AUTHLETE_URL" => Some("http://127.0.0.1:19080".into()),
        "DEMO_UPSTREAM_URL" => Some("http://127.0.0.1:13000".into()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let embedded = demo_config(addr(18080), addr(19901), addr(19080), addr(13000)).expect("demo");
    assert_eq!(on_disk.describe_routes(), embedded.describe_routes());
}

#[test]
fn example_yaml_compiles_with_its_environment_variables() {
    let config = load_example();
    assert!(
        config.routes.len() >= 2,
        "the example should show several routes, has {}",
        config.routes.len()
    );
    assert!(!config.upstreams.is_empty());
    assert!(config.admin_listen.is_some());
    let described = config.describe_routes();
    for route in config.routes.iter() {
        assert!(described.contains(&*route.name), "{described}");
    }
    // The example's routes behave as its comments say.
    assert_eq!(
        route_for(&config, Method::GET, None, "/health"),
        Some("health")
    );
    assert_eq!(
        route_for(&config, Method::GET, Some("API.example.com"), "/orders/1"),
        Some("orders-read")
    );
    assert_eq!(
        route_for(&config, Method::GET, Some("other.example.com"), "/orders/1"),
        None,
        "host-restricted routes must not match another host"
    );
    assert!(
        config
            .routes
            .iter()
            .any(|r| matches!(&r.access, Access::Protected { scopes } if !scopes.is_empty())),
        "the example should show a scope-protected route"
    );
}

#[test]
fn example_yaml_keeps_its_secrets_in_the_environment() {
    let text = std::fs::read_to_string(EXAMPLE).expect("example exists");
    let err = Config::from_yaml(&text, "config/tokengate.example.yaml", |_| None)
        .expect_err("the example must demand its secrets from the environment");
    let message = err.to_string();
    assert!(
        message.starts_with("config/tokengate.example.yaml:"),
        "{message}"
    );
    assert!(message.contains("AUTHLETE_"), "{message}");
}

#[test]
fn check_command_accepts_the_example() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["check", "--config", EXAMPLE])
        .env_remove("TOKENGATE_CONFIG")
        .env_remove("AUTHLETE_BASE_URL")
        .env("AUTHLETE_SERVICE_ID", "1000000001")
        .env("AUTHLETE_ACCESS_TOKEN", "example-service-access-token")
        .output()
        .expect("run tokengate check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let config = load_example();
    for route in config.routes.iter() {
        assert!(stdout.contains(&*route.name), "{stdout}");
    }
    assert!(
        !stdout.contains("example-service-access-token"),
        "check printed a secret"
    );
}
