//! A local emulator of Authlete's token introspection API (`POST /api/{serviceId}/auth/introspection`
//! with a Bearer service access token, and the v2 `POST /api/auth/introspection` with HTTP Basic), so
//! that the demo and every test run offline. Paths, authentication, request fields (JSON or form),
//! `action` values, result codes, flags and `responseContent` challenges follow the research notes in
//! `research/authlete-introspection.md` (sections 1, 2, 3, 3.5, 7 and 8); where those notes mark
//! something as inferred, so does the comment here. It also offers fault injection and a small
//! control API under `/emulator/`. It must never be mistaken for a production authorization server:
//! it keeps tokens in memory, trusts every caller of `/emulator/*`, and does not verify DPoP proofs yet.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{constant_time, digest, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use self::verdict::{Query, Record};

#[cfg(test)]
mod tests;
mod verdict;

/// Larger bodies get 413; an introspection request is a few kilobytes even with a certificate.
const MAX_BODY: usize = 1 << 20;
/// Bounds the request log so that a long demo or load run cannot grow memory without limit.
const MAX_RECORDED: usize = 100_000;

type Resp = Response<Full<Bytes>>;

/// Credentials the emulated service accepts.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// v3 path segment (`/api/{service_id}/auth/introspection`).
    pub service_id: String,
    /// v3: `Authorization: Bearer <service_access_token>`.
    pub service_access_token: String,
    /// v2: HTTP Basic user name.
    pub api_key: String,
    /// v2: HTTP Basic password.
    pub api_secret: String,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("service_id", &self.service_id)
            .field("service_access_token", &"<redacted>")
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            service_id: "1000000001".to_owned(),
            service_access_token: "emulator-service-token".to_owned(),
            api_key: "1000000001".to_owned(),
            api_secret: "emulator-secret".to_owned(),
        }
    }
}

/// A token to create, from the tokens file or `POST /emulator/tokens`.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
// A typo such as `scope:` must not silently create a token without scopes.
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub client_id: Option<i64>,
    #[serde(default)]
    pub client_id_alias: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Seconds from now; negative means already expired.
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// RFC 7638 thumbprint of the key the token is DPoP-bound to.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// RFC 8705 `x5t#S256` (base64url SHA-256 of the DER certificate).
    #[serde(default)]
    pub certificate_thumbprint: Option<String>,
    #[serde(default)]
    pub refreshable: Option<bool>,
}

/// Failure injected into the introspection endpoints (never into `/emulator/*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    Http500,
    Http401,
    Slow(Duration),
    Reset,
    ActionInternalServerError,
}

struct State {
    config: EmulatorConfig,
    /// The DPoP nonce this server expects when `dpopNonceRequired` is sent.
    dpop_nonce: String,
    tokens: Mutex<HashMap<String, Record>>,
    fault: Mutex<Fault>,
    calls: AtomicU64,
    requests: Mutex<VecDeque<Value>>,
}

/// The emulator; clones share one token store.
#[derive(Clone)]
pub struct Emulator {
    state: Arc<State>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("config", &self.state.config)
            .field("introspection_calls", &self.introspection_calls())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Self {
        let state = State {
            config,
            dpop_nonce: crate::auth::dpop::random_jti(),
            tokens: Mutex::new(HashMap::new()),
            fault: Mutex::new(Fault::None),
            calls: AtomicU64::new(0),
            requests: Mutex::new(VecDeque::new()),
        };
        Self {
            state: Arc::new(state),
        }
    }

    /// The DPoP nonce the emulator expects when a request sets `dpopNonceRequired`.
    pub fn dpop_nonce(&self) -> &str {
        &self.state.dpop_nonce
    }

    /// Stores a token (replacing one with the same value) and returns the access token.
    pub fn add_token(&self, spec: TokenSpec) -> String {
        self.insert(spec).0
    }

    fn insert(&self, spec: TokenSpec) -> (String, Record) {
        let token = spec.access_token.clone().unwrap_or_else(random_token);
        let expires_in = spec.expires_in.unwrap_or(3600);
        let record = Record {
            subject: spec.subject,
            client_id: spec.client_id.unwrap_or(1001),
            client_id_alias: spec.client_id_alias,
            scopes: spec.scopes,
            expires_at_ms: now_ms().saturating_add(expires_in.saturating_mul(1000)),
            dpop_jkt: spec.dpop_jkt,
            certificate_thumbprint: spec.certificate_thumbprint,
            refreshable: spec.refreshable.unwrap_or(false),
        };
        lock(&self.state.tokens).insert(token.clone(), record.clone());
        (token, record)
    }

    /// Loads a YAML or JSON list of [`TokenSpec`]; returns how many tokens were added.
    pub fn load_tokens_file(&self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let specs: Vec<TokenSpec> =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let count = specs.len();
        for spec in specs {
            self.add_token(spec);
        }
        Ok(count)
    }

    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.state.fault) = fault;
    }

    /// Introspection calls that reached the handler, faulted or rejected ones included.
    pub fn introspection_calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Bodies of the introspection requests received, oldest first (form bodies converted to the
    /// equivalent JSON object; unparseable bodies are not recorded; only the newest 100 000 are kept).
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.state.requests).iter().cloned().collect()
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.state.config
    }

    /// Serves HTTP/1.1 and h2c on `listener` until `shutdown` completes, then lets open
    /// connections finish for up to five seconds.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        super::serve_loop("emulator", listener, shutdown, move |req| {
            let this = self.clone();
            async move { this.handle(req).await }
        })
        .await
    }

    /// Binds `127.0.0.1:0` and serves in a task on the current runtime until the runtime ends.
    pub async fn spawn(self) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(error) = self.serve(listener, std::future::pending()).await {
                tracing::error!(%error, "emulator stopped");
            }
        });
        Ok(addr)
    }

    async fn handle(self, req: Request<Incoming>) -> Result<Resp, ConnectionReset> {
        let path = req.uri().path().to_owned();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/emulator/tokens") => Ok(self.create_token(req).await),
            (&Method::POST, "/emulator/faults") => Ok(self.set_fault_from(req).await),
            // A generic RFC 7662 endpoint over the same token store, so that tokengate's
            // `rfc7662` backend can be tested end to end (Basic auth with api_key:api_secret).
            (&Method::POST, RFC7662_PATH) => self.introspection(Target::Rfc7662, req).await,
            (&Method::GET, "/emulator/stats") => {
                let stats = json!({ "introspection_calls": self.introspection_calls() });
                Ok(json_response(StatusCode::OK, &stats))
            }
            (method, _) => match api_target(&path) {
                Some(target) if method == Method::POST => self.introspection(target, req).await,
                Some(_) => {
                    let mut resp = local_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
                    resp.headers_mut()
                        .insert("allow", HeaderValue::from_static("POST"));
                    Ok(resp)
                }
                None => Ok(local_error(StatusCode::NOT_FOUND, "no such endpoint")),
            },
        }
    }

    async fn introspection(
        &self,
        target: Target<'_>,
        req: Request<Incoming>,
    ) -> Result<Resp, ConnectionReset> {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = req.into_parts();
        let bytes = match read_body(&parts.headers, body).await {
            Ok(bytes) => bytes,
            Err(error) => return Ok(error.into()),
        };
        let parsed = parse_request(&parts.headers, &bytes);
        if let Ok(value) = &parsed {
            let mut log = lock(&self.state.requests);
            if log.len() >= MAX_RECORDED {
                log.pop_front();
            }
            log.push_back(value.clone());
        }
        let fault = *lock(&self.state.fault);
        match fault {
            Fault::None => {}
            Fault::Http500 => {
                let error = api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "A001101",
                    "Authlete Server error.",
                );
                return Ok(error.into());
            }
            Fault::Http401 => return Ok(missing_authorization().into()),
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::Reset => return Err(ConnectionReset),
            Fault::ActionInternalServerError => {
                return Ok(json_response(
                    StatusCode::OK,
                    &verdict::internal_server_error(),
                ));
            }
        }
        if let Err(error) = self.authenticate(&target, &parts.headers) {
            return Ok(error.into());
        }
        if let Target::Rfc7662 = target {
            let token = parsed
                .as_ref()
                .ok()
                .and_then(|v| v.get("token"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let answer = verdict::rfc7662(&lock(&self.state.tokens), token, now_ms());
            return Ok(json_response(StatusCode::OK, &answer));
        }
        match parsed {
            Ok(value) => Ok(json_response(
                StatusCode::OK,
                &verdict::introspect(
                    &mut lock(&self.state.tokens),
                    &Query {
                        server_nonce: Some(&self.state.dpop_nonce),
                        ..Query::from(&value)
                    },
                    now_ms(),
                ),
            )),
            // Inferred code: the catalogue in the notes has no entry for an unparseable body.
            Err(why) => Ok(api_error(StatusCode::BAD_REQUEST, "A001206", &why).into()),
        }
    }

    fn authenticate(&self, target: &Target<'_>, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(missing_authorization());
        };
        let malformed = || {
            api_error(
                StatusCode::UNAUTHORIZED,
                "A001203",
                "Credentials in Authorization header are malformed.",
            )
        };
        let (scheme, credentials) = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .ok_or_else(malformed)?;
        let config = &self.state.config;
        match target {
            Target::V3(service_id) => {
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(malformed());
                }
                if *service_id != config.service_id {
                    // Inferred code and text: the notes only say v3 defines a generic 404.
                    let text = format!("The service (ID = {service_id}) does not exist.");
                    return Err(api_error(StatusCode::NOT_FOUND, "A001205", &text));
                }
                if !secret_eq(credentials.trim(), &config.service_access_token) {
                    return Err(malformed());
                }
            }
            Target::V2 | Target::Rfc7662 => {
                if !scheme.eq_ignore_ascii_case("basic") {
                    return Err(malformed());
                }
                let decoded = STANDARD
                    .decode(credentials.trim())
                    .map_err(|_| malformed())?;
                let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
                let (key, secret) = decoded.split_once(':').ok_or_else(malformed)?;
                // Both compared (no short-circuit) so timing does not tell which half was wrong.
                let key_ok = secret_eq(key, &config.api_key);
                let secret_ok = secret_eq(secret, &config.api_secret);
                if !(key_ok & secret_ok) {
                    return Err(malformed());
                }
            }
        }
        Ok(())
    }

    async fn create_token(&self, req: Request<Incoming>) -> Resp {
        let (parts, body) = req.into_parts();
        let bytes = match read_body(&parts.headers, body).await {
            Ok(bytes) => bytes,
            Err(error) => return error.into(),
        };
        let spec = if bytes.iter().all(u8::is_ascii_whitespace) {
            TokenSpec::default()
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(spec) => spec,
                Err(e) => {
                    return local_error(
                        StatusCode::BAD_REQUEST,
                        &format!("invalid token spec: {e}"),
                    );
                }
            }
        };
        let expires_in = spec.expires_in.unwrap_or(3600);
        let (token, record) = self.insert(spec);
        let body = json!({
            "access_token": token,
            "subject": record.subject,
            "client_id": record.client_id,
            "scopes": record.scopes,
            // Epoch seconds, like `exp` in RFC 7662; only the Authlete API itself speaks milliseconds.
            "expires_at": record.expires_at_ms.div_euclid(1000),
            "expires_in": expires_in,
            "dpop_jkt": record.dpop_jkt,
        });
        json_response(StatusCode::CREATED, &body)
    }

    async fn set_fault_from(&self, req: Request<Incoming>) -> Resp {
        let (parts, body) = req.into_parts();
        let bytes = match read_body(&parts.headers, body).await {
            Ok(bytes) => bytes,
            Err(error) => return error.into(),
        };
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let delay =
            Duration::from_millis(value.get("delay_ms").and_then(Value::as_u64).unwrap_or(0));
        let fault = match value.get("mode").and_then(Value::as_str) {
            Some("none") => Fault::None,
            Some("http500") => Fault::Http500,
            Some("http401") => Fault::Http401,
            Some("slow") => Fault::Slow(delay),
            Some("reset") => Fault::Reset,
            Some("action_internal_server_error") => Fault::ActionInternalServerError,
            _ => {
                let hint =
                    "mode must be none|http500|http401|slow|reset|action_internal_server_error";
                return local_error(StatusCode::BAD_REQUEST, hint);
            }
        };
        self.set_fault(fault);
        json_response(StatusCode::OK, &json!({ "fault": format!("{fault:?}") }))
    }
}

/// Returned by the service to make hyper drop the connection without answering (`Fault::Reset`).
#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ConnectionReset {}

enum Target<'a> {
    V2,
    V3(&'a str),
    Rfc7662,
}

/// Path of the generic RFC 7662 endpoint.
pub const RFC7662_PATH: &str = "/rfc7662/introspect";

fn api_target(path: &str) -> Option<Target<'_>> {
    if path == "/api/auth/introspection" {
        return Some(Target::V2);
    }
    let service_id = path
        .strip_prefix("/api/")?
        .strip_suffix("/auth/introspection")?;
    (!service_id.is_empty() && !service_id.contains('/')).then_some(Target::V3(service_id))
}

/// Reads the whole body (introspection requests are small), refusing more than [`MAX_BODY`].
async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = || {
        api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "A001207",
            "The request body is too large.",
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(api_error(
            StatusCode::BAD_REQUEST,
            "A001206",
            "The request body could not be read.",
        )),
    }
}

/// JSON, or `application/x-www-form-urlencoded` converted to the equivalent JSON object.
fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Ok(form_to_json(body));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("The request body must be a JSON object.".to_owned()),
        Err(e) => Err(format!("The request body is not valid JSON: {e}.")),
    }
}

/// Research §1.3: in form encoding `scopes` is space-separated; other arrays have no documented
/// form encoding, so they stay strings.
fn form_to_json(body: &[u8]) -> Value {
    let mut m = Map::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let (key, value) = (percent_decode(key), percent_decode(value));
        let value = match key.as_str() {
            "scopes" => Value::from(value.split_whitespace().collect::<Vec<_>>()),
            "maxAge" => value.parse::<i64>().map_or(Value::from(value), Value::from),
            "dpopNonceRequired" | "requestBodyContained" => Value::from(value == "true"),
            _ => Value::from(value),
        };
        m.insert(key, value);
    }
    Value::Object(m)
}

fn percent_decode(input: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                // A stray `%` is kept literally, as browsers and most servers do.
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An API-level failure: non-2xx with only `resultCode`/`resultMessage` (research §1.4).
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl From<ApiError> for Resp {
    fn from(error: ApiError) -> Self {
        json_response(error.status, &error.body)
    }
}

fn api_error(status: StatusCode, code: &str, text: &str) -> ApiError {
    let message = format!("[{code}] /auth/introspection, {text}");
    let body = json!({ "resultCode": code, "resultMessage": message });
    ApiError { status, body }
}

fn missing_authorization() -> ApiError {
    api_error(
        StatusCode::UNAUTHORIZED,
        "A001202",
        "Authorization header is missing.",
    )
}

/// Errors outside the emulated Authlete API, which has no result code for them.
fn local_error(status: StatusCode, description: &str) -> Resp {
    json_response(
        status,
        &json!({ "error": status.canonical_reason().unwrap_or("error"), "error_description": description }),
    )
}

fn secret_eq(given: &str, expected: &str) -> bool {
    constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes()).is_ok()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the emulator; the guarded data stays consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// 32 random bytes, base64url: 43 characters, like Authlete's opaque tokens.
fn random_token() -> String {
    let mut buf = [0u8; 32];
    if rand::fill(&mut buf).is_err() {
        // Never expected; fall back to something unique rather than panicking.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = format!("{}-{n}-{:?}", now_ms(), std::thread::current().id());
        return URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, seed.as_bytes()));
    }
    URL_SAFE_NO_PAD.encode(buf)
}
