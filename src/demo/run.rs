//! `tokengate demo` and `tokengate emulator`: zero-configuration local runs. The demo binds
//! the emulator, the echo upstream and the gateway on loopback (the usual ports when free,
//! otherwise any free port), mints a few tokens, prints ready-to-paste `curl` lines, and runs
//! until Ctrl-C.

use super::echo::EchoUpstream;
use super::emulator::{Emulator, EmulatorConfig, TokenSpec};
use crate::app::App;
use crate::auth::dpop::{ProofClaims, ProofSigner};
use crate::cli::DpopProofArgs;
use crate::config::Config;
use crate::signals;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::net::TcpListener;

const DEMO_CONFIG: &str = include_str!("../../config/demo.yaml");

/// Binds `preferred` on loopback, or any free loopback port when it is taken.
async fn bind_loopback(preferred: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind(("127.0.0.1", preferred)).await {
        Ok(l) => Ok(l),
        Err(_) => TcpListener::bind(("127.0.0.1", 0)).await,
    }
}

/// The demo's gateway config for the given addresses.
pub fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    authlete: SocketAddr,
    upstream: SocketAddr,
) -> Result<Config, crate::config::ConfigError> {
    Config::from_yaml(DEMO_CONFIG, "config/demo.yaml", |name| match name {
        "DEMO_LISTEN" => Some(listen.to_string()),
        "DEMO_ADMIN_LISTEN" => Some(admin.to_string()),
        "DEMO_AUTHLETE_URL" => Some(format!("http://{authlete}")),
        "DEMO_UPSTREAM_URL" => Some(format!("http://{upstream}")),
        _ => None,
    })
}

/// The tokens the demo prints.
pub struct DemoTokens {
    pub reader: String,
    pub writer: String,
    /// DPoP-bound to the demo key.
    pub dpop: String,
}

pub fn mint_demo_tokens(emulator: &Emulator, dpop_jkt: &str) -> DemoTokens {
    let spec = |subject: &str, scopes: &[&str]| TokenSpec {
        access_token: None,
        subject: Some(subject.into()),
        client_id: Some(1001),
        client_id_alias: Some("demo-client".into()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_in: Some(3600),
        dpop_jkt: None,
        certificate_thumbprint: None,
        refreshable: Some(true),
    };
    DemoTokens {
        reader: emulator.add_token(spec("alice", &["orders.read"])),
        writer: emulator.add_token(spec("bob", &["orders.read", "orders.write"])),
        dpop: emulator.add_token(TokenSpec {
            dpop_jkt: Some(dpop_jkt.to_owned()),
            ..spec("dave", &["orders.read"])
        }),
    }
}

pub async fn run() -> ExitCode {
    let (emulator_listener, upstream_listener, gateway_listener, admin_listener) = match tokio::try_join!(
        bind_loopback(9080),
        bind_loopback(3000),
        bind_loopback(8080),
        bind_loopback(9901)
    ) {
        Ok(all) => all,
        Err(e) => {
            eprintln!("demo: cannot bind loopback ports: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = |l: &TcpListener| {
        l.local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let (emulator_addr, upstream_addr, gateway_addr, admin_addr) = (
        addr(&emulator_listener),
        addr(&upstream_listener),
        addr(&gateway_listener),
        addr(&admin_listener),
    );
    let config = match demo_config(gateway_addr, admin_addr, emulator_addr, upstream_addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config error: {e}");
            return ExitCode::from(2);
        }
    };
    let key_file = std::env::temp_dir().join("tokengate-demo-dpop.key");
    let signer = match load_or_create_key(&key_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    let emulator = Emulator::new(EmulatorConfig::default());
    let tokens = mint_demo_tokens(&emulator, &signer.thumbprint());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(emulator.serve(emulator_listener, stopped(stop_rx.clone())));
    tokio::spawn(EchoUpstream::new().serve(upstream_listener, stopped(stop_rx.clone())));
    let app = match App::with_listeners(config, gateway_listener, Some(admin_listener)) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "tokengate".into());
    let proof_command = format!("'{exe}' dpop-proof --key '{}'", key_file.display());
    print_instructions(
        gateway_addr,
        admin_addr,
        emulator_addr,
        upstream_addr,
        &tokens,
        &proof_command,
    );
    app.run(signals::shutdown()).await;
    let _ = stop_tx.send(true);
    ExitCode::SUCCESS
}

fn print_instructions(
    gateway: SocketAddr,
    admin: SocketAddr,
    emulator: SocketAddr,
    upstream: SocketAddr,
    t: &DemoTokens,
    proof: &str,
) {
    let g = format!("http://{gateway}");
    println!(
        r#"
tokengate demo is running (Ctrl-C to stop)
  gateway            {g}
  admin              http://{admin}   (/healthz /readyz /metrics)
  Authlete emulator  http://{emulator}  (API v3, service 1000000001)
  echo upstream      http://{upstream}

Tokens (minted in the emulator, valid for 1 hour):
  READER  (alice, scope orders.read)               {reader}
  WRITER  (bob,   scopes orders.read orders.write) {writer}
  DPOP    (dave,  scope orders.read, DPoP-bound)   {dpop}

Try these (each is one line):

# 200: public route, no token needed
curl -i {g}/health

# 401: protected route without a token (bare Bearer challenge, no error code)
curl -i {g}/orders/42

# 200: the reader's token; the upstream echoes the X-Auth-* identity headers it received
curl -i -H "Authorization: Bearer {reader}" {g}/orders/42

# 401 invalid_token: a token the authorization server does not know
curl -i -H "Authorization: Bearer not-a-real-token" {g}/orders/42

# 403 insufficient_scope: the reader may not write
curl -i -X POST -H "Authorization: Bearer {reader}" -H "Content-Type: application/json" -d '{{"item":"book"}}' {g}/orders

# 200: the writer may
curl -i -X POST -H "Authorization: Bearer {writer}" -H "Content-Type: application/json" -d '{{"item":"book"}}' {g}/orders

# 400 invalid_request: a malformed Authorization header
curl -i -H "Authorization: Bearer a b" {g}/orders/42

# 200: the DPoP-bound token with a fresh proof (RFC 9449); each proof works once, so run the whole line again for another request
curl -i -H "Authorization: DPoP {dpop}" -H "DPoP: $({proof} --method GET --url {g}/orders/42 --token {dpop})" {g}/orders/42

# 401 invalid_token: the DPoP-bound token presented as a Bearer token (RFC 9449 section 7.2)
curl -i -H "Authorization: Bearer {dpop}" {g}/orders/42

# 401 invalid_dpop_proof: a proof made for another URL
curl -i -H "Authorization: DPoP {dpop}" -H "DPoP: $({proof} --method GET --url {g}/orders/7 --token {dpop})" {g}/orders/42

# metrics: one introspection per token, then cache hits
curl -s http://{admin}/metrics | grep -E "^tokengate_(requests_total|introspection_requests_total|token_cache)"

# mint your own token in the emulator
curl -s -X POST -H "Content-Type: application/json" -d '{{"subject":"carol","scopes":["orders.read"],"expires_in":600}}' http://{emulator}/emulator/tokens
"#,
        reader = t.reader,
        writer = t.writer,
        dpop = t.dpop,
    );
}

/// Loads an ES256 key from `path` (base64 PKCS#8), creating the file when it does not exist.
pub fn load_or_create_key(path: &std::path::Path) -> Result<ProofSigner, String> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let pkcs8 = match std::fs::read_to_string(path) {
        Ok(text) => engine
            .decode(text.trim())
            .map_err(|e| format!("{}: not a base64 key: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pkcs8 = ProofSigner::generate_es256_pkcs8()
                .map_err(|_| "cannot generate a key".to_owned())?;
            std::fs::write(path, engine.encode(&pkcs8))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            pkcs8
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    ProofSigner::es256_from_pkcs8(&pkcs8)
        .map_err(|e| format!("{}: not an ES256 PKCS#8 key: {e}", path.display()))
}

/// `tokengate dpop-proof`: prints a proof (or the key's thumbprint).
pub fn dpop_proof(args: &DpopProofArgs) -> ExitCode {
    let signer = match load_or_create_key(&args.key) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dpop-proof: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_jkt {
        println!("{}", signer.thumbprint());
        return ExitCode::SUCCESS;
    }
    let Some(url) = &args.url else {
        eprintln!("dpop-proof: --url is required (or use --print-jkt)");
        return ExitCode::from(2);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    println!(
        "{}",
        signer.sign(&ProofClaims::new(
            &args.method,
            url,
            args.token.as_deref(),
            now
        ))
    );
    ExitCode::SUCCESS
}

/// `tokengate emulator`: the Authlete emulator alone.
pub async fn emulator(listen: SocketAddr, tokens: Option<PathBuf>) -> ExitCode {
    let emulator = Emulator::new(EmulatorConfig::default());
    if let Some(path) = tokens {
        match emulator.load_tokens_file(&path) {
            Ok(n) => tracing::info!(count = n, file = %path.display(), "tokens loaded"),
            Err(e) => {
                eprintln!("emulator: cannot load {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("emulator: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let c = emulator.config();
    println!(
        "Authlete emulator on http://{listen}\n  v3: POST /api/{}/auth/introspection  (Authorization: Bearer {})\n  v2: POST /api/auth/introspection  (Basic {}:{})\n  mint: POST /emulator/tokens",
        c.service_id, c.service_access_token, c.api_key, c.api_secret
    );
    match emulator.serve(listener, signals::shutdown()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emulator: {e}");
            ExitCode::from(1)
        }
    }
}
